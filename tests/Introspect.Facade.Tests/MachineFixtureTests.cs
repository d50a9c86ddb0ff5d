using System.Diagnostics;
using System.Text;
using Introspect.Abi;
using Introspect.Core;
using Introspect.Core.Memory;
using Introspect.Core.Plugins;
using Introspect.TestSupport;

namespace Introspect.Facade.Tests;

/// <summary>Each capability of the facade on a real guest (coredump -> linux), against what the guest printed about itself.</summary>
[NonParallelizable]
public class MachineFixtureTests
{
    private static readonly FixtureGuest Guest = TestInputs.LinuxKaslrPc;
    private Machine _machine = null!;
    private GuestOracle _oracle = null!;

    internal static string ChainOf(FixtureGuest guest) => $"coredump:path=\"{guest.Raw}\" -> linux";

    [OneTimeSetUp]
    public void OpenGuest()
    {
        _oracle = Guest.Oracle;
        _machine = Machine.Open(ChainOf(Guest), new MachineOptions { Configuration = PluginConfiguration.Empty });
    }

    [OneTimeTearDown]
    public void CloseGuest() => _machine?.Dispose();

    private MemtestReport Alpha => _oracle.Memtests.First(m => m.Name == "alpha");

    [Test]
    public void The_process_list_is_the_guests_with_parents_names_states_users_and_command_lines()
    {
        var ours = _machine.GetProcesses().ToDictionary(p => p.Pid);

        foreach (var expected in _oracle.Processes.Where(p => !p.Name.StartsWith("kworker", StringComparison.Ordinal)))
        {
            Assert.That(ours.TryGetValue((ulong)expected.Pid, out var process), $"pid {expected.Pid} ({expected.Name})");
            Assert.That((process!.ParentPid, process.Name, process.Info.StateText?[0], process.Info.Uid, process.IsKernelThread),
                Is.EqualTo(((ulong)expected.ParentPid, expected.Name, (char?)expected.State, (uint?)expected.Uid, expected.KernelThread)), $"pid {expected.Pid}");
            if (!expected.KernelThread && expected.State != 'Z')
                Assert.That(process.CommandLine, Is.EqualTo(expected.CommandLine), $"pid {expected.Pid}");
        }
    }

    [Test]
    public void Processes_are_found_by_pid_by_name_and_by_their_long_name()
    {
        var roles = _oracle.Roles;

        Assert.That(_machine.Process((ulong)roles["memtest-alpha"]).Name, Is.EqualTo("memtest-alpha"));
        Assert.That(_machine.GetProcess("memtest-alpha")!.Pid, Is.EqualTo((ulong)roles["memtest-alpha"]));
        Assert.That(_machine.GetProcess("memtest-with-a-very-long-name")!.Pid, Is.EqualTo((ulong)_oracle.Memtests.First(m => m.Name == "gamma").Pid));
        Assert.That(_machine.GetProcesses("memtest-tree"), Has.Count.EqualTo(3));
        Assert.That(_machine.GetProcess((ulong)roles["zombie"])!.State, Is.EqualTo(ProcessState.Zombie));
        Assert.That(_machine.GetProcess((ulong)roles["stopped"])!.State, Is.EqualTo(ProcessState.Stopped));
    }

    [Test]
    public void Every_memtest_buffer_reads_back_whole_through_process_memory()
    {
        foreach (var report in _oracle.Memtests)
        {
            var memory = _machine.Process((ulong)report.Pid).Memory;
            foreach (var buffer in report.Buffers)
            {
                var bytes = memory.Read(buffer.Address, buffer.Length);
                Assert.That(bytes, Has.Length.EqualTo(buffer.Length), $"memtest {report.Name} {buffer.Kind} at 0x{buffer.Address:x}");
                Assert.That(MemtestPattern.Fnv1a64(bytes), Is.EqualTo(buffer.Fnv1a64), $"memtest {report.Name} {buffer.Kind}");
            }
        }
    }

    [Test]
    public void Typed_reads_and_strings_of_a_process_are_its_values()
    {
        var heap = Alpha.Buffer("heap");
        var expected = Alpha.ExpectedContents("heap");
        var memory = _machine.Process((ulong)Alpha.Pid).Memory;

        Assert.That(memory.TryRead<ulong>(heap.Address + 32, out var value) && value == BitConverter.ToUInt64(expected, 32));
        Assert.That(memory.ReadString(heap.Address), Is.EqualTo(Encoding.ASCII.GetString(expected, 0, 32).TrimEnd('\0')));
        Assert.That(memory.TryRead<ulong>(0x10, out _), Is.False, "page zero is never mapped");
    }

