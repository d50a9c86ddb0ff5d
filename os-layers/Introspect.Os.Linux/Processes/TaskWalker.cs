using System.Globalization;
using System.Text;
using Introspect.Abi;
using Introspect.Core.Memory;
using Introspect.Core.Translation;
using Introspect.Os.Linux.Kernel;
using Introspect.Os.Linux.Types;

namespace Introspect.Os.Linux.Processes;

/// <summary>One task as read from its <c>task_struct</c>, before it becomes a <see cref="ProcessInfo"/>.</summary>
internal readonly record struct TaskRecord(ulong Address, int Pid, int Tgid, ulong RealParent, ulong Mm, uint Flags);

/// <summary>Walks <c>init_task.tasks</c>: every thread-group leader, with its threads counted, its user, its
/// command line and environment read from its own memory, and its executable's path.</summary>
/// <remarks>
/// The list holds leaders only; threads hang off <c>signal->thread_head</c> (<c>thread_node</c>) or, before 6.7,
/// the leader's <c>thread_group</c>. A pointer seen twice, an unreadable task or more than
/// <see cref="LinuxLimits.MaxProcesses"/> entries end the walk with what was found and a warning.
/// </remarks>
internal sealed class TaskWalker
{
    private const uint PfKthread = 0x0020_0000;
    private const uint PfWqWorker = 0x0000_0020;

    /// <summary>The longest name <c>/proc</c> gives a task (<c>proc_task_name</c>'s buffer, less its NUL).</summary>
    private const int MaxProcName = 63;

    // Task state bits (include/linux/sched.h), as /proc reports them (fs/proc/array.c).
    private const uint TaskReport = 0x7f;
    private const uint TaskReportIdle = 0x80;
    private const uint TaskIdle = 0x0402; // TASK_UNINTERRUPTIBLE | TASK_NOLOAD
    private const uint TaskRtlockWait = 0x1000;
    private const string StateLetters = "RSDTtXZPI";

    private readonly LinuxContext _linux;
    private readonly LinuxStructures _s;
    private readonly KernelReader _reader;
    private readonly PathResolver _paths;

    public TaskWalker(LinuxContext linux)
    {
        _linux = linux;
        _s = linux.Structures;
        _reader = linux.Reader;
        _paths = linux.Paths;
    }

    /// <summary>Every task on the list, in list order.</summary>
    public List<TaskRecord> WalkTaskList()
    {
        var tasks = new List<TaskRecord>();
        if (!_linux.Image.Symbols.TryGetAddress("init_task", out ulong initTask))
        {
            _linux.Warn("the kernel has no init_task symbol; no processes can be listed.");
            return tasks;
        }
        ulong head = KernelReader.Field(initTask, _s.TaskTasks);
        var seen = new HashSet<ulong> { head };
        var buffer = new byte[_s.TaskSize];
        ulong previous = head;
        if (!_reader.TryReadPointer(head, out ulong next))
        {
            _linux.Warn(Invariant($"init_task.tasks at 0x{head:x} cannot be read; no processes listed."));
            return tasks;
        }
        while (next != head)
        {
            if (!seen.Add(next))
            {
                _linux.Warn(Invariant($"the task list comes back to 0x{next:x} without reaching init_task: a cycle; {tasks.Count} processes listed."));
                break;
            }
            if (tasks.Count >= LinuxLimits.MaxProcesses)
            {
                _linux.Warn(Invariant($"the task list has more than {LinuxLimits.MaxProcesses} entries; the rest are left out."));
                break;
            }
            ulong task = KernelReader.Container(next, _s.TaskTasks);
            if (!KernelReader.IsKernelPointer(next) || !_reader.TryReadAll(task, buffer))
            {
                _linux.Warn(Invariant($"the task list leads to 0x{next:x} (after 0x{previous:x}), which cannot be read: the list is torn; {tasks.Count} processes listed."));
                break;
            }
            tasks.Add(Parse(task, buffer));
            previous = next;
            next = KernelReader.U64(buffer, _s.TaskTasks);
        }
        return tasks;
    }

