using System.Buffers;
using System.Buffers.Binary;
using Introspect.Abi;
using Introspect.Core.Caching;
using Introspect.Core.Memory;

namespace Introspect.Core.Translation;

/// <summary>A virtual address space: physical memory seen through one set of page tables.</summary>
/// <remarks>
/// <para>
/// Translation is batched and breadth-first: every address of a batch takes its walk at once, one physical batch
/// per page-table level (table entries that several addresses share are read once), after a look in the
/// <see cref="TranslationCache"/> if there is one. A read then costs one more physical batch for the data, with
/// pieces that are physically contiguous merged back into one request.
/// </para>
/// <para>
/// <see cref="MemoryFlags.NoCache"/> bypasses the translation cache (neither consulted nor filled) and passes down
/// to the physical memory; <see cref="MemoryFlags.ForceCache"/> passes down, so table entries and data come only
/// from a page cache beneath. Thread-safe as long as the physical memory is.
/// </para>
/// </remarks>
public sealed partial class AddressSpace : IVirtualMemory
{
    private const int PageSize = PagingArchitecture.PageSize;
    private const ulong PageMask = PageSize - 1;

    /// <summary>The most 4 KiB pieces one pass of a read or write handles (1 GiB); larger batches go in several passes.</summary>
    private const int MaxPiecesPerPass = 1 << 18;

    private readonly IPhysicalMemory _physical;
    private readonly PagingArchitecture _architecture;
    private readonly ulong _root;
    private readonly ulong _highRoot;
    private readonly bool _hasHighRoot;
    private readonly TranslationCache? _tlb;

    /// <param name="physical">The memory the tables and the pages are in.</param>
    /// <param name="architecture">How the tables are laid out.</param>
    /// <param name="directoryTableBase">The root: CR3 on x86 (flag and PCID bits are ignored), TTBR0 on AArch64.</param>
    /// <param name="directoryTableBaseHigh">AArch64's TTBR1, for the high half; null leaves the high half unmapped.</param>
    /// <param name="tlb">A translation cache to consult and fill, if any; it may be shared by several address spaces.</param>
    /// <exception cref="ArgumentException">A high root is given for an architecture that has none.</exception>
    public AddressSpace(IPhysicalMemory physical, PagingArchitecture architecture, ulong directoryTableBase,
        ulong? directoryTableBaseHigh = null, TranslationCache? tlb = null)
    {
        ArgumentNullException.ThrowIfNull(physical);
        ArgumentNullException.ThrowIfNull(architecture);
        if (directoryTableBaseHigh is not null && !architecture.HasHighRoot)
            throw new ArgumentException($"The {architecture.Name} architecture has one page-table root; a second (high half) root was given.", nameof(directoryTableBaseHigh));
        _physical = physical;
        _architecture = architecture;
        DirectoryTableBase = directoryTableBase;
        DirectoryTableBaseHigh = directoryTableBaseHigh;
        _root = directoryTableBase & architecture.RootAddressMask;
        _hasHighRoot = directoryTableBaseHigh is not null;
        _highRoot = (directoryTableBaseHigh ?? 0) & architecture.RootAddressMask;
        _tlb = tlb;
    }

    public IPhysicalMemory Physical => _physical;

    public PagingArchitecture Architecture => _architecture;

    /// <summary>The root as given (CR3, TTBR0).</summary>
    public ulong DirectoryTableBase { get; }

    /// <summary>The high-half root as given (TTBR1), if any.</summary>
    public ulong? DirectoryTableBaseHigh { get; }

    public TranslationCache? TranslationCache => _tlb;

    bool IVirtualMemory.TryTranslate(ulong virtualAddress, out ulong physicalAddress)
    {
        bool mapped = TryTranslate(virtualAddress, out var translation);
        physicalAddress = mapped ? translation.PhysicalAddress : 0;
        return mapped;
    }

    /// <summary>Translates one address.</summary>
    /// <returns>False when the address is not canonical or not mapped, or a table could not be read.</returns>
    public bool TryTranslate(ulong virtualAddress, out PageTranslation translation, MemoryFlags flags = MemoryFlags.None)
    {
        Span<ulong> page = [virtualAddress & ~PageMask];
        Span<PageEntry> entry = stackalloc PageEntry[1];
        TranslatePages(page, entry, flags);
        if (!entry[0].Ok)
        {
            translation = default;
            return false;
        }
        translation = entry[0].ToTranslation(virtualAddress);
        return true;
    }

