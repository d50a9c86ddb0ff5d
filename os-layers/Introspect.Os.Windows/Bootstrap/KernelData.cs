using System.Buffers.Binary;
using Introspect.Abi;
using Introspect.Core.Memory;
using Introspect.Symbols.Pe;

namespace Introspect.Os.Windows.Bootstrap;

/// <summary>The kernel debugger's data block (KDDEBUGGER_DATA64): the "KDBG" tag, the kernel base and the list heads.</summary>
/// <param name="Address">Where the block is.</param>
/// <param name="PsLoadedModuleList">Its PsLoadedModuleList field.</param>
/// <param name="PsActiveProcessHead">Its PsActiveProcessHead field.</param>
internal readonly record struct KdDebuggerData(ulong Address, ulong PsLoadedModuleList, ulong PsActiveProcessHead);

/// <summary>Finds kernel data that has no export: the KDBG block, the loaded-module list head.</summary>
internal static class KernelData
{
    private const uint KdbgTag = 0x4742444B; // "KDBG"

    /// <summary>Reads the KDBG block at <paramref name="address"/> if it is one for this kernel (the block is plain in crash
    /// dumps; a live Windows 8+ kernel keeps it encoded, which this does not undo).</summary>
    public static KdDebuggerData? Read(IMemory kernel, ulong address, ulong kernelBase)
    {
        Span<byte> block = stackalloc byte[0x58];
        if (kernel.Read(address, block) != block.Length)
            return null;
        // A 32-bit kernel fills the block's 64-bit pointers sign-extended (0xffffffff82808000 for 0x82808000).
        bool narrow = kernelBase <= uint.MaxValue;
        if (BinaryPrimitives.ReadUInt32LittleEndian(block[0x10..]) != KdbgTag || Pointer(block, 0x18, narrow) != kernelBase)
            return null;
        return new KdDebuggerData(address, Pointer(block, 0x48, narrow), Pointer(block, 0x50, narrow));
    }

    private static ulong Pointer(ReadOnlySpan<byte> block, int offset, bool narrow)
    {
        ulong value = BinaryPrimitives.ReadUInt64LittleEndian(block[offset..]);
        return narrow ? (uint)value : value;
    }

    /// <summary>
    /// How much of a section a scan reads: whole pages, since the loader maps them whole and a variable may sit past
    /// the section's virtual size in its last page, capped so a damaged header cannot ask for gigabytes.
    /// </summary>
    private static uint ScannedSize(PeSection section) => (uint)Math.Min(((ulong)section.MappedSize + 0xfff) & ~0xfffUL, 64u << 20);

    /// <summary>Searches the kernel image's writable data sections for the KDBG block.</summary>
    public static KdDebuggerData? Scan(IMemory kernel, ulong kernelBase, PeImage image)
    {
        foreach (var section in image.Sections.Where(s => (s.Characteristics & PeSection.Writable) != 0))
        {
            uint size = ScannedSize(section);
            var bytes = new byte[size];
            kernel.Read(kernelBase + section.VirtualAddress, bytes, MemoryFlags.ZeroPadOnFail);
            for (int o = 0x10; o + 0x48 <= bytes.Length; o += 8)
            {
                if (BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(o)) != KdbgTag)
                    continue;
                if (Read(kernel, kernelBase + section.VirtualAddress + (ulong)o - 0x10, kernelBase) is { } found)
                    return found;
            }
        }
        return null;
    }

    /// <summary>Searches the kernel image's writable data for a LIST_ENTRY whose first entry is the kernel's own loader
    /// entry (DllBase = the kernel base) and that links back to it: PsLoadedModuleList.</summary>
    public static ulong? ScanLoadedModuleList(IMemory kernel, GuestReader reader, ulong kernelBase, PeImage image)
    {
        int ps = reader.PointerSize;
        int dllBase = ps == 8 ? 0x30 : 0x18;
        foreach (var section in image.Sections.Where(s => (s.Characteristics & PeSection.Writable) != 0))
        {
            uint size = ScannedSize(section);
            var bytes = new byte[size];
            kernel.Read(kernelBase + section.VirtualAddress, bytes, MemoryFlags.ZeroPadOnFail);
            for (int o = 0; o + 2 * ps <= bytes.Length; o += ps)
            {
                ulong flink = reader.Pointer(bytes, o);
                if (!reader.IsKernelAddress(flink) || unchecked(flink - kernelBase) < image.SizeOfImage)
                    continue;
                ulong head = kernelBase + section.VirtualAddress + (ulong)o;
                if (reader.TryPointer(kernel, unchecked(flink + (ulong)dllBase), out ulong firstBase) && firstBase == kernelBase
                    && reader.TryPointer(kernel, unchecked(flink + (ulong)ps), out ulong back) && back == head)
                    return head;
            }
        }
        return null;
    }
}
