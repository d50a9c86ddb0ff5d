using System.Globalization;

namespace Introspect.Os.Linux.Types;

/// <summary>The offsets the walks need, resolved once from the kernel's types.</summary>
/// <remarks>
/// A field the layer cannot do without is required: its absence is an <see cref="InvalidDataException"/> naming the
/// type and the field. Fields that only some kernels have (the maple tree or the old VMA list, <c>__state</c> or
/// <c>state</c>, <c>thread_node</c> or <c>thread_group</c>) are optional, -1 when absent, and the walks pick what
/// the kernel has.
/// </remarks>
internal sealed class LinuxStructures
{
    private LinuxStructures() { }

    // task_struct
    public int TaskSize { get; private init; }
    public int TaskTasks { get; private init; }
    public int TaskPid { get; private init; }
    public int TaskTgid { get; private init; }
    public int TaskComm { get; private init; }
    public int TaskCommSize { get; private init; }
    public int TaskState { get; private init; }
    public int TaskStateSize { get; private init; }
    public int TaskExitState { get; private init; }
    public int TaskFlags { get; private init; }
    public int TaskRealParent { get; private init; }
    public int TaskMm { get; private init; }
    public int TaskRealCred { get; private init; }
    /// <summary><c>start_boottime</c> where the kernel has it (what <c>/proc/PID/stat</c> shows), else <c>start_time</c>.</summary>
    public int TaskStartTime { get; private init; }

    /// <summary>Whether <see cref="TaskStartTime"/> counts boot time (suspend included) rather than monotonic time.</summary>
    public bool TaskStartTimeIsBootTime { get; private init; }
    public int TaskSignal { get; private init; }
    public int TaskThreadGroup { get; private init; }
    public int TaskThreadNode { get; private init; }
    /// <summary><c>task_struct.worker_private</c> (6.1+; <c>set_child_tid</c> before): a kernel thread's <c>struct kthread</c>.</summary>
    public int TaskWorkerPrivate { get; private init; }
    public int KthreadData { get; private init; }
    /// <summary><c>kthread.full_name</c> (5.17+): a kernel thread's name when <c>comm</c> cut it short.</summary>
    public int KthreadFullName { get; private init; }
    public int WorkerDesc { get; private init; }
    public int WorkerDescSize { get; private init; }
    public int WorkerCurrentWork { get; private init; }
    public int WorkerPool { get; private init; }

    // signal_struct
    public int SignalNrThreads { get; private init; }
    public int SignalThreadHead { get; private init; }

    // mm_struct
    public int MmSize { get; private init; }
    public int MmPgd { get; private init; }
    public int MmMapleTree { get; private init; }
    public int MmMmap { get; private init; }
    public int MmMapCount { get; private init; }
    public int MmArgStart { get; private init; }
    public int MmArgEnd { get; private init; }
    public int MmEnvStart { get; private init; }
    public int MmEnvEnd { get; private init; }
    public int MmStartBrk { get; private init; }
    public int MmBrk { get; private init; }
    public int MmStartStack { get; private init; }
    public int MmExeFile { get; private init; }

    // vm_area_struct
    public int VmaSize { get; private init; }
    public int VmaStart { get; private init; }
    public int VmaEnd { get; private init; }
    public int VmaFlags { get; private init; }
    public int VmaPgoff { get; private init; }
    public int VmaFile { get; private init; }
    public int VmaMm { get; private init; }
    public int VmaNext { get; private init; }
    public int VmaOps { get; private init; }
    public int VmaPrivateData { get; private init; }

    // maple_tree and its nodes
    public int MapleRoot { get; private init; }
    public int MapleRangePivot { get; private init; }
    public int MapleRangeSlot { get; private init; }
    public int MapleRangeSlots { get; private init; }
    public int MapleArangePivot { get; private init; }
    public int MapleArangeSlot { get; private init; }
    public int MapleArangeSlots { get; private init; }
    public int MapleNodeSize { get; private init; }

    // file, path, dentry, qstr, mount
    public int FilePathMount { get; private init; }
    public int FilePathDentry { get; private init; }
    public int DentryParent { get; private init; }
    public int DentryNameLength { get; private init; }
    public int DentryNamePointer { get; private init; }
    public int DentryHashPprev { get; private init; }
    public int MountMnt { get; private init; }
    public int MountParent { get; private init; }
    public int MountMountpoint { get; private init; }
    public int VfsMountRoot { get; private init; }

