using System.Buffers.Binary;
using System.Globalization;
using Introspect.Abi;
using Introspect.Core.Memory;
using Introspect.Core.Translation;

namespace Introspect.Os.Windows.Bootstrap;

/// <summary>A page-table root that may be the kernel's, how it was found, and what came with it.</summary>
/// <param name="Dtb">The root (CR3): a PML4 on x64, a PDPT on x86 PAE, a page directory on x86.</param>
/// <param name="Paging">How the tables are laid out.</param>
/// <param name="Method">How it was found, for the account.</param>
/// <param name="KernelEntry">The kernel's entry point where the low stub gave it.</param>
/// <param name="SelfMapIndex">The index of the self-referencing top-level entry, where one was seen.</param>
internal sealed record DtbCandidate(ulong Dtb, PagingArchitecture Paging, string Method, ulong? KernelEntry = null, int? SelfMapIndex = null);

/// <summary>Finds candidate page-table roots in physical memory: the connector's hint, the low stub, then scans for
/// self-referencing x64, x86 PAE and x86 page directories.</summary>
/// <remarks>
/// Windows maps every page-table page through one top-level entry that points at the table itself (the self-map: PML4
/// entry 0x1ED before Windows 10 1607, a random one since). On x86 PAE the fourth page directory maps the four page
/// directories at 0xC0600000; on x86 the page directory maps itself at entry 0x300 (0xC0000000). The low stub
/// (PROCESSOR_START_BLOCK) that x64 Windows leaves in the first megabyte for waking processors holds CR3 and the kernel's
/// entry point. Candidates come lazily: the caller stops at the first that leads to a kernel.
/// </remarks>
internal static class DtbLocator
{
    private const int PageSize = 4096;
    private const ulong X64FrameMask = 0x000F_FFFF_FFFF_F000;
    private const int ChunkPages = 256;

    public static IEnumerable<DtbCandidate> Candidates(IPhysicalMemory memory, ConnectorHints hints, BootstrapAccount account)
    {
        if (hints.DirectoryTableBase is { } hinted && hinted != 0)
        {
            var paging = hints.Architecture switch
            {
                MachineArchitecture.X86Pae => PagingArchitecture.X86Pae,
                MachineArchitecture.X86 => hints.PaeEnabled == true ? PagingArchitecture.X86Pae : PagingArchitecture.X86,
                _ => PagingArchitecture.X64,
            };
            string source = hints.Format is { } format ? $"the {format} header" : "the connector's hint";
            account.Note("dtb", string.Create(CultureInfo.InvariantCulture, $"{source} gives DirectoryTableBase 0x{hinted:x} ({paging.Name})"));
            yield return new DtbCandidate(hinted, paging, $"connector hint ({source})");
        }
        else
        {
            account.Note("dtb", "no DirectoryTableBase hint from the connector");
        }

        var stub = FindLowStub(memory, account);
        if (stub is not null)
            yield return stub;

        ulong limit = ScanLimit(memory);
        int x64Found = 0;
        foreach (var candidate in ScanX64(memory, limit))
        {
            x64Found++;
            account.Note("dtb", string.Create(CultureInfo.InvariantCulture,
                $"self-referencing PML4 at physical 0x{candidate.Dtb:x} (entry 0x{candidate.SelfMapIndex:x})"));
            yield return candidate;
            if (x64Found >= 64)
                break;
        }
        if (x64Found == 0)
            account.Note("dtb", string.Create(CultureInfo.InvariantCulture, $"no self-referencing x64 PML4 below 0x{limit:x}"));

        int paeFound = 0;
        foreach (var candidate in ScanPae(memory, Math.Min(limit, 64UL << 30)))
        {
            paeFound++;
            account.Note("dtb", string.Create(CultureInfo.InvariantCulture, $"x86 PAE page directory pointer table at physical 0x{candidate.Dtb:x}"));
            yield return candidate;
            if (paeFound >= 16)
                break;
        }
        if (paeFound == 0)
            account.Note("dtb", "no self-mapped x86 PAE page directories");

        int x86Found = 0;
        foreach (var candidate in ScanX86(memory, Math.Min(limit, 4UL << 30)))
        {
            x86Found++;
            account.Note("dtb", string.Create(CultureInfo.InvariantCulture, $"self-mapped x86 page directory at physical 0x{candidate.Dtb:x}"));
            yield return candidate;
            if (x86Found >= 16)
                break;
        }
        if (x86Found == 0)
            account.Note("dtb", "no self-mapped x86 page directory");
    }

