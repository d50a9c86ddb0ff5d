using Introspect.Abi;
using Introspect.Core.Caching;
using Introspect.Core.Memory;
using Introspect.Core.Tests.Memory;

namespace Introspect.Core.Tests.Caching;

public sealed class PageCacheTests
{
    private ArrayPhysicalMemory _memory = null!;

    [TearDown]
    public void TearDown() => _memory.Dispose();

    [SetUp]
    public void SetUp()
    {
        _memory = new ArrayPhysicalMemory(1 << 20);
        Random.Shared.NextBytes(_memory.Bytes);
    }

    private byte[] Expected(int address, int length) => _memory.Bytes.AsSpan(address, length).ToArray();

    [Test]
    public void A_second_read_of_a_page_is_answered_from_the_cache()
    {
        using var cache = new PageCache(_memory, 16, CacheValidity.Forever);
        var buffer = new byte[16];
        Assert.That(cache.Read(0x1234, buffer), Is.EqualTo(16));
        Assert.That(_memory.RequestedAddresses, Is.EqualTo(new ulong[] { 0x1000 }), "the whole page was fetched");
        Assert.That(cache.Read(0x1ff0, buffer), Is.EqualTo(16));
        Assert.That(buffer, Is.EqualTo(Expected(0x1ff0, 16)));
        Assert.That(_memory.ReadCalls, Is.EqualTo(1));
        Assert.That((cache.Hits, cache.Misses), Is.EqualTo((1L, 1L)));
    }

    [Test]
    public void Requests_across_pages_take_cached_pages_and_fetch_the_rest_in_one_batch()
    {
        using var cache = new PageCache(_memory, 16, CacheValidity.Forever);
        Assert.That(cache.Read(0x2000, new byte[1]), Is.EqualTo(1));
        _memory.ResetCounters();
        var first = new byte[0x2800];
        var second = new byte[0x10];
        var batch = new[] { new MemoryRequest(0x1800, first), new MemoryRequest(0x3ff8, second) };
        cache.Read(batch);
        Assert.That(batch.All(r => r.Succeeded), Is.True);
        Assert.That(first, Is.EqualTo(Expected(0x1800, 0x2800)));
        Assert.That(second, Is.EqualTo(Expected(0x3ff8, 0x10)));
        Assert.That(_memory.BatchSizes, Is.EqualTo(new[] { 3 }), "pages 1, 3 and 4, page 3 once though two requests need it");
        Assert.That(_memory.RequestedAddresses, Is.EqualTo(new ulong[] { 0x1000, 0x3000, 0x4000 }));
    }

    [Test]
    public void NoCache_bypasses_the_cache_both_ways()
    {
        using var cache = new PageCache(_memory, 16, CacheValidity.Forever);
        var buffer = new byte[8];
        Assert.That(cache.Read(0x1000, buffer, MemoryFlags.NoCache), Is.EqualTo(8));
        Assert.That(cache.Count, Is.Zero, "not filled");
        Assert.That(cache.Read(0x1000, buffer), Is.EqualTo(8));
        _memory.Bytes[0x1000] ^= 0xff;
        Assert.That(cache.Read(0x1000, buffer, MemoryFlags.NoCache), Is.EqualTo(8));
        Assert.That(buffer[0], Is.EqualTo(_memory.Bytes[0x1000]), "not answered from the cache");
        Assert.That(_memory.ReadCalls, Is.EqualTo(3));
    }

    [Test]
    public void ForceCache_answers_only_from_the_cache()
    {
        using var cache = new PageCache(_memory, 16, CacheValidity.Forever);
        Assert.That(cache.Read(0x1000, new byte[8], MemoryFlags.ForceCache), Is.Zero);
        Assert.That(_memory.ReadCalls, Is.Zero);
        Assert.That(cache.Read(0x1000, new byte[8]), Is.EqualTo(8));
        var buffer = new byte[0x1010];
        var batch = new[] { new MemoryRequest(0x1000, buffer.AsMemory(0, 0x1000)), new MemoryRequest(0x1ff8, buffer.AsMemory(0x1000, 0x10)) };
        cache.Read(batch, MemoryFlags.ForceCache);
        Assert.That(batch.Select(r => r.Succeeded), Is.EqualTo(new[] { true, false }));
        Assert.That(_memory.ReadCalls, Is.EqualTo(1));
    }

