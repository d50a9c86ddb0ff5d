using Introspect.Core.Caching;

namespace Introspect.Core.Tests.Caching;

public sealed class CacheValidityTests
{
    [Test]
    public void A_time_policy_keeps_entries_for_their_age_only()
    {
        var clock = new ManualClock();
        var validity = CacheValidity.ForTime(TimeSpan.FromMilliseconds(100), clock);
        long stamp = validity.Stamp();
        clock.Advance(TimeSpan.FromMilliseconds(99));
        Assert.That(validity.IsValid(stamp), Is.True);
        clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.That(validity.IsValid(stamp), Is.False);
        Assert.That(validity.IsValid(validity.Stamp()), Is.True);
    }

    [Test]
    public void A_clock_that_goes_back_expires_the_entry()
    {
        var clock = new ManualClock();
        clock.Advance(TimeSpan.FromSeconds(10));
        var validity = CacheValidity.ForTime(TimeSpan.FromSeconds(1), clock);
        long stamp = validity.Stamp();
        clock.Advance(TimeSpan.FromSeconds(-5));
        Assert.That(validity.IsValid(stamp), Is.False);
    }

    [Test]
    public void A_generation_policy_keeps_entries_until_the_generation_advances()
    {
        var generation = new CacheGeneration();
        var validity = CacheValidity.ForGeneration(generation);
        long stamp = validity.Stamp();
        Assert.That(validity.IsValid(stamp), Is.True);
        generation.Advance();
        Assert.That(validity.IsValid(stamp), Is.False);
        Assert.That(generation.Current, Is.EqualTo(1));
        Assert.That(validity.IsValid(validity.Stamp()), Is.True);
    }

    [Test]
    public void Forever_is_forever_and_bad_ages_are_refused()
    {
        Assert.That(CacheValidity.Forever.IsValid(CacheValidity.Forever.Stamp()), Is.True);
        Assert.That(() => CacheValidity.ForTime(TimeSpan.Zero), Throws.InstanceOf<ArgumentOutOfRangeException>());
        var validity = CacheValidity.ForTime(TimeSpan.MaxValue, new ManualClock());
        Assert.That(validity.IsValid(validity.Stamp()), Is.True);
    }
}
