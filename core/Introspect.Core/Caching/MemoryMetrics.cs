namespace Introspect.Core.Caching;

/// <summary>Counters of memory traffic, shared by the layers that report into it (thread-safe).</summary>
/// <remarks>
/// A <see cref="MeteredMemory"/> counts batches, requests and bytes; a <see cref="PageCache"/> and a
/// <see cref="TranslationCache"/> given the same object count their hits and misses into it, so one snapshot
/// shows a whole stack.
/// </remarks>
public sealed class MemoryMetrics
{
    private long _reads;
    private long _writes;
    private long _requestsRead;
    private long _requestsWritten;
    private long _bytesRead;
    private long _bytesWritten;
    private long _failedRequests;
    private long _cacheHits;
    private long _cacheMisses;
    private long _tlbHits;
    private long _tlbMisses;

    /// <summary>Read batches.</summary>
    public long Reads => Volatile.Read(ref _reads);

    /// <summary>Write batches.</summary>
    public long Writes => Volatile.Read(ref _writes);

    /// <summary>Entries of the read batches.</summary>
    public long RequestsRead => Volatile.Read(ref _requestsRead);

    /// <summary>Entries of the write batches.</summary>
    public long RequestsWritten => Volatile.Read(ref _requestsWritten);

    /// <summary>Bytes of the read entries that succeeded.</summary>
    public long BytesRead => Volatile.Read(ref _bytesRead);

    /// <summary>Bytes of the write entries that succeeded.</summary>
    public long BytesWritten => Volatile.Read(ref _bytesWritten);

    /// <summary>Read or write entries that failed.</summary>
    public long FailedRequests => Volatile.Read(ref _failedRequests);

    /// <summary>Pages a page cache answered.</summary>
    public long CacheHits => Volatile.Read(ref _cacheHits);

    /// <summary>Pages a page cache had to fetch (or could not answer under <c>ForceCache</c>).</summary>
    public long CacheMisses => Volatile.Read(ref _cacheMisses);

    /// <summary>Translations a TLB answered.</summary>
    public long TlbHits => Volatile.Read(ref _tlbHits);

    /// <summary>Translations a TLB did not hold.</summary>
    public long TlbMisses => Volatile.Read(ref _tlbMisses);

    /// <summary>All counters at one moment (each read atomically; the set is not one transaction).</summary>
    public MemoryMetricsSnapshot Snapshot() => new(
        Reads, Writes, RequestsRead, RequestsWritten, BytesRead, BytesWritten,
        FailedRequests, CacheHits, CacheMisses, TlbHits, TlbMisses);

    /// <summary>Sets every counter to zero.</summary>
    public void Reset()
    {
        Interlocked.Exchange(ref _reads, 0);
        Interlocked.Exchange(ref _writes, 0);
        Interlocked.Exchange(ref _requestsRead, 0);
        Interlocked.Exchange(ref _requestsWritten, 0);
        Interlocked.Exchange(ref _bytesRead, 0);
        Interlocked.Exchange(ref _bytesWritten, 0);
        Interlocked.Exchange(ref _failedRequests, 0);
        Interlocked.Exchange(ref _cacheHits, 0);
        Interlocked.Exchange(ref _cacheMisses, 0);
        Interlocked.Exchange(ref _tlbHits, 0);
        Interlocked.Exchange(ref _tlbMisses, 0);
    }

    internal void AddRead(long requests, long bytes, long failed)
    {
        Interlocked.Increment(ref _reads);
        Interlocked.Add(ref _requestsRead, requests);
        Interlocked.Add(ref _bytesRead, bytes);
        if (failed != 0)
            Interlocked.Add(ref _failedRequests, failed);
    }

    internal void AddWrite(long requests, long bytes, long failed)
    {
        Interlocked.Increment(ref _writes);
        Interlocked.Add(ref _requestsWritten, requests);
        Interlocked.Add(ref _bytesWritten, bytes);
        if (failed != 0)
            Interlocked.Add(ref _failedRequests, failed);
    }

    internal void AddCache(long hits, long misses)
    {
        if (hits != 0)
            Interlocked.Add(ref _cacheHits, hits);
        if (misses != 0)
            Interlocked.Add(ref _cacheMisses, misses);
    }

    internal void AddTlb(long hits, long misses)
    {
        if (hits != 0)
            Interlocked.Add(ref _tlbHits, hits);
        if (misses != 0)
            Interlocked.Add(ref _tlbMisses, misses);
    }
}

/// <summary>The counters of a <see cref="MemoryMetrics"/> at one moment.</summary>
public readonly record struct MemoryMetricsSnapshot(
    long Reads,
    long Writes,
    long RequestsRead,
    long RequestsWritten,
    long BytesRead,
    long BytesWritten,
    long FailedRequests,
    long CacheHits,
    long CacheMisses,
    long TlbHits,
    long TlbMisses)
{
    /// <summary>The traffic between two snapshots (<paramref name="later"/> minus <paramref name="earlier"/>).</summary>
    public static MemoryMetricsSnapshot operator -(MemoryMetricsSnapshot later, MemoryMetricsSnapshot earlier) => new(
        later.Reads - earlier.Reads,
        later.Writes - earlier.Writes,
        later.RequestsRead - earlier.RequestsRead,
        later.RequestsWritten - earlier.RequestsWritten,
        later.BytesRead - earlier.BytesRead,
        later.BytesWritten - earlier.BytesWritten,
        later.FailedRequests - earlier.FailedRequests,
        later.CacheHits - earlier.CacheHits,
        later.CacheMisses - earlier.CacheMisses,
        later.TlbHits - earlier.TlbHits,
        later.TlbMisses - earlier.TlbMisses);
}