    private static ulong ScanLimit(IPhysicalMemory memory)
    {
        ulong max = memory.Metadata.MaxAddress;
        ulong end = max == ulong.MaxValue ? max : max + 1;
        return Math.Min(end, WindowsLimits.MaxDtbScanBytes);
    }

    /// <summary>The PROCESSOR_START_BLOCK in the first megabyte: a jump at +0, the kernel's entry at +0x70, CR3 at +0xA0.</summary>
    /// <remarks>The checks are those Windows' own layout allows: the jump's fixed bytes, an entry in the kernel's
    /// 0xFFFFF8 range, a page-aligned CR3 below 2^40.</remarks>
    internal static DtbCandidate? FindLowStub(IMemory memory, BootstrapAccount? account)
    {
        var page = new byte[PageSize];
        for (ulong address = 0x1000; address < 0x100000; address += PageSize)
        {
            if (memory.Read(address, page) != PageSize)
                continue;
            ulong jump = BinaryPrimitives.ReadUInt64LittleEndian(page);
            ulong entry = BinaryPrimitives.ReadUInt64LittleEndian(page.AsSpan(0x70));
            ulong cr3 = BinaryPrimitives.ReadUInt64LittleEndian(page.AsSpan(0xA0));
            if ((jump & 0xFFFF_FFFF_FFFF_00FF) != 0x0000_0001_0006_00E9)
                continue;
            if ((entry & 0xFFFF_F800_0000_0003) != 0xFFFF_F800_0000_0000)
                continue;
            if ((cr3 & 0xFFFF_FF00_0000_0FFF) != 0 || cr3 == 0)
                continue;
            account?.Note("dtb", string.Create(CultureInfo.InvariantCulture,
                $"low stub (PROCESSOR_START_BLOCK) at physical 0x{address:x}: CR3 0x{cr3:x}, kernel entry 0x{entry:x}"));
            return new DtbCandidate(cr3, PagingArchitecture.X64, "low stub", entry);
        }
        account?.Note("dtb", "no low stub (PROCESSOR_START_BLOCK) in the first megabyte");
        return null;
    }

    /// <summary>Pages whose upper half holds a present, writable, non-user entry pointing at the page itself, with other
    /// kernel entries beside it.</summary>
    internal static IEnumerable<DtbCandidate> ScanX64(IPhysicalMemory memory, ulong limit)
    {
        foreach (var (address, page) in Pages(memory, limit))
        {
            var entries = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(page.Span);
            int self = -1;
            int kernelEntries = 0;
            bool bad = false;
            for (int i = 256; i < 512; i++)
            {
                ulong e = entries[i];
                if ((e & 1) == 0)
                    continue;
                if ((e & 0x80) != 0)
                {
                    bad = true; // no large page at the PML4 level
                    break;
                }
                kernelEntries++;
                if ((e & X64FrameMask) == address && (e & 0x2) != 0 && (e & 0x4) == 0)
                    self = i;
            }
            if (bad || self < 0 || kernelEntries < 2)
                continue;
            yield return new DtbCandidate(address, PagingArchitecture.X64, "self-referencing PML4 scan", SelfMapIndex: self);
        }
    }

