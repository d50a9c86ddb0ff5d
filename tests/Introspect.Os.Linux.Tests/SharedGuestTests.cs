using Introspect.Abi;
using Introspect.Core.Memory;
using Introspect.TestSupport;

namespace Introspect.Os.Linux.Tests;

/// <summary>The shared Debian 12 guest (6.1.0-56, nokaslr, 128 MiB, 5-level paging), raw, as QEMU's flattened kdump
/// and as that kdump made plain, against what the guest printed about itself just before the dump.</summary>
/// <remarks>
/// The guest's init script (testdata/linux/init.sh) printed its oracle and then went on: it ran <c>exec sh</c>, so
/// pid 1 is <c>sh</c> in the dump; the <c>ps</c> that printed the list (pid 91) had exited; and its
/// <c>while true; do sleep 5; done</c> loop (pid 86) had replaced its child <c>sleep 5</c> (pid 87) by a newer one.
/// Everything else must match exactly.
/// </remarks>
[TestFixture("raw")]
[TestFixture("kdump")]
[TestFixture("kdump-plain")]
public sealed class SharedGuestTests(string form)
{
    private const ulong StartKernelMap = 0xffff_ffff_8000_0000;

    private IPhysicalMemory _memory = null!;
    private IOperatingSystem _os = null!;
    private List<string> _log = null!;
    private Oracle _oracle = null!;
    private IReadOnlyList<ProcessInfo> _processes = null!;

    [OneTimeSetUp]
    public void Open()
    {
        _oracle = Oracle.Load(LinuxSupport.SharedData("oracle-serial.txt"));
        _memory = LinuxSupport.OpenDump(form switch
        {
            "raw" => TestInputs.LinuxRawImage,
            "kdump" => TestInputs.LinuxFlattenedKdump,
            _ => TestInputs.Fixture("linux-6.1-x64-128M.kdump-plain"),
        });
        _os = LinuxSupport.OpenLinux(_memory, out _log);
        _processes = _os.GetProcesses();
    }

    [OneTimeTearDown]
    public void Close()
    {
        _os?.Dispose();
        _memory?.Dispose();
    }

    [Test]
    public void The_kernel_is_the_one_the_guest_names()
    {
        Assert.That(_os.Info.Name, Is.EqualTo("linux"));
        Assert.That(_os.Info.Version, Is.EqualTo(_oracle.Version));
        Assert.That(_os.Info.Architecture, Is.EqualTo(MachineArchitecture.X64));
        Assert.That(_os.Info.Properties["release"], Is.EqualTo("6.1.0-56-amd64"));
    }

    [Test]
    public void Without_kaslr_the_kernel_sits_at_its_link_address_and_maps_with_five_levels()
    {
        var kallsyms = _oracle.Kallsyms();
        Assert.That(_os.Info.KernelBase, Is.EqualTo(kallsyms["_text"]));
        Assert.That(_os.Info.KernelSlide, Is.Zero);
        // nokaslr: phys_base is 0, so init_top_pgt lies at its link address less __START_KERNEL_map.
        Assert.That(_os.Info.DirectoryTableBase, Is.EqualTo(kallsyms["init_top_pgt"] - StartKernelMap));
        Assert.That(_os.Info.Properties["paging"], Is.EqualTo("x64-la57"));
        // The direct map of a 5-level kernel without memory randomization (registers-at-dump: CR4.LA57 set).
        Assert.That(_os.Info.Properties["page_offset_base"], Is.EqualTo("0xff11000000000000"));
        Assert.That(_os.Info.Properties["phys_base"], Is.EqualTo("0x0"));
    }

    [Test]
    public void Every_symbol_the_guest_printed_is_found_both_ways()
    {
        var symbols = (IKernelSymbols)_os;
        Assert.That(symbols.SymbolCount, Is.GreaterThan(50_000));
        foreach (var (name, address) in _oracle.Kallsyms())
        {
            Assert.That(symbols.TryGetSymbolAddress(name, out ulong found), Is.True, name);
            Assert.That(found, Is.EqualTo(address), name);
            Assert.That(symbols.TryGetSymbolName(address, out string named, out ulong displacement), Is.True, name);
            Assert.That(displacement, Is.Zero, name);
            Assert.That(symbols.TryGetSymbolAddress(named, out ulong alias) && alias == address, Is.True, $"{name}: named {named}");
        }
        Assert.That(symbols.TryGetSymbolName(_oracle.Kallsyms()["init_task"] + 0x10, out string inside, out ulong offset), Is.True);
        Assert.That((inside, offset), Is.EqualTo(("init_task", 0x10UL)));
    }