    // cred
    public int CredUid { get; private init; }

    // module
    public int ModuleList { get; private init; }
    public int ModuleName { get; private init; }
    public int ModuleNameSize { get; private init; }
    public int ModuleState { get; private init; }
    public int ModuleCoreBase { get; private init; }
    public int ModuleCoreSize { get; private init; }
    /// <summary>From 6.4: <c>module.mem[MOD_MEM_NUM_TYPES]</c>, each <c>{ base, size, ... }</c>; -1 before.</summary>
    public int ModuleMem { get; private init; }
    public int ModuleMemCount { get; private init; }
    public int ModuleMemStride { get; private init; }
    public int ModuleMemBase { get; private init; }
    public int ModuleMemSize { get; private init; }

    // vm_special_mapping
    public int SpecialMappingName { get; private init; }

    /// <summary>Where the offsets came from, for messages.</summary>
    public string Source { get; private init; } = "";

    public bool HasMapleTree => MmMapleTree >= 0;

    /// <summary>Resolves every offset from <paramref name="types"/>.</summary>
    /// <exception cref="InvalidDataException">A field the walks cannot do without is missing.</exception>
    public static LinuxStructures Resolve(IKernelTypeSource types)
    {
        var r = new Resolver(types);
        int state = r.Optional("task_struct", "__state");
        int stateSize = 4;
        if (state < 0)
        {
            state = r.Required("task_struct", "state");
            stateSize = r.SizeOfField("task_struct", "state");
        }

        int maple = r.Optional("mm_struct", "mm_mt");
        int mmap = r.Optional("mm_struct", "mmap");
        if (maple < 0 && mmap < 0)
            r.Fail("mm_struct", "mm_mt (or mmap, before 6.1)");

        int coreBase = r.Optional("module", "core_layout.base");
        int mem = r.Optional("module", "mem");
        int memStride = 0, memCount = 0;
        if (mem >= 0 && types.TryGetField("module", "mem", out var memField) && memField.ElementCount is { } count and > 0)
        {
            memCount = (int)count;
            memStride = (int)(memField.Size / count);
        }

        var structures = new LinuxStructures
        {
            Source = types.Description,
            TaskSize = r.Size("task_struct"),
            TaskTasks = r.Required("task_struct", "tasks"),
            TaskPid = r.Required("task_struct", "pid"),
            TaskTgid = r.Required("task_struct", "tgid"),
            TaskComm = r.Required("task_struct", "comm"),
            TaskCommSize = Math.Max(r.SizeOfField("task_struct", "comm"), 1),
            TaskState = state,
            TaskStateSize = stateSize,
            TaskExitState = r.Required("task_struct", "exit_state"),
            TaskFlags = r.Required("task_struct", "flags"),
            TaskRealParent = r.Required("task_struct", "real_parent"),
            TaskMm = r.Required("task_struct", "mm"),
            TaskRealCred = r.Optional("task_struct", "real_cred"),
            TaskStartTime = r.Optional("task_struct", "start_boottime") is int boottime and >= 0 ? boottime : r.Optional("task_struct", "start_time"),
            TaskStartTimeIsBootTime = r.Optional("task_struct", "start_boottime") >= 0,
            TaskSignal = r.Required("task_struct", "signal"),
            TaskThreadGroup = r.Optional("task_struct", "thread_group"),
            TaskThreadNode = r.Optional("task_struct", "thread_node"),
            TaskWorkerPrivate = r.Optional("task_struct", "worker_private") is int worker and >= 0 ? worker : r.Optional("task_struct", "set_child_tid"),
            KthreadData = r.Optional("kthread", "data"),
            KthreadFullName = r.Optional("kthread", "full_name"),
            WorkerDesc = r.Optional("worker", "desc"),
            WorkerDescSize = r.SizeOfField("worker", "desc"),
            WorkerCurrentWork = r.Optional("worker", "current_work"),
            WorkerPool = r.Optional("worker", "pool"),

            SignalNrThreads = r.Optional("signal_struct", "nr_threads"),
            SignalThreadHead = r.Optional("signal_struct", "thread_head"),

            MmSize = r.Size("mm_struct"),
            MmPgd = r.Required("mm_struct", "pgd"),
            MmMapleTree = maple,
            MmMmap = mmap,
            MmMapCount = r.Optional("mm_struct", "map_count"),
            MmArgStart = r.Required("mm_struct", "arg_start"),
            MmArgEnd = r.Required("mm_struct", "arg_end"),
            MmEnvStart = r.Required("mm_struct", "env_start"),
            MmEnvEnd = r.Required("mm_struct", "env_end"),
            MmStartBrk = r.Required("mm_struct", "start_brk"),
            MmBrk = r.Required("mm_struct", "brk"),
            MmStartStack = r.Required("mm_struct", "start_stack"),
            MmExeFile = r.Optional("mm_struct", "exe_file"),

            VmaSize = r.Size("vm_area_struct"),
            VmaStart = r.Required("vm_area_struct", "vm_start"),
            VmaEnd = r.Required("vm_area_struct", "vm_end"),
            VmaFlags = r.Required("vm_area_struct", "vm_flags"),
            VmaPgoff = r.Required("vm_area_struct", "vm_pgoff"),
            VmaFile = r.Required("vm_area_struct", "vm_file"),
            VmaMm = r.Required("vm_area_struct", "vm_mm"),
            VmaNext = maple >= 0 ? r.Optional("vm_area_struct", "vm_next") : r.Required("vm_area_struct", "vm_next"),
            VmaOps = r.Optional("vm_area_struct", "vm_ops"),
            VmaPrivateData = r.Optional("vm_area_struct", "vm_private_data"),

            MapleRoot = maple >= 0 ? r.Required("maple_tree", "ma_root") : -1,
            MapleRangePivot = maple >= 0 ? r.Required("maple_range_64", "pivot") : -1,
            MapleRangeSlot = maple >= 0 ? r.Required("maple_range_64", "slot") : -1,
            MapleRangeSlots = maple >= 0 ? r.ElementCount("maple_range_64", "slot") : 0,
            MapleArangePivot = maple >= 0 ? r.Required("maple_arange_64", "pivot") : -1,
            MapleArangeSlot = maple >= 0 ? r.Required("maple_arange_64", "slot") : -1,
            MapleArangeSlots = maple >= 0 ? r.ElementCount("maple_arange_64", "slot") : 0,
            MapleNodeSize = maple >= 0 ? r.Size("maple_node") : 0,

            FilePathMount = r.Required("file", "f_path.mnt"),
            FilePathDentry = r.Required("file", "f_path.dentry"),
            DentryParent = r.Required("dentry", "d_parent"),
            DentryNameLength = r.Required("dentry", "d_name.len"),
            DentryNamePointer = r.Required("dentry", "d_name.name"),
            DentryHashPprev = r.Optional("dentry", "d_hash.pprev"),
            MountMnt = r.Optional("mount", "mnt"),
            MountParent = r.Optional("mount", "mnt_parent"),
            MountMountpoint = r.Optional("mount", "mnt_mountpoint"),
            VfsMountRoot = r.Optional("vfsmount", "mnt_root"),

            CredUid = r.Optional("cred", "uid"),

            ModuleList = r.Required("module", "list"),
            ModuleName = r.Required("module", "name"),
            ModuleNameSize = Math.Max(r.SizeOfField("module", "name"), 1),
            ModuleState = r.Optional("module", "state"),
            ModuleCoreBase = coreBase,
            ModuleCoreSize = coreBase >= 0 ? r.Required("module", "core_layout.size") : -1,
            ModuleMem = mem,
            ModuleMemCount = memCount,
            ModuleMemStride = memStride,
            ModuleMemBase = mem >= 0 ? r.Required("module_memory", "base") : -1,
            ModuleMemSize = mem >= 0 ? r.Required("module_memory", "size") : -1,

            SpecialMappingName = r.Optional("vm_special_mapping", "name"),
        };
        structures.CheckFits();
        return structures;
    }

