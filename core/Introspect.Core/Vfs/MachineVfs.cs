using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using Introspect.Abi;

namespace Introspect.Core.Vfs;

/// <summary>Builds the tree of a machine's virtual file system.</summary>
/// <remarks>
/// <code>
/// /memory.pmem                 physical memory (file offset = physical address)
/// /pid/PID/                    one folder per process; /name/NAME-PID/ holds the same folders by name
///     memory.vmem              virtual memory (file offset = virtual address)
///     core.elf                 an ELF core file of the process (gdb, readelf)
///     maps.txt                 the memory areas, as /proc/PID/maps writes them
///     cmdline.txt name.txt pid.txt ppid.txt state.txt uid.txt path.txt environ.txt dtb.txt
///     modules/NAME/            base.txt size.txt path.txt image.bin; modules/modules.txt lists them
/// /sys/version.txt kernel.txt  the kernel
/// /sys/proc/proc.txt           the process tree
/// /sys/modules/modules.txt     kernel modules
/// /sys/memory/physmemmap.txt   the physical memory map
/// /sys/net/netstat.txt         sockets, /sys/users/users.txt users
/// /sys/symbols/symbols.txt     kernel symbols; /sys/symbols/NAME.txt looks any symbol up by name
/// /conf/KEY.txt                configuration values, writable where they can be set
/// /vm/vms.txt, /vm/NAME-PID/   virtual machines running inside
/// </code>
/// Without an OS layer only <c>memory.pmem</c>, <c>/sys/memory</c> and <c>/conf</c> are there.
/// </remarks>
internal static class MachineVfs
{
    /// <summary>The well-known kernel symbols <c>/sys/symbols/symbols.txt</c> lists (the layer offers look-ups, not a list).</summary>
    private static readonly string[] WellKnownSymbols =
    [
        "_text", "_stext", "_etext", "_sdata", "_edata", "_end", "linux_banner", "init_task", "init_mm", "init_top_pgt",
        "swapper_pg_dir", "page_offset_base", "vmalloc_base", "vmemmap_base", "phys_base", "modules", "init_uts_ns",
        "__start_BTF", "__stop_BTF", "socket_file_ops", "vmcoreinfo_note", "kallsyms_names",
        "PsInitialSystemProcess", "PsActiveProcessHead", "PsLoadedModuleList", "KdDebuggerDataBlock",
    ];

    private static readonly ConditionalWeakTable<MachineProcess, IReadOnlyList<VfsNode>> ProcessFiles = new();

    public static VirtualFileSystem Build(Machine machine)
    {
        var root = new List<VfsNode>
        {
            new VfsMemoryFile("memory.pmem", new MachinePhysicalProxy(machine), 0, machine.Memory.Size, !machine.Memory.IsReadOnly),
        };
        if (machine.HasOperatingSystem)
        {
            root.Add(new VfsDirectory("pid", machine.Snapshot, () => machine.GetProcesses()
                .Select(p => (VfsNode)new VfsDirectory(p.Pid.ToString(CultureInfo.InvariantCulture), static () => null, () => FilesOf(p)))));
            root.Add(new VfsDirectory("name", machine.Snapshot, () => machine.GetProcesses()
                .Select(p => (VfsNode)new VfsDirectory($"{SafeName(p.Name)}-{p.Pid}", static () => null, () => FilesOf(p)))));
        }
        root.Add(Sys(machine));
        root.Add(Conf(machine));
        if (machine.HasOperatingSystem)
            root.Add(Vm(machine));
        return new VirtualFileSystem(new VfsDirectory("", [.. root]));
    }

    private static IReadOnlyList<VfsNode> FilesOf(MachineProcess process) =>
        ProcessFiles.GetValue(process, static p => BuildProcessFiles(p));

