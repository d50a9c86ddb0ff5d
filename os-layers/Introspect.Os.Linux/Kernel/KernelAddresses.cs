namespace Introspect.Os.Linux.Kernel;

/// <summary>The fixed points of the x86-64 Linux address space (Documentation/arch/x86/x86_64/mm.rst).</summary>
internal static class KernelAddresses
{
    /// <summary>The lowest kernel address under either paging mode (5-level paging's kernel half starts here).</summary>
    public const ulong KernelHalfStart = 0xff00_0000_0000_0000;

    /// <summary><c>__START_KERNEL_map</c>: the kernel image's mapping begins here, at physical <c>phys_base</c>.</summary>
    public const ulong StartKernelMap = 0xffff_ffff_8000_0000;

    /// <summary>The image's mapping spans at most <c>KERNEL_IMAGE_SIZE</c>; modules follow.</summary>
    public const ulong KernelImageSize = 1UL << 30;

    /// <summary>The default <c>CONFIG_PHYSICAL_START</c>: where an unmoved kernel's <c>_text</c> is linked (virtual 0xffffffff81000000).</summary>
    public const ulong DefaultPhysicalStart = 0x100_0000;

    /// <summary><c>CONFIG_PHYSICAL_ALIGN</c>: KASLR moves the kernel in steps of 2 MiB, physically and virtually.</summary>
    public const ulong KernelAlign = 0x20_0000;

    /// <summary>The direct map's base when <c>page_offset_base</c> is not randomized, 4-level paging.</summary>
    public const ulong DefaultPageOffset4 = 0xffff_8880_0000_0000;

    /// <summary>The direct map's base when not randomized, 5-level paging.</summary>
    public const ulong DefaultPageOffset5 = 0xff11_0000_0000_0000;

    /// <summary><c>vmemmap_base</c> when not randomized, 4-level paging.</summary>
    public const ulong DefaultVmemmap4 = 0xffff_ea00_0000_0000;

    /// <summary><c>vmemmap_base</c> when not randomized, 5-level paging.</summary>
    public const ulong DefaultVmemmap5 = 0xffd4_0000_0000_0000;

    /// <summary>The highest user-space address plus one under 4-level paging (5-level: <see cref="UserEnd5"/>).</summary>
    public const ulong UserEnd4 = 0x0000_8000_0000_0000;

    public const ulong UserEnd5 = 0x0100_0000_0000_0000;
}

/// <summary>The <c>KEY=value</c> lines of a kernel's <c>VMCOREINFO</c> note.</summary>
internal sealed class Vmcoreinfo
{
    private readonly Dictionary<string, string> _values;

    private Vmcoreinfo(Dictionary<string, string> values) => _values = values;

    public static Vmcoreinfo Empty { get; } = new([]);

    public bool IsEmpty => _values.Count == 0;

    public static Vmcoreinfo Parse(string? text)
    {
        if (string.IsNullOrEmpty(text))
            return Empty;
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n'))
        {
            int equals = line.IndexOf('=', StringComparison.Ordinal);
            if (equals > 0)
                values.TryAdd(line[..equals].Trim(), line[(equals + 1)..].Trim().TrimEnd('\0'));
        }
        return new Vmcoreinfo(values);
    }

    /// <summary><c>SYMBOL(name)=hex</c>.</summary>
    public ulong? Symbol(string name) =>
        _values.TryGetValue($"SYMBOL({name})", out var text) && ulong.TryParse(text, System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out ulong value)
            ? value : null;

    /// <summary><c>NUMBER(name)=decimal</c> (signed).</summary>
    public long? Number(string name) =>
        _values.TryGetValue($"NUMBER({name})", out var text) && long.TryParse(text, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out long value)
            ? value : null;

    /// <summary><c>KERNELOFFSET=hex</c>: the virtual KASLR slide.</summary>
    public ulong? KernelOffset =>
        _values.TryGetValue("KERNELOFFSET", out var text) && ulong.TryParse(text, System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out ulong value)
            ? value : null;

    public string? OsRelease => _values.GetValueOrDefault("OSRELEASE");
}
