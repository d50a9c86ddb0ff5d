using System.Globalization;
using System.Text.Json;
using Introspect.Abi;
using Introspect.Core;
using Introspect.Core.Plugins;
using Introspect.TestSupport;

namespace Introspect.Connectors.Qemu.Tests;

/// <summary>
/// Real guests running under QEMU while the tests read them: one with anonymous RAM (found through QMP, or without it),
/// one with a shared memory-backend-file. Compared with what the guest's own ps prints at that moment.
/// </summary>
[NonParallelizable]
public sealed class LiveQemuTests
{
    private LiveGuest _anonymous = null!;
    private LiveGuest _file = null!;

    [OneTimeSetUp]
    public void BootGuests()
    {
        string suffix = Guid.NewGuid().ToString("N")[..8];
        var anonymous = Task.Run(() => LiveGuest.Boot($"live-anon-{suffix}"));
        var file = Task.Run(() => LiveGuest.Boot($"live-file-{suffix}", new LiveGuestOptions(MemoryBackendFile: true)));
        try
        {
            Task.WaitAll(anonymous, file);
        }
        catch (AggregateException e) when (e.InnerExceptions.All(i => i is IgnoreException))
        {
            throw e.InnerExceptions[0];
        }
        finally
        {
            if (anonymous.IsCompletedSuccessfully)
                _anonymous = anonymous.Result;
            if (file.IsCompletedSuccessfully)
                _file = file.Result;
        }
    }

    [OneTimeTearDown]
    public void StopGuests()
    {
        _anonymous?.Dispose();
        _file?.Dispose();
    }

    private static string Chain(LiveGuest guest, string extra = "") => $"qemu:name={guest.Name}{extra} -> linux";

