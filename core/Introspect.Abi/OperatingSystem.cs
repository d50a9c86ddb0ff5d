namespace Introspect.Abi;

/// <summary>An operating system recognised in a physical memory: its kernel, processes and their memory.</summary>
/// <remarks>
/// Lists are snapshots taken when called. Walks over the guest's own structures are bounded: a cyclic or torn
/// list, an absurd count or an unreadable page ends the walk with what was found, and the layer logs a warning
/// through its <see cref="IPluginContext"/>; nothing here hangs or throws for memory it cannot read.
/// Optional capabilities are separate interfaces found with <c>is</c>: <see cref="IKernelSymbols"/>, <see cref="IKernelTypes"/>.
/// </remarks>
public interface IOperatingSystem : IDisposable
{
    OsInfo Info { get; }

    /// <summary>The physical memory this layer reads (the input it was created over).</summary>
    IPhysicalMemory PhysicalMemory { get; }

    /// <summary>Every process, kernel threads included (marked), threads grouped under their process.</summary>
    IReadOnlyList<ProcessInfo> GetProcesses();

    /// <summary>The process with this id, or null when there is none.</summary>
    ProcessInfo? GetProcess(ulong pid);

    /// <summary>The process's virtual memory, through its own page tables.</summary>
    IVirtualMemory OpenProcessMemory(ProcessInfo process);

    /// <summary>The process's memory areas in address order, as <c>/proc/PID/maps</c> or the VAD tree shows them.</summary>
    IReadOnlyList<MemoryArea> GetMemoryAreas(ProcessInfo process);

    /// <summary>The executable images loaded in the process (the main image first where the OS knows it).</summary>
    IReadOnlyList<ModuleInfo> GetModules(ProcessInfo process);

    /// <summary>The kernel's own modules (drivers, loadable kernel modules).</summary>
    IReadOnlyList<ModuleInfo> GetKernelModules();
}

/// <summary>Virtual memory: reads and writes by virtual address, and translation to physical addresses.</summary>
public interface IVirtualMemory : IMemory
{
    /// <summary>The physical address <paramref name="virtualAddress"/> maps to, if it is mapped.</summary>
    bool TryTranslate(ulong virtualAddress, out ulong physicalAddress);
}

/// <summary>What an OS layer found about the kernel.</summary>
public sealed record OsInfo
{
    /// <summary>The OS family as chains name it (<c>linux</c>, <c>windows</c>).</summary>
    public required string Name { get; init; }

    /// <summary>The kernel's own version text (Linux's banner, Windows' build string).</summary>
    public required string Version { get; init; }

    public MachineArchitecture Architecture { get; init; }

    /// <summary>The kernel image's virtual base address.</summary>
    public ulong KernelBase { get; init; }

    /// <summary>How far the kernel was moved from its link address (KASLR), where that is known.</summary>
    public long? KernelSlide { get; init; }

    /// <summary>The kernel's page-table root (physical).</summary>
    public ulong DirectoryTableBase { get; init; }

    /// <summary>Further facts worth showing (for Linux: <c>page_offset_base</c>, the symbol count, ...), as text.</summary>
    public IReadOnlyDictionary<string, string> Properties { get; init; } = new Dictionary<string, string>();
}

/// <summary>The run state of a process, after Linux's state letters and Windows' exit status.</summary>
public enum ProcessState
{
    Unknown = 0,
    /// <summary>Running or runnable (Linux R).</summary>
    Running,
    /// <summary>Interruptible sleep (Linux S).</summary>
    Sleeping,
    /// <summary>Uninterruptible sleep (Linux D).</summary>
    DiskSleep,
    /// <summary>Stopped by a signal (Linux T).</summary>
    Stopped,
    /// <summary>Stopped by a tracer (Linux t).</summary>
    Traced,
    /// <summary>Exited, not yet reaped by its parent (Linux Z).</summary>
    Zombie,
    /// <summary>Being torn down (Linux X).</summary>
    Dead,
    /// <summary>An idle kernel thread (Linux I).</summary>
    Idle,
    /// <summary>Exited but still linked (Windows: exit status set).</summary>
    Exited,
}

/// <summary>One process as an OS layer sees it.</summary>
public sealed record ProcessInfo
{
    public required ulong Pid { get; init; }

    public ulong ParentPid { get; init; }

    /// <summary>The short name (<c>comm</c> on Linux, the image file name on Windows).</summary>
    public required string Name { get; init; }

    /// <summary>The executable's full path, where known.</summary>
    public string? Path { get; init; }

    /// <summary>The command line, arguments separated by spaces, read from the process's own memory.</summary>
    public string? CommandLine { get; init; }

    /// <summary>The arguments as the process received them, where the OS keeps them separately.</summary>
    public IReadOnlyList<string>? Arguments { get; init; }

    /// <summary>The environment as <c>NAME=value</c> strings, read from the process's own memory.</summary>
    public IReadOnlyList<string>? Environment { get; init; }

