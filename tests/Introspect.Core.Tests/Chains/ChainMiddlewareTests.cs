using Introspect.Abi;
using Introspect.Core.Caching;
using Introspect.Core.Chains;
using Introspect.Core.Plugins;
using Introspect.TestSupport;
using Introspect.Tests.Plugins;

namespace Introspect.Core.Tests.Chains;

/// <summary>Middleware keys on chain steps, handled by the host before the plugin sees its arguments; default arguments; the order of steps.</summary>
public class ChainMiddlewareTests
{
    private static string BuiltIn => Path.Combine(AppContext.BaseDirectory, "plugins");

    private static string Raw => TestInputs.LinuxRawImage;

    private static string Natives
    {
        get
        {
            var folder = Path.GetDirectoryName(SamplePlugins.NativeLibrary)!;
            return folder;
        }
    }

    private static PluginHost Host(MiddlewareSettings? defaults = null) =>
        new(PluginCatalog.Scan([BuiltIn, Natives, SamplePlugins.ManagedFolder]), options: new PluginHostOptions { Middleware = defaults ?? MiddlewareSettings.Default });

    [Test]
    public void A_chain_ending_in_a_connector_is_served_as_is_and_cache_on_adds_the_page_cache()
    {
        using var plain = Host().Open(ChainSpec.Parse($"coredump:\"{Raw}\""));
        using var cached = Host().Open(ChainSpec.Parse($"coredump:\"{Raw}\",cache=on,cache.pages=16,cache.validity=250ms"));

        Assert.That(plain.PhysicalMemory, Is.Not.TypeOf<PageCache>());
        var cache = (PageCache)cached.PhysicalMemory;
        Assert.That(cache.Capacity, Is.EqualTo(16));
        Assert.That(cache.Validity.ToString(), Does.Contain("00:00:00.25"));
        Assert.That(cached.Hints.Format, Is.EqualTo("raw"), "the cache passes the connector's hints on");
    }

    [Test]
    public void With_cache_auto_an_os_layer_reads_through_the_page_cache_and_without_it_directly()
    {
        using var auto = Host().Open(ChainSpec.Parse($"coredump:\"{Raw}\",cache=auto -> native-sample-os"));
        using var off = Host().Open(ChainSpec.Parse($"coredump:\"{Raw}\" -> native-sample-os"));

        Assert.That(auto.PhysicalMemory, Is.TypeOf<PageCache>());
        Assert.That(((PageCache)auto.PhysicalMemory).Capacity, Is.EqualTo(MiddlewareSettings.Default.PageCachePages));
        Assert.That(off.PhysicalMemory, Is.Not.TypeOf<PageCache>());
        var memory = auto.RequireOperatingSystem().OpenProcessMemory(auto.RequireOperatingSystem().GetProcesses()[0]);
        Span<MemoryRequest> batch = [new MemoryRequest(0x2161900, new byte[14])];
        memory.Read(batch);
        Assert.That(batch[0].Succeeded);
        Assert.That(((PageCache)auto.PhysicalMemory).Misses, Is.GreaterThan(0), "the native layer's reads went through the managed cache");
    }

    [Test]
    public void A_connector_and_an_os_layer_from_the_same_file_meet_without_a_cache_in_between()
    {
        using var same = Host(MiddlewareSettings.Default with { PageCache = PageCacheMode.Auto }).Open(ChainSpec.Parse($"native-sample:\"{Raw}\" -> native-sample-os"));
        using var forced = Host().Open(ChainSpec.Parse($"native-sample:\"{Raw}\",cache=on -> native-sample-os"));

        Assert.That(same.PhysicalMemory, Is.Not.TypeOf<PageCache>());
        Assert.That(forced.PhysicalMemory, Is.TypeOf<PageCache>());
    }

    [Test]
    public void By_default_no_page_cache_is_added()
    {
        Assert.That(MiddlewareSettings.Default.PageCache, Is.EqualTo(PageCacheMode.Off));
        using var chain = Host().Open(ChainSpec.Parse($"coredump:\"{Raw}\" -> managed-sample-os"));

        Assert.That(chain.PhysicalMemory, Is.Not.TypeOf<PageCache>());
    }

    [Test]
    public void The_configured_defaults_apply_to_every_step()
    {
        using var chain = Host(MiddlewareSettings.Default with { PageCache = PageCacheMode.On, PageCachePages = 64 }).Open(ChainSpec.Parse($"coredump:\"{Raw}\""));

        Assert.That(((PageCache)chain.PhysicalMemory).Capacity, Is.EqualTo(64));
    }