    /// <summary>Checks that every field the walks take out of a whole structure they read lies inside it, so damaged
    /// type information is refused here rather than read past a buffer later.</summary>
    private void CheckFits()
    {
        Fits("task_struct", TaskSize, [("tasks", TaskTasks, 16), ("pid", TaskPid, 4), ("tgid", TaskTgid, 4), ("comm", TaskComm, TaskCommSize),
            ("__state", TaskState, TaskStateSize), ("exit_state", TaskExitState, 4), ("flags", TaskFlags, 4), ("real_parent", TaskRealParent, 8),
            ("mm", TaskMm, 8), ("real_cred", TaskRealCred, 8), ("start_boottime", TaskStartTime, 8), ("signal", TaskSignal, 8),
            ("worker_private", TaskWorkerPrivate, 8)]);
        Fits("mm_struct", MmSize, [("pgd", MmPgd, 8), ("mm_mt", MmMapleTree, 16), ("mmap", MmMmap, 8), ("arg_start", MmArgStart, 8),
            ("arg_end", MmArgEnd, 8), ("env_start", MmEnvStart, 8), ("env_end", MmEnvEnd, 8), ("start_brk", MmStartBrk, 8), ("brk", MmBrk, 8),
            ("start_stack", MmStartStack, 8), ("exe_file", MmExeFile, 8)]);
        Fits("vm_area_struct", VmaSize, [("vm_start", VmaStart, 8), ("vm_end", VmaEnd, 8), ("vm_flags", VmaFlags, 8), ("vm_pgoff", VmaPgoff, 8),
            ("vm_file", VmaFile, 8), ("vm_mm", VmaMm, 8), ("vm_ops", VmaOps, 8), ("vm_private_data", VmaPrivateData, 8)]);
        if (HasMapleTree)
        {
            int node = Math.Max(MapleNodeSize, 256);
            Fits("maple_range_64", node, [("pivot", MapleRangePivot, 8 * (MapleRangeSlots - 1)), ("slot", MapleRangeSlot, 8 * MapleRangeSlots)]);
            Fits("maple_arange_64", node, [("pivot", MapleArangePivot, 8 * (MapleArangeSlots - 1)), ("slot", MapleArangeSlot, 8 * MapleArangeSlots)]);
        }
    }

