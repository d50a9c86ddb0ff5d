using Introspect.Abi;

namespace Introspect.Connectors.Qemu.Tests;

/// <summary>A memory-backend-file's file read as guest RAM, through a pc layout (a hole below 1 MiB, RAM above 4 GiB).</summary>
public sealed class MappedFileMemoryTests
{
    private string _file = null!;

    [SetUp]
    public void CreateFile()
    {
        _file = Path.GetTempFileName();
        var bytes = new byte[0x20_0000];
        for (int i = 0; i < bytes.Length; i += 4096)
            BitConverter.TryWriteBytes(bytes.AsSpan(i), i); // each page starts with its file offset
        File.WriteAllBytes(_file, bytes);
    }

    [TearDown]
    public void DeleteFile() => File.Delete(_file);

    private static MemoryMap Layout => new(
    [
        new MemoryRange(0, 0xa_0000, 0),
        new MemoryRange(0x10_0000, 0x8_0000, 0x10_0000),
        new MemoryRange(0x1_0000_0000, 0x8_0000, 0x18_0000),
    ]);

    private static int PageTag(byte[] buffer, int offset = 0) => BitConverter.ToInt32(buffer, offset);

    [Test]
    public void Guest_physical_addresses_read_at_their_file_offsets()
    {
        using var memory = new MappedFileMemory(_file, 0x20_0000, Layout, readOnly: true);
        var low = new byte[8];
        var high = new byte[8];
        var batch = new[] { new MemoryRequest(0x9_f000, low), new MemoryRequest(0x1_0000_1000, high) };
        memory.Read(batch);
        Assert.That(batch.Select(b => b.Succeeded), Is.All.True);
        Assert.That(PageTag(low), Is.EqualTo(0x9_f000));
        Assert.That(PageTag(high), Is.EqualTo(0x18_1000));
        Assert.That(memory.Metadata.ReadOnly, Is.True);
        Assert.That(memory.Metadata.RealSize, Is.EqualTo(0xa_0000UL + 0x10_0000));
    }

    [Test]
    public void Holes_fail_or_read_as_zeros_and_the_rest_of_the_batch_goes_on()
    {
        using var memory = new MappedFileMemory(_file, 0x20_0000, Layout, readOnly: true);
        var across = new byte[0x2000];
        var hole = new byte[16];
        var wrap = new byte[16];
        var fine = new byte[4];
        var batch = new[]
        {
            new MemoryRequest(0x9_f000, across),       // runs from RAM into the VGA window
            new MemoryRequest(0xb_0000, hole),
            new MemoryRequest(ulong.MaxValue - 4, wrap),
            new MemoryRequest(0x10_0000, fine),
        };
        memory.Read(batch);
        Assert.That(batch.Select(b => b.Succeeded), Is.EqualTo(new[] { false, false, false, true }));

        across.AsSpan().Fill(0xcc);
        var padded = new[] { new MemoryRequest(0x9_f000, across) };
        memory.Read(padded, MemoryFlags.ZeroPadOnFail);
        Assert.That(padded[0].Succeeded, Is.True);
        Assert.That(PageTag(across), Is.EqualTo(0x9_f000));
        Assert.That(across[0x1000..], Is.All.EqualTo((byte)0));
    }

    [Test]
    public void A_map_past_the_file_fails_instead_of_reading_outside_it()
    {
        var tooLong = new MemoryMap([new MemoryRange(0, 0x40_0000, 0)]);
        using var memory = new MappedFileMemory(_file, 0x20_0000, tooLong, readOnly: true);
        var batch = new[] { new MemoryRequest(0x1f_f000, new byte[0x2000]), new MemoryRequest(0x30_0000, new byte[8]) };
        memory.Read(batch);
        Assert.That(batch.Select(b => b.Succeeded), Is.EqualTo(new[] { false, false }));
    }

    [Test]
    public void Writes_need_write_on_and_land_in_the_file()
    {
        using (var readOnly = new MappedFileMemory(_file, 0x20_0000, Layout, readOnly: true))
            Assert.That(() => readOnly.Write([new MemoryRequest(0, new byte[4])]), Throws.TypeOf<NotSupportedException>().With.Message.Contains("write=on"));
        using (var writable = new MappedFileMemory(_file, 0x20_0000, Layout, readOnly: false))
        {
            var batch = new[] { new MemoryRequest(0x1_0000_0010, "LIVE"u8.ToArray()), new MemoryRequest(0xb_0000, new byte[4]) };
            writable.Write(batch);
            Assert.That(batch.Select(b => b.Succeeded), Is.EqualTo(new[] { true, false }));
        }
        var file = File.ReadAllBytes(_file);
        Assert.That(file.AsSpan(0x18_0010, 4).ToArray(), Is.EqualTo("LIVE"u8.ToArray()));
    }
}
