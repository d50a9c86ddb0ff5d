using System.Globalization;
using System.Text;
using Introspect.Abi;
using Introspect.Connectors.LeechCore.Native;

namespace Introspect.Connectors.LeechCore;

/// <summary>LeechCore's text form of a memory map, both ways.</summary>
/// <remarks>
/// <para><c>LC_CMD_MEMMAP_GET</c> writes one range a line as <c>%04x %16llx - %16llx -&gt; %16llx</c>: an index, the
/// first and last physical address, and where the range lies in the device (for a dump file, the file offset).
/// Memory map files (MemProcFS's <c>-memmap</c>) are written <c>base top [remap]</c>, hexadecimal with or without
/// <c>0x</c>, <c>#</c> starting a comment; both forms are read here.</para>
/// <para><c>LC_CMD_MEMMAP_SET</c> reads the second form. LeechCore drops, without a word, a line whose base or
/// size is not a multiple of the page size (the remap may be any address), and reads a remap of 0 as "not
/// remapped"; <see cref="Format"/> refuses
/// maps it would so mangle instead of letting reads quietly go elsewhere.</para>
/// </remarks>
internal static class MemoryMapText
{
    /// <summary>Parses either text form.</summary>
    /// <param name="text">The text.</param>
    /// <param name="source">What the text is, for messages (the file, or which command returned it).</param>
    /// <exception cref="InvalidDataException">A line is not a range, ranges overlap, or there are more than LeechCore can hold; the message names the source and the line.</exception>
    public static MemoryMap Parse(string text, string source) => Parse(text, source, LeechCoreAbi.MaxMemoryMapEntries);

    /// <summary>The same, with the most ranges accepted given (for tests).</summary>
    internal static MemoryMap Parse(string text, string source, int maxRanges)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ranges = new List<MemoryRange>();
        int lineNumber = 0;
        foreach (var rawLine in text.Split('\n'))
        {
            lineNumber++;
            var line = rawLine;
            int hash = line.IndexOf('#', StringComparison.Ordinal);
            if (hash >= 0)
                line = line[..hash];
            var tokens = line.Split([' ', '\t', '\r'], StringSplitOptions.RemoveEmptyEntries).ToList();
            if (tokens.Count == 0)
                continue;
            bool leechCoreForm = tokens.Contains("->");
            tokens.RemoveAll(t => t is "-" or "->");
            // LeechCore's own form starts with a 4-digit index.
            if (leechCoreForm && tokens.Count == 4 && tokens[0].Length == 4)
                tokens.RemoveAt(0);
            ulong first = 0, last = 0, backing = 0;
            if (tokens.Count is < 2 or > 3
                || !TryParseHex(tokens[0], out first)
                || !TryParseHex(tokens[1], out last)
                || (tokens.Count == 3 && !TryParseHex(tokens[2], out backing)))
                ThrowLine(source, lineNumber, rawLine, "expected 'base top [remap]' or LeechCore's 'index base - top -> remap', in hexadecimal");
            if (last < first)
                ThrowLine(source, lineNumber, rawLine, "the top address is below the base");
            if (last - first == ulong.MaxValue)
                ThrowLine(source, lineNumber, rawLine, "a range cannot span the whole 64-bit address space");
            if (tokens.Count == 2)
                backing = first;
            if (ranges.Count == maxRanges)
                ThrowLine(source, lineNumber, rawLine, string.Create(CultureInfo.InvariantCulture, $"more than {maxRanges} ranges, LeechCore's limit"));
            if (last - first > ulong.MaxValue - backing)
                ThrowLine(source, lineNumber, rawLine, "the remapped range wraps past the end of the 64-bit address space");
            ranges.Add(new MemoryRange(first, last - first + 1, backing));
        }
        try
        {
            return new MemoryMap(ranges);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{source}: {e.Message}", e);
        }
    }

    /// <summary>The text <c>LC_CMD_MEMMAP_SET</c> takes: <c>0xbase 0xtop 0xremap</c> a line.</summary>
    /// <exception cref="ArgumentException">A range LeechCore cannot hold as given: base or size not page-aligned, remapped to 0, or remapped with the top bit set (LeechCore's own flag).</exception>
    public static string Format(MemoryMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        if (map.Count > LeechCoreAbi.MaxMemoryMapEntries)
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"The map has {map.Count} ranges; LeechCore holds at most {LeechCoreAbi.MaxMemoryMapEntries}."), nameof(map));
        var text = new StringBuilder(map.Count * 56);
        const ulong PageMask = LeechCoreAbi.PageSize - 1;
        foreach (var range in map)
        {
            // The backing address may be anything: an ELF core's segments lie at unaligned file offsets.
            if ((range.Base & PageMask) != 0 || (range.Size & PageMask) != 0)
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                    $"LeechCore's memory map holds whole pages only; the range 0x{range.Base:x}-0x{range.Last:x} is not page-aligned."), nameof(map));
            if (range.BackingBase == 0 && range.Base != 0)
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                    $"LeechCore reads a remap of 0 as 'not remapped', so the range 0x{range.Base:x}-0x{range.Last:x} cannot be remapped to 0."), nameof(map));
            if (range.BackingBase >= 1UL << 63 || range.BackingBase + (range.Size - 1) >= 1UL << 63)
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                    $"LeechCore keeps a flag in a remap's top bit, so the range 0x{range.Base:x}-0x{range.Last:x} cannot be remapped to 0x{range.BackingBase:x}."), nameof(map));
            text.Append(CultureInfo.InvariantCulture, $"0x{range.Base:x} 0x{range.Last:x} 0x{range.BackingBase:x}\n");
        }
        return text.ToString();
    }

    private static bool TryParseHex(string token, out ulong value)
    {
        var span = token.AsSpan();
        if (span.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            span = span[2..];
        return ulong.TryParse(span, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void ThrowLine(string source, int lineNumber, string line, string expected) =>
        throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
            $"{source}: line {lineNumber} ('{Shorten(line.Trim())}'): {expected}."));

    private static string Shorten(string line) => line.Length <= 120 ? line : line[..120] + "...";
}
