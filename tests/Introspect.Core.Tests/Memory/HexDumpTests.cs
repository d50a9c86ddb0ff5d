using Introspect.Core.Memory;

namespace Introspect.Core.Tests.Memory;

public sealed class HexDumpTests
{
    [Test]
    public void The_layout_is_MemProcFS_hex_file_layout()
    {
        byte[] data = [.. "Introspect hex"u8, 0x00, 0x01, .. "AB"u8, 0x7f, 0xff];
        const string Expected =
            "0000    49 6e 74 72 6f 73 70 65  63 74 20 68 65 78 00 01   Introspect hex..\n" +
            "0010    41 42 7f ff                                        AB .            \n";
        Assert.That(HexDump.Format(data), Is.EqualTo(Expected));
        Assert.That(Expected.Split('\n')[0].Length + 1, Is.EqualTo(76), "MemProcFS's 76 characters a line");
    }

    [Test]
    public void Lines_continue_the_address()
    {
        var data = Enumerable.Range(0x20, 0x20).Select(b => (byte)b).ToArray();
        Assert.That(HexDump.Format(data),
            Is.EqualTo("0000    20 21 22 23 24 25 26 27  28 29 2a 2b 2c 2d 2e 2f    !\"#$%&'()*+,-./\n" +
                       "0010    30 31 32 33 34 35 36 37  38 39 3a 3b 3c 3d 3e 3f   0123456789:;<=>?\n"));
    }

    [Test]
    public void High_addresses_widen_the_address_column()
    {
        Assert.That(HexDump.Format([0x41], 0x1_0000), Is.EqualTo("00010000    41" + new string(' ', 15 * 3 + 1) + "   A" + new string(' ', 15) + "\n"));
        Assert.That(HexDump.Format([0x90], 0xffff_ffff_8100_0000), Does.StartWith("ffffffff81000000    90 "));
        Assert.That(HexDump.Format([]), Is.Empty);
    }

    [Test]
    public void Writing_to_a_text_writer_gives_the_same_text()
    {
        var data = new byte[100];
        Random.Shared.NextBytes(data);
        using var writer = new StringWriter();
        HexDump.Write(writer, data, 0xfff0);
        Assert.That(writer.ToString(), Is.EqualTo(HexDump.Format(data, 0xfff0)));
        Assert.That(writer.ToString(), Does.StartWith("0000fff0    "), "the last line's address needs 8 digits");
    }
}