    public ProcessState State { get; init; }

    /// <summary>The OS's own state text (Linux's letter, e.g. <c>S</c>), for display.</summary>
    public string? StateText { get; init; }

    /// <summary>The real user id, where the OS has one.</summary>
    public uint? Uid { get; init; }

    public int ThreadCount { get; init; } = 1;

    /// <summary>A kernel thread: no user address space of its own.</summary>
    public bool IsKernelThread { get; init; }

    /// <summary>The process's page-table root (physical); 0 for kernel threads without one.</summary>
    public ulong DirectoryTableBase { get; init; }

    /// <summary>The user-mode page-table root where the kernel keeps one apart (KPTI/KVA shadow).</summary>
    public ulong? UserDirectoryTableBase { get; init; }

    /// <summary>The address of the kernel's object for the process (<c>task_struct</c>, <c>EPROCESS</c>).</summary>
    public ulong KernelObject { get; init; }

    public DateTimeOffset? StartTime { get; init; }

    public DateTimeOffset? ExitTime { get; init; }

    public int? ExitStatus { get; init; }

    /// <summary>The process's architecture where it differs from the kernel's (a 32-bit process on a 64-bit kernel).</summary>
    public MachineArchitecture Architecture { get; init; }

    /// <summary>Found apart from the kernel's process list (by a pool scan, say) and absent from it: unlinked, as rootkits hide processes.</summary>
    public bool IsHidden { get; init; }
}

/// <summary>Access rights of a memory area.</summary>
[Flags]
public enum MemoryProtection
{
    None = 0,
    Read = 1,
    Write = 2,
    Execute = 4,
    /// <summary>Shared with other processes (Linux <c>s</c>); private otherwise.</summary>
    Shared = 8,
}

/// <summary>One memory area of a process: a VMA on Linux, a VAD on Windows.</summary>
/// <param name="Start">The first virtual address.</param>
/// <param name="End">The address after the last (exclusive), as <c>/proc/PID/maps</c> prints it.</param>
/// <param name="Protection">Access rights.</param>
/// <param name="Offset">The offset in the backing file.</param>
/// <param name="Path">The backing file, or a pseudo-name such as <c>[heap]</c> and <c>[stack]</c>; null for anonymous memory.</param>
public sealed record MemoryArea(ulong Start, ulong End, MemoryProtection Protection, ulong Offset, string? Path)
{
    /// <summary>The permissions as <c>/proc/PID/maps</c> writes them, e.g. <c>r-xp</c>.</summary>
    public string Permissions => string.Create(4, Protection, static (text, protection) =>
    {
        text[0] = (protection & MemoryProtection.Read) != 0 ? 'r' : '-';
        text[1] = (protection & MemoryProtection.Write) != 0 ? 'w' : '-';
        text[2] = (protection & MemoryProtection.Execute) != 0 ? 'x' : '-';
        text[3] = (protection & MemoryProtection.Shared) != 0 ? 's' : 'p';
    });
}

/// <summary>One loaded executable image.</summary>
/// <param name="Name">The module's short name.</param>
/// <param name="Path">Its full path, where known.</param>
/// <param name="Base">Its virtual base address.</param>
/// <param name="Size">Its size in memory.</param>
public sealed record ModuleInfo(string Name, string? Path, ulong Base, ulong Size);

/// <summary>A capability of an OS layer: the kernel's symbols, both ways (MemProcFS's <c>VmmPdb</c> symbol queries).</summary>
public interface IKernelSymbols
{
    int SymbolCount { get; }

    bool TryGetSymbolAddress(string name, out ulong address);

    /// <summary>The nearest symbol at or below <paramref name="address"/>, and how far past it the address is.</summary>
    bool TryGetSymbolName(ulong address, out string name, out ulong displacement);
}

/// <summary>A capability of an OS layer: the kernel's types (from BTF, a PDB, or a symbol file).</summary>
public interface IKernelTypes
{
    bool TryGetTypeSize(string typeName, out ulong size);

    /// <summary>The offset of <paramref name="fieldPath"/> (nested fields joined with dots) in <paramref name="typeName"/>.</summary>
    bool TryGetFieldOffset(string typeName, string fieldPath, out ulong offset);
}

/// <summary>Creates OS layers; the entry point of an OS plugin.</summary>
public interface IOsLayerFactory
{
    /// <summary>The arguments the layer accepts; the host refuses any other before calling <see cref="Create"/>.</summary>
    IReadOnlyList<PluginParameter> Parameters { get; }

    /// <summary>Recognises the OS in <paramref name="input"/>.</summary>
    /// <remarks>The layer may use hints from <c>input is IConnectorHints</c> and must work without them.</remarks>
    /// <exception cref="InvalidDataException">This OS cannot be found in the memory; the message says what was tried.</exception>
    IOperatingSystem Create(IPhysicalMemory input, PluginArguments arguments, IPluginContext context);
}
