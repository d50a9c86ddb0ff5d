using Introspect.Abi;

namespace Introspect.Os.Windows.Tests;

/// <summary>Physical memory held in an array: for memory that holds no Windows at all, or one table set built by a test.</summary>
internal sealed class ByteMemory(byte[] bytes, ConnectorHints? hints = null) : IPhysicalMemory, IConnectorHints
{
    public byte[] Bytes { get; } = bytes;

    public ConnectorHints Hints { get; } = hints ?? ConnectorHints.None;

    public PhysicalMemoryMetadata Metadata => new((ulong)Bytes.Length - 1, (ulong)Bytes.Length, ReadOnly: true, IdealBatchSize: 64);

    public MemoryMap MemoryMap => MemoryMap.Linear((ulong)Bytes.Length);

    public void SetMemoryMap(MemoryMap map)
    {
    }

    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        foreach (ref var request in batch)
        {
            ulong length = (ulong)request.Buffer.Length;
            request.Succeeded = request.Address <= (ulong)Bytes.Length && length <= (ulong)Bytes.Length - request.Address;
            if (request.Succeeded)
                Bytes.AsSpan((int)request.Address, (int)length).CopyTo(request.Buffer.Span);
        }
    }

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => throw new NotSupportedException("read-only");

    public void Dispose()
    {
    }
}