    [Test]
    public void Field_offsets_come_from_the_kernels_own_btf()
    {
        // Measured on this kernel with its BTF and its DWARF (shared notes, qemu-and-linux-guests.md).
        var types = (IKernelTypes)_os;
        var expected = new (string Type, string Field, ulong Offset)[]
        {
            ("task_struct", "tasks", 0x890), ("task_struct", "mm", 0x8e0), ("task_struct", "pid", 0x970),
            ("task_struct", "tgid", 0x974), ("task_struct", "real_parent", 0x980), ("task_struct", "comm", 0xba0),
            ("mm_struct", "pgd", 0x48), ("struct mm_struct", "pgd", 0x48),
        };
        foreach (var (type, field, offset) in expected)
        {
            Assert.That(types.TryGetFieldOffset(type, field, out ulong found), Is.True, $"{type}.{field}");
            Assert.That(found, Is.EqualTo(offset), $"{type}.{field}");
        }
        Assert.That(types.TryGetFieldOffset("task_struct", "tasks.prev", out ulong prev) && prev == 0x898, Is.True);
        Assert.That(types.TryGetTypeSize("list_head", out ulong listHead) && listHead == 16, Is.True);
        Assert.That(types.TryGetTypeSize("task_struct", out ulong taskSize) && taskSize > 0xba0, Is.True);
        Assert.That(types.TryGetFieldOffset("task_struct", "no_such_field", out _), Is.False);
        Assert.That(types.TryGetTypeSize("no_such_type", out _), Is.False);
    }

    [Test]
    public void The_process_list_is_the_guests_ps()
    {
        var expected = _oracle.Ps().Where(p => p.Pid is not (1 or 87 or 91)).ToList();
        var byPid = _processes.ToDictionary(p => p.Pid);
        foreach (var line in expected)
        {
            Assert.That(byPid.ContainsKey(line.Pid), $"pid {line.Pid} ({line.Name}) is missing");
            var process = byPid[line.Pid];
            Assert.That(process.ParentPid, Is.EqualTo(line.ParentPid), $"pid {line.Pid}");
            Assert.That(LinuxSupport.StableName(LinuxSupport.BusyboxComm(process.Name)), Is.EqualTo(LinuxSupport.StableName(line.Name)), $"pid {line.Pid}");
            if (!line.Name.StartsWith("kworker/", StringComparison.Ordinal))
                Assert.That(LinuxSupport.BusyboxArgs(process), Is.EqualTo(line.Args), $"pid {line.Pid}");
        }
        var unexpected = _processes.Where(p => !expected.Any(e => e.Pid == p.Pid)).Select(p => $"{p.Pid} {p.Name} {p.CommandLine}").ToList();
        Assert.That(unexpected, Has.Count.EqualTo(2), string.Join("; ", unexpected));
        Assert.That(byPid[1].Name, Is.EqualTo("sh"));
        Assert.That(byPid[1].CommandLine, Is.EqualTo("sh"));
        Assert.That(_processes.Where(p => p.ParentPid == 86 && p.CommandLine == "sleep 5" && p.Pid > 91), Has.Exactly(1).Items);
    }

    [Test]
    public void Kernel_threads_are_marked_and_have_no_user_memory()
    {
        foreach (var process in _processes)
        {
            bool childOfKthreadd = process.ParentPid == 2 || process.Pid == 2;
            Assert.That(process.IsKernelThread, Is.EqualTo(childOfKthreadd), $"{process.Pid} {process.Name}");
            Assert.That(process.DirectoryTableBase == 0, Is.EqualTo(childOfKthreadd), $"{process.Pid} {process.Name}");
            Assert.That(process.ThreadCount, Is.EqualTo(1), $"{process.Pid} {process.Name}");
            Assert.That(process.Uid, Is.Zero, $"{process.Pid} {process.Name}");
            Assert.That(process.StateText, Is.Not.Null);
        }
    }

