using System.Diagnostics;
using System.Globalization;
using NUnit.Framework;

namespace Introspect.TestSupport;

/// <summary>
/// The fixtures' nested guests (step <c>nested</c> of <c>tests/fixtures/build.sh</c>): an inner Linux guest, booted on the host,
/// printed its ground truth and was paused and saved with QEMU's <c>migrate</c>; an outer Linux guest runs Debian's own
/// <c>qemu-system-x86_64</c>, which restored the inner guest from that state (<c>-incoming</c>), and was dumped.
/// </summary>
/// <remarks>
/// Every copy of the inner guest restores the one saved state and stays paused, as it was saved: its oracle is the ground
/// truth for the dump and for an outer guest booted live (<see cref="NestedOuterGuest"/>) alike. Only processes started
/// after the listing (init's next <c>sleep</c>) may be added.
/// </remarks>
public static class NestedGuest
{
    /// <summary>The inner guest's <c>-name</c>, which its QEMU inside the outer guest runs under.</summary>
    public const string InnerName = "inner";

    /// <summary>The inner QEMU's process name in the outer guest (<c>-name inner,process=inner-qemu</c>).</summary>
    public const string InnerProcessName = "inner-qemu";

    /// <summary>The inner guest's RAM size (QEMU's <c>-m</c> inside the outer guest).</summary>
    public const ulong InnerRamBytes = 128UL << 20;

    /// <summary>QEMU's <c>dump-guest-memory</c> (<c>paging=false</c>) of the outer guest, while the inner guest ran in it.</summary>
    public static string OuterElf => TestInputs.Fixture("nested-outer.elf");

    /// <summary>The inner guest's ground truth (sections <c>version</c>, <c>roles</c>, <c>memtest PID</c>, <c>maps PID</c>, <c>ps</c>, <c>threads</c>, <c>processes</c>).</summary>
    public static GuestOracle InnerOracle => GuestOracle.Load(TestInputs.Fixture("nested-inner-oracle.txt"));

    /// <summary>
    /// The outer guest's ground truth at the dump: <c>roles</c> (<c>inner-qemu PID</c>), <c>inner-status</c>, <c>inner-cmdline</c>
    /// (one argument a line), <c>maps PID</c> of the inner QEMU, <c>ps</c>, <c>threads</c>, <c>processes</c>.
    /// </summary>
    public static GuestOracle OuterOracle => GuestOracle.Load(TestInputs.Fixture("nested-outer-oracle.txt"));

    /// <summary>The outer guest's kernel (the same Debian kernel as every fixture guest).</summary>
    public static string OuterKernel => TestInputs.Fixture("nested-vmlinuz");

    /// <summary>The outer guest's initramfs: QEMU, its libraries and firmware, the inner guest's kernel, initramfs and saved state.</summary>
    public static string OuterInitramfs => TestInputs.Fixture("nested-outer-initramfs.cpio.lz4");

    /// <summary><c>key value</c> lines about the outer guest: <c>machine</c>, <c>ram-bytes</c>, <c>cmdline</c>, <c>inner-pid</c>, ...</summary>
    public static IReadOnlyDictionary<string, string> OuterFacts =>
        File.ReadLines(TestInputs.Fixture("nested-outer-kernel.txt"))
            .Select(line => line.Split(' ', 2))
            .Where(pair => pair.Length == 2)
            .ToDictionary(pair => pair[0], pair => pair[1], StringComparer.Ordinal);
}

/// <summary>
/// The fixtures' outer guest booted live under QEMU (software emulation) as a child of the test: once its init has restored
/// the inner guest and printed its ground truth, a chain can reach the inner guest through it. QEMU is killed on dispose.
/// </summary>
public sealed class NestedOuterGuest : IDisposable
{
    private readonly Process _qemu;
    private readonly string _folder;
    private readonly System.Text.StringBuilder _errors = new();

    private NestedOuterGuest(Process qemu, string folder, string name)
    {
        _qemu = qemu;
        _folder = folder;
        Name = name;
    }

    /// <summary>The outer guest's <c>-name</c>: unique to this test process, so that runs side by side find their own.</summary>
    public string Name { get; }

    /// <summary>The QEMU process's id.</summary>
    public int Pid => _qemu.Id;

