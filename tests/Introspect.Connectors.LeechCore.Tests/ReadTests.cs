using Introspect.Abi;
using Introspect.TestSupport;

namespace Introspect.Connectors.LeechCore.Tests;

/// <summary>Reading the shared Debian guest's raw image through LeechCore's file device, as the test library serves it.</summary>
public class ReadTests : LeechCoreTest
{
    [Test]
    public void The_device_opens_with_LeechCores_view_of_it()
    {
        using var memory = Support.OpenLeechCore(Support.RawDevice);
        Assert.Multiple(() =>
        {
            Assert.That(memory.Metadata.MaxAddress, Is.EqualTo((128UL << 20) - 1));
            Assert.That(memory.Metadata.RealSize, Is.EqualTo(128UL << 20));
            Assert.That(memory.Metadata.ReadOnly, Is.True, "LeechCore's file device is read-only unless write=1");
            Assert.That(memory.Metadata.IdealBatchSize, Is.EqualTo(1024));
            Assert.That(memory.MemoryMap.ToString(), Is.EqualTo("0x0 0x7ffffff\n"));
            Assert.That(Support.HintsOf(memory).Format, Is.EqualTo("leechcore/file"));
            Assert.That(Support.HintsOf(memory).Architecture, Is.EqualTo(MachineArchitecture.Unknown));
            Assert.That(Support.HintsOf(memory).DirectoryTableBase, Is.Null);
        });
        var created = FakeLeechCore.GetLastCreate();
        Assert.That(created, Is.EqualTo(new FakeLeechCore.LastCreate(Support.RawDevice, "", 0, 0)));
    }

    [Test]
    public void Every_page_equals_the_raw_image()
    {
        using var memory = Support.OpenLeechCore(Support.RawDevice);
        const int Batch = 512;
        var buffers = new byte[Batch * Support.PageSize];
        var requests = new MemoryRequest[Batch];
        var image = Support.RawImage;
        for (int first = 0; first < image.Length / Support.PageSize; first += Batch)
        {
            for (int i = 0; i < Batch; i++)
                requests[i] = new MemoryRequest((ulong)(first + i) * Support.PageSize, buffers.AsMemory(i * Support.PageSize, Support.PageSize));
            memory.Read(requests);
            Assert.That(requests.All(r => r.Succeeded), Is.True, $"pages from {first}");
            Assert.That(buffers.AsSpan().SequenceEqual(image.AsSpan(first * Support.PageSize, buffers.Length)), Is.True, $"pages from {first}");
        }
        Assert.That(FakeLeechCore.GetStats().EntriesRead, Is.EqualTo((ulong)(image.Length / Support.PageSize)));
    }

    [TestCase(0x2161900UL, 256)]
    [TestCase(0x2161903UL, 1)]
    [TestCase(0x2161905UL, 3)]
    [TestCase(0x1ffdUL, 7, Description = "ends at a page end, unaligned")]
    [TestCase(0x1ffaUL, 12, Description = "crosses a page, unaligned on both sides")]
    [TestCase(0x1001UL, 4094, Description = "all of a page but its first and last byte")]
    [TestCase(0x3ff8UL, 8200, Description = "three pages, starting 8 bytes before a boundary")]
    [TestCase(0x7ffff01UL, 255, Description = "the last bytes of memory")]
    [TestCase(0x100000UL, 1 << 20, Description = "a megabyte, page-aligned")]
    [TestCase(0x100003UL, (1 << 20) + 5, Description = "a megabyte and a bit, misaligned")]
    [TestCase(0x400000UL, (4 << 20) + 3, Description = "a full call of pages, then a misaligned tail: the first bounce comes right after a cut")]
    public void Any_range_reads_as_in_the_image(ulong address, int length)
    {
        using var memory = Support.OpenLeechCore(Support.RawDevice);
        var bytes = Support.Read(memory, address, length);
        Assert.That(bytes, Is.Not.Null);
        Assert.That(bytes.AsSpan().SequenceEqual(Support.RawImage.AsSpan(checked((int)address), length)), Is.True);
    }