    [Test]
    public void Start_times_lie_within_the_guests_short_life()
    {
        var init = _processes.Single(p => p.Pid == 2);
        Assert.That(init.StartTime, Is.Not.Null);
        foreach (var process in _processes)
        {
            Assert.That(process.StartTime, Is.Not.Null, $"{process.Pid}");
            Assert.That(process.StartTime!.Value, Is.InRange(init.StartTime!.Value.AddSeconds(-5), init.StartTime.Value.AddMinutes(5)), $"{process.Pid}");
        }
        // The loop's current sleep started after the processes the init script started before printing.
        var loopSleep = _processes.Single(p => p.ParentPid == 86 && p.CommandLine == "sleep 5");
        Assert.That(loopSleep.StartTime!.Value, Is.GreaterThan(_processes.Single(p => p.Pid == 85).StartTime!.Value));
    }

    [Test]
    public void User_processes_map_busybox_and_share_its_code_pages()
    {
        var users = _processes.Where(p => !p.IsKernelThread).ToList();
        Assert.That(users, Has.Count.GreaterThanOrEqualTo(4));
        var pages = new Dictionary<ulong, (ulong Physical, byte[] Bytes)>();
        foreach (var process in users)
        {
            Assert.That(process.Path, Is.EqualTo("/bin/busybox"), $"{process.Pid}");
            var areas = _os.GetMemoryAreas(process);
            Assert.That(areas[0].Path, Is.EqualTo("/bin/busybox"), $"{process.Pid}");
            Assert.That(areas.Select(a => a.Path), Does.Contain("[heap]").And.Contain("[stack]").And.Contain("[vdso]"));
            for (int i = 1; i < areas.Count; i++)
                Assert.That(areas[i].Start, Is.GreaterThanOrEqualTo(areas[i - 1].End), $"{process.Pid}: areas in order and apart");
            var modules = _os.GetModules(process);
            Assert.That(modules[0].Path, Is.EqualTo("/bin/busybox"));
            Assert.That(modules[0].Base, Is.EqualTo(areas[0].Start));

            // busybox's code is one read-only file mapping: every process that touched a page of it maps the same physical page.
            var code = areas.Single(a => a.Path == "/bin/busybox" && a.Permissions == "r-xp");
            var memory = _os.OpenProcessMemory(process);
            for (ulong page = code.Start; page < code.End; page += 4096)
            {
                if (!memory.TryTranslate(page, out ulong physical))
                    continue;
                var bytes = new byte[4096];
                Assert.That(memory.Read(page, bytes), Is.EqualTo(bytes.Length), $"{process.Pid} 0x{page:x}");
                if (pages.TryGetValue(page, out var seen))
                {
                    Assert.That(physical, Is.EqualTo(seen.Physical), $"{process.Pid} 0x{page:x}");
                    Assert.That(bytes.AsSpan().SequenceEqual(seen.Bytes), Is.True, $"{process.Pid} 0x{page:x}: same bytes");
                }
                else
                {
                    pages.Add(page, (physical, bytes));
                }
            }
        }
        Assert.That(pages, Has.Count.GreaterThan(10), "code pages mapped in the processes");
    }

    [Test]
    public void The_guest_loaded_no_modules()
    {
        Assert.That(_os.GetKernelModules(), Is.Empty);
    }

    [Test]
    public void Get_process_finds_each_listed_process_and_nothing_else()
    {
        foreach (var process in _processes)
            Assert.That(_os.GetProcess(process.Pid), Is.EqualTo(process).Using<ProcessInfo>(SameProcess), $"{process.Pid}");
        Assert.That(_os.GetProcess(0), Is.Null);
        Assert.That(_os.GetProcess(99_999), Is.Null);
    }

    [Test]
    public void The_walk_logged_no_warning()
    {
        Assert.That(_log.Where(l => l.StartsWith("Warning", StringComparison.Ordinal)), Is.Empty);
    }

    private static bool SameProcess(ProcessInfo a, ProcessInfo b) =>
        a.Pid == b.Pid && a.ParentPid == b.ParentPid && a.Name == b.Name && a.CommandLine == b.CommandLine
        && a.KernelObject == b.KernelObject && a.DirectoryTableBase == b.DirectoryTableBase && a.StateText == b.StateText;
}