    private void Fits(string type, int size, ReadOnlySpan<(string Field, int Offset, int Width)> fields)
    {
        foreach (var (field, offset, width) in fields)
        {
            // Both are non-negative ints: the sum cannot overflow a long.
            if (offset >= 0 && (long)offset + width > size)
                ThrowHelper.ThrowInvalid(string.Create(CultureInfo.InvariantCulture,
                    $"linux: {Source} puts {type}.{field} at offset {offset} ({width} bytes), past the structure's {size} bytes."));
        }
    }

    private sealed class Resolver(IKernelTypeSource types)
    {
        public int Required(string type, string path)
        {
            int offset = Optional(type, path);
            if (offset < 0)
                Fail(type, path);
            return offset;
        }

        public int Optional(string type, string path) =>
            types.TryGetField(type, path, out var field) && field.Offset <= int.MaxValue ? (int)field.Offset : -1;

        public int SizeOfField(string type, string path) =>
            types.TryGetField(type, path, out var field) && field.Size <= int.MaxValue ? (int)field.Size : 0;

        public int ElementCount(string type, string path)
        {
            if (!types.TryGetField(type, path, out var field) || field.ElementCount is not { } count || count == 0 || count > 256)
                Fail(type, path + " (an array of 1 to 256 entries)");
            return (int)field.ElementCount!.Value;
        }

        public int Size(string type)
        {
            // The walks read whole structures at once; a size past 1 MiB is not a kernel structure.
            if (!types.TryGetTypeSize(type, out ulong size) || size == 0 || size > 1 << 20)
                ThrowHelper.ThrowInvalid(string.Create(CultureInfo.InvariantCulture,
                    $"linux: {types.Description} has no usable size for struct {type} (found {size}); expected 1 byte to 1 MiB."));
            return (int)size;
        }

        [System.Diagnostics.CodeAnalysis.DoesNotReturn]
        public void Fail(string type, string path) =>
            ThrowHelper.ThrowInvalid($"linux: {types.Description} has no field {type}.{path}, which the walks need.");
    }
}
