using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Introspect.TestSupport;

namespace Introspect.Cli.Tests;

/// <summary><c>introspect yara</c>, <c>introspect mount</c> and the bench figures they bring, on the real guests.</summary>
[NonParallelizable]
public class FacadeCommandTests
{
    private static readonly FixtureGuest Guest = TestInputs.LinuxKaslrPc;
    private static string LinuxChain => $"coredump:path=\"{Guest.Raw}\" -> linux";
    private static string RawChain => $"coredump:path=\"{TestInputs.LinuxRawImage}\"";

    private string _scratch = null!;

    [SetUp]
    public void CreateScratch() => _scratch = Directory.CreateTempSubdirectory("introspect-facade-cli-").FullName;

    [TearDown]
    public void DeleteScratch() => Directory.Delete(_scratch, recursive: true);

    private string Rules(string text)
    {
        var path = Path.Combine(_scratch, "rules.yar");
        File.WriteAllText(path, text);
        return path;
    }

    [Test]
    public void Yara_over_physical_memory_finds_what_the_yara_tool_finds_in_the_raw_image()
    {
        var rules = Rules("rule marker { strings: $m = \"MEMFORENSICS_TEST_MARKER_7f3a\" condition: $m }\n");
        var tool = Run("yara", "-s", rules, TestInputs.LinuxRawImage);
        Assert.That(tool.ExitCode, Is.Zero, tool.Error);
        var expected = tool.Output.Split('\n').Where(l => l.StartsWith("0x", StringComparison.Ordinal))
            .Select(l => ulong.Parse(l[2..l.IndexOf(':', StringComparison.Ordinal)], NumberStyles.HexNumber, CultureInfo.InvariantCulture)).ToList();

        var run = CliRun.Of("yara", "--chain", RawChain, "--rules", rules, "--json");

        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        using var json = JsonDocument.Parse(run.Output);
        var matches = json.RootElement.EnumerateArray().ToList();
        Assert.That(matches.Select(m => m.GetProperty("physicalAddress").GetUInt64()), Is.EquivalentTo(expected));
        Assert.That(matches.All(m => m.GetProperty("rule").GetString() == "marker" && m.GetProperty("string").GetString() == "$m"));

        var table = CliRun.Of("yara", "--chain", RawChain, "--rules", rules);
        Assert.That(table.Output, Does.Contain("MEMFORENSICS_TEST_MARKER_7f3a").And.Contain($"{expected.Count} matches"));
    }

    [Test]
    public void Yara_with_a_pid_reports_virtual_and_physical_addresses_and_the_process()
    {
        var alpha = Guest.Oracle.Memtests.First(m => m.Name == "alpha");
        var heap = alpha.Buffer("heap");
        var rules = Rules($"rule heap {{ strings: $h = \"MEMTEST/heap/{alpha.Pid}/alpha\" condition: $h }}\n");

        var run = CliRun.Of("yara", "--chain", LinuxChain, "--rules", rules, "--pid", alpha.Pid.ToString(CultureInfo.InvariantCulture), "--json");

        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        using var json = JsonDocument.Parse(run.Output);
        var match = json.RootElement.EnumerateArray().Single(m => m.GetProperty("virtualAddress").GetUInt64() == heap.Address);
        Assert.That(match.GetProperty("pid").GetUInt64(), Is.EqualTo((ulong)alpha.Pid));
        Assert.That(match.GetProperty("physicalAddress").ValueKind, Is.EqualTo(JsonValueKind.Number));
        var heapArea = Guest.Oracle.Maps(alpha.Pid).Single(m => m.Path == "[heap]");
        Assert.That(match.GetProperty("offset").GetUInt64(), Is.EqualTo(heap.Address - heapArea.Start), "the offset in its memory area");

        var physical = CliRun.Of("read", "--chain", LinuxChain, "--phys", "0x" + match.GetProperty("physicalAddress").GetUInt64().ToString("x", CultureInfo.InvariantCulture), "--length", "16", "--format", "raw");
        Assert.That(physical.RawOutput, Is.EqualTo(heap.First64.AsSpan(0, 16).ToArray()));
    }

    [Test]
    public void Yara_with_malformed_rules_exits_2_with_the_compilers_own_message()
    {
        var rules = Rules("rule bad {\n strings: $a = \"abc\"\n condition: $b\n}\n");
        var tool = Run("yara", rules, "/dev/null");

        var run = CliRun.Of("yara", "--chain", RawChain, "--rules", rules);

        Assert.That(run.ExitCode, Is.EqualTo(2), run.ToString());
        var toolError = tool.Error.Split('\n').First(l => l.StartsWith("error", StringComparison.Ordinal));
        Assert.That(run.Error, Does.Contain(toolError));
    }

