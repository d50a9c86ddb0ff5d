using System.Globalization;
using Introspect.Abi;
using Introspect.Core.Memory;
using Introspect.TestSupport;

namespace Introspect.Os.Linux.Tests;

/// <summary>The fixture guest's real memory, damaged in one place at a time: cyclic and torn lists, unreadable
/// pages, looping trees, absurd counts, symbol tables and type information that point nowhere. Each walk must end
/// with what it found and a warning, and opening must fail with a message that says what was tried.</summary>
[NonParallelizable]
public sealed class MalformedMemoryTests
{
    private Reference _reference = null!;

    /// <summary>What the undamaged guest looks like, and where its structures are.</summary>
    private sealed record Reference(List<ProcessInfo> Processes, int TasksOffset, ulong InitTask, Dictionary<string, ulong> Offsets);

    [OneTimeSetUp]
    public void ReadReference()
    {
        using var memory = LinuxSupport.OpenDump(TestInputs.Fixture("guest.raw"));
        using var os = LinuxSupport.OpenLinux(memory);
        var types = (IKernelTypes)os;
        var offsets = new Dictionary<string, ulong>();
        foreach (var (type, field) in new[]
        {
            ("task_struct", "tasks"), ("task_struct", "mm"), ("mm_struct", "mm_mt"), ("maple_tree", "ma_root"),
            ("maple_range_64", "slot"), ("mm_struct", "exe_file"), ("file", "f_path.dentry"), ("dentry", "d_parent"),
            ("module", "list"),
        })
        {
            Assert.That(types.TryGetFieldOffset(type, field, out ulong offset), Is.True, $"{type}.{field}");
            offsets[$"{type}.{field}"] = offset;
        }
        ((IKernelSymbols)os).TryGetSymbolAddress("init_task", out ulong initTask);
        _reference = new Reference([.. os.GetProcesses()], (int)offsets["task_struct.tasks"], initTask, offsets);
        Assert.That(_reference.Processes, Has.Count.GreaterThan(40));
    }

    /// <summary>Opens the damaged guest: <paramref name="damage"/> gets the memory and a way to translate kernel addresses.</summary>
    private static IOperatingSystem OpenDamaged(Action<PatchedMemory, Func<ulong, ulong>> damage, out List<string> log, string file = "guest.raw",
        params (string, string)[] arguments)
    {
        var memory = new PatchedMemory(LinuxSupport.OpenDump(TestInputs.Fixture(file)));
        using (var clean = LinuxSupport.OpenLinux(memory))
        {
            var kernel = ((LinuxOperatingSystem)clean).KernelMemory;
            damage(memory, address =>
            {
                Assert.That(kernel.TryTranslate(address, out ulong physical), Is.True, $"0x{address:x} is mapped");
                return physical;
            });
        }
        return new DisposingOs(LinuxSupport.OpenLinux(memory, out log, arguments), memory);
    }

    private static IEnumerable<string> Warnings(List<string> log) => log.Where(l => l.StartsWith("Warning", StringComparison.Ordinal));

    private ulong TasksOf(int index) => _reference.Processes[index].KernelObject + (ulong)_reference.TasksOffset;

    [Test]
    public void A_task_list_that_cycles_ends_with_what_was_found()
    {
        using var os = OpenDamaged((memory, physical) => memory.PatchUInt64(physical(TasksOf(20)), TasksOf(5)), out var log);
        var processes = os.GetProcesses();
        Assert.That(processes.Select(p => p.Pid), Is.EqualTo(_reference.Processes.Take(21).Select(p => p.Pid)));
        Assert.That(Warnings(log), Has.Some.Contains("cycle"));
    }

    [Test]
    public void A_task_that_points_at_itself_ends_the_walk()
    {
        using var os = OpenDamaged((memory, physical) => memory.PatchUInt64(physical(TasksOf(7)), TasksOf(7)), out var log);
        Assert.That(os.GetProcesses(), Has.Count.EqualTo(8));
        Assert.That(Warnings(log), Has.Some.Contains("cycle"));
        Assert.That(os.GetProcess(_reference.Processes[^1].Pid), Is.Null);
    }

