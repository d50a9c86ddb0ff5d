using System.Globalization;
using Introspect.Abi;
using Introspect.Core.Memory;
using Introspect.Core.Translation;

namespace Introspect.Os.Linux.Kernel;

/// <summary>Finds the running kernel in physical memory: its symbols, where its image lies, its page tables and direct map.</summary>
/// <remarks>
/// <para>
/// The symbols come from kallsyms, located through <c>VMCOREINFO</c> when a connector supplies it and otherwise
/// found by their shape (<see cref="Kallsyms"/>); failing both, from a symbol file given by the user, placed by
/// finding the banner in memory. The image is physically contiguous and 2 MiB aligned, so once the symbols are
/// known <c>_text</c>'s physical address is the one 2 MiB step below the tables at which <c>linux_banner</c> reads
/// <c>Linux version</c> and <c>phys_base</c> holds the matching value.
/// </para>
/// <para>
/// The paging mode is the one under which <c>init_top_pgt</c> maps <c>linux_banner</c> where it was found
/// (5-level first when CR4.LA57, <c>VMCOREINFO</c> or <c>__pgtable_l5_enabled</c> says so). Hints only change
/// the order things are tried in; each result is checked against memory.
/// </para>
/// </remarks>
internal static class KernelLocator
{
    private const ulong Cr4La57 = 1UL << 12;
    private const int MaxBannerBytes = 512;
    private static readonly byte[] BannerPrefix = "Linux version "u8.ToArray();

    public static KernelImage Locate(IPhysicalMemory memory, ConnectorHints hints, ExternalSymbols? external, IPluginContext context)
    {
        var vmcore = Vmcoreinfo.Parse(hints.VmcoreInfo);
        var tried = new List<string>();
        SymbolTable? symbols;
        long physBase;
        string method;

        if (TryFromVmcoreinfo(memory, vmcore, tried, context, out var fromNote, out long notePhysBase)
            && BannerAt(memory, fromNote!, notePhysBase, tried, context))
        {
            (symbols, physBase) = (fromNote!, notePhysBase);
            method = "kallsyms, located through VMCOREINFO";
        }
        else if (ScanForKallsyms(memory, tried) is { } scanned)
        {
            (symbols, physBase) = scanned;
            method = "kallsyms, found in physical memory";
        }
        else if (external is not null)
        {
            return FromExternalOnly(memory, hints, vmcore, external, tried, context);
        }
        else
        {
            return ThrowHelper.ThrowInvalid<KernelImage>($"linux: no Linux kernel found in this memory: {string.Join("; ", tried)}. A kernel without kallsyms needs systemmap=FILE or isf=FILE.");
        }

        ulong text = TextOf(symbols, "kallsyms");
        if (external is not null)
        {
            // The file's link-time addresses, moved by the slide kallsyms shows, fill in what kallsyms lacks.
            if (external.Symbols.TryGetAddress("_text", out ulong linkText))
                symbols = symbols.MergeMissing(external.Slid(unchecked((long)(text - linkText))));
            else
                context.Log(PluginLogLevel.Warning, $"linux: {external.Description} has no _text symbol; its symbols are not used.");
        }
        return Complete(memory, hints, vmcore, symbols, text, physBase, method, context);
    }

