using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Introspect.Abi;
using Introspect.Core.Memory;

namespace Introspect.Os.Linux.Kernel;

/// <summary>Where kallsyms' tables lie in physical memory.</summary>
/// <param name="TokenTable">256 NUL-terminated tokens.</param>
/// <param name="TokenIndex">256 16-bit offsets of the tokens in the table.</param>
/// <param name="Names">The compressed names: a length (one byte, or two with the top bit set), then token numbers.</param>
/// <param name="Count">How many symbols there are (<c>kallsyms_num_syms</c>).</param>
/// <param name="Offsets">32-bit offsets, one per symbol (<c>KALLSYMS_BASE_RELATIVE</c>).</param>
/// <param name="RelativeBase">The 64-bit base the offsets are counted from.</param>
/// <param name="Markers">The names' offset of every 256th symbol, if known (a check, not needed to decode).</param>
/// <param name="MarkerWidth">4 or 8 bytes per marker.</param>
internal sealed record KallsymsLayout(ulong TokenTable, ulong TokenIndex, ulong Names, uint Count, ulong Offsets, ulong RelativeBase,
    ulong? Markers = null, int MarkerWidth = 4);

/// <summary>Finds and decodes the kernel's own symbol table, kallsyms, in physical memory.</summary>
/// <remarks>
/// <para>
/// scripts/kallsyms.c emits, each table 8-byte aligned: (up to 6.3) <c>kallsyms_offsets</c>, <c>_relative_base</c>,
/// <c>_num_syms</c>, <c>_names</c>, <c>_markers</c>, [<c>_seqs_of_names</c>, 3 bytes per symbol, from 6.2 and in
/// some stable kernels], <c>_token_table</c>, <c>_token_index</c>; (from 6.4) <c>_num_syms</c>, <c>_names</c>,
/// <c>_markers</c>, <c>_token_table</c>, <c>_token_index</c>, <c>_offsets</c>, <c>_relative_base</c>, ....
/// The tables are not symbols themselves, so they are found by their shape.
/// </para>
/// <para>
/// The anchor is the token table: every character that occurs in a symbol name keeps its own code as a one-letter
/// token, so the ten digits appear as <c>"0\0" "1\0" ... "9\0"</c> at token numbers 0x30 to 0x39. A hit is
/// accepted when the 48 tokens before it start an aligned table whose 256 tokens agree with the index right after.
/// From there the count and the names are found going backwards: a count N followed by names whose N entries end
/// where markers (every 256th entry's offset) begin, which end where the token table (or the 3N-byte sequence table
/// before it) begins. The offsets are then looked for at both places the kernel versions put them, and kept where
/// they decode to sorted addresses.
/// </para>
/// </remarks>
internal static class Kallsyms
{
    private const int TokenCount = 256;
    private const int DigitToken = '0';
    private const int MaxTokenTableBytes = 8192;
    private const int MinSymbols = 64;

    /// <summary>How far before the token table the count and the names are looked for.</summary>
    private const int SearchWindow = 48 << 20;

    /// <summary>The longest name decoded (the kernel's <c>KSYM_NAME_LEN</c> is 512).</summary>
    private const int MaxNameChars = 1024;

    /// <summary>The digits as the token table holds them.</summary>
    public static ReadOnlySpan<byte> DigitPattern => "0\u00001\u00002\u00003\u00004\u00005\u00006\u00007\u00008\u00009\u0000"u8;

    /// <summary>Checks a hit of <see cref="DigitPattern"/> and finds every table around it.</summary>
    /// <returns>The layout, or null when the hit is not kallsyms' token table or the other tables cannot be found.</returns>
    public static KallsymsLayout? TryLocate(IPhysicalMemory memory, ulong digitHit)
    {
        if (!TryFindTokenTable(memory, digitHit, out ulong tokenTable, out ulong tokenIndex))
            return null;
        return TryFindTables(memory, tokenTable, tokenIndex);
    }

