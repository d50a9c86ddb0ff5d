using System.Globalization;
using Introspect.Abi;
using Introspect.Os.Linux.Types;

namespace Introspect.Os.Linux.Processes;

/// <summary>A process's memory areas (VMAs), as <c>/proc/PID/maps</c> lists them.</summary>
/// <remarks>
/// <para>
/// From 6.1 the VMAs are the entries of the maple tree <c>mm->mm_mt</c>: a node pointer carries its type in bits 3
/// to 6 (dense, leaf, range, allocation range) and is 256-byte aligned (the root's also has bit 1, the xarray
/// node mark); a range node has pivots (each slot's last
/// index) and slots, the last slot ending at the parent's limit; a pivot of 0 after the first slot ends the node.
/// Before 6.1 they are the list <c>mm->mmap</c> / <c>vm_next</c>.
/// </para>
/// <para>
/// An entry counts only if its <c>vm_mm</c> points back at the process's <c>mm</c> and it does not overlap the one
/// before, which rejects stale slots. Names follow <c>show_map_vma</c>: the file's path, a special mapping's own
/// name (<c>[vdso]</c>, <c>[vvar]</c>), <c>[heap]</c>, <c>[stack]</c>, <c>[anon:name]</c>; the vsyscall page
/// (<c>gate_vma</c>) follows the last area for 64-bit processes, as it does in <c>/proc</c>.
/// </para>
/// </remarks>
internal sealed class MemoryAreaWalker(LinuxContext linux)
{
    private const ulong VmRead = 0x1, VmWrite = 0x2, VmExec = 0x4, VmMayShare = 0x80;
    private const int MapleDense = 0, MapleRange64 = 2, MapleArange64 = 3;
    private const ulong MapleNodeMask = 0xff;
    private const ushort MmContextHasVsyscall = 0x2;
    private const int VsyscallModeNone = 2;

    private readonly LinuxStructures _s = linux.Structures;
    private readonly KernelReader _reader = linux.Reader;

    public IReadOnlyList<MemoryArea> GetAreas(ProcessInfo process)
    {
        var task = new byte[_s.TaskSize];
        if (process.KernelObject == 0 || !_reader.TryReadAll(process.KernelObject, task))
        {
            linux.Warn(Invariant($"the task of process {process.Pid} at 0x{process.KernelObject:x} cannot be read; no memory areas listed."));
            return [];
        }
        ulong mm = KernelReader.U64(task, _s.TaskMm);
        if (mm == 0)
            return [];
        var mmBytes = new byte[_s.MmSize];
        if (!_reader.TryReadAll(mm, mmBytes))
        {
            linux.Warn(Invariant($"the mm_struct of process {process.Pid} at 0x{mm:x} cannot be read; no memory areas listed."));
            return [];
        }

        var vmas = _s.HasMapleTree ? MapleEntries(KernelReader.Field(mm, _s.MmMapleTree), process.Pid) : ListEntries(KernelReader.U64(mmBytes, _s.MmMmap), process.Pid);
        ulong startBrk = KernelReader.U64(mmBytes, _s.MmStartBrk);
        ulong brk = KernelReader.U64(mmBytes, _s.MmBrk);
        ulong startStack = KernelReader.U64(mmBytes, _s.MmStartStack);

        var areas = new List<MemoryArea>(vmas.Count + 1);
        var vma = new byte[_s.VmaSize];
        int rejected = 0;
        ulong previousEnd = 0;
        foreach (var address in vmas)
        {
            if (!_reader.TryReadAll(address, vma) || KernelReader.U64(vma, _s.VmaMm) != mm)
            {
                rejected++;
                continue;
            }
            ulong start = KernelReader.U64(vma, _s.VmaStart), end = KernelReader.U64(vma, _s.VmaEnd);
            if (end <= start || start < previousEnd)
            {
                rejected++;
                continue;
            }
            previousEnd = end;
            ulong flags = KernelReader.U64(vma, _s.VmaFlags);
            ulong file = KernelReader.U64(vma, _s.VmaFile);
            string? path = file != 0 ? linux.Paths.FilePath(file) : null;
            ulong offset = file != 0 ? KernelReader.U64(vma, _s.VmaPgoff) << 12 : 0;
            if (file == 0)
                path = SpecialName(vma) ?? (start <= brk && end >= startBrk ? "[heap]"
                    : start <= startStack && end >= startStack ? "[stack]"
                    : AnonymousName(vma));
            areas.Add(new MemoryArea(start, end, Protection(flags), offset, path));
        }
        if (rejected > 0)
            linux.Warn(Invariant($"{rejected} entries of process {process.Pid}'s memory-area tree were unreadable, not its own or out of order, and are left out."));
        if (GateArea(mmBytes) is { } gate)
            areas.Add(gate);
        return areas;
    }