    [Test]
    public void A_torn_task_list_ends_at_the_tear()
    {
        using var os = OpenDamaged((memory, physical) => memory.PatchUInt64(physical(TasksOf(12)), 0xffff_ffff_ff00_0000), out var log);
        Assert.That(os.GetProcesses().Select(p => p.Pid), Is.EqualTo(_reference.Processes.Take(13).Select(p => p.Pid)));
        Assert.That(Warnings(log), Has.Some.Contains("torn"));
    }

    [Test]
    public void A_task_list_that_ends_in_null_ends_with_what_was_found()
    {
        using var os = OpenDamaged((memory, physical) => memory.PatchUInt64(physical(TasksOf(3)), 0), out var log);
        Assert.That(os.GetProcesses(), Has.Count.EqualTo(4));
        Assert.That(Warnings(log), Has.Some.Contains("torn"));
    }

    [Test]
    public void An_absurd_start_time_leaves_the_start_unknown()
    {
        var victim = _reference.Processes[10];
        using var os = OpenDamaged((memory, physical) =>
        {
            using var probe = LinuxSupport.OpenLinux(memory);
            ((IKernelTypes)probe).TryGetFieldOffset("task_struct", "start_boottime", out ulong startTime);
            memory.PatchUInt64(physical(victim.KernelObject + startTime), ulong.MaxValue);
        }, out _);
        var processes = os.GetProcesses();
        Assert.That(processes.Single(p => p.Pid == victim.Pid).StartTime, Is.Null);
        Assert.That(processes.Where(p => p.Pid != victim.Pid).Select(p => p.StartTime), Is.All.Not.Null);
    }

    [Test]
    public void An_unreadable_task_ends_the_walk_before_it()
    {
        var victim = _reference.Processes[30];
        using var os = OpenDamaged((memory, physical) => memory.MakeUnreadable(physical(victim.KernelObject + (ulong)_reference.TasksOffset)), out var log);
        var processes = os.GetProcesses();
        Assert.That(processes.Select(p => p.Pid), Does.Not.Contain(victim.Pid));
        Assert.That(processes, Has.Count.LessThanOrEqualTo(30));
        Assert.That(Warnings(log), Has.Some.Contains("cannot be read"));
    }

    [Test]
    public void A_maple_tree_that_loops_ends_with_a_warning()
    {
        var worker = _reference.Processes.First(p => p.Name == "memtest-worker");
        ulong slot = _reference.Offsets["maple_range_64.slot"];
        using var os = OpenDamaged((memory, physical) =>
        {
            ulong mm = Read(memory, physical(worker.KernelObject + _reference.Offsets["task_struct.mm"]));
            ulong rootAt = mm + _reference.Offsets["mm_struct.mm_mt"] + _reference.Offsets["maple_tree.ma_root"];
            ulong root = Read(memory, physical(rootAt));
            // The root node becomes an inner node (maple_range_64, type 2) whose first child is itself.
            ulong looping = (root & ~0x78UL) | (2UL << 3);
            memory.PatchUInt64(physical(rootAt), looping);
            memory.PatchUInt64(physical((root & ~0xffUL) + slot), looping);
        }, out var log);
        var areas = os.GetMemoryAreas(os.GetProcess(worker.Pid)!);
        Assert.That(areas.Where(a => a.Path != "[vsyscall]"), Is.Empty);
        Assert.That(Warnings(log), Has.Some.Contains("maple tree"));
    }

    [Test]
    public void A_maple_root_outside_memory_gives_no_areas_and_a_warning()
    {
        var worker = _reference.Processes.First(p => p.Name == "memtest-worker");
        using var os = OpenDamaged((memory, physical) =>
        {
            ulong mm = Read(memory, physical(worker.KernelObject + _reference.Offsets["task_struct.mm"]));
            memory.PatchUInt64(physical(mm + _reference.Offsets["mm_struct.mm_mt"] + _reference.Offsets["maple_tree.ma_root"]), 0xffff_ffff_f000_000eUL);
        }, out var log);
        Assert.That(os.GetMemoryAreas(os.GetProcess(worker.Pid)!), Is.Empty);
        Assert.That(Warnings(log), Has.Some.Contains("maple tree"));
    }