    private TaskRecord Parse(ulong address, ReadOnlySpan<byte> task) => new(
        address,
        KernelReader.I32(task, _s.TaskPid),
        KernelReader.I32(task, _s.TaskTgid),
        KernelReader.U64(task, _s.TaskRealParent),
        KernelReader.U64(task, _s.TaskMm),
        KernelReader.U32(task, _s.TaskFlags));

    /// <summary>The processes, with everything <see cref="ProcessInfo"/> holds.</summary>
    public List<ProcessInfo> GetProcesses()
    {
        var tasks = WalkTaskList();
        var tgidOf = new Dictionary<ulong, int>(tasks.Count);
        foreach (var task in tasks)
            tgidOf.TryAdd(task.Address, task.Tgid);
        var processes = new List<ProcessInfo>(tasks.Count);
        var buffer = new byte[_s.TaskSize];
        foreach (var task in tasks)
        {
            if (!_reader.TryReadAll(task.Address, buffer))
                continue;
            processes.Add(Describe(task, buffer, tgidOf));
        }
        return processes;
    }

    /// <summary>Re-reads one task for <see cref="IOperatingSystem.GetProcess"/>.</summary>
    public ProcessInfo? Describe(ulong taskAddress)
    {
        var buffer = new byte[_s.TaskSize];
        if (!_reader.TryReadAll(taskAddress, buffer))
            return null;
        return Describe(Parse(taskAddress, buffer), buffer, null);
    }

    private ProcessInfo Describe(TaskRecord task, ReadOnlySpan<byte> buffer, Dictionary<ulong, int>? tgidOf)
    {
        string name = ProcName(task, buffer);
        uint state = _s.TaskStateSize == 8 ? (uint)KernelReader.U64(buffer, _s.TaskState) : KernelReader.U32(buffer, _s.TaskState);
        uint exitState = KernelReader.U32(buffer, _s.TaskExitState);
        char letter = StateLetter(state, exitState);

        int parentPid = 0;
        if (task.RealParent != 0)
        {
            if (tgidOf is not null && tgidOf.TryGetValue(task.RealParent, out int known))
                parentPid = known;
            else if (_linux.Reader.Memory.TryRead(KernelReader.Field(task.RealParent, _s.TaskTgid), out int read))
                parentPid = read;
        }
        // init_task is its own parent and pid 0; what it adopted shows parent 0, as ps does.
        if (_linux.Image.Symbols.TryGetAddress("init_task", out ulong initTask) && task.RealParent == initTask)
            parentPid = 0;

        uint? uid = null;
        if (_s.TaskRealCred >= 0 && _s.CredUid >= 0)
        {
            ulong cred = KernelReader.U64(buffer, _s.TaskRealCred);
            if (cred != 0 && _reader.Memory.TryRead(KernelReader.Field(cred, _s.CredUid), out uint value))
                uid = value;
        }

        bool kernelThread = (task.Flags & PfKthread) != 0;
        int threads = CountThreads(task, buffer);
        DateTimeOffset? start = null;
        if (_s.TaskStartTime >= 0 && _linux.BootWallClock is { } boot)
        {
            // Nanoseconds since boot; a damaged value past the calendar's end gives no start time rather than an exception.
            // Nothing starts after the capture (a second of slack: the timekeeper updates at each tick).
            ulong ticks = KernelReader.U64(buffer, _s.TaskStartTime) / 100;
            if (ticks <= (ulong)(DateTimeOffset.MaxValue.UtcTicks - boot.UtcTicks))
                start = boot.AddTicks((long)ticks);
            if (start > _linux.WallClock?.AddSeconds(1))
                start = null;
        }

        ulong directoryTable = 0;
        string? path = null;
        IReadOnlyList<string>? arguments = null, environment = null;
        if (task.Mm != 0 && !kernelThread)
        {
            var mm = new byte[_s.MmSize];
            if (_reader.TryReadAll(task.Mm, mm))
            {
                ulong pgd = KernelReader.U64(mm, _s.MmPgd);
                directoryTable = _linux.Kernel.DirectMapToPhysical(pgd)
                    ?? (_linux.Kernel.TryTranslate(pgd, out ulong physical) ? physical : 0);
                if (directoryTable != 0)
                {
                    var space = _linux.UserSpace(directoryTable);
                    arguments = ReadStrings(space, KernelReader.U64(mm, _s.MmArgStart), KernelReader.U64(mm, _s.MmArgEnd), commandLine: true);
                    environment = ReadStrings(space, KernelReader.U64(mm, _s.MmEnvStart), KernelReader.U64(mm, _s.MmEnvEnd), commandLine: false);
                }
                if (_s.MmExeFile >= 0)
                    path = _paths.FilePath(KernelReader.U64(mm, _s.MmExeFile));
            }
        }

        return new ProcessInfo
        {
            Pid = (ulong)(uint)task.Tgid,
            ParentPid = (ulong)(uint)parentPid,
            Name = name,
            Path = path,
            CommandLine = arguments is { Count: > 0 } ? string.Join(' ', arguments) : null,
            Arguments = arguments,
            Environment = environment,
            State = StateOf(letter),
            StateText = letter.ToString(),
            Uid = uid,
            ThreadCount = threads,
            IsKernelThread = kernelThread,
            DirectoryTableBase = directoryTable,
            KernelObject = task.Address,
            StartTime = start,
            Architecture = MachineArchitecture.X64,
        };
    }

