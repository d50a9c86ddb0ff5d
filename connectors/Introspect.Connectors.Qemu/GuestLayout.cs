using System.Globalization;

namespace Introspect.Connectors.Qemu;

/// <summary>One guest-physical range of guest RAM and where it lies in the RAM block.</summary>
/// <param name="GuestPhysical">The first guest-physical address.</param>
/// <param name="Size">Its length in bytes.</param>
/// <param name="BlockOffset">The offset in the RAM block (and in a memory-backend-file) where it is stored.</param>
internal readonly record struct RamRange(ulong GuestPhysical, ulong Size, ulong BlockOffset);

/// <summary>The guest-physical layout of guest RAM: from QEMU's own <c>info mtree -f</c>, or from the machine type's rules.</summary>
internal static class GuestLayout
{
    public const ulong FourGiB = 1UL << 32;

    /// <summary>The most ranges taken from an <c>info mtree -f</c> reply.</summary>
    private const int MaxRanges = 4096;

    /// <summary>
    /// QEMU's placement of RAM for <c>pc</c> (i440FX) and <c>q35</c>: RAM below the PCI hole from 0 (less the VGA and
    /// ROM window 0xa0000–0xfffff), the rest from 4 GiB. The hole starts at 3.5 GiB (pc) or 2.75 GiB (q35) for guests
    /// smaller than that, else at 3 GiB (pc) or 2 GiB (q35); <c>max-ram-below-4g</c> lowers it.
    /// </summary>
    /// <exception cref="InvalidDataException">The machine type is neither family.</exception>
    public static List<RamRange> FromMachineRules(string? machineType, ulong ramBytes, ulong? maxRamBelow4G, out string description)
    {
        var type = machineType ?? "pc";
        bool q35 = type.Contains("q35", StringComparison.Ordinal);
        bool pc = !q35 && (type == "pc" || type.StartsWith("pc-", StringComparison.Ordinal));
        if (!q35 && !pc)
            throw new InvalidDataException($"QEMU command line, option -machine: the machine type '{type}' has no known RAM layout; expected pc or q35 (or a QMP socket, or map_base=/map_size=).");
        ulong lowLimit = q35
            ? (ramBytes >= 0xb000_0000 ? 0x8000_0000UL : 0xb000_0000UL)
            : (ramBytes >= 0xe000_0000 ? 0xc000_0000UL : 0xe000_0000UL);
        if (maxRamBelow4G is { } max && max < lowLimit)
            lowLimit = max;
        ulong low = Math.Min(ramBytes, lowLimit);
        var ranges = new List<RamRange>();
        const ulong LegacyStart = 0xa_0000, LegacyEnd = 0x10_0000;
        if (low <= LegacyStart)
        {
            ranges.Add(new RamRange(0, low, 0));
        }
        else
        {
            ranges.Add(new RamRange(0, LegacyStart, 0));
            if (low > LegacyEnd)
                ranges.Add(new RamRange(LegacyEnd, low - LegacyEnd, LegacyEnd));
        }
        if (ramBytes > low)
            ranges.Add(new RamRange(FourGiB, ramBytes - low, low));
        description = string.Create(CultureInfo.InvariantCulture, $"{(q35 ? "q35" : "pc")} rules for {ramBytes >> 20} MiB (below 4 GiB: {low >> 20} MiB)");
        return ranges;
    }

    /// <summary>
    /// The ranges of the RAM region in <c>info mtree -f</c>'s flat view of the <c>memory</c> address space: lines
    /// <c>START-END (prio N, ram): NAME [@OFFSET]</c>. The region with the most bytes is the guest's RAM block.
    /// </summary>
    /// <exception cref="InvalidDataException">No flat view of <c>memory</c>, or no RAM in it; the message says what was seen.</exception>
    public static List<RamRange> FromMtree(string text, out string regionName)
    {
        ArgumentNullException.ThrowIfNull(text);
        var byRegion = new Dictionary<string, List<RamRange>>(StringComparer.Ordinal);
        bool inMemoryView = false, sawMemoryView = false;
        int taken = 0;
        foreach (var rawLine in text.AsSpan().EnumerateLines())
        {
            var line = rawLine.Trim();
            if (line.StartsWith("FlatView", StringComparison.Ordinal))
            {
                inMemoryView = false;
                continue;
            }
            if (line.StartsWith("AS \"memory\"", StringComparison.Ordinal))
            {
                inMemoryView = sawMemoryView = true;
                continue;
            }
            if (!inMemoryView || taken >= MaxRanges)
                continue;
            int dash = line.IndexOf('-');
            int open = line.IndexOf(" (", StringComparison.Ordinal);
            int close = line.IndexOf("): ", StringComparison.Ordinal);
            if (dash <= 0 || open < dash || close < open)
                continue;
            var attributes = line[(open + 2)..close];
            if (!attributes.EndsWith(", ram", StringComparison.Ordinal))
                continue;
            if (!ulong.TryParse(line[..dash], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong start)
                || !ulong.TryParse(line[(dash + 1)..open], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong last)
                || last < start || last - start == ulong.MaxValue)
                throw new InvalidDataException($"QMP 'info mtree -f': the range in '{line}' is malformed; expected START-END in hexadecimal with START <= END.");
            var rest = line[(close + 3)..];
            int space = rest.IndexOf(' ');
            var name = (space < 0 ? rest : rest[..space]).ToString();
            ulong offset = 0;
            int at = rest.IndexOf('@');
            if (at >= 0)
            {
                var offsetText = rest[(at + 1)..];
                int end = offsetText.IndexOf(' ');
                if (end >= 0)
                    offsetText = offsetText[..end];
                if (!ulong.TryParse(offsetText, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out offset))
                    throw new InvalidDataException($"QMP 'info mtree -f': the offset in '{line}' is malformed; expected @ and a hexadecimal number.");
            }
            if (!byRegion.TryGetValue(name, out var list))
                byRegion[name] = list = [];
            list.Add(new RamRange(start, last - start + 1, offset));
            taken++;
        }
        if (!sawMemoryView)
            throw new InvalidDataException("QMP 'info mtree -f': no flat view of the address space \"memory\" in the reply.");
        if (byRegion.Count == 0)
            throw new InvalidDataException("QMP 'info mtree -f': the address space \"memory\" maps no RAM.");
        var best = byRegion.MaxBy(pair => pair.Value.Aggregate(0UL, (sum, range) => sum + range.Size));
        regionName = best.Key;
        return best.Value;
    }
}
