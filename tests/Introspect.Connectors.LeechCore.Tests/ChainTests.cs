using Introspect.Abi;
using Introspect.Core.Chains;
using Introspect.Core.Memory;
using Introspect.Core.Plugins;
using Introspect.TestSupport;

namespace Introspect.Connectors.LeechCore.Tests;

/// <summary>The connectors inside real chains, loaded by the plugin host from plugin folders as the tool loads them.</summary>
public class ChainTests : LeechCoreTest
{
    private static string BuiltInPlugins => Path.Combine(AppContext.BaseDirectory, "plugins");

    private static PluginHost Host(params string[] folders) => new(PluginCatalog.Scan(folders.Length == 0 ? [BuiltInPlugins] : folders));

    private static string LeechCoreChain(string? more = null) =>
        $"leechcore:device=file://file={TestInputs.LinuxRawImage},library={FakeLeechCore.LibraryPath}{more}";

    [Test]
    public void The_plugin_host_lists_both_connectors_from_one_assembly()
    {
        using var host = Host();
        var names = host.Catalog.Plugins.Where(p => Path.GetFileName(p.Path) == "Introspect.Connectors.LeechCore.dll").Select(p => p.Name);
        Assert.That(names, Is.EquivalentTo(new[] { "leechcore", "hyperv" }));
    }

    [Test]
    public void A_leechcore_chain_reads_what_a_coredump_chain_reads()
    {
        using var host = Host();
        using var leechcore = host.Open(ChainSpec.Parse(LeechCoreChain()));
        using var coredump = host.Open(ChainSpec.Parse($"coredump:path={TestInputs.LinuxRawImage}"));
        Assert.That(leechcore.PhysicalMemory.MemoryMap, Is.EqualTo(coredump.PhysicalMemory.MemoryMap));
        Assert.That(leechcore.PhysicalMemory.Metadata.MaxAddress, Is.EqualTo(coredump.PhysicalMemory.Metadata.MaxAddress));

        var random = new Random(11);
        for (int round = 0; round < 20; round++)
        {
            var ours = new MemoryRequest[256];
            var theirs = new MemoryRequest[256];
            for (int i = 0; i < ours.Length; i++)
            {
                ulong address = (ulong)random.NextInt64(0, (128L << 20) - 20000);
                int length = random.Next(1, 20000);
                ours[i] = new MemoryRequest(address, new byte[length]);
                theirs[i] = new MemoryRequest(address, new byte[length]);
            }
            leechcore.PhysicalMemory.Read(ours);
            coredump.PhysicalMemory.Read(theirs);
            for (int i = 0; i < ours.Length; i++)
            {
                Assert.That(ours[i].Succeeded, Is.EqualTo(theirs[i].Succeeded));
                Assert.That(ours[i].Buffer.Span.SequenceEqual(theirs[i].Buffer.Span), Is.True, $"0x{ours[i].Address:x}+{ours[i].Buffer.Length}");
            }
        }
    }

    [Test]
    public void A_search_finds_the_guests_marker_where_the_coredump_chain_finds_it()
    {
        using var host = Host();
        using var leechcore = host.Open(ChainSpec.Parse(LeechCoreChain()));
        using var coredump = host.Open(ChainSpec.Parse($"coredump:path={TestInputs.LinuxRawImage}"));
        var marker = BytePattern.FromText("MEMFORENSICS_TEST_MARKER_7f3a");
        var ours = MemorySearch.Search(leechcore.PhysicalMemory, marker);
        Assert.That(ours, Is.Not.Empty);
        Assert.That(ours, Is.EqualTo(MemorySearch.Search(coredump.PhysicalMemory, marker)));
    }

    [Test]
    public void LeechCore_is_found_beside_the_plugin_without_being_named()
    {
        using var folder = new TempFolder();
        string plugin = Path.Combine(folder.Path, "Introspect.Connectors.LeechCore");
        Directory.CreateDirectory(plugin);
        foreach (var file in Directory.GetFiles(Path.Combine(BuiltInPlugins, "Introspect.Connectors.LeechCore")))
            File.Copy(file, Path.Combine(plugin, Path.GetFileName(file)));
        // A link, not a copy: the loader then hands back the library already loaded, whose log the test reads.
        File.CreateSymbolicLink(Path.Combine(plugin, "leechcore.so"), FakeLeechCore.LibraryPath);
        using var host = Host(folder.Path);
        // Beside the plugin is only looked at when LEECHCORE_PATH is not set.
        Assume.That(Environment.GetEnvironmentVariable("LEECHCORE_PATH"), Is.Null.Or.Empty);
        using var chain = host.Open(ChainSpec.Parse($"leechcore:device=file://file={TestInputs.LinuxRawImage}"));
        var bytes = new byte[64];
        var request = new[] { new MemoryRequest(0x2161900, bytes) };
        chain.PhysicalMemory.Read(request);
        Assert.That(request[0].Succeeded, Is.True);
        Assert.That(bytes, Is.EqualTo(Support.Expected(0x2161900, 64)));
        Assert.That(FakeLeechCore.Log, Does.Contain("LcCreateEx device='file://file="));
    }

    [Test]
    public void A_leechcore_chain_into_the_linux_layer_lists_the_processes_the_coredump_chain_lists()
    {
        using var host = Host();
        using var leechcore = host.Open(ChainSpec.Parse(LeechCoreChain() + " -> linux"));
        using var coredump = host.Open(ChainSpec.Parse($"coredump:path={TestInputs.LinuxRawImage} -> linux"));
        var ours = leechcore.RequireOperatingSystem().GetProcesses();
        var theirs = coredump.RequireOperatingSystem().GetProcesses();
        Assert.That(ours, Is.Not.Empty);
        Assert.That(ours.Select(p => (p.Pid, p.ParentPid, p.Name, p.CommandLine, p.State, p.DirectoryTableBase)),
            Is.EqualTo(theirs.Select(p => (p.Pid, p.ParentPid, p.Name, p.CommandLine, p.State, p.DirectoryTableBase))));
    }

    [Test]
    public void The_hyperv_connector_in_a_chain_on_this_host_says_it_needs_Windows()
    {
        Assume.That(OperatingSystem.IsWindows(), Is.False);
        using var host = Host();
        Assert.That(() => host.Open(ChainSpec.Parse("hyperv:vm=web01")),
            Throws.TypeOf<PluginException>().With.Message.Contains("only on Windows with Hyper-V"));
    }
}
