using Introspect.Abi;
using Introspect.Core.Memory;
using Moq;

namespace Introspect.Core.Tests.Memory;

public sealed class MemorySearchTests
{
    private static readonly byte[] Marker = "MEMFORENSICS"u8.ToArray();
    private ArrayPhysicalMemory _memory = null!;

    [TearDown]
    public void TearDown() => _memory.Dispose();

    [SetUp]
    public void SetUp() => _memory = new ArrayPhysicalMemory(3 << 20); // three 1 MiB chunks

    private void Plant(int at) => Marker.CopyTo(_memory.Bytes, at);

    [Test]
    public void Matches_across_chunk_boundaries_are_found_exactly_once()
    {
        int[] places = [0, 0x1234, (1 << 20) - 5, (2 << 20) - 11, (2 << 20) + 1, (3 << 20) - Marker.Length];
        foreach (int at in places)
            Plant(at);
        var hits = MemorySearch.Search(_memory, BytePattern.FromBytes(Marker));
        Assert.That(hits, Is.EqualTo(places.Select(p => (ulong)p)));
    }

    [Test]
    public void Wildcards_match_any_byte()
    {
        byte[] a = [0x4d, 0x5a, 0x90, 0x00, 0x03], b = [0x4d, 0x5a, 0x00, 0x00, 0x03], c = [0x4d, 0x5a, 0x90, 0x01, 0x03];
        a.CopyTo(_memory.Bytes, 0x100);
        b.CopyTo(_memory.Bytes, 0x2000);
        c.CopyTo(_memory.Bytes, 0x3000);
        var hits = MemorySearch.Search(_memory, BytePattern.Parse("4d 5a ?? 00 03"));
        Assert.That(hits, Is.EqualTo(new ulong[] { 0x100, 0x2000 }));
    }

    [Test]
    public void Unreadable_pages_are_skipped_and_no_match_spans_one()
    {
        Plant(0x4000 - 4);   // runs into the unreadable page
        Plant(0x5000 + 8);   // inside the unreadable page
        Plant(0x6000);       // right after it
        Plant(0x10_0000 - 3); // across the chunk boundary, readable
        _memory.MakeUnreadable(0x4000);
        _memory.MakeUnreadable(0x5000);
        var hits = MemorySearch.Search(_memory, BytePattern.FromBytes(Marker));
        Assert.That(hits, Is.EqualTo(new ulong[] { 0x6000, 0x10_0000 - 3 }));
    }

    [Test]
    public void A_match_after_an_unreadable_chunk_end_is_not_joined_with_the_bytes_before_it()
    {
        // The first half of a marker ends a chunk, the next page is unreadable: nothing may be stitched together.
        Marker.AsSpan(0, 6).CopyTo(_memory.Bytes.AsSpan((1 << 20) - 6));
        Marker.AsSpan(6).CopyTo(_memory.Bytes.AsSpan(1 << 20));
        _memory.MakeUnreadable(1 << 20);
        Assert.That(MemorySearch.Search(_memory, BytePattern.FromBytes(Marker)), Is.Empty);
    }

    [Test]
    public void Ranges_are_searched_end_exclusive_and_merged_when_they_overlap()
    {
        Plant(0x1000);
        Plant(0x3000);
        var pattern = BytePattern.FromBytes(Marker);
        Assert.That(MemorySearch.Search(_memory, pattern, [(0x1000, 0x1000 + (ulong)Marker.Length)]), Is.EqualTo(new ulong[] { 0x1000 }));
        Assert.That(MemorySearch.Search(_memory, pattern, [(0x1000, 0x1000 + (ulong)Marker.Length - 1)]), Is.Empty);
        Assert.That(MemorySearch.Search(_memory, pattern, [(0x2000, 0x4000), (0x0, 0x3004), (0x5000, 0x5000)]),
            Is.EqualTo(new ulong[] { 0x1000, 0x3000 }));
    }

    [Test]
    public void The_search_stops_at_the_hit_limit()
    {
        for (int i = 0; i < 10; i++)
            Plant(i * 0x100);
        Assert.That(MemorySearch.Search(_memory, BytePattern.FromBytes(Marker), maxHits: 3), Is.EqualTo(new ulong[] { 0, 0x100, 0x200 }));
        Assert.That(MemorySearch.Search(_memory, BytePattern.Parse("?? ??"), [(0x10, 0x20)]), Has.Count.EqualTo(15));
    }

    [Test]
    public void Progress_is_reported_per_chunk_and_ends_at_the_total()
    {
        Plant(0x20);
        var reports = new List<SearchProgress>();
        var progress = new Mock<IProgress<SearchProgress>>();
        progress.Setup(p => p.Report(It.IsAny<SearchProgress>())).Callback<SearchProgress>(reports.Add);
        MemorySearch.Search(_memory, BytePattern.FromBytes(Marker), progress: progress.Object);
        Assert.That(reports, Has.Count.EqualTo(3));
        Assert.That(reports[^1], Is.EqualTo(new SearchProgress(3 << 20, 3 << 20, 1)));
    }

    [Test]
    public void Cancellation_stops_the_search()
    {
        using var cancel = new CancellationTokenSource();
        var progress = new Mock<IProgress<SearchProgress>>();
        progress.Setup(p => p.Report(It.IsAny<SearchProgress>())).Callback(cancel.Cancel);
        Assert.That(() => MemorySearch.Search(_memory, BytePattern.FromBytes(Marker), progress: progress.Object, cancel: cancel.Token),
            Throws.InstanceOf<OperationCanceledException>());
        progress.Verify(p => p.Report(It.IsAny<SearchProgress>()), Times.Once);
    }

    [Test]
    public void The_physical_overload_follows_the_memory_map()
    {
        Plant(0x1000);
        Plant(0x20_0000);
        _memory.SetMemoryMap(new MemoryMap([new MemoryRange(0x10_0000, 0x20_0000)]));
        Assert.That(MemorySearch.Search(_memory, BytePattern.FromBytes(Marker)), Is.EqualTo(new ulong[] { 0x20_0000 }));
        Assert.That(_memory.RequestedAddresses.Min(), Is.EqualTo(0x10_0000UL));
    }

    [Test]
    public void A_chunk_that_fails_whole_is_retried_page_by_page()
    {
        Plant(0x8000);
        _memory.MakeUnreadable(0x1000);
        _memory.ResetCounters();
        MemorySearch.Search(_memory, BytePattern.FromBytes(Marker), [(0, 0x10000)]);
        Assert.That(_memory.BatchSizes, Is.EqualTo(new[] { 1, 16 }));
    }
}
