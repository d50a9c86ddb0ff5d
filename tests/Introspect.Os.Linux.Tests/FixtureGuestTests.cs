using Introspect.Abi;
using Introspect.Core.Memory;
using Introspect.TestSupport;

namespace Introspect.Os.Linux.Tests;

/// <summary>The fixture guest (tests/fixtures: Debian's kernel with KASLR, 4-level paging, busybox workers, a zombie),
/// in every form the fixtures write it, against the ground truth it printed.</summary>
/// <remarks>
/// The ELF dump carries VMCOREINFO and the CPU registers; the raw image carries nothing, so the layer finds the
/// kernel alone; the kdump files are compressed. The guest printed its oracle a moment before the dump: the
/// <c>ps</c> that printed it had exited by then, and processes with higher pids started after it.
/// </remarks>
[TestFixture("guest.elf")]
[TestFixture("guest.raw")]
[TestFixture("guest-kdump-zlib.flat")]
[TestFixture("guest-kdump-zlib.kdump")]
[TestFixture("guest-kdump-lzo.kdump")]
public sealed class FixtureGuestTests(string file)
{
    private const ulong LinkText = 0xffff_ffff_8100_0000;

    private IPhysicalMemory _memory = null!;
    private IOperatingSystem _os = null!;
    private List<string> _log = null!;
    private Oracle _oracle = null!;
    private IReadOnlyList<ProcessInfo> _processes = null!;

