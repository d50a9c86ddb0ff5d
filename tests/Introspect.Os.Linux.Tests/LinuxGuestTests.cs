using System.Globalization;
using Introspect.Abi;
using Introspect.Core.Memory;
using Introspect.Core.Translation;
using Introspect.TestSupport;

namespace Introspect.Os.Linux.Tests;

/// <summary>The fixture's Linux guests (KASLR on and off, pc and q35, RAM above 4 GiB, 5-level paging), each as its
/// ELF dump (with VMCOREINFO and registers), as the same dump with every hint withheld, and as its raw image, against
/// the ground truth each printed from its own <c>/proc</c> just before the dump.</summary>
/// <remarks>
/// Between the guest's listing and the dump only kworkers may change (they come and go, and their names carry the
/// workqueue they served last), and the shell that printed the table is left out of it; everything else is quiet.
/// </remarks>
[TestFixtureSource(nameof(Cases))]
[NonParallelizable]
public sealed class LinuxGuestTests(FixtureGuest guest, string form)
{
    private const ulong StartKernelMap = 0xffff_ffff_8000_0000;
    private const ulong LinkText = 0xffff_ffff_8100_0000;

    private IPhysicalMemory _memory = null!;
    private IOperatingSystem _os = null!;
    private List<string> _log = null!;
    private GuestOracle _oracle = null!;
    private IReadOnlyList<ProcessInfo> _processes = null!;

    public static IEnumerable<TestFixtureData> Cases()
    {
        foreach (var guest in TestInputs.LinuxGuests)
        {
            yield return new TestFixtureData(guest, "elf").SetArgDisplayNames(guest.Name, "elf");
            yield return new TestFixtureData(guest, "elf-without-hints").SetArgDisplayNames(guest.Name, "elf-without-hints");
            // A raw image holds RAM below 4 GiB only; the high-memory guest's kernel lies above it.
            if (guest.HighRamBytes == 0)
                yield return new TestFixtureData(guest, "raw").SetArgDisplayNames(guest.Name, "raw");
        }
    }