    [Test]
    public void A_scatter_read_of_every_buffer_start_is_one_batch_that_gives_each_first_64_bytes()
    {
        var memory = _machine.Process((ulong)Alpha.Pid).Memory;
        var scatter = memory.CreateScatter();
        foreach (var buffer in Alpha.Buffers)
            scatter.Prepare(buffer.Address, 64);
        scatter.Prepare(0x1000, 64);
        scatter.Execute();

        foreach (var buffer in Alpha.Buffers)
            Assert.That(scatter.Read(buffer.Address, 64), Is.EqualTo(buffer.First64), buffer.Kind);
        Assert.That(scatter.Read(0x1000, 64), Is.Null);
        scatter.Clear();
        Assert.That(scatter.PageCount, Is.Zero);
    }

    [Test]
    public void Virtual_to_physical_lands_on_the_buffers_bytes_in_physical_memory()
    {
        var memory = _machine.Process((ulong)Alpha.Pid).Memory;
        foreach (var buffer in Alpha.Buffers)
        {
            Assert.That(memory.TryVirtualToPhysical(buffer.Address, out var physical), buffer.Kind);
            int inPage = (int)Math.Min(64, 4096 - (buffer.Address & 0xfff));
            Assert.That(_machine.Memory.Read(physical, inPage), Is.EqualTo(buffer.First64.AsSpan(0, inPage).ToArray()), buffer.Kind);
        }
    }

    [Test]
    public void Memory_areas_are_the_guests_proc_maps()
    {
        foreach (var report in _oracle.Memtests)
        {
            var areas = _machine.Process((ulong)report.Pid).GetMemoryAreas();
            var expected = _oracle.Maps(report.Pid);
            Assert.That(areas.Select(a => (a.Start, a.End, a.Permissions, a.Offset, a.Path ?? "")),
                Is.EqualTo(expected.Select(m => (m.Start, m.End, m.Permissions, m.Offset, m.Path))), $"memtest {report.Name}");
            Assert.That(_machine.Process((ulong)report.Pid).FindArea(report.Buffer("heap").Address)!.Path, Is.EqualTo("[heap]"));
        }
    }

    [Test]
    public void Modules_are_the_files_mapped_into_the_process_the_executable_first()
    {
        var process = _machine.Process((ulong)Alpha.Pid);
        var modules = process.GetModules();
        var maps = _oracle.Maps(Alpha.Pid).Where(m => m.Path.StartsWith('/')).GroupBy(m => m.Path).ToList();

        Assert.That(modules.Select(m => m.Path), Is.EquivalentTo(maps.Select(g => g.Key)));
        Assert.That(modules[0].Path, Is.EqualTo("/bin/memtest"));
        Assert.That(modules[0].Base, Is.EqualTo(maps.First(g => g.Key == "/bin/memtest").Min(m => m.Start)));
        Assert.That(process.GetModule("memtest")!.Path, Is.EqualTo("/bin/memtest"));
        Assert.That(process.Memory.Read(modules[0].Base, 4), Is.EqualTo("\u007fELF"u8.ToArray()));
    }

    [Test]
    public void Physical_memory_holds_the_guests_marker_and_searches_find_it_and_read_it_back()
    {
        var marker = _oracle.Lines("marker")[0];
        var hits = _machine.Memory.Search(BytePattern.FromText(marker));

        Assert.That(hits, Is.Not.Empty);
        foreach (var hit in hits)
            Assert.That(Encoding.ASCII.GetString(_machine.Memory.Read(hit, marker.Length)), Is.EqualTo(marker));
        var wildcard = BytePattern.Parse(Convert.ToHexString(Encoding.ASCII.GetBytes(marker[..12])) + " ?? ??");
        Assert.That(_machine.Memory.Search(wildcard), Is.SupersetOf(hits));
        Assert.That(_machine.Memory.Map.Select(r => (r.Base, r.Size)), Is.EqualTo(new[] { (0UL, Guest.LowRamBytes) }));
        Assert.That(_machine.Maps.PhysicalMemoryMap, Is.EqualTo(_machine.Memory.Map));
    }

