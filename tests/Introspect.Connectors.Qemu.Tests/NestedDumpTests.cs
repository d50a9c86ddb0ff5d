using System.Globalization;
using Introspect.Abi;
using Introspect.Core;
using Introspect.Core.Plugins;
using Introspect.TestSupport;

namespace Introspect.Connectors.Qemu.Tests;

/// <summary>
/// A guest inside a guest, from a dump of the outer one: <c>coredump -&gt; linux -&gt; qemu:name=inner -&gt; linux</c> reaches the
/// processes of a Linux guest run by a real <c>qemu-system-x86_64</c> inside the dumped Linux guest, whose RAM lies scattered
/// over the outer guest's frames as the inner QEMU's anonymous mapping.
/// </summary>
/// <remarks>
/// The inner guest printed its ground truth on the host, was paused and saved there, and restored inside the outer guest,
/// where it stayed paused: its RAM is that moment's, but for init's next <c>sleep</c>. The outer guest ran until it printed
/// its own ground truth just before the dump.
/// </remarks>
[NonParallelizable]
public sealed class NestedDumpTests
{
    private Machine _outer = null!;
    private Machine _inner = null!;
    private GuestOracle _innerOracle = null!;
    private GuestOracle _outerOracle = null!;

    private static string OuterChain => $"coredump:path=\"{NestedGuest.OuterElf}\" -> linux";

    private static MachineOptions Options => new() { Configuration = PluginConfiguration.Empty };

    private int InnerQemuPid => _outerOracle.Roles[NestedGuest.InnerProcessName];

    [OneTimeSetUp]
    public void Open()
    {
        _innerOracle = NestedGuest.InnerOracle;
        _outerOracle = NestedGuest.OuterOracle;
        _outer = Machine.Open(OuterChain, Options);
        _inner = Machine.Open($"{OuterChain} -> qemu:name={NestedGuest.InnerName} -> linux", Options);
    }

    [OneTimeTearDown]
    public void Close()
    {
        _inner?.Dispose();
        _outer?.Dispose();
    }

    [Test]
    public void The_inner_guest_was_restored_in_the_outer_one_paused_as_it_was_saved()
    {
        // Paused on the host after its listing, saved, restored: its RAM is the moment its ground truth describes.
        Assert.That(_outerOracle.Lines("inner-status"), Is.EqualTo(new[] { "{\"return\": {\"status\": \"paused\", \"singlestep\": false, \"running\": false}}" }));
        Assert.That(NestedGuest.OuterFacts["inner-pid"], Is.EqualTo(InnerQemuPid.ToString(CultureInfo.InvariantCulture)));
        Assert.That(_outerOracle.Lines("inner-cmdline"), Is.SupersetOf(new[] { "-incoming", "inner,process=inner-qemu" }));
    }

    [Test]
    public void The_outer_process_list_is_the_outer_guests_proc()
    {
        // The inner QEMU emulated a CPU up to the dump: it may have been running, and its worker threads come and go.
        NestedComparison.AssertSameProcesses(_outer.OperatingSystem!.GetProcesses(), _outerOracle, InnerQemuPid);
    }

    [Test]
    public void The_inner_qemu_has_the_command_line_and_guest_ram_mapping_the_outer_guest_printed()
    {
        var qemu = _outer.Process((ulong)InnerQemuPid);
        Assert.That(qemu.Name, Is.EqualTo(NestedGuest.InnerProcessName));
        Assert.That(qemu.Path, Is.EqualTo("/usr/bin/qemu-system-x86_64"));
        Assert.That(qemu.Info.Arguments, Is.EqualTo(_outerOracle.Lines("inner-cmdline")));

        var printed = _outerOracle.Maps(InnerQemuPid);
        var ram = printed.Where(m => m.End - m.Start == NestedGuest.InnerRamBytes && m.Permissions == "rw-p" && m.Path.Length == 0 && m.Inode == 0).ToList();
        Assert.That(ram, Has.Count.EqualTo(1), "one anonymous read-write mapping of the inner guest's RAM size");
        var areas = qemu.GetMemoryAreas().Select(a => (a.Start, a.End, a.Permissions, a.Path ?? "")).ToList();
        Assert.That(areas, Has.Member((ram[0].Start, ram[0].End, "rw-p", "")), "the inner guest's RAM, where the outer guest saw it");
        // Mappings of files do not change while QEMU runs (its heap and thread stacks may).
        foreach (var file in printed.Where(m => m.Path.StartsWith('/')))
            Assert.That(areas, Has.Member((file.Start, file.End, file.Permissions, file.Path)), $"{file.Path} at 0x{file.Start:x}");
    }

