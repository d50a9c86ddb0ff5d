using Introspect.Abi;
using Introspect.Core.Memory;

namespace Introspect.Core;

/// <summary>One process of a <see cref="Machine"/> (MemProcFS's <c>VmmProcess</c>): its facts, memory, areas and modules.</summary>
/// <remarks>
/// Belongs to one snapshot of the process list: its memory areas and modules are read once, when first asked, and
/// kept with the snapshot. Take the process again from the machine after <see cref="Machine.Refresh"/> to see changes.
/// </remarks>
public sealed class MachineProcess
{
    private readonly Machine _machine;
    private readonly Lazy<MachineVirtualMemory> _memory;
    private readonly Lazy<IReadOnlyList<MemoryArea>> _areas;
    private readonly Lazy<IReadOnlyList<ModuleInfo>> _modules;

    internal MachineProcess(Machine machine, ProcessInfo info, ProcessSnapshot snapshot)
    {
        _machine = machine;
        Info = info;
        Snapshot = snapshot;
        _memory = new Lazy<MachineVirtualMemory>(OpenMemory);
        _areas = new Lazy<IReadOnlyList<MemoryArea>>(() => info.IsKernelThread && info.DirectoryTableBase == 0
            ? []
            : machine.CallSystem(system => system.GetMemoryAreas(info)));
        _modules = new Lazy<IReadOnlyList<ModuleInfo>>(() => info.IsKernelThread && info.DirectoryTableBase == 0
            ? []
            : machine.CallSystem(system => system.GetModules(info)));
    }

    /// <summary>Everything the OS layer found about the process.</summary>
    public ProcessInfo Info { get; }

    public ulong Pid => Info.Pid;

    public ulong ParentPid => Info.ParentPid;

    /// <summary>The short name (Linux's <c>comm</c>).</summary>
    public string Name => Info.Name;

    /// <summary>The executable's full path, where known (MemProcFS's <c>fullname</c>/<c>pathuser</c>).</summary>
    public string? Path => Info.Path;

    public string? CommandLine => Info.CommandLine;

    public ProcessState State => Info.State;

    /// <summary>A kernel thread: no user address space of its own.</summary>
    public bool IsKernelThread => Info.IsKernelThread;

    /// <summary>The page-table root (MemProcFS's <c>dtb</c>).</summary>
    public ulong DirectoryTableBase => Info.DirectoryTableBase;

    /// <summary>The process's virtual memory: read, typed reads, scatter, search, write when allowed, virtual-to-physical.</summary>
    public MachineVirtualMemory Memory => _memory.Value;

    /// <summary>The parent process, or null when it is gone (or the process is its own parent).</summary>
    public MachineProcess? Parent => ParentPid == Pid ? null : Snapshot.ByPid.GetValueOrDefault(ParentPid);

    /// <summary>The processes whose parent this is.</summary>
    public IReadOnlyList<MachineProcess> Children => Snapshot.Processes.Where(p => p.ParentPid == Pid && p.Pid != Pid).ToList();

    internal ProcessSnapshot Snapshot { get; }

    internal Machine Machine => _machine;

    /// <summary>The memory areas, in address order (MemProcFS's <c>maps.vad</c>, Linux's <c>/proc/PID/maps</c>); empty for a kernel thread.</summary>
    public IReadOnlyList<MemoryArea> GetMemoryAreas() => _areas.Value;

    /// <summary>The area holding <paramref name="virtualAddress"/>, or null.</summary>
    public MemoryArea? FindArea(ulong virtualAddress)
    {
        var areas = GetMemoryAreas();
        int lo = 0, hi = areas.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            var area = areas[mid];
            if (virtualAddress < area.Start)
                hi = mid - 1;
            else if (virtualAddress >= area.End)
                lo = mid + 1;
            else
                return area;
        }
        return null;
    }

    /// <summary>The executable images loaded in the process (MemProcFS's <c>module_list</c>).</summary>
    public IReadOnlyList<ModuleInfo> GetModules() => _modules.Value;

    /// <summary>The module called <paramref name="name"/> (its short name, or the file name of its path), or null (MemProcFS's <c>module</c>).</summary>
    public ModuleInfo? GetModule(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var modules = GetModules();
        return modules.FirstOrDefault(m => m.Name == name)
            ?? modules.FirstOrDefault(m => m.Path is { } path && System.IO.Path.GetFileName(path) == name)
            ?? modules.FirstOrDefault(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>Finds <paramref name="pattern"/> in the process's memory areas (MemProcFS's <c>process.search</c>).</summary>
    public IReadOnlyList<ulong> Search(BytePattern pattern, ulong start = 0, ulong end = ulong.MaxValue, int maxHits = MemorySearch.DefaultMaxHits,
        MemoryFlags flags = MemoryFlags.None, CancellationToken cancel = default) =>
        Memory.Search(pattern, start, end, maxHits, flags, null, cancel);

    /// <summary>Writes an ELF core file of the process (what <c>/pid/PID/core.elf</c> serves): one <c>PT_LOAD</c> per readable memory area, with the notes <c>gdb</c> reads.</summary>
    public void WriteCoreFile(Stream destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var core = new Vfs.ProcessCoreFile("core.elf", this);
        var buffer = new byte[1 << 20];
        for (ulong offset = 0; offset < core.Size;)
        {
            int read = core.Read(offset, buffer);
            if (read == 0)
                break;
            destination.Write(buffer, 0, read);
            offset += (ulong)read;
        }
    }

    public override string ToString() => $"{Name} ({Pid})";

    private MachineVirtualMemory OpenMemory()
    {
        var memory = _machine.CallSystem(system => system.OpenProcessMemory(Info));
        return new MachineVirtualMemory(memory, _machine.PhysicalLayer, GetMemoryAreas);
    }
}
