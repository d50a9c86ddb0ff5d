using System.Globalization;
using Introspect.Abi;
using Introspect.Core.Caching;
using Introspect.Core.Memory;
using Introspect.Core.Translation;
using Introspect.Os.Windows;
using Introspect.Os.Windows.Bootstrap;
using Introspect.Os.Windows.Offsets;
using Introspect.Symbols.Pdb;
using Introspect.Symbols.Pe;
using Introspect.Symbols.Store;

[assembly: IntrospectPlugin(PluginKind.OperatingSystem, "windows", "1.0.0", IntrospectAbi.Version, typeof(WindowsOsFactory),
    Description = "Windows (x64, x86 PAE, x86) from physical memory: DTB, kernel and offsets found several ways (PDB, built-in layouts, heuristic); processes, VADs, modules, kernel modules, symbols, types, hidden processes.")]

namespace Introspect.Os.Windows;

/// <summary>Recognises a Windows kernel in physical memory: the <c>windows</c> OS layer.</summary>
/// <remarks>
/// <para>
/// Every step has fallbacks, and what was tried is kept as an account (the <c>bootstrap</c> property, printed by
/// <c>introspect kernel --explain</c>): the page-table root from the connector's hint, the low stub or a scan for
/// self-referencing page tables (x64, then x86 PAE, then x86); the kernel from the low stub's entry or a scan of the
/// kernel range; the version from <c>NtBuildNumber</c> and KUSER_SHARED_DATA; the structure offsets from the kernel's
/// PDB (through the symbol store), a built-in layout for the build, or a heuristic locator working from the System
/// process.
/// </para>
/// <para>
/// Arguments: <c>symbols=PATH</c> (a symbol path: <c>srv*CACHE*URL</c>, a URL or a folder; default
/// <c>_NT_SYMBOL_PATH</c> or Microsoft's server), <c>offline=on</c> (caches and folders only),
/// <c>offsets=auto|pdb|builtin|heuristic</c> (force one source), <c>poolscan=off</c> (no search for hidden processes).
/// </para>
/// </remarks>
public sealed class WindowsOsFactory : IOsLayerFactory
{
    private const int TlbEntries = 1 << 14;
    private const int MaxTlbEntries = 1 << 26;

    /// <inheritdoc />
    public IReadOnlyList<PluginParameter> Parameters { get; } =
    [
        new PluginParameter("symbols", PluginParameterType.String, "Where to look for the kernel's PDB: a symbol path (srv*CACHE*URL;FOLDER), a symbol server URL or a folder. Default: _NT_SYMBOL_PATH, else Microsoft's symbol server."),
        new PluginParameter("offline", PluginParameterType.Boolean, "Look for the PDB in caches and folders only, never on the network.") { DefaultValue = "off" },
        new PluginParameter("offsets", PluginParameterType.Choice, "Where structure offsets come from: auto (PDB, then built-in layouts, then the heuristic), or only one of them.")
            { DefaultValue = "auto", Choices = ["auto", "pdb", "builtin", "heuristic"] },
        new PluginParameter("poolscan", PluginParameterType.Boolean, "Scan kernel pool for EPROCESS allocations to find processes unlinked from the process list.") { DefaultValue = "on" },
    ];

    /// <inheritdoc />
    public IOperatingSystem Create(IPhysicalMemory input, PluginArguments arguments, IPluginContext context)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(arguments);
        ArgumentNullException.ThrowIfNull(context);
        foreach (var key in arguments.Values.Keys)
        {
            if (!Parameters.Any(p => string.Equals(p.Name, key, StringComparison.OrdinalIgnoreCase)))
                throw new PluginArgumentException($"{arguments.PluginName}: unknown argument '{key}'; expected {string.Join(", ", Parameters.Select(p => p.Name))}.");
        }
        string offsetsChoice = (arguments.GetString("offsets") ?? "auto").ToLowerInvariant();
        if (offsetsChoice is not ("auto" or "pdb" or "builtin" or "heuristic"))
            throw new PluginArgumentException($"{arguments.PluginName}: the argument 'offsets={offsetsChoice}' is not one of auto, pdb, builtin, heuristic.");
        bool offline = arguments.GetBoolean("offline") ?? false;
        bool poolScan = arguments.GetBoolean("poolscan") ?? true;
        SymbolPath? symbolPath = null;
        if (arguments.GetString("symbols") is { } symbolsText)
        {
            try
            {
                symbolPath = SymbolPath.Parse(symbolsText);
            }
            catch (FormatException e)
            {
                throw new PluginArgumentException($"{arguments.PluginName}: the argument 'symbols={symbolsText}' is not a symbol path: {e.Message}", e);
            }
        }