    /// <summary>The QMP socket on the QEMU command line.</summary>
    public string QmpSocket => Path.Combine(_folder, "qmp.sock");

    /// <summary>The serial console as written so far, <c>\r</c> removed.</summary>
    public string SerialText => ReadShared(Path.Combine(_folder, "serial.txt")).Replace("\r", "", StringComparison.Ordinal);

    /// <summary>The ground truth the outer guest printed after restoring the inner guest (available once <see cref="Boot"/> returned).</summary>
    public GuestOracle Oracle { get; private set; } = null!;

    /// <summary>Boots the outer guest and waits until it has printed its ground truth, failing the test with the console's tail after <paramref name="timeout"/>.</summary>
    public static NestedOuterGuest Boot(TimeSpan timeout)
    {
        var facts = NestedGuest.OuterFacts;
        string kernel = NestedGuest.OuterKernel, initramfs = NestedGuest.OuterInitramfs;
        string folder = Directory.CreateTempSubdirectory("introspect-nested-").FullName;
        string name = string.Create(CultureInfo.InvariantCulture, $"nested-outer-{Environment.ProcessId}");
        ulong ram = ulong.Parse(facts["ram-bytes"], CultureInfo.InvariantCulture);
        var start = new ProcessStartInfo("qemu-system-x86_64")
        {
            RedirectStandardInput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in (string[])[
            "-accel", "tcg", "-name", name, "-machine", facts["machine"], "-m", string.Create(CultureInfo.InvariantCulture, $"{ram >> 20}M"), "-smp", "1",
            "-kernel", kernel, "-initrd", initramfs, "-append", facts["cmdline"],
            "-display", "none", "-monitor", "none", "-nic", "none", "-no-reboot",
            "-serial", "file:" + Path.Combine(folder, "serial.txt"), "-device", "vmcoreinfo",
            "-qmp", $"unix:{Path.Combine(folder, "qmp.sock")},server=on,wait=off"])
        {
            start.ArgumentList.Add(argument);
        }
        Process qemu;
        try
        {
            qemu = Process.Start(start) ?? throw new InvalidOperationException("qemu-system-x86_64 did not start.");
        }
        catch
        {
            Directory.Delete(folder, recursive: true);
            throw;
        }
        var guest = new NestedOuterGuest(qemu, folder, name);
        qemu.ErrorDataReceived += (_, line) =>
        {
            lock (guest._errors)
                guest._errors.AppendLine(line.Data);
        };
        qemu.BeginErrorReadLine();
        try
        {
            guest.WaitUntilReady(timeout);
            return guest;
        }
        catch
        {
            guest.Dispose();
            throw;
        }
    }

    private void WaitUntilReady(TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            string serial = SerialText;
            if (serial.Contains("FIXTURE-ERROR", StringComparison.Ordinal))
                Assert.Fail($"The outer guest reported errors:\n{Tail(serial)}");
            if (serial.Contains("\nFIXTURE-READY", StringComparison.Ordinal))
            {
                Oracle = GuestOracle.Parse(serial.Split('\n'), $"the serial console of {Name}");
                return;
            }
            if (_qemu.HasExited)
            {
                _qemu.WaitForExit();
                lock (_errors)
                    Assert.Fail($"QEMU exited ({_qemu.ExitCode}) before the outer guest was ready: {_errors}\n{Tail(serial)}");
            }
            if (clock.Elapsed > timeout)
                Assert.Fail($"The outer guest was not ready within {timeout.TotalSeconds:0} s; its console ends:\n{Tail(serial)}");
            Thread.Sleep(200);
        }
    }

    private static string Tail(string text)
    {
        var lines = text.Split('\n');
        return string.Join('\n', lines.Skip(Math.Max(0, lines.Length - 30)));
    }

    private static string ReadShared(string path)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd();
        }
        catch (FileNotFoundException)
        {
            return "";
        }
    }

    /// <summary>Kills QEMU and removes its folder (socket, console).</summary>
    public void Dispose()
    {
        try
        {
            if (!_qemu.HasExited)
            {
                _qemu.Kill(entireProcessTree: true);
                _qemu.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
            // It ended on its own between the check and the kill.
        }
        _qemu.Dispose();
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
            // A socket QEMU had not yet removed: the temporary folder is left to the system.
        }
    }
}
