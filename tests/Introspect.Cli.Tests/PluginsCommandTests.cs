using System.Text.Json;
using Introspect.Core.Plugins;
using Introspect.TestSupport;
using Introspect.Tests.Plugins;

namespace Introspect.Cli.Tests;

/// <summary>
/// <c>introspect plugins ...</c>, plugins.json and named chains, with the C sample compiled from source and installed
/// into a per-user folder that <c>INTROSPECT_HOME</c> points at a temporary one.
/// </summary>
[NonParallelizable]
public class PluginsCommandTests
{
    private static string Raw => TestInputs.LinuxRawImage;

    private string _scratch = null!;
    private string? _previousHome;

    [SetUp]
    public void PointTheUserFolderAtScratch()
    {
        _scratch = SamplePlugins.Scratch("cli");
        _previousHome = Environment.GetEnvironmentVariable(PluginInventory.HomeVariable);
        Environment.SetEnvironmentVariable(PluginInventory.HomeVariable, Path.Combine(_scratch, "home"));
    }

    [TearDown]
    public void RestoreTheUserFolder() => Environment.SetEnvironmentVariable(PluginInventory.HomeVariable, _previousHome);

    private static CliRun Ok(params string[] args)
    {
        var run = CliRun.Of(args);
        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        return run;
    }

    private static CliRun Refused(params string[] args)
    {
        var run = CliRun.Of(args);
        Assert.That(run.ExitCode, Is.EqualTo(2), run.ToString());
        Assert.That(run.Error, Does.StartWith("error: "));
        Assert.That(run.Error.Trim().Split('\n'), Has.Length.EqualTo(1), "one line, no stack trace");
        return run;
    }

    [Test]
    public void The_c_sample_compiled_from_source_installs_and_lists_with_its_record()
    {
        var install = Ok("plugins", "install", SamplePlugins.NativeLibrary);

        var folder = Path.Combine(_scratch, "home", "plugins");
        Assert.That(install.Output, Does.Contain($"installed native-sample 1.0.0 (connector, native) {folder}/native-sample/1.0.0 sha256 {PluginInventory.Sha256Of(SamplePlugins.NativeLibrary)}"));
        Assert.That(install.Output, Does.Contain("installed native-sample-os 1.0.0 (os, native)"));

        using var list = JsonDocument.Parse(Ok("plugins", "list", "--json").Output);
        var plugins = list.RootElement.GetProperty("plugins").EnumerateArray().ToList();
        var native = plugins.Single(p => p.GetProperty("name").GetString() == "native-sample");
        Assert.That(native.GetProperty("format").GetString(), Is.EqualTo("native"));
        Assert.That(native.GetProperty("compatible").GetBoolean());
        Assert.That(native.GetProperty("installed").GetBoolean());
        Assert.That(native.GetProperty("path").GetString(), Does.StartWith(folder));
        Assert.That(plugins.Select(p => p.GetProperty("name").GetString()), Does.Contain("coredump"));
        Assert.That(list.RootElement.GetProperty("installFolder").GetString(), Is.EqualTo(folder));

        var table = Ok("plugins", "list");
        Assert.That(table.Output, Does.Contain("native-sample").And.Contain("ok (installed)"));

        var info = Ok("plugins", "info", "native-sample");
        Assert.That(info.Output, Does.Contain("native-sample 1.0.0 (connector, native, ABI 1)").And.Contain("(intact)")
            .And.Contain("path (default argument)").And.Contain("serves the file 'path' as physical memory").And.Contain("cache.pages"));
    }

    [Test]
    public void Through_the_installed_c_sample_info_read_and_dump_give_what_the_coredump_connector_gives()
    {
        Ok("plugins", "install", SamplePlugins.NativeLibrary);
        string native = $"native-sample:\"{Raw}\"", managed = $"coredump:\"{Raw}\"";

        using var nativeInfo = JsonDocument.Parse(Ok("info", "--chain", native, "--json").Output);
        using var managedInfo = JsonDocument.Parse(Ok("info", "--chain", managed, "--json").Output);
        Assert.That(nativeInfo.RootElement.GetProperty("connector").GetString(), Is.EqualTo("native-sample"));
        foreach (var field in new[] { "maxAddress", "realSize", "readOnly", "memoryMap", "format" })
            Assert.That(nativeInfo.RootElement.GetProperty(field).GetRawText(), Is.EqualTo(managedInfo.RootElement.GetProperty(field).GetRawText()), field);

        foreach (var (address, length) in new[] { ("0x2161900", "512"), ("0x0", "4096"), ("0x7fff000", "4096") })
        {
            var ours = Ok("read", "--chain", native, "--phys", address, "--length", length, "--format", "raw").RawOutput;
            var theirs = Ok("read", "--chain", managed, "--phys", address, "--length", length, "--format", "raw").RawOutput;
            Assert.That(ours, Is.EqualTo(theirs), address);
        }
        var hex = Ok("read", "--chain", native, "--phys", "0x2161900", "--length", "16");
        Assert.That(hex.Output, Does.Contain("4c 69 6e 75 78 20 76 65").And.Contain("Linux version"));

        var dumped = Path.Combine(_scratch, "through-native.raw");
        Ok("dump", "--chain", native, "--out", dumped);
        Assert.That(new FileInfo(dumped).Length, Is.EqualTo(new FileInfo(Raw).Length));
        Assert.That(FileCompare.FirstDifference(dumped, Raw, new FileInfo(Raw).Length), Is.EqualTo(-1));
    }

