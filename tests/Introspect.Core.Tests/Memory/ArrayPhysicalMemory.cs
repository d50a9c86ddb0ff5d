using Introspect.Abi;

namespace Introspect.Core.Tests.Memory;

/// <summary>Physical memory over a byte array for tests: address N is byte N; it counts what it is asked.</summary>
/// <remarks>It never zero-pads, so the layers above are seen handling failures themselves.</remarks>
internal sealed class ArrayPhysicalMemory : IPhysicalMemory, IConnectorHints
{
    private readonly HashSet<ulong> _unreadablePages = [];
    private long _readCalls;
    private long _writeCalls;
    private long _requestsRead;
    private long _bytesRequested;

    public ArrayPhysicalMemory(int size, int idealBatchSize = 1 << 20) : this(new byte[size], idealBatchSize) { }

    public ArrayPhysicalMemory(byte[] bytes, int idealBatchSize = 1 << 20)
    {
        Bytes = bytes;
        IdealBatchSize = idealBatchSize;
        MemoryMap = MemoryMap.Linear((ulong)bytes.Length);
    }

    public byte[] Bytes { get; }

    public int IdealBatchSize { get; set; }

    public bool ReadOnly { get; set; }

    public bool Disposed { get; private set; }

    /// <summary>Whether batch sizes and addresses are recorded (which allocates, so allocation tests turn it off).</summary>
    public bool Recording { get; set; } = true;

    public ConnectorHints Hints { get; set; } = ConnectorHints.None;

    public long ReadCalls => Interlocked.Read(ref _readCalls);

    public long WriteCalls => Interlocked.Read(ref _writeCalls);

    public long RequestsRead => Interlocked.Read(ref _requestsRead);

    public long BytesRequested => Interlocked.Read(ref _bytesRequested);

    /// <summary>The sizes of the read batches, in order (under a lock: tests read from several threads).</summary>
    public List<int> BatchSizes { get; } = [];

    /// <summary>Every read request's address, in order.</summary>
    public List<ulong> RequestedAddresses { get; } = [];

    public PhysicalMemoryMetadata Metadata => new((ulong)Bytes.Length - 1, (ulong)Bytes.Length, ReadOnly, IdealBatchSize);

    public MemoryMap MemoryMap { get; private set; }

    public void SetMemoryMap(MemoryMap map) => MemoryMap = map;

    public void MakeUnreadable(ulong address) => _unreadablePages.Add(address & ~0xFFFUL);

    public void ResetCounters()
    {
        Interlocked.Exchange(ref _readCalls, 0);
        Interlocked.Exchange(ref _writeCalls, 0);
        Interlocked.Exchange(ref _requestsRead, 0);
        Interlocked.Exchange(ref _bytesRequested, 0);
        lock (BatchSizes)
        {
            BatchSizes.Clear();
            RequestedAddresses.Clear();
        }
    }

    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        Interlocked.Increment(ref _readCalls);
        Interlocked.Add(ref _requestsRead, batch.Length);
        if (Recording)
        {
            lock (BatchSizes)
            {
                BatchSizes.Add(batch.Length);
                foreach (var request in batch)
                    RequestedAddresses.Add(request.Address);
            }
        }
        foreach (ref var request in batch)
        {
            Interlocked.Add(ref _bytesRequested, request.Buffer.Length);
            request.Succeeded = Readable(request.Address, request.Buffer.Length);
            if (request.Succeeded)
                Bytes.AsSpan((int)request.Address, request.Buffer.Length).CopyTo(request.Buffer.Span);
        }
    }

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        if (ReadOnly)
            throw new NotSupportedException("This test memory is read-only.");
        Interlocked.Increment(ref _writeCalls);
        foreach (ref var request in batch)
        {
            request.Succeeded = Readable(request.Address, request.Buffer.Length);
            if (request.Succeeded)
                request.Buffer.Span.CopyTo(Bytes.AsSpan((int)request.Address));
        }
    }

    public void Dispose() => Disposed = true;

    private bool Readable(ulong address, int length)
    {
        if (length == 0)
            return true;
        if (address >= (ulong)Bytes.Length || (ulong)length > (ulong)Bytes.Length - address)
            return false;
        if (!MemoryMap.TryTranslate(address, out _, out ulong contiguous) || contiguous < (ulong)length)
            return false;
        for (ulong page = address & ~0xFFFUL; page < address + (ulong)length; page += 0x1000)
        {
            if (_unreadablePages.Contains(page))
                return false;
        }
        return true;
    }
}
