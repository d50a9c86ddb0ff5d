using System.Buffers.Binary;
using System.Globalization;
using Introspect.Abi;
using Introspect.Core.Memory;

namespace Introspect.Os.Windows.Processes;

/// <summary>Finds EPROCESS objects by their pool allocations (tag <c>Proc</c>), whether or not they are on the process list.</summary>
/// <remarks>
/// A process object lives in a pool block: POOL_HEADER (16 bytes on x64, 8 on x86; the tag at +4, <c>Proc</c>, with
/// the protected bit set on the last byte before Windows 8), optional object header parts, OBJECT_HEADER (its body at
/// +0x30 on x64, +0x18 on x86), then the EPROCESS. The scan reads the kernel's mapped pages (the self-map left out),
/// looks for the tag at pool alignment and checks each candidate body as an EPROCESS: a pid Windows could give, a
/// printable image name, a page-table root inside physical memory, kernel pointers in the list links.
/// </remarks>
internal sealed class PoolScanner(WindowsKernel kernel)
{
    private const uint ProcTag = 0x636F7250; // "Proc"
    private const uint ProtectedProcTag = 0xE36F7250; // "Proc" with the protected-pool bit (before Windows 8)
    private const int Chunk = 1 << 16;

    public List<ulong> Scan()
    {
        var reader = kernel.Reader;
        int alignment = reader.Is64 ? 16 : 8;
        int bodyOffset = reader.Is64 ? 0x30 : 0x18;
        ulong kernelStart = reader.Is64 ? 0xFFFF_8000_0000_0000 : 0x8000_0000;
        var map = kernel.Kernel.GetPageMap(kernelStart, ulong.MaxValue);
        var found = new List<ulong>();
        var seen = new HashSet<ulong>();
        ulong budget = WindowsLimits.MaxPoolScanBytes;
        var buffer = new byte[Chunk];
        (ulong Start, ulong End)? selfMap = null;
        if (reader.Is64 && kernel.SelfMapIndex is { } index)
        {
            ulong start = 0xFFFF_0000_0000_0000 | ((ulong)index << 39);
            selfMap = (start, start + (1UL << 39));
        }
        else if (!reader.Is64)
        {
            selfMap = (0xC000_0000, 0xC080_0000);
        }
        int eprocessSize = kernel.Offsets.EprocessReadSize;
        foreach (var run in map)
        {
            if (selfMap is { } sm && run.VirtualAddress >= sm.Start && run.VirtualAddress < sm.End)
                continue;
            for (ulong offset = 0; offset < run.Size && budget > 0; offset += Chunk)
            {
                ulong at = run.VirtualAddress + offset;
                int length = (int)Math.Min((ulong)Chunk, run.Size - offset);
                budget -= Math.Min(budget, (ulong)length);
                var span = buffer.AsSpan(0, length);
                if (kernel.Kernel.Read(at, span, MemoryFlags.ZeroPadOnFail) != length)
                    continue;
                for (int o = 0; o + 8 <= length; o += alignment)
                {
                    uint tag = BinaryPrimitives.ReadUInt32LittleEndian(span[(o + 4)..]);
                    if (tag != ProcTag && tag != ProtectedProcTag)
                        continue;
                    ulong header = at + (ulong)o;
                    for (int extra = 0; extra <= 0x80; extra += alignment)
                    {
                        // The pool header is as long as the pool's alignment.
                        ulong body = header + (ulong)(alignment + bodyOffset + extra);
                        if (seen.Contains(body))
                            break;
                        if (LooksLikeProcess(body, eprocessSize))
                        {
                            seen.Add(body);
                            found.Add(body);
                            break;
                        }
                    }
                }
            }
            if (budget == 0)
            {
                kernel.Warn(string.Create(CultureInfo.InvariantCulture, $"the pool scan stopped after {WindowsLimits.MaxPoolScanBytes >> 20} MiB of kernel memory"));
                break;
            }
        }
        return found;
    }

    /// <summary>Whether an EPROCESS could be at <paramref name="address"/>.</summary>
    internal bool LooksLikeProcess(ulong address, int size)
    {
        var o = kernel.Offsets;
        var reader = kernel.Reader;
        var bytes = new byte[size];
        if (kernel.Kernel.Read(address, bytes, MemoryFlags.ZeroPadOnFail) != size)
            return false;
        ulong pid = reader.Pointer(bytes, o.UniqueProcessId);
        if (pid == 0 || (pid & 3) != 0 || pid > 0x100_0000)
            return false;
        ulong flink = reader.Pointer(bytes, o.ActiveProcessLinks);
        ulong blink = reader.Pointer(bytes, o.ActiveProcessLinks + reader.PointerSize);
        if (!reader.IsKernelAddress(flink) || !reader.IsKernelAddress(blink))
            return false;
        ulong dtb = (reader.Is64 ? GuestReader.U64(bytes, o.DirectoryTableBase) : GuestReader.U32(bytes, o.DirectoryTableBase)) & kernel.RootMask;
        ulong max = kernel.Physical.Metadata.MaxAddress;
        if (dtb == 0 || dtb > max)
            return false;
        var name = bytes.AsSpan(o.ImageFileName, 15);
        int end = name.IndexOf((byte)0);
        if (end <= 0)
            return false;
        foreach (byte c in name[..end])
        {
            if (c < 0x20 || c > 0x7E)
                return false;
        }
        foreach (byte c in name[end..])
        {
            if (c != 0)
                return false;
        }
        return true;
    }
}
