using System.Globalization;
using Introspect.Abi;
using Introspect.Connectors.LeechCore.Native;

namespace Introspect.Connectors.LeechCore;

/// <summary>The arguments both connectors share, and opening a device with them.</summary>
internal static class ConnectorOptions
{
    public const int MaxBatchSize = 1 << 16;

    private static readonly string[] VerbosityChoices = ["quiet", "errors", "verbose", "debug"];

    public static IReadOnlyList<PluginParameter> Shared { get; } =
    [
        new PluginParameter("remote", PluginParameterType.String,
            "Open the device through a LeechAgent (LeechCore's szRemote), for example rpc://<spn>:<host> or rpc://insecure:<host>."),
        new PluginParameter("library", PluginParameterType.Path,
            "The LeechCore library to load (leechcore.so, leechcore.dll, or its folder); without it: LEECHCORE_PATH, then beside the plugin, then the system's library search path."),
        new PluginParameter("memmap", PluginParameterType.Path,
            "A memory map file replacing the device's own: 'base top [remap]' a line, hexadecimal (LeechCore's and MemProcFS's -memmap format)."),
        new PluginParameter("max-address", PluginParameterType.Number,
            "LeechCore's paMax (PCILeech's -max): the top of physical memory; it also spares an FPGA board its probing. 0 lets the device decide.")
        {
            DefaultValue = "0",
        },
        new PluginParameter("batch-size", PluginParameterType.Number,
            "Pages per LeechCore scatter call; by default 256 for DMA hardware (fpga, usb3380) and remote devices, 1024 otherwise."),
        new PluginParameter("verbosity", PluginParameterType.Choice,
            "What LeechCore itself prints on standard output: nothing, its errors, or its verbose or debug messages.")
        {
            DefaultValue = "quiet",
            Choices = VerbosityChoices,
        },
    ];

    /// <summary>Refuses keys no parameter declares (the plugin host does too; a direct caller may not).</summary>
    public static void CheckKeys(PluginArguments arguments, IReadOnlyList<PluginParameter> parameters)
    {
        foreach (var key in arguments.Values.Keys)
        {
            if (!parameters.Any(p => string.Equals(p.Name, key, StringComparison.OrdinalIgnoreCase)))
                throw new PluginArgumentException($"{arguments.PluginName}: unknown argument '{key}'; expected {string.Join(", ", parameters.Select(p => p.Name))}.");
        }
    }

    /// <summary>The <c>LC_CONFIG_PRINTF_*</c> bits the <c>verbosity</c> argument asks for.</summary>
    public static uint PrintfVerbosity(PluginArguments arguments) => (arguments.GetString("verbosity") ?? "quiet").ToLowerInvariant() switch
    {
        "quiet" => 0,
        "errors" => LeechCoreAbi.PrintfEnabled,
        "verbose" => LeechCoreAbi.PrintfEnabled | LeechCoreAbi.PrintfVerbose,
        "debug" => LeechCoreAbi.PrintfEnabled | LeechCoreAbi.PrintfVerbose | LeechCoreAbi.PrintfVeryVerbose,
        var other => throw new PluginArgumentException($"{arguments.PluginName}: 'verbosity={other}' is not one of {string.Join(", ", VerbosityChoices)}."),
    };

    /// <summary>The <c>remote</c> argument, or null.</summary>
    public static string? Remote(PluginArguments arguments) => arguments.GetString("remote") is { Length: > 0 } remote ? remote : null;

    public static LeechCoreLibrary LoadLibrary(PluginArguments arguments) =>
        LeechCoreLoader.Load(arguments.PluginName, arguments.GetString("library"));

    /// <summary>Opens <paramref name="device"/> with the shared arguments and applies a <c>memmap</c> file.</summary>
    public static LeechCoreMemory Open(LeechCoreLibrary library, string device, PluginArguments arguments, IPluginContext context)
    {
        string plugin = arguments.PluginName;
        ulong? batch = arguments.GetNumber("batch-size");
        if (batch is 0 or > MaxBatchSize)
            throw new PluginArgumentException(string.Create(CultureInfo.InvariantCulture, $"{plugin}: 'batch-size={arguments.GetString("batch-size")}' is out of range; expected 1 to {MaxBatchSize}."));
        var request = new DeviceRequest(device, Remote(arguments), arguments.GetNumber("max-address") ?? 0, PrintfVerbosity(arguments));
        MemoryMap? memmap = null;
        if (arguments.GetString("memmap") is { Length: > 0 } memmapPath)
            memmap = ReadMemoryMapFile(plugin, memmapPath);

        LeechCoreMemory memory;
        try
        {
            memory = LeechCoreMemory.Open(library, request, plugin, (int?)batch, context);
        }
        catch (ArgumentException e)
        {
            throw new PluginArgumentException($"{plugin}: {e.Message}", e);
        }
        if (memmap is null)
            return memory;
        try
        {
            memory.SetMemoryMap(memmap);
            return memory;
        }
        catch (Exception e)
        {
            memory.Dispose();
            if (e is ArgumentException)
                throw new PluginArgumentException($"{plugin}: memmap={arguments.GetString("memmap")}: {e.Message}", e);
            throw;
        }
    }

    private static MemoryMap ReadMemoryMapFile(string plugin, string path)
    {
        const long MaxFile = 64L << 20;
        var info = new FileInfo(path);
        if (!info.Exists)
            throw new PluginArgumentException($"{plugin}: memmap={path} names no file.");
        if (info.Length > MaxFile)
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture, $"{path}: a memory map file of {info.Length} bytes; at most {MaxFile} (LeechCore's 0x100000 ranges)."));
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PluginArgumentException($"{plugin}: memmap={path} cannot be read: {e.Message}", e);
        }
        return MemoryMapText.Parse(text, path);
    }
}
