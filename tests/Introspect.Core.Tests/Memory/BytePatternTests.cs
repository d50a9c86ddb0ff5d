using System.Text;
using Introspect.Core.Memory;

namespace Introspect.Core.Tests.Memory;

public sealed class BytePatternTests
{
    [TestCase("4d 5a ?? 00")]
    [TestCase("4d5a??00")]
    [TestCase("  4D5A ??00\t")]
    public void Spaced_and_packed_forms_parse_alike(string text)
    {
        var pattern = BytePattern.Parse(text);
        Assert.That(pattern.Length, Is.EqualTo(4));
        Assert.That(pattern.HasWildcards, Is.True);
        Assert.That(pattern.ToString(), Is.EqualTo("4d 5a ?? 00"));
        Assert.That(pattern.IsMatch([0x4d, 0x5a, 0x90, 0x00, 0x01]), Is.True);
        Assert.That(pattern.IsMatch([0x4d, 0x5a, 0x90, 0x01]), Is.False);
        Assert.That(pattern.IsMatch([0x4d, 0x5a, 0x90]), Is.False, "too short");
    }

    [TestCase("", "empty")]
    [TestCase("   ", "empty")]
    [TestCase("4d5", "odd number")]
    [TestCase("4d 5", "odd number")]
    [TestCase("4g", "'4g'")]
    [TestCase("4?", "'4?'")]
    [TestCase("0x4d", "'0x'")]
    public void Malformed_patterns_say_what_is_wrong(string text, string mentioned)
    {
        Assert.That(() => BytePattern.Parse(text), Throws.TypeOf<FormatException>().With.Message.Contains(mentioned));
    }

    [Test]
    public void Text_patterns_use_the_encoding()
    {
        Assert.That(BytePattern.FromText("MZ").ToString(), Is.EqualTo("4d 5a"));
        Assert.That(BytePattern.FromText("MZ", Encoding.Unicode).ToString(), Is.EqualTo("4d 00 5a 00"));
        Assert.That(BytePattern.FromText("é").Length, Is.EqualTo(2));
        Assert.That(() => BytePattern.FromText(""), Throws.ArgumentException);
        Assert.That(BytePattern.FromText("MZ").HasWildcards, Is.False);
    }

    [Test]
    public void The_anchor_is_the_longest_fixed_run()
    {
        var pattern = BytePattern.Parse("01 ?? 02 03 04 ?? 05 06");
        Assert.That(pattern.AnchorOffset, Is.EqualTo(2));
        Assert.That(pattern.Anchor.ToArray(), Is.EqualTo(new byte[] { 2, 3, 4 }));
        Assert.That(BytePattern.Parse("?? ??").Anchor.IsEmpty, Is.True);
    }
}
