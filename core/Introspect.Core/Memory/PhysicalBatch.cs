using Introspect.Abi;

namespace Introspect.Core.Memory;

/// <summary>Hands batches to a memory in the sizes it asks for.</summary>
internal static class PhysicalBatch
{
    /// <summary>The size of the pages every supported architecture maps at the least, and the unit caches and splits use.</summary>
    public const int PageSize = 4096;

    public const ulong PageMask = PageSize - 1;

    /// <summary>Reads <paramref name="batch"/>, cut into chunks of the physical memory's ideal batch size.</summary>
    /// <remarks>
    /// Only an <see cref="IPhysicalMemory"/> states an ideal size; any other memory (a virtual address space,
    /// which does its own batching) gets the batch whole.
    /// </remarks>
    public static void Read(IMemory memory, Span<MemoryRequest> batch, MemoryFlags flags)
    {
        if (batch.IsEmpty)
            return;
        int chunk = IdealChunk(memory);
        if (batch.Length <= chunk)
        {
            memory.Read(batch, flags);
            return;
        }
        for (int start = 0; start < batch.Length; start += chunk)
            memory.Read(batch.Slice(start, Math.Min(chunk, batch.Length - start)), flags);
    }

    /// <summary>Writes <paramref name="batch"/>, cut like <see cref="Read"/>.</summary>
    public static void Write(IMemory memory, Span<MemoryRequest> batch, MemoryFlags flags)
    {
        if (batch.IsEmpty)
            return;
        int chunk = IdealChunk(memory);
        if (batch.Length <= chunk)
        {
            memory.Write(batch, flags);
            return;
        }
        for (int start = 0; start < batch.Length; start += chunk)
            memory.Write(batch.Slice(start, Math.Min(chunk, batch.Length - start)), flags);
    }

    private static int IdealChunk(IMemory memory) =>
        memory is IPhysicalMemory physical && physical.Metadata.IdealBatchSize > 0
            ? physical.Metadata.IdealBatchSize
            : int.MaxValue;

    /// <summary>Whether <paramref name="length"/> bytes from <paramref name="address"/> stay below 2^64; written so it cannot overflow.</summary>
    public static bool FitsInAddressSpace(ulong address, int length) =>
        length <= 0 || (ulong)(length - 1) <= ulong.MaxValue - address;

    /// <summary>How many 4 KiB pages <paramref name="length"/> bytes from <paramref name="address"/> touch (length must fit).</summary>
    public static long PageCount(ulong address, int length) =>
        length <= 0 ? 0 : (long)(((address & PageMask) + (ulong)length + PageMask) >> 12);

    /// <summary>Fills <paramref name="requests"/> with one request per page that <paramref name="buffer"/> at <paramref name="address"/> touches.</summary>
    /// <remarks>The buffer must fit below 2^64 and <paramref name="requests"/> hold <see cref="PageCount"/> entries.</remarks>
    public static void SplitByPage(ulong address, Memory<byte> buffer, Span<MemoryRequest> requests)
    {
        ulong at = address;
        for (int done = 0, i = 0; done < buffer.Length; i++)
        {
            int step = Math.Min(buffer.Length - done, PageSize - (int)(at & PageMask));
            requests[i] = new MemoryRequest(at, buffer.Slice(done, step));
            done += step;
            at = unchecked(at + (ulong)step); // the last step may end exactly at 2^64
        }
    }

    /// <summary>How many bytes the requests moved contiguously from the first: a transfer counts up to its first failed page.</summary>
    public static int SucceededPrefix(ReadOnlySpan<MemoryRequest> batch)
    {
        int prefix = 0;
        foreach (ref readonly var piece in batch)
        {
            if (!piece.Succeeded)
                break;
            prefix += piece.Buffer.Length;
        }
        return prefix;
    }
}
