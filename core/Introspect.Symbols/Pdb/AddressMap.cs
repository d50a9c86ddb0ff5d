using System.Buffers.Binary;

namespace Introspect.Symbols.Pdb;

/// <summary>Turns a symbol's section:offset into an RVA of the image, through OMAP when a tool (BBT, Syzygy) rewrote the
/// image after linking.</summary>
/// <remarks>
/// <para>OMAP comes as two tables of (RVA, RVA) pairs sorted by their first member, each entry covering up to the
/// next: <c>OMAPTO</c> maps the rewritten image back to the original, <c>OMAPFROM</c> the original to the rewritten.</para>
/// <para>A range of the original image may land in several places of the rewritten one (blocks of a function moved
/// apart), so a symbol with a length maps to a list of ranges. The ranges are built from <c>OMAPTO</c>, each with the
/// content injected after it in the rewritten image and the original content removed after it; a query range is
/// clipped against every range it meets, the pieces are ordered by rewritten address, and pieces that touch in the
/// rewritten image (counting injected content between them) are merged. A query of length zero maps to the lowest
/// rewritten address. These are the rules Breakpad's <c>dump_syms</c> applies, so its symbol files agree with ours.</para>
/// </remarks>
internal sealed class AddressMap
{
    private readonly uint[] _sectionStarts; // RVA of section n+1 in the address space that symbols use
    private readonly MappedRange[] _ranges; // sorted by original RVA; empty without OMAP
    private readonly ulong[] _maxEnd;       // greatest OriginalEnd of _ranges[0..i]

    private AddressMap(uint[] sectionStarts, MappedRange[] ranges)
    {
        _sectionStarts = sectionStarts;
        _ranges = ranges;
        _maxEnd = new ulong[ranges.Length];
        ulong max = 0;
        for (int i = 0; i < ranges.Length; i++)
        {
            max = Math.Max(max, ranges[i].OriginalEnd);
            _maxEnd[i] = max;
        }
    }

    public bool HasOmap => _ranges.Length > 0;

    public int SectionCount => _sectionStarts.Length;

    /// <param name="file">The PDB, for error messages.</param>
    /// <param name="sectionStarts">Where each section starts, as symbols see it (the original image's sections when OMAP is used).</param>
    /// <param name="omapTo">The <c>OMAPTO</c> stream, or empty.</param>
    /// <param name="omapFrom">The <c>OMAPFROM</c> stream, or empty.</param>
    /// <param name="originalLength">The original image's extent (the end of its last section).</param>
    public static AddressMap Create(string file, uint[] sectionStarts, ReadOnlySpan<byte> omapTo, ReadOnlySpan<byte> omapFrom, uint originalLength)
    {
        if (omapTo.Length % 8 != 0)
            Malformed.Throw(file, "the OMAPTO stream's size", Malformed.Number((ulong)omapTo.Length), "a multiple of 8 (pairs of RVAs)");
        if (omapFrom.Length % 8 != 0)
            Malformed.Throw(file, "the OMAPFROM stream's size", Malformed.Number((ulong)omapFrom.Length), "a multiple of 8 (pairs of RVAs)");
        if (omapTo.IsEmpty || omapFrom.IsEmpty)
            return new AddressMap(sectionStarts, []);

        int count = omapTo.Length / 8;
        var ranges = new List<MappedRange>(count + 1);
        uint firstTransformed = BinaryPrimitives.ReadUInt32LittleEndian(omapTo);
        uint firstOriginal = BinaryPrimitives.ReadUInt32LittleEndian(omapFrom);
        if (firstTransformed > 0 && firstOriginal > 0)
        {
            // The headers before the first entry map onto themselves.
            uint header = Math.Min(firstTransformed, firstOriginal);
            ranges.Add(new MappedRange { Original = 0, Transformed = 0, Length = header, Injected = firstTransformed - header, Removed = firstOriginal - header });
        }
        uint previousTransformed = 0;
        for (int i = 0; i < count; i++)
        {
            uint transformed = BinaryPrimitives.ReadUInt32LittleEndian(omapTo[(8 * i)..]);
            uint original = BinaryPrimitives.ReadUInt32LittleEndian(omapTo[(8 * i + 4)..]);
            if (transformed < previousTransformed)
                Malformed.Throw(file, $"OMAPTO entry {i}", Malformed.Hex(transformed), $"an RVA not below the previous entry's {Malformed.Hex(previousTransformed)} (the table is sorted)");
            previousTransformed = transformed;
            if (original >= originalLength)
                continue; // content injected by the rewriting tool
            uint length;
            if (i + 1 < count)
            {
                uint next = BinaryPrimitives.ReadUInt32LittleEndian(omapTo[(8 * i + 8)..]);
                length = next >= transformed ? next - transformed : 0;
                if ((ulong)original + length > originalLength)
                    length = originalLength - original;
            }
            else
            {
                length = originalLength - original;
            }
            if (length == 0)
                continue;
            if (ranges.Count > 0)
            {
                var previous = ranges[^1];
                ulong end = (ulong)previous.Transformed + previous.Length;
                if (transformed > end)
                    previous.Injected = (uint)Math.Min(uint.MaxValue, previous.Injected + (transformed - end));
                ranges[^1] = previous;
            }
            ranges.Add(new MappedRange { Original = original, Transformed = transformed, Length = length });
        }
        ranges.Sort(static (a, b) => a.Original != b.Original ? a.Original.CompareTo(b.Original) : a.Length.CompareTo(b.Length));

        // Original content that no range covers was removed: charge it to the ranges that end where the gap starts.
        int fill = 0;
        ulong front = 0;
        var array = ranges.ToArray();
        for (int find = 0; find < array.Length; find++)
        {
            if (front < array[find].Original)
            {
                uint removed = (uint)(array[find].Original - front);
                for (; fill < find; fill++)
                {
                    if ((ulong)array[fill].Original + array[fill].Length == front)
                        array[fill].Removed = removed;
                }
            }
            front = (ulong)array[find].Original + array[find].Length;
        }
        return new AddressMap(sectionStarts, array);
    }