    [OneTimeSetUp]
    public void Open()
    {
        _oracle = guest.Oracle;
        var dump = LinuxSupport.OpenDump(form == "raw" ? guest.Raw : guest.Elf);
        _memory = form == "elf-without-hints" ? new PatchedMemory(dump) { Hints = ConnectorHints.None } : dump;
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
    public void The_kernel_lies_where_the_guest_says()
    {
        var symbols = _oracle.Symbols;
        var variables = _oracle.KernelVariables;
        Assert.That(_os.Info.Version, Is.EqualTo(_oracle.Version));
        Assert.That(_os.Info.KernelBase, Is.EqualTo(symbols["_text"]));
        Assert.That(_os.Info.KernelSlide, Is.EqualTo(unchecked((long)(symbols["_text"] - LinkText))));
        // KASLR may draw the link address itself (it did once for the 1 GiB guest): only nokaslr promises a slide.
        if (!guest.Kaslr)
            Assert.That(_os.Info.KernelSlide, Is.Zero, "nokaslr keeps the kernel at its link address");
        Assert.That(_os.Info.Properties["paging"], Is.EqualTo(guest.PagingLevels == 5 ? "x64-la57" : "x64"));
        Assert.That(_os.Info.Properties["page_offset_base"], Is.EqualTo("0x" + LinuxSupport.Hex(variables["page_offset_base"])));
        Assert.That(_os.Info.Properties["vmemmap_base"], Is.EqualTo("0x" + LinuxSupport.Hex(variables["vmemmap_base"])));
        long physBase = unchecked((long)variables["phys_base"]);
        Assert.That(_os.Info.Properties["phys_base"], Is.EqualTo(physBase < 0 ? "-0x" + LinuxSupport.Hex((ulong)-physBase) : "0x" + LinuxSupport.Hex((ulong)physBase)));
        Assert.That(_os.Info.DirectoryTableBase, Is.EqualTo(unchecked(symbols["init_top_pgt"] - StartKernelMap + variables["phys_base"])));
        var facts = File.ReadAllLines(guest.KernelFacts).Select(l => l.Split(' ', 2)).ToDictionary(p => p[0], p => p[1]);
        Assert.That(_os.Info.Properties["kernel_physical"], Is.EqualTo("0x" + LinuxSupport.Hex(LinuxSupport.ParseHex(facts["kernel-code"]))));
    }

    [Test]
    public void Every_symbol_the_guest_printed_is_found_both_ways()
    {
        var symbols = (IKernelSymbols)_os;
        foreach (var (name, address) in _oracle.Symbols)
        {
            Assert.That(symbols.TryGetSymbolAddress(name, out ulong found), Is.True, name);
            Assert.That(found, Is.EqualTo(address), name);
            Assert.That(symbols.TryGetSymbolName(address, out string named, out ulong displacement), Is.True, name);
            Assert.That(displacement, Is.Zero, name);
            Assert.That(symbols.TryGetSymbolAddress(named, out ulong alias) && alias == address, Is.True, $"{name} named {named}");
        }
    }

    [Test]
    public void The_process_list_is_the_guests_proc()
    {
        var expected = _oracle.Processes;
        var byPid = _processes.ToDictionary(p => p.Pid);
        var init = byPid[1];
        var initTicks = expected.Single(p => p.Pid == 1).StartTicks;
        foreach (var oracle in expected)
        {
            bool kworker = oracle.Name.StartsWith("kworker/", StringComparison.Ordinal);
            if (!byPid.TryGetValue((ulong)oracle.Pid, out var process))
            {
                Assert.That(kworker, $"pid {oracle.Pid} ({oracle.Name}) is missing");
                continue;
            }
            string what = $"pid {oracle.Pid} ({oracle.Name})";
            Assert.That(process.ParentPid, Is.EqualTo((ulong)oracle.ParentPid), what);
            Assert.That(LinuxSupport.StableName(process.Name), Is.EqualTo(LinuxSupport.StableName(oracle.Name)), what);
            if (!kworker)
                Assert.That(process.Name, Is.EqualTo(oracle.Name), what);
            Assert.That(process.StateText, Is.EqualTo(oracle.State.ToString()), what);
            Assert.That(process.Uid, Is.EqualTo((uint)oracle.Uid), what);
            Assert.That(process.ThreadCount, Is.EqualTo(oracle.Threads), what);
            Assert.That(process.IsKernelThread, Is.EqualTo(oracle.KernelThread), what);
            Assert.That(process.Path ?? "", Is.EqualTo(oracle.ExecutablePath), what);
            Assert.That(process.CommandLine ?? "", Is.EqualTo(oracle.CommandLine), what);
            // /proc gives start times in whole clock ticks (100 a second) since boot: compare them relative to init.
            double ticks = (process.StartTime!.Value - init.StartTime!.Value).TotalSeconds * 100;
            Assert.That(ticks, Is.EqualTo((double)oracle.StartTicks - initTicks).Within(1.01), what);
        }
        int lastListed = expected.Max(p => p.Pid);
        var unlisted = _processes.Where(p => !expected.Any(o => o.Pid == (int)p.Pid));
        Assert.That(unlisted.Where(p => !p.Name.StartsWith("kworker/", StringComparison.Ordinal) && (int)p.Pid <= lastListed), Is.Empty,
            "every process but kworkers and those started after the listing is in it");
    }

    [Test]
    public void Thread_counts_are_the_guests_threads()
    {
        foreach (var group in _oracle.Threads.GroupBy(t => t.Pid))
        {
            var process = _processes.Single(p => p.Pid == (ulong)group.Key);
            Assert.That(process.ThreadCount, Is.EqualTo(group.Count()), $"pid {group.Key}");
        }
        Assert.That(_oracle.Threads.Select(t => t.Pid).Distinct().Count(), Is.GreaterThanOrEqualTo(3));
    }

    [Test]
    public void The_tree_zombie_and_stopped_processes_are_as_the_guest_made_them()
    {
        var roles = _oracle.Roles;
        var byPid = _processes.ToDictionary(p => p.Pid);
        var zombie = byPid[(ulong)roles["zombie"]];
        Assert.That((zombie.State, zombie.ParentPid, zombie.CommandLine, zombie.DirectoryTableBase), Is.EqualTo((ProcessState.Zombie, (ulong)roles["zombie-parent"], (string?)null, 0UL)));
        Assert.That(byPid[(ulong)roles["stopped"]].State, Is.EqualTo(ProcessState.Stopped));
        Assert.That(byPid[(ulong)roles["memtest-delta"]].State, Is.EqualTo(ProcessState.Stopped));
        ulong root = (ulong)roles["tree-root"];
        var children = _processes.Where(p => p.ParentPid == root).ToList();
        Assert.That(children.Select(c => c.Name), Is.EqualTo(new[] { "memtest-tree", "memtest-tree" }));
        foreach (var child in children)
            Assert.That(_processes.Count(p => p.ParentPid == child.Pid && p.CommandLine == "sleep 300000"), Is.EqualTo(2), $"children of {child.Pid}");
    }

    [Test]
    public void Memtest_processes_show_their_proc_maps_environment_and_identity()
    {
        var memtests = _oracle.Memtests;
        Assert.That(memtests, Has.Count.EqualTo(5));
        foreach (var report in memtests)
        {
            var process = _os.GetProcess((ulong)report.Pid);
            Assert.That(process, Is.Not.Null, $"memtest {report.Name}");
            Assert.That(process!.Name, Is.EqualTo(report.Comm), report.Name);
            Assert.That(process.Uid, Is.EqualTo((uint)report.Uid), report.Name);
            Assert.That(process.ThreadCount, Is.EqualTo(report.Threads), report.Name);
            var expected = _oracle.Maps(report.Pid).Select(m => $"{m.Start:x8}-{m.End:x8} {m.Permissions} {m.Offset:x8} {m.Path}".TrimEnd());
            Assert.That(_os.GetMemoryAreas(process).Select(LinuxSupport.MapsLine), Is.EqualTo(expected), $"maps of {report.Name}");
            Assert.That(process.Environment, Is.EqualTo(_oracle.Environment(report.Pid)), $"environment of {report.Name}");
            var modules = _os.GetModules(process);
            Assert.That(modules.Select(m => m.Path), Is.EqualTo(new[] { "/bin/memtest", report.FilePath }), $"modules of {report.Name}");
        }
    }

    [Test]
    public void Every_memtest_buffer_reads_back_byte_for_byte_at_its_virtual_address()
    {
        foreach (var report in _oracle.Memtests)
        {
            var process = _os.GetProcess((ulong)report.Pid)!;
            var memory = _os.OpenProcessMemory(process);
            foreach (var buffer in report.Buffers)
            {
                string what = $"{report.Name} {buffer.Kind} at 0x{buffer.Address:x}";
                var bytes = new byte[buffer.Length];
                Assert.That(memory.Read(buffer.Address, bytes), Is.EqualTo(bytes.Length), what);
                Assert.That(bytes.AsSpan(0, 64).SequenceEqual(buffer.First64), Is.True, what + ": first 64 bytes");
                Assert.That(MemtestPattern.Fnv1a64(bytes), Is.EqualTo(buffer.Fnv1a64), what + ": FNV-1a of all bytes");
                Assert.That(bytes.AsSpan().SequenceEqual(report.ExpectedContents(buffer.Kind)), Is.True, what + ": the pattern");
            }
            if (report.HugePage)
            {
                var space = (AddressSpace)memory;
                Assert.That(space.TryTranslate(report.Buffer("huge").Address, out var translation), Is.True);
                Assert.That(translation.Flags.HasFlag(PageFlags.Large), Is.True, $"{report.Name}: the huge buffer is one 2 MiB page");
            }
        }
    }

    [Test]
    public void Kernel_modules_are_the_guests_proc_modules()
    {
        Assert.That(_os.GetKernelModules().Select(m => (m.Name, m.Base, m.Size)),
            Is.EqualTo(_oracle.Modules.Select(m => (m.Name, m.Address, (ulong)m.Size))));
    }

    [Test]
    public void The_walks_logged_no_warning()
    {
        Assert.That(_log.Where(l => l.StartsWith("Warning", StringComparison.Ordinal)), Is.Empty);
    }
}
