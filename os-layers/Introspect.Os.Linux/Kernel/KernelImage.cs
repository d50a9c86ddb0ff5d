using Introspect.Core.Translation;

namespace Introspect.Os.Linux.Kernel;

/// <summary>What was found about the running kernel: where its image is, physically and virtually, its symbols and page tables.</summary>
internal sealed record KernelImage
{
    /// <summary>The kernel's symbols at their run-time (slid) addresses.</summary>
    public required SymbolTable Symbols { get; init; }

    /// <summary>Virtual address of <c>_text</c>.</summary>
    public required ulong TextVirtual { get; init; }

    /// <summary>Physical address of <c>_text</c>.</summary>
    public required ulong TextPhysical { get; init; }

    /// <summary>Virtual address of <c>_end</c>, or null when unknown.</summary>
    public ulong? EndVirtual { get; init; }

    /// <summary><c>phys_base</c>: physical = virtual - <c>__START_KERNEL_map</c> + this, for the image.</summary>
    public required long PhysBase { get; init; }

    /// <summary>The virtual KASLR slide (<c>KERNELOFFSET</c>).</summary>
    public required long VirtualSlide { get; init; }

    /// <summary>How far <c>_text</c> lies from <c>CONFIG_PHYSICAL_START</c> physically.</summary>
    public required long PhysicalSlide { get; init; }

    public required PagingArchitecture Paging { get; init; }

    /// <summary>The kernel's page-table root (<c>init_top_pgt</c>), physical.</summary>
    public required ulong PageTableRoot { get; init; }

    /// <summary>The direct map's base (<c>page_offset_base</c>).</summary>
    public required ulong PageOffsetBase { get; init; }

    public required ulong VmemmapBase { get; init; }

    /// <summary>The banner, <c>Linux version ...</c>, without its line end.</summary>
    public required string Banner { get; init; }

    /// <summary>How the symbols and the image were found, for <c>introspect kernel</c>.</summary>
    public required string Method { get; init; }

    /// <summary>The physical address of an image address, or null when <paramref name="virtualAddress"/> is outside the image.</summary>
    public ulong? ImagePhysical(ulong virtualAddress)
    {
        // Without _end only _text itself is known to be in the image; the rest goes through the page tables.
        ulong end = EndVirtual ?? unchecked(TextVirtual + 1);
        if (virtualAddress < TextVirtual || virtualAddress >= end)
            return null;
        return unchecked(virtualAddress - KernelAddresses.StartKernelMap + (ulong)PhysBase);
    }
}
