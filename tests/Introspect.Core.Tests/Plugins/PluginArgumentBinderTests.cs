using Introspect.Abi;
using Introspect.Core.Plugins;

namespace Introspect.Core.Tests.Plugins;

public class PluginArgumentBinderTests
{
    private static readonly PluginParameter[] Parameters =
    [
        new("path", PluginParameterType.Path, "the file") { Required = true },
        new("size", PluginParameterType.Number, "a size"),
        new("write", PluginParameterType.Boolean, "allow writes") { DefaultValue = "off" },
        new("format", PluginParameterType.Choice, "the format") { Choices = ["raw", "elf"], DefaultValue = "raw" },
    ];

    private static PluginArguments Bind(params (string Key, string Value)[] given) =>
        PluginArgumentBinder.Bind("test", Parameters, given.Select(g => KeyValuePair.Create(g.Key, g.Value)));

    [Test]
    public void Known_arguments_pass_and_defaults_are_filled_in()
    {
        var arguments = Bind(("path", "/x"), ("size", "0x1000"));

        Assert.That(arguments.GetString("path"), Is.EqualTo("/x"));
        Assert.That(arguments.GetNumber("size"), Is.EqualTo(0x1000UL));
        Assert.That(arguments.GetBoolean("write"), Is.False);
        Assert.That(arguments.GetString("format"), Is.EqualTo("raw"));
    }

    [TestCase("4096", 4096UL)]
    [TestCase("0x1000", 4096UL)]
    [TestCase("0X1f", 31UL)]
    [TestCase("4k", 4096UL)]
    [TestCase("2m", 2UL << 20)]
    [TestCase("1G", 1UL << 30)]
    [TestCase("18446744073709551615", ulong.MaxValue)]
    public void Numbers_take_decimal_hex_and_binary_suffixes(string text, ulong expected)
    {
        Assert.That(Bind(("path", "/x"), ("size", text)).GetNumber("size"), Is.EqualTo(expected));
    }

    [TestCase("ff")]
    [TestCase("1000h")]
    [TestCase("-1")]
    [TestCase("18446744073709551616")]
    [TestCase("99999999999999999g")]
    public void Numbers_in_other_forms_are_refused_not_misread(string text)
    {
        var error = Assert.Throws<PluginArgumentException>(() => Bind(("path", "/x"), ("size", text)));

        Assert.That(error!.Message, Does.Contain($"size={text}").And.Contain("0x-prefixed hexadecimal"));
    }

    [Test]
    public void An_unknown_key_is_an_error_that_lists_the_accepted_ones()
    {
        var error = Assert.Throws<PluginArgumentException>(() => Bind(("path", "/x"), ("pathh", "/y")));

        Assert.That(error!.Message, Does.Contain("unknown argument 'pathh'").And.Contain("path, size, write, format"));
    }

    [Test]
    public void A_missing_required_key_a_bad_boolean_and_a_bad_choice_are_errors()
    {
        Assert.That(() => Bind(("size", "1")), Throws.TypeOf<PluginArgumentException>().With.Message.Contains("'path' is required"));
        Assert.That(() => Bind(("path", "/x"), ("write", "maybe")), Throws.TypeOf<PluginArgumentException>().With.Message.Contains("not a boolean"));
        Assert.That(() => Bind(("path", "/x"), ("format", "lime")), Throws.TypeOf<PluginArgumentException>().With.Message.Contains("not one of raw, elf"));
        Assert.That(() => Bind(("path", "/x"), ("PATH", "/y")), Throws.TypeOf<PluginArgumentException>().With.Message.Contains("given twice"));
    }
}