    private static IReadOnlyList<VfsNode> BuildProcessFiles(MachineProcess process)
    {
        var info = process.Info;
        var files = new List<VfsNode>
        {
            VfsTextFile.Of("name.txt", info.Name + "\n"),
            VfsTextFile.Of("pid.txt", Invariant(info.Pid) + "\n"),
            VfsTextFile.Of("ppid.txt", Invariant(info.ParentPid) + "\n"),
            VfsTextFile.Of("state.txt", StateText(info) + "\n"),
            VfsTextFile.Of("cmdline.txt", (info.CommandLine ?? "") + "\n"),
            VfsTextFile.Of("dtb.txt", $"0x{info.DirectoryTableBase:x}\n"),
        };
        if (info.Uid is { } uid)
            files.Add(VfsTextFile.Of("uid.txt", Invariant(uid) + "\n"));
        if (info.Path is { } path)
            files.Add(VfsTextFile.Of("path.txt", path + "\n"));
        if (info.Environment is { Count: > 0 } environment)
            files.Add(VfsTextFile.Of("environ.txt", string.Join('\n', environment) + "\n"));
        if (HasAddressSpace(info))
        {
            files.Add(new VfsTextFile("maps.txt", () => ProcMaps.Format(process.GetMemoryAreas(), MappedFiles(process))));
            files.Add(new VfsMemoryFile("memory.vmem", new ProcessMemoryProxy(process), 0, VirtualSize(process), !process.Machine.Memory.IsReadOnly));
            files.Add(new ProcessCoreFile("core.elf", process));
            files.Add(new VfsDirectory("modules", static () => null, () => Modules(process)));
        }
        return files;
    }

    /// <summary>The device and inode column of each area, where the OS is Linux and its types reach them.</summary>
    private static Func<MemoryArea, (uint Major, uint Minor, ulong Inode)>? MappedFiles(MachineProcess process)
    {
        var files = LinuxMappedFiles.Find(process.Machine, process);
        if (files is null)
            return null;
        return area => files.TryGetValue(area.Start, out var file) ? file : (0, 0, 0);
    }

    private static IEnumerable<VfsNode> Modules(MachineProcess process)
    {
        var modules = process.GetModules();
        var list = new StringBuilder();
        foreach (var module in modules)
            list.Append(CultureInfo.InvariantCulture, $"{module.Base,16:x} {module.Size,10:x} {module.Name} {module.Path}\n");
        yield return VfsTextFile.Of("modules.txt", list.ToString());
        foreach (var module in modules)
        {
            yield return new VfsDirectory(SafeName(module.Name),
                VfsTextFile.Of("base.txt", $"0x{module.Base:x}\n"),
                VfsTextFile.Of("size.txt", $"0x{module.Size:x}\n"),
                VfsTextFile.Of("path.txt", (module.Path ?? module.Name) + "\n"),
                new VfsMemoryFile("image.bin", new ProcessMemoryProxy(process), module.Base, module.Size, writable: false));
        }
    }

    private static VfsDirectory Sys(Machine machine)
    {
        var children = new List<VfsNode>
        {
            new VfsDirectory("memory", VfsTextFile.Of("physmemmap.txt", PhysicalMemoryMap(machine.Memory.Map))),
        };
        if (machine.HasOperatingSystem)
        {
            var kernel = machine.Kernel;
            children.Add(VfsTextFile.Of("version.txt", kernel.Version.TrimEnd('\n') + "\n"));
            children.Add(new VfsTextFile("kernel.txt", () => KernelText(kernel)));
            children.Add(new VfsDirectory("proc", new VfsTextFile("proc.txt", () => ProcessTree(machine.GetProcesses()), machine.Snapshot)));
            children.Add(new VfsDirectory("modules", new VfsTextFile("modules.txt", () => KernelModules(machine.Maps.GetKernelModules()), machine.Snapshot)));
            children.Add(new VfsDirectory("net", new VfsTextFile("netstat.txt", () => Netstat(machine.Maps.GetSockets()), machine.Snapshot)));
            children.Add(new VfsDirectory("users", new VfsTextFile("users.txt", () => Users(machine.Maps.GetUsers()), machine.Snapshot)));
            children.Add(new VfsDirectory("symbols", static () => null,
                () => [new VfsTextFile("symbols.txt", () => SymbolsText(kernel.Symbols))],
                name => SymbolFile(kernel.Symbols, name)));
        }
        return new VfsDirectory("sys", [.. children]);
    }