    /// <summary>Everything that follows from the symbols and <c>phys_base</c>: page tables, direct map, banner.</summary>
    private static KernelImage Complete(IPhysicalMemory memory, ConnectorHints hints, Vmcoreinfo vmcore, SymbolTable symbols,
        ulong text, long physBase, string method, IPluginContext context)
    {
        ulong textPhysical = unchecked(text - KernelAddresses.StartKernelMap + (ulong)physBase);
        ulong? end = symbols.TryGetAddress("_end", out ulong endAddress) && endAddress > text && endAddress - text < KernelAddresses.KernelImageSize
            ? endAddress : null;
        var partial = new KernelImage
        {
            Symbols = symbols,
            TextVirtual = text,
            TextPhysical = textPhysical,
            EndVirtual = end,
            PhysBase = physBase,
            VirtualSlide = vmcore.KernelOffset is { } offset ? (long)offset : unchecked((long)(text - KernelAddresses.StartKernelMap - KernelAddresses.DefaultPhysicalStart)),
            PhysicalSlide = unchecked((long)(textPhysical - KernelAddresses.DefaultPhysicalStart)),
            Paging = PagingArchitecture.X64,
            PageTableRoot = 0,
            PageOffsetBase = 0,
            VmemmapBase = 0,
            Banner = "",
            Method = method,
        };

        if (!symbols.TryGetAddress("linux_banner", out ulong bannerVirtual) || partial.ImagePhysical(bannerVirtual) is not { } bannerPhysical)
            return ThrowHelper.ThrowInvalid<KernelImage>("linux: the kernel's symbols have no linux_banner inside the image (_text.._end); expected the banner that names the kernel.");
        string banner = ReadBanner(memory, bannerPhysical)
            ?? ThrowHelper.ThrowInvalid<string>(string.Create(CultureInfo.InvariantCulture, $"linux: linux_banner at physical 0x{bannerPhysical:x} does not read 'Linux version ...'."));

        var (paging, root) = FindPaging(memory, hints, vmcore, symbols, partial, bannerVirtual, bannerPhysical);

        ulong pageOffset = paging == PagingArchitecture.X64FiveLevel ? KernelAddresses.DefaultPageOffset5 : KernelAddresses.DefaultPageOffset4;
        if (ReadImageValue(memory, partial, "page_offset_base") is { } randomized)
            pageOffset = randomized;
        var kernelSpace = new AddressSpace(memory, paging, root);
        if (!kernelSpace.TryTranslate(pageOffset + textPhysical, out var direct) || direct.PhysicalAddress != textPhysical)
            context.Log(PluginLogLevel.Warning, string.Create(CultureInfo.InvariantCulture,
                $"linux: page_offset_base 0x{pageOffset:x} does not map the kernel's physical 0x{textPhysical:x} to itself; direct-map addresses may read wrongly."));
        ulong vmemmap = ReadImageValue(memory, partial, "vmemmap_base")
            ?? (paging == PagingArchitecture.X64FiveLevel ? KernelAddresses.DefaultVmemmap5 : KernelAddresses.DefaultVmemmap4);

        return partial with
        {
            Paging = paging,
            PageTableRoot = root,
            PageOffsetBase = pageOffset,
            VmemmapBase = vmemmap,
            Banner = banner,
        };
    }

    /// <summary>The kernel's page-table root and paging mode: the pair that maps the banner where it was found.</summary>
    private static (PagingArchitecture Paging, ulong Root) FindPaging(IPhysicalMemory memory, ConnectorHints hints, Vmcoreinfo vmcore,
        SymbolTable symbols, KernelImage image, ulong bannerVirtual, ulong bannerPhysical)
    {
        var roots = new List<ulong>();
        foreach (var name in (ReadOnlySpan<string>)["init_top_pgt", "swapper_pg_dir", "init_level4_pgt"])
        {
            if (symbols.TryGetAddress(name, out ulong table) && image.ImagePhysical(table) is { } physical && !roots.Contains(physical))
                roots.Add(physical);
        }
        foreach (var cpu in hints.Cpus)
        {
            ulong root = cpu.Cr3 & 0x000F_FFFF_FFFF_F000;
            if (root != 0 && !roots.Contains(root))
                roots.Add(root);
        }
        if (hints.DirectoryTableBase is { } hinted && !roots.Contains(hinted & 0x000F_FFFF_FFFF_F000))
            roots.Add(hinted & 0x000F_FFFF_FFFF_F000);

        bool fiveLevelFirst = hints.Cpus.Any(c => (c.Cr4 & Cr4La57) != 0)
            || vmcore.Number("pgtable_l5_enabled") is > 0
            || (symbols.TryGetAddress("__pgtable_l5_enabled", out ulong flag) && image.ImagePhysical(flag) is { } flagPhysical
                && memory.TryRead(flagPhysical, out uint enabled) && enabled != 0);
        PagingArchitecture[] modes = fiveLevelFirst
            ? [PagingArchitecture.X64FiveLevel, PagingArchitecture.X64]
            : [PagingArchitecture.X64, PagingArchitecture.X64FiveLevel];
        foreach (var root in roots)
        {
            foreach (var mode in modes)
            {
                var space = new AddressSpace(memory, mode, root);
                if (space.TryTranslate(bannerVirtual, out var translation) && translation.PhysicalAddress == bannerPhysical)
                    return (mode, root);
            }
        }
        return ThrowHelper.ThrowInvalid<(PagingArchitecture, ulong)>(string.Create(CultureInfo.InvariantCulture,
            $"linux: none of the page-table roots tried ({string.Join(", ", roots.Select(r => $"0x{r:x}"))}) maps linux_banner 0x{bannerVirtual:x} to physical 0x{bannerPhysical:x} under 4- or 5-level paging."));
    }

