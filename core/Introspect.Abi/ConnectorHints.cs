namespace Introspect.Abi;

/// <summary>What a connector learned about the machine from its source, for the OS layers above.</summary>
/// <remarks>
/// Every field is optional: an OS layer uses a hint to go faster and must find its way without it.
/// Crash dumps carry Windows kernel pointers in their header, QEMU's ELF dumps carry CPU
/// registers and the guest kernel's VMCOREINFO.
/// </remarks>
public sealed record ConnectorHints
{
    public static ConnectorHints None { get; } = new();

    /// <summary>The source's format, as a user would name it (for example <c>elf</c>, <c>kdump-zlib</c>).</summary>
    public string? Format { get; init; }

    public MachineArchitecture Architecture { get; init; }

    /// <summary>The kernel's page-table root (CR3 on x86, TTBR1 on AArch64).</summary>
    public ulong? DirectoryTableBase { get; init; }

    public ulong? PfnDatabase { get; init; }

    public ulong? PsLoadedModuleList { get; init; }

    public ulong? PsActiveProcessHead { get; init; }

    public ulong? KdDebuggerDataBlock { get; init; }

    /// <summary>Whether a 32-bit x86 Windows kernel runs with PAE, where the dump says so.</summary>
    public bool? PaeEnabled { get; init; }

    /// <summary>The Linux kernel's <c>VMCOREINFO</c> text (<c>KEY=value</c> lines), where the source holds it.</summary>
    public string? VmcoreInfo { get; init; }

    /// <summary>
    /// The memory changes while it is read (a running machine, not a dump): what a layer caches about it (translations,
    /// pages, lists) should stay valid only briefly.
    /// </summary>
    public bool Live { get; init; }

    /// <summary>
    /// The local process whose virtual memory holds this memory (a live VM's QEMU), when the memory map's backing
    /// addresses are that process's virtual addresses; null otherwise. Lets a tool compare against reading the process directly.
    /// </summary>
    public ulong? HostProcessId { get; init; }

    /// <summary>Per-CPU register state captured with the memory.</summary>
    public IReadOnlyList<CpuRegisters> Cpus { get; init; } = [];
}

/// <summary>The instruction set of the machine whose memory is read.</summary>
public enum MachineArchitecture
{
    Unknown = 0,
    X86,
    X86Pae,
    X64,
    Arm64,
}

/// <summary>The registers of one CPU that matter for finding one's way through memory.</summary>
public sealed record CpuRegisters
{
    public int Index { get; init; }
    public ulong InstructionPointer { get; init; }
    public ulong StackPointer { get; init; }
    public ulong Cr0 { get; init; }
    public ulong Cr3 { get; init; }
    public ulong Cr4 { get; init; }
    /// <summary>The GS base (the kernel's per-CPU area on x64 Linux and Windows).</summary>
    public ulong GsBase { get; init; }
    public ulong KernelGsBase { get; init; }
}

/// <summary>A capability a physical memory may have: hints about the machine (found with <c>is</c>).</summary>
public interface IConnectorHints
{
    ConnectorHints Hints { get; }
}