    private static VfsDirectory Conf(Machine machine) => new("conf",
        [.. MachineConfig.Keys.Select(key => (VfsNode)new VfsValueFile(key.Name + ".txt",
            () => machine.Config.GetText(key.Name),
            key.IsWritable ? value => machine.Config.Set(key.Name, value) : null))]);

    private static VfsDirectory Vm(Machine machine) => new("vm", machine.Snapshot, () =>
    {
        var machines = machine.Maps.GetVirtualMachines();
        var nodes = new List<VfsNode> { VfsTextFile.Of("vms.txt", VirtualMachines(machines)) };
        foreach (var vm in machines)
        {
            nodes.Add(new VfsDirectory($"{SafeName(vm.Name)}-{vm.Pid}",
                VfsTextFile.Of("info.txt", $"name {vm.Name}\npid {vm.Pid}\nkind {vm.Kind}\nmemory {(vm.MemorySize is { } size ? $"0x{size:x}" : "unknown")}\n"),
                VfsTextFile.Of("cmdline.txt", (vm.CommandLine ?? "") + "\n")));
        }
        return nodes;
    });

    private static VfsTextFile? SymbolFile(MachineSymbols symbols, string fileName)
    {
        if (!fileName.EndsWith(".txt", StringComparison.Ordinal))
            return null;
        var name = fileName[..^4];
        return symbols.TryGetSymbolAddress(name, out var address) ? VfsTextFile.Of(fileName, $"0x{address:x} {name}\n") : null;
    }

