using System.Buffers.Binary;
using Introspect.Abi;

namespace Introspect.TestSupport;

/// <summary>A real physical memory with some bytes changed, pages made unreadable, or the connector's hints replaced:
/// damaged memory made from a real one.</summary>
public sealed class PatchedMemory(IPhysicalMemory inner) : IPhysicalMemory, IConnectorHints
{
    private readonly List<(ulong Address, byte[] Bytes)> _patches = [];
    private readonly HashSet<ulong> _unreadable = [];

    /// <summary>How many reads the memory served (each request counts).</summary>
    public long Requests { get; private set; }

    public ConnectorHints Hints { get; set; } = inner is IConnectorHints hints ? hints.Hints : ConnectorHints.None;

    public PhysicalMemoryMetadata Metadata => inner.Metadata;

    public MemoryMap MemoryMap => inner.MemoryMap;

    public void SetMemoryMap(MemoryMap map) => inner.SetMemoryMap(map);

    public void Patch(ulong address, ReadOnlySpan<byte> bytes) => _patches.Add((address, bytes.ToArray()));

    public void PatchUInt64(ulong address, ulong value)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        Patch(address, bytes);
    }

    public void PatchUInt32(ulong address, uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        Patch(address, bytes);
    }

    public void MakeUnreadable(ulong address) => _unreadable.Add(address & ~0xfffUL);

    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        Requests += batch.Length;
        inner.Read(batch, flags);
        foreach (ref var request in batch)
        {
            ulong start = request.Address;
            ulong length = (ulong)request.Buffer.Length;
            if (length == 0)
                continue;
            foreach (ulong page in _unreadable)
            {
                if (page + 4096 > start && page < start + length)
                {
                    if ((flags & MemoryFlags.ZeroPadOnFail) != 0)
                    {
                        ulong from = Math.Max(page, start), to = Math.Min(page + 4096, start + length);
                        request.Buffer.Span.Slice((int)(from - start), (int)(to - from)).Clear();
                    }
                    else
                    {
                        request.Succeeded = false;
                    }
                }
            }
            if (!request.Succeeded)
                continue;
            foreach (var (address, bytes) in _patches)
            {
                ulong from = Math.Max(address, start), to = Math.Min(address + (ulong)bytes.Length, start + length);
                if (from < to)
                    bytes.AsSpan((int)(from - address), (int)(to - from)).CopyTo(request.Buffer.Span[(int)(from - start)..]);
            }
        }
    }

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => throw new NotSupportedException("read-only");

    public void Dispose() => inner.Dispose();
}