    /// <summary>Walks back 48 tokens from the digits to the table's start, then checks all 256 against the index.</summary>
    private static bool TryFindTokenTable(IPhysicalMemory memory, ulong digitHit, out ulong tokenTable, out ulong tokenIndex)
    {
        tokenTable = tokenIndex = 0;
        ulong windowStart = digitHit >= MaxTokenTableBytes ? digitHit - MaxTokenTableBytes : 0;
        var window = new byte[2 * MaxTokenTableBytes + 2 * TokenCount];
        if (memory.Read(windowStart, window, MemoryFlags.ZeroPadOnFail) != window.Length)
            return false;
        int hit = (int)(digitHit - windowStart);

        // hit - 1 is the NUL ending token 0x2f; each step back finds the start of one more token.
        int start = hit;
        for (int token = DigitToken - 1; token >= 0; token--)
        {
            int end = start - 1; // the NUL of this token
            if (end <= 0 || window[end] != 0)
                return false;
            int first = end;
            while (first > 0 && window[first - 1] != 0)
                first--;
            if (first == end)
                return false; // an empty token: not the table
            start = first;
        }
        ulong table = windowStart + (ulong)start;
        if ((table & 7) != 0)
            return false;

        Span<ushort> offsets = stackalloc ushort[TokenCount];
        int position = start;
        for (int token = 0; token < TokenCount; token++)
        {
            if (position >= window.Length)
                return false;
            int length = window.AsSpan(position).IndexOf((byte)0);
            if (length <= 0 || position - start > ushort.MaxValue)
                return false;
            offsets[token] = (ushort)(position - start);
            position += length + 1;
        }
        int indexAt = (position + 7) & ~7;
        if (indexAt + 2 * TokenCount > window.Length)
            return false;
        for (int token = 0; token < TokenCount; token++)
        {
            if (BinaryPrimitives.ReadUInt16LittleEndian(window.AsSpan(indexAt + 2 * token)) != offsets[token])
                return false;
        }
        tokenTable = table;
        tokenIndex = windowStart + (ulong)indexAt;
        return true;
    }

    private static KallsymsLayout? TryFindTables(IPhysicalMemory memory, ulong tokenTable, ulong tokenIndex)
    {
        // Windows grow backwards; each pass looks only at the counts the previous one did not reach.
        ulong scanned = 0;
        foreach (int size in (ReadOnlySpan<int>)[4 << 20, 16 << 20, SearchWindow])
        {
            ulong windowStart = tokenTable > (ulong)size ? tokenTable - (ulong)size : 0;
            int windowLength = (int)(tokenTable - windowStart);
            if ((ulong)windowLength <= scanned)
                break;
            var window = ArrayPool<byte>.Shared.Rent(Math.Max(windowLength, 1));
            try
            {
                memory.Read(windowStart, window.AsSpan(0, windowLength), MemoryFlags.ZeroPadOnFail);
                var layout = ScanWindow(memory, window.AsSpan(0, windowLength), windowStart, windowLength - (int)scanned, tokenTable, tokenIndex);
                if (layout is not null)
                    return layout;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(window);
            }
            scanned = (ulong)windowLength;
        }
        return null;
    }

    /// <summary>Looks for the count at 8-aligned places below <paramref name="below"/> in a window that ends at the token table.</summary>
    private static KallsymsLayout? ScanWindow(IPhysicalMemory memory, ReadOnlySpan<byte> span, ulong windowStart, int below,
        ulong tokenTable, ulong tokenIndex)
    {
        int tableOffset = span.Length;
        // The count is 8-aligned in physical memory, as the tables' own alignment makes it.
        int last = below - 8;
        last -= (int)((windowStart + (ulong)Math.Max(last, 0)) & 7);
        for (int p = last; p >= 0; p -= 8)
        {
            uint count = BinaryPrimitives.ReadUInt32LittleEndian(span[p..]);
            if (count < MinSymbols || count > LinuxLimits.MaxSymbols || BinaryPrimitives.ReadUInt32LittleEndian(span[(p + 4)..]) != 0)
                continue;
            int names = p + 8;
            if ((long)tableOffset - names < 2L * count)
                continue;
            if (!TryMatchMarkers(span, names, count, tableOffset, out int markers, out int width))
                continue;

            ulong countAddress = windowStart + (ulong)p;
            // Up to 6.3 the base sits right before the count and the offsets before it; from 6.4 both follow the token index.
            var candidates = new List<(ulong Offsets, ulong Base)>(2);
            if (countAddress >= 8 + 4UL * count)
                candidates.Add(((countAddress - 8 - 4UL * count) & ~7UL, countAddress - 8));
            ulong after = (tokenIndex + 2 * TokenCount + 7) & ~7UL;
            candidates.Add((after, (after + 4UL * count + 7) & ~7UL));
            foreach (var (offsets, relativeBase) in candidates)
            {
                var layout = new KallsymsLayout(tokenTable, tokenIndex, windowStart + (ulong)names, count, offsets, relativeBase,
                    windowStart + (ulong)markers, width);
                if (OffsetsLookSorted(memory, layout))
                    return layout;
            }
        }
        return null;
    }

