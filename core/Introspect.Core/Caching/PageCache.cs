using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using Introspect.Abi;
using Introspect.Core.Memory;

namespace Introspect.Core.Caching;

/// <summary>Physical memory middleware that keeps recently read 4 KiB pages (MemProcFS's physical page cache).</summary>
/// <remarks>
/// <para>
/// Keyed by page frame, bounded to <see cref="Capacity"/> pages (CLOCK eviction, in independent shards so that
/// readers on many threads seldom meet), safe to read from many threads. Only whole pages that the inner memory
/// read successfully are kept; a request for part of a page, or one crossing pages, is served from the cached
/// pages and fetches whole pages for what is missing.
/// </para>
/// <para>
/// <see cref="MemoryFlags.NoCache"/> bypasses the cache both ways (neither answered from it nor filled);
/// <see cref="MemoryFlags.ForceCache"/> answers only from it and never calls the inner memory. Writes go through
/// and drop the pages they touch. <see cref="MemoryFlags.ZeroPadOnFail"/> zero-fills what failed without ever
/// caching those zeros.
/// </para>
/// <para>
/// Metadata, the memory map and the inner memory's <see cref="IConnectorHints"/> pass through
/// (<see cref="ConnectorHints.None"/> when it has none). Disposing the cache disposes the inner memory.
/// </para>
/// </remarks>
public sealed class PageCache : IPhysicalMemory, IConnectorHints
{
    private const int PageSize = PhysicalBatch.PageSize;
    private const ulong PageMask = PhysicalBatch.PageMask;

    /// <summary>The most pages one fetch from the inner memory asks for (16 MiB of scratch).</summary>
    private const int MaxFetchPages = 4096;

    private readonly IPhysicalMemory _inner;
    private readonly CacheValidity _validity;
    private readonly MemoryMetrics? _metrics;
    private readonly Shard[] _shards;
    private readonly int _shardMask;
    private long _hits;
    private long _misses;
    private int _disposed;