    /// <summary>Translates a batch of addresses breadth-first: one physical batch per table level for all of them.</summary>
    /// <param name="virtualAddresses">The addresses, in any order, duplicates allowed.</param>
    /// <param name="results">Receives each address's translation, or null where it has none.</param>
    /// <param name="flags"><see cref="MemoryFlags.NoCache"/> bypasses the translation cache.</param>
    public void Translate(ReadOnlySpan<ulong> virtualAddresses, Span<PageTranslation?> results, MemoryFlags flags = MemoryFlags.None)
    {
        if (results.Length < virtualAddresses.Length)
            throw new ArgumentException($"The results span holds {results.Length} entries for {virtualAddresses.Length} addresses.", nameof(results));
        int count = virtualAddresses.Length;
        if (count == 0)
            return;
        var pages = ArrayPool<ulong>.Shared.Rent(count);
        var entries = ArrayPool<PageEntry>.Shared.Rent(count);
        try
        {
            for (int i = 0; i < count; i++)
                pages[i] = virtualAddresses[i] & ~PageMask;
            TranslatePages(pages.AsSpan(0, count), entries.AsSpan(0, count), flags);
            for (int i = 0; i < count; i++)
                results[i] = entries[i].Ok ? entries[i].ToTranslation(virtualAddresses[i]) : null;
        }
        finally
        {
            ArrayPool<ulong>.Shared.Return(pages);
            ArrayPool<PageEntry>.Shared.Return(entries);
        }
    }

    /// <summary>Reads a batch of virtual ranges: one breadth-first translation of all their pages, then one physical batch.</summary>
    /// <remarks>An entry succeeds only if every page it touches translates and reads (or, with
    /// <see cref="MemoryFlags.ZeroPadOnFail"/>, those that do not are zero-filled).</remarks>
    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => Transfer(batch, flags, write: false);

    /// <summary>Writes a batch of virtual ranges the same way; an entry whose pages do not all translate is not written at all.</summary>
    /// <exception cref="NotSupportedException">The physical memory is read-only.</exception>
    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => Transfer(batch, flags, write: true);

    private void Transfer(Span<MemoryRequest> batch, MemoryFlags flags, bool write)
    {
        // Cut the batch into passes of bounded size; one request never exceeds 2 GiB, which fits one pass's bound.
        int first = 0;
        long pieces = 0;
        for (int i = 0; i < batch.Length; i++)
        {
            ref var request = ref batch[i];
            int length = request.Buffer.Length;
            request.Succeeded = length == 0;
            long count = PhysicalBatch.FitsInAddressSpace(request.Address, length) ? PhysicalBatch.PageCount(request.Address, length) : 0;
            if (pieces + count > MaxPiecesPerPass && pieces > 0)
            {
                TransferPass(batch[first..i], (int)pieces, flags, write);
                first = i;
                pieces = 0;
            }
            pieces += count;
        }
        if (pieces > 0)
            TransferPass(batch[first..], (int)pieces, flags, write);
    }