    /// <summary>The RVA (before OMAP) of section:offset; false for section 0, a section past the table, or an offset that wraps.</summary>
    public bool TryOriginalRva(ushort section, uint offset, out uint rva)
    {
        rva = 0;
        if (section == 0 || section > _sectionStarts.Length)
            return false;
        ulong value = (ulong)_sectionStarts[section - 1] + offset;
        if (value > uint.MaxValue)
            return false;
        rva = (uint)value;
        return true;
    }

    /// <summary>The RVA a single address of the original image has in the final image; false when the rewriting dropped it.</summary>
    public bool TryMapPoint(uint originalRva, out uint rva)
    {
        if (_ranges.Length == 0)
        {
            rva = originalRva;
            return true;
        }
        uint lowest = 0;
        bool found = false;
        ForEachPiece(originalRva, 1, (in MappedRange piece) =>
        {
            if (!found || piece.Transformed < lowest)
                lowest = piece.Transformed;
            found = true;
        });
        rva = lowest;
        return found;
    }

    /// <summary>The ranges of the final image that <paramref name="length"/> bytes at <paramref name="originalRva"/> became, in address order.</summary>
    public List<(uint Rva, uint Length)> MapRange(uint originalRva, uint length)
    {
        var result = new List<(uint, uint)>(1);
        if (_ranges.Length == 0)
        {
            result.Add((originalRva, length));
            return result;
        }
        if (length == 0)
        {
            if (TryMapPoint(originalRva, out uint point))
                result.Add((point, 0));
            return result;
        }
        var pieces = new List<MappedRange>();
        ForEachPiece(originalRva, length, (in MappedRange piece) => pieces.Add(piece));
        if (pieces.Count == 0)
            return result;
        pieces.Sort(static (a, b) => a.Transformed != b.Transformed ? a.Transformed.CompareTo(b.Transformed) : a.Length.CompareTo(b.Length));
        ulong begin = pieces[0].Transformed;
        ulong contentEnd = begin + pieces[0].Length;
        ulong injectedEnd = contentEnd + pieces[0].Injected;
        for (int i = 1; i < pieces.Count; i++)
        {
            if (injectedEnd < pieces[i].Transformed)
            {
                if (begin < contentEnd)
                    result.Add(((uint)begin, (uint)(contentEnd - begin)));
                begin = pieces[i].Transformed;
            }
            contentEnd = (ulong)pieces[i].Transformed + pieces[i].Length;
            injectedEnd = contentEnd + pieces[i].Injected;
        }
        if (begin < contentEnd)
            result.Add(((uint)begin, (uint)(contentEnd - begin)));
        return result;
    }

    private delegate void PieceAction(in MappedRange piece);

    /// <summary>Calls <paramref name="action"/> with every range that meets [start, start + length), clipped to it.</summary>
    private void ForEachPiece(uint start, uint length, PieceAction action)
    {
        ulong queryStart = start, queryEnd = (ulong)start + length;
        // The first range starting at or after the query's end; every candidate lies before it.
        int lo = 0, hi = _ranges.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_ranges[mid].Original < queryEnd)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (int i = lo - 1; i >= 0 && _maxEnd[i] > queryStart; i--)
        {
            var piece = _ranges[i];
            if (piece.OriginalEnd <= queryStart)
                continue;
            if (piece.Original < queryStart)
            {
                uint clip = (uint)(queryStart - piece.Original);
                piece.Original += clip; // stays below queryStart
                piece.Transformed = unchecked(piece.Transformed + clip); // a bad table may wrap: the result is then just wrong, never a crash
                if (clip > piece.Length)
                {
                    uint trim = clip - piece.Length;
                    piece.Length = 0;
                    piece.Injected -= Math.Min(trim, piece.Injected);
                    piece.Removed -= Math.Min(trim, piece.Removed);
                }
                else
                {
                    piece.Length -= clip;
                }
            }
            ulong contentEnd = (ulong)piece.Original + piece.Length;
            if (queryEnd < contentEnd)
            {
                piece.Length -= (uint)(contentEnd - queryEnd);
                piece.Injected = 0;
                piece.Removed = 0;
            }
            else
            {
                if (queryEnd < contentEnd + piece.Removed)
                    piece.Removed = (uint)(queryEnd - contentEnd);
                if (queryEnd < contentEnd + piece.Injected)
                    piece.Injected = (uint)(queryEnd - contentEnd);
            }
            if (piece.Length + (ulong)piece.Injected > 0)
                action(piece);
        }
    }

    private struct MappedRange
    {
        public uint Original;
        public uint Transformed;
        public uint Length;
        /// <summary>Bytes the rewriting tool put after this range in the final image.</summary>
        public uint Injected;
        /// <summary>Bytes of the original image after this range that the final image dropped.</summary>
        public uint Removed;

        public readonly ulong OriginalEnd => (ulong)Original + Length + Removed;
    }
}