    [Test]
    public void Many_small_misaligned_reads_in_one_batch_each_get_their_own_bytes()
    {
        using var memory = Support.OpenLeechCore(Support.RawDevice);
        var random = new Random(7);
        var requests = new MemoryRequest[3000];
        var expected = new byte[requests.Length][];
        for (int i = 0; i < requests.Length; i++)
        {
            ulong address = (ulong)random.NextInt64(0, (128L << 20) - 64);
            int length = random.Next(1, 40);
            requests[i] = new MemoryRequest(address, new byte[length]);
            expected[i] = Support.Expected(address, length);
        }
        memory.Read(requests);
        for (int i = 0; i < requests.Length; i++)
        {
            Assert.That(requests[i].Succeeded, Is.True, $"request {i} at 0x{requests[i].Address:x}");
            Assert.That(requests[i].Buffer.ToArray(), Is.EqualTo(expected[i]), $"request {i} at 0x{requests[i].Address:x}");
        }
    }

    [Test]
    public void Misaligned_page_sized_reads_outgrow_the_bounce_buffer_and_still_read_right()
    {
        using var memory = Support.OpenLeechCore(Support.RawDevice);
        var requests = Enumerable.Range(0, 600).Select(i => new MemoryRequest(0x300001 + (ulong)i * 0x2000, new byte[4095])).ToArray();
        memory.Read(requests);
        for (int i = 0; i < requests.Length; i++)
            Assert.That(requests[i].Succeeded && requests[i].Buffer.Span.SequenceEqual(Support.RawImage.AsSpan((int)requests[i].Address, 4095)), Is.True, $"request {i}");
        Assert.That(FakeLeechCore.GetStats().ReadScatterCalls, Is.GreaterThan(1UL), "1200 windows of up to a page do not fit one bounce buffer");
    }

    [Test]
    public void Batches_are_cut_to_the_ideal_size()
    {
        using var memory = Support.OpenLeechCore(Support.RawDevice);
        var requests = Enumerable.Range(0, 5000).Select(i => new MemoryRequest((ulong)i * Support.PageSize, new byte[Support.PageSize])).ToArray();
        memory.Read(requests);
        var stats = FakeLeechCore.GetStats();
        Assert.Multiple(() =>
        {
            Assert.That(requests.All(r => r.Succeeded), Is.True);
            Assert.That(stats.LargestRead, Is.EqualTo(1024UL));
            Assert.That(stats.ReadScatterCalls, Is.EqualTo(5UL), "5000 pages in calls of 1024");
        });
    }

    [Test]
    public void The_batch_size_argument_sets_the_cut()
    {
        using var memory = Support.OpenLeechCore(Support.RawDevice, ("batch-size", "100"));
        Assert.That(memory.Metadata.IdealBatchSize, Is.EqualTo(100));
        var requests = Enumerable.Range(0, 1000).Select(i => new MemoryRequest((ulong)i * Support.PageSize, new byte[Support.PageSize])).ToArray();
        memory.Read(requests);
        Assert.That(FakeLeechCore.GetStats(), Has.Property("LargestRead").EqualTo(100UL).And.Property("ReadScatterCalls").EqualTo(10UL));
    }

    [Test]
    public void A_batch_read_twice_reuses_its_entries_with_f_reset()
    {
        // The test library refuses any entry that comes in with f TRUE; a second read would carry the first one's.
        using var memory = Support.OpenLeechCore(Support.RawDevice);
        var requests = Enumerable.Range(0, 64).Select(i => new MemoryRequest(0x200000 + (ulong)i * Support.PageSize, new byte[Support.PageSize])).ToArray();
        memory.Read(requests);
        memory.Read(requests);
        Assert.That(requests.All(r => r.Succeeded), Is.True);
        Assert.That(FakeLeechCore.GetStats().ReadScatterCalls, Is.EqualTo(2UL));
    }

    [Test]
    public void A_page_the_device_cannot_read_fails_its_request_alone()
    {
        FakeLeechCore.FailPage(0x5000);
        using var memory = Support.OpenLeechCore(Support.RawDevice);
        var requests = new[]
        {
            new MemoryRequest(0x4000, new byte[Support.PageSize]),
            new MemoryRequest(0x4ff0, new byte[32]),
            new MemoryRequest(0x5123, new byte[3]),
            new MemoryRequest(0x6000, new byte[Support.PageSize]),
        };
        memory.Read(requests);
        Assert.That(requests.Select(r => r.Succeeded), Is.EqualTo(new[] { true, false, false, true }));
        Assert.That(requests[3].Buffer.ToArray(), Is.EqualTo(Support.Expected(0x6000, Support.PageSize)));
    }

