using System.Buffers;
using Introspect.Abi;
using Introspect.Core.Memory;

namespace Introspect.Os.Linux.Kernel;

/// <summary>Looks for a byte string through physical memory, lowest address first, until told to stop.</summary>
/// <remarks>
/// Unlike a full search, the caller judges each hit as it comes and the scan stops at the first it accepts: the
/// kernel is usually found long before the end of memory. Chunks overlap by the pattern's length less one, so a
/// hit across a chunk boundary is seen once; pages that cannot be read count as zeros, which the patterns looked
/// for here never are.
/// </remarks>
internal static class PhysicalScan
{
    private const int ChunkSize = 4 << 20;

    /// <summary>The ranges to scan: the memory map, or 0 to the highest address when the map is empty.</summary>
    public static List<(ulong Start, ulong End)> RangesOf(IPhysicalMemory memory)
    {
        var ranges = new List<(ulong, ulong)>();
        foreach (var range in memory.MemoryMap)
            ranges.Add((range.Base, range.Size > ulong.MaxValue - range.Base ? ulong.MaxValue : range.Base + range.Size));
        if (ranges.Count == 0)
        {
            ulong max = memory.Metadata.MaxAddress;
            ranges.Add((0, max == ulong.MaxValue ? max : max + 1));
        }
        return ranges;
    }

    /// <summary>Calls <paramref name="accept"/> with the address of each hit, in ascending order, until it returns true.</summary>
    /// <returns>The accepted hit's address, or null when none was accepted.</returns>
    public static ulong? FindFirst(IPhysicalMemory memory, IEnumerable<(ulong Start, ulong End)> ranges, ReadOnlySpan<byte> pattern, Func<ulong, bool> accept)
    {
        var needle = pattern.ToArray();
        var buffer = ArrayPool<byte>.Shared.Rent(ChunkSize + needle.Length);
        try
        {
            foreach (var (start, end) in ranges)
            {
                for (ulong at = start; at < end;)
                {
                    int length = (int)Math.Min((ulong)(ChunkSize + needle.Length - 1), end - at);
                    var chunk = buffer.AsSpan(0, length);
                    memory.Read(at, chunk, MemoryFlags.ZeroPadOnFail | MemoryFlags.NoCache);
                    for (int offset = 0; ;)
                    {
                        int hit = chunk[offset..].IndexOf(needle);
                        if (hit < 0)
                            break;
                        offset += hit;
                        if (accept(at + (ulong)offset))
                            return at + (ulong)offset;
                        offset++;
                    }
                    if (length < needle.Length)
                        break;
                    ulong step = (ulong)(length - (needle.Length - 1));
                    at += step;
                }
            }
            return null;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