    [Test]
    public void The_linux_layer_over_the_c_sample_finds_the_processes_it_finds_over_the_coredump_connector()
    {
        Ok("plugins", "install", SamplePlugins.NativeLibrary);

        var overNative = Ok("ps", "--chain", $"native-sample:\"{Raw}\" -> linux", "--json");
        var overManaged = Ok("ps", "--chain", $"coredump:\"{Raw}\" -> linux", "--json");

        using var processes = JsonDocument.Parse(overNative.Output);
        Assert.That(processes.RootElement.GetArrayLength(), Is.GreaterThan(10));
        Assert.That(overNative.Output, Is.EqualTo(overManaged.Output));
    }

    [Test]
    public void Bench_runs_through_the_c_sample_and_reports_each_figure_beside_its_baseline()
    {
        Ok("plugins", "install", SamplePlugins.NativeLibrary);

        using var json = JsonDocument.Parse(Ok("bench", "--chain", $"native-sample:\"{Raw}\"", "--json", "--size", "16777216", "--rounds", "1").Output);

        var figures = json.RootElement.EnumerateArray().ToList();
        Assert.That(figures, Has.Count.EqualTo(2));
        foreach (var figure in figures)
        {
            Assert.That(figure.GetProperty("value").GetDouble(), Is.GreaterThan(0));
            Assert.That(figure.GetProperty("ratio").GetDouble(), Is.EqualTo(figure.GetProperty("value").GetDouble() / figure.GetProperty("baseline").GetDouble()).Within(1e-9));
        }
    }

    [Test]
    public void Side_by_side_versions_are_picked_with_name_at_version_and_removed_and_cleaned()
    {
        Ok("plugins", "install", SamplePlugins.NativeLibrary);
        Ok("plugins", "install", SamplePlugins.BuildNative("v1.1", "-DNATIVE_SAMPLE_VERSION=\\\"1.1.0\\\""));

        using (var newest = JsonDocument.Parse(Ok("info", "--chain", $"native-sample:\"{Raw}\"", "--json").Output))
            Assert.That(newest.RootElement.GetProperty("connectorVersion").GetString(), Is.EqualTo("1.1.0"));
        using (var pinned = JsonDocument.Parse(Ok("info", "--chain", $"native-sample@1.0:\"{Raw}\"", "--json").Output))
            Assert.That(pinned.RootElement.GetProperty("connectorVersion").GetString(), Is.EqualTo("1.0.0"));
        Assert.That(Ok("plugins", "info", "native-sample@1.0").Output, Does.StartWith("native-sample 1.0.0"));

        Assert.That(Refused("plugins", "install", SamplePlugins.NativeLibrary).Error, Does.Contain("is already installed").And.Contain("use --force"));
        Ok("plugins", "install", SamplePlugins.NativeLibrary, "--force");

        Assert.That(Ok("plugins", "clean").Output, Does.Contain("removed native-sample 1.0.0").And.Contain("removed native-sample-os 1.0.0"));
        Assert.That(Ok("plugins", "clean").Output, Does.Contain("Nothing to clean"));
        Assert.That(Refused("plugins", "remove", "native-sample@1.0").Error, Does.Contain("'native-sample' has no installed version 1.0. Installed: 1.1.0."));
        Assert.That(Ok("plugins", "remove", "native-sample").Output, Does.Contain("removed native-sample 1.1.0"));
        Assert.That(Refused("plugins", "remove", "coredump").Error, Does.Contain("'coredump' is not installed in").And.Contain("which 'plugins remove' does not manage"));
        Assert.That(Refused("info", "--chain", $"native-sample:\"{Raw}\"").Error, Does.Contain("No plugin named 'native-sample'. Installed: coredump"));
    }

