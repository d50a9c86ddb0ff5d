using Introspect.Symbols.Store;

namespace Introspect.Symbols.Tests;

public class SymbolPathTests
{
    [Test]
    public void A_server_with_a_cache_a_cache_element_and_a_folder_parse_in_order()
    {
        var path = SymbolPath.Parse(@"cache*/var/cache/sym; srv*/tmp/a*/tmp/b*https://msdl.microsoft.com/download/symbols ;/opt/pdbs");

        Assert.That(path.Elements, Has.Count.EqualTo(3));
        Assert.That(path.Elements[0], Is.EqualTo(new SymbolPathElement(SymbolPathElementKind.Cache, "/var/cache/sym", [])).Using<SymbolPathElement>(SameElement));
        Assert.That(path.Elements[1].Kind, Is.EqualTo(SymbolPathElementKind.Store));
        Assert.That(path.Elements[1].Caches, Is.EqualTo(new[] { "/tmp/a", "/tmp/b" }));
        Assert.That(path.Elements[1].Location, Is.EqualTo("https://msdl.microsoft.com/download/symbols"));
        Assert.That(path.Elements[1].IsRemote, Is.True);
        Assert.That(path.Elements[2], Is.EqualTo(new SymbolPathElement(SymbolPathElementKind.Directory, "/opt/pdbs", [])).Using<SymbolPathElement>(SameElement));
        Assert.That(path.ToString(), Is.EqualTo("cache*/var/cache/sym;srv*/tmp/a*/tmp/b*https://msdl.microsoft.com/download/symbols;/opt/pdbs"));
    }

    [Test]
    public void Missing_caches_mean_the_default_cache()
    {
        Assert.That(SymbolPath.Parse("srv*http://host/symbols").Elements[0].Caches, Is.EqualTo(new[] { SymbolPath.DefaultCache }));
        Assert.That(SymbolPath.Parse("SRV**http://host/symbols").Elements[0].Caches, Is.EqualTo(new[] { SymbolPath.DefaultCache }));
        Assert.That(SymbolPath.Parse("cache*").Elements[0].Location, Is.EqualTo(SymbolPath.DefaultCache));
        Assert.That(SymbolPath.Parse("symsrv*symsrv.dll*/c*http://host").Elements[0].Caches, Is.EqualTo(new[] { "/c" }));
        Assert.That(SymbolPath.Parse("https://host/s").Elements[0].Kind, Is.EqualTo(SymbolPathElementKind.Store));
    }

    [Test]
    public void Empty_elements_are_skipped() => Assert.That(SymbolPath.Parse(";;  ;").Elements, Is.Empty);

    [TestCase("srv*")]
    [TestCase("srv*/cache*")]
    [TestCase("magic*/x")]
    public void Malformed_elements_say_what_was_expected(string text) =>
        Assert.That(() => SymbolPath.Parse(text), Throws.InstanceOf<FormatException>().With.Message.Contains("expected"));

    private static bool SameElement(SymbolPathElement a, SymbolPathElement b) =>
        a.Kind == b.Kind && a.Location == b.Location && a.Caches.SequenceEqual(b.Caches);
}