    private static MemoryProtection Protection(ulong flags)
    {
        var protection = MemoryProtection.None;
        if ((flags & VmRead) != 0)
            protection |= MemoryProtection.Read;
        if ((flags & VmWrite) != 0)
            protection |= MemoryProtection.Write;
        if ((flags & VmExec) != 0)
            protection |= MemoryProtection.Execute;
        if ((flags & VmMayShare) != 0)
            protection |= MemoryProtection.Shared;
        return protection;
    }

    /// <summary>The VMA pointers the maple tree holds, in index (address) order.</summary>
    private List<ulong> MapleEntries(ulong tree, ulong pid)
    {
        var entries = new List<ulong>();
        if (!_reader.TryReadPointer(KernelReader.Field(tree, _s.MapleRoot), out ulong root) || root == 0)
            return entries;
        if (!IsNode(root))
        {
            if (!IsInternal(root))
                entries.Add(root); // a tree of one entry keeps it in the root
            return entries;
        }
        int visited = 0;
        bool truncated = false;
        // A tree never shares a node: one seen twice is a loop in damaged memory.
        var nodes = new HashSet<ulong>();
        var node = new byte[Math.Max(_s.MapleNodeSize, 256)];
        Walk(root, 0, ulong.MaxValue, 0);
        if (truncated)
            linux.Warn(Invariant($"process {pid}'s maple tree is deeper than {LinuxLimits.MaxMapleDepth} levels, larger than {LinuxLimits.MaxMapleNodes} nodes, or has unreadable, looping or malformed nodes; {entries.Count} memory areas found."));
        return entries;

        void Walk(ulong encoded, ulong min, ulong max, int depth)
        {
            if (depth > LinuxLimits.MaxMapleDepth || ++visited > LinuxLimits.MaxMapleNodes || entries.Count >= LinuxLimits.MaxMemoryAreas)
            {
                truncated = true;
                return;
            }
            int type = (int)((encoded >> 3) & 0xf);
            ulong address = encoded & ~MapleNodeMask;
            if (!nodes.Add(address) || !_reader.TryReadAll(address, node))
            {
                truncated = true;
                return;
            }
            if (type == MapleDense)
            {
                // Dense nodes are not used for VMAs; their slots are entries at consecutive indices.
                int count = _s.MapleNodeSize / 8 - 1;
                for (int i = 0; i < count; i++)
                    AddEntry(KernelReader.U64(node, 8 + 8 * i));
                return;
            }
            int pivotAt, slotAt, slots;
            if (type == MapleArange64)
                (pivotAt, slotAt, slots) = (_s.MapleArangePivot, _s.MapleArangeSlot, _s.MapleArangeSlots);
            else if (type <= MapleRange64)
                (pivotAt, slotAt, slots) = (_s.MapleRangePivot, _s.MapleRangeSlot, _s.MapleRangeSlots);
            else
            {
                truncated = true;
                return;
            }
            bool leaf = type < MapleRange64;
            // Copied: the walk below reuses the buffer for the children.
            var pivots = new ulong[slots];
            var slot = new ulong[slots];
            for (int i = 0; i < slots; i++)
            {
                slot[i] = KernelReader.U64(node, slotAt + 8 * i);
                pivots[i] = i < slots - 1 ? KernelReader.U64(node, pivotAt + 8 * i) : max;
            }
            ulong first = min;
            for (int i = 0; i < slots; i++)
            {
                ulong last = pivots[i];
                if (i == slots - 1 && slot[i] == 0 && max != ulong.MaxValue)
                    break;
                if (last == 0 && i > 0)
                    break;
                if (leaf)
                    AddEntry(slot[i]);
                else if (slot[i] != 0)
                {
                    // A child is a node address with its type in bits 3 to 6 (only the root also carries the xarray node bit).
                    if (!KernelReader.IsKernelPointer(slot[i]))
                    {
                        truncated = true;
                        return;
                    }
                    Walk(slot[i], first, last, depth + 1);
                }
                if (last >= max)
                    break;
                first = last + 1;
            }
        }

        void AddEntry(ulong entry)
        {
            if (entry != 0 && !IsInternal(entry) && entries.Count < LinuxLimits.MaxMemoryAreas)
                entries.Add(entry);
        }
    }