    private static bool TryFromVmcoreinfo(IPhysicalMemory memory, Vmcoreinfo vmcore, List<string> tried, IPluginContext context,
        out SymbolTable? symbols, out long physBase)
    {
        symbols = null;
        physBase = 0;
        if (vmcore.IsEmpty)
        {
            tried.Add("no VMCOREINFO from the connector");
            return false;
        }
        if (vmcore.Number("phys_base") is not { } noteBase
            || vmcore.Symbol("kallsyms_token_table") is not { } tokenTable || vmcore.Symbol("kallsyms_token_index") is not { } tokenIndex
            || vmcore.Symbol("kallsyms_names") is not { } names || vmcore.Symbol("kallsyms_num_syms") is not { } countAddress
            || vmcore.Symbol("kallsyms_offsets") is not { } offsets || vmcore.Symbol("kallsyms_relative_base") is not { } relativeBase)
        {
            tried.Add("VMCOREINFO lacks phys_base or the kallsyms_* symbols (kernels before 6.0 do not list them)");
            return false;
        }
        physBase = noteBase;
        ulong Physical(ulong virtualAddress) => unchecked(virtualAddress - KernelAddresses.StartKernelMap + (ulong)noteBase);
        if (!memory.TryRead(Physical(countAddress), out uint count))
        {
            tried.Add(string.Create(CultureInfo.InvariantCulture, $"VMCOREINFO's kallsyms_num_syms at physical 0x{Physical(countAddress):x} cannot be read"));
            return false;
        }
        var layout = new KallsymsLayout(Physical(tokenTable), Physical(tokenIndex), Physical(names), count, Physical(offsets), Physical(relativeBase));
        try
        {
            symbols = Kallsyms.Decode(memory, layout);
            return true;
        }
        catch (InvalidDataException e)
        {
            context.Log(PluginLogLevel.Warning, $"linux: the kallsyms tables VMCOREINFO names do not decode ({e.Message}); looking for them in memory instead.");
            tried.Add("VMCOREINFO's kallsyms tables do not decode");
            return false;
        }
    }

    /// <summary>The first kallsyms in physical memory that decodes, names the banner and sits in an image the banner places.</summary>
    private static (SymbolTable Symbols, long PhysBase)? ScanForKallsyms(IPhysicalMemory memory, List<string> tried)
    {
        (SymbolTable, long)? found = null;
        int hits = 0, decoded = 0;
        PhysicalScan.FindFirst(memory, PhysicalScan.RangesOf(memory), Kallsyms.DigitPattern, hit =>
        {
            hits++;
            if (Kallsyms.TryLocate(memory, hit) is not { } layout)
                return false;
            SymbolTable symbols;
            try
            {
                symbols = Kallsyms.Decode(memory, layout);
            }
            catch (InvalidDataException)
            {
                return false;
            }
            if (!symbols.TryGetAddress("linux_banner", out _) || !HasText(symbols))
                return false;
            decoded++;
            // A copy of the tables outside a running image (a file in the page cache) decodes too; only the image has the banner in place.
            if (FindPhysBase(memory, symbols, TextOf(symbols, "kallsyms"), layout.TokenTable) is not { } physBase)
                return false;
            found = (symbols, physBase);
            return true;
        });
        if (found is null)
            tried.Add(hits == 0
                ? "no kallsyms token table in physical memory (its digits '0'..'9' never occur as tokens)"
                : decoded == 0
                    ? $"{hits} places look like kallsyms' token table, but none has the other tables around it"
                    : $"{decoded} kallsyms tables decode, but in none does linux_banner read 'Linux version' at a 2 MiB aligned image");
        return found;
    }