    private void TransferPass(Span<MemoryRequest> batch, int pieceCount, MemoryFlags flags, bool write)
    {
        bool zeroPad = !write && (flags & MemoryFlags.ZeroPadOnFail) != 0;
        // Small transfers (the typed reads of an OS layer) use this thread's scratch, which no pool trimming takes away.
        var scratch = pieceCount <= SmallScratch.Pieces ? SmallScratch.Take() : null;
        var pages = scratch?.Pages ?? ArrayPool<ulong>.Shared.Rent(pieceCount);
        var entries = scratch?.Entries ?? ArrayPool<PageEntry>.Shared.Rent(pieceCount);
        var physical = scratch?.Physical ?? ArrayPool<MemoryRequest>.Shared.Rent(pieceCount);
        var owners = scratch?.Owners ?? ArrayPool<int>.Shared.Rent(pieceCount);
        int physicalCount = 0;
        try
        {
            int p = 0;
            foreach (ref readonly var request in batch)
            {
                if (!Splittable(request))
                    continue;
                ulong end = request.Address + (ulong)(request.Buffer.Length - 1);
                for (ulong page = request.Address & ~PageMask; ; page += PageSize)
                {
                    pages[p++] = page;
                    if (page == (end & ~PageMask))
                        break;
                }
            }
            TranslatePages(pages.AsSpan(0, p), entries.AsSpan(0, p), flags);

            p = 0;
            for (int i = 0; i < batch.Length; i++)
            {
                ref var request = ref batch[i];
                if (!Splittable(request))
                    continue;
                var buffer = request.Buffer;
                int firstPhysical = physicalCount;
                int runStart = 0, runEnd = -1;
                bool failed = false;
                ulong address = request.Address;
                for (int done = 0; done < buffer.Length;)
                {
                    int offset = (int)(address & PageMask);
                    int length = Math.Min(buffer.Length - done, PageSize - offset);
                    ref readonly var entry = ref entries[p++];
                    if (!entry.Ok)
                    {
                        if (zeroPad)
                            buffer.Span.Slice(done, length).Clear();
                        else
                            failed = true;
                    }
                    else
                    {
                        ulong physicalAddress = entry.Frame + (ulong)offset;
                        ref var previous = ref physical[Math.Max(physicalCount - 1, 0)];
                        if (physicalCount > firstPhysical && runEnd == done
                            && previous.Address + (ulong)previous.Buffer.Length == physicalAddress)
                        {
                            // Physically contiguous with the piece before: one request reads both.
                            runEnd = done + length;
                            previous.Buffer = buffer[runStart..runEnd];
                        }
                        else
                        {
                            runStart = done;
                            runEnd = done + length;
                            physical[physicalCount] = new MemoryRequest(physicalAddress, buffer[runStart..runEnd]);
                            owners[physicalCount++] = i;
                        }
                    }
                    done += length;
                    address = unchecked(address + (ulong)length); // the last piece may end exactly at 2^64
                }
                if (failed)
                {
                    // A request that cannot succeed is neither read nor (partly) written.
                    physical.AsSpan(firstPhysical, physicalCount - firstPhysical).Clear();
                    physicalCount = firstPhysical;
                }
                else
                {
                    request.Succeeded = true;
                }
            }

            var data = physical.AsSpan(0, physicalCount);
            var physicalFlags = flags & ~MemoryFlags.ZeroPadOnFail;
            if (write)
                PhysicalBatch.Write(_physical, data, physicalFlags);
            else
                PhysicalBatch.Read(_physical, data, physicalFlags);
            for (int k = 0; k < data.Length; k++)
            {
                if (data[k].Succeeded)
                    continue;
                if (zeroPad)
                    data[k].Buffer.Span.Clear();
                else
                    batch[owners[k]].Succeeded = false;
            }
        }
        finally
        {
            physical.AsSpan(0, physicalCount).Clear();
            if (scratch is not null)
            {
                scratch.Return();
            }
            else
            {
                ArrayPool<MemoryRequest>.Shared.Return(physical);
                ArrayPool<ulong>.Shared.Return(pages);
                ArrayPool<PageEntry>.Shared.Return(entries);
                ArrayPool<int>.Shared.Return(owners);
            }
        }
    }

    /// <summary>One thread's arrays for transfers of a few pages.</summary>
    private sealed class SmallScratch
    {
        public const int Pieces = 16;

        [ThreadStatic]
        private static SmallScratch? t_cached;

        public readonly ulong[] Pages = new ulong[Pieces];
        public readonly PageEntry[] Entries = new PageEntry[Pieces];
        public readonly MemoryRequest[] Physical = new MemoryRequest[Pieces];
        public readonly int[] Owners = new int[Pieces];

        /// <summary>This thread's scratch; a nested transfer on the same thread (an address space over a view of
        /// another) finds it taken and gets its own.</summary>
        public static SmallScratch Take()
        {
            var scratch = t_cached ?? new SmallScratch();
            t_cached = null;
            return scratch;
        }

        public void Return() => t_cached = this;
    }

    private static bool Splittable(in MemoryRequest request) =>
        request.Buffer.Length > 0 && PhysicalBatch.FitsInAddressSpace(request.Address, request.Buffer.Length);

