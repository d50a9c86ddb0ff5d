using Introspect.Abi;
using Introspect.Core.Memory;
using Introspect.TestSupport;

namespace Introspect.Connectors.Qemu.Tests;

/// <summary>A process list against the <c>processes</c> table a guest printed from its own <c>/proc</c>, the way the Linux layer's own tests compare.</summary>
internal static class NestedComparison
{
    /// <summary>
    /// Every process of the table is in the list with its parent, name, state, uid, thread count, kind, executable, command line
    /// and start time; the list holds no other process up to the table's last pid.
    /// </summary>
    /// <param name="processes">What the OS layer listed.</param>
    /// <param name="oracle">The guest's ground truth.</param>
    /// <param name="busy">Pids that ran on between the listing and the read (a QEMU emulating a guest): their state and thread count are not compared.</param>
    /// <remarks>kworkers may come and go, and <c>/proc</c> appends the workqueue they last served to their names, which <c>task_struct.comm</c> does not hold.</remarks>
    public static void AssertSameProcesses(IReadOnlyList<ProcessInfo> processes, GuestOracle oracle, params int[] busy)
    {
        var expected = oracle.Processes;
        var byPid = processes.ToDictionary(p => p.Pid);
        Assert.That(byPid.ContainsKey(1), Is.True, "init (pid 1) is listed");
        var init = byPid[1];
        ulong initTicks = expected.Single(p => p.Pid == 1).StartTicks;
        foreach (var row in expected)
        {
            bool kworker = row.Name.StartsWith("kworker/", StringComparison.Ordinal);
            string what = $"pid {row.Pid} ({row.Name})";
            if (!byPid.TryGetValue((ulong)row.Pid, out var process))
            {
                Assert.That(kworker, $"{what} is missing");
                continue;
            }
            Assert.That(process.ParentPid, Is.EqualTo((ulong)row.ParentPid), what);
            Assert.That(StableName(process.Name), Is.EqualTo(StableName(row.Name)), what);
            if (!kworker)
                Assert.That(process.Name, Is.EqualTo(row.Name), what);
            if (!busy.Contains(row.Pid))
            {
                Assert.That(process.StateText, Is.EqualTo(row.State.ToString()), what);
                Assert.That(process.ThreadCount, Is.EqualTo(row.Threads), what);
            }
            Assert.That(process.Uid, Is.EqualTo((uint)row.Uid), what);
            Assert.That(process.IsKernelThread, Is.EqualTo(row.KernelThread), what);
            Assert.That(process.Path ?? "", Is.EqualTo(row.ExecutablePath), what);
            Assert.That(process.CommandLine ?? "", Is.EqualTo(row.CommandLine), what);
            // /proc gives start times in whole clock ticks (100 a second) since boot: compare them relative to init.
            double ticks = (process.StartTime!.Value - init.StartTime!.Value).TotalSeconds * 100;
            Assert.That(ticks, Is.EqualTo((double)row.StartTicks - initTicks).Within(1.01), what);
        }
        int lastListed = expected.Max(p => p.Pid);
        var unlisted = processes.Where(p => !expected.Any(o => o.Pid == (int)p.Pid));
        Assert.That(unlisted.Where(p => !p.Name.StartsWith("kworker/", StringComparison.Ordinal) && (int)p.Pid <= lastListed).Select(p => $"{p.Pid} {p.Name}"),
            Is.Empty, "every process but kworkers and those started after the listing is in it");
    }

    /// <summary>Every buffer the guest's memtest process reported reads back whole, with its hash and its pattern.</summary>
    public static void AssertMemtestBuffers(IOperatingSystem system, GuestOracle oracle)
    {
        var reports = oracle.Memtests;
        Assert.That(reports, Is.Not.Empty, "the guest runs a memtest process");
        foreach (var report in reports)
        {
            var process = system.GetProcess((ulong)report.Pid);
            Assert.That(process, Is.Not.Null, $"memtest {report.Name}");
            Assert.That(process!.Name, Is.EqualTo(report.Comm));
            var memory = system.OpenProcessMemory(process);
            foreach (var buffer in report.Buffers)
            {
                string what = $"{report.Name} {buffer.Kind} at 0x{buffer.Address:x}";
                var bytes = new byte[buffer.Length];
                Assert.That(memory.Read(buffer.Address, bytes), Is.EqualTo(bytes.Length), what);
                Assert.That(MemtestPattern.Fnv1a64(bytes), Is.EqualTo(buffer.Fnv1a64), what + ": FNV-1a of all bytes");
                Assert.That(bytes.AsSpan().SequenceEqual(report.ExpectedContents(buffer.Kind)), Is.True, what + ": the pattern");
            }
        }
    }

    /// <summary>A kworker's name without the workqueue it served last.</summary>
    public static string StableName(string name)
    {
        if (!name.StartsWith("kworker/", StringComparison.Ordinal))
            return name;
        int cut = name.IndexOfAny(['+', '-'], "kworker/".Length);
        return cut < 0 ? name : name[..cut];
    }
}