    [Test]
    public void Physical_reads_take_memprocfs_flags_zero_padding_past_the_end()
    {
        var buffer = new byte[8192];
        ulong last = Guest.LowRamBytes - 4096;
        Assert.That(_machine.Memory.Read(last, buffer), Is.EqualTo(4096));
        Assert.That(_machine.Memory.Read(last, buffer, MemoryFlags.ZeroPadOnFail | MemoryFlags.NoCache), Is.EqualTo(8192));
        Assert.That(buffer.AsSpan(4096).ContainsAnyExcept((byte)0), Is.False);
        Assert.That(_machine.Memory.TryRead<uint>(Guest.LowRamBytes, out _), Is.False);
        var physicalScatter = _machine.Memory.CreateScatter(MemoryFlags.NoCache);
        physicalScatter.Prepare(0x1000, 16);
        physicalScatter.Execute();
        Assert.That(physicalScatter.Read(0x1000, 16), Is.EqualTo(_machine.Memory.Read(0x1000, 16)));
        Assert.Throws<NotSupportedException>(() => _machine.Memory.Write(0x1000, "x"u8), "a dump is read-only");
        Assert.Throws<NotSupportedException>(() => _machine.Process((ulong)Alpha.Pid).Memory.Write(Alpha.Buffer("heap").Address, "x"u8));
    }

    [Test]
    public void Hex_shows_the_buffer_header_in_memprocfs_layout()
    {
        var heap = Alpha.Buffer("heap");
        var hex = _machine.Process((ulong)Alpha.Pid).Memory.Hex(heap.Address, 32);

        Assert.That(hex, Is.EqualTo(Machine.Hex(heap.First64.AsSpan(0, 32), heap.Address)));
        Assert.That(hex.Split('\n')[0], Does.EndWith($"MEMTEST/heap/{Alpha.Pid}/alpha"[..16]));
        Assert.That(hex, Does.StartWith($"{heap.Address:x8}    4d 45 4d 54 45 53 54 2f  68 65 61 70 2f "));
    }

    [Test]
    public void The_kernel_is_the_guests_version_symbols_and_types_and_its_memory_reads()
    {
        var kernel = _machine.Kernel;
        Assert.That(kernel.Version, Is.EqualTo(_oracle.Version));
        foreach (var (name, address) in _oracle.Symbols.Where(s => !s.Key.StartsWith("kallsyms_", StringComparison.Ordinal)))
            Assert.That(kernel.Symbols.TryGetSymbolAddress(name, out var found) ? found : 0, Is.EqualTo(address), name);
        ulong initTask = _oracle.Symbols["init_task"];
        Assert.That(kernel.Symbols.TryGetSymbolName(initTask + 0x10, out var symbol, out var displacement));
        Assert.That((symbol, displacement), Is.EqualTo(("init_task", 0x10UL)));
        Assert.That(kernel.Memory.ReadString(_oracle.Symbols["linux_banner"], 512)!.TrimEnd('\n'), Is.EqualTo(_oracle.Version));

        // BTF's offsets, checked against the guest: each task's pid sits at task_struct.pid.
        Assert.That(kernel.Symbols.TryGetTypeSize("task_struct", out var size) && size > 0x1000);
        Assert.That(kernel.Symbols.TryGetFieldOffset("task_struct", "pid", out var pidOffset));
        foreach (var process in _machine.GetProcesses().Take(20))
            Assert.That(kernel.Memory.TryRead<int>(process.Info.KernelObject + pidOffset, out var pid) ? pid : -1, Is.EqualTo((int)process.Pid));
        Assert.That(kernel.Symbols.TryGetFieldOffset("task_struct", "no_such_field", out _), Is.False);
    }

    [Test]
    public void Kernel_modules_are_the_guests_proc_modules()
    {
        var modules = _machine.Maps.GetKernelModules();
        Assert.That(modules.IsAvailable);
        Assert.That(modules.Select(m => (m.Name, m.Base)), Is.EquivalentTo(_oracle.Modules.Select(m => (m.Name, m.Address))));
        Assert.That(_machine.Kernel.GetModules().Select(m => m.Name), Is.EquivalentTo(_oracle.Modules.Select(m => m.Name)));
    }

    [Test]
    public void Users_are_the_uids_of_the_guests_processes()
    {
        var users = _machine.Maps.GetUsers();
        var expected = _oracle.Processes.Where(p => !p.Name.StartsWith("kworker", StringComparison.Ordinal)).GroupBy(p => (uint)p.Uid);

        Assert.That(users.IsAvailable);
        foreach (var group in expected)
        {
            var user = users.Single(u => u.Uid == group.Key);
            Assert.That(user.Pids, Is.SupersetOf(group.Select(p => (ulong)p.Pid)), $"uid {group.Key}");
        }
        Assert.That(users.Select(u => u.Uid), Is.EquivalentTo(new uint[] { 0, 1000, 1001, 65534 }));
    }

    [Test]
    public void Sockets_and_virtual_machines_are_reachable_and_this_guest_has_none()
    {
        // The guest runs no network and no QEMU: the walks must succeed (types found) and find nothing.
        var sockets = _machine.Maps.GetSockets();
        Assert.That(sockets.IsAvailable, sockets.UnavailableReason);
        Assert.That(sockets, Is.Empty);
        var vms = _machine.Maps.GetVirtualMachines();
        Assert.That(vms.IsAvailable);
        Assert.That(vms, Is.Empty);
    }

