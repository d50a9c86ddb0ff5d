using System.Globalization;
using Introspect.Abi;
using Introspect.Connectors.Coredump;
using Introspect.TestSupport;
using Moq;

namespace Introspect.Os.Windows.Tests;

/// <summary>One fixture in one of its forms: the raw image, the full crash dump or the bitmap crash dump.</summary>
public sealed record FixtureForm(string Name, string Form)
{
    public string FileName => Form switch
    {
        "raw" => Name + ".raw",
        "dump" => Name + ".dmp",
        _ => Name + "-bitmap.dmp",
    };

    public override string ToString() => $"{Name} ({Form})";
}

/// <summary>Opening the Windows fixtures and the layer over them the way a chain does, with the layer's log kept.</summary>
internal static class WindowsSupport
{
    public static string WindowsFixtures => Path.Combine(TestInputs.FixturesRoot, "windows");

    public static string SymbolStore => Path.Combine(WindowsFixtures, "symbols");

    /// <summary>Every fixture the fixtures build made (by its truth file), or one name that fails with how to build them.</summary>
    public static IEnumerable<string> Names()
    {
        var found = Directory.Exists(WindowsFixtures)
            ? Directory.GetFiles(WindowsFixtures, "*.truth.json").Select(f => Path.GetFileName(f)[..^".truth.json".Length]).Order(StringComparer.Ordinal).ToList()
            : [];
        return found.Count > 0 ? found : ["(no Windows fixture built)"];
    }

    /// <summary>The x64 fixtures (those with a low stub and a PML4 self-map), or the failing placeholder when none is built.</summary>
    public static IEnumerable<string> Names64() =>
        Names().Where(name => !File.Exists(Path.Combine(WindowsFixtures, name + ".truth.json")) || WindowsTruth.Load(Path.Combine(WindowsFixtures, name + ".truth.json")).Architecture == "x64");

    /// <summary>Every fixture in every form it comes in: raw and full dump always, the bitmap dump for 64-bit ones.</summary>
    public static IEnumerable<FixtureForm> Forms()
    {
        foreach (var name in Names())
        {
            yield return new FixtureForm(name, "raw");
            yield return new FixtureForm(name, "dump");
            string truth = Path.Combine(WindowsFixtures, name + ".truth.json");
            if (!File.Exists(truth) || WindowsTruth.Load(truth).Architecture == "x64")
                yield return new FixtureForm(name, "bitmap");
        }
    }

    public static WindowsTruth Truth(string name) => WindowsTruth.Load(TestInputs.Fixture("windows", name + ".truth.json"));

    public static IPhysicalMemory Open(FixtureForm form) => OpenFile(TestInputs.Fixture("windows", form.FileName));

    public static IPhysicalMemory OpenFile(string path, params (string Key, string Value)[] arguments)
    {
        var values = new Dictionary<string, string> { ["path"] = path };
        foreach (var (key, value) in arguments)
            values[key] = value;
        return new CoredumpConnectorFactory().Create(new PluginArguments("coredump", values), Mock.Of<IPluginContext>());
    }

    /// <summary>Opens the layer over <paramref name="memory"/>; <paramref name="log"/> receives every message it logs.</summary>
    public static WindowsOperatingSystem OpenWindows(IPhysicalMemory memory, out List<string> log, params (string Key, string Value)[] arguments)
    {
        var context = new RecordingPluginContext();
        log = context.Messages;
        var values = arguments.ToDictionary(a => a.Key, a => a.Value);
        return (WindowsOperatingSystem)new WindowsOsFactory().Create(memory, new PluginArguments("windows", values), context);
    }

    /// <summary>The layer with the fixtures' symbol store as a local folder, never the network.</summary>
    public static WindowsOperatingSystem OpenWithPdb(IPhysicalMemory memory, out List<string> log) =>
        OpenWindows(memory, out log, ("symbols", SymbolStore), ("offline", "on"));

    public static string Hex(ulong value) => "0x" + value.ToString("x", CultureInfo.InvariantCulture);
}
