using Introspect.Abi;

namespace Introspect.Abi.Tests;

public class PluginArgumentsTests
{
    [Test]
    public void Typed_getters_parse_and_name_the_key_when_they_cannot()
    {
        var arguments = new PluginArguments("demo", [KeyValuePair.Create("Size", "0x10"), KeyValuePair.Create("write", "yes"), KeyValuePair.Create("name", "x")]);

        Assert.That(arguments.GetNumber("size"), Is.EqualTo(16UL));
        Assert.That(arguments.GetBoolean("WRITE"), Is.True);
        Assert.That(arguments.GetNumber("missing"), Is.Null);
        Assert.That(() => arguments.GetNumber("name"), Throws.TypeOf<PluginArgumentException>().With.Message.Contains("demo: the argument 'name=x' is not a number"));
        Assert.That(() => arguments.GetRequiredString("path"), Throws.TypeOf<PluginArgumentException>().With.Message.Contains("'path' is required"));
    }

    [Test]
    public void A_key_given_twice_is_refused()
    {
        Assert.That(() => new PluginArguments("demo", [KeyValuePair.Create("a", "1"), KeyValuePair.Create("A", "2")]),
            Throws.TypeOf<PluginArgumentException>().With.Message.Contains("given twice"));
    }

    [TestCase("0x", false)]
    [TestCase("k", false)]
    [TestCase("0xk", false)]
    [TestCase(" 12 ", true)]
    [TestCase("0x10k", false)]
    [TestCase("16777216k", true)]
    [TestCase("17179869184g", false)]
    public void Number_edge_cases(string text, bool parses)
    {
        Assert.That(PluginArguments.TryParseNumber(text, out _), Is.EqualTo(parses));
    }
}