    /// <summary>The name <c>/proc/PID/comm</c> shows (<c>proc_task_name</c>): <c>comm</c>, but a workqueue worker's with
    /// the workqueue it served appended, and a kernel thread's full name where <c>comm</c> cut it short.</summary>
    private string ProcName(TaskRecord task, ReadOnlySpan<byte> buffer)
    {
        string comm = KernelReader.FixedString(buffer.Slice(_s.TaskComm, _s.TaskCommSize));
        if ((task.Flags & PfWqWorker) != 0)
            return WorkqueueSuffix(buffer) is { } suffix ? Cut(comm + suffix) : comm;
        if ((task.Flags & PfKthread) != 0 && _s.TaskWorkerPrivate >= 0 && _s.KthreadFullName >= 0)
        {
            ulong kthread = KernelReader.U64(buffer, _s.TaskWorkerPrivate);
            if (kthread != 0 && _reader.TryReadPointer(KernelReader.Field(kthread, _s.KthreadFullName), out ulong fullName) && fullName != 0
                && _reader.ReadString(fullName, MaxProcName) is { Length: > 0 } full)
                return full;
        }
        return comm;
    }

    private static string Cut(string name) => name.Length > MaxProcName ? name[..MaxProcName] : name;

    /// <summary>What <c>wq_worker_comm</c> adds to a workqueue worker's name: <c>+desc</c> while it runs a work item,
    /// <c>-desc</c> after, where desc names the last workqueue it served.</summary>
    private string? WorkqueueSuffix(ReadOnlySpan<byte> task)
    {
        if (_s.TaskWorkerPrivate < 0 || _s.KthreadData < 0 || _s.WorkerDesc < 0 || _s.WorkerDescSize <= 0 || _s.WorkerCurrentWork < 0 || _s.WorkerPool < 0)
            return null;
        ulong kthread = KernelReader.U64(task, _s.TaskWorkerPrivate);
        if (kthread == 0 || !_reader.TryReadPointer(KernelReader.Field(kthread, _s.KthreadData), out ulong worker) || worker == 0)
            return null;
        if (!_reader.TryReadPointer(KernelReader.Field(worker, _s.WorkerPool), out ulong pool) || pool == 0)
            return null;
        var desc = new byte[_s.WorkerDescSize];
        if (!_reader.TryReadAll(KernelReader.Field(worker, _s.WorkerDesc), desc) || desc[0] == 0
            || !_reader.TryReadPointer(KernelReader.Field(worker, _s.WorkerCurrentWork), out ulong current))
            return null;
        return (current != 0 ? "+" : "-") + KernelReader.FixedString(desc);
    }

