using System.Buffers;
using Introspect.Abi;

namespace Introspect.Core.Memory;

/// <summary>How far a search has come.</summary>
/// <param name="BytesDone">Bytes searched so far (readable or not).</param>
/// <param name="BytesTotal">Bytes the search covers in all.</param>
/// <param name="Hits">Matches found so far.</param>
public readonly record struct SearchProgress(ulong BytesDone, ulong BytesTotal, int Hits);

/// <summary>Finds a <see cref="BytePattern"/> in memory.</summary>
/// <remarks>
/// Reads in 1 MiB chunks (one request each, split into pages only when it fails), carries the last
/// <c>pattern.Length - 1</c> bytes of a chunk into the next so a match across a chunk boundary is found exactly
/// once, skips pages that cannot be read (no match spans one), and looks for the pattern's longest run of fixed
/// bytes with a vectorized search before checking the rest.
/// </remarks>
public static class MemorySearch
{
    /// <summary>The number of matches after which a search stops unless told otherwise.</summary>
    public const int DefaultMaxHits = 65536;

    private const int ChunkSize = 1 << 20;
    private const int PageSize = PhysicalBatch.PageSize;
    private const ulong PageMask = PhysicalBatch.PageMask;

    /// <summary>Searches <paramref name="ranges"/> of <paramref name="memory"/>.</summary>
    /// <param name="memory">The memory to search.</param>
    /// <param name="pattern">What to find.</param>
    /// <param name="ranges">Where to search: start inclusive, end exclusive; overlapping ranges are merged.</param>
    /// <param name="maxHits">Stop after this many matches.</param>
    /// <param name="progress">Told after every chunk.</param>
    /// <param name="cancel">Checked before every chunk.</param>
    /// <param name="flags">Flags of the reads (<see cref="MemoryFlags.NoCache"/> keeps a large search from flushing a page cache).
    /// <see cref="MemoryFlags.ZeroPadOnFail"/> is ignored: zeros that are not there must not match.</param>
    /// <returns>The addresses of the matches, ascending.</returns>
    /// <exception cref="OperationCanceledException"><paramref name="cancel"/> was signalled.</exception>
    public static IReadOnlyList<ulong> Search(IMemory memory, BytePattern pattern, IEnumerable<(ulong Start, ulong End)> ranges,
        int maxHits = DefaultMaxHits, IProgress<SearchProgress>? progress = null, CancellationToken cancel = default,
        MemoryFlags flags = MemoryFlags.None)
    {
        ArgumentNullException.ThrowIfNull(ranges);
        var inclusive = new List<(ulong First, ulong Last)>();
        foreach (var (start, end) in ranges)
        {
            if (end > start)
                inclusive.Add((start, end - 1));
        }
        return SearchRanges(memory, pattern, inclusive, maxHits, progress, cancel, flags);
    }

    /// <summary>Searches all of a physical memory's map (or 0 to its highest address when the map is empty).</summary>
    /// <inheritdoc cref="Search(IMemory, BytePattern, IEnumerable{ValueTuple{ulong, ulong}}, int, IProgress{SearchProgress}?, CancellationToken, MemoryFlags)"/>
    public static IReadOnlyList<ulong> Search(IPhysicalMemory memory, BytePattern pattern,
        int maxHits = DefaultMaxHits, IProgress<SearchProgress>? progress = null, CancellationToken cancel = default,
        MemoryFlags flags = MemoryFlags.None)
    {
        ArgumentNullException.ThrowIfNull(memory);
        var inclusive = new List<(ulong First, ulong Last)>();
        var map = memory.MemoryMap;
        if (map.Count == 0)
            inclusive.Add((0, memory.Metadata.MaxAddress));
        else
        {
            foreach (var range in map)
                inclusive.Add((range.Base, range.Last));
        }
        return SearchRanges(memory, pattern, inclusive, maxHits, progress, cancel, flags);
    }

    private static ulong[] SearchRanges(IMemory memory, BytePattern pattern, List<(ulong First, ulong Last)> ranges,
        int maxHits, IProgress<SearchProgress>? progress, CancellationToken cancel, MemoryFlags flags)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(pattern);
        ArgumentOutOfRangeException.ThrowIfNegative(maxHits);
        flags &= ~MemoryFlags.ZeroPadOnFail;

        var merged = Normalize(ranges);
        ulong total = 0;
        foreach (var (first, last) in merged)
        {
            ulong size = unchecked(last - first + 1); // 0 only for the whole 64-bit space
            total = size == 0 || size > ulong.MaxValue - total ? ulong.MaxValue : total + size;
        }

