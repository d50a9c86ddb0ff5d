using Introspect.Abi;
using Introspect.Core.Caching;
using Introspect.Core.Translation;
using Introspect.Os.Windows.Offsets;
using Introspect.Symbols.Pdb;
using Introspect.Symbols.Pe;

namespace Introspect.Os.Windows;

/// <summary>Everything the bootstrap found: the kernel's address space, image, version, symbols and offsets.</summary>
internal sealed class WindowsKernel
{
    public required IPhysicalMemory Physical { get; init; }
    public required PagingArchitecture Paging { get; init; }
    public required AddressSpace Kernel { get; init; }
    public TranslationCache? Tlb { get; init; }
    public required IPluginContext Context { get; init; }
    public required GuestReader Reader { get; init; }
    public required WindowsOffsets Offsets { get; init; }
    public required ulong KernelBase { get; init; }
    public required PeImage Image { get; init; }
    public PdbFile? Pdb { get; init; }
    public required uint Build { get; init; }
    public uint Major { get; init; }
    public uint Minor { get; init; }
    public ulong KdDebuggerDataBlock { get; init; }
    public required ulong DirectoryTableBase { get; init; }
    public ulong PsActiveProcessHead { get; init; }
    public ulong PsLoadedModuleList { get; init; }
    public ulong SystemProcess { get; init; }
    public int? SelfMapIndex { get; init; }

    public ulong KernelSize => Image.SizeOfImage;

    // Unchecked: an address below the base wraps to a huge value and fails the comparison.
    public bool InKernelImage(ulong address) => unchecked(address - KernelBase) < KernelSize;

    /// <summary>The mask that turns a DirectoryTableBase field into the root's physical address.</summary>
    public ulong RootMask => Paging.RootAddressMask;

    /// <summary>A process's address space, sharing the layer's translation cache.</summary>
    public AddressSpace ProcessSpace(ulong directoryTableBase) => new(Physical, Paging, directoryTableBase & RootMask, tlb: Tlb);

    public void Warn(string message) => Context.Log(PluginLogLevel.Warning, "windows: " + message);
}