    /// <summary>The guest's own <c>ps</c>: pid to comm (as /proc shows it), without the ps process itself.</summary>
    private static Dictionary<ulong, string> GuestPs(LiveGuest guest)
    {
        var lines = guest.Run("ps -o pid,comm");
        var processes = new Dictionary<ulong, string>();
        foreach (var line in lines.Skip(1))
        {
            var fields = line.Trim().Split(' ', 2, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length == 2 && ulong.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out ulong pid) && fields[1].Trim() != "ps")
                processes[pid] = fields[1].Trim();
        }
        Assert.That(processes, Does.ContainKey(1UL), $"the guest's ps printed: {string.Join(" | ", lines)}");
        return processes;
    }

    /// <summary>
    /// Compares our list with the guest's: the same pids, and the same names as /proc/PID/stat gives them (cut to 15
    /// characters; a kworker's name carries the workqueue it last ran, which changes from one moment to the next).
    /// </summary>
    private static void AssertSameProcesses(IReadOnlyList<MachineProcess> ours, Dictionary<ulong, string> guest)
    {
        TestContext.Out.WriteLine("guest: " + string.Join(", ", guest.OrderBy(p => p.Key).Select(p => $"{p.Key}:{p.Value}")));
        TestContext.Out.WriteLine("ours:  " + string.Join(", ", ours.OrderBy(p => p.Pid).Select(p => $"{p.Pid}:{p.Name}")));
        var byPid = ours.ToDictionary(p => p.Pid, p => p.Name);
        Assert.That(byPid.Keys.Order(), Is.EqualTo(guest.Keys.Order()), "the same processes");
        foreach (var (pid, name) in guest)
        {
            var mine = byPid[pid][..Math.Min(15, byPid[pid].Length)];
            if (name.StartsWith("kworker/", StringComparison.Ordinal))
                Assert.That(mine.Split('-')[0], Is.EqualTo(name.Split('-')[0]), $"pid {pid}");
            else
                Assert.That(mine, Is.EqualTo(name), $"pid {pid}");
        }
    }

    [Test]
    public void Anonymous_ram_found_through_qmp_lists_what_the_guests_ps_printed_while_frozen()
    {
        var guestPs = GuestPs(_anonymous);
        var log = new LogCapture();
        using (var machine = Chains.Open(Chain(_anonymous, ",freeze=on"), log))
        {
            Assert.That(_anonymous.IsRunning, Is.False, "freeze=on paused the guest");
            AssertSameProcesses(machine.GetProcesses(), guestPs);
            Assert.That(machine.Chain!.Hints.Live, Is.False, "a frozen guest does not change");
            Assert.That(machine.Chain.Hints.HostProcessId, Is.EqualTo((ulong)_anonymous.Pid));
        }
        Assert.That(_anonymous.IsRunning, Is.True, "closing the chain resumed the guest");
        Assert.That(log.Messages, Has.Some.Contains("layout from info mtree -f").And.Some.Contains("QMP gpa2hva"));
    }

    [Test]
    public void A_memory_backend_file_is_read_through_the_file_and_matches_the_guests_ps()
    {
        var guestPs = GuestPs(_file);
        var log = new LogCapture();
        using (var machine = Chains.Open($"native -> qemu:name={_file.Name},freeze=on -> linux", log))
        {
            AssertSameProcesses(machine.GetProcesses(), guestPs);
            Assert.That(machine.Chain!.Hints.HostProcessId, Is.Null, "the file, not the process, is read");
        }
        Assert.That(log.Messages, Has.Some.Contains($"RAM from the file {_file.RamFile}"));
        Assert.That(_file.IsRunning, Is.True);
    }

    [Test]
    public void Without_qmp_the_ram_sized_mapping_and_the_pc_rules_find_the_guest()
    {
        var log = new LogCapture();
        using (var machine = Chains.Open(Chain(_anonymous, ",qmp=off"), log))
            Assert.That(machine.GetProcess(1)?.Name, Is.EqualTo("sh"));
        Assert.That(log.Messages, Has.Some.Contains("pc rules for 128 MiB").And.Some.Contains("anonymous read-write mapping of the RAM's size"));

        // Without QMP, and with the RAM size given, the backend file on the command line is still mapped directly.
        var fileLog = new LogCapture();
        using (var viaMapping = Chains.Open(Chain(_file, ",qmp=off,map_size=128m"), fileLog))
            Assert.That(viaMapping.GetProcess(1)?.Name, Is.EqualTo("sh"));
        Assert.That(fileLog.Messages, Has.Some.Contains("RAM from the file"));
    }

    [Test]
    public void A_process_started_in_the_guest_appears_after_a_refresh_and_goes_when_killed()
    {
        using var machine = Chains.Open(Chain(_anonymous));
        Assert.That(machine.Chain!.Hints.Live, Is.True);
        Assert.That(machine.GetProcesses().Select(p => p.Name), Does.Not.Contain("livewatch"));
        _anonymous.Run("printf '#!/bin/sh\\nwhile :; do sleep 1; done\\n' > /tmp/livewatch; chmod +x /tmp/livewatch");
        ulong pid = _anonymous.Start("/tmp/livewatch");

        var appeared = WaitUntil(machine, processes => processes.Any(p => p.Pid == pid && p.Name == "livewatch"));
        Assert.That(appeared, Is.True, $"pid {pid} (livewatch) appears after a refresh");

        _anonymous.Run($"kill {pid}; wait {pid}");
        var gone = WaitUntil(machine, processes => processes.All(p => p.Pid != pid));
        Assert.That(gone, Is.True, $"pid {pid} is gone after a refresh");
    }

    /// <summary>Refreshes until the condition holds: the guest runs on under TCG, so its exec or exit takes a moment to land in memory.</summary>
    private static bool WaitUntil(Machine machine, Func<IReadOnlyList<MachineProcess>, bool> condition)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromSeconds(90))
        {
            machine.Refresh();
            if (condition(machine.GetProcesses()))
                return true;
            Thread.Sleep(250);
        }
        return false;
    }

    [Test]
    public void Lists_read_while_the_guest_forks_and_reaps_never_throw_or_hang()
    {
        using var machine = Chains.Open(Chain(_anonymous));
        _anonymous.Start("(for i in $(seq 1 300); do sleep 0 & done; wait) >/dev/null 2>&1");
        for (int i = 0; i < 20; i++)
        {
            machine.Refresh();
            IReadOnlyList<MachineProcess> processes = [];
            Assert.That(() => processes = machine.GetProcesses(), Throws.Nothing);
            Assert.That(processes.Select(p => p.Pid), Does.Contain(1UL));
        }
    }

    [Test]
    public void Cli_ps_read_and_watch_work_on_the_live_chain()
    {
        var ps = CliRun.Of("ps", "--chain", Chain(_file), "--json");
        Assert.That(ps.ExitCode, Is.Zero, ps.ToString());
        using (var json = JsonDocument.Parse(ps.Output))
            Assert.That(json.RootElement.EnumerateArray().Any(p => p.GetProperty("pid").GetUInt64() == 1 && p.GetProperty("name").GetString() == "sh"), Is.True, ps.Output);

        var watch = CliRun.Of("ps", "--chain", Chain(_file), "--watch", "--count", "2", "--interval", "0.1");
        Assert.That(watch.ExitCode, Is.Zero, watch.ToString());
        Assert.That(watch.Output, Does.Contain("--- refresh 1 at").And.Contain("--- refresh 2 at"));
        Assert.That(watch.Output, Does.Not.Contain("--- refresh 3 at"));

        // Physical memory read through the chain equals the RAM file at the same moment (paused so that it holds still).
        _file.Freeze();
        try
        {
            var read = CliRun.Of("read", "--chain", $"qemu:name={_file.Name}", "--phys", "0x1000000", "--length", "4096", "--format", "raw");
            Assert.That(read.ExitCode, Is.Zero, read.ToString());
            var expected = new byte[4096];
            using (var ram = File.OpenRead(_file.RamFile!))
            {
                ram.Position = 0x1000000;
                ram.ReadExactly(expected);
            }
            Assert.That(read.RawOutput, Is.EqualTo(expected));
            Assert.That(expected.Any(b => b != 0), Is.True, "the kernel lives at 16 MiB");
        }
        finally
        {
            _file.Resume();
        }
    }

    [Test]
    public void Cli_read_of_a_process_in_the_live_guest()
    {
        // The shell's environment (the kernel's defaults for init) sits at the top of its stack; read it through its page tables.
        var areas = CliRun.Of("maps", "--chain", Chain(_anonymous), "--pid", "1");
        Assert.That(areas.ExitCode, Is.Zero, areas.ToString());
        var stack = areas.Output.Split('\n').Single(l => l.EndsWith("[stack]", StringComparison.Ordinal));
        var end = stack.Split(' ')[0].Split('-')[1];
        ulong top = ulong.Parse(end, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        var read = CliRun.Of("read", "--chain", Chain(_anonymous), "--pid", "1", "--virt", $"0x{top - 4096:x}", "--length", "4096", "--format", "raw");
        Assert.That(read.ExitCode, Is.Zero, read.ToString());
        Assert.That(System.Text.Encoding.ASCII.GetString(read.RawOutput), Does.Contain("\0PATH=/sbin:/usr/sbin:/bin:/usr/bin\0"), "the top of PID 1's stack holds its environment");
    }

    [Test]
    public void Bench_reports_live_figures_beside_process_vm_readv()
    {
        var bench = CliRun.Of("bench", "--chain", Chain(_anonymous), "--rounds", "3", "--size", "67108864", "--json");
        Assert.That(bench.ExitCode, Is.Zero, bench.ToString());
        TestContext.Out.WriteLine(bench.Output);
        using var json = JsonDocument.Parse(bench.Output);
        var live = json.RootElement.EnumerateArray().Where(f => f.GetProperty("name").GetString()!.StartsWith("live:", StringComparison.Ordinal)).ToList();
        Assert.That(live.Select(f => f.GetProperty("unit").GetString()), Is.EquivalentTo(new[] { "reads/s", "MiB/s", "ms" }));
        Assert.That(live.Select(f => f.GetProperty("value").GetDouble()), Is.All.GreaterThan(0));
    }

    [Test]
    public void Errors_name_what_was_looked_for()
    {
        Assert.That(() => Chains.Open("qemu:name=no-such-guest-anywhere -> linux"),
            Throws.TypeOf<PluginArgumentException>().With.Message.Contains("no QEMU process in native runs a guest named 'no-such-guest-anywhere'").And.Message.Contains(_anonymous.Name));
        Assert.That(() => Chains.Open(Chain(_anonymous, ",freeze=on,qmp=off")),
            Throws.TypeOf<PluginArgumentException>().With.Message.Contains("freeze=on"));
        Assert.That(() => Chains.Open($"qemu:pid={Environment.ProcessId} -> linux"),
            Throws.TypeOf<PluginArgumentException>().With.Message.Contains("is not a QEMU system emulator"));
        Assert.That(() => Chains.Open("qemu -> linux"),
            Throws.TypeOf<PluginArgumentException>().With.Message.Contains("name="));
    }
}
