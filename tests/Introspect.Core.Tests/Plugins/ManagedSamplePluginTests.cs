using System.Runtime.CompilerServices;
using System.Runtime.Loader;
using Introspect.Abi;
using Introspect.Core.Chains;
using Introspect.Core.Plugins;
using Introspect.TestSupport;
using Introspect.Tests.Plugins;

namespace Introspect.Core.Tests.Plugins;

/// <summary>The managed sample: a plugin with a private dependency the host does not have, loaded, run and unloaded.</summary>
public class ManagedSamplePluginTests
{
    private static string Raw => TestInputs.LinuxRawImage;

    [Test]
    public void The_host_itself_does_not_have_the_sample_s_dependency()
    {
        Assert.That(File.Exists(Path.Combine(AppContext.BaseDirectory, "Newtonsoft.Json.dll")), Is.False);
        Assert.That(File.Exists(Path.Combine(SamplePlugins.ManagedFolder, "Newtonsoft.Json.dll")));
    }

    [Test]
    public void A_plugin_with_a_private_dependency_loads_and_runs_with_it_in_its_own_context()
    {
        var layout = Path.Combine(SamplePlugins.Scratch("layout"), "layout.json");
        File.WriteAllText(layout, """{ "ranges": [ { "base": "0x1000", "size": "0x1000", "backing": "0x2161000" } ] }""");
        using var host = new PluginHost(PluginCatalog.Scan([SamplePlugins.ManagedFolder]));

        using var chain = host.Open(ChainSpec.Parse($"managed-sample:\"{Raw}\",layout=\"{layout}\""));

        var banner = new byte[14];
        Span<MemoryRequest> batch = [new MemoryRequest(0x1900, banner)];
        chain.PhysicalMemory.Read(batch);
        Assert.That(batch[0].Succeeded);
        Assert.That(banner, Is.EqualTo("Linux version "u8.ToArray()));
        var context = AssemblyLoadContext.GetLoadContext(chain.PhysicalMemory.GetType().Assembly)!;
        Assert.That(context, Is.Not.SameAs(AssemblyLoadContext.Default));
        Assert.That(context.IsCollectible);
        Assert.That(context.Assemblies.Select(a => a.GetName().Name), Does.Contain("Newtonsoft.Json"), "the layout was read with the plugin's Newtonsoft.Json");
        Assert.That(AssemblyLoadContext.Default.Assemblies.Select(a => a.GetName().Name), Does.Not.Contain("Newtonsoft.Json"));
        Assert.That(context.Assemblies.Select(a => a.GetName().Name), Does.Not.Contain("Introspect.Abi"), "the contract is the host's");
    }

    [Test]
    public void The_plugin_s_load_context_is_unloaded_when_its_last_instance_is_disposed()
    {
        using var host = new PluginHost(PluginCatalog.Scan([SamplePlugins.ManagedFolder]), options: new PluginHostOptions { UnloadWhenUnused = true });

        var context = OpenReadAndDispose(host);

        Assert.That(host.LoadedCount, Is.Zero);
        for (int attempt = 0; attempt < 100 && context.IsAlive; attempt++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        Assert.That(context.IsAlive, Is.False, "the collectible context was collected");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference OpenReadAndDispose(PluginHost host)
    {
        using var chain = host.Open(ChainSpec.Parse($"managed-sample:\"{Raw}\" -> managed-sample-os"));
        var os = chain.RequireOperatingSystem();
        var memory = os.OpenProcessMemory(os.GetProcesses()[0]);
        Span<MemoryRequest> batch = [new MemoryRequest(0x2161900, new byte[14])];
        memory.Read(batch);
        Assert.That(batch[0].Succeeded);
        Assert.That(host.LoadedCount, Is.EqualTo(1), "one load context for the file's two plugins");
        return new WeakReference(AssemblyLoadContext.GetLoadContext(os.GetType().Assembly));
    }

    [Test]
    public void Without_unloading_the_context_stays_for_the_next_chain_until_asked()
    {
        using var host = new PluginHost(PluginCatalog.Scan([SamplePlugins.ManagedFolder]));

        using (host.Open(ChainSpec.Parse($"managed-sample:\"{Raw}\"")))
        {
        }
        Assert.That(host.LoadedCount, Is.EqualTo(1));

        host.UnloadUnused();

        Assert.That(host.LoadedCount, Is.Zero);
    }

    [Test]
    public void A_plugin_whose_dependency_is_missing_fails_to_open_naming_it()
    {
        var folder = SamplePlugins.Scratch("no-newtonsoft");
        SamplePlugins.CopyManaged(folder, "Newtonsoft.Json.dll");
        using var host = new PluginHost(PluginCatalog.Scan([folder]));

        var error = Assert.Throws<PluginException>(() => host.Open(ChainSpec.Parse($"managed-sample:\"{Raw}\"")));

        Assert.That(error!.Message, Does.Contain("connector 'managed-sample' 1.0.0 failed to open: it needs Newtonsoft.Json, Version=13.0.0.0").And.Contain($"which is neither in {folder} nor in the .NET runtime"));
    }

    [Test]
    public void A_managed_plugin_s_default_argument_is_the_one_it_marks()
    {
        using var host = new PluginHost(PluginCatalog.Scan([SamplePlugins.ManagedFolder]));

        var parameters = host.GetParameters(host.Resolve("managed-sample"));

        Assert.That(PluginHost.DefaultParameter(parameters)!.Name, Is.EqualTo("path"));
        Assert.That(() => host.Open(ChainSpec.Parse("managed-sample-os:x -> managed-sample-os")), Throws.TypeOf<PluginException>().With.Message.Contains("a chain starts with a connector. Connectors: managed-sample"));
    }
}
