using System.Buffers.Binary;
using Introspect.Symbols.Pe;
using Introspect.TestSupport;

namespace Introspect.Symbols.Tests;

/// <summary>Bad PE files give an <see cref="InvalidDataException"/> naming the file, the field, the value and the limit.</summary>
[CancelAfter(30_000)]
public class MalformedPeTests
{
    private static byte[] Hal() => File.ReadAllBytes(TestInputs.TestData("pe", "hal.dll"));

    private static int PeHeader(byte[] bytes) => BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(0x3c));

    private static void AssertBad(byte[] bytes, params string[] mentions)
    {
        var error = Assert.Throws<InvalidDataException>(() => PeImage.Load(bytes, "bad.dll"));
        Assert.That(error!.Message, Does.Contain("bad.dll"));
        foreach (var mention in mentions)
            Assert.That(error.Message, Does.Contain(mention), error.Message);
    }

    [Test]
    public void A_file_without_mz_is_refused() => AssertBad(new byte[512], "e_magic", "MZ");

    [Test]
    public void A_file_shorter_than_a_dos_header_is_refused() => AssertBad([0x4d, 0x5a, 0, 0], "DOS header", "truncated");

    [Test]
    public void A_pe_header_offset_far_past_the_file_is_refused()
    {
        var bytes = Hal()[..4096];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(0x3c), 0x7fffffff);
        AssertBad(bytes, "e_lfanew");
    }

    [Test]
    public void A_wrong_pe_signature_is_refused()
    {
        var bytes = Hal();
        bytes[PeHeader(bytes)] = (byte)'X';
        AssertBad(bytes, "PE signature");
    }

    [Test]
    public void An_unknown_optional_header_magic_is_refused()
    {
        var bytes = Hal();
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(PeHeader(bytes) + 24), 0x1234);
        AssertBad(bytes, "Magic", "0x1234");
    }

    [Test]
    public void Section_count_65535_in_a_tiny_file_is_refused()
    {
        var bytes = Hal()[..1024];
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(PeHeader(bytes) + 6), 65535);
        AssertBad(bytes, "NumberOfSections", "65535", "at most", "1024 bytes");
    }

    [Test]
    public void A_file_cut_inside_its_sections_is_refused()
    {
        var bytes = Hal();
        AssertBad(bytes[..0x9100], "ends at 0x9100", "truncated");
    }

    [Test]
    public void An_absurd_export_count_is_refused()
    {
        var bytes = Hal();
        var image = PeImage.Load(bytes, "hal.dll");
        var directory = image.Directory(PeDirectory.Export);
        var section = image.SectionOf(directory.VirtualAddress)!;
        int at = (int)(section.PointerToRawData + (directory.VirtualAddress - section.VirtualAddress));
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at + 20), 0x7fffffff);
        AssertBad(bytes, "NumberOfFunctions", "2147483647", "at most");
    }

    [Test]
    public void An_export_table_outside_the_image_is_refused()
    {
        var bytes = Hal();
        var image = PeImage.Load(bytes, "hal.dll");
        var directory = image.Directory(PeDirectory.Export);
        var section = image.SectionOf(directory.VirtualAddress)!;
        int at = (int)(section.PointerToRawData + (directory.VirtualAddress - section.VirtualAddress));
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at + 28), 0xfffff000);
        AssertBad(bytes, "export address table", "SizeOfImage");
    }

    [Test]
    public void An_import_list_without_its_terminator_is_refused_at_the_image_end()
    {
        var bytes = Hal();
        var image = PeImage.Load(bytes, "hal.dll");
        int optional = PeHeader(bytes) + 24;
        // Point the import directory at the last descriptor-sized slot of the image, whose bytes are not a zero descriptor.
        int importEntry = optional + 112 + 8;
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(importEntry), image.SizeOfImage - 8);
        AssertBad(bytes, "import descriptor");
    }
}
