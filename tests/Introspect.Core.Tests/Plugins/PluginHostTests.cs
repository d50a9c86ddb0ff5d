using System.Runtime.Loader;
using Introspect.Abi;
using Introspect.Core.Chains;
using Introspect.Core.Plugins;
using Introspect.TestSupport;

namespace Introspect.Core.Tests.Plugins;

public class PluginHostTests
{
    private static string BuiltInPlugins => Path.Combine(AppContext.BaseDirectory, "plugins");

    private string _scratch = null!;

    [SetUp]
    public void CreateScratch() => _scratch = Directory.CreateTempSubdirectory("introspect-plugins-").FullName;

    [TearDown]
    public void DeleteScratch() => Directory.Delete(_scratch, recursive: true);

    [Test]
    public void The_built_in_coredump_connector_is_found_from_its_declaration()
    {
        var catalog = PluginCatalog.Scan([BuiltInPlugins]);

        var coredump = catalog.Plugins.Single(p => p.Name == "coredump");
        Assert.That(coredump.Kind, Is.EqualTo(PluginKind.Connector));
        Assert.That(coredump.AbiVersion, Is.EqualTo(IntrospectAbi.Version));
        Assert.That(coredump.IsCompatible);
        Assert.That(coredump.Path, Does.EndWith("Introspect.Connectors.Coredump.dll"));
        Assert.That(coredump.EntryPoint, Does.StartWith("Introspect.Connectors.Coredump.CoredumpConnectorFactory"));
        Assert.That(coredump.Description, Is.Not.Empty);
        Assert.That(catalog.Problems, Is.Empty);
    }

    [Test]
    public void Listing_plugins_loads_none_of_their_code()
    {
        SyntheticPluginAssembly.Write(_scratch, "Listed.Only", "listed", IntrospectAbi.Version, "Listed.Factory", defineFactory: true);

        var catalog = PluginCatalog.Scan([_scratch]);

        Assert.That(catalog.Plugins.Select(p => p.Name), Is.EqualTo(new[] { "listed" }));
        Assert.That(AssemblyLoadContext.All.SelectMany(c => c.Assemblies).Select(a => a.GetName().Name), Does.Not.Contain("Listed.Only"));
    }

    [Test]
    public void A_chain_opens_the_connector_in_its_own_load_context_sharing_the_contract()
    {
        var host = new PluginHost(PluginCatalog.Scan([BuiltInPlugins]));

        using var chain = host.Open(ChainSpec.Parse($"coredump:path=\"{TestInputs.LinuxRawImage}\""));
        var memory = chain.PhysicalMemory;

        var context = AssemblyLoadContext.GetLoadContext(memory.GetType().Assembly);
        Assert.That(context, Is.Not.SameAs(AssemblyLoadContext.Default));
        Assert.That(context!.Name, Does.Contain("Introspect.Connectors.Coredump"));
        Assert.That(memory.Metadata.RealSize, Is.EqualTo(128UL << 20));
        var banner = new byte[14];
        Span<MemoryRequest> batch = [new MemoryRequest(0x2161900, banner)];
        memory.Read(batch);
        Assert.That(batch[0].Succeeded);
        Assert.That(System.Text.Encoding.ASCII.GetString(banner), Is.EqualTo("Linux version "));
    }

    [Test]
    public void An_unknown_plugin_names_what_is_installed_and_where_it_looked()
    {
        var host = new PluginHost(PluginCatalog.Scan([BuiltInPlugins]));

        var error = Assert.Throws<PluginException>(() => host.Open(ChainSpec.Parse("hyperv:name=x")));

        Assert.That(error!.Message, Does.Contain("No plugin named 'hyperv'").And.Contain("coredump").And.Contain(BuiltInPlugins));
    }

    [Test]
    public void An_unknown_argument_is_refused_before_the_connector_runs()
    {
        var host = new PluginHost(PluginCatalog.Scan([BuiltInPlugins]));

        var error = Assert.Throws<PluginArgumentException>(() => host.Open(ChainSpec.Parse("coredump:path=/nonexistent,offset=0x10")));

        Assert.That(error!.Message, Does.Contain("unknown argument 'offset'"));
    }

    [Test]
    public void A_plugin_built_for_another_abi_is_listed_but_refused_with_both_versions()
    {
        SyntheticPluginAssembly.Write(_scratch, "Future.Plugin", "future", abiVersion: IntrospectAbi.Version + 1, "Future.Factory", defineFactory: false);
        var host = new PluginHost(PluginCatalog.Scan([_scratch, BuiltInPlugins]));

        var future = host.Catalog.Plugins.Single(p => p.Name == "future");
        Assert.That(future.IsCompatible, Is.False);
        Assert.That(future.Version, Is.EqualTo(new Version(2, 5, 1)));
        var error = Assert.Throws<PluginException>(() => host.Resolve("future"));
        Assert.That(error!.Message, Does.Contain($"ABI {IntrospectAbi.Version + 1}").And.Contain($"ABI {IntrospectAbi.Version}"));
    }

    [Test]
    public void A_factory_that_is_not_a_connector_factory_is_refused_with_the_reason()
    {
        SyntheticPluginAssembly.Write(_scratch, "Wrong.Plugin", "wrong", IntrospectAbi.Version, "Wrong.Factory", defineFactory: true);
        var host = new PluginHost(PluginCatalog.Scan([_scratch]));

        var error = Assert.Throws<PluginException>(() => host.Open(ChainSpec.Parse("wrong:path=x")));

        Assert.That(error!.Message, Does.Contain("does not implement IConnectorFactory"));
    }

    [Test]
    public void Files_that_are_not_assemblies_are_passed_over()
    {
        File.WriteAllBytes(Path.Combine(_scratch, "garbage.dll"), [0x4d, 0x5a, 1, 2, 3]);
        File.WriteAllText(Path.Combine(_scratch, "notes.dll"), "not a PE file at all");

        var catalog = PluginCatalog.Scan([_scratch, Path.Combine(_scratch, "missing")]);

        Assert.That(catalog.Plugins, Is.Empty);
        Assert.That(catalog.Problems.Select(p => Path.GetFileName(p.Path)), Is.SubsetOf(new[] { "garbage.dll", "notes.dll" }));
    }

    [Test]
    public void A_connector_after_a_connector_is_refused_with_the_reason()
    {
        var host = new PluginHost(PluginCatalog.Scan([BuiltInPlugins]));

        var error = Assert.Throws<PluginException>(() => host.Open(ChainSpec.Parse($"coredump:path=x -> coredump:path=y")));

        Assert.That(error!.Message, Does.Contain("connector 'coredump' follows connector 'coredump'; after a connector comes an OS layer"));
    }
}