    [Test]
    public void With_zero_padding_an_unreadable_page_reads_as_zeros()
    {
        FakeLeechCore.FailPage(0x5000);
        using var memory = Support.OpenLeechCore(Support.RawDevice);
        var bytes = Support.Read(memory, 0x4ff0, 0x1020, MemoryFlags.ZeroPadOnFail);
        Assert.That(bytes, Is.Not.Null);
        Assert.Multiple(() =>
        {
            Assert.That(bytes![..16], Is.EqualTo(Support.Expected(0x4ff0, 16)));
            Assert.That(bytes[16..(16 + 0x1000)].All(b => b == 0), Is.True);
            Assert.That(bytes[^16..], Is.EqualTo(Support.Expected(0x6000, 16)));
        });
    }

    [Test]
    public void Addresses_outside_the_map_fail_without_asking_the_device()
    {
        using var memory = Support.OpenLeechCore(Support.RawDevice);
        var requests = new[]
        {
            new MemoryRequest(128UL << 20, new byte[8]),
            new MemoryRequest((128UL << 20) - 8, new byte[16]),
            new MemoryRequest(ulong.MaxValue - 3, new byte[8]),
            new MemoryRequest(0x1000, Memory<byte>.Empty),
        };
        memory.Read(requests);
        Assert.That(requests.Select(r => r.Succeeded), Is.EqualTo(new[] { false, false, false, true }));
        Assert.That(FakeLeechCore.GetStats().EntriesRead, Is.LessThanOrEqualTo(1UL), "only the mapped half of the straddling request may reach the device");

        var padded = Support.Read(memory, (128UL << 20) - 8, 16, MemoryFlags.ZeroPadOnFail);
        Assert.That(padded, Is.EqualTo(Support.Expected((128UL << 20) - 8, 8).Concat(new byte[8])));
    }

    [Test]
    public void Reads_from_many_threads_each_get_their_own_bytes()
    {
        using var memory = Support.OpenLeechCore(Support.RawDevice);
        var image = Support.RawImage;
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, thread =>
        {
            var random = new Random(thread);
            for (int round = 0; round < 40; round++)
            {
                var requests = new MemoryRequest[100];
                for (int i = 0; i < requests.Length; i++)
                {
                    ulong address = (ulong)random.NextInt64(0, image.Length - 9000);
                    requests[i] = new MemoryRequest(address, new byte[random.Next(1, 9000)]);
                }
                memory.Read(requests);
                foreach (var r in requests)
                {
                    if (!r.Succeeded || !r.Buffer.Span.SequenceEqual(image.AsSpan((int)r.Address, r.Buffer.Length)))
                        failures.Add($"thread {thread}: 0x{r.Address:x}+{r.Buffer.Length}");
                }
            }
        });
        Assert.That(failures, Is.Empty);
    }

    [Test]
    public void Disposing_closes_the_handle_once_and_later_reads_are_refused()
    {
        var memory = Support.OpenLeechCore(Support.RawDevice);
        Assert.That(FakeLeechCore.OpenDevices, Is.EqualTo(1));
        memory.Dispose();
        memory.Dispose();
        Assert.That(FakeLeechCore.OpenDevices, Is.Zero);
        Assert.That(() => Support.Read(memory, 0, 8), Throws.TypeOf<ObjectDisposedException>());
    }

    [Test]
    public void One_batch_of_the_whole_image_equals_the_file()
    {
        using var leechcore = Support.OpenLeechCore(Support.RawDevice);
        var bytes = new byte[128 << 20];
        var requests = new MemoryRequest[128];
        for (int i = 0; i < requests.Length; i++)
            requests[i] = new MemoryRequest((ulong)i << 20, bytes.AsMemory(i << 20, 1 << 20));
        leechcore.Read(requests);
        Assert.That(requests.All(r => r.Succeeded), Is.True);
        Assert.That(bytes.AsSpan().SequenceEqual(File.ReadAllBytes(TestInputs.LinuxRawImage)), Is.True);
    }
}