    /// <summary>Whether <c>linux_banner</c> reads <c>Linux version</c> where the symbols and <paramref name="physBase"/> put it.</summary>
    private static bool BannerAt(IPhysicalMemory memory, SymbolTable symbols, long physBase, List<string> tried, IPluginContext context)
    {
        if (symbols.TryGetAddress("linux_banner", out ulong banner)
            && ReadBanner(memory, unchecked(banner - KernelAddresses.StartKernelMap + (ulong)physBase)) is not null)
            return true;
        context.Log(PluginLogLevel.Warning, string.Create(CultureInfo.InvariantCulture,
            $"linux: with VMCOREINFO's phys_base {physBase}, linux_banner does not read 'Linux version'; looking for the kernel in memory instead."));
        tried.Add("VMCOREINFO's phys_base does not place linux_banner");
        return false;
    }

    private static bool HasText(SymbolTable symbols) =>
        symbols.TryGetAddress("_text", out _) || symbols.TryGetAddress("_stext", out _) || symbols.TryGetAddress("startup_64", out _);

    private static ulong TextOf(SymbolTable symbols, string source)
    {
        foreach (var name in (ReadOnlySpan<string>)["_text", "startup_64", "_stext"])
        {
            if (symbols.TryGetAddress(name, out ulong address))
                return address;
        }
        return ThrowHelper.ThrowInvalid<ulong>($"linux: {source} has no _text, startup_64 or _stext symbol; expected the kernel image's start.");
    }

    /// <summary>Tries each 2 MiB step below <paramref name="anchor"/> as <c>_text</c>'s physical address.</summary>
    private static long? FindPhysBase(IPhysicalMemory memory, SymbolTable symbols, ulong text, ulong anchor)
    {
        if (!symbols.TryGetAddress("linux_banner", out ulong banner) || banner < text)
            return null;
        bool hasPhysBase = symbols.TryGetAddress("phys_base", out ulong physBaseSymbol) && physBaseSymbol >= text;
        ulong candidate = anchor & ~(KernelAddresses.KernelAlign - 1);
        for (int step = 0; step < (int)(KernelAddresses.KernelImageSize / KernelAddresses.KernelAlign); step++)
        {
            if (ReadBanner(memory, unchecked(candidate + (banner - text))) is not null)
            {
                long physBase = unchecked((long)(candidate - (text - KernelAddresses.StartKernelMap)));
                if (!hasPhysBase || (memory.TryRead(unchecked(candidate + (physBaseSymbol - text)), out long stored) && stored == physBase))
                    return physBase;
            }
            if (candidate < KernelAddresses.KernelAlign)
                break;
            candidate -= KernelAddresses.KernelAlign;
        }
        return null;
    }

    /// <summary>The banner at <paramref name="physical"/>, or null when it does not start with <c>Linux version </c>.</summary>
    private static string? ReadBanner(IPhysicalMemory memory, ulong physical)
    {
        Span<byte> prefix = stackalloc byte[BannerPrefix.Length];
        if (memory.Read(physical, prefix) != prefix.Length || !prefix.SequenceEqual(BannerPrefix))
            return null;
        var text = memory.ReadUtf8String(physical, MaxBannerBytes);
        return text?.TrimEnd('\n', '\r');
    }

    private static ulong? ReadImageValue(IPhysicalMemory memory, KernelImage image, string name) =>
        image.Symbols.TryGetAddress(name, out ulong address) && image.ImagePhysical(address) is { } physical
            && memory.TryRead(physical, out ulong value) ? value : null;

