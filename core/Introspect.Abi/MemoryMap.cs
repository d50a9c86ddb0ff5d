using System.Collections;
using System.Globalization;
using System.Text;

namespace Introspect.Abi;

/// <summary>One range of a memory map: physical <see cref="Base"/>..+<see cref="Size"/> is backed at <see cref="BackingBase"/>.</summary>
/// <remarks>
/// The backing address is the connector's own coordinate (a file offset, an offset in a guest's
/// RAM block); a range that is not remapped has <c>BackingBase == Base</c>.
/// </remarks>
public readonly record struct MemoryRange(ulong Base, ulong Size, ulong BackingBase)
{
    public MemoryRange(ulong @base, ulong size) : this(@base, size, @base) { }

    /// <summary>The last address inside the range (inclusive), which cannot overflow as an end could.</summary>
    public ulong Last => Base + (Size - 1);

    /// <summary>Whether <paramref name="address"/> falls in the range.</summary>
    /// <remarks>One unsigned comparison: an address below <see cref="Base"/> wraps to a huge difference, deliberately unchecked.</remarks>
    public bool Contains(ulong address) => unchecked(address - Base) < Size;
}

/// <summary>The ranges of valid physical memory, sorted and disjoint, with their remapping.</summary>
public sealed class MemoryMap : IReadOnlyList<MemoryRange>
{
    private readonly MemoryRange[] _ranges;

    /// <summary>Builds a map from ranges in any order; adjacent ranges that continue each other merge.</summary>
    /// <exception cref="ArgumentException">Two ranges overlap, or a range is empty or wraps past 2^64.</exception>
    public MemoryMap(IEnumerable<MemoryRange> ranges)
    {
        ArgumentNullException.ThrowIfNull(ranges);
        var sorted = ranges.ToArray();
        Array.Sort(sorted, static (a, b) => a.Base.CompareTo(b.Base));
        var merged = new List<MemoryRange>(sorted.Length);
        foreach (var range in sorted)
        {
            if (range.Size == 0)
                throw new ArgumentException($"Memory range at 0x{range.Base:x} is empty.", nameof(ranges));
            // A range whose last byte wraps past 2^64 is detected by the wrap itself, so this sum is unchecked on purpose.
            if (unchecked(range.Base + (range.Size - 1)) < range.Base || unchecked(range.BackingBase + (range.Size - 1)) < range.BackingBase)
                throw new ArgumentException($"Memory range 0x{range.Base:x}+0x{range.Size:x} wraps past the end of the address space.", nameof(ranges));
            if (merged.Count > 0)
            {
                var last = merged[^1];
                if (range.Base <= last.Last)
                    throw new ArgumentException($"Memory ranges 0x{last.Base:x}-0x{last.Last:x} and 0x{range.Base:x}-0x{range.Last:x} overlap.", nameof(ranges));
                if (last.Last + 1 == range.Base && last.BackingBase + last.Size == range.BackingBase)
                {
                    merged[^1] = last with { Size = last.Size + range.Size };
                    continue;
                }
            }
            merged.Add(range);
        }
        _ranges = merged.ToArray();
    }

    public static MemoryMap Empty { get; } = new([]);

    /// <summary>A map of one range, 0..<paramref name="size"/>, not remapped.</summary>
    public static MemoryMap Linear(ulong size) => size == 0 ? Empty : new([new MemoryRange(0, size)]);

    public int Count => _ranges.Length;

    public MemoryRange this[int index] => _ranges[index];

    public ReadOnlySpan<MemoryRange> Ranges => _ranges;

    /// <summary>The highest mapped address (inclusive), or 0 for an empty map.</summary>
    public ulong MaxAddress => _ranges.Length == 0 ? 0 : _ranges[^1].Last;

    /// <summary>How many bytes the map covers.</summary>
    public ulong TotalSize
    {
        get
        {
            ulong total = 0;
            foreach (var range in _ranges)
                total += range.Size;
            return total;
        }
    }

    /// <summary>Finds the range holding <paramref name="address"/>.</summary>
    /// <returns>The range's index, or -1 when the address is not mapped.</returns>
    public int IndexOf(ulong address)
    {
        int lo = 0, hi = _ranges.Length - 1;
        while (lo <= hi)
        {
            int mid = (int)((uint)(lo + hi) >> 1);
            ref readonly var range = ref _ranges[mid];
            if (address < range.Base)
                hi = mid - 1;
            else if (unchecked(address - range.Base) >= range.Size)
                lo = mid + 1;
            else
                return mid;
        }
        return -1;
    }

    /// <summary>Translates a physical address to its backing address.</summary>
    /// <param name="address">The physical address.</param>
    /// <param name="backing">The backing address of <paramref name="address"/>.</param>
    /// <param name="contiguous">How many bytes from <paramref name="address"/> on stay in the same range.</param>
    public bool TryTranslate(ulong address, out ulong backing, out ulong contiguous)
    {
        int index = IndexOf(address);
        if (index < 0)
        {
            backing = 0;
            contiguous = 0;
            return false;
        }
        var range = _ranges[index];
        ulong delta = address - range.Base;
        backing = range.BackingBase + delta;
        contiguous = range.Size - delta;
        return true;
    }

    /// <summary>Parses the text form <see cref="ToString"/> writes: one range a line, <c>base last [backing]</c>, hex.</summary>
    /// <remarks>This is the form of LeechCore's memory map files and memflow's <c>--memmap</c>; <c>#</c> starts a comment.</remarks>
    /// <exception cref="FormatException">A line does not hold two or three hexadecimal numbers, or last &lt; base.</exception>
    public static MemoryMap Parse(string text)
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
            var parts = line.Split([' ', '\t', '\r', '-'], StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 0)
                continue;
            if (parts.Length is < 2 or > 3
                || !TryParseHex(parts[0], out var first)
                || !TryParseHex(parts[1], out var last)
                || last < first)
                throw new FormatException($"Memory map line {lineNumber}: expected 'base last [backing]' in hexadecimal with last >= base, found '{rawLine.Trim()}'.");
            ulong backing = first;
            if (parts.Length == 3 && !TryParseHex(parts[2], out backing))
                throw new FormatException($"Memory map line {lineNumber}: the backing address '{parts[2]}' is not hexadecimal.");
            if (last - first == ulong.MaxValue)
                throw new FormatException($"Memory map line {lineNumber}: a range cannot span the whole 64-bit address space.");
            ranges.Add(new MemoryRange(first, last - first + 1, backing));
        }
        try
        {
            return new MemoryMap(ranges);
        }
        catch (ArgumentException e)
        {
            throw new FormatException(e.Message, e);
        }
    }

    private static bool TryParseHex(string text, out ulong value)
    {
        if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            text = text[2..];
        return ulong.TryParse(text, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
    }

    public override string ToString()
    {
        var text = new StringBuilder();
        foreach (var range in _ranges)
        {
            text.Append(CultureInfo.InvariantCulture, $"0x{range.Base:x} 0x{range.Last:x}");
            if (range.BackingBase != range.Base)
                text.Append(CultureInfo.InvariantCulture, $" 0x{range.BackingBase:x}");
            text.Append('\n');
        }
        return text.ToString();
    }

    public IEnumerator<MemoryRange> GetEnumerator() => ((IEnumerable<MemoryRange>)_ranges).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
