using Introspect.Core;
using Introspect.Core.Plugins;
using Introspect.TestSupport;

namespace Introspect.Connectors.Qemu.Tests;

/// <summary>
/// A guest inside a running guest: the fixtures' outer guest booted here under QEMU, its init restoring the inner guest in a
/// real <c>qemu-system-x86_64</c>; then <c>native -&gt; qemu:name=OUTER,freeze=on -&gt; linux -&gt; qemu:name=inner -&gt; linux</c>
/// reads the inner guest's processes from the running machine, through the outer QEMU's memory and the outer kernel's
/// page tables of the inner QEMU.
/// </summary>
/// <remarks>
/// The inner guest is restored, paused, from the state the fixture saved, so its ground truth is the fixture's. The outer
/// guest runs until the chain opens and is paused (<c>freeze=on</c>) while it is open.
/// </remarks>
[NonParallelizable]
public sealed class NestedLiveTests
{
    private NestedOuterGuest _guest = null!;
    private Machine _outer = null!;
    private Machine _inner = null!;
    private GuestOracle _innerOracle = null!;

    private static MachineOptions Options => new() { Configuration = PluginConfiguration.Empty };

    [OneTimeSetUp]
    public void Boot()
    {
        _innerOracle = NestedGuest.InnerOracle;
        // The outer guest is ready in about 20 s alone under TCG, in two minutes on a machine other builds keep busy.
        _guest = NestedOuterGuest.Boot(TimeSpan.FromMinutes(4));
        _inner = Machine.Open($"native -> qemu:name={_guest.Name},freeze=on -> linux -> qemu:name={NestedGuest.InnerName} -> linux", Options);
        // The outer guest stays paused while the first chain is open: this one sees the same moment.
        _outer = Machine.Open($"native -> qemu:name={_guest.Name} -> linux", Options);
    }

    [OneTimeTearDown]
    public void Close()
    {
        _outer?.Dispose();
        _inner?.Dispose();
        _guest?.Dispose();
    }

    [Test]
    public void The_outer_guest_runs_the_inner_qemu_it_printed()
    {
        int pid = _guest.Oracle.Roles[NestedGuest.InnerProcessName];
        var qemu = _outer.Process((ulong)pid);
        Assert.That(qemu.Name, Is.EqualTo(NestedGuest.InnerProcessName));
        Assert.That(qemu.Info.Arguments, Is.EqualTo(_guest.Oracle.Lines("inner-cmdline")));
        var ram = _guest.Oracle.Maps(pid).Single(m => m.End - m.Start == NestedGuest.InnerRamBytes && m.Permissions == "rw-p" && m.Path.Length == 0);
        Assert.That(qemu.GetMemoryAreas().Select(a => (a.Start, a.End)), Has.Member((ram.Start, ram.End)));
    }

    [Test]
    public void The_nested_chain_lists_the_inner_guests_processes_as_its_proc_printed_them()
    {
        NestedComparison.AssertSameProcesses(_inner.OperatingSystem!.GetProcesses(), _innerOracle);
    }

    [Test]
    public void The_inner_memtest_buffers_read_back_through_three_layers()
    {
        NestedComparison.AssertMemtestBuffers(_inner.OperatingSystem!, _innerOracle);
    }
}
