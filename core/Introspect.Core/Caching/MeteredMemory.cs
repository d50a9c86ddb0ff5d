using Introspect.Abi;

namespace Introspect.Core.Caching;

/// <summary>Physical memory middleware that counts the traffic passing through it into a <see cref="MemoryMetrics"/>.</summary>
/// <remarks>
/// Everything else passes through: metadata, memory map, and the inner memory's <see cref="IConnectorHints"/>
/// (<see cref="ConnectorHints.None"/> when it has none). Disposing the wrapper disposes the inner memory.
/// </remarks>
public sealed class MeteredMemory : IPhysicalMemory, IConnectorHints
{
    private readonly IPhysicalMemory _inner;
    private int _disposed;

    public MeteredMemory(IPhysicalMemory inner, MemoryMetrics metrics)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(metrics);
        _inner = inner;
        Metrics = metrics;
    }

    /// <summary>The memory whose traffic is counted.</summary>
    public IPhysicalMemory Inner => _inner;

    public MemoryMetrics Metrics { get; }

    public PhysicalMemoryMetadata Metadata => _inner.Metadata;

    public MemoryMap MemoryMap => _inner.MemoryMap;

    public ConnectorHints Hints => _inner is IConnectorHints hints ? hints.Hints : ConnectorHints.None;

    public void SetMemoryMap(MemoryMap map) => _inner.SetMemoryMap(map);

    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        _inner.Read(batch, flags);
        Count(batch, out long bytes, out long failed);
        Metrics.AddRead(batch.Length, bytes, failed);
    }

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        _inner.Write(batch, flags);
        Count(batch, out long bytes, out long failed);
        Metrics.AddWrite(batch.Length, bytes, failed);
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
            _inner.Dispose();
    }

    private static void Count(Span<MemoryRequest> batch, out long bytes, out long failed)
    {
        bytes = 0;
        failed = 0;
        foreach (ref readonly var request in batch)
        {
            if (request.Succeeded)
                bytes += request.Buffer.Length;
            else
                failed++;
        }
    }
}