    /// <summary>The letter <c>/proc/PID/stat</c> shows: the highest reportable state bit, with idle kernel threads as <c>I</c>.</summary>
    public static char StateLetter(uint state, uint exitState)
    {
        uint reported = (state | exitState) & TaskReport;
        if ((state & TaskIdle) == TaskIdle)
            reported = TaskReportIdle;
        if ((state & TaskRtlockWait) != 0)
            reported = 0x2;
        int index = reported == 0 ? 0 : 32 - System.Numerics.BitOperations.LeadingZeroCount(reported);
        return StateLetters[Math.Min(index, StateLetters.Length - 1)];
    }

    private static ProcessState StateOf(char letter) => letter switch
    {
        'R' => ProcessState.Running,
        'S' => ProcessState.Sleeping,
        'D' => ProcessState.DiskSleep,
        'T' => ProcessState.Stopped,
        't' => ProcessState.Traced,
        'X' => ProcessState.Dead,
        'Z' => ProcessState.Zombie,
        'I' => ProcessState.Idle,
        'P' => ProcessState.Sleeping, // parked kernel threads sleep until unparked
        _ => ProcessState.Unknown,
    };

    /// <summary>Threads of the group: walks <c>signal->thread_head</c> or the leader's <c>thread_group</c>, else <c>nr_threads</c>.</summary>
    private int CountThreads(TaskRecord task, ReadOnlySpan<byte> buffer)
    {
        ulong signal = KernelReader.U64(buffer, _s.TaskSignal);
        if (_s.TaskThreadNode >= 0 && _s.SignalThreadHead >= 0 && signal != 0)
        {
            if (CountList(KernelReader.Field(signal, _s.SignalThreadHead)) is { } count && count > 0)
                return count;
        }
        else if (_s.TaskThreadGroup >= 0)
        {
            // thread_group links the threads in a ring through the leader: the ring's length is the count.
            if (CountList(KernelReader.Field(task.Address, _s.TaskThreadGroup)) is { } others)
                return others + 1;
        }
        if (_s.SignalNrThreads >= 0 && signal != 0 && _reader.Memory.TryRead(KernelReader.Field(signal, _s.SignalNrThreads), out int nr) && nr > 0)
            return nr;
        return 1;
    }

    /// <summary>The entries of a circular list from its head, or null when the list is unreadable, cyclic elsewhere or too long.</summary>
    private int? CountList(ulong head)
    {
        var seen = new HashSet<ulong> { head };
        if (!_reader.TryReadPointer(head, out ulong next))
            return null;
        int count = 0;
        while (next != head)
        {
            if (!seen.Add(next) || count >= LinuxLimits.MaxThreadsPerProcess || !KernelReader.IsKernelPointer(next))
                return null;
            count++;
            if (!_reader.TryReadPointer(next, out next))
                return null;
        }
        return count;
    }

    /// <summary>NUL-separated strings from the process's memory, as <c>/proc/PID/cmdline</c> and <c>environ</c> give them.</summary>
    /// <remarks>A command line whose last byte is not NUL was overwritten in place (<c>setproctitle</c>); like
    /// <c>/proc</c>, it is then read as one string up to its first NUL.</remarks>
    private static List<string>? ReadStrings(AddressSpace space, ulong start, ulong end, bool commandLine)
    {
        if (end <= start || start == 0)
            return null;
        ulong length = Math.Min(end - start, LinuxLimits.MaxArgumentBytes);
        var bytes = new byte[length];
        int read = space.Read(start, bytes);
        if (read == 0)
            return null;
        var span = bytes.AsSpan(0, read);
        if (commandLine && read == bytes.Length && span[^1] != 0)
        {
            int first = span.IndexOf((byte)0);
            return [Encoding.UTF8.GetString(first < 0 ? span : span[..first])];
        }
        var strings = new List<string>();
        while (!span.IsEmpty)
        {
            int nul = span.IndexOf((byte)0);
            var piece = nul < 0 ? span : span[..nul];
            strings.Add(Encoding.UTF8.GetString(piece));
            span = nul < 0 ? [] : span[(nul + 1)..];
        }
        while (strings.Count > 0 && strings[^1].Length == 0)
            strings.RemoveAt(strings.Count - 1);
        return strings;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
