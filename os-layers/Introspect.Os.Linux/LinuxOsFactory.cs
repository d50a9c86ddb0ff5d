using System.Diagnostics;
using System.Globalization;
using Introspect.Abi;
using Introspect.Core.Caching;
using Introspect.Os.Linux;
using Introspect.Os.Linux.Kernel;
using Introspect.Os.Linux.Processes;
using Introspect.Os.Linux.Types;

[assembly: IntrospectPlugin(PluginKind.OperatingSystem, "linux", "1.0.0", IntrospectAbi.Version, typeof(LinuxOsFactory),
    Description = "Linux on x86-64 from physical memory alone: kallsyms, BTF and page tables found in RAM; processes, memory areas, kernel modules, symbols and types.")]

namespace Introspect.Os.Linux;

/// <summary>Recognises a Linux kernel in physical memory: the <c>linux</c> OS layer.</summary>
/// <remarks>
/// <para>
/// Needs nothing but the memory: the kernel's symbol table (kallsyms) and its type information (BTF) are found in
/// RAM, along with the KASLR slides, the page tables and the direct map. A connector's hints (<c>VMCOREINFO</c>,
/// CR3 and CR4) shorten the search and are checked, never trusted blindly.
/// </para>
/// <para>
/// Arguments: <c>systemmap=FILE</c> (a System.map, for a kernel without kallsyms) and <c>isf=FILE</c> (a
/// Volatility ISF JSON file, plain or <c>.gz</c>: symbols, and types for a kernel without BTF). What memory holds
/// comes first; the files fill in what it lacks.
/// </para>
/// </remarks>
public sealed class LinuxOsFactory : IOsLayerFactory
{
    /// <summary>How many page translations the layer's TLB keeps (shared by the kernel and every process).</summary>
    private const int TlbEntries = 1 << 14;

    /// <summary>How long a translation of live memory stays valid when the host sets no validity.</summary>
    private static readonly TimeSpan LiveTranslationValidity = TimeSpan.FromSeconds(1);

    /// <summary>The most entries <see cref="TranslationCache"/> takes.</summary>
    private const int MaxTlbEntries = 1 << 26;

    /// <inheritdoc />
    public IReadOnlyList<PluginParameter> Parameters { get; } =
    [
        new PluginParameter("systemmap", PluginParameterType.Path, "A System.map file of the running kernel, for a kernel without kallsyms."),
        new PluginParameter("isf", PluginParameterType.Path, "A Volatility ISF JSON file (.json or .json.gz) of the running kernel: symbols, and types for a kernel without BTF."),
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
        var clock = Stopwatch.StartNew();

        ExternalSymbols? external = null;
        IsfTypes? isfTypes = null;
        try
        {
            if (arguments.GetString("isf") is { } isfPath)
                (external, isfTypes) = SymbolFiles.ReadIsf(RequireFile(arguments, "isf", isfPath));
            if (arguments.GetString("systemmap") is { } mapPath)
            {
                var map = SymbolFiles.ReadSystemMap(RequireFile(arguments, "systemmap", mapPath));
                external = external is null ? map : external with
                {
                    Description = $"{external.Description} + {map.Description}",
                    Symbols = external.Symbols.MergeMissing(map.Symbols),
                };
            }

            var hints = input is IConnectorHints withHints ? withHints.Hints : ConnectorHints.None;
            var image = KernelLocator.Locate(input, hints, external, context);
            var types = LoadTypes(input, image, isfTypes, context);
            var structures = LinuxStructures.Resolve(types);
            var linux = new LinuxContext(input, image, types, structures, CreateTlb(input, context), context);
            var info = new OsInfo
            {
                Name = "linux",
                Version = image.Banner,
                Architecture = MachineArchitecture.X64,
                KernelBase = image.TextVirtual,
                KernelSlide = image.VirtualSlide,
                DirectoryTableBase = image.PageTableRoot,
                Properties = Describe(image, types),
            };
            context.Log(PluginLogLevel.Debug, string.Create(CultureInfo.InvariantCulture,
                $"linux: {image.Banner} found in {clock.ElapsedMilliseconds} ms ({image.Method}; types from {types.Description})."));
            return new LinuxOperatingSystem(input, linux, info, isfTypes);
        }
        catch
        {
            isfTypes?.Dispose();
            throw;
        }
    }