        var hints = input is IConnectorHints withHints ? withHints.Hints : ConnectorHints.None;
        var account = new BootstrapAccount(context);
        var kernel = Bootstrap(input, hints, account, context, offsetsChoice, symbolPath, offline);
        var info = Describe(kernel, account);
        context.Log(PluginLogLevel.Debug, $"windows: {info.Version}; offsets from {kernel.Offsets.Source}.");
        return new WindowsOperatingSystem(input, kernel, info, poolScan);
    }

    private static WindowsKernel Bootstrap(IPhysicalMemory input, ConnectorHints hints, BootstrapAccount account, IPluginContext context,
        string offsetsChoice, SymbolPath? symbolPath, bool offline)
    {
        // One translation cache for the bootstrap and the layer: entries are keyed by root, so a candidate that leads
        // nowhere leaves nothing behind that another could hit.
        var tlb = CreateTlb(input, context);
        DtbCandidate? chosen = null;
        (ulong Base, PeImage Image, string Method)? located = null;
        AddressSpace? space = null;
        int tried = 0;
        foreach (var candidate in DtbLocator.Candidates(input, hints, account))
        {
            tried++;
            space = new AddressSpace(input, candidate.Paging, candidate.Dtb, tlb: tlb);
            located = KernelImageLocator.Locate(space, candidate, account);
            if (located is not null)
            {
                chosen = candidate;
                break;
            }
            if (tried >= 96)
                break;
        }
        if (chosen is null || located is null || space is null)
        {
            string summary = tried == 0 ? "no page-table root was found (no hint, no low stub, no self-referencing page tables)"
                : $"none of the {tried} page-table roots tried leads to a Windows kernel image";
            ThrowHelper.ThrowInvalid($"windows: no Windows kernel found in this memory: {summary}. What was tried:\n  " + string.Join("\n  ", account.Lines));
        }
        account.Chose("dtb", chosen.Method, string.Create(CultureInfo.InvariantCulture, $"0x{chosen.Dtb:x}, {chosen.Paging.Name}"));
        var (kernelBase, image, kernelMethod) = located.Value;
        account.Chose("kernel", kernelMethod, string.Create(CultureInfo.InvariantCulture, $"base 0x{kernelBase:x}"));
        var reader = new GuestReader(chosen.Paging == PagingArchitecture.X64 ? 8 : 4);

        // The version: NtBuildNumber (its top nibble says free or checked build) and KUSER_SHARED_DATA.
        uint build = 0;
        if (image.FindExport("NtBuildNumber") is { IsForwarded: false } buildExport
            && GuestReader.TryU32(space, kernelBase + buildExport.Rva, out uint ntBuild))
        {
            build = ntBuild & 0xFFFF;
            account.Note("version", string.Create(CultureInfo.InvariantCulture, $"NtBuildNumber 0x{ntBuild:x} (build {build})"));
        }
        ulong sharedData = reader.Is64 ? 0xFFFF_F780_0000_0000 : 0xFFDF_0000;
        uint major = 0, minor = 0;
        if (GuestReader.TryU32(space, sharedData + 0x26C, out uint sharedMajor) && GuestReader.TryU32(space, sharedData + 0x270, out uint sharedMinor)
            && sharedMajor is >= 3 and <= 20)
        {
            major = sharedMajor;
            minor = sharedMinor;
            if (GuestReader.TryU32(space, sharedData + 0x260, out uint sharedBuild) && sharedBuild is > 0 and < 0x10000)
            {
                if (build == 0)
                    build = sharedBuild;
                else if (sharedBuild != build)
                    account.Note("version", string.Create(CultureInfo.InvariantCulture, $"KUSER_SHARED_DATA says build {sharedBuild}; NtBuildNumber's {build} is kept"));
            }
            account.Note("version", string.Create(CultureInfo.InvariantCulture, $"KUSER_SHARED_DATA at 0x{sharedData:x}: {major}.{minor}"));
        }
        else
        {
            account.Note("version", string.Create(CultureInfo.InvariantCulture, $"KUSER_SHARED_DATA at 0x{sharedData:x} cannot be read"));
            (major, minor) = build switch { >= 10240 => (10u, 0u), >= 9600 => (6u, 3u), >= 9200 => (6u, 2u), >= 7600 => (6u, 1u), >= 6000 => (6u, 0u), _ => (0u, 0u) };
        }
        if (build == 0)
            account.Note("version", "the build number is unknown (no NtBuildNumber export, no KUSER_SHARED_DATA)");

        // The PDB, through the kernel's CodeView record.
        PdbFile? pdb = null;
        if (offsetsChoice is "auto" or "pdb")
            pdb = FindPdb(image, symbolPath, offline, account);

        ulong Symbol(string name) => pdb is not null && pdb.TryGetSymbolAddress(name, out uint rva) ? kernelBase + rva : 0;
        ulong Export(string name) => image.FindExport(name) is { IsForwarded: false } export ? kernelBase + export.Rva : 0;

        ulong systemPointer = Symbol("PsInitialSystemProcess");
        if (systemPointer == 0)
            systemPointer = Export("PsInitialSystemProcess");
        ulong systemProcess = systemPointer != 0 ? reader.Pointer(space, systemPointer) : 0;
        if (systemProcess != 0)
            account.Note("system", string.Create(CultureInfo.InvariantCulture, $"PsInitialSystemProcess 0x{systemPointer:x} -> EPROCESS 0x{systemProcess:x}"));
        else
            account.Note("system", "PsInitialSystemProcess is neither in the PDB nor exported (or cannot be read)");

        // The offsets: PDB, built-in layout, heuristic.
        WindowsOffsets? offsets = null;
        if (pdb is not null)
        {
            var fromPdb = PdbOffsets.From(pdb, reader.PointerSize);
            var missing = fromPdb.MissingEssentials().ToList();
            if (missing.Count == 0)
                offsets = fromPdb;
            else
                account.Note("offsets", $"the PDB lacks {string.Join(", ", missing)}");
        }
        if (offsets is null && offsetsChoice is "auto" or "builtin")
        {
            if (BuiltInLayouts.For(build, reader.PointerSize) is { } layout)
                offsets = layout.Offsets;
            else
                account.Note("offsets", string.Create(CultureInfo.InvariantCulture, $"no built-in layout for build {build} ({(reader.Is64 ? "x64" : "x86")})"));
        }
        if (offsets is null && offsetsChoice is "auto" or "heuristic")
        {
            if (systemProcess != 0)
                offsets = HeuristicOffsets.Locate(space, input, chosen.Paging, reader, systemProcess, chosen.Dtb, kernelBase, image.SizeOfImage, build, account);
            else
                account.Note("offsets", "heuristic: needs System's EPROCESS, which is unknown");
        }
        if (offsets is null)
            ThrowHelper.ThrowInvalid($"windows: found a Windows kernel (build {build}) at 0x{kernelBase:x} but no structure offsets for it (offsets={offsetsChoice}). What was tried:\n  " + string.Join("\n  ", account.Lines));
        account.Chose("offsets", offsets.Source);

        // The list heads: PDB, export, connector hint, KDBG, then derived.
        KdDebuggerData? kdbg = null;
        if (hints.KdDebuggerDataBlock is { } kdbgHint)
        {
            kdbg = KernelData.Read(space, kdbgHint, kernelBase);
            account.Note("kdbg", kdbg is null ? string.Create(CultureInfo.InvariantCulture, $"the hinted KdDebuggerDataBlock 0x{kdbgHint:x} is not a plain KDBG block of this kernel")
                : string.Create(CultureInfo.InvariantCulture, $"KDBG at the hinted 0x{kdbgHint:x}"));
        }
        if (kdbg is null && Symbol("KdDebuggerDataBlock") is var kdbgSymbol and not 0)
            kdbg = KernelData.Read(space, kdbgSymbol, kernelBase);

        ulong processHead = Symbol("PsActiveProcessHead");
        string headMethod = "the PDB";
        if (processHead == 0 && hints.PsActiveProcessHead is { } hintHead && reader.IsKernelAddress(hintHead))
            (processHead, headMethod) = (hintHead, "the connector's hint");
        if (processHead == 0)
        {
            kdbg ??= KernelData.Scan(space, kernelBase, image);
            if (kdbg is { PsActiveProcessHead: not 0 } block)
                (processHead, headMethod) = (block.PsActiveProcessHead, "the KDBG block");
        }
        if (processHead == 0 && systemProcess != 0
            && reader.TryPointer(space, systemProcess + (ulong)offsets.ActiveProcessLinks + (ulong)reader.PointerSize, out ulong blink))
        {
            // System is the first process: the entry before it is the list head, inside the kernel image.
            if (unchecked(blink - kernelBase) < image.SizeOfImage)
                (processHead, headMethod) = (blink, "System's ActiveProcessLinks.Blink");
        }
        if (processHead != 0)
            account.Chose("process list", headMethod, string.Create(CultureInfo.InvariantCulture, $"PsActiveProcessHead 0x{processHead:x}"));
        else
            account.Note("process list", "PsActiveProcessHead is unknown; the list is walked from System's EPROCESS");

        ulong moduleHead = Symbol("PsLoadedModuleList");
        string moduleMethod = "the PDB";
        if (moduleHead == 0 && Export("PsLoadedModuleList") is var exported and not 0)
            (moduleHead, moduleMethod) = (exported, "the kernel's export");
        if (moduleHead == 0 && hints.PsLoadedModuleList is { } hintModules && reader.IsKernelAddress(hintModules))
            (moduleHead, moduleMethod) = (hintModules, "the connector's hint");
        if (moduleHead == 0)
        {
            kdbg ??= KernelData.Scan(space, kernelBase, image);
            if (kdbg is { PsLoadedModuleList: not 0 } block)
                (moduleHead, moduleMethod) = (block.PsLoadedModuleList, "the KDBG block");
        }
        if (moduleHead == 0 && KernelData.ScanLoadedModuleList(space, reader, kernelBase, image) is { } scanned)
            (moduleHead, moduleMethod) = (scanned, "a scan of the kernel's data for the list whose first entry is the kernel");
        if (moduleHead != 0)
            account.Chose("module list", moduleMethod, string.Create(CultureInfo.InvariantCulture, $"PsLoadedModuleList 0x{moduleHead:x}"));
        else
            account.Note("module list", "PsLoadedModuleList is unknown: no kernel modules");

        // System's own DTB is the kernel's (a scan may have started from another process's tables).
        ulong dtb = chosen.Dtb;
        if (systemProcess != 0 && reader.TryPointer(space, systemProcess + (ulong)offsets.DirectoryTableBase, out ulong systemDtb)
            && (systemDtb & chosen.Paging.RootAddressMask) != 0 && (systemDtb & chosen.Paging.RootAddressMask) != (chosen.Dtb & chosen.Paging.RootAddressMask))
        {
            account.Note("dtb", string.Create(CultureInfo.InvariantCulture, $"System's KPROCESS holds DTB 0x{systemDtb:x}; it is used for the kernel"));
            dtb = systemDtb & chosen.Paging.RootAddressMask;
        }
        account.Note("version", string.Create(CultureInfo.InvariantCulture, $"Windows {major}.{minor} build {build}"));
        int? selfMap = chosen.SelfMapIndex ?? FindSelfMap(input, chosen.Paging, dtb);

        return new WindowsKernel
        {
            Physical = input,
            Paging = chosen.Paging,
            Kernel = new AddressSpace(input, chosen.Paging, dtb, tlb: tlb),
            Tlb = tlb,
            Context = context,
            Reader = reader,
            Offsets = offsets,
            KernelBase = kernelBase,
            Image = image,
            Pdb = pdb,
            Build = build,
            Major = major,
            Minor = minor,
            PsActiveProcessHead = processHead,
            PsLoadedModuleList = moduleHead,
            SystemProcess = systemProcess,
            SelfMapIndex = selfMap,
            KdDebuggerDataBlock = kdbg?.Address ?? 0,
            DirectoryTableBase = dtb,
        };
    }

    /// <summary>The index of the x64 PML4 entry that points at the PML4 itself (Windows' self-map), if there is one.</summary>
    private static int? FindSelfMap(IPhysicalMemory input, PagingArchitecture paging, ulong dtb)
    {
        if (paging != PagingArchitecture.X64)
            return null;
        var table = new byte[4096];
        if (input.Read(dtb & paging.RootAddressMask, table) != table.Length)
            return null;
        for (int i = 256; i < 512; i++)
        {
            ulong entry = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(table.AsSpan(i * 8));
            if ((entry & 1) != 0 && (entry & 0x000F_FFFF_FFFF_F000) == (dtb & paging.RootAddressMask))
                return i;
        }
        return null;
    }

    /// <summary>The kernel's PDB, named by its CodeView record and looked up along the symbol path.</summary>
    private static PdbFile? FindPdb(PeImage image, SymbolPath? path, bool offline, BootstrapAccount account)
    {
        if (image.CodeView is not { } codeView)
        {
            account.Note("pdb", "the kernel image has no CodeView record");
            return null;
        }
        var key = SymbolFileKey.ForPdb(codeView);
        path ??= SymbolPath.FromEnvironment();
        var options = new SymbolStoreOptions
        {
            Offline = offline,
            ResponseTimeout = TimeSpan.FromSeconds(15),
            StallTimeout = TimeSpan.FromSeconds(15),
            TotalTimeout = TimeSpan.FromSeconds(90),
            MaxAttempts = 2,
        };
        account.Note("pdb", $"CodeView names {codeView.PdbFileName} {codeView.SymbolStoreId}; looking along {path}{(offline ? " (offline)" : "")}");
        try
        {
            using var store = new SymbolStore(path, options);
            var lookup = store.FindAsync(key).GetAwaiter().GetResult();
            foreach (var line in lookup.Log)
                account.Note("pdb", line);
            if (!lookup.Found)
            {
                account.Note("pdb", "not found");
                return null;
            }
            var pdb = PdbFile.Open(lookup.Path!);
            account.Chose("pdb", lookup.Path!);
            return pdb;
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException or HttpRequestException)
        {
            account.Note("pdb", "unusable: " + e.Message);
            return null;
        }
    }

    private static TranslationCache? CreateTlb(IPhysicalMemory input, IPluginContext context)
    {
        if (context is ITranslationCacheSettings settings)
        {
            if (!settings.Enabled || settings.Entries <= 0)
                return null;
            var validity = settings.MaxAge is { } age ? CacheValidity.ForTime(age) : CacheValidity.Forever;
            return new TranslationCache(Math.Min(settings.Entries, MaxTlbEntries), validity);
        }
        return new TranslationCache(TlbEntries, input.Metadata.ReadOnly ? CacheValidity.Forever : CacheValidity.ForTime(TimeSpan.FromSeconds(1)));
    }

    private static OsInfo Describe(WindowsKernel kernel, BootstrapAccount account)
    {
        static string Hex(ulong value) => "0x" + value.ToString("x", CultureInfo.InvariantCulture);
        var architecture = kernel.Paging == PagingArchitecture.X64 ? MachineArchitecture.X64
            : kernel.Paging == PagingArchitecture.X86Pae ? MachineArchitecture.X86Pae : MachineArchitecture.X86;
        var properties = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["build"] = kernel.Build.ToString(CultureInfo.InvariantCulture),
            ["version_major"] = kernel.Major.ToString(CultureInfo.InvariantCulture),
            ["version_minor"] = kernel.Minor.ToString(CultureInfo.InvariantCulture),
            ["paging"] = kernel.Paging.Name,
            ["dtb_method"] = account.Methods.GetValueOrDefault("dtb", ""),
            ["kernel_method"] = account.Methods.GetValueOrDefault("kernel", ""),
            ["offsets_source"] = kernel.Offsets.Source,
            ["pdb"] = kernel.Pdb is { } pdb ? $"{Path.GetFileName(pdb.Name)} {pdb.SymbolStoreId}" : "none",
            ["kernel_size"] = Hex(kernel.KernelSize),
            ["system_eprocess"] = Hex(kernel.SystemProcess),
            ["ps_active_process_head"] = Hex(kernel.PsActiveProcessHead),
            ["ps_loaded_module_list"] = Hex(kernel.PsLoadedModuleList),
            ["bootstrap"] = account.Text,
        };
        if (kernel.KdDebuggerDataBlock != 0)
            properties["kd_debugger_data_block"] = Hex(kernel.KdDebuggerDataBlock);
        if (kernel.SelfMapIndex is { } selfMap)
            properties["self_map_index"] = Hex((ulong)selfMap);
        return new OsInfo
        {
            Name = "windows",
            Version = string.Create(CultureInfo.InvariantCulture, $"Windows {kernel.Major}.{kernel.Minor} build {kernel.Build} ({architecture})"),
            Architecture = architecture,
            KernelBase = kernel.KernelBase,
            DirectoryTableBase = kernel.DirectoryTableBase,
            Properties = properties,
        };
    }
}
