using Introspect.Abi;
using Introspect.Os.Windows.Processes;

namespace Introspect.Os.Windows;

/// <summary>A Windows kernel found in physical memory: its processes (hidden ones included), their memory, VADs and
/// modules, its modules, symbols and (with a PDB) types.</summary>
internal sealed class WindowsOperatingSystem : IOperatingSystem, IKernelSymbols, IKernelTypes
{
    private readonly WindowsKernel _kernel;
    private readonly bool _poolScan;
    private readonly Lazy<List<ulong>> _poolProcesses;

    public WindowsOperatingSystem(IPhysicalMemory input, WindowsKernel kernel, OsInfo info, bool poolScan)
    {
        PhysicalMemory = input;
        _kernel = kernel;
        Info = info;
        _poolScan = poolScan;
        _poolProcesses = new Lazy<List<ulong>>(() => new PoolScanner(_kernel).Scan());
    }

    public OsInfo Info { get; }

    public IPhysicalMemory PhysicalMemory { get; }

    internal WindowsKernel Kernel => _kernel;

    /// <summary>The kernel's virtual memory.</summary>
    internal IVirtualMemory KernelMemory => _kernel.Kernel;

    public IReadOnlyList<ProcessInfo> GetProcesses() => GetWindowsProcesses().Select(p => p.Info).ToList();

    /// <summary>The processes on the list, then those only the pool scan found (marked hidden).</summary>
    internal List<WindowsProcess> GetWindowsProcesses()
    {
        var walker = new ProcessWalker(_kernel);
        var linked = walker.WalkList();
        var result = new List<WindowsProcess>(linked.Count);
        foreach (var eprocess in linked)
        {
            if (walker.Describe(eprocess, hidden: false) is { } process)
                result.Add(process);
        }
        if (_poolScan)
        {
            var onList = linked.ToHashSet();
            foreach (var eprocess in _poolProcesses.Value)
            {
                if (!onList.Contains(eprocess) && walker.Describe(eprocess, hidden: true) is { } hidden)
                    result.Add(hidden);
            }
        }
        return result;
    }

    internal WindowsProcess? Find(ProcessInfo process)
    {
        var walker = new ProcessWalker(_kernel);
        return process.KernelObject != 0 ? walker.Describe(process.KernelObject, process.IsHidden) : GetWindowsProcesses().FirstOrDefault(p => p.Info.Pid == process.Pid);
    }

    public ProcessInfo? GetProcess(ulong pid) => GetWindowsProcesses().FirstOrDefault(p => p.Info.Pid == pid)?.Info;

    public IVirtualMemory OpenProcessMemory(ProcessInfo process)
    {
        ArgumentNullException.ThrowIfNull(process);
        return process.DirectoryTableBase == 0 ? _kernel.Kernel : _kernel.ProcessSpace(process.DirectoryTableBase);
    }

    public IReadOnlyList<MemoryArea> GetMemoryAreas(ProcessInfo process)
    {
        ArgumentNullException.ThrowIfNull(process);
        return GetVads(process).Select(v => new MemoryArea(v.Start, v.End, VadWalker.ToProtection(v.Protection, v.Private), 0, v.File)).ToList();
    }

    /// <summary>The process's VADs with Windows' own protection values.</summary>
    internal List<Vad> GetVads(ProcessInfo process) =>
        process.KernelObject == 0 ? [] : new VadWalker(_kernel).Walk(process.KernelObject, process.Pid);

    /// <summary>The PEB's modules, then (for a WoW64 process) the 32-bit ones not already listed.</summary>
    public IReadOnlyList<ModuleInfo> GetModules(ProcessInfo process)
    {
        ArgumentNullException.ThrowIfNull(process);
        if (Find(process) is not { } found)
            return [];
        var walker = new ModuleWalker(_kernel);
        var modules = walker.ProcessModules(found);
        if (found.Peb32 != 0)
        {
            var bases = modules.Select(m => m.Base).ToHashSet();
            modules.AddRange(walker.ProcessModules32(found).Where(m => bases.Add(m.Base)));
        }
        return modules;
    }

    /// <summary>The 32-bit modules of a WoW64 process (empty for any other).</summary>
    internal IReadOnlyList<ModuleInfo> GetModules32(ProcessInfo process) =>
        Find(process) is { } found ? new ModuleWalker(_kernel).ProcessModules32(found) : [];

    public IReadOnlyList<ModuleInfo> GetKernelModules() => new ModuleWalker(_kernel).KernelModules();

    public int SymbolCount => _kernel.Pdb?.Symbols.Count ?? _kernel.Image.Exports.Count;

    public bool TryGetSymbolAddress(string name, out ulong address)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (_kernel.Pdb is { } pdb && pdb.TryGetSymbolAddress(name, out uint rva))
        {
            address = _kernel.KernelBase + rva;
            return true;
        }
        if (_kernel.Image.FindExport(name) is { IsForwarded: false } export)
        {
            address = _kernel.KernelBase + export.Rva;
            return true;
        }
        address = 0;
        return false;
    }

    public bool TryGetSymbolName(ulong address, out string name, out ulong displacement)
    {
        name = "";
        displacement = 0;
        if (!_kernel.InKernelImage(address))
            return false;
        uint rva = (uint)(address - _kernel.KernelBase);
        if (_kernel.Pdb is { } pdb && pdb.FindNearestSymbol(rva) is { } match)
        {
            name = match.Symbol.Name;
            displacement = match.Displacement;
            return true;
        }
        var nearest = _kernel.Image.Exports.Where(e => !e.IsForwarded && e.Name is not null && e.Rva <= rva).MaxBy(e => e.Rva);
        if (nearest is null)
            return false;
        name = nearest.Name!;
        displacement = rva - nearest.Rva;
        return true;
    }

    public bool TryGetTypeSize(string typeName, out ulong size)
    {
        size = 0;
        return _kernel.Pdb is { } pdb && pdb.TryGetTypeSize(typeName, out size);
    }

    public bool TryGetFieldOffset(string typeName, string fieldPath, out ulong offset)
    {
        offset = 0;
        if (_kernel.Pdb is not { } pdb || !pdb.TryGetFieldOffset(typeName, fieldPath, out var location))
            return false;
        offset = location.Offset;
        return true;
    }

    /// <summary>Nothing to release: the physical memory given stays open, the PDB is held in memory.</summary>
    public void Dispose()
    {
    }
}
