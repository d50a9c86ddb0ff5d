using Introspect.Abi;
using Introspect.Core.Caching;
using Introspect.Core.Tests.Memory;

namespace Introspect.Core.Tests.Caching;

public sealed class MeteredMemoryTests
{
    [Test]
    public void Reads_and_writes_are_counted()
    {
        var inner = new ArrayPhysicalMemory(0x10000);
        inner.MakeUnreadable(0x3000);
        var metrics = new MemoryMetrics();
        using var metered = new MeteredMemory(inner, metrics);
        var batch = new[]
        {
            new MemoryRequest(0x1000, new byte[0x100]),
            new MemoryRequest(0x2000, new byte[0x20]),
            new MemoryRequest(0x3000, new byte[0x10]),
        };
        metered.Read(batch);
        metered.Write(batch.AsSpan(0, 1));
        var before = metrics.Snapshot();
        metered.Read(batch.AsSpan(0, 1));

        Assert.That(before, Is.EqualTo(new MemoryMetricsSnapshot(
            Reads: 1, Writes: 1, RequestsRead: 3, RequestsWritten: 1, BytesRead: 0x120, BytesWritten: 0x100,
            FailedRequests: 1, CacheHits: 0, CacheMisses: 0, TlbHits: 0, TlbMisses: 0)));
        Assert.That(metrics.Snapshot() - before, Is.EqualTo(new MemoryMetricsSnapshot(1, 0, 1, 0, 0x100, 0, 0, 0, 0, 0, 0)));
    }

    [Test]
    public void Everything_else_passes_through()
    {
        var inner = new ArrayPhysicalMemory(0x10000) { Hints = new ConnectorHints { Format = "raw" } };
        var metered = new MeteredMemory(inner, new MemoryMetrics());
        Assert.That(metered.Hints.Format, Is.EqualTo("raw"));
        Assert.That(metered.Metadata, Is.EqualTo(inner.Metadata));
        Assert.That(metered.MemoryMap, Is.SameAs(inner.MemoryMap));
        metered.Dispose();
        Assert.That(inner.Disposed, Is.True);
    }
}
