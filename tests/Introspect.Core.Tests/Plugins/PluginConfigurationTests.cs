using System.Text;
using Introspect.Core.Chains;
using Introspect.Core.Plugins;
using Introspect.TestSupport;

namespace Introspect.Core.Tests.Plugins;

/// <summary>plugins.json: the shipped file, and every kind of mistake named with its line.</summary>
public class PluginConfigurationTests
{
    private const string Path = "/etc/introspect/plugins.json";

    private static PluginConfiguration Parse(string json) => PluginConfiguration.Parse(Encoding.UTF8.GetBytes(json), Path);

    [Test]
    public void The_repository_s_plugins_json_is_valid_and_holds_the_documented_defaults()
    {
        var configuration = PluginConfiguration.LoadFile(System.IO.Path.Combine(TestInputs.RepositoryRoot, "plugins.json"));

        Assert.That(configuration.Middleware, Is.EqualTo(MiddlewareSettings.Default));
        Assert.That(configuration.Chains, Is.Not.Empty);
        foreach (var (name, chain) in configuration.Chains)
            Assert.That(() => configuration.ResolveChain("@" + name), Throws.Nothing, name);
    }

    [Test]
    public void A_full_file_with_comments_and_trailing_commas_is_read()
    {
        var configuration = Parse("""
            // where else to look
            {
              "pluginPaths": ["plugins", "/opt/introspect/plugins", ],
              "middleware": { "cache": "on", "cache.pages": "8k", "cache.validity": "250ms", "tlb": false, "tlb.entries": 1024, "tlb.validity": "forever" },
              "chains": { "myguest": "coredump:/data/guest.raw -> linux", "raw": "coredump:path=/data/x.raw" },
            }
            """);

        Assert.That(configuration.Path, Is.EqualTo(Path));
        Assert.That(configuration.PluginPaths, Is.EqualTo(new[] { "/etc/introspect/plugins", "/opt/introspect/plugins" }));
        Assert.That(configuration.Middleware, Is.EqualTo(new MiddlewareSettings
        {
            PageCache = PageCacheMode.On,
            PageCachePages = 8192,
            PageCacheMaxAge = TimeSpan.FromMilliseconds(250),
            Tlb = false,
            TlbEntries = 1024,
            TlbMaxAge = null,
        }));
        Assert.That(configuration.ResolveChain("@myguest").ToString(), Is.EqualTo("coredump:/data/guest.raw -> linux"));
        Assert.That(configuration.ResolveChain("  @raw -> linux:tlb=off").ToString(), Is.EqualTo("coredump:path=/data/x.raw -> linux:tlb=off"));
        Assert.That(configuration.ResolveChain("coredump:/y").ToString(), Is.EqualTo("coredump:/y"));
    }

    [Test]
    public void An_unknown_named_chain_lists_the_named_ones_and_the_file()
    {
        var configuration = Parse("""{ "chains": { "b": "coredump:/b", "a": "coredump:/a" } }""");

        Assert.That(() => configuration.ResolveChain("@guest"), Throws.TypeOf<PluginException>().With.Message.EqualTo($"No chain named '@guest': {Path} names @a, @b."));
        Assert.That(() => PluginConfiguration.Empty.ResolveChain("@guest"), Throws.TypeOf<PluginException>().With.Message.Contains("no plugins.json was found (looked at").And.Message.Contains("give one with --config"));
    }

    [TestCase("[]", 1, "expected an object")]
    [TestCase("{\n  \"pluginPath\": []\n}", 2, "expected one of the members pluginPaths, middleware, chains; 'pluginPath' is unknown")]
    [TestCase("{\n \"chains\": {},\n \"chains\": {}\n}", 3, "expected 'chains' once; it is given twice")]
    [TestCase("{\n  \"pluginPaths\": \"plugins\"\n}", 2, "expected 'pluginPaths' to be an array of folder paths")]
    [TestCase("{\n  \"pluginPaths\": [\n    \"a\",\n    7\n  ]\n}", 4, "expected a folder path (a non-empty string) in 'pluginPaths'")]
    [TestCase("{\n  \"middleware\": {\n    \"cache.pages\": 0\n  }\n}", 3, "'cache.pages=0' is not valid; expected a number from 1 to 16777216")]
    [TestCase("{\n  \"middleware\": {\n    \"cache.validity\": \"soon\"\n  }\n}", 3, "'cache.validity=soon' is not valid; expected forever or a duration")]
    [TestCase("{\n  \"middleware\": {\n    \"cache.size\": 4\n  }\n}", 3, "unknown middleware key 'cache.size'. Middleware keys: cache, cache.pages")]
    [TestCase("{\n  \"middleware\": {\n    \"tlb\": []\n  }\n}", 3, "expected a string, number or boolean for middleware key 'tlb'")]
    [TestCase("{\n  \"chains\": {\n    \"My Guest\": \"coredump:/x\"\n  }\n}", 3, "expected a chain name of lower-case letters")]
    [TestCase("{\n  \"chains\": {\n    \"guest\": \"coredump:a=\"\n  }\n}", 3, "chain 'guest': Chain 'coredump:a=', position 12: expected a value for 'a'")]
    [TestCase("{\n  \"chains\": {\n    \"guest\": \"coredump:a=1 ->\"\n  }\n}", 3, "expected a plugin name")]
    [TestCase("{\n  \"chains\": {\n    \"guest\": 7\n  }\n}", 3, "expected the chain of 'guest' as a string")]
    [TestCase("{\n  \"chains\": {\n    \"guest\": \"x\"\n  }\n", 5, "not valid JSON: Expected depth to be zero")]
    [TestCase("{\n  \"chains\": {\n    \"guest\": \"x\" \"y\"\n  }\n}", 3, "not valid JSON")]
    [TestCase("{} {}", 1, "not valid JSON: '{' is invalid after a single JSON value")]
    public void Mistakes_are_refused_naming_the_file_and_the_line(string json, int line, string expected)
    {
        var error = Assert.Throws<InvalidDataException>(() => Parse(json));

        Assert.That(error!.Message, Does.StartWith($"{Path}, line {line}: ").And.Contain(expected));
    }

    [Test]
    public void A_chain_that_does_not_parse_is_refused_even_though_it_is_valid_json()
    {
        var error = Assert.Throws<InvalidDataException>(() => Parse("{ \"chains\": { \"guest\": \"coredump:a=1,,b=2\" } }"));

        Assert.That(error!.Message, Does.Contain("chain 'guest'"));
    }

    [Test]
    public void An_explicit_file_that_does_not_exist_is_an_error_and_no_file_is_the_empty_configuration()
    {
        Assert.That(() => PluginConfiguration.Load("/nonexistent/plugins.json"), Throws.TypeOf<FileNotFoundException>().With.Message.Contains("/nonexistent/plugins.json"));
        Assert.That(PluginConfiguration.Empty.PluginPaths, Is.Empty);
        Assert.That(PluginConfiguration.Empty.Middleware, Is.EqualTo(MiddlewareSettings.Default));
    }

    [Test]
    public void A_huge_file_is_refused_before_it_is_read()
    {
        var path = System.IO.Path.Combine(Directory.CreateTempSubdirectory("introspect-config-").FullName, "plugins.json");
        using (var file = File.Create(path))
            file.SetLength(8 << 20);

        Assert.That(() => PluginConfiguration.LoadFile(path), Throws.TypeOf<InvalidDataException>().With.Message.Contains("a configuration holds at most 4194304"));
        Directory.Delete(System.IO.Path.GetDirectoryName(path)!, recursive: true);
    }
}
