using Introspect.Abi;
using Introspect.Core.Chains;
using Introspect.Samples.ManagedConnector;
using Microsoft.Win32.SafeHandles;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;

[assembly: IntrospectPlugin(PluginKind.Connector, "managed-sample", "1.0.0", IntrospectAbi.Version, typeof(ManagedSampleConnectorFactory),
    Description = "A file, or a process of the OS before it, as physical memory through a JSON layout (sample managed plugin)")]
[assembly: IntrospectPlugin(PluginKind.OperatingSystem, "managed-sample-os", "1.0.0", IntrospectAbi.Version, typeof(FlatOsFactory),
    Description = "One process whose virtual memory is the physical memory (sample managed plugin)")]

namespace Introspect.Samples.ManagedConnector;

/// <summary>
/// The <c>managed-sample</c> connector. Started alone it serves the file <c>path</c> as physical memory; after an OS
/// step it serves process <c>pid</c>'s virtual memory instead. Either way a JSON <c>layout</c> file can give the
/// memory map: <c>{ "ranges": [ { "base": "0x0", "size": "0x9f000", "backing": "0x0" }, ... ] }</c>, backing being a
/// file offset or a virtual address. The layout is read with Newtonsoft.Json, a dependency the host does not have.
/// </summary>
public sealed class ManagedSampleConnectorFactory : IConnectorFactory, IConnectorOverOsFactory
{
    /// <inheritdoc />
    public IReadOnlyList<PluginParameter> Parameters { get; } =
    [
        new("path", PluginParameterType.Path, "The file to serve (when the connector starts the chain).") { IsDefaultArgument = true },
        new("layout", PluginParameterType.Path, "A JSON memory layout: { \"ranges\": [ { \"base\", \"size\", \"backing\" } ] }."),
        new("pid", PluginParameterType.Number, "After an OS step: the process whose memory to serve."),
    ];

    /// <inheritdoc />
    public IPhysicalMemory Create(PluginArguments arguments, IPluginContext context)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        ArgumentNullException.ThrowIfNull(context);
        if (arguments.Contains("pid"))
            throw new PluginArgumentException("managed-sample: 'pid' needs an OS step before this connector.");
        string path = arguments.GetString("path") ?? throw new PluginArgumentException("managed-sample: the argument 'path' is required (the file to serve).");
        if (!File.Exists(path))
            throw new PluginArgumentException($"managed-sample: the argument 'path={path}' names no file.");
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        long length = RandomAccess.GetLength(handle);
        var map = arguments.GetString("layout") is { } layout ? Layout.Read(layout) : MemoryMap.Linear((ulong)length);
        context.Log(PluginLogLevel.Information, $"managed-sample: serving {path} through {map.Count} ranges (layouts read with Newtonsoft.Json {typeof(JsonConvert).Assembly.GetName().Version})");
        return new FileMemory(handle, length, map);
    }

    /// <inheritdoc />
    public IPhysicalMemory Create(IOperatingSystem input, PluginArguments arguments, IPluginContext context)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(arguments);
        if (arguments.Contains("path"))
            throw new PluginArgumentException("managed-sample: 'path' makes no sense after an OS step; give pid=N (and layout=FILE) instead.");
        ulong pid = arguments.GetNumber("pid") ?? throw new PluginArgumentException("managed-sample: after an OS step the argument 'pid' is required (the process whose memory to serve).");
        var process = input.GetProcess(pid) ?? throw new PluginArgumentException($"managed-sample: the OS has no process {pid}.");
        var map = arguments.GetString("layout") is { } layout
            ? Layout.Read(layout)
            : new MemoryMap(input.GetMemoryAreas(process).Where(a => a.End > a.Start).Select(a => new MemoryRange(a.Start, a.End - a.Start, a.Start)));
        return new GuestPhysicalMemory(input.OpenProcessMemory(process), map);
    }

    /// <summary>A file through a memory map whose backing addresses are file offsets.</summary>
    private sealed class FileMemory(SafeFileHandle handle, long length, MemoryMap map) : IPhysicalMemory, IConnectorHints
    {
        private volatile MemoryMap _map = map;

        public PhysicalMemoryMetadata Metadata => new(_map.MaxAddress, _map.TotalSize, ReadOnly: true, IdealBatchSize: 1024);

        public MemoryMap MemoryMap => _map;

        public ConnectorHints Hints { get; } = new() { Format = "raw" };

        public void SetMemoryMap(MemoryMap map) => _map = map ?? throw new ArgumentNullException(nameof(map));

        public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
        {
            var current = _map;
            for (int i = 0; i < batch.Length; i++)
                batch[i].Succeeded = ReadOne(current, batch[i].Address, batch[i].Buffer.Span);
        }

        private bool ReadOne(MemoryMap current, ulong address, Span<byte> destination)
        {
            while (!destination.IsEmpty)
            {
                if (!current.TryTranslate(address, out ulong offset, out ulong contiguous))
                    return false;
                int chunk = (int)Math.Min((ulong)destination.Length, contiguous);
                if (offset > (ulong)length || (ulong)chunk > (ulong)length - offset)
                    return false;
                if (RandomAccess.Read(handle, destination[..chunk], (long)offset) != chunk)
                    return false;
                destination = destination[chunk..];
                if (!destination.IsEmpty)
                    address += (ulong)chunk;
            }
            return true;
        }

        public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) =>
            throw new NotSupportedException("managed-sample: files are served read-only.");

        public void Dispose() => handle.Dispose();
    }
}

/// <summary>Reads a JSON memory layout with Newtonsoft.Json.</summary>
internal static class Layout
{
    public static MemoryMap Read(string path)
    {
        if (!File.Exists(path))
            throw new PluginArgumentException($"managed-sample: the argument 'layout={path}' names no file.");
        JObject root;
        try
        {
            root = JObject.Parse(File.ReadAllText(path));
        }
        catch (JsonReaderException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON at line {e.LineNumber}: {e.Message}", e);
        }
        if (root["ranges"] is not JArray ranges)
            throw new InvalidDataException($"{path}: expected an object with a 'ranges' array.");
        var list = new List<MemoryRange>();
        foreach (var (range, index) in ranges.Select((r, i) => (r, i)))
        {
            ulong Number(string field)
            {
                string? text = range[field]?.ToString();
                return text is not null && PluginArguments.TryParseNumber(text, out ulong value)
                    ? value
                    : throw new InvalidDataException($"{path}: ranges[{index}].{field} is '{text}'; expected a number (decimal or 0x hex).");
            }
            ulong @base = Number("base");
            list.Add(new MemoryRange(@base, Number("size"), range["backing"] is null ? @base : Number("backing")));
        }
        try
        {
            return new MemoryMap(list);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
    }
}
