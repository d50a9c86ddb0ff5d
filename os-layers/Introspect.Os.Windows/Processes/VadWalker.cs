using System.Globalization;
using Introspect.Abi;
using Introspect.Core.Memory;
using Introspect.Os.Windows.Offsets;

namespace Introspect.Os.Windows.Processes;

/// <summary>One VAD as read: its range, MM_PROTECT value, whether it is private, and its backing file.</summary>
/// <param name="Start">The first address.</param>
/// <param name="End">The address after the last (exclusive).</param>
/// <param name="Protection">The MM_PROTECT value from the VAD's flags.</param>
/// <param name="Private">Private memory (no section behind it).</param>
/// <param name="File">The backing file's name from the control area's file object, where there is one.</param>
internal sealed record Vad(ulong Start, ulong End, uint Protection, bool Private, string? File);

/// <summary>Walks a process's VAD tree in address order: bounded, cycle-safe, depth-limited.</summary>
internal sealed class VadWalker(WindowsKernel kernel)
{
    public List<Vad> Walk(ulong eprocess, ulong pid)
    {
        var o = kernel.Offsets;
        var vads = new List<Vad>();
        if (o.VadRoot < 0 || o.VadLeft < 0 || o.VadRight < 0 || o.VadStartingVpn < 0 || o.VadEndingVpn < 0)
            return vads;
        var memory = kernel.Kernel;
        var reader = kernel.Reader;
        ulong rootField = eprocess + (ulong)o.VadRoot + (ulong)(o.VadTree == VadTreeKind.AddressNodes ? o.VadRight : 0);
        if (!reader.TryPointer(memory, rootField, out ulong root) || root == 0)
            return vads;

        int nodeSize = new[] { o.VadLeft, o.VadRight, o.VadStartingVpn + o.VadVpnSize, o.VadEndingVpn + o.VadVpnSize, o.VadFlags + o.VadFlagsSize,
            o.VadStartingVpnHigh + 1, o.VadEndingVpnHigh + 1 }.Max() + reader.PointerSize;
        var node = new byte[nodeSize];
        var seen = new HashSet<ulong>();
        var stack = new Stack<(ulong Node, int Depth)>();
        ulong current = root;
        int depth = 0;
        bool warned = false;
        void Warn(string text)
        {
            if (!warned)
                kernel.Warn(string.Create(CultureInfo.InvariantCulture, $"the VAD tree of process {pid}: {text}"));
            warned = true;
        }

        while (current != 0 || stack.Count > 0)
        {
            while (current != 0)
            {
                if (depth > WindowsLimits.MaxVadDepth)
                {
                    Warn($"deeper than {WindowsLimits.MaxVadDepth} levels; that branch is cut");
                    current = 0;
                    break;
                }
                if (!reader.IsKernelAddress(current) || !seen.Add(current))
                {
                    Warn(string.Create(CultureInfo.InvariantCulture, $"node 0x{current:x} is outside the kernel or seen before; that branch is cut"));
                    current = 0;
                    break;
                }
                stack.Push((current, depth));
                current = reader.Pointer(memory, unchecked(current + (ulong)o.VadLeft));
                depth++;
            }
            if (stack.Count == 0)
                break;
            var (address, level) = stack.Pop();
            if (vads.Count >= WindowsLimits.MaxVads)
            {
                Warn($"more than {WindowsLimits.MaxVads} nodes; the rest are left out");
                break;
            }
            if (memory.Read(address, node) != node.Length)
            {
                Warn(string.Create(CultureInfo.InvariantCulture, $"node 0x{address:x} cannot be read"));
                current = 0;
                continue;
            }
            vads.Add(Describe(node, address));
            current = reader.Pointer(node, o.VadRight);
            depth = level + 1;
        }
        if (vads.Zip(vads.Skip(1)).Any(pair => pair.First.Start > pair.Second.Start))
        {
            Warn("nodes are out of address order; they are sorted");
            vads.Sort((a, b) => a.Start.CompareTo(b.Start));
        }
        return vads;
    }

    private Vad Describe(byte[] node, ulong address)
    {
        var o = kernel.Offsets;
        var reader = kernel.Reader;
        ulong startVpn = o.VadVpnSize == 8 ? GuestReader.U64(node, o.VadStartingVpn) : GuestReader.U32(node, o.VadStartingVpn);
        ulong endVpn = o.VadVpnSize == 8 ? GuestReader.U64(node, o.VadEndingVpn) : GuestReader.U32(node, o.VadEndingVpn);
        if (o.VadStartingVpnHigh >= 0 && o.VadStartingVpnHigh < node.Length)
            startVpn |= (ulong)node[o.VadStartingVpnHigh] << 32;
        if (o.VadEndingVpnHigh >= 0 && o.VadEndingVpnHigh < node.Length)
            endVpn |= (ulong)node[o.VadEndingVpnHigh] << 32;
        ulong flags = o.VadFlags < 0 ? 0 : o.VadFlagsSize == 8 ? GuestReader.U64(node, o.VadFlags) : GuestReader.U32(node, o.VadFlags);
        uint protection = o.VadProtectionShift >= 0 ? (uint)((flags >> o.VadProtectionShift) & ((1UL << o.VadProtectionBits) - 1)) : 0;
        bool isPrivate = o.VadPrivateMemoryShift >= 0 && ((flags >> o.VadPrivateMemoryShift) & 1) != 0;
        string? file = null;
        if (!isPrivate && o.VadSubsection >= 0 && o.ControlAreaFilePointer >= 0 && o.FileObjectFileName >= 0)
        {
            var memory = kernel.Kernel;
            ulong subsection = reader.Pointer(memory, unchecked(address + (ulong)o.VadSubsection));
            ulong controlArea = reader.IsKernelAddress(subsection) ? reader.Pointer(memory, unchecked(subsection + (ulong)o.SubsectionControlArea)) : 0;
            ulong fileObject = reader.IsKernelAddress(controlArea) ? reader.Pointer(memory, unchecked(controlArea + (ulong)o.ControlAreaFilePointer)) : 0;
            // FilePointer is an EX_FAST_REF: its low bits count references.
            fileObject &= reader.Is64 ? ~0xFUL : ~0x7UL;
            if (reader.IsKernelAddress(fileObject))
                file = reader.UnicodeString(memory, unchecked(fileObject + (ulong)o.FileObjectFileName));
            if (file is { Length: 0 })
                file = null;
        }
        ulong start = startVpn << 12;
        ulong end = unchecked(endVpn + 1) << 12;
        return new Vad(start, end, protection, isPrivate, file);
    }

    /// <summary>MM_PROTECT's low three bits as access rights (the upper bits are caching and guard flags).</summary>
    public static MemoryProtection ToProtection(uint protection, bool isPrivate)
    {
        var rights = (protection & 7) switch
        {
            1 => MemoryProtection.Read,
            2 => MemoryProtection.Execute,
            3 => MemoryProtection.Read | MemoryProtection.Execute,
            4 or 5 => MemoryProtection.Read | MemoryProtection.Write,
            6 or 7 => MemoryProtection.Read | MemoryProtection.Write | MemoryProtection.Execute,
            _ => MemoryProtection.None,
        };
        return isPrivate ? rights : rights | MemoryProtection.Shared;
    }
}