    /// <summary>The translation cache the host asks for (<c>tlb=</c>, <c>tlb.entries=</c>, <c>tlb.validity=</c>), or by
    /// default one that keeps translations of a dump for good and those of live memory for a second.</summary>
    private static TranslationCache? CreateTlb(IPhysicalMemory input, IPluginContext context)
    {
        if (context is ITranslationCacheSettings settings)
        {
            if (!settings.Enabled || settings.Entries <= 0)
                return null;
            // A live machine rewrites its page tables while we read: keep its translations briefly unless told otherwise.
            bool live = input is IConnectorHints { Hints.Live: true };
            var validity = settings.MaxAge is { } age ? CacheValidity.ForTime(age)
                : live ? CacheValidity.ForTime(LiveTranslationValidity) : CacheValidity.Forever;
            return new TranslationCache(Math.Min(settings.Entries, MaxTlbEntries), validity);
        }
        return new TranslationCache(TlbEntries, input.Metadata.ReadOnly && input is not IConnectorHints { Hints.Live: true }
            ? CacheValidity.Forever : CacheValidity.ForTime(LiveTranslationValidity));
    }

    private static string RequireFile(PluginArguments arguments, string key, string path)
    {
        if (path.Length == 0 || !File.Exists(path))
            throw new PluginArgumentException($"{arguments.PluginName}: the argument '{key}={path}' names no file.");
        return path;
    }

    /// <summary>The kernel's BTF, read from <c>__start_BTF</c>..<c>__stop_BTF</c> in its image; the ISF file where BTF is missing or unusable.</summary>
    private static IKernelTypeSource LoadTypes(IPhysicalMemory memory, KernelImage image, IsfTypes? isf, IPluginContext context)
    {
        string? problem = null;
        if (image.Symbols.TryGetAddress("__start_BTF", out ulong start) && image.Symbols.TryGetAddress("__stop_BTF", out ulong stop)
            && stop > start && image.ImagePhysical(start) is { } physical)
        {
            ulong length = stop - start;
            if (length > LinuxLimits.MaxBtfBytes)
                problem = string.Create(CultureInfo.InvariantCulture, $"__start_BTF..__stop_BTF spans {length} bytes; at most {LinuxLimits.MaxBtfBytes} are read");
            else
            {
                var blob = new byte[length];
                if (Introspect.Core.Memory.MemoryReads.Read(memory, physical, blob) != blob.Length)
                    problem = string.Create(CultureInfo.InvariantCulture, $"the BTF blob at physical 0x{physical:x} ({length} bytes) cannot be read whole");
                else
                {
                    try
                    {
                        var btf = BtfTypes.Parse(blob, string.Create(CultureInfo.InvariantCulture, $"BTF at physical 0x{physical:x}"));
                        return isf is null ? btf : new CombinedTypes(btf, isf);
                    }
                    catch (InvalidDataException e)
                    {
                        problem = e.Message;
                    }
                }
            }
        }
        else
        {
            problem = "the kernel has no __start_BTF/__stop_BTF symbols (built without CONFIG_DEBUG_INFO_BTF)";
        }
        if (isf is not null)
        {
            context.Log(PluginLogLevel.Information, $"linux: {problem}; types come from {isf.Description}.");
            return isf;
        }
        return ThrowHelper.ThrowInvalid<IKernelTypeSource>($"linux: no type information: {problem}. Give isf=FILE (a Volatility ISF JSON file of this kernel) for a kernel without BTF.");
    }

    private static Dictionary<string, string> Describe(KernelImage image, IKernelTypeSource types)
    {
        static string Hex(ulong value) => "0x" + value.ToString("x", CultureInfo.InvariantCulture);
        static string SignedHex(long value) => value < 0 ? "-" + Hex((ulong)(-value)) : Hex((ulong)value);
        var properties = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["release"] = image.Banner.Split(' ') is { Length: > 2 } words ? words[2] : "",
            ["paging"] = image.Paging.Name,
            ["page_offset_base"] = Hex(image.PageOffsetBase),
            ["vmemmap_base"] = Hex(image.VmemmapBase),
            ["phys_base"] = SignedHex(image.PhysBase),
            ["kernel_physical"] = Hex(image.TextPhysical),
            ["physical_slide"] = SignedHex(image.PhysicalSlide),
            ["symbol_source"] = image.Method,
            ["type_source"] = types.Description,
        };
        if (types is BtfTypes btf)
            properties["btf_types"] = btf.TypeCount.ToString(CultureInfo.InvariantCulture);
        return properties;
    }
}