        var hits = new List<ulong>();
        if (maxHits == 0)
            return [];
        int carryMax = pattern.Length - 1;
        var buffer = ArrayPool<byte>.Shared.Rent(carryMax + ChunkSize);
        var pieces = ArrayPool<MemoryRequest>.Shared.Rent(ChunkSize / PageSize + 1);
        var readable = new bool[ChunkSize / PageSize + 1];
        ulong done = 0;
        try
        {
            foreach (var (first, last) in merged)
            {
                int carry = 0;
                for (ulong at = first; ;)
                {
                    cancel.ThrowIfCancellationRequested();
                    // Chunks end on page boundaries, so only the first chunk of a range starts inside a page.
                    ulong remaining = last - at; // bytes after 'at', so the whole space does not overflow
                    int length = (int)Math.Min((ulong)(ChunkSize - (int)(at & PageMask)) - 1, remaining) + 1;
                    var chunk = buffer.AsMemory(carry, length);
                    int pageCount = ReadChunk(memory, at, chunk, pieces, readable, flags);

                    // Search every readable stretch; the carried bytes continue the first page when it is readable.
                    int segmentStart = -1;
                    int position = carry;
                    for (int p = 0; p < pageCount; p++)
                    {
                        int pieceLength = pageCount == 1 ? length : pieces[p].Buffer.Length;
                        if (readable[p])
                        {
                            if (segmentStart < 0)
                                segmentStart = p == 0 ? 0 : position;
                        }
                        else if (segmentStart >= 0)
                        {
                            FindAll(buffer.AsSpan(segmentStart, position - segmentStart), pattern, unchecked(at - (ulong)carry + (ulong)segmentStart), hits, maxHits);
                            segmentStart = -1;
                        }
                        position += pieceLength;
                    }
                    int end = carry + length;
                    if (segmentStart >= 0)
                        FindAll(buffer.AsSpan(segmentStart, end - segmentStart), pattern, unchecked(at - (ulong)carry + (ulong)segmentStart), hits, maxHits);

                    done += (ulong)length;
                    progress?.Report(new SearchProgress(done, total, hits.Count));
                    if (hits.Count >= maxHits)
                        return [.. hits];

                    int keep = segmentStart >= 0 ? Math.Min(carryMax, end - segmentStart) : 0;
                    buffer.AsSpan(end - keep, keep).CopyTo(buffer);
                    carry = keep;
                    if (remaining < (ulong)length)
                        break;
                    at += (ulong)length;
                }
            }
            return [.. hits];
        }
        finally
        {
            pieces.AsSpan().Clear();
            ArrayPool<MemoryRequest>.Shared.Return(pieces);
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Reads a chunk as one request, or page by page when that fails.</summary>
    /// <returns>How many entries of <paramref name="readable"/> describe the chunk (1 when it read whole).</returns>
    private static int ReadChunk(IMemory memory, ulong address, Memory<byte> chunk, MemoryRequest[] pieces, bool[] readable, MemoryFlags flags)
    {
        pieces[0] = new MemoryRequest(address, chunk);
        memory.Read(pieces.AsSpan(0, 1), flags);
        if (pieces[0].Succeeded)
        {
            readable[0] = true;
            return 1;
        }
        int count = 0;
        ulong at = address;
        for (int done = 0; done < chunk.Length; count++)
        {
            int step = Math.Min(chunk.Length - done, PageSize - (int)(at & PageMask));
            pieces[count] = new MemoryRequest(at, chunk.Slice(done, step));
            done += step;
            at = unchecked(at + (ulong)step); // the last page may end exactly at 2^64
        }
        if (count == 1)
        {
            readable[0] = false;
            return 1;
        }
        memory.Read(pieces.AsSpan(0, count), flags);
        for (int i = 0; i < count; i++)
            readable[i] = pieces[i].Succeeded;
        return count;
    }

    /// <summary>Adds the address of every match inside <paramref name="data"/> (which starts at <paramref name="baseAddress"/>).</summary>
    private static void FindAll(ReadOnlySpan<byte> data, BytePattern pattern, ulong baseAddress, List<ulong> hits, int maxHits)
    {
        int length = pattern.Length;
        if (data.Length < length)
            return;
        var anchor = pattern.Anchor.Span;
        if (anchor.IsEmpty)
        {
            for (int start = 0; start <= data.Length - length && hits.Count < maxHits; start++)
                hits.Add(baseAddress + (ulong)start);
            return;
        }
        int offset = pattern.AnchorOffset;
        // The anchor can only sit where the whole pattern around it fits in the data.
        int limit = data.Length - length + offset + anchor.Length;
        for (int from = offset; from < limit && hits.Count < maxHits;)
        {
            int found = anchor.Length == 1
                ? data[from..limit].IndexOf(anchor[0])
                : data[from..limit].IndexOf(anchor);
            if (found < 0)
                return;
            int start = from + found - offset;
            if (!pattern.HasWildcards || pattern.IsMatch(data[start..]))
                hits.Add(baseAddress + (ulong)start);
            from += found + 1;
        }
    }

    private static List<(ulong First, ulong Last)> Normalize(List<(ulong First, ulong Last)> ranges)
    {
        ranges.Sort(static (a, b) => a.First.CompareTo(b.First));
        var merged = new List<(ulong First, ulong Last)>(ranges.Count);
        foreach (var range in ranges)
        {
            if (merged.Count > 0)
            {
                var previous = merged[^1];
                if (previous.Last == ulong.MaxValue || range.First <= previous.Last + 1)
                {
                    merged[^1] = (previous.First, Math.Max(previous.Last, range.Last));
                    continue;
                }
            }
            merged.Add(range);
        }
        return merged;
    }
}