    [Test]
    public void The_inner_kernel_is_the_one_the_inner_guest_printed()
    {
        Assert.That(_inner.OperatingSystem!.Info.Name, Is.EqualTo("linux"));
        Assert.That(_inner.OperatingSystem.Info.Version, Is.EqualTo(_innerOracle.Version));
        Assert.That(_inner.Memory.Metadata.RealSize, Is.EqualTo(NestedGuest.InnerRamBytes).Within(1UL << 20), "the inner guest's RAM, less the VGA hole at most");
    }

    [Test]
    public void The_nested_chain_lists_the_inner_guests_processes_as_its_proc_printed_them()
    {
        NestedComparison.AssertSameProcesses(_inner.OperatingSystem!.GetProcesses(), _innerOracle);
        var roles = _innerOracle.Roles;
        Assert.That(_inner.Process((ulong)roles["memtest-inner"]).Name, Is.EqualTo("memtest-inner"));
        Assert.That(_inner.Process((ulong)roles["worker-child"]).ParentPid, Is.EqualTo((ulong)roles["worker"]));
    }

    [Test]
    public void The_inner_memtest_buffers_read_back_through_both_guests()
    {
        NestedComparison.AssertMemtestBuffers(_inner.OperatingSystem!, _innerOracle);
    }

    [Test]
    public void The_inner_memtest_maps_are_its_proc_maps()
    {
        var report = _innerOracle.Memtests.Single();
        var process = _inner.Process((ulong)report.Pid);
        var expected = _innerOracle.Maps(report.Pid).Select(m => $"{m.Start:x8}-{m.End:x8} {m.Permissions} {m.Offset:x8} {m.Path}".TrimEnd());
        Assert.That(process.GetMemoryAreas().Select(a => $"{a.Start:x8}-{a.End:x8} {a.Permissions} {a.Offset:x8} {a.Path}".TrimEnd()), Is.EqualTo(expected));
        Assert.That(process.Info.Environment, Is.EqualTo(_innerOracle.Environment(report.Pid)));
    }

    [Test]
    public void The_inner_ram_found_at_a_given_map_base_gives_the_same_guest()
    {
        var ram = _outerOracle.Maps(InnerQemuPid).Single(m => m.End - m.Start == NestedGuest.InnerRamBytes && m.Permissions == "rw-p" && m.Path.Length == 0);
        using var inner = Machine.Open($"{OuterChain} -> qemu:name={NestedGuest.InnerName},map_base=0x{ram.Start:x},map_size={NestedGuest.InnerRamBytes} -> linux", Options);
        Assert.That(inner.GetProcesses().Select(p => (p.Pid, p.Name)), Is.EqualTo(_inner.GetProcesses().Select(p => (p.Pid, p.Name))));
    }

    [Test]
    public void Freezing_a_qemu_inside_another_machine_is_refused()
    {
        // QMP sockets on the inner QEMU's command line are paths inside the outer guest: nothing here can pause it.
        var error = Assert.Throws<PluginArgumentException>(() => Machine.Open($"{OuterChain} -> qemu:name={NestedGuest.InnerName},freeze=on -> linux", Options).Dispose());
        Assert.That(error!.Message, Does.Contain("freeze=on"));
    }

    [Test]
    public void A_guest_name_no_qemu_in_the_outer_guest_runs_is_refused_naming_those_that_run()
    {
        var error = Assert.Catch(() => Machine.Open($"{OuterChain} -> qemu:name=nosuch -> linux", Options).Dispose());
        Assert.That(error, Is.InstanceOf<PluginArgumentException>().Or.InstanceOf<PluginException>());
        Assert.That(error!.ToString(), Does.Contain("nosuch").And.Contain($"'{NestedGuest.InnerName}'"));
    }
}
