using System.Buffers.Binary;
using System.Text.Json;
using Introspect.Abi;
using Introspect.Core.Chains;
using Introspect.Core.Plugins;
using Introspect.Core.Plugins.Native;
using Introspect.TestSupport;
using Introspect.Tests.Plugins;

namespace Introspect.Core.Tests.Plugins;

/// <summary>Installing, listing, picking versions of and removing plugins in a per-user folder (a temporary one here).</summary>
public class PluginInventoryTests
{
    private string _scratch = null!;
    private PluginInventory _inventory = null!;

    [SetUp]
    public void CreateInventory()
    {
        _scratch = SamplePlugins.Scratch("inventory");
        _inventory = new PluginInventory(Path.Combine(_scratch, "home", "plugins"));
    }

    private PluginHost Host() => new(PluginCatalog.Scan([_inventory.Root]));

    private string Copy(string file, string name)
    {
        var path = Path.Combine(_scratch, name);
        File.Copy(file, path);
        return path;
    }

    [Test]
    public void Installing_the_native_library_records_both_plugins_with_sha256_and_metadata()
    {
        var installed = _inventory.Install(SamplePlugins.NativeLibrary);

        Assert.That(installed.Select(p => p.Name), Is.EquivalentTo(new[] { "native-sample", "native-sample-os" }));
        var connector = installed.Single(p => p.Name == "native-sample");
        Assert.That(connector.Folder, Is.EqualTo(Path.Combine(_inventory.Root, "native-sample", "1.0.0")));
        Assert.That(connector.Sha256, Is.EqualTo(PluginInventory.Sha256Of(SamplePlugins.NativeLibrary)));
        Assert.That(File.ReadAllBytes(connector.FilePath), Is.EqualTo(File.ReadAllBytes(SamplePlugins.NativeLibrary)));
        using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(connector.Folder, PluginInventory.ManifestName)));
        Assert.That(manifest.RootElement.GetProperty("name").GetString(), Is.EqualTo("native-sample"));
        Assert.That(manifest.RootElement.GetProperty("kind").GetString(), Is.EqualTo("connector"));
        Assert.That(manifest.RootElement.GetProperty("format").GetString(), Is.EqualTo("native"));
        Assert.That(manifest.RootElement.GetProperty("abiVersion").GetInt32(), Is.EqualTo(IntrospectAbi.Version));
        Assert.That(manifest.RootElement.GetProperty("sha256").GetString(), Is.EqualTo(connector.Sha256));

        var catalog = PluginCatalog.Scan([_inventory.Root]);
        Assert.That(catalog.Plugins.Select(p => p.Name), Is.EqualTo(new[] { "native-sample", "native-sample-os" }), "each installed folder lists only the plugin it was installed for");
        Assert.That(catalog.Plugins.All(p => p.Installation is not null));
        Assert.That(catalog.Problems, Is.Empty);
    }

    [Test]
    public void Versions_install_side_by_side_the_newest_wins_and_name_at_version_picks_one()
    {
        _inventory.Install(SamplePlugins.NativeLibrary);
        _inventory.Install(SamplePlugins.BuildNative("v1.1", "-DNATIVE_SAMPLE_VERSION=\\\"1.1.0\\\""));

        var host = Host();

        Assert.That(_inventory.Installed().Where(p => p.Name == "native-sample").Select(p => p.Version.ToString()), Is.EqualTo(new[] { "1.1.0", "1.0.0" }));
        Assert.That(host.Resolve("native-sample").Version, Is.EqualTo(new Version(1, 1, 0)));
        Assert.That(host.Resolve("native-sample", "1.0").Version, Is.EqualTo(new Version(1, 0, 0)));
        Assert.That(host.Resolve("native-sample", "1").Version, Is.EqualTo(new Version(1, 1, 0)));
        Assert.That(() => host.Resolve("native-sample", "2"), Throws.TypeOf<PluginException>().With.Message.EqualTo("Plugin 'native-sample' has no version 2. Installed: 1.1.0, 1.0.0."));
        using var chain = host.Open(ChainSpec.Parse($"native-sample@1.0:\"{TestInputs.LinuxRawImage}\" -> native-sample-os@1.1"));
        Assert.That(chain.Plugins.Select(p => p.ToString()), Is.EqualTo(new[] { "native-sample 1.0.0", "native-sample-os 1.1.0" }));
        Assert.That(chain.RequireOperatingSystem().Info.Version, Does.StartWith("native-sample-os 1.1.0"));
    }

    [Test]
    public void Installing_again_is_refused_unless_forced()
    {
        _inventory.Install(SamplePlugins.NativeLibrary);

        var error = Assert.Throws<PluginException>(() => _inventory.Install(SamplePlugins.NativeLibrary));

        Assert.That(error!.Message, Does.Contain("is already installed in").And.Contain("use --force to replace it"));
        Assert.That(_inventory.Install(SamplePlugins.NativeLibrary, force: true), Has.Count.EqualTo(2));
    }

    [Test]
    public void Remove_takes_a_name_or_a_version_and_says_what_is_installed_when_nothing_matches()
    {
        _inventory.Install(SamplePlugins.NativeLibrary);
        _inventory.Install(SamplePlugins.BuildNative("v1.1", "-DNATIVE_SAMPLE_VERSION=\\\"1.1.0\\\""));

        Assert.That(_inventory.Remove("native-sample", "1.0").Select(p => p.Version.ToString()), Is.EqualTo(new[] { "1.0.0" }));
        Assert.That(() => _inventory.Remove("native-sample", "3"), Throws.TypeOf<PluginException>().With.Message.EqualTo("'native-sample' has no installed version 3. Installed: 1.1.0."));
        Assert.That(() => _inventory.Remove("nosuch"), Throws.TypeOf<PluginException>().With.Message.Contains("No plugin named 'nosuch' is installed").And.Message.Contains("Installed: native-sample, native-sample-os"));
        Assert.That(_inventory.Remove("native-sample-os"), Has.Count.EqualTo(2));
        Assert.That(_inventory.Installed().Select(p => $"{p.Name} {p.Version}"), Is.EqualTo(new[] { "native-sample 1.1.0" }));
        Assert.That(Directory.Exists(Path.Combine(_inventory.Root, "native-sample-os")), Is.False);
    }

    [Test]
    public void Clean_keeps_the_newest_version_of_each_plugin()
    {
        _inventory.Install(SamplePlugins.NativeLibrary);
        _inventory.Install(SamplePlugins.BuildNative("v1.1", "-DNATIVE_SAMPLE_VERSION=\\\"1.1.0\\\""));
        _inventory.Install(SamplePlugins.BuildNative("v0.9", "-DNATIVE_SAMPLE_VERSION=\\\"0.9.0\\\""));

        var removed = _inventory.Clean();

        Assert.That(removed.Select(p => $"{p.Name} {p.Version}"), Is.EquivalentTo(new[] { "native-sample 1.0.0", "native-sample 0.9.0", "native-sample-os 1.0.0", "native-sample-os 0.9.0" }));
        Assert.That(_inventory.Installed().Select(p => $"{p.Name} {p.Version}"), Is.EqualTo(new[] { "native-sample 1.1.0", "native-sample-os 1.1.0" }));
        Assert.That(_inventory.Clean(), Is.Empty);
    }

    [Test]
    public void A_managed_plugin_installs_with_its_dependencies_and_runs_from_the_install_folder()
    {
        var installed = _inventory.Install(SamplePlugins.ManagedFolder);

        Assert.That(installed.Select(p => p.Name), Is.EquivalentTo(new[] { "managed-sample", "managed-sample-os" }));
        var folder = installed.Single(p => p.Name == "managed-sample").Folder;
        Assert.That(File.Exists(Path.Combine(folder, "Newtonsoft.Json.dll")));
        using var chain = Host().Open(ChainSpec.Parse($"managed-sample:\"{TestInputs.LinuxRawImage}\""));
        Assert.That(chain.Plugins[0].Path, Does.StartWith(folder));
        Span<MemoryRequest> batch = [new MemoryRequest(0x2161900, new byte[5])];
        chain.PhysicalMemory.Read(batch);
        Assert.That(batch[0].Succeeded);
    }

    [Test]
    public void An_installed_file_that_changed_is_not_loaded()
    {
        var installed = _inventory.Install(SamplePlugins.NativeLibrary).Single(p => p.Name == "native-sample");
        using (var file = File.OpenWrite(installed.FilePath))
        {
            file.Seek(-1, SeekOrigin.End);
            file.WriteByte(0x5a);
        }

        var error = Assert.Throws<PluginException>(() => Host().Open(ChainSpec.Parse($"native-sample:\"{TestInputs.LinuxRawImage}\"")));

        Assert.That(error!.Message, Does.Contain($"{installed.FilePath} changed since it was installed").And.Contain("reinstall it"));
    }

    [Test]
    public void Refused_installs_say_why_and_copy_nothing()
    {
        var text = Path.Combine(_scratch, "notes.so");
        File.WriteAllText(text, "not a library at all");
        var arm64 = Copy(SamplePlugins.NativeLibrary, "libarm64.so");
        var bytes = File.ReadAllBytes(arm64);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(18), 183);
        File.WriteAllBytes(arm64, bytes);
        var descriptor = NativeImage.Read(SamplePlugins.NativeLibrary)!.Exports.Single(e => e.Symbol == "introspect_plugin_native_sample").Data[..NativeAbi.DescriptorSize(8)];
        var dll = Path.Combine(_scratch, "sample.dll");
        File.WriteAllBytes(dll, PeBuilder.Dll(0x8664, "introspect_plugin_native_sample", descriptor));
        var noManagedDependency = SamplePlugins.CopyManaged(Path.Combine(_scratch, "managed"), "Newtonsoft.Json.dll");
        var m32 = SamplePlugins.CompileC("m32-plugin", NativeImageTests.MinimalDescriptor("thirty-two"), "-m32", "-ffreestanding", "-nostdlib", "-shared", "-fPIC");

        var cases = new (string Path, string Expected)[]
        {
            (Path.Combine(_scratch, "missing.so"), "no such file or folder"),
            (text, $"it is not an Introspect plugin: {text} is neither a .NET assembly nor a shared library"),
            (SamplePlugins.CompileC("plain", "int answer(void) { return 42; }\n", "-shared", "-fPIC"), "is a shared library that exports no introspect_plugin_* descriptor"),
            (Path.Combine(SamplePlugins.ManagedFolder, "Newtonsoft.Json.dll"), "is a .NET assembly without an [assembly: IntrospectPlugin(...)] declaration"),
            (m32, $"'thirty-two' 1.0.0 from {m32}: wrong architecture: it is built for x86 (32-bit ELF); this host runs {NativeImage.HostPlatform}."),
            (arm64, $"wrong architecture: it is built for arm64 (64-bit ELF); this host runs {NativeImage.HostPlatform}."),
            (dll, $"wrong architecture: it is a PE DLL (Windows) for x64; this host runs {NativeImage.HostPlatform} and loads .so plugins."),
            (SamplePlugins.CompileC("abi99", NativeImageTests.MinimalDescriptor("future", abi: "99"), "-shared", "-fPIC"),
                $"wrong ABI version: it was built for plugin ABI 99; this host speaks ABI {IntrospectAbi.Version}."),
            (noManagedDependency, "missing dependency: Newtonsoft.Json 13.0.0.0 (needed by Introspect.Samples.ManagedConnector.dll) is neither in"),
        };
        foreach (var (path, expected) in cases)
        {
            var error = Assert.Throws<PluginException>(() => _inventory.Install(path), path);

            Assert.That(error!.Message, Does.Contain(expected), path);
        }
        Assert.That(_inventory.Installed(), Is.Empty);
        Assert.That(!Directory.Exists(_inventory.Root) || !Directory.EnumerateFileSystemEntries(_inventory.Root).Any(), "nothing was copied");
    }

    [Test]
    public void A_folder_installs_every_plugin_it_holds()
    {
        var folder = Path.Combine(_scratch, "bundle");
        Directory.CreateDirectory(folder);
        File.Copy(SamplePlugins.NativeLibrary, Path.Combine(folder, "libintrospect_native_sample.so"));
        SamplePlugins.CopyManaged(Path.Combine(folder, "managed"));

        var installed = _inventory.Install(folder);

        Assert.That(installed.Select(p => p.Name), Is.EquivalentTo(new[] { "native-sample", "native-sample-os", "managed-sample", "managed-sample-os" }));
        Assert.That(() => _inventory.Install(Path.Combine(_scratch, "home")), Throws.TypeOf<PluginException>().With.Message.Contains("no Introspect plugin in it"));
    }

    [Test]
    public void Broken_install_records_are_passed_over()
    {
        _inventory.Install(SamplePlugins.NativeLibrary);
        File.WriteAllText(Path.Combine(_inventory.Root, "native-sample-os", "1.0.0", PluginInventory.ManifestName), "{ \"name\": \"native-sample-os\", ");
        Directory.CreateDirectory(Path.Combine(_inventory.Root, "odd", "1.0.0"));
        File.WriteAllText(Path.Combine(_inventory.Root, "odd", "1.0.0", PluginInventory.ManifestName), "{ \"name\": \"odd\", \"version\": \"1.0\", \"file\": \"../../etc/passwd\", \"sha256\": \"00\" }");

        Assert.That(_inventory.Installed().Select(p => p.Name), Is.EqualTo(new[] { "native-sample" }));
        Assert.That(PluginInventory.TryReadManifest(Path.Combine(_inventory.Root, "odd", "1.0.0"), out _, out var problem), Is.False);
        Assert.That(problem, Does.Contain("a file name in the same folder"));
    }
}
