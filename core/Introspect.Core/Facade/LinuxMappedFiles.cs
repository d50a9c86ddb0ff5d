using Introspect.Abi;

namespace Introspect.Core;

/// <summary>The device and inode of the file behind each memory area of a Linux process: the two columns of <c>/proc/PID/maps</c> the OS contract does not carry.</summary>
/// <remarks>
/// Walks the process's maple tree (<c>mm-&gt;mm_mt</c>, Linux 6.1 and later) to its <c>vm_area_struct</c>s, and each
/// one's <c>vm_file-&gt;f_inode</c> to <c>i_ino</c> and <c>i_sb-&gt;s_dev</c>, with the kernel's types for every offset.
/// Bounded: at most <see cref="MaxNodes"/> nodes, <see cref="MaxDepth"/> levels; a torn tree ends the walk with what
/// was found. Areas it cannot place keep device 00:00 and inode 0.
/// </remarks>
internal static class LinuxMappedFiles
{
    private const int MaxNodes = 1 << 16;
    private const int MaxDepth = 12;

    // Maple tree pointers: nodes are aligned to 256 bytes, an encoded node carries its type in bits 3..6.
    private const ulong NodeMask = 0xff;
    private const int LeafRange64 = 1, Range64 = 2, ArangeRange64 = 3;
    private const int Range64Slots = 16, Arange64Slots = 10;

    /// <summary>Kernel objects live in the upper half of a 64-bit address space.</summary>
    private static bool IsKernelPointer(ulong value) => value >= 1UL << 63;

    /// <summary>(major, minor, inode) by area start, or null when the kernel's types do not describe what the walk needs.</summary>
    public static Dictionary<ulong, (uint Major, uint Minor, ulong Inode)>? Find(Machine machine, MachineProcess process)
    {
        if (!machine.HasOperatingSystem || process.Info.KernelObject == 0)
            return null;
        var kernel = machine.Kernel;
        if (kernel.Name != "linux" || kernel.Architecture is MachineArchitecture.X86 or MachineArchitecture.X86Pae)
            return null;
        var types = kernel.Symbols;
        ulong taskMm = 0, mmTree = 0, treeRoot = 0, rangeSlots = 0, arangeSlots = 0, vmStart = 0, vmFile = 0, fileInode = 0, inodeNumber = 0, inodeSuper = 0, superDevice = 0;
        bool complete =
            types.TryGetFieldOffset("task_struct", "mm", out taskMm)
            && types.TryGetFieldOffset("mm_struct", "mm_mt", out mmTree)
            && types.TryGetFieldOffset("maple_tree", "ma_root", out treeRoot)
            && types.TryGetFieldOffset("maple_range_64", "slot", out rangeSlots)
            && types.TryGetFieldOffset("maple_arange_64", "slot", out arangeSlots)
            && types.TryGetFieldOffset("vm_area_struct", "vm_start", out vmStart)
            && types.TryGetFieldOffset("vm_area_struct", "vm_file", out vmFile)
            && types.TryGetFieldOffset("file", "f_inode", out fileInode)
            && types.TryGetFieldOffset("inode", "i_ino", out inodeNumber)
            && types.TryGetFieldOffset("inode", "i_sb", out inodeSuper)
            && types.TryGetFieldOffset("super_block", "s_dev", out superDevice);
        if (!complete)
            return null;
        var memory = kernel.Memory;
        if (!memory.TryRead<ulong>(process.Info.KernelObject + taskMm, out var mm) || mm == 0)
            return null;
        if (!memory.TryRead<ulong>(mm + mmTree + treeRoot, out var root))
            return null;

        var found = new Dictionary<ulong, (uint, uint, ulong)>();
        var areas = new List<ulong>();
        int nodes = 0;
        // An encoded node: the node's address in the upper bits, its type in bits 3..6. Below a leaf are entries
        // (vm_area_struct pointers); below any other node, encoded child nodes.
        void WalkNode(ulong encoded, int depth)
        {
            if (depth > MaxDepth || nodes >= MaxNodes || !IsKernelPointer(encoded))
                return;
            nodes++;
            int type = (int)((encoded >> 3) & 0xf);
            ulong node = encoded & ~NodeMask;
            var (slots, count) = type switch
            {
                LeafRange64 or Range64 => (rangeSlots, Range64Slots),
                ArangeRange64 => (arangeSlots, Arange64Slots),
                _ => (0UL, 0),
            };
            if (count == 0)
                return;
            var children = new ulong[count];
            if (memory.Read(node + slots, System.Runtime.InteropServices.MemoryMarshal.AsBytes(children.AsSpan())) != count * 8)
                return;
            foreach (var child in children)
            {
                if (child == 0)
                    continue;
                if (type == LeafRange64)
                {
                    // The last slot of a node that is not full holds its metadata (small numbers), never a pointer.
                    if ((child & 7) == 0 && IsKernelPointer(child))
                        areas.Add(child);
                }
                else
                {
                    WalkNode(child, depth + 1);
                }
            }
        }
        // The root is a node tagged 0b10 (xa_is_node), or, for a tree of one entry, that entry itself.
        if ((root & 3) == 2 && root > 4096)
            WalkNode(root, 0);
        else if ((root & 7) == 0 && IsKernelPointer(root))
            areas.Add(root);

        foreach (var area in areas)
        {
            if (!memory.TryRead<ulong>(area + vmStart, out var start) || !memory.TryRead<ulong>(area + vmFile, out var file))
                continue;
            if (file == 0)
                continue;
            if (!memory.TryRead<ulong>(file + fileInode, out var inode) || inode == 0
                || !memory.TryRead<ulong>(inode + inodeNumber, out var number)
                || !memory.TryRead<ulong>(inode + inodeSuper, out var super) || super == 0
                || !memory.TryRead<uint>(super + superDevice, out var device))
                continue;
            // The kernel's dev_t: 12 bits of major above 20 bits of minor.
            found[start] = (device >> 20, device & 0xfffff, number);
        }
        return found;
    }
}