    /// <summary>Whether names from <paramref name="names"/> with <paramref name="count"/> entries end where markers begin
    /// that describe them, the markers (and perhaps the 3-byte sequence table) ending at the token table.</summary>
    private static bool TryMatchMarkers(ReadOnlySpan<byte> window, int names, uint count, int tokenTable, out int markersAt, out int markerWidth)
    {
        markersAt = markerWidth = 0;
        long markerCount = (count + 255L) / 256;
        foreach (int width in (ReadOnlySpan<int>)[4, 8])
        {
            foreach (long sequences in (ReadOnlySpan<long>)[0, 3L * count])
            {
                long markers = tokenTable - Align8(sequences) - Align8(markerCount * width);
                if (markers - names < 2L * count)
                    continue;
                int at = (int)markers;
                if (ReadMarker(window, at, width, 0) != 0)
                    continue;
                long namesLength = markers - names;
                ulong previous = 0;
                bool increasing = true;
                for (int k = 1; k < markerCount && increasing; k++)
                {
                    ulong marker = ReadMarker(window, at, width, k);
                    increasing = marker > previous && marker < (ulong)namesLength;
                    previous = marker;
                }
                if (!increasing)
                    continue;
                // Walk every entry's length: each 256th must start at its marker and the last must end in the padding before the markers.
                if (!NamesMatchMarkers(window, names, count, window[at..], width, namesLength))
                    continue;
                markersAt = at;
                markerWidth = width;
                return true;
            }
        }
        return false;
    }

    private static bool NamesMatchMarkers(ReadOnlySpan<byte> window, int names, uint count, ReadOnlySpan<byte> markers, int width, long namesLength)
    {
        long position = 0;
        for (uint i = 0; i < count; i++)
        {
            if ((i & 255) == 0 && ReadMarker(markers, 0, width, (int)(i >> 8)) != (ulong)position)
                return false;
            if (position >= namesLength)
                return false;
            int length = window[names + (int)position];
            int header = 1;
            if ((length & 0x80) != 0)
            {
                if (position + 1 >= namesLength)
                    return false;
                length = (length & 0x7f) | (window[names + (int)position + 1] << 7);
                header = 2;
            }
            if (length == 0)
                return false;
            position += header + length;
        }
        return position <= namesLength && namesLength - position < 8;
    }

    private static ulong ReadMarker(ReadOnlySpan<byte> markers, int at, int width, int index) => width == 4
        ? BinaryPrimitives.ReadUInt32LittleEndian(markers[(at + 4 * index)..])
        : BinaryPrimitives.ReadUInt64LittleEndian(markers[(at + 8 * index)..]);

    private static long Align8(long value) => (value + 7) & ~7L;

    /// <summary>Whether the offsets at the layout's place decode to a kernel base and addresses in kallsyms' own (sorted) order.</summary>
    private static bool OffsetsLookSorted(IPhysicalMemory memory, KallsymsLayout layout)
    {
        if (!memory.TryRead(layout.RelativeBase, out ulong relativeBase) || relativeBase < KernelAddresses.KernelHalfStart)
            return false;
        var offsets = new byte[checked((int)(4 * layout.Count))];
        if (memory.Read(layout.Offsets, offsets) != offsets.Length)
            return false;
        var addresses = DecodeAddresses(offsets, relativeBase);
        int unsorted = 0, relative = 0;
        ulong previous = 0;
        for (int i = 0; i < addresses.Length; i++)
        {
            if (addresses[i] < relativeBase)
                continue; // an absolute per-CPU symbol
            if (relative++ > 0 && addresses[i] < previous)
                unsorted++;
            previous = addresses[i];
        }
        return relative > addresses.Length / 2 && unsorted <= relative / 100;
    }

    /// <summary>The addresses of 32-bit offsets: with <c>KALLSYMS_ABSOLUTE_PERCPU</c> (when any offset is negative) a
    /// non-negative one is absolute and a negative one counts down from <c>base - 1</c>; otherwise each is unsigned, added to the base.</summary>
    private static ulong[] DecodeAddresses(ReadOnlySpan<byte> offsets, ulong relativeBase)
    {
        int count = offsets.Length / 4;
        var addresses = new ulong[count];
        bool absolutePercpu = false;
        for (int i = 0; i < count && !absolutePercpu; i++)
            absolutePercpu = BinaryPrimitives.ReadInt32LittleEndian(offsets[(4 * i)..]) < 0;
        for (int i = 0; i < count; i++)
        {
            int offset = BinaryPrimitives.ReadInt32LittleEndian(offsets[(4 * i)..]);
            addresses[i] = unchecked(absolutePercpu
                ? offset >= 0 ? (ulong)offset : relativeBase - 1 - (ulong)(long)offset
                : relativeBase + (uint)offset);
        }
        return addresses;
    }