    /// <summary>Without kallsyms: the banner found in memory places the file's symbols physically, and the page tables
    /// tell which 2 MiB step of the kernel's virtual range maps <c>_text</c>, which gives the slide.</summary>
    private static KernelImage FromExternalOnly(IPhysicalMemory memory, ConnectorHints hints, Vmcoreinfo vmcore, ExternalSymbols external,
        List<string> tried, IPluginContext context)
    {
        var link = external.Symbols;
        ulong linkText = TextOf(link, external.Description);
        if (!link.TryGetAddress("linux_banner", out ulong linkBanner) || linkBanner < linkText)
            ThrowHelper.ThrowInvalid($"linux: no kallsyms in memory ({string.Join("; ", tried)}), and {external.Description} has no linux_banner after _text to place it by.");
        link.TryGetAddress("init_top_pgt", out ulong linkRoot);
        KernelImage? found = null;
        PhysicalScan.FindFirst(memory, PhysicalScan.RangesOf(memory), BannerPrefix, hit =>
        {
            if (hit < linkBanner - linkText)
                return false;
            ulong textPhysical = hit - (linkBanner - linkText);
            if ((textPhysical & (KernelAddresses.KernelAlign - 1)) != 0)
                return false;
            if (external.BannerText is { } expected && memory.ReadUtf8String(hit, MaxBannerBytes) is { } actual
                && !actual.StartsWith(expected.TrimEnd('\n', '\0'), StringComparison.Ordinal))
                return false;
            ulong root = linkRoot != 0 ? unchecked(textPhysical + linkRoot - linkText) : 0;
            var roots = new List<ulong>();
            if (root != 0)
                roots.Add(root);
            roots.AddRange(hints.Cpus.Select(c => c.Cr3 & 0x000F_FFFF_FFFF_F000).Where(r => r != 0));
            foreach (var candidateRoot in roots)
            {
                foreach (var mode in (ReadOnlySpan<PagingArchitecture>)[PagingArchitecture.X64, PagingArchitecture.X64FiveLevel])
                {
                    var space = new AddressSpace(memory, mode, candidateRoot);
                    for (ulong va = KernelAddresses.StartKernelMap; va < KernelAddresses.StartKernelMap + KernelAddresses.KernelImageSize; va += KernelAddresses.KernelAlign)
                    {
                        if (!space.TryTranslate(va, out var translation) || translation.PhysicalAddress != textPhysical)
                            continue;
                        long slide = unchecked((long)(va - linkText));
                        long physBase = unchecked((long)(textPhysical - (va - KernelAddresses.StartKernelMap)));
                        found = Complete(memory, hints, vmcore, external.Slid(slide), va, physBase,
                            $"symbols from {external.Description}, placed by the banner in memory", context);
                        return true;
                    }
                }
            }
            return false;
        });
        return found ?? ThrowHelper.ThrowInvalid<KernelImage>(
            $"linux: no kallsyms in memory ({string.Join("; ", tried)}), and no 'Linux version' in memory sits where {external.Description} puts linux_banner relative to a 2 MiB aligned _text that the page tables map.");
    }
}

/// <summary>Symbols (and perhaps types) from a file the user gave: System.map or a Volatility ISF JSON file.</summary>
/// <param name="Description">The file, for messages.</param>
/// <param name="Symbols">The symbols at their link-time addresses.</param>
/// <param name="BannerText">The banner the file expects (ISF keeps <c>linux_banner</c>'s bytes), to tell builds apart.</param>
internal sealed record ExternalSymbols(string Description, SymbolTable Symbols, string? BannerText)
{
    /// <summary>The symbols moved by <paramref name="slide"/>; small absolute values (per-CPU offsets) stay put.</summary>
    public SymbolTable Slid(long slide)
    {
        var moved = new List<KernelSymbol>(Symbols.Count);
        foreach (var symbol in Symbols.Symbols)
        {
            ulong address = symbol.Address >= KernelAddresses.KernelHalfStart ? unchecked(symbol.Address + (ulong)slide) : symbol.Address;
            moved.Add(symbol with { Address = address });
        }
        return new SymbolTable(moved, Description);
    }
}