    [Test]
    public void Failed_pages_are_not_cached_and_zero_padding_is_not_cached_either()
    {
        using var cache = new PageCache(_memory, 16, CacheValidity.Forever);
        _memory.MakeUnreadable(0x5000);
        var batch = new[] { new MemoryRequest(0x4ff0, new byte[0x20]) };
        cache.Read(batch);
        Assert.That(batch[0].Succeeded, Is.False);
        Assert.That(cache.Count, Is.EqualTo(1), "only page 4");

        var buffer = new byte[0x20];
        buffer.AsSpan().Fill(0xee);
        Assert.That(cache.Read(0x4ff0, buffer, MemoryFlags.ZeroPadOnFail), Is.EqualTo(0x20));
        Assert.That(buffer.AsSpan(0, 0x10).ToArray(), Is.EqualTo(Expected(0x4ff0, 0x10)));
        Assert.That(buffer.AsSpan(0x10).IndexOfAnyExcept((byte)0), Is.EqualTo(-1));
        Assert.That(cache.Count, Is.EqualTo(1));
    }

    [Test]
    public void The_cache_never_holds_more_than_its_capacity()
    {
        using var cache = new PageCache(_memory, 40, CacheValidity.Forever);
        for (int round = 0; round < 2; round++)
        {
            for (int page = 0; page < 200; page++)
                Assert.That(cache.Read((ulong)page * 0x1000 + 8, new byte[8]), Is.EqualTo(8));
        }
        Assert.That(cache.Count, Is.LessThanOrEqualTo(40));
        Assert.That(cache.Count, Is.GreaterThan(30), "evicted pages make room for new ones");
    }

    [Test]
    public void Pages_read_often_survive_eviction()
    {
        using var cache = new PageCache(_memory, 16, CacheValidity.Forever);
        for (int page = 0; page < 100; page++)
        {
            Assert.That(cache.Read(0, new byte[8]), Is.EqualTo(8)); // page 0 is hot
            Assert.That(cache.Read((ulong)(page + 1) * 0x1000, new byte[8]), Is.EqualTo(8));
        }
        _memory.ResetCounters();
        Assert.That(cache.Read(0, new byte[8], MemoryFlags.ForceCache), Is.EqualTo(8));
    }

    [Test]
    public void Expired_pages_are_read_again()
    {
        var clock = new ManualClock();
        using var timed = new PageCache(_memory, 16, CacheValidity.ForTime(TimeSpan.FromSeconds(1), clock));
        Assert.That(timed.Read(0x1000, new byte[8]), Is.EqualTo(8));
        clock.Advance(TimeSpan.FromMilliseconds(500));
        Assert.That(timed.Read(0x1000, new byte[8]), Is.EqualTo(8));
        Assert.That(_memory.ReadCalls, Is.EqualTo(1));
        clock.Advance(TimeSpan.FromMilliseconds(600));
        _memory.Bytes[0x1000] = 0x42;
        var buffer = new byte[1];
        Assert.That(timed.Read(0x1000, buffer), Is.EqualTo(1));
        Assert.That(buffer[0], Is.EqualTo(0x42));
        Assert.That(_memory.ReadCalls, Is.EqualTo(2));

        var generation = new CacheGeneration();
        using var generational = new PageCache(_memory, 16, CacheValidity.ForGeneration(generation));
        Assert.That(generational.Read(0x2000, new byte[8]), Is.EqualTo(8));
        Assert.That(generational.Read(0x2000, new byte[8]), Is.EqualTo(8));
        Assert.That(_memory.ReadCalls, Is.EqualTo(3));
        generation.Advance();
        Assert.That(generational.Read(0x2000, new byte[8]), Is.EqualTo(8));
        Assert.That(_memory.ReadCalls, Is.EqualTo(4));
    }

    [Test]
    public void Writes_go_through_and_drop_the_pages_they_touch()
    {
        using var cache = new PageCache(_memory, 16, CacheValidity.Forever);
        Assert.That(cache.Read(0x1000, new byte[0x2000]), Is.EqualTo(0x2000));
        var batch = new[] { new MemoryRequest(0x1ffe, new byte[] { 1, 2, 3, 4 }) };
        cache.Write(batch);
        Assert.That(batch[0].Succeeded, Is.True);
        Assert.That(_memory.Bytes.AsSpan(0x1ffe, 4).ToArray(), Is.EqualTo(new byte[] { 1, 2, 3, 4 }));
        Assert.That(cache.Count, Is.Zero);
        var buffer = new byte[4];
        Assert.That(cache.Read(0x1ffe, buffer), Is.EqualTo(4));
        Assert.That(buffer, Is.EqualTo(new byte[] { 1, 2, 3, 4 }));
    }

