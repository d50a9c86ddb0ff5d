using System.Globalization;

namespace Introspect.Core;

/// <summary>One configuration value of a machine: its name, what it does, and whether it can be set.</summary>
public sealed record MachineConfigKey(string Name, string Description, bool IsWritable);

/// <summary>The values that tune a <see cref="Machine"/> (MemProcFS's <c>get_config</c> / <c>set_config</c>, and its <c>/conf</c> folder).</summary>
/// <remarks>
/// Every value is an unsigned number, as in MemProcFS. The OS layer's own caches (its translation cache) belong to
/// the chain: configure them with the chain's middleware keys, not here.
/// </remarks>
public sealed class MachineConfig
{
    /// <summary>How long (ms) process lists, memory areas and modules are kept before they are read again; 0 keeps them until a refresh.</summary>
    public const string RefreshPeriodKey = "refresh_period_ms";

    /// <summary>How many 4 KiB pages the machine's own physical page cache holds; 0 turns it off (the default).</summary>
    public const string CachePagesKey = "cache_pages";

    /// <summary>How long (ms) a cached page may be used; 0 keeps it until a refresh.</summary>
    public const string CacheTimeToLiveKey = "cache_ttl_ms";

    /// <summary>What is logged: 0 errors, 1 warnings (the default), 2 information, 3 debug, 4 trace.</summary>
    public const string VerbosityKey = "verbosity";

    /// <summary>Writing any value drops every snapshot now; reading gives how many refreshes there were.</summary>
    public const string RefreshKey = "refresh";

    /// <summary>Read only: the highest physical address that may be readable.</summary>
    public const string MaxAddressKey = "memory_max_address";

    /// <summary>Read only: 1 when the machine's memory refuses writes.</summary>
    public const string ReadOnlyKey = "memory_read_only";

    /// <summary>Read only: reads the machine's page cache answered.</summary>
    public const string CacheHitsKey = "cache_hits";

    /// <summary>Read only: reads the machine's page cache had to pass down.</summary>
    public const string CacheMissesKey = "cache_misses";

    private const ulong MaxMilliseconds = 24UL * 3600 * 1000;
    private const ulong MaxCachePages = 1 << 22; // 16 GiB of pages: beyond that the cache is a mistake

    private readonly Machine _machine;
    private long _refreshPeriodMs = 5000;
    private long _cachePages;
    private long _cacheTtlMs = 1000;

    internal MachineConfig(Machine machine) => _machine = machine;

    /// <summary>Every key, in a stable order.</summary>
    public static IReadOnlyList<MachineConfigKey> Keys { get; } =
    [
        new(RefreshPeriodKey, "how long (ms) process lists, memory areas and modules are kept; 0 = until a refresh", true),
        new(CachePagesKey, "4 KiB pages in the machine's physical page cache; 0 = off", true),
        new(CacheTimeToLiveKey, "how long (ms) a cached page is used; 0 = until a refresh", true),
        new(VerbosityKey, "0 errors, 1 warnings, 2 information, 3 debug, 4 trace", true),
        new(RefreshKey, "write any value to refresh now; reads the number of refreshes", true),
        new(MaxAddressKey, "the highest physical address that may be readable", false),
        new(ReadOnlyKey, "1 when memory refuses writes", false),
        new(CacheHitsKey, "reads the machine's page cache answered", false),
        new(CacheMissesKey, "reads the machine's page cache passed down", false),
    ];

    internal TimeSpan RefreshPeriod => TimeSpan.FromMilliseconds(Interlocked.Read(ref _refreshPeriodMs));

    internal ulong CachePages => (ulong)Interlocked.Read(ref _cachePages);

    internal TimeSpan CacheTimeToLive => TimeSpan.FromMilliseconds(Interlocked.Read(ref _cacheTtlMs));

    /// <summary>The value of <paramref name="key"/>.</summary>
    /// <exception cref="KeyNotFoundException">No such key; the message lists them.</exception>
    public ulong Get(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return key switch
        {
            RefreshPeriodKey => (ulong)Interlocked.Read(ref _refreshPeriodMs),
            CachePagesKey => CachePages,
            CacheTimeToLiveKey => (ulong)Interlocked.Read(ref _cacheTtlMs),
            VerbosityKey => (ulong)_machine.Logging.Verbosity,
            RefreshKey => (ulong)_machine.RefreshCount,
            MaxAddressKey => _machine.PhysicalLayer.Metadata.MaxAddress,
            ReadOnlyKey => _machine.PhysicalLayer.Metadata.ReadOnly ? 1UL : 0UL,
            CacheHitsKey => (ulong)(_machine.Cache?.Hits ?? 0),
            CacheMissesKey => (ulong)(_machine.Cache?.Misses ?? 0),
            _ => throw Unknown(key),
        };
    }

    /// <summary>Sets <paramref name="key"/> to <paramref name="value"/>; it takes effect at once.</summary>
    /// <exception cref="KeyNotFoundException">No such key; the message lists them.</exception>
    /// <exception cref="ArgumentException">The key is read-only, or the value is out of its range (the message says which).</exception>
    public void Set(string key, ulong value)
    {
        ArgumentNullException.ThrowIfNull(key);
        switch (key)
        {
            case RefreshPeriodKey:
                Interlocked.Exchange(ref _refreshPeriodMs, (long)InRange(key, value, MaxMilliseconds));
                break;
            case CachePagesKey:
                Interlocked.Exchange(ref _cachePages, (long)InRange(key, value, MaxCachePages));
                _machine.RebuildCache();
                break;
            case CacheTimeToLiveKey:
                Interlocked.Exchange(ref _cacheTtlMs, (long)InRange(key, value, MaxMilliseconds));
                _machine.RebuildCache();
                break;
            case VerbosityKey:
                _machine.Logging.Verbosity = (int)InRange(key, value, 4);
                break;
            case RefreshKey:
                _machine.Refresh();
                break;
            case MaxAddressKey or ReadOnlyKey or CacheHitsKey or CacheMissesKey:
                throw new ArgumentException($"The configuration value '{key}' is read-only.", nameof(key));
            default:
                throw Unknown(key);
        }
    }

    /// <summary>Sets <paramref name="key"/> from text: decimal or 0x hexadecimal (what <c>/conf</c> files take).</summary>
    /// <exception cref="ArgumentException">The text is not a number, or as <see cref="Set(string, ulong)"/>.</exception>
    public void Set(string key, string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (!Abi.PluginArguments.TryParseNumber(value, out var number))
            throw new ArgumentException($"The configuration value '{key}' takes a number (decimal or 0x hexadecimal); '{value}' is not one.", nameof(value));
        Set(key, number);
    }

    /// <summary>The value of <paramref name="key"/> as <c>/conf</c> shows it: decimal, and a newline.</summary>
    public string GetText(string key) => Get(key).ToString(CultureInfo.InvariantCulture) + "\n";

    private static ulong InRange(string key, ulong value, ulong max) =>
        value <= max ? value : throw new ArgumentException($"The configuration value '{key}' is at most {max}; {value} was given.", nameof(value));

    private static KeyNotFoundException Unknown(string key) =>
        new($"No configuration value '{key}'; the values are: {string.Join(", ", Keys.Select(k => k.Name))}.");
}