    private static string SymbolsText(MachineSymbols symbols)
    {
        if (!symbols.HasSymbols)
            return "unavailable: the OS layer offers no kernel symbols.\n";
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"# {symbols.Count} symbols; read /sys/symbols/NAME.txt for any of them\n");
        foreach (var name in WellKnownSymbols)
        {
            if (symbols.TryGetSymbolAddress(name, out var address))
                text.Append(CultureInfo.InvariantCulture, $"{address:x16} {name}\n");
        }
        return text.ToString();
    }

    private static string KernelText(MachineKernel kernel)
    {
        var info = kernel.Info;
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"os {info.Name}\n");
        text.Append(CultureInfo.InvariantCulture, $"version {info.Version.TrimEnd('\n')}\n");
        text.Append(CultureInfo.InvariantCulture, $"architecture {info.Architecture}\n");
        text.Append(CultureInfo.InvariantCulture, $"kernel-base 0x{info.KernelBase:x}\n");
        if (info.KernelSlide is { } slide)
            text.Append(CultureInfo.InvariantCulture, $"kaslr-slide {(slide < 0 ? "-" : "")}0x{(ulong)Math.Abs(slide):x}\n");
        text.Append(CultureInfo.InvariantCulture, $"dtb 0x{info.DirectoryTableBase:x}\n");
        if (kernel.Symbols.HasSymbols && !info.Properties.ContainsKey("symbols"))
            text.Append(CultureInfo.InvariantCulture, $"symbols {kernel.Symbols.Count}\n");
        foreach (var (key, value) in info.Properties.OrderBy(p => p.Key, StringComparer.Ordinal))
            text.Append(CultureInfo.InvariantCulture, $"{key} {value}\n");
        return text.ToString();
    }

    /// <summary>The process tree, children under their parents, indented with dashes as MemProcFS's <c>proc.txt</c> does.</summary>
    internal static string ProcessTree(IReadOnlyList<MachineProcess> processes)
    {
        var text = new StringBuilder();
        text.Append("   PID   PPID S UID   NAME                           COMMAND\n");
        var byPid = processes.ToDictionary(p => p.Pid);
        var children = processes.ToLookup(p => p.ParentPid);
        var shown = new HashSet<ulong>();
        void Visit(MachineProcess process, int depth)
        {
            if (!shown.Add(process.Pid))
                return;
            var name = new string('-', depth) + process.Name;
            var command = process.IsKernelThread ? $"[{process.Name}]" : process.CommandLine ?? "";
            text.Append(CultureInfo.InvariantCulture,
                $"{process.Pid,6} {process.ParentPid,6} {StateLetter(process.Info)} {(process.Info.Uid is { } uid ? Invariant(uid) : "-"),-5} {name,-30} {command}\n");
            foreach (var child in children[process.Pid])
            {
                if (child.Pid != process.Pid)
                    Visit(child, depth + 1);
            }
        }
        foreach (var process in processes.Where(p => p.ParentPid == p.Pid || !byPid.ContainsKey(p.ParentPid)))
            Visit(process, 0);
        foreach (var process in processes)
            Visit(process, 0); // members of a parent cycle
        return text.ToString();
    }

    private static string KernelModules(MapResult<ModuleInfo> modules)
    {
        if (!modules.IsAvailable)
            return $"unavailable: {modules.UnavailableReason}\n";
        var text = new StringBuilder();
        foreach (var module in modules)
            text.Append(CultureInfo.InvariantCulture, $"{module.Base:x16} {module.Size,10:x} {module.Name}{(module.Path is { } path && path != module.Name ? " " + path : "")}\n");
        return text.ToString();
    }

    internal static string Netstat(MapResult<NetworkSocket> sockets)
    {
        if (!sockets.IsAvailable)
            return $"unavailable: {sockets.UnavailableReason}\n";
        var text = new StringBuilder();
        text.Append("   PID  FD FAMILY  TYPE      PROTO STATE        LOCAL                                          REMOTE\n");
        foreach (var socket in sockets)
        {
            text.Append(CultureInfo.InvariantCulture,
                $"{socket.Pid,6} {socket.Fd,3} {socket.Family,-7} {socket.Type,-9} {socket.Protocol ?? "-",-5} {socket.State,-12} {socket.Local?.ToString() ?? "-",-46} {socket.Remote?.ToString() ?? "-"}\n");
        }
        return text.ToString();
    }

    private static string Users(MapResult<UserInfo> users)
    {
        if (!users.IsAvailable)
            return $"unavailable: {users.UnavailableReason}\n";
        var text = new StringBuilder();
        foreach (var user in users)
            text.Append(CultureInfo.InvariantCulture, $"uid {user.Uid} processes {user.Pids.Count}: {string.Join(' ', user.Pids)}\n");
        return text.ToString();
    }

    private static string VirtualMachines(MapResult<VirtualMachineInfo> machines)
    {
        if (!machines.IsAvailable)
            return $"unavailable: {machines.UnavailableReason}\n";
        if (machines.Count == 0)
            return "no virtual machines found (no qemu-system-* process)\n";
        var text = new StringBuilder();
        foreach (var vm in machines)
            text.Append(CultureInfo.InvariantCulture, $"{vm.Pid,6} {vm.Kind} {vm.Name} memory {(vm.MemorySize is { } size ? $"0x{size:x}" : "unknown")}\n");
        return text.ToString();
    }

    internal static string PhysicalMemoryMap(MemoryMap map)
    {
        var text = new StringBuilder();
        for (int i = 0; i < map.Count; i++)
        {
            var range = map[i];
            text.Append(CultureInfo.InvariantCulture, $"{i,4:x4}  {range.Base:x16} - {range.Last:x16}");
            if (range.BackingBase != range.Base)
                text.Append(CultureInfo.InvariantCulture, $"  -> {range.BackingBase:x16}");
            text.Append('\n');
        }
        return text.ToString();
    }

    private static bool HasAddressSpace(ProcessInfo info) => !info.IsKernelThread || info.DirectoryTableBase != 0;

    /// <summary>The length of <c>memory.vmem</c>: the user half of the address space, or past the highest area when that is higher.</summary>
    private static ulong VirtualSize(MachineProcess process)
    {
        var architecture = process.Machine.Kernel.Architecture;
        ulong size = architecture switch
        {
            MachineArchitecture.X86 or MachineArchitecture.X86Pae => 1UL << 32,
            MachineArchitecture.Arm64 => 1UL << 48,
            _ => 1UL << 47,
        };
        // The areas are read when the size is first asked (ls -l), not when the folder is made.
        var areas = process.GetMemoryAreas();
        if (areas.Count > 0 && areas[^1].End > size && areas[^1].End <= long.MaxValue)
            size = areas[^1].End;
        return size;
    }

    internal static string StateText(ProcessInfo info)
    {
        char letter = StateLetter(info);
        return letter switch
        {
            'R' => "R (running)",
            'S' => "S (sleeping)",
            'D' => "D (disk sleep)",
            'T' => "T (stopped)",
            't' => "t (tracing stop)",
            'Z' => "Z (zombie)",
            'X' => "X (dead)",
            'I' => "I (idle)",
            _ => info.StateText ?? info.State.ToString().ToLowerInvariant(),
        };
    }

    private static char StateLetter(ProcessInfo info) => info.StateText is { Length: > 0 } text ? text[0] : info.State switch
    {
        ProcessState.Running => 'R',
        ProcessState.Sleeping => 'S',
        ProcessState.DiskSleep => 'D',
        ProcessState.Stopped => 'T',
        ProcessState.Traced => 't',
        ProcessState.Zombie => 'Z',
        ProcessState.Dead => 'X',
        ProcessState.Idle => 'I',
        ProcessState.Exited => 'X',
        _ => '?',
    };

    /// <summary>A name fit for one path component: no slashes (Linux's kernel threads have them), never '.' or '..'.</summary>
    internal static string SafeName(string name)
    {
        var safe = name.Replace('/', '_').Replace('\0', '_');
        return safe is "" or "." or ".." ? "_" + safe : safe;
    }

    private static string Invariant(ulong value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>The machine's physical memory as it is now (through the page cache when one is configured).</summary>
    private sealed class MachinePhysicalProxy(Machine machine) : IMemory
    {
        public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => machine.Memory.Inner.Read(batch, flags);

        public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => machine.Memory.Inner.Write(batch, flags);
    }

    /// <summary>A process's memory, opened only when first read.</summary>
    private sealed class ProcessMemoryProxy(MachineProcess process) : IMemory
    {
        public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => process.Memory.Inner.Read(batch, flags);

        public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => process.Memory.Inner.Write(batch, flags);
    }
}

/// <summary>Memory areas in the text of Linux's <c>/proc/PID/maps</c>.</summary>
internal static class ProcMaps
{
    /// <summary>Where the path column starts: Linux pads every line with a name to 25 + 6 pointer widths, then one space.</summary>
    private const int NameColumn = 25 + 6 * 8 - 1;

    public static string Format(IReadOnlyList<MemoryArea> areas, Func<MemoryArea, (uint Major, uint Minor, ulong Inode)>? files = null)
    {
        var text = new StringBuilder();
        foreach (var area in areas)
        {
            var (major, minor, inode) = files?.Invoke(area) ?? (0, 0, 0);
            int lineStart = text.Length;
            text.Append(CultureInfo.InvariantCulture, $"{area.Start:x8}-{area.End:x8} {area.Permissions} {area.Offset:x8} {major:x2}:{minor:x2} {inode} ");
            if (area.Path is { } path)
            {
                // Linux's seq_pad: pad to the column, then the space it always writes before the name.
                int written = text.Length - lineStart;
                if (written < NameColumn)
                    text.Append(' ', NameColumn - written);
                text.Append(' ').Append(path);
            }
            text.Append('\n');
        }
        return text.ToString();
    }
}
