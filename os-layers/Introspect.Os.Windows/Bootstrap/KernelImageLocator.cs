using System.Buffers.Binary;
using System.Globalization;
using Introspect.Abi;
using Introspect.Core.Memory;
using Introspect.Core.Translation;
using Introspect.Symbols.Pe;

namespace Introspect.Os.Windows.Bootstrap;

/// <summary>Finds ntoskrnl's image in a kernel address space: below the low stub's entry point, or by scanning the
/// kernel's range for an image whose export directory names the kernel or that carries a <c>POOLCODE</c> section.</summary>
internal static class KernelImageLocator
{
    private const ulong PageSize = 4096;
    private const ulong LargePage = 2UL << 20;

    /// <summary>Where x64 Windows loads the kernel (with and without KASLR): 0xFFFFF800'00000000 and the 32 GiB above.</summary>
    private const ulong X64KernelStart = 0xFFFF_F800_0000_0000;
    private const ulong X64KernelEnd = 0xFFFF_F808_0000_0000;

    /// <summary>Where 32-bit Windows loads it: the system range from 0x80000000.</summary>
    private const ulong X86KernelStart = 0x8000_0000;
    private const ulong X86KernelEnd = 0xC000_0000;

    /// <summary>The most page starts looked at for an image's "MZ".</summary>
    private const int MaxPagesScanned = 1 << 20;

    private static readonly string[] KernelNames = ["ntoskrnl.exe", "ntkrnlmp.exe", "ntkrnlpa.exe", "ntkrpamp.exe"];

    public static (ulong Base, PeImage Image, string Method)? Locate(AddressSpace kernel, DtbCandidate candidate, BootstrapAccount account)
    {
        if (candidate.KernelEntry is { } entry)
        {
            ulong page = entry & ~(PageSize - 1);
            ulong floor = page > WindowsLimits.MaxEntryToBase ? page - WindowsLimits.MaxEntryToBase : 0;
            var starts = new List<ulong>();
            for (ulong at = page; at >= floor && at != 0; at -= PageSize)
                starts.Add(at);
            if (FindImage(kernel, starts, account, image => unchecked(entry - image.LoadedAt!.Value) < image.SizeOfImage) is { } found)
                return (found.Base, found.Image, "the low stub's kernel entry, searched downwards for the image holding it");
            account.Note("kernel", string.Create(CultureInfo.InvariantCulture, $"no kernel image holds the low stub's entry 0x{entry:x}"));
        }

        bool is64 = candidate.Paging.EntrySize == 8 && candidate.Paging.VirtualAddressBits > 32;
        ulong start = is64 ? X64KernelStart : X86KernelStart;
        ulong end = is64 ? X64KernelEnd : X86KernelEnd;
        var map = kernel.GetPageMap(start, end);
        if (map.Count == 0)
        {
            account.Note("kernel", string.Create(CultureInfo.InvariantCulture, $"nothing is mapped in 0x{start:x}..0x{end:x} through DTB 0x{candidate.Dtb:x}"));
            return null;
        }
        // 2 MiB boundaries first (KASLR places the kernel there since Windows 10), then every page.
        var large = new List<ulong>();
        var all = new List<ulong>();
        foreach (var run in map)
        {
            for (ulong at = run.VirtualAddress; run.Contains(at) && all.Count < MaxPagesScanned; at += PageSize)
            {
                if ((at & (LargePage - 1)) == 0)
                    large.Add(at);
                else
                    all.Add(at);
                if (at > ulong.MaxValue - PageSize)
                    break;
            }
        }
        if (FindImage(kernel, large, account, null) is { } onLarge)
            return (onLarge.Base, onLarge.Image, "a scan of the kernel range's 2 MiB boundaries for an image exporting as ntoskrnl.exe or with a POOLCODE section");
        if (FindImage(kernel, all, account, null) is { } onPage)
            return (onPage.Base, onPage.Image, "a scan of the kernel range's pages for an image exporting as ntoskrnl.exe or with a POOLCODE section");
        account.Note("kernel", string.Create(CultureInfo.InvariantCulture,
            $"no kernel image among {large.Count + all.Count} mapped pages of 0x{start:x}..0x{end:x}"));
        return null;
    }

    private static (ulong Base, PeImage Image)? FindImage(IMemory kernel, List<ulong> starts, BootstrapAccount account, Func<PeImage, bool>? accept)
    {
        const int Batch = 4096;
        var heads = new byte[Batch * 2];
        var requests = new MemoryRequest[Batch];
        for (int first = 0; first < starts.Count; first += Batch)
        {
            int count = Math.Min(Batch, starts.Count - first);
            for (int i = 0; i < count; i++)
                requests[i] = new MemoryRequest(starts[first + i], heads.AsMemory(i * 2, 2));
            kernel.Read(requests.AsSpan(0, count));
            for (int i = 0; i < count; i++)
            {
                if (!requests[i].Succeeded || heads[i * 2] != (byte)'M' || heads[i * 2 + 1] != (byte)'Z')
                    continue;
                ulong at = starts[first + i];
                if (!LooksLikeKernel(kernel, at))
                    continue;
                PeImage image;
                try
                {
                    image = PeImage.FromMemory(kernel, at, "the kernel image");
                }
                catch (InvalidDataException)
                {
                    continue;
                }
                bool named = image.ExportName is { } name && KernelNames.Contains(name, StringComparer.OrdinalIgnoreCase);
                bool poolCode = image.Sections.Any(s => s.Name == "POOLCODE");
                if (!named && !poolCode)
                    continue;
                if (accept is not null && !accept(image))
                    continue;
                account.Note("kernel", string.Create(CultureInfo.InvariantCulture,
                    $"image at 0x{at:x}: {(named ? "exports as " + image.ExportName : "has a POOLCODE section")}, {image.SizeOfImage:#,0} bytes"));
                return (at, image);
            }
        }
        return null;
    }

    /// <summary>A cheap first check before the full PE parse: an NT header with a machine Windows runs on, a driver or executable.</summary>
    private static bool LooksLikeKernel(IMemory kernel, ulong at)
    {
        Span<byte> dos = stackalloc byte[64];
        if (kernel.Read(at, dos) != dos.Length)
            return false;
        uint lfanew = BinaryPrimitives.ReadUInt32LittleEndian(dos[0x3C..]);
        if (lfanew < 64 || lfanew > 0x1000 - 24)
            return false;
        Span<byte> nt = stackalloc byte[6];
        if (kernel.Read(at + lfanew, nt) != nt.Length || !nt[..4].SequenceEqual("PE\0\0"u8))
            return false;
        ushort machine = BinaryPrimitives.ReadUInt16LittleEndian(nt[4..]);
        return machine is 0x8664 or 0x14C;
    }
}
