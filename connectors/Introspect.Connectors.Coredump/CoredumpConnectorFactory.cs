using Introspect.Abi;
using Introspect.Connectors.Coredump;

[assembly: IntrospectPlugin(PluginKind.Connector, "coredump", "1.0.0", IntrospectAbi.Version, typeof(CoredumpConnectorFactory),
    Description = "Memory dump files as physical memory: raw images, ELF cores (QEMU dump-guest-memory), LiME, Microsoft crash dumps (full and bitmap), makedumpfile kdump (plain and flattened; zlib, lzo, snappy, zstd).")]

namespace Introspect.Connectors.Coredump;

/// <summary>Opens a memory dump file as physical memory: the <c>coredump</c> connector.</summary>
/// <remarks>
/// <para>Arguments: <c>path</c> (required), <c>format</c> (<c>auto</c> picks by the file's magic and
/// falls back to <c>raw</c>), <c>allow-truncated</c> (serve the part of a truncated ELF, LiME or
/// crash dump that the file holds, instead of refusing it).</para>
/// <para>The memory is read-only and also implements <see cref="IConnectorHints"/>: the format's
/// name, the architecture, and what the dump records about the machine (a crash dump's kernel
/// pointers, an ELF or kdump file's CPU registers and VMCOREINFO).</para>
/// <para>Per format: raw maps file offset N to address N; ELF cores map each PT_LOAD's
/// <c>p_paddr</c> to its file data (the part of <c>p_memsz</c> past <c>p_filesz</c> is not in the
/// map); LiME maps each range to the bytes after its header; crash dumps map their runs or
/// bitmap; kdump files map the pages their dumpable bitmap marks, and pages makedumpfile
/// excluded fail to read rather than reading as zeros. In every format but kdump the map's
/// backing address is the file offset; in kdump files it is the dump's own physical address.</para>
/// <para>Open fails with <see cref="InvalidDataException"/> naming the file, the field, its value
/// and what was expected; with <see cref="PluginArgumentException"/> when the file is missing or
/// cannot be read; with <see cref="NotSupportedException"/> when a kdump file's pages need a
/// decompression library that cannot be loaded (<c>libz.so.1</c>, <c>liblzo2.so.2</c>,
/// <c>libsnappy.so.1</c>, <c>libzstd.so.1</c>).</para>
/// </remarks>
public sealed class CoredumpConnectorFactory : IConnectorFactory
{
    private static readonly string[] FormatChoices = ["auto", "raw", "elf", "lime", "crashdump", "kdump"];

    /// <inheritdoc />
    public IReadOnlyList<PluginParameter> Parameters { get; } =
    [
        new PluginParameter("path", PluginParameterType.Path, "The dump file.") { Required = true },
        new PluginParameter("format", PluginParameterType.Choice, "The dump's format; auto picks it from the file's magic and falls back to raw.")
        {
            DefaultValue = "auto",
            Choices = FormatChoices,
        },
        new PluginParameter("allow-truncated", PluginParameterType.Boolean, "Serve the part of a truncated ELF, LiME or crash dump that the file holds instead of refusing it.")
        {
            DefaultValue = "off",
        },
    ];

    /// <inheritdoc />
    public IPhysicalMemory Create(PluginArguments arguments, IPluginContext context)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        string plugin = arguments.PluginName;
        foreach (var key in arguments.Values.Keys)
        {
            if (!Parameters.Any(p => string.Equals(p.Name, key, StringComparison.OrdinalIgnoreCase)))
                throw new PluginArgumentException($"{plugin}: unknown argument '{key}'; expected {string.Join(", ", Parameters.Select(p => p.Name))}.");
        }
        string path = arguments.GetRequiredString("path");
        if (path.Length == 0)
            throw new PluginArgumentException($"{plugin}: the argument 'path' is empty; expected the dump file's path.");
        if (!File.Exists(path))
            throw new PluginArgumentException($"{plugin}: the argument 'path={path}' names no file.");
        string formatText = arguments.GetString("format") ?? "auto";
        if (!FormatDetector.TryParse(formatText, out var format))
            throw new PluginArgumentException($"{plugin}: the argument 'format={formatText}' is not one of {string.Join(", ", FormatChoices)}.");
        bool allowTruncated = arguments.GetBoolean("allow-truncated") ?? false;
        try
        {
            return DumpOpener.Open(Path.GetFullPath(path), format, new OpenContext(path, allowTruncated, context));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PluginArgumentException($"{plugin}: the file 'path={path}' cannot be opened: {e.Message}", e);
        }
    }
}