    /// <param name="inner">The memory to cache.</param>
    /// <param name="capacityPages">How many pages the cache holds at most (at least 1).</param>
    /// <param name="validity">How long a cached page may be used.</param>
    /// <param name="metrics">Where to count hits and misses, if anywhere.</param>
    public PageCache(IPhysicalMemory inner, int capacityPages, CacheValidity validity, MemoryMetrics? metrics = null)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(validity);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacityPages, 1);
        _inner = inner;
        _validity = validity;
        _metrics = metrics;
        Capacity = capacityPages;

        // Up to 16 shards, but never so many that a shard would hold fewer than 16 pages.
        int shardCount = 1;
        while (shardCount < 16 && capacityPages / (shardCount * 2) >= 16)
            shardCount *= 2;
        _shards = new Shard[shardCount];
        _shardMask = shardCount - 1;
        int perShard = capacityPages / shardCount, extra = capacityPages % shardCount;
        for (int i = 0; i < shardCount; i++)
            _shards[i] = new Shard(perShard + (i < extra ? 1 : 0));
    }

    /// <summary>The memory this cache reads from.</summary>
    public IPhysicalMemory Inner => _inner;

    /// <summary>The most pages the cache holds.</summary>
    public int Capacity { get; }

    /// <summary>How many pages the cache holds now (some may have expired).</summary>
    public int Count
    {
        get
        {
            int count = 0;
            foreach (var shard in _shards)
                count += shard.Count;
            return count;
        }
    }

    public CacheValidity Validity => _validity;

    /// <summary>Page pieces answered from the cache since it was made.</summary>
    public long Hits => Volatile.Read(ref _hits);

    /// <summary>Page pieces the cache did not hold.</summary>
    public long Misses => Volatile.Read(ref _misses);

    public PhysicalMemoryMetadata Metadata => _inner.Metadata;

    public MemoryMap MemoryMap => _inner.MemoryMap;

    public ConnectorHints Hints => _inner is IConnectorHints hints ? hints.Hints : ConnectorHints.None;

    /// <summary>Replaces the inner memory's map and empties the cache, since pages outside the new map must stop reading.</summary>
    public void SetMemoryMap(MemoryMap map)
    {
        _inner.SetMemoryMap(map);
        Clear();
    }

    /// <summary>Drops every cached page.</summary>
    public void Clear()
    {
        foreach (var shard in _shards)
            shard.Clear();
    }

    /// <summary>Drops the cached pages that hold any of <paramref name="length"/> bytes from <paramref name="address"/>.</summary>
    public void Invalidate(ulong address, ulong length)
    {
        if (length == 0)
            return;
        ulong last = length - 1 > ulong.MaxValue - address ? ulong.MaxValue : address + (length - 1);
        ulong lastPage = last & ~PageMask;
        for (ulong page = address & ~PageMask; ; page += PageSize)
        {
            ShardOf(page).Remove(page);
            if (page == lastPage)
                break;
        }
    }

    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        if ((flags & MemoryFlags.NoCache) != 0)
        {
            _inner.Read(batch, flags);
            return;
        }

        bool force = (flags & MemoryFlags.ForceCache) != 0;
        bool zeroPad = (flags & MemoryFlags.ZeroPadOnFail) != 0;
        long hits = 0, misses = 0;
        Piece[]? pending = null;
        int pendingCount = 0;
        try
        {
            // Pass 1: answer every page piece the cache holds; note the rest.
            for (int i = 0; i < batch.Length; i++)
            {
                ref var request = ref batch[i];
                var buffer = request.Buffer.Span;
                request.Succeeded = true;
                if (buffer.IsEmpty)
                    continue;
                if (!PhysicalBatch.FitsInAddressSpace(request.Address, buffer.Length))
                {
                    request.Succeeded = false;
                    continue;
                }
                ulong address = request.Address;
                for (int done = 0; done < buffer.Length;)
                {
                    ulong page = address & ~PageMask;
                    int offset = (int)(address & PageMask);
                    int length = Math.Min(buffer.Length - done, PageSize - offset);
                    var destination = buffer.Slice(done, length);
                    if (ShardOf(page).TryCopy(page, offset, destination, _validity))
                    {
                        hits++;
                    }
                    else
                    {
                        misses++;
                        if (force)
                        {
                            if (zeroPad)
                                destination.Clear();
                            else
                                request.Succeeded = false;
                        }
                        else
                        {
                            if (pending is null || pendingCount == pending.Length)
                                Grow(ref pending, pendingCount);
                            pending[pendingCount++] = new Piece(page, i, done, offset, length);
                        }
                    }
                    done += length;
                    address = unchecked(address + (ulong)length); // the last piece may end exactly at 2^64
                }
            }

            if (pendingCount > 0)
                Fetch(batch, pending!.AsSpan(0, pendingCount), flags, zeroPad);
        }
        finally
        {
            if (pending is not null)
                ArrayPool<Piece>.Shared.Return(pending);
            if (hits != 0)
                Interlocked.Add(ref _hits, hits);
            if (misses != 0)
                Interlocked.Add(ref _misses, misses);
            _metrics?.AddCache(hits, misses);
        }
    }

    /// <summary>Reads the missing pages whole from the inner memory in one batch, keeps those that read, and serves the pieces.</summary>
    /// <remarks>A request for more than <see cref="MaxFetchPages"/> missing pages is fetched in several batches, so the
    /// scratch space stays bounded.</remarks>
    private void Fetch(Span<MemoryRequest> batch, Span<Piece> pieces, MemoryFlags flags, bool zeroPad)
    {
        // Sorted by page, equal pages are neighbours: each distinct page is fetched once.
        pieces.Sort(static (a, b) => a.Page.CompareTo(b.Page));
        int unique = 1;
        for (int i = 1; i < pieces.Length; i++)
        {
            if (pieces[i].Page != pieces[i - 1].Page)
                unique++;
        }

        int capacity = Math.Min(unique, MaxFetchPages);
        var requests = ArrayPool<MemoryRequest>.Shared.Rent(capacity);
        var scratch = ArrayPool<byte>.Shared.Rent(capacity * PageSize);
        try
        {
            for (int start = 0; start < pieces.Length;)
            {
                int u = -1, end = start;
                for (; end < pieces.Length; end++)
                {
                    if (end == start || pieces[end].Page != pieces[end - 1].Page)
                    {
                        if (u + 1 == capacity)
                            break;
                        u++;
                        requests[u] = new MemoryRequest(pieces[end].Page, scratch.AsMemory(u * PageSize, PageSize));
                    }
                    pieces[end].Slot = u;
                }

                var fetch = requests.AsSpan(0, u + 1);
                // The stamp is taken before the read, so a page is never judged fresher than its bytes.
                long stamp = _validity.Stamp();
                // ZeroPadOnFail is ours to apply: an inner memory that zero-padded would make zeros look cacheable.
                PhysicalBatch.Read(_inner, fetch, flags & ~MemoryFlags.ZeroPadOnFail);
                for (int k = 0; k < fetch.Length; k++)
                {
                    if (fetch[k].Succeeded)
                        ShardOf(fetch[k].Address).Store(fetch[k].Address, scratch.AsSpan(k * PageSize, PageSize), stamp);
                }

                foreach (ref readonly var piece in pieces[start..end])
                {
                    ref var request = ref batch[piece.Request];
                    var destination = request.Buffer.Span.Slice(piece.BufferOffset, piece.Length);
                    if (fetch[piece.Slot].Succeeded)
                        scratch.AsSpan(piece.Slot * PageSize + piece.PageOffset, piece.Length).CopyTo(destination);
                    else if (zeroPad)
                        destination.Clear();
                    else
                        request.Succeeded = false;
                }
                start = end;
            }
        }
        finally
        {
            requests.AsSpan(0, capacity).Clear();
            ArrayPool<MemoryRequest>.Shared.Return(requests);
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        try
        {
            _inner.Write(batch, flags);
        }
        finally
        {
            // Whatever the outcome, the cached copies of these pages may no longer match the memory.
            foreach (ref readonly var request in batch)
                Invalidate(request.Address, (ulong)request.Buffer.Length);
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            Clear();
            _inner.Dispose();
        }
    }

    private Shard ShardOf(ulong page) => _shards[(int)((page >> 12) & (uint)_shardMask)];

    private static void Grow([NotNull] ref Piece[]? pieces, int count)
    {
        var larger = ArrayPool<Piece>.Shared.Rent(Math.Max(16, count * 2));
        if (pieces is not null)
        {
            pieces.AsSpan(0, count).CopyTo(larger);
            ArrayPool<Piece>.Shared.Return(pieces);
        }
        pieces = larger;
    }

    private struct Piece(ulong page, int request, int bufferOffset, int pageOffset, int length)
    {
        public readonly ulong Page = page;
        public readonly int Request = request;
        public readonly int BufferOffset = bufferOffset;
        public readonly int PageOffset = pageOffset;
        public readonly int Length = length;
        public int Slot;
    }

    /// <summary>One independent part of the cache: its own lock, index, slots and CLOCK hand.</summary>
    private sealed class Shard
    {
        // Page contents live in segments allocated as slots are first used, so a large, little-used cache costs little.
        private const int SegmentShift = 6;
        private const int SegmentPages = 1 << SegmentShift;
        private const ulong EmptySlot = ulong.MaxValue; // never a page address: pages are 4 KiB aligned

        private readonly Lock _lock = new();
        private readonly Dictionary<ulong, int> _index;
        private readonly ulong[] _pages;
        private readonly long[] _stamps;
        private readonly bool[] _referenced;
        private readonly byte[]?[] _segments;
        private readonly int[] _free;
        private readonly int _capacity;
        private int _freeCount;
        private int _used;
        private int _hand;

        public Shard(int capacity)
        {
            _capacity = capacity;
            _index = new Dictionary<ulong, int>(capacity);
            _pages = new ulong[capacity];
            _pages.AsSpan().Fill(EmptySlot);
            _stamps = new long[capacity];
            _referenced = new bool[capacity];
            _segments = new byte[]?[(capacity + SegmentPages - 1) >> SegmentShift];
            _free = new int[capacity];
        }

        public int Count
        {
            get
            {
                lock (_lock)
                    return _index.Count;
            }
        }

        public bool TryCopy(ulong page, int offset, Span<byte> destination, CacheValidity validity)
        {
            lock (_lock)
            {
                if (!_index.TryGetValue(page, out int slot))
                    return false;
                if (!validity.IsValid(_stamps[slot]))
                {
                    Release(slot);
                    return false;
                }
                _referenced[slot] = true;
                SlotData(slot).Slice(offset, destination.Length).CopyTo(destination);
                return true;
            }
        }

        public void Store(ulong page, ReadOnlySpan<byte> data, long stamp)
        {
            lock (_lock)
            {
                if (!_index.TryGetValue(page, out int slot))
                {
                    slot = TakeSlot();
                    _index.Add(page, slot);
                    _pages[slot] = page;
                }
                _stamps[slot] = stamp;
                _referenced[slot] = false;
                data.CopyTo(SlotData(slot));
            }
        }

        public void Remove(ulong page)
        {
            lock (_lock)
            {
                if (_index.TryGetValue(page, out int slot))
                    Release(slot);
            }
        }

        public void Clear()
        {
            lock (_lock)
            {
                _index.Clear();
                _pages.AsSpan().Fill(EmptySlot);
                _referenced.AsSpan().Clear();
                _freeCount = 0;
                _used = 0;
                _hand = 0;
            }
        }

        private int TakeSlot()
        {
            if (_freeCount > 0)
                return _free[--_freeCount];
            if (_used < _capacity)
                return _used++;
            // CLOCK: pass over slots, sparing (once) those read since the hand last passed.
            // Every slot is occupied here, and a full turn clears every mark, so this ends within two turns.
            while (true)
            {
                int slot = _hand;
                _hand = _hand + 1 == _capacity ? 0 : _hand + 1;
                if (_referenced[slot])
                {
                    _referenced[slot] = false;
                    continue;
                }
                _index.Remove(_pages[slot]);
                return slot;
            }
        }

        private void Release(int slot)
        {
            _index.Remove(_pages[slot]);
            _pages[slot] = EmptySlot;
            _referenced[slot] = false;
            _free[_freeCount++] = slot;
        }

        private Span<byte> SlotData(int slot)
        {
            int segment = slot >> SegmentShift;
            var data = _segments[segment];
            if (data is null)
            {
                int pages = Math.Min(SegmentPages, _capacity - (segment << SegmentShift));
                data = _segments[segment] = GC.AllocateUninitializedArray<byte>(pages * PageSize);
            }
            return data.AsSpan((slot & (SegmentPages - 1)) * PageSize, PageSize);
        }
    }
}