    [Test]
    public void Configuration_and_refresh_take_effect()
    {
        var before = _machine.GetProcesses();
        _machine.Config.Set(MachineConfig.RefreshPeriodKey, 0);
        Assert.That(_machine.GetProcesses(), Is.SameAs(before));
        _machine.Refresh();
        var after = _machine.GetProcesses();
        Assert.That(after, Is.Not.SameAs(before));
        Assert.That(after.Select(p => p.Pid), Is.EqualTo(before.Select(p => p.Pid)), "a dump does not change");

        _machine.Config.Set(MachineConfig.CachePagesKey, 1024);
        var heap = Alpha.Buffer("heap");
        _machine.Process((ulong)Alpha.Pid).Memory.TryVirtualToPhysical(heap.Address, out var physical);
        _machine.Memory.Read(physical, 64);
        Assert.That(_machine.Memory.Read(physical, 64, MemoryFlags.ForceCache), Is.EqualTo(heap.First64));
        Assert.That(_machine.Config.Get(MachineConfig.CacheHitsKey), Is.GreaterThan(0UL));
        _machine.Config.Set(MachineConfig.CachePagesKey, 0);
        _machine.Config.Set(MachineConfig.RefreshPeriodKey, 5000);
    }

    [Test]
    public void A_named_chain_from_plugins_json_opens_the_same_machine()
    {
        var folder = Directory.CreateTempSubdirectory("introspect-facade-").FullName;
        try
        {
            var config = Path.Combine(folder, "plugins.json");
            File.WriteAllText(config, $$"""{ "chains": { "kaslr": {{System.Text.Json.JsonSerializer.Serialize(ChainOf(Guest))}} } }""");
            using var named = Machine.Open("@kaslr", new MachineOptions { ConfigurationFile = config });

            Assert.That(named.Kernel.Version, Is.EqualTo(_oracle.Version));
            Assert.That(named.Chain!.Plugins.Select(p => p.Name), Is.EqualTo(new[] { "coredump", "linux" }));
            var missing = Assert.Throws<PluginException>(() => Machine.Open("@nothing", new MachineOptions { ConfigurationFile = config }))!;
            Assert.That(missing.Message, Does.Contain("@nothing").And.Contain("@kaslr"));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Test]
    public void A_machine_opens_over_a_chain_already_opened_and_leaves_it_open_when_asked()
    {
        var pluginFolder = Path.Combine(AppContext.BaseDirectory, "plugins");
        using var host = new PluginHost(PluginCatalog.Scan([pluginFolder]));
        using var chain = host.Open(Introspect.Core.Chains.ChainSpec.Parse(ChainOf(Guest)));

        using (var machine = Machine.Open(chain, new MachineOptions { LeaveOpen = true }))
            Assert.That(machine.GetProcess((ulong)Alpha.Pid)!.Name, Is.EqualTo("memtest-alpha"));
        Assert.That(chain.OperatingSystem!.GetProcess((ulong)Alpha.Pid), Is.Not.Null, "still open");

        using var layers = Machine.Open(chain.PhysicalMemory, chain.OperatingSystem, new MachineOptions { LeaveOpen = true });
        Assert.That(layers.Kernel.Version, Is.EqualTo(_oracle.Version));
    }

    [Test]
    public void The_per_process_core_file_is_accepted_by_readelf()
    {
        var folder = Directory.CreateTempSubdirectory("introspect-core-").FullName;
        try
        {
            var path = Path.Combine(folder, "core.elf");
            using (var file = File.Create(path))
                _machine.Process((ulong)Alpha.Pid).WriteCoreFile(file);
            var (exit, output, error) = Run("readelf", "-h", "-l", "-n", path);

            Assert.That(exit, Is.Zero, error);
            Assert.That(error, Is.Empty, "readelf warns about nothing");
            Assert.That(output, Does.Contain("CORE (Core file)").And.Contain("NT_PRPSINFO").And.Contain("NT_FILE"));
            Assert.That(output.Split('\n').Count(l => l.TrimStart().StartsWith("LOAD", StringComparison.Ordinal)), Is.EqualTo(_machine.Process((ulong)Alpha.Pid).GetMemoryAreas().Count));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    internal static (int ExitCode, string Output, string Error) Run(string program, params string[] arguments)
    {
        using var process = Process.Start(new ProcessStartInfo(program, arguments) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(60_000))
        {
            process.Kill();
            Assert.Fail($"{program} did not finish within 60 s");
        }
        return (process.ExitCode, output.Result, error.Result);
    }
}