    [OneTimeSetUp]
    public void Open()
    {
        _oracle = Oracle.Load(TestInputs.Fixture("guest-oracle.txt"));
        _memory = LinuxSupport.OpenDump(TestInputs.Fixture(file));
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
    public void Kaslr_slide_and_symbols_match_the_guests_kallsyms()
    {
        var kallsyms = _oracle.Kallsyms();
        Assert.That(_os.Info.Version, Is.EqualTo(_oracle.Version));
        Assert.That(_os.Info.KernelBase, Is.EqualTo(kallsyms["_text"]));
        Assert.That(_os.Info.KernelSlide, Is.EqualTo((long)(kallsyms["_text"] - LinkText)));
        Assert.That(_os.Info.Properties["paging"], Is.EqualTo("x64"));
        var symbols = (IKernelSymbols)_os;
        foreach (var (name, address) in kallsyms)
        {
            Assert.That(symbols.TryGetSymbolAddress(name, out ulong found), Is.True, name);
            Assert.That(found, Is.EqualTo(address), name);
        }
    }

    [Test]
    public void The_direct_map_base_is_the_randomized_one_the_kernel_uses()
    {
        // page_offset_base is a variable; read through the kernel's own mapping of it, it must equal what the layer uses.
        var kernel = ((LinuxOperatingSystem)_os).KernelMemory;
        Assert.That(kernel.TryRead(_oracle.Kallsyms()["page_offset_base"], out ulong pageOffset), Is.True);
        Assert.That(_os.Info.Properties["page_offset_base"], Is.EqualTo("0x" + LinuxSupport.Hex(pageOffset)));
        Assert.That(pageOffset, Is.Not.EqualTo(0xffff_8880_0000_0000UL), "KASLR moves the direct map too");
    }

    [Test]
    public void The_process_list_is_the_guests_ps()
    {
        var oracle = _oracle.Ps().Where(p => p.Name != "ps").ToList();
        ulong psPid = _oracle.Ps().Single(p => p.Name == "ps").Pid;
        var byPid = _processes.ToDictionary(p => p.Pid);
        foreach (var line in oracle)
        {
            Assert.That(byPid.ContainsKey(line.Pid), $"pid {line.Pid} ({line.Name}) is missing");
            var process = byPid[line.Pid];
            Assert.That(process.ParentPid, Is.EqualTo(line.ParentPid), $"pid {line.Pid}");
            Assert.That(LinuxSupport.StableName(LinuxSupport.BusyboxComm(process.Name)), Is.EqualTo(LinuxSupport.StableName(line.Name)), $"pid {line.Pid}");
            if (!line.Name.StartsWith("kworker/", StringComparison.Ordinal))
                Assert.That(LinuxSupport.BusyboxArgs(process), Is.EqualTo(line.Args), $"pid {line.Pid}");
        }
        var later = _processes.Where(p => !oracle.Any(o => o.Pid == p.Pid)).ToList();
        Assert.That(later.Select(p => p.Pid), Is.All.GreaterThan(psPid), "only processes started after the guest's ps are not in it");
    }

    [Test]
    public void States_are_the_letters_ps_showed()
    {
        var byPid = _processes.ToDictionary(p => p.Pid);
        foreach (var line in _oracle.Section("ps-stat").Skip(1))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            ulong pid = ulong.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture);
            if (!byPid.TryGetValue(pid, out var process))
                continue; // ps itself
            Assert.That(process.StateText, Is.EqualTo(parts[1][..1]), $"pid {pid} {process.Name}");
        }
        Assert.That(_processes.Single(p => p.Name == "memtest-zombie-").State, Is.EqualTo(ProcessState.Zombie));
    }

    [Test]
    public void Memory_areas_are_the_guests_proc_maps()
    {
        foreach (var section in _oracle.SectionNames.Where(n => n.StartsWith("maps ", StringComparison.Ordinal)))
        {
            ulong pid = ulong.Parse(section[5..], System.Globalization.CultureInfo.InvariantCulture);
            var process = _os.GetProcess(pid);
            Assert.That(process, Is.Not.Null, section);
            var expected = _oracle.Section(section).Where(l => l.Length > 0).Select(LinuxSupport.MapsLineWithoutDevice).ToList();
            var actual = _os.GetMemoryAreas(process!).Select(LinuxSupport.MapsLine).ToList();
            Assert.That(actual, Is.EqualTo(expected), section);
        }
    }

    [Test]
    public void The_environment_is_read_from_the_process()
    {
        foreach (var section in _oracle.SectionNames.Where(n => n.StartsWith("environ ", StringComparison.Ordinal)))
        {
            var process = _os.GetProcess(ulong.Parse(section[8..], System.Globalization.CultureInfo.InvariantCulture));
            Assert.That(process?.Environment, Is.EqualTo(_oracle.Section(section).Where(l => l.Length > 0)), section);
        }
    }

    [Test]
    public void Kernel_modules_are_the_guests_proc_modules()
    {
        var expected = _oracle.Section("modules").Where(l => l.Length > 0)
            .Select(l => l.Split(' '))
            .Select(p => new ModuleInfo(p[0], null, LinuxSupport.ParseHex(p[5]), ulong.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture)))
            .ToList();
        Assert.That(_os.GetKernelModules(), Is.EqualTo(expected));
    }

    [Test]
    public void A_zombie_has_no_memory_and_no_command_line()
    {
        var zombie = _processes.Single(p => p.State == ProcessState.Zombie);
        Assert.That(zombie.CommandLine, Is.Null);
        Assert.That(zombie.DirectoryTableBase, Is.Zero);
        Assert.That(zombie.IsKernelThread, Is.False);
        Assert.That(_os.GetMemoryAreas(zombie), Is.Empty);
    }

    [Test]
    public void A_marker_built_at_run_time_is_in_its_own_workers_memory_only()
    {
        // Each worker assembles MEMTEST_HEAP_MARKER_<ARG> in a shell variable: only that process's memory holds it whole.
        var workers = _oracle.Section("workers").Select(l => l.Split(' ')).Where(p => p[0] != "zombie-parent")
            .Select(p => (Arg: p[0], Process: _os.GetProcess(ulong.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture))!)).ToList();
        Assert.That(workers, Has.Count.EqualTo(4));
        foreach (var (arg, process) in workers)
        {
            var marker = System.Text.Encoding.ASCII.GetBytes("MEMTEST_HEAP_MARKER_" + arg.ToUpperInvariant());
            foreach (var (_, other) in workers)
                Assert.That(Holds(other, marker), Is.EqualTo(other.Pid == process.Pid), $"{arg} in pid {other.Pid}");
        }
    }

    /// <summary>Whether the process's writable memory holds <paramref name="needle"/>.</summary>
    private bool Holds(ProcessInfo process, byte[] needle)
    {
        var memory = _os.OpenProcessMemory(process);
        foreach (var area in _os.GetMemoryAreas(process).Where(a => (a.Protection & MemoryProtection.Write) != 0))
        {
            var bytes = new byte[area.End - area.Start];
            memory.Read(area.Start, bytes, MemoryFlags.ZeroPadOnFail);
            if (bytes.AsSpan().IndexOf(needle) >= 0)
                return true;
        }
        return false;
    }

    [Test]
    public void The_walk_logged_no_warning()
    {
        Assert.That(_log.Where(l => l.StartsWith("Warning", StringComparison.Ordinal)), Is.Empty);
    }
}