    [Test]
    public void A_module_list_that_loops_lists_each_module_once()
    {
        using var os = OpenDamaged((memory, physical) =>
        {
            using var probe = LinuxSupport.OpenLinux(memory);
            ((IKernelSymbols)probe).TryGetSymbolAddress("modules", out ulong head);
            ulong first = Read(memory, physical(head));
            memory.PatchUInt64(physical(first), first);
        }, out var log);
        Assert.That(os.GetKernelModules().Select(m => m.Name), Is.EqualTo(new[] { "qemu_fw_cfg" }));
        Assert.That(Warnings(log), Has.Some.Contains("module list loops"));
    }

    [Test]
    public void A_dentry_loop_leaves_the_path_unknown()
    {
        var worker = _reference.Processes.First(p => p.Name == "memtest-worker");
        using var os = OpenDamaged((memory, physical) =>
        {
            ulong mm = Read(memory, physical(worker.KernelObject + _reference.Offsets["task_struct.mm"]));
            ulong file = Read(memory, physical(mm + _reference.Offsets["mm_struct.exe_file"]));
            ulong dentry = Read(memory, physical(file + _reference.Offsets["file.f_path.dentry"]));
            ulong parent = Read(memory, physical(dentry + _reference.Offsets["dentry.d_parent"]));
            memory.PatchUInt64(physical(parent + _reference.Offsets["dentry.d_parent"]), dentry);
        }, out _);
        var process = os.GetProcess(worker.Pid)!;
        Assert.That(process.Path, Is.Null);
        Assert.That(process.CommandLine, Is.EqualTo(worker.CommandLine));
    }

    [Test]
    public void Memory_without_kallsyms_is_refused_with_what_was_tried()
    {
        var memory = new PatchedMemory(LinuxSupport.OpenDump(TestInputs.Fixture("guest.raw")));
        using var _ = memory;
        foreach (ulong hit in MemorySearch.Search(memory, BytePattern.FromBytes(Introspect.Os.Linux.Kernel.Kallsyms.DigitPattern)))
            memory.Patch(hit, "x"u8);
        var error = Assert.Throws<InvalidDataException>(() => LinuxSupport.OpenLinux(memory));
        Assert.That(error!.Message, Does.Contain("no Linux kernel found").And.Contain("token table").And.Contain("systemmap="));
    }

    [Test]
    public void Vmcoreinfo_pointing_outside_memory_falls_back_to_the_search()
    {
        using var os = OpenDamaged((memory, _) =>
            memory.Hints = memory.Hints with { VmcoreInfo = Replace(memory.Hints.VmcoreInfo!, "SYMBOL(kallsyms_names)", "ffffffffff000000") },
            out var log, "guest.elf");
        Assert.That(os.Info.Properties["symbol_source"], Does.Contain("found in physical memory"));
        Assert.That(os.GetProcesses().Select(p => p.Pid), Is.EqualTo(_reference.Processes.Select(p => p.Pid)));
        Assert.That(Warnings(log), Has.Some.Contains("VMCOREINFO"));
    }

    [Test]
    public void Vmcoreinfo_with_an_absurd_symbol_count_falls_back_to_the_search()
    {
        // linux_banner's first bytes ("Linu") read as a count of 1.97 billion symbols.
        using var os = OpenDamaged((memory, _) =>
        {
            var note = memory.Hints.VmcoreInfo!;
            using var probe = LinuxSupport.OpenLinux(memory);
            ((IKernelSymbols)probe).TryGetSymbolAddress("linux_banner", out ulong banner);
            memory.Hints = memory.Hints with { VmcoreInfo = Replace(note, "SYMBOL(kallsyms_num_syms)", LinuxSupport.Hex(banner)) };
        }, out var log, "guest.elf");
        Assert.That(os.Info.Properties["symbol_source"], Does.Contain("found in physical memory"));
        Assert.That(Warnings(log), Has.Some.Contains("kallsyms_num_syms is 1970170188"));
    }

    [Test]
    public void A_wrong_vmcoreinfo_phys_base_falls_back_to_the_search()
    {
        using var os = OpenDamaged((memory, _) =>
            memory.Hints = memory.Hints with { VmcoreInfo = Replace(memory.Hints.VmcoreInfo!, "NUMBER(phys_base)", WrongPhysBase(memory.Hints.VmcoreInfo!)) },
            out var log, "guest.elf");
        Assert.That(os.GetProcesses(), Has.Count.EqualTo(_reference.Processes.Count));
        Assert.That(Warnings(log), Is.Not.Empty);
    }

