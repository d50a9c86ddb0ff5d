using System.Buffers;
using Introspect.Abi;

namespace Introspect.Core.Memory;

/// <summary>Writes a span through a batch interface, page by page when the whole does not go through.</summary>
internal static class MemoryWrites
{
    /// <returns>How many bytes were written contiguously from <paramref name="address"/>.</returns>
    public static int Write(IMemory memory, ulong address, ReadOnlySpan<byte> data, MemoryFlags flags = MemoryFlags.None)
    {
        if (data.IsEmpty)
            return 0;
        int length = data.Length;
        if (!PhysicalBatch.FitsInAddressSpace(address, length))
            length = (int)(ulong.MaxValue - address + 1);
        // Requests carry Memory<byte>; a write is rare enough that one pooled copy is the simplest way to get one.
        var copy = ArrayPool<byte>.Shared.Rent(length);
        int pages = (int)PhysicalBatch.PageCount(address, length);
        var requests = ArrayPool<MemoryRequest>.Shared.Rent(pages);
        try
        {
            data[..length].CopyTo(copy);
            var whole = new MemoryRequest(address, copy.AsMemory(0, length));
            memory.Write(new Span<MemoryRequest>(ref whole), flags);
            if (whole.Succeeded)
                return length;
            var batch = requests.AsSpan(0, pages);
            PhysicalBatch.SplitByPage(address, copy.AsMemory(0, length), batch);
            memory.Write(batch, flags);
            return PhysicalBatch.SucceededPrefix(batch);
        }
        finally
        {
            requests.AsSpan(0, pages).Clear();
            ArrayPool<MemoryRequest>.Shared.Return(requests);
            ArrayPool<byte>.Shared.Return(copy);
        }
    }
}
