using System.Numerics;
using System.Runtime.InteropServices;

namespace Introspect.Connectors.Coredump.Kdump;

/// <summary>The dumpable-page bitmap with a rank index: page frame number → index of its page descriptor.</summary>
/// <remarks>
/// Descriptors are stored for the set bits only, in page order, so a page's descriptor is the
/// number of set bits below it. A cumulative count every 8 words (512 pages) keeps that to at
/// most 7 population counts.
/// </remarks>
internal sealed class PageIndex
{
    private const int WordsPerBlock = 8;

    private readonly ulong[] _words;
    private readonly ulong[] _blockRanks;

    /// <param name="words">The bitmap, least significant bit first; bits at or past <paramref name="pageCount"/> must be clear.</param>
    /// <param name="pageCount">How many pages the bitmap covers.</param>
    public PageIndex(ulong[] words, ulong pageCount)
    {
        _words = words;
        PageCount = pageCount;
        _blockRanks = new ulong[(words.Length + WordsPerBlock - 1) / WordsPerBlock];
        ulong total = 0;
        for (int w = 0; w < words.Length; w++)
        {
            if (w % WordsPerBlock == 0)
                _blockRanks[w / WordsPerBlock] = total;
            total += (ulong)BitOperations.PopCount(words[w]);
        }
        DumpedCount = total;
    }

    /// <summary>How many pages the bitmap covers (<c>max_mapnr</c>).</summary>
    public ulong PageCount { get; }

    /// <summary>How many pages are dumped: the number of page descriptors.</summary>
    public ulong DumpedCount { get; }

    public ReadOnlySpan<byte> Bytes => MemoryMarshal.AsBytes(_words.AsSpan());

    /// <summary>The descriptor index of page <paramref name="pfn"/>, if the page was dumped.</summary>
    public bool TryGetIndex(ulong pfn, out ulong index)
    {
        index = 0;
        if (pfn >= PageCount)
            return false;
        int word = (int)(pfn >> 6);
        ulong bits = _words[word];
        ulong bit = 1UL << (int)(pfn & 63);
        if ((bits & bit) == 0)
            return false;
        int block = word / WordsPerBlock;
        ulong rank = _blockRanks[block];
        for (int w = block * WordsPerBlock; w < word; w++)
            rank += (ulong)BitOperations.PopCount(_words[w]);
        index = rank + (ulong)BitOperations.PopCount(bits & (bit - 1));
        return true;
    }
}
