using Introspect.Abi;

namespace Introspect.Yara.Tests;

/// <summary>Physical memory over a byte array (address N is byte N), with pages that fail to read.</summary>
internal sealed class BytesMemory(byte[] bytes) : IPhysicalMemory
{
    public HashSet<ulong> Unreadable { get; } = [];

    public PhysicalMemoryMetadata Metadata => new((ulong)bytes.Length - 1, (ulong)bytes.Length, true, 64);

    public MemoryMap MemoryMap { get; private set; } = MemoryMap.Linear((ulong)bytes.Length);

    public void SetMemoryMap(MemoryMap map) => MemoryMap = map;

    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        foreach (ref var request in batch)
        {
            request.Succeeded = Readable(request.Address, request.Buffer.Length);
            if (request.Succeeded)
                bytes.AsSpan((int)request.Address, request.Buffer.Length).CopyTo(request.Buffer.Span);
        }
    }

    private bool Readable(ulong address, int length)
    {
        if (address > (ulong)bytes.Length || (ulong)length > (ulong)bytes.Length - address)
            return false;
        for (ulong page = address & ~0xfffUL; page < address + (ulong)length; page += 0x1000)
        {
            if (Unreadable.Contains(page))
                return false;
        }
        return true;
    }

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => throw new NotSupportedException("read-only");

    public void Dispose() { }
}
