using Introspect.Abi;

namespace Introspect.Core;

/// <summary>The kernel of a <see cref="Machine"/> (MemProcFS's <c>vmm.kernel</c>): its facts, process, memory, symbols and modules.</summary>
public sealed class MachineKernel
{
    private readonly Machine _machine;
    private readonly IOperatingSystem _system;
    private readonly Lazy<MachineVirtualMemory> _memory;

    internal MachineKernel(Machine machine, IOperatingSystem system)
    {
        _machine = machine;
        _system = system;
        Symbols = new MachineSymbols(system as IKernelSymbols, system as IKernelTypes);
        _memory = new Lazy<MachineVirtualMemory>(() =>
        {
            var memory = machine.CallSystem(s => s.OpenProcessMemory(KernelProcessInfo()));
            return new MachineVirtualMemory(memory, machine.PhysicalLayer, null);
        });
    }

    /// <summary>What the OS layer found about the kernel.</summary>
    public OsInfo Info => _system.Info;

    /// <summary>The OS family, as chains name it (<c>linux</c>).</summary>
    public string Name => Info.Name;

    /// <summary>The kernel's own version text (MemProcFS's <c>kernel.build</c>; Linux's banner).</summary>
    public string Version => Info.Version;

    /// <summary>The kernel image's virtual base address.</summary>
    public ulong Base => Info.KernelBase;

    public MachineArchitecture Architecture => Info.Architecture;

    /// <summary>The kernel's page-table root.</summary>
    public ulong DirectoryTableBase => Info.DirectoryTableBase;

    /// <summary>The kernel's symbols and types (MemProcFS's <c>kernel.pdb</c>), from kallsyms and BTF on Linux.</summary>
    public MachineSymbols Symbols { get; }

    /// <summary>The kernel's own process: Windows' System (pid 4), Linux's idle task (pid 0); null when the OS layer lists neither.</summary>
    public MachineProcess? Process
    {
        get
        {
            var processes = _machine.GetProcesses();
            return Name == "windows"
                ? processes.FirstOrDefault(p => p.Pid == 4)
                : processes.FirstOrDefault(p => p.Pid == 0);
        }
    }

    /// <summary>The kernel's virtual memory, through the kernel's page tables.</summary>
    /// <remarks>It keeps no list of areas: searches in it need a start and an end.</remarks>
    public MachineVirtualMemory Memory => _memory.Value;

    /// <summary>The kernel's modules (drivers, loadable kernel modules).</summary>
    public IReadOnlyList<ModuleInfo> GetModules() => _machine.CallSystem(system => system.GetKernelModules());

    /// <summary>The process whose page tables are the kernel's: the listed kernel process when it has tables, else one made from the kernel's root.</summary>
    internal ProcessInfo KernelProcessInfo()
    {
        var listed = Process?.Info;
        if (listed is not null && listed.DirectoryTableBase != 0)
            return listed;
        return new ProcessInfo
        {
            Pid = listed?.Pid ?? 0,
            Name = listed?.Name ?? "kernel",
            IsKernelThread = true,
            DirectoryTableBase = Info.DirectoryTableBase,
            KernelObject = listed?.KernelObject ?? 0,
        };
    }
}

/// <summary>The kernel's symbols and types, as MemProcFS's <c>VmmPdb</c> offers them: symbol address, symbol name with displacement, type size, field offset.</summary>
/// <remarks>An OS layer without symbols (or types) answers false to every question of that kind; <see cref="HasSymbols"/> and <see cref="HasTypes"/> tell beforehand.</remarks>
public sealed class MachineSymbols
{
    private readonly IKernelSymbols? _symbols;
    private readonly IKernelTypes? _types;

    internal MachineSymbols(IKernelSymbols? symbols, IKernelTypes? types)
    {
        _symbols = symbols;
        _types = types;
    }

    public bool HasSymbols => _symbols is not null;

    public bool HasTypes => _types is not null;

    /// <summary>How many symbols the kernel has (0 without symbols).</summary>
    public int Count => _symbols?.SymbolCount ?? 0;

    /// <summary>The address of <paramref name="name"/> (MemProcFS's <c>symbol_address_from_name</c>).</summary>
    public bool TryGetSymbolAddress(string name, out ulong address)
    {
        ArgumentNullException.ThrowIfNull(name);
        address = 0;
        return _symbols is not null && _symbols.TryGetSymbolAddress(name, out address);
    }

    /// <summary>The nearest symbol at or below <paramref name="address"/> and how far past it the address is (MemProcFS's <c>symbol_name_from_address</c>).</summary>
    public bool TryGetSymbolName(ulong address, out string name, out ulong displacement)
    {
        name = "";
        displacement = 0;
        return _symbols is not null && _symbols.TryGetSymbolName(address, out name, out displacement);
    }

    /// <summary>The size of a type, <c>struct</c> keyword omitted (MemProcFS's <c>type_size</c>).</summary>
    public bool TryGetTypeSize(string typeName, out ulong size)
    {
        ArgumentNullException.ThrowIfNull(typeName);
        size = 0;
        return _types is not null && _types.TryGetTypeSize(typeName, out size);
    }

    /// <summary>The offset of a field in a type, nested fields joined with dots (MemProcFS's <c>type_child_offset</c>).</summary>
    public bool TryGetFieldOffset(string typeName, string fieldPath, out ulong offset)
    {
        ArgumentNullException.ThrowIfNull(typeName);
        ArgumentNullException.ThrowIfNull(fieldPath);
        offset = 0;
        return _types is not null && _types.TryGetFieldOffset(typeName, fieldPath, out offset);
    }

    /// <summary>The address as <c>name+0xdisplacement</c> (or just the name at displacement 0), or null when no symbol is at or below it.</summary>
    public string? Describe(ulong address)
    {
        if (!TryGetSymbolName(address, out var name, out var displacement))
            return null;
        return displacement == 0 ? name : $"{name}+0x{displacement:x}";
    }
}
