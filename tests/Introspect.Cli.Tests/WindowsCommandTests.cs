using System.Text.Json;
using Introspect.TestSupport;

namespace Introspect.Cli.Tests;

/// <summary>The OS commands over the Windows layer, on the first Windows fixture's full crash dump, with its symbol store
/// as a local folder.</summary>
public class WindowsCommandTests
{
    private static string Fixture => Path.Combine(TestInputs.FixturesRoot, "windows");

    private static string Name =>
        Directory.Exists(Fixture) && Directory.GetFiles(Fixture, "*.truth.json").Order(StringComparer.Ordinal).FirstOrDefault() is { } truth
            ? Path.GetFileName(truth)[..^".truth.json".Length]
            : "(no Windows fixture built)";

    private static string Chain =>
        $"coredump:path=\"{TestInputs.Fixture("windows", Name + ".dmp")}\" -> windows:symbols=\"{Path.Combine(Fixture, "symbols")}\",offline=on";

    private static JsonElement Truth()
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(TestInputs.Fixture("windows", Name + ".truth.json")));
        return document.RootElement.Clone();
    }

    private static CliRun Ok(params string[] args)
    {
        var run = CliRun.Of(args);
        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        return run;
    }

    [Test]
    public void Ps_lists_the_processes_with_the_hidden_one_marked()
    {
        var truth = Truth();
        using var json = JsonDocument.Parse(Ok("ps", "--chain", Chain, "--json").Output);
        var pids = json.RootElement.EnumerateArray().Select(p => p.GetProperty("pid").GetUInt64()).Order();
        Assert.That(pids, Is.EqualTo(truth.GetProperty("processes").EnumerateArray().Select(p => p.GetProperty("pid").GetUInt64()).Order()));
        var hiddenPids = json.RootElement.EnumerateArray().Where(p => p.GetProperty("hidden").GetBoolean()).Select(p => p.GetProperty("pid").GetUInt64());
        Assert.That(hiddenPids, Is.EqualTo(truth.GetProperty("processes").EnumerateArray().Where(p => p.GetProperty("hidden").GetBoolean()).Select(p => p.GetProperty("pid").GetUInt64())));
        var hidden = truth.GetProperty("processes").EnumerateArray().First(p => p.GetProperty("hidden").GetBoolean()).GetProperty("name").GetString()!;
        Assert.That(Ok("ps", "--chain", Chain).Output.Split('\n').Single(l => l.Contains(hidden, StringComparison.Ordinal)), Does.Contain("hidden"));
    }

    [Test]
    public void Maps_and_modules_of_a_process_come_from_its_vads_and_loader_list()
    {
        var process = Truth().GetProperty("processes").EnumerateArray().First(p => !p.GetProperty("exited").GetBoolean() && p.GetProperty("modules").GetArrayLength() > 1);
        string pid = process.GetProperty("pid").GetUInt64().ToString(System.Globalization.CultureInfo.InvariantCulture);
        var maps = Ok("maps", "--chain", Chain, "--pid", pid).Output;
        foreach (var vad in process.GetProperty("vads").EnumerateArray())
        {
            if (vad.GetProperty("file").GetString() is { } file)
                Assert.That(maps, Does.Contain(file));
        }
        using var modules = JsonDocument.Parse(Ok("modules", "--chain", Chain, "--pid", pid, "--json").Output);
        Assert.That(modules.RootElement.EnumerateArray().Select(m => m.GetProperty("name").GetString()),
            Is.SupersetOf(process.GetProperty("modules").EnumerateArray().Select(m => m.GetProperty("name").GetString())));
    }

    [Test]
    public void Modules_without_a_pid_are_the_kernel_modules()
    {
        var output = Ok("modules", "--chain", Chain).Output;
        foreach (var module in Truth().GetProperty("kernelModules").EnumerateArray())
            Assert.That(output, Does.Contain(module.GetProperty("name").GetString()));
    }

    [Test]
    public void Kernel_explain_prints_the_bootstrap_account()
    {
        var output = Ok("kernel", "--chain", Chain, "--explain").Output;
        Assert.That(output, Does.Contain("how the windows layer found its way in:"));
        Assert.That(output, Does.Contain("dtb: using connector hint"));
        Assert.That(output, Does.Contain("offsets: using PDB"));
        Assert.That(Ok("kernel", "--chain", Chain).Output, Does.Not.Contain("how the windows layer"));
    }

    [Test]
    public void Symbol_names_an_address_and_finds_a_name()
    {
        var truth = Truth();
        string head = truth.GetProperty("psActiveProcessHead").GetString()!;
        Assert.That(Ok("symbol", "--chain", Chain, "PsActiveProcessHead").Output.Trim(), Is.EqualTo($"{head} PsActiveProcessHead"));
        Assert.That(Ok("symbol", "--chain", Chain, truth.GetProperty("psLoadedModuleList").GetString()!).Output, Does.Contain("PsLoadedModuleList"));
    }
}