    /// <summary>Translates 4 KiB-aligned virtual pages: translation cache first, then one breadth-first walk for the rest.</summary>
    internal void TranslatePages(ReadOnlySpan<ulong> pages, Span<PageEntry> results, MemoryFlags flags)
    {
        bool useTlb = _tlb is not null && (flags & MemoryFlags.NoCache) == 0;
        int[]? missing = null;
        ulong[]? keys = null;
        Walker[]? walkers = null;
        int missingCount = 0;
        // The large page the last cache hit found: a long read through it needs no more lookups.
        ulong largeBase = 0, largeSize = 0, largeFrame = 0;
        var largeFlags = PageFlags.None;
        try
        {
            for (int i = 0; i < pages.Length; i++)
            {
                results[i] = default;
                ulong page = pages[i];
                if (unchecked(page - largeBase) < largeSize) // wraps for pages below, which then fail the test
                {
                    results[i] = new PageEntry(unchecked(largeFrame + (page - largeBase)), largeSize, largeFlags);
                    continue;
                }
                if (!TryRootOf(page, out ulong root))
                    continue;
                if (useTlb && _tlb!.TryGet(root, page, out var cached))
                {
                    results[i] = new PageEntry(cached.PhysicalAddress & ~PageMask, cached.PageSize, cached.Flags);
                    if (cached.PageSize > PageSize)
                    {
                        largeSize = cached.PageSize;
                        largeBase = page & ~(largeSize - 1);
                        largeFrame = unchecked((cached.PhysicalAddress & ~PageMask) - (page - largeBase));
                        largeFlags = cached.Flags;
                    }
                    continue;
                }
                missing ??= ArrayPool<int>.Shared.Rent(pages.Length - i);
                missing[missingCount++] = i;
            }
            if (missingCount == 0)
                return;

            // Sorted by page, the addresses that share a table entry are neighbours; so are duplicates.
            keys = ArrayPool<ulong>.Shared.Rent(missingCount);
            for (int k = 0; k < missingCount; k++)
                keys[k] = pages[missing![k]];
            Array.Sort(keys, missing, 0, missingCount);

            walkers = ArrayPool<Walker>.Shared.Rent(missingCount);
            int walkerCount = 0;
            for (int k = 0; k < missingCount; k++)
            {
                if (k == 0 || keys[k] != keys[k - 1])
                {
                    TryRootOf(keys[k], out ulong root);
                    walkers[walkerCount++] = new Walker(keys[k], root);
                }
            }

            long stamp = useTlb ? _tlb!.Stamp() : 0;
            Walk(walkers.AsSpan(0, walkerCount), flags);

            int w = -1;
            for (int k = 0; k < missingCount; k++)
            {
                if (k == 0 || keys[k] != keys[k - 1])
                {
                    w++;
                    ref readonly var walker = ref walkers[w];
                    if (useTlb && walker.State == WalkState.Mapped)
                        _tlb!.Add(walker.Root, new PageTranslation(walker.Page, walker.Frame, walker.PageSize, walker.Flags), stamp);
                }
                ref readonly var done = ref walkers[w];
                if (done.State == WalkState.Mapped)
                    results[missing![k]] = new PageEntry(done.Frame, done.PageSize, done.Flags);
            }
        }
        finally
        {
            if (missing is not null)
                ArrayPool<int>.Shared.Return(missing);
            if (keys is not null)
                ArrayPool<ulong>.Shared.Return(keys);
            if (walkers is not null)
                ArrayPool<Walker>.Shared.Return(walkers);
        }
    }

    /// <summary>Walks every walker down the tables together: one physical batch per level.</summary>
    private void Walk(Span<Walker> walkers, MemoryFlags flags)
    {
        var levels = _architecture.LevelTable;
        int entrySize = _architecture.EntrySize;
        var requests = ArrayPool<MemoryRequest>.Shared.Rent(walkers.Length);
        var entryBytes = ArrayPool<byte>.Shared.Rent(walkers.Length * sizeof(ulong));
        int used = 0;
        try
        {
            for (int level = 0; level < levels.Length; level++)
            {
                var info = levels[level];
                int count = 0;
                ulong lastAddress = 0;
                foreach (ref var walker in walkers)
                {
                    if (walker.State != WalkState.Walking)
                        continue;
                    ulong entryAddress = walker.Table + info.IndexOf(walker.Page) * (ulong)entrySize;
                    if (count > 0 && entryAddress == lastAddress)
                    {
                        walker.Request = count - 1;
                        continue;
                    }
                    requests[count] = new MemoryRequest(entryAddress, entryBytes.AsMemory(count * sizeof(ulong), entrySize));
                    walker.Request = count++;
                    lastAddress = entryAddress;
                }
                if (count == 0)
                    break;
                used = Math.Max(used, count);

                PhysicalBatch.Read(_physical, requests.AsSpan(0, count), flags & ~MemoryFlags.ZeroPadOnFail);

                bool last = level == levels.Length - 1;
                foreach (ref var walker in walkers)
                {
                    if (walker.State != WalkState.Walking)
                        continue;
                    if (!requests[walker.Request].Succeeded)
                    {
                        walker.State = WalkState.Unmapped;
                        continue;
                    }
                    var bytes = entryBytes.AsSpan(walker.Request * sizeof(ulong));
                    ulong entry = entrySize == sizeof(ulong)
                        ? BinaryPrimitives.ReadUInt64LittleEndian(bytes)
                        : BinaryPrimitives.ReadUInt32LittleEndian(bytes);
                    Step(ref walker, entry, info, last);
                }
            }
        }
        finally
        {
            requests.AsSpan(0, used).Clear();
            ArrayPool<MemoryRequest>.Shared.Return(requests);
            ArrayPool<byte>.Shared.Return(entryBytes);
        }
    }