    /// <summary>Reads and decodes every symbol.</summary>
    /// <exception cref="InvalidDataException">A table cannot be read or does not decode; the message names it, its address and what was wrong.</exception>
    public static SymbolTable Decode(IPhysicalMemory memory, KallsymsLayout layout)
    {
        if (layout.Count > LinuxLimits.MaxSymbols)
            ThrowHelper.ThrowInvalid(Invariant($"kallsyms: kallsyms_num_syms is {layout.Count}; expected at most {LinuxLimits.MaxSymbols}."));
        int count = (int)layout.Count;

        var tokenIndex = new byte[2 * TokenCount];
        if (memory.Read(layout.TokenIndex, tokenIndex) != tokenIndex.Length)
            ThrowHelper.ThrowInvalid(Invariant($"kallsyms: kallsyms_token_index at physical 0x{layout.TokenIndex:x} cannot be read."));
        var tokenBytes = new byte[MaxTokenTableBytes];
        int tokenBytesRead = memory.Read(layout.TokenTable, tokenBytes, MemoryFlags.ZeroPadOnFail);
        var tokens = new string[TokenCount];
        for (int t = 0; t < TokenCount; t++)
        {
            int offset = BinaryPrimitives.ReadUInt16LittleEndian(tokenIndex.AsSpan(2 * t));
            int length = offset < tokenBytesRead ? tokenBytes.AsSpan(offset, tokenBytesRead - offset).IndexOf((byte)0) : -1;
            if (length < 0)
                ThrowHelper.ThrowInvalid(Invariant($"kallsyms: token {t} at offset {offset} of kallsyms_token_table (physical 0x{layout.TokenTable:x}) has no end within {tokenBytesRead} bytes."));
            tokens[t] = Encoding.Latin1.GetString(tokenBytes, offset, length);
        }

        // The names lie before the token table in every layout; cap what is read at that distance.
        ulong namesSpan = layout.TokenTable > layout.Names ? layout.TokenTable - layout.Names : (ulong)LinuxLimits.MaxKallsymsNameBytes;
        if (namesSpan > LinuxLimits.MaxKallsymsNameBytes)
            ThrowHelper.ThrowInvalid(Invariant($"kallsyms: kallsyms_names at physical 0x{layout.Names:x} would span {namesSpan} bytes; expected at most {LinuxLimits.MaxKallsymsNameBytes}."));
        var names = new byte[namesSpan];
        int namesRead = memory.Read(layout.Names, names, MemoryFlags.ZeroPadOnFail);
        if (namesRead == 0)
            ThrowHelper.ThrowInvalid(Invariant($"kallsyms: kallsyms_names at physical 0x{layout.Names:x} cannot be read."));

        var offsets = new byte[4L * count];
        if (memory.Read(layout.Offsets, offsets) != offsets.Length)
            ThrowHelper.ThrowInvalid(Invariant($"kallsyms: kallsyms_offsets ({count} entries at physical 0x{layout.Offsets:x}) cannot be read."));
        if (!memory.TryRead(layout.RelativeBase, out ulong relativeBase))
            ThrowHelper.ThrowInvalid(Invariant($"kallsyms: kallsyms_relative_base at physical 0x{layout.RelativeBase:x} cannot be read."));
        var addresses = DecodeAddresses(offsets, relativeBase);

        var symbols = new KernelSymbol[count];
        Span<char> text = stackalloc char[MaxNameChars];
        long position = 0;
        for (int i = 0; i < count; i++)
        {
            if (position >= namesRead)
                ThrowHelper.ThrowInvalid(Invariant($"kallsyms: name {i} of {count} starts at offset {position} of kallsyms_names, past the {namesRead} bytes readable at physical 0x{layout.Names:x}."));
            int length = names[position];
            int header = 1;
            if ((length & 0x80) != 0 && position + 1 < namesRead)
            {
                length = (length & 0x7f) | (names[position + 1] << 7);
                header = 2;
            }
            if (length == 0 || position + header + length > namesRead)
                ThrowHelper.ThrowInvalid(Invariant($"kallsyms: name {i} of {count} at offset {position} of kallsyms_names has length {length}; expected 1 or more bytes within the {namesRead} readable."));
            int used = 0;
            foreach (byte token in names.AsSpan((int)position + header, length))
            {
                var piece = tokens[token];
                if (used + piece.Length > MaxNameChars)
                    ThrowHelper.ThrowInvalid(Invariant($"kallsyms: name {i} of {count} expands past {MaxNameChars} characters."));
                piece.CopyTo(text[used..]);
                used += piece.Length;
            }
            if (used < 2)
                ThrowHelper.ThrowInvalid(Invariant($"kallsyms: name {i} of {count} expands to '{new string(text[..used])}'; expected a type letter and a name."));
            symbols[i] = new KernelSymbol(new string(text[1..used]), text[0], addresses[i]);
            position += header + length;
        }
        return new SymbolTable(symbols, "kallsyms");
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