    /// <summary>A maple node pointer: bit 1 set (an xarray internal entry), above the reserved range.</summary>
    private static bool IsNode(ulong entry) => (entry & 3) == 2 && entry > 4096;

    /// <summary>Internal entries (reserved values, zero entries) are not VMAs.</summary>
    private static bool IsInternal(ulong entry) => (entry & 3) == 2;

    /// <summary>The VMA list before 6.1: <c>mm->mmap</c>, then <c>vm_next</c>.</summary>
    private List<ulong> ListEntries(ulong first, ulong pid)
    {
        var entries = new List<ulong>();
        var seen = new HashSet<ulong>();
        for (ulong vma = first; vma != 0;)
        {
            if (!seen.Add(vma) || entries.Count >= LinuxLimits.MaxMemoryAreas)
            {
                linux.Warn(Invariant($"process {pid}'s VMA list loops or exceeds {LinuxLimits.MaxMemoryAreas} entries; {entries.Count} memory areas found."));
                break;
            }
            entries.Add(vma);
            if (!_reader.TryReadPointer(KernelReader.Field(vma, _s.VmaNext), out vma))
                break;
        }
        return entries;
    }

    /// <summary>A special mapping's name (<c>vm_ops</c> is <c>special_mapping_vmops</c>: <c>vm_private_data</c> is a <c>vm_special_mapping</c>).</summary>
    private string? SpecialName(ReadOnlySpan<byte> vma)
    {
        if (_s.VmaOps < 0 || _s.VmaPrivateData < 0 || _s.SpecialMappingName < 0 || linux.SpecialMappingOps is not { } ops)
            return null;
        if (KernelReader.U64(vma, _s.VmaOps) != ops)
            return null;
        ulong mapping = KernelReader.U64(vma, _s.VmaPrivateData);
        if (mapping == 0 || !_reader.TryReadPointer(KernelReader.Field(mapping, _s.SpecialMappingName), out ulong name))
            return null;
        return _reader.ReadString(name, 64);
    }

    /// <summary><c>[anon:NAME]</c> for an anonymous area named with <c>prctl(PR_SET_VMA_ANON_NAME)</c>.</summary>
    private string? AnonymousName(ReadOnlySpan<byte> vma)
    {
        if (linux.AnonNameOffset < 0 || linux.AnonNameText < 0)
            return null;
        ulong anon = KernelReader.U64(vma, linux.AnonNameOffset);
        if (anon == 0 || !KernelReader.IsKernelPointer(anon))
            return null;
        return _reader.ReadString(KernelReader.Field(anon, linux.AnonNameText), 256) is { } name ? $"[anon:{name}]" : null;
    }

    /// <summary>The vsyscall page, which <c>/proc/PID/maps</c> shows after the last area of a 64-bit process.</summary>
    private MemoryArea? GateArea(ReadOnlySpan<byte> mm)
    {
        if (linux.GateVma is not { } gate)
            return null;
        if (linux.MmContextFlags >= 0 && (KernelReader.U32(mm, linux.MmContextFlags) & MmContextHasVsyscall) == 0)
            return null;
        if (linux.VsyscallMode is VsyscallModeNone)
            return null;
        return gate;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