    [Test]
    public void Many_threads_reading_through_a_small_cache_get_the_right_bytes()
    {
        using var cache = new PageCache(_memory, 32, CacheValidity.Forever);
        int failures = 0;
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, worker =>
        {
            var random = new Random(worker);
            var buffer = new byte[300];
            for (int i = 0; i < 3000; i++)
            {
                int address = random.Next(0, (1 << 20) - buffer.Length);
                if (cache.Read((ulong)address, buffer) != buffer.Length || !buffer.AsSpan().SequenceEqual(_memory.Bytes.AsSpan(address, buffer.Length)))
                    Interlocked.Increment(ref failures);
            }
        });
        Assert.That(failures, Is.Zero);
        Assert.That(cache.Count, Is.LessThanOrEqualTo(32));
    }

    [Test]
    public void Metrics_add_up()
    {
        var metrics = new MemoryMetrics();
        using var cache = new PageCache(new MeteredMemory(_memory, metrics), 16, CacheValidity.Forever, metrics);
        Assert.That(cache.Read(0x1800, new byte[0x1000]), Is.EqualTo(0x1000)); // pages 1 and 2: two misses
        Assert.That(cache.Read(0x1000, new byte[0x10]), Is.EqualTo(0x10));     // a hit
        _memory.MakeUnreadable(0x9000);
        Assert.That(cache.Read(0x9000, new byte[0x10]), Is.Zero);             // a miss that fails
        var snapshot = metrics.Snapshot();
        Assert.That(snapshot.CacheHits, Is.EqualTo(cache.Hits).And.EqualTo(1));
        Assert.That(snapshot.CacheMisses, Is.EqualTo(cache.Misses).And.EqualTo(3));
        Assert.That(snapshot.Reads, Is.EqualTo(2), "one inner batch per read that missed");
        Assert.That(snapshot.RequestsRead, Is.EqualTo(3));
        Assert.That(snapshot.BytesRead, Is.EqualTo(0x2000));
        Assert.That(snapshot.FailedRequests, Is.EqualTo(1));
        metrics.Reset();
        Assert.That(metrics.Snapshot(), Is.EqualTo(default(MemoryMetricsSnapshot)));
    }

    [Test]
    public void Metadata_map_and_hints_pass_through_and_disposing_disposes_the_inner()
    {
        var hints = new ConnectorHints { Format = "test", DirectoryTableBase = 0x1ad000 };
        _memory.Hints = hints;
        var cache = new PageCache(_memory, 16, CacheValidity.Forever);
        Assert.That(cache.Metadata, Is.EqualTo(_memory.Metadata));
        Assert.That(cache.Hints, Is.SameAs(hints));
        Assert.That(cache.Inner, Is.SameAs(_memory));
        Assert.That(cache.Read(0x3000, new byte[8]), Is.EqualTo(8));
        cache.SetMemoryMap(new MemoryMap([new MemoryRange(0, 0x2000)]));
        Assert.That(_memory.MemoryMap.MaxAddress, Is.EqualTo(0x1fffUL));
        Assert.That(cache.Read(0x3000, new byte[8]), Is.Zero, "the cache forgot pages the new map leaves out");
        cache.Dispose();
        Assert.That(_memory.Disposed, Is.True);
    }

    [Test]
    public void Hot_reads_through_the_cache_do_not_allocate()
    {
        using var cache = new PageCache(_memory, 16, CacheValidity.Forever);
        var buffer = new byte[0x1000];
        _memory.Recording = false;
        const int Reads = 20_000;
        for (int i = 0; i < 100; i++)
            cache.Read(0x5000, buffer);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < Reads; i++)
            cache.Read(0x5000, buffer);
        // Less than a byte per read: the runtime's own one-off allocations (tiered JIT) pass, one object per read cannot.
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.LessThan(Reads));
    }

    [Test]
    public void A_read_of_more_pages_than_one_fetch_takes_is_served_whole()
    {
        using var large = new ArrayPhysicalMemory(20 << 20);
        Random.Shared.NextBytes(large.Bytes);
        using var cache = new PageCache(large, 64, CacheValidity.Forever);
        var buffer = new byte[18 << 20];
        Assert.That(cache.Read(0x800, buffer), Is.EqualTo(buffer.Length));
        Assert.That(buffer.AsSpan().SequenceEqual(large.Bytes.AsSpan(0x800, buffer.Length)), Is.True);
        Assert.That(large.BatchSizes, Is.EqualTo(new[] { 4096, 18 * 256 + 1 - 4096 }));
        Assert.That(cache.Count, Is.EqualTo(64));
    }
}
