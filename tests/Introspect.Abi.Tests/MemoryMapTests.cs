using Introspect.Abi;

namespace Introspect.Abi.Tests;

public class MemoryMapTests
{
    [Test]
    public void Ranges_are_sorted_and_continuing_ranges_merge()
    {
        var map = new MemoryMap([
            new MemoryRange(0x100000, 0x1000, 0x5000),
            new MemoryRange(0, 0xa0000),
            new MemoryRange(0x101000, 0x1000, 0x6000),
            new MemoryRange(0x102000, 0x1000, 0x9000),
        ]);

        Assert.That(map.Ranges.ToArray(), Is.EqualTo(new[]
        {
            new MemoryRange(0, 0xa0000),
            new MemoryRange(0x100000, 0x2000, 0x5000),
            new MemoryRange(0x102000, 0x1000, 0x9000),
        }));
        Assert.That(map.TotalSize, Is.EqualTo(0xa0000UL + 0x3000));
        Assert.That(map.MaxAddress, Is.EqualTo(0x102fffUL));
    }

    [Test]
    public void Translation_finds_the_backing_address_and_what_stays_contiguous()
    {
        var map = new MemoryMap([new MemoryRange(0, 0xa0000), new MemoryRange(0x100000, 0x2000, 0x5000)]);

        Assert.That(map.TryTranslate(0x100010, out var backing, out var contiguous));
        Assert.That(backing, Is.EqualTo(0x5010UL));
        Assert.That(contiguous, Is.EqualTo(0x1ff0UL));
        Assert.That(map.TryTranslate(0x9ffff, out backing, out contiguous));
        Assert.That((backing, contiguous), Is.EqualTo((0x9ffffUL, 1UL)));
        Assert.That(map.TryTranslate(0xa0000, out _, out _), Is.False);
        Assert.That(map.TryTranslate(0x102000, out _, out _), Is.False);
        Assert.That(map.IndexOf(ulong.MaxValue), Is.EqualTo(-1));
    }

    [Test]
    public void A_range_at_the_very_top_of_the_address_space_does_not_overflow()
    {
        var map = new MemoryMap([new MemoryRange(ulong.MaxValue - 0xfff, 0x1000)]);

        Assert.That(map.MaxAddress, Is.EqualTo(ulong.MaxValue));
        Assert.That(map.IndexOf(ulong.MaxValue), Is.Zero);
        Assert.That(map.IndexOf(ulong.MaxValue - 0x1000), Is.EqualTo(-1));
    }

    [Test]
    public void Overlapping_empty_and_wrapping_ranges_are_refused()
    {
        Assert.That(() => new MemoryMap([new MemoryRange(0, 0x2000), new MemoryRange(0x1000, 0x1000)]), Throws.ArgumentException.With.Message.Contains("overlap"));
        Assert.That(() => new MemoryMap([new MemoryRange(0, 0)]), Throws.ArgumentException.With.Message.Contains("empty"));
        Assert.That(() => new MemoryMap([new MemoryRange(ulong.MaxValue, 2)]), Throws.ArgumentException.With.Message.Contains("wraps"));
    }

    [Test]
    public void The_text_form_round_trips_and_accepts_comments_and_dashes()
    {
        var map = MemoryMap.Parse("# guest RAM\n0x0 0x9ffff\n0x100000-0x7ffffff\n100000000 13fffffff c0000000 # high RAM\n");

        Assert.That(map.Ranges.ToArray(), Is.EqualTo(new[]
        {
            new MemoryRange(0, 0xa0000),
            new MemoryRange(0x100000, 0x7f00000),
            new MemoryRange(0x100000000, 0x40000000, 0xc0000000),
        }));
        Assert.That(MemoryMap.Parse(map.ToString()).Ranges.ToArray(), Is.EqualTo(map.Ranges.ToArray()));
    }

    [TestCase("0x1000", "line 1")]
    [TestCase("0x0 0xfff\n0x2000 0x1000", "line 2")]
    [TestCase("0x0 zz", "line 1")]
    [TestCase("0x0 0xfff 0x1 0x2", "line 1")]
    [TestCase("0x0 0xfff 0xq", "backing address")]
    [TestCase("0x0 0x1fff\n0x1000 0x2fff", "overlap")]
    public void Malformed_text_names_the_line(string text, string expected)
    {
        Assert.That(() => MemoryMap.Parse(text), Throws.TypeOf<FormatException>().With.Message.Contains(expected));
    }
}
