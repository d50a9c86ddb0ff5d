using Introspect.Abi;
using Introspect.Os.Linux.Kernel;
using Introspect.Os.Linux.Processes;

namespace Introspect.Os.Linux;

/// <summary>A Linux kernel found in physical memory: its processes, their memory and areas, its modules, symbols and types.</summary>
internal sealed class LinuxOperatingSystem : IOperatingSystem, IKernelSymbols, IKernelTypes
{
    private readonly LinuxContext _linux;
    private readonly IDisposable? _owned;
    private int _disposed;

    public LinuxOperatingSystem(IPhysicalMemory input, LinuxContext linux, OsInfo info, IDisposable? owned)
    {
        PhysicalMemory = input;
        _linux = linux;
        Info = info;
        _owned = owned;
    }

    public OsInfo Info { get; }

    public IPhysicalMemory PhysicalMemory { get; }

    internal LinuxContext Context => _linux;

    internal KernelImage Image => _linux.Image;

    /// <summary>The kernel's own virtual memory (direct map, image, vmalloc and modules through its page tables).</summary>
    internal IVirtualMemory KernelMemory => _linux.Kernel;

    public IReadOnlyList<ProcessInfo> GetProcesses() => new TaskWalker(_linux).GetProcesses();

    public ProcessInfo? GetProcess(ulong pid)
    {
        var walker = new TaskWalker(_linux);
        foreach (var task in walker.WalkTaskList())
        {
            if ((ulong)(uint)task.Tgid == pid && task.Pid == task.Tgid)
                return walker.Describe(task.Address);
        }
        return null;
    }

    public IVirtualMemory OpenProcessMemory(ProcessInfo process)
    {
        ArgumentNullException.ThrowIfNull(process);
        return process.DirectoryTableBase == 0 ? _linux.Kernel : _linux.UserSpace(process.DirectoryTableBase);
    }

    public IReadOnlyList<MemoryArea> GetMemoryAreas(ProcessInfo process)
    {
        ArgumentNullException.ThrowIfNull(process);
        return new MemoryAreaWalker(_linux).GetAreas(process);
    }

    /// <summary>The files mapped into the process, one per path, the executable first, each spanning its lowest to highest mapping.</summary>
    public IReadOnlyList<ModuleInfo> GetModules(ProcessInfo process)
    {
        ArgumentNullException.ThrowIfNull(process);
        var spans = new Dictionary<string, (ulong Start, ulong End)>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (var area in GetMemoryAreas(process))
        {
            if (area.Path is not { Length: > 0 } path || path[0] != '/')
                continue;
            if (spans.TryGetValue(path, out var span))
                spans[path] = (Math.Min(span.Start, area.Start), Math.Max(span.End, area.End));
            else
            {
                spans.Add(path, (area.Start, area.End));
                order.Add(path);
            }
        }
        if (process.Path is { } executable && order.Remove(executable))
            order.Insert(0, executable);
        return order.Select(path => new ModuleInfo(Path.GetFileName(path.EndsWith(" (deleted)", StringComparison.Ordinal) ? path[..^10] : path),
            path, spans[path].Start, spans[path].End - spans[path].Start)).ToList();
    }

    public IReadOnlyList<ModuleInfo> GetKernelModules() => new ModuleWalker(_linux).GetModules();

    public int SymbolCount => _linux.Image.Symbols.Count;

    public bool TryGetSymbolAddress(string name, out ulong address) => _linux.Image.Symbols.TryGetAddress(name, out address);

    public bool TryGetSymbolName(ulong address, out string name, out ulong displacement) =>
        _linux.Image.Symbols.TryGetName(address, out name, out displacement);

    public bool TryGetTypeSize(string typeName, out ulong size) => _linux.Types.TryGetTypeSize(typeName, out size);

    public bool TryGetFieldOffset(string typeName, string fieldPath, out ulong offset)
    {
        bool found = _linux.Types.TryGetField(typeName, fieldPath, out var field);
        offset = field.Offset;
        return found;
    }

    /// <summary>Releases what the layer itself opened (a symbol file); the physical memory it was given stays open.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
            _owned?.Dispose();
    }
}
