using Introspect.Core.Chains;

namespace Introspect.Core.Tests.Chains;

public class ChainSpecTests
{
    [Test]
    public void Parses_every_step_with_versions_and_arguments()
    {
        var chain = ChainSpec.Parse("coredump:path=/data/host.elf -> linux -> qemu@1.2:name=guest1,map_base=0x100000 -> windows");

        Assert.That(chain.Steps.Select(s => s.Name), Is.EqualTo(new[] { "coredump", "linux", "qemu", "windows" }));
        Assert.That(chain.Steps[0].Arguments, Is.EqualTo(new[] { KeyValuePair.Create("path", "/data/host.elf") }));
        Assert.That(chain.Steps[2].Version, Is.EqualTo("1.2"));
        Assert.That(chain.Steps[2].Arguments, Is.EqualTo(new[] { KeyValuePair.Create("name", "guest1"), KeyValuePair.Create("map_base", "0x100000") }));
        Assert.That(chain.Steps[1].Arguments, Is.Empty);
    }

    [Test]
    public void Quoted_values_keep_commas_arrows_and_escaped_quotes()
    {
        var chain = ChainSpec.Parse("coredump:path=\"/data/a,b -> c \\\"d\\\".raw\",format=raw");

        Assert.That(chain.Steps, Has.Count.EqualTo(1));
        Assert.That(chain.Steps[0].Arguments[0].Value, Is.EqualTo("/data/a,b -> c \"d\".raw"));
        Assert.That(chain.Steps[0].Arguments[1], Is.EqualTo(KeyValuePair.Create("format", "raw")));
    }

    [Test]
    public void Writing_a_parsed_chain_gives_text_that_parses_to_the_same_chain()
    {
        var original = ChainSpec.Parse("coredump:path=\"/a, b\",format=elf->linux");
        var again = ChainSpec.Parse(original.ToString());

        Assert.That(again.ToString(), Is.EqualTo(original.ToString()));
        Assert.That(again.Steps[0].Arguments, Is.EqualTo(original.Steps[0].Arguments));
    }

    [Test]
    public void Names_are_case_insensitive_and_spaces_around_steps_are_ignored()
    {
        var chain = ChainSpec.Parse("  CoreDump : Path = /x.raw  ->  Linux ");

        Assert.That(chain.Steps[0].Name, Is.EqualTo("coredump"));
        Assert.That(chain.Steps[0].Arguments[0], Is.EqualTo(KeyValuePair.Create("path", "/x.raw")));
        Assert.That(chain.Steps[1].Name, Is.EqualTo("linux"));
    }

    [TestCase("", "expected a plugin name")]
    [TestCase("coredump ->", "expected a plugin name")]
    [TestCase("coredump:format=raw,path", "expected '=' after the argument name 'path'")]
    [TestCase("coredump:/x.raw,/y.raw", "only the first argument may be given bare")]
    [TestCase("coredump:format=raw,/y.raw", "only the first argument may be given bare")]
    [TestCase("coredump:,format=raw", "expected a value for the default argument of 'coredump'")]
    [TestCase("coredump:path=", "expected a value for 'path'")]
    [TestCase("coredump:path=\"/x", "expected a closing '\"'")]
    [TestCase("coredump@:path=x", "expected a version")]
    [TestCase("coredump linux", "expected '->' or the end of the chain")]
    [TestCase("core$dump", "expected '->' or the end of the chain")]
    public void Malformed_chains_say_where_and_what_was_expected(string text, string expected)
    {
        var error = Assert.Throws<ChainSyntaxException>(() => ChainSpec.Parse(text));

        Assert.That(error!.Message, Does.Contain(expected));
        Assert.That(error.Message, Does.Contain("position"));
    }

    [Test]
    public void The_first_bare_value_is_the_default_argument_and_keys_may_be_dotted()
    {
        var chain = ChainSpec.Parse("coredump:/data/x.raw,cache.pages=4096 -> linux:tlb=off");

        Assert.That(chain.Steps[0].DefaultValue, Is.EqualTo("/data/x.raw"));
        Assert.That(chain.Steps[0].Arguments, Is.EqualTo(new[] { KeyValuePair.Create("cache.pages", "4096") }));
        Assert.That(chain.Steps[1].DefaultValue, Is.Null);
        Assert.That(chain.Steps[1].Arguments, Is.EqualTo(new[] { KeyValuePair.Create("tlb", "off") }));
    }

    [TestCase("coredump:path", "path")]
    [TestCase("coredump:\"/a, b=c.raw\"", "/a, b=c.raw")]
    [TestCase("coredump: C:\\dumps\\x.raw ", "C:\\dumps\\x.raw")]
    public void A_bare_value_may_be_quoted_and_keeps_what_a_key_would_not(string text, string expected)
    {
        var step = ChainSpec.Parse(text).Steps[0];

        Assert.That(step.DefaultValue, Is.EqualTo(expected));
        Assert.That(step.Arguments, Is.Empty);
    }

    [TestCase("coredump:/data/x.raw,format=raw -> linux")]
    [TestCase("coredump:\"/a=b, c\\\\d\"")]
    [TestCase("native-sample@1.1:path=x")]
    public void A_chain_with_a_bare_value_writes_back_to_text_that_parses_the_same(string text)
    {
        var original = ChainSpec.Parse(text);
        var again = ChainSpec.Parse(original.ToString());

        Assert.That(again.ToString(), Is.EqualTo(original.ToString()));
        Assert.That(again.Steps[0].DefaultValue, Is.EqualTo(original.Steps[0].DefaultValue));
        Assert.That(again.Steps[0].Arguments, Is.EqualTo(original.Steps[0].Arguments));
    }
}