    /// <summary>x86 PAE: the page directory for 0xC0000000 maps the four page directories at its entries 0..3, the
    /// fourth being itself; the PDPT is then found as the 32 bytes that point at those four.</summary>
    internal static IEnumerable<DtbCandidate> ScanPae(IPhysicalMemory memory, ulong limit)
    {
        foreach (var (address, page) in Pages(memory, limit))
        {
            var entries = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(page.Span);
            if ((entries[3] & 1) == 0 || (entries[3] & X64FrameMask) != address)
                continue;
            bool ok = true;
            var directories = new ulong[4];
            for (int i = 0; i < 4 && ok; i++)
            {
                ulong e = entries[i];
                ok = (e & 1) != 0 && (e & 0x80) == 0 && (e & X64FrameMask) < (1UL << 36);
                directories[i] = e & X64FrameMask;
            }
            if (!ok || directories.Distinct().Count() != 4)
                continue;
            if (FindPdpt(memory, limit, directories) is { } pdpt)
                yield return new DtbCandidate(pdpt, PagingArchitecture.X86Pae, "self-mapped x86 PAE page directory scan", SelfMapIndex: 3);
        }
    }

    private static ulong? FindPdpt(IPhysicalMemory memory, ulong limit, ulong[] directories)
    {
        foreach (var (address, page) in Pages(memory, Math.Min(limit, 4UL << 30)))
        {
            var entries = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(page.Span);
            for (int i = 0; i + 4 <= entries.Length; i += 4)
            {
                // PDPT entries have no writable, user, accessed, dirty or size bits (they are reserved there), which
                // tells the PDPT from the self-mapping directory whose first four entries point at the same frames.
                if ((entries[i] & 1) != 0 && ((entries[i] | entries[i + 1] | entries[i + 2] | entries[i + 3]) & 0x1E6) == 0
                    && (entries[i] & X64FrameMask) == directories[0]
                    && (entries[i + 1] & X64FrameMask) == directories[1]
                    && (entries[i + 2] & X64FrameMask) == directories[2]
                    && (entries[i + 3] & X64FrameMask) == directories[3])
                    return address + (ulong)(i * 8);
            }
        }
        return null;
    }

    /// <summary>x86 without PAE: the page directory's entry 0x300 (0xC0000000) points at the directory itself.</summary>
    internal static IEnumerable<DtbCandidate> ScanX86(IPhysicalMemory memory, ulong limit)
    {
        foreach (var (address, page) in Pages(memory, limit))
        {
            var entries = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, uint>(page.Span);
            uint e = entries[0x300];
            if ((e & 1) == 0 || (e & 0x80) != 0 || (e & 0xFFFF_F000) != address)
                continue;
            int kernel = 0;
            for (int i = 0x200; i < 0x400; i++)
            {
                if ((entries[i] & 1) != 0)
                    kernel++;
            }
            if (kernel >= 2)
                yield return new DtbCandidate(address, PagingArchitecture.X86, "self-mapped x86 page directory scan", SelfMapIndex: 0x300);
        }
    }

    /// <summary>Every readable page of RAM below <paramref name="limit"/>, in address order, read a chunk at a time.</summary>
    private static IEnumerable<(ulong Address, ReadOnlyMemory<byte> Page)> Pages(IPhysicalMemory memory, ulong limit)
    {
        var map = memory.MemoryMap;
        IEnumerable<MemoryRange> ranges = map.Count > 0 ? map : [new MemoryRange(0, limit)];
        var chunk = new byte[ChunkPages * PageSize];
        var requests = new MemoryRequest[ChunkPages];
        foreach (var range in ranges)
        {
            ulong start = (range.Base + PageSize - 1) & ~(ulong)(PageSize - 1);
            ulong end = Math.Min(limit, unchecked(range.Base + range.Size) < range.Base ? ulong.MaxValue : range.Base + range.Size);
            for (ulong at = start; at < end && end - at >= PageSize;)
            {
                int pages = (int)Math.Min((ulong)ChunkPages, (end - at) / PageSize);
                for (int i = 0; i < pages; i++)
                    requests[i] = new MemoryRequest(at + (ulong)i * PageSize, chunk.AsMemory(i * PageSize, PageSize));
                memory.Read(requests.AsSpan(0, pages));
                for (int i = 0; i < pages; i++)
                {
                    if (requests[i].Succeeded)
                        yield return (requests[i].Address, chunk.AsMemory(i * PageSize, PageSize));
                }
                at += (ulong)pages * PageSize;
            }
        }
    }
}
