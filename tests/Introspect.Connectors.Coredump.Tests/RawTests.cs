using System.Text;
using Introspect.Abi;
using Introspect.TestSupport;

namespace Introspect.Connectors.Coredump.Tests;

/// <summary>Raw images, and the behaviour every format shares (batches, failures, zero padding, map replacement, disposal).</summary>
public class RawTests
{
    private IPhysicalMemory _memory = null!;

    [OneTimeSetUp]
    public void OpenImage() => _memory = Support.Open(TestInputs.LinuxRawImage);

    [OneTimeTearDown]
    public void CloseImage() => _memory.Dispose();

    [Test]
    public void A_raw_image_maps_address_n_to_file_offset_n()
    {
        Assert.That(_memory.MemoryMap.ToString(), Is.EqualTo("0x0 0x7ffffff\n"));
        Assert.That(_memory.Metadata, Is.EqualTo(new PhysicalMemoryMetadata(0x7FF_FFFF, 128UL << 20, true, 1024)));
        Assert.That(Support.HintsOf(_memory).Format, Is.EqualTo("raw"));
        Assert.That(Support.HintsOf(_memory).Architecture, Is.EqualTo(MachineArchitecture.Unknown));
    }

    [Test]
    public void Every_page_reads_as_the_file_holds_it()
    {
        int checkedPages = 0;
        Support.ForEachMappedPage(_memory, (address, bytes) =>
        {
            Assert.That(bytes, Is.Not.Null, $"page 0x{address:x}");
            if (!bytes.AsSpan().SequenceEqual(Support.RawPage(address / Support.PageSize)))
                Assert.Fail($"page 0x{address:x} differs from the image");
            checkedPages++;
        });
        Assert.That(checkedPages, Is.EqualTo(32768));
    }

    [Test]
    public void The_guest_marker_reads_where_the_image_has_it()
    {
        var marker = "MEMFORENSICS_TEST_MARKER_7f3a"u8.ToArray();
        int offset = Support.RawImage.AsSpan().IndexOf(marker);
        Assert.That(offset, Is.GreaterThan(0));
        var bytes = Support.Read(_memory, (ulong)offset, marker.Length);
        Assert.That(Encoding.ASCII.GetString(bytes!), Is.EqualTo("MEMFORENSICS_TEST_MARKER_7f3a"));
    }

    [Test]
    public void A_failed_entry_does_not_fail_the_batch()
    {
        var inside = new byte[16];
        var outside = new byte[16];
        var crossing = new byte[32];
        var empty = Array.Empty<byte>();
        var wrapping = new byte[16];
        MemoryRequest[] batch =
        [
            new(0x1000, inside),
            new(0x800_0000, outside),
            new(0x7FF_FFF0, crossing),
            new(0x1234, empty),
            new(ulong.MaxValue - 7, wrapping),
        ];
        _memory.Read(batch);
        Assert.Multiple(() =>
        {
            Assert.That(batch[0].Succeeded, Is.True);
            Assert.That(inside, Is.EqualTo(Support.RawImage.AsSpan(0x1000, 16).ToArray()));
            Assert.That(batch[1].Succeeded, Is.False, "past the end");
            Assert.That(batch[2].Succeeded, Is.False, "crossing the end");
            Assert.That(batch[3].Succeeded, Is.True, "an empty buffer");
            Assert.That(batch[4].Succeeded, Is.False, "wrapping past 2^64");
        });
    }

    [Test]
    public void Zero_padding_fills_what_is_not_mapped_and_keeps_what_is()
    {
        var crossing = new byte[32];
        crossing.AsSpan().Fill(0xCC);
        var outside = new byte[8];
        outside.AsSpan().Fill(0xCC);
        MemoryRequest[] batch = [new(0x7FF_FFF0, crossing), new(0x9000_0000, outside)];
        _memory.Read(batch, MemoryFlags.ZeroPadOnFail);
        Assert.That(batch[0].Succeeded && batch[1].Succeeded, Is.True);
        Assert.That(crossing.AsSpan(0, 16).ToArray(), Is.EqualTo(Support.RawImage.AsSpan(0x7FF_FFF0, 16).ToArray()));
        Assert.That(crossing.AsSpan(16).ToArray(), Is.All.Zero);
        Assert.That(outside, Is.All.Zero);
    }

    [Test]
    public void Writes_are_refused()
    {
        MemoryRequest[] batch = [new(0x1000, new byte[8])];
        Assert.That(() => _memory.Write(batch), Throws.TypeOf<NotSupportedException>().With.Message.Contains("read-only"));
    }

    [Test]
    public void A_replaced_map_remaps_and_hides_the_rest()
    {
        using var memory = Support.Open(TestInputs.LinuxRawImage);
        // Backing addresses are file offsets: show file offset 0x2000 at 0x1_0000_0000, and a range past the file's end.
        memory.SetMemoryMap(new MemoryMap([new MemoryRange(0x1_0000_0000, 0x1000, 0x2000), new MemoryRange(0x2_0000_0000, 0x1000, 0x800_0000)]));
        Assert.That(memory.Metadata.MaxAddress, Is.EqualTo(0x2_0000_0FFFUL));
        Assert.That(memory.Metadata.RealSize, Is.EqualTo(0x2000UL));
        Assert.That(Support.Read(memory, 0x1_0000_0000, 0x1000), Is.EqualTo(Support.RawPage(2).ToArray()));
        Assert.That(Support.Read(memory, 0x2000, 8), Is.Null, "the old address is no longer mapped");
        Assert.That(Support.Read(memory, 0x2_0000_0000, 8), Is.Null, "backed past the end of the file");
        Assert.That(() => memory.SetMemoryMap(null!), Throws.ArgumentNullException);
    }

    [Test]
    public void Reads_from_many_threads_agree_with_the_image()
    {
        Parallel.For(0, 8, thread =>
        {
            var random = new Random(thread);
            var buffers = Enumerable.Range(0, 64).Select(_ => new byte[random.Next(1, 9000)]).ToArray();
            for (int round = 0; round < 50; round++)
            {
                var batch = buffers.Select(b => new MemoryRequest((ulong)random.NextInt64(0, (128L << 20) - b.Length), b)).ToArray();
                _memory.Read(batch);
                foreach (var entry in batch)
                {
                    if (!entry.Succeeded || !entry.Buffer.Span.SequenceEqual(Support.RawImage.AsSpan((int)entry.Address, entry.Buffer.Length)))
                        Assert.Fail($"thread {thread}: 0x{entry.Address:x}+{entry.Buffer.Length}");
                }
            }
        });
    }

    [Test]
    public void A_disposed_memory_refuses_reads()
    {
        var memory = Support.Open(TestInputs.LinuxRawImage);
        memory.Dispose();
        memory.Dispose();
        MemoryRequest[] batch = [new(0x1000, new byte[8])];
        Assert.That(() => memory.Read(batch), Throws.TypeOf<ObjectDisposedException>());
    }
}