    [Test]
    public void Wrong_register_hints_do_not_mislead()
    {
        using var os = OpenDamaged((memory, _) => memory.Hints = new ConnectorHints
        {
            Cpus = [new CpuRegisters { Cr3 = 0x1234000, Cr4 = 0x1000 /* LA57, which this guest does not use */ }],
        }, out _);
        Assert.That(os.Info.Properties["paging"], Is.EqualTo("x64"));
        Assert.That(os.GetProcesses().Select(p => p.Name), Is.EqualTo(_reference.Processes.Select(p => p.Name)));
    }

    [Test]
    public void Damaged_btf_is_refused_naming_the_field_and_the_way_out()
    {
        var error = Assert.Throws<InvalidDataException>(() => OpenDamaged((memory, physical) =>
        {
            using var probe = LinuxSupport.OpenLinux(memory);
            ((IKernelSymbols)probe).TryGetSymbolAddress("__start_BTF", out ulong btf);
            memory.Patch(physical(btf), [0x00, 0x00]);
        }, out _));
        Assert.That(error!.Message, Does.Contain("BTF magic is 0x0000").And.Contain("isf=FILE"));
    }

    [Test]
    public void Btf_with_an_absurd_type_length_is_refused()
    {
        var error = Assert.Throws<InvalidDataException>(() => OpenDamaged((memory, physical) =>
        {
            using var probe = LinuxSupport.OpenLinux(memory);
            ((IKernelSymbols)probe).TryGetSymbolAddress("__start_BTF", out ulong btf);
            memory.PatchUInt32(physical(btf + 12), 0xffff_fff0);
        }, out _));
        Assert.That(error!.Message, Does.Contain("type section").And.Contain("4294967280"));
    }

    private static ulong Read(PatchedMemory memory, ulong physical)
    {
        Assert.That(memory.TryRead(physical, out ulong value), Is.True, $"physical 0x{physical:x}");
        return value;
    }

    /// <summary>The note with <paramref name="key"/>'s value replaced.</summary>
    /// <summary>A phys_base 2 MiB off the real one: KASLR may well have put the kernel at any fixed value a test picks.</summary>
    private static string WrongPhysBase(string note)
    {
        string real = note.Split('\n').Single(l => l.StartsWith("NUMBER(phys_base)=", StringComparison.Ordinal))["NUMBER(phys_base)=".Length..];
        return (long.Parse(real, CultureInfo.InvariantCulture) + 0x20_0000).ToString(CultureInfo.InvariantCulture);
    }

    private static string Replace(string note, string key, string value)
    {
        var lines = note.Split('\n');
        int index = Array.FindIndex(lines, l => l.StartsWith(key + "=", StringComparison.Ordinal));
        Assert.That(index, Is.GreaterThanOrEqualTo(0), $"VMCOREINFO has {key}");
        lines[index] = $"{key}={value}";
        return string.Join('\n', lines);
    }

    /// <summary>Closes the memory along with the layer, which never closes what it was given.</summary>
    private sealed class DisposingOs(IOperatingSystem os, IDisposable memory) : IOperatingSystem, IKernelSymbols
    {
        public OsInfo Info => os.Info;
        public IPhysicalMemory PhysicalMemory => os.PhysicalMemory;
        public IReadOnlyList<ProcessInfo> GetProcesses() => os.GetProcesses();
        public ProcessInfo? GetProcess(ulong pid) => os.GetProcess(pid);
        public IVirtualMemory OpenProcessMemory(ProcessInfo process) => os.OpenProcessMemory(process);
        public IReadOnlyList<MemoryArea> GetMemoryAreas(ProcessInfo process) => os.GetMemoryAreas(process);
        public IReadOnlyList<ModuleInfo> GetModules(ProcessInfo process) => os.GetModules(process);
        public IReadOnlyList<ModuleInfo> GetKernelModules() => os.GetKernelModules();
        public int SymbolCount => ((IKernelSymbols)os).SymbolCount;
        public bool TryGetSymbolAddress(string name, out ulong address) => ((IKernelSymbols)os).TryGetSymbolAddress(name, out address);
        public bool TryGetSymbolName(ulong address, out string name, out ulong displacement) => ((IKernelSymbols)os).TryGetSymbolName(address, out name, out displacement);

        public void Dispose()
        {
            os.Dispose();
            memory.Dispose();
        }
    }
}