    [TestCase("coredump:{0},tlb=off", "coredump: 'tlb' configures an OS layer's translation cache; put it on the OS step after 'coredump'")]
    [TestCase("coredump:{0} -> native-sample-os:cache=off", "native-sample-os: 'cache' configures the page cache over a connector's memory; put it on the connector step before 'native-sample-os'")]
    [TestCase("coredump:{0},cache.size=4", "coredump: unknown middleware key 'cache.size'. Middleware keys: cache, cache.pages, cache.validity, tlb, tlb.entries, tlb.validity")]
    [TestCase("coredump:{0},cache=sometimes", "coredump: 'cache=sometimes' is not valid; expected auto, on or off")]
    [TestCase("coredump:{0},cache.pages=0x0", "'cache.pages=0x0' is not valid; expected a number from 1 to 16777216")]
    [TestCase("coredump:{0} -> native-sample-os:tlb.validity=later", "'tlb.validity=later' is not valid; expected forever or a duration")]
    [TestCase("coredump:{0},path=/other", "coredump: the argument 'path' is given twice")]
    [TestCase("coredump:{0} -> native-sample-os:ram", "native-sample-os: takes no bare value ('ram'); write key=value. Accepted: pid, name")]
    public void Bad_middleware_and_bad_arguments_are_refused_before_any_plugin_runs(string chain, string expected)
    {
        var error = Assert.Throws<PluginArgumentException>(() => Host().Open(ChainSpec.Parse(string.Format(System.Globalization.CultureInfo.InvariantCulture, chain, $"\"{Raw}\""))));

        Assert.That(error!.Message, Does.Contain(expected));
    }

    [Test]
    public void The_bare_first_value_is_the_default_argument()
    {
        using var bare = Host().Open(ChainSpec.Parse($"coredump:\"{Raw}\""));
        using var keyed = Host().Open(ChainSpec.Parse($"coredump:path=\"{Raw}\""));

        Assert.That(bare.PhysicalMemory.Metadata, Is.EqualTo(keyed.PhysicalMemory.Metadata));
        Assert.That(PluginHost.DefaultParameter(Host().GetParameters(Host().Resolve("coredump")))!.Name, Is.EqualTo("path"), "coredump marks none: its one required parameter is the default");
    }

    [Test]
    public void Steps_in_the_wrong_order_are_refused_listing_what_would_fit()
    {
        var host = Host();

        Assert.That(() => host.Open(ChainSpec.Parse("native-sample-os -> coredump:x")),
            Throws.TypeOf<PluginException>().With.Message.Contains("starts with 'native-sample-os', an OS layer; a chain starts with a connector. Connectors: coredump, managed-sample, native-sample"));
        Assert.That(() => host.Open(ChainSpec.Parse("coredump:x -> native-sample:y")),
            Throws.TypeOf<PluginException>().With.Message.Contains("after a connector comes an OS layer that reads its memory. OS layers: managed-sample-os, native-sample-os"));
        Assert.That(() => host.Open(ChainSpec.Parse("coredump:x -> native-sample-os -> managed-sample-os")),
            Throws.TypeOf<PluginException>().With.Message.Contains("OS layer 'managed-sample-os' follows OS layer 'native-sample-os'"));
    }

    [Test]
    public void A_connector_that_cannot_read_through_an_os_is_refused_after_one_naming_those_that_can()
    {
        var error = Assert.Throws<PluginException>(() => Host().Open(ChainSpec.Parse($"coredump:\"{Raw}\" -> native-sample-os -> coredump:\"{Raw}\"")));

        Assert.That(error!.Message, Does.Contain("connector 'coredump' cannot take an OS as its input; it only starts a chain. Connectors that read through an OS: managed-sample, native-sample."));
    }

    [Test]
    public void Os_layers_are_told_their_tlb_settings()
    {
        var settings = MiddlewareSettings.Default.With("test", "tlb.entries", "2k").With("test", "tlb.validity", "1.5s").With("test", "tlb", "off");

        Assert.That(settings.TlbEntries, Is.EqualTo(2048));
        Assert.That(settings.TlbMaxAge, Is.EqualTo(TimeSpan.FromSeconds(1.5)));
        Assert.That(settings.Tlb, Is.False);
        Assert.That(MiddlewareSettings.TryParseValidity("forever", out var forever) && forever is null);
        Assert.That(MiddlewareSettings.TryParseValidity("-5s", out _), Is.False);
        Assert.That(MiddlewareSettings.TryParseValidity("5 days", out _), Is.False);
    }
}