    /// <summary>Follows one entry: to the next table, to a leaf, or to a fault.</summary>
    private void Step(ref Walker walker, ulong entry, PagingLevel level, bool last)
    {
        var architecture = _architecture;
        if ((entry & architecture.ValidMask) == 0)
        {
            walker.State = WalkState.Unmapped;
            return;
        }
        if (last)
        {
            if ((entry & architecture.PageLeafMask) != architecture.PageLeafValue)
            {
                walker.State = WalkState.Unmapped;
                return;
            }
        }
        else if ((entry & architecture.LargeLeafMask) != architecture.LargeLeafValue)
        {
            if (level.CarriesPermissions)
                walker.Flags = PagingArchitecture.Combine(walker.Flags, PagingArchitecture.FlagsOf(entry, architecture.TableRules));
            walker.Table = entry & architecture.AddressMask;
            return;
        }
        else if (!level.AllowsLargeLeaf)
        {
            // A leaf where the architecture allows none (x86's PS in a PML4 entry, an AArch64 level 0 block).
            walker.State = WalkState.Unmapped;
            return;
        }

        if (level.CarriesPermissions)
            walker.Flags = PagingArchitecture.Combine(walker.Flags, PagingArchitecture.FlagsOf(entry, architecture.LeafRules));
        ulong size = level.EntrySpan;
        if (!last)
            walker.Flags |= PageFlags.Large;
        walker.PageSize = size;
        walker.Frame = (entry & architecture.AddressMask & ~(size - 1)) + (walker.Page & (size - 1));
        walker.State = WalkState.Mapped;
    }

    /// <summary>The root that translates <paramref name="virtualAddress"/>, or false when none does.</summary>
    private bool TryRootOf(ulong virtualAddress, out ulong root)
    {
        if (!_architecture.IsCanonical(virtualAddress))
        {
            root = 0;
            return false;
        }
        if (_architecture.IsHighHalf(virtualAddress))
        {
            root = _highRoot;
            return _hasHighRoot;
        }
        root = _root;
        return true;
    }

    public override string ToString() => _hasHighRoot
        ? $"{_architecture.Name} address space 0x{_root:x}/0x{_highRoot:x}"
        : $"{_architecture.Name} address space 0x{_root:x}";

    /// <summary>One translated 4 KiB page: its physical frame, the size of the page that maps it, its permissions.</summary>
    internal readonly struct PageEntry(ulong frame, ulong pageSize, PageFlags flags)
    {
        public readonly ulong Frame = frame;
        public readonly ulong PageSize = pageSize;
        public readonly PageFlags Flags = flags;

        /// <summary>Whether the page translated (a default entry did not: every mapped page has a size).</summary>
        public bool Ok => PageSize != 0;

        public PageTranslation ToTranslation(ulong virtualAddress) =>
            new(virtualAddress, Frame + (virtualAddress & PageMask), PageSize, Flags);
    }

    private enum WalkState : byte
    {
        Walking,
        Mapped,
        Unmapped,
    }

    private struct Walker(ulong page, ulong root)
    {
        public readonly ulong Page = page;
        public readonly ulong Root = root;
        public ulong Table = root;
        public PageFlags Flags = PagingArchitecture.InitialFlags;
        public int Request;
        public WalkState State;
        public ulong Frame;
        public ulong PageSize;
    }
}
