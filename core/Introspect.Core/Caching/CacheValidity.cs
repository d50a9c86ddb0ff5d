namespace Introspect.Core.Caching;

/// <summary>When a cached entry stops being trusted: a policy stamps each entry when it is filled and judges the stamp later.</summary>
/// <remarks>
/// A dump never changes, so its caches can keep entries <see cref="Forever"/>; live memory (a running VM, a DMA card)
/// changes under the reader, so its caches keep entries for a short time (<see cref="ForTime"/>) or until the owner
/// says the world moved on (<see cref="ForGeneration"/>, for example once per refresh of a process list).
/// </remarks>
public abstract class CacheValidity
{
    private protected CacheValidity() { }

    /// <summary>Entries never expire (for sources that cannot change, such as dump files).</summary>
    public static CacheValidity Forever { get; } = new ForeverValidity();

    /// <summary>Entries are valid for <paramref name="maxAge"/> after they were filled.</summary>
    /// <param name="maxAge">How long an entry lives; must be positive.</param>
    /// <param name="clock">The clock to measure with; <see cref="TimeProvider.System"/> when null.</param>
    public static CacheValidity ForTime(TimeSpan maxAge, TimeProvider? clock = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(maxAge, TimeSpan.Zero);
        return new TimeValidity(maxAge, clock ?? TimeProvider.System);
    }

    /// <summary>Entries are valid until <paramref name="generation"/> advances past the one they were filled in.</summary>
    public static CacheValidity ForGeneration(CacheGeneration generation)
    {
        ArgumentNullException.ThrowIfNull(generation);
        return new GenerationValidity(generation);
    }

    /// <summary>The stamp of an entry filled now.</summary>
    /// <remarks>Take it before reading the data to be cached, so that an entry is never judged fresher than its bytes.</remarks>
    public abstract long Stamp();

    /// <summary>Whether an entry stamped with <paramref name="stamp"/> may still be used.</summary>
    public abstract bool IsValid(long stamp);

    private sealed class ForeverValidity : CacheValidity
    {
        public override long Stamp() => 0;

        public override bool IsValid(long stamp) => true;

        public override string ToString() => "forever";
    }

    private sealed class TimeValidity : CacheValidity
    {
        private readonly TimeProvider _clock;
        private readonly ulong _maxTicks;
        private readonly TimeSpan _maxAge;

        public TimeValidity(TimeSpan maxAge, TimeProvider clock)
        {
            _clock = clock;
            _maxAge = maxAge;
            // In the clock's own timestamp units, saturating: an age of years is as good as forever.
            double ticks = maxAge.TotalSeconds * clock.TimestampFrequency;
            _maxTicks = ticks >= ulong.MaxValue ? ulong.MaxValue : Math.Max(1UL, (ulong)ticks);
        }

        public override long Stamp() => _clock.GetTimestamp();

        // Unsigned difference: a clock that went backwards makes the age huge, which expires the entry.
        public override bool IsValid(long stamp) => unchecked((ulong)(_clock.GetTimestamp() - stamp)) < _maxTicks;

        public override string ToString() => $"time:{_maxAge}";
    }

    private sealed class GenerationValidity(CacheGeneration generation) : CacheValidity
    {
        public override long Stamp() => generation.Current;

        public override bool IsValid(long stamp) => generation.Current == stamp;

        public override string ToString() => $"generation:{generation.Current}";
    }
}

/// <summary>A counter that invalidates every cache entry stamped before it advanced.</summary>
public sealed class CacheGeneration
{
    private long _current;

    /// <summary>The generation new entries are stamped with.</summary>
    public long Current => Volatile.Read(ref _current);

    /// <summary>Moves to a new generation: entries filled before now become invalid.</summary>
    public void Advance() => Interlocked.Increment(ref _current);
}
