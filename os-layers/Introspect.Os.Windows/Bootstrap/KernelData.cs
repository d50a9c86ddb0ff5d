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
        if (BinaryPrimitives.ReadUInt32LittleEndian(block[0x10..]) != KdbgTag || BinaryPrimitives.ReadUInt64LittleEndian(block[0x18..]) != kernelBase)
            return null;
        return new KdDebuggerData(address, BinaryPrimitives.ReadUInt64LittleEndian(block[0x48..]), BinaryPrimitives.ReadUInt64LittleEndian(block[0x50..]));
    }

    /// <summary>Searches the kernel image's writable data sections for the KDBG block.</summary>
    public static KdDebuggerData? Scan(IMemory kernel, ulong kernelBase, PeImage image)
    {
        foreach (var section in image.Sections.Where(s => (s.Characteristics & PeSection.Writable) != 0))
        {
            uint size = Math.Min(section.MappedSize, 64u << 20);
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
            uint size = Math.Min(section.MappedSize, 64u << 20);
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