    [Test]
    public void Install_refuses_what_this_host_cannot_load_saying_why()
    {
        var m32 = SamplePlugins.CompileC("m32-cli", NativeDescriptorSource("thirty-two", "INTROSPECT_ABI_VERSION"), "-m32", "-ffreestanding", "-nostdlib", "-shared", "-fPIC");
        var abi = SamplePlugins.CompileC("abi42-cli", NativeDescriptorSource("answer", "42"), "-shared", "-fPIC");
        var noDependency = SamplePlugins.CopyManaged(Path.Combine(_scratch, "managed"), "Newtonsoft.Json.dll");
        var text = Path.Combine(_scratch, "readme.so");
        File.WriteAllText(text, "not a library");

        Assert.That(Refused("plugins", "install", m32).Error, Does.Contain($"wrong architecture: it is built for x86 (32-bit ELF); this host runs linux-{System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant()}"));
        Assert.That(Refused("plugins", "install", abi).Error, Does.Contain("wrong ABI version: it was built for plugin ABI 42; this host speaks ABI 1"));
        Assert.That(Refused("plugins", "install", noDependency).Error, Does.Contain("missing dependency: Newtonsoft.Json 13.0.0.0"));
        Assert.That(Refused("plugins", "install", text).Error, Does.Contain("it is not an Introspect plugin"));
        Assert.That(Directory.Exists(Path.Combine(_scratch, "home", "plugins")) && Directory.EnumerateFileSystemEntries(Path.Combine(_scratch, "home", "plugins")).Any(), Is.False);
    }

    [Test]
    public void The_managed_sample_installs_with_its_private_dependency_and_runs_in_a_chain()
    {
        Assert.That(Ok("plugins", "install", SamplePlugins.ManagedFolder).Output, Does.Contain("installed managed-sample 1.0.0 (connector, managed)"));

        var ps = Ok("ps", "--chain", $"managed-sample:\"{Raw}\" -> managed-sample-os:name=flat", "--json");

        Assert.That(ps.Output, Does.Contain("\"name\": \"flat\""));
    }

    [Test]
    public void Named_chains_come_from_the_config_file_given_or_say_where_they_were_looked_for()
    {
        var natives = Path.GetDirectoryName(SamplePlugins.NativeLibrary)!;
        var config = Path.Combine(_scratch, "plugins.json");
        File.WriteAllText(config, $$"""
            {
              // the C sample's build folder, as a search path
              "pluginPaths": [ {{JsonSerializer.Serialize(natives)}} ],
              "middleware": { "cache": "on", "cache.pages": 64 },
              "chains": { "image": {{JsonSerializer.Serialize($"native-sample:\"{Raw}\"")}} }
            }
            """);

        using var info = JsonDocument.Parse(Ok("info", "--chain", "@image", "--config", config, "--json").Output);
        Assert.That(info.RootElement.GetProperty("connector").GetString(), Is.EqualTo("native-sample"));
        Assert.That(Ok("read", "--chain", "@image", "--config", config, "--phys", "0x2161900", "--length", "5", "--format", "raw").RawOutput, Is.EqualTo("Linux"u8.ToArray()));
        Assert.That(Ok("ps", "--chain", "@image -> native-sample-os", "--config", config).Output, Does.Contain("memory"));
        Assert.That(Ok("plugins", "list", "--config", config).Output, Does.Contain("native-sample"));

        Assert.That(Refused("info", "--chain", "@guest", "--config", config).Error, Does.Contain($"No chain named '@guest': {config} names @image."));
        Assert.That(Refused("info", "--chain", "@image", "--config", Path.Combine(_scratch, "missing.json")).Error, Does.Contain("missing.json' does not exist"));
    }

    [Test]
    public void A_config_file_with_a_mistake_fails_every_command_naming_its_line()
    {
        var config = Path.Combine(_scratch, "plugins.json");
        File.WriteAllText(config, "{\n  \"pluginPaths\": [],\n  \"middleware\": { \"tlb.entries\": \"many\" }\n}\n");

        Assert.That(Refused("plugins", "list", "--config", config).Error, Does.Contain($"{config}, line 3: 'tlb.entries=many' is not valid"));
        Assert.That(Refused("info", "--chain", $"coredump:\"{Raw}\"", "--config", config).Error, Does.Contain($"{config}, line 3"));
    }

    [TestCase("coredump:{0},cache=maybe", "coredump: 'cache=maybe' is not valid; expected auto, on or off")]
    [TestCase("coredump:{0},tlb=off", "'tlb' configures an OS layer's translation cache")]
    [TestCase("coredump:{0},/other.raw", "only the first argument may be given bare")]
    public void Middleware_and_default_arguments_are_checked_on_the_command_line(string chain, string expected)
    {
        var run = Refused("info", "--chain", string.Format(System.Globalization.CultureInfo.InvariantCulture, chain, $"\"{Raw}\""));

        Assert.That(run.Error, Does.Contain(expected));
    }

    private static string NativeDescriptorSource(string name, string abi) => $$"""
        #include "introspect_plugin.h"
        IP_EXPORT const ip_plugin_descriptor introspect_plugin_cli = {
            .size = sizeof(ip_plugin_descriptor), .version = IP_DESCRIPTOR_VERSION, .magic = IP_DESCRIPTOR_MAGIC,
            .abi_version = {{abi}}, .kind = IP_KIND_CONNECTOR, .inputs = IP_INPUT_NONE,
            .name = "{{name}}", .plugin_version = "1.0.0", .description = "a descriptor without code",
        };
        """;
}