    [Test]
    public void Yara_with_a_pid_on_a_chain_without_an_os_says_what_is_missing()
    {
        var rules = Rules("rule r { strings: $a = \"abc\" condition: $a }\n");

        var run = CliRun.Of("yara", "--chain", RawChain, "--rules", rules, "--pid", "1");

        Assert.That(run.ExitCode, Is.EqualTo(2), run.ToString());
        Assert.That(run.Error, Does.Contain("OS layer"));
        Assert.That(CliRun.Of("yara", "--chain", RawChain, "--rules", Path.Combine(_scratch, "none.yar")).ExitCode, Is.EqualTo(2));
    }

    [Test]
    public void Mount_serves_the_guest_until_sigterm_then_unmounts_and_exits_0([Values("SIGTERM", "SIGINT")] string signal)
    {
        RequireFuse();
        var folder = Directory.CreateDirectory(Path.Combine(_scratch, "mnt")).FullName;
        using var mount = Start(Path.Combine(AppContext.BaseDirectory, "introspect"), "mount", "--chain", LinuxChain, folder);
        try
        {
            WaitForMount(folder, mount);
            var alpha = Guest.Oracle.Processes.First(p => p.Name == "memtest-alpha");
            Assert.That(File.ReadAllText(Path.Combine(folder, "pid", alpha.Pid.ToString(CultureInfo.InvariantCulture), "cmdline.txt")), Is.EqualTo(alpha.CommandLine + "\n"));

            Assert.That(Run("kill", "-s", signal[3..], mount.Id.ToString(CultureInfo.InvariantCulture)).ExitCode, Is.Zero);
            Assert.That(mount.WaitForExit(30_000), "the mount ends on the signal");
            var messages = mount.StandardError.ReadToEnd();
            Assert.That(mount.ExitCode, Is.Zero, messages);
            Assert.That(IsMounted(folder), Is.False, "unmounted");
            Assert.That(messages, Does.Contain("unmounted " + folder));
        }
        finally
        {
            if (!mount.HasExited)
                mount.Kill();
            if (IsMounted(folder))
                Run("fusermount3", "-u", folder);
        }
    }

    [Test]
    public void Mount_refuses_a_folder_that_is_not_there()
    {
        var run = CliRun.Of("mount", "--chain", RawChain, Path.Combine(_scratch, "missing"));

        Assert.That(run.ExitCode, Is.EqualTo(2), run.ToString());
        Assert.That(run.Error, Does.Contain("missing").And.Contain("not a folder"));
    }

    [Test]
    public void Bench_adds_the_mount_and_yara_figures_beside_their_baselines()
    {
        RequireFuse();
        var folder = Directory.CreateDirectory(Path.Combine(_scratch, "bench-mnt")).FullName;
        var rules = Rules("rule marker { strings: $m = \"MEMFORENSICS_TEST_MARKER_7f3a\" condition: $m }\n");

        var run = CliRun.Of("bench", "--chain", RawChain, "--size", "33554432", "--rounds", "1", "--mount", folder, "--yara", rules, "--json");

        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        using var json = JsonDocument.Parse(run.Output);
        var figures = json.RootElement.EnumerateArray().ToDictionary(f => f.GetProperty("name").GetString()!, f => f);
        var mountFigure = figures.Single(f => f.Key.Contains("memory.pmem through the FUSE mount", StringComparison.Ordinal)).Value;
        var yaraFigure = figures.Single(f => f.Key.StartsWith("YARA scan", StringComparison.Ordinal)).Value;
        foreach (var figure in new[] { mountFigure, yaraFigure })
        {
            Assert.That(figure.GetProperty("value").GetDouble(), Is.GreaterThan(0));
            Assert.That(figure.GetProperty("baseline").GetDouble(), Is.GreaterThan(0));
            Assert.That(figure.GetProperty("unit").GetString(), Is.EqualTo("MiB/s"));
        }
        Assert.That(IsMounted(folder), Is.False, "the bench unmounts what it mounted");
    }

    private static void RequireFuse()
    {
        if (!File.Exists("/dev/fuse"))
            Assert.Fail("These tests mount through FUSE, and /dev/fuse does not exist here (modprobe fuse; in a container, --device /dev/fuse).");
    }

    private static bool IsMounted(string folder) =>
        File.ReadAllLines("/proc/self/mountinfo").Any(line => line.Split(' ')[4] == folder);

    private static void WaitForMount(string folder, Process mount)
    {
        var until = DateTime.UtcNow.AddSeconds(60);
        while (!IsMounted(folder) || !File.Exists(Path.Combine(folder, "memory.pmem")))
        {
            if (mount.HasExited)
                Assert.Fail($"introspect mount exited with {mount.ExitCode}: {mount.StandardError.ReadToEnd()}");
            if (DateTime.UtcNow > until)
                Assert.Fail($"introspect mount did not mount {folder} within 60 s");
            Thread.Sleep(100);
        }
    }

    private static Process Start(string program, params string[] arguments) =>
        Process.Start(new ProcessStartInfo(program, arguments) { RedirectStandardOutput = true, RedirectStandardError = true })!;

    private static (int ExitCode, string Output, string Error) Run(string program, params string[] arguments)
    {
        using var process = Start(program, arguments);
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
