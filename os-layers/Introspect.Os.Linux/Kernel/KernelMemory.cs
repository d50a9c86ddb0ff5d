using System.Buffers;
using Introspect.Abi;
using Introspect.Core.Caching;
using Introspect.Core.Translation;

namespace Introspect.Os.Linux.Kernel;

/// <summary>The kernel's virtual memory: the direct map and the image by arithmetic, everything else through the kernel's page tables.</summary>
/// <remarks>
/// On x86-64 the direct map is <c>page_offset_base + physical</c> for all of RAM and the image is
/// <c>__START_KERNEL_map + physical - phys_base</c>; nearly every kernel object (tasks, memory descriptors, slab
/// objects) lives in the direct map, so most reads skip the table walk. A request that is not wholly in one of
/// those ranges (vmalloc, modules, per-CPU areas, a range crossing an edge) takes the page tables.
/// </remarks>
internal sealed class KernelMemory : IVirtualMemory
{
    private readonly IPhysicalMemory _physical;
    private readonly AddressSpace _space;
    private readonly KernelImage _image;
    private readonly ulong _directStart;
    private readonly ulong _directSize;

    public KernelMemory(IPhysicalMemory physical, KernelImage image, TranslationCache? tlb)
    {
        _physical = physical;
        _image = image;
        _space = new AddressSpace(physical, image.Paging, image.PageTableRoot, tlb: tlb);
        _directStart = image.PageOffsetBase;
        ulong max = physical.Metadata.MaxAddress;
        // The direct map ends where the kernel half does; no physical address reaches past 2^52.
        _directSize = Math.Min(max == ulong.MaxValue ? max : max + 1, 1UL << 52);
    }

    public AddressSpace AddressSpace => _space;

    /// <summary>The physical address of a direct-map or image address, by arithmetic; null for any other address.</summary>
    public ulong? Linear(ulong virtualAddress, int length)
    {
        if (length > 1 && (ulong)(length - 1) > ulong.MaxValue - virtualAddress)
            return null; // runs past 2^64
        ulong last = length <= 1 ? virtualAddress : virtualAddress + (ulong)(length - 1);
        // Subtractions written so they cannot overflow: both ends are checked against the range's start first.
        if (virtualAddress >= _directStart && last - _directStart < _directSize)
            return virtualAddress - _directStart;
        if (_image.ImagePhysical(virtualAddress) is { } physical && _image.ImagePhysical(last) is not null)
            return physical;
        return null;
    }

    /// <summary>The physical address a direct-map address stands for (page tables, <c>mm->pgd</c>), or null.</summary>
    public ulong? DirectMapToPhysical(ulong virtualAddress) =>
        virtualAddress >= _directStart && virtualAddress - _directStart < _directSize ? virtualAddress - _directStart : null;

    public bool TryTranslate(ulong virtualAddress, out ulong physicalAddress)
    {
        if (Linear(virtualAddress, 1) is { } linear)
        {
            physicalAddress = linear;
            return true;
        }
        return ((IVirtualMemory)_space).TryTranslate(virtualAddress, out physicalAddress);
    }

    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => Transfer(batch, flags, write: false);

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => Transfer(batch, flags, write: true);

    private void Transfer(Span<MemoryRequest> batch, MemoryFlags flags, bool write)
    {
        if (batch.IsEmpty)
            return;
        if (batch.Length == 1)
        {
            ref var only = ref batch[0];
            if (Linear(only.Address, only.Buffer.Length) is { } physical)
            {
                var request = new MemoryRequest(physical, only.Buffer);
                var single = new Span<MemoryRequest>(ref request);
                if (write)
                    _physical.Write(single, flags);
                else
                    _physical.Read(single, flags);
                only.Succeeded = request.Succeeded;
            }
            else if (write)
            {
                _space.Write(batch, flags);
            }
            else
            {
                _space.Read(batch, flags);
            }
            return;
        }

        var linear = ArrayPool<MemoryRequest>.Shared.Rent(batch.Length);
        var paged = ArrayPool<MemoryRequest>.Shared.Rent(batch.Length);
        var origin = ArrayPool<int>.Shared.Rent(2 * batch.Length);
        try
        {
            int linearCount = 0, pagedCount = 0;
            for (int i = 0; i < batch.Length; i++)
            {
                var request = batch[i];
                if (Linear(request.Address, request.Buffer.Length) is { } physical)
                {
                    origin[linearCount] = i;
                    linear[linearCount++] = new MemoryRequest(physical, request.Buffer);
                }
                else
                {
                    origin[batch.Length + pagedCount] = i;
                    paged[pagedCount++] = new MemoryRequest(request.Address, request.Buffer);
                }
            }
            if (linearCount > 0)
            {
                if (write)
                    _physical.Write(linear.AsSpan(0, linearCount), flags);
                else
                    _physical.Read(linear.AsSpan(0, linearCount), flags);
            }
            if (pagedCount > 0)
            {
                if (write)
                    _space.Write(paged.AsSpan(0, pagedCount), flags);
                else
                    _space.Read(paged.AsSpan(0, pagedCount), flags);
            }
            for (int k = 0; k < linearCount; k++)
                batch[origin[k]].Succeeded = linear[k].Succeeded;
            for (int k = 0; k < pagedCount; k++)
                batch[origin[batch.Length + k]].Succeeded = paged[k].Succeeded;
        }
        finally
        {
            linear.AsSpan(0, batch.Length).Clear();
            paged.AsSpan(0, batch.Length).Clear();
            ArrayPool<MemoryRequest>.Shared.Return(linear);
            ArrayPool<MemoryRequest>.Shared.Return(paged);
            ArrayPool<int>.Shared.Return(origin);
        }
    }
}
