using System.Globalization;
using Introspect.Abi;

namespace Introspect.Core.Chains;

/// <summary>When the host puts a page cache over a connector step.</summary>
public enum PageCacheMode
{
    /// <summary>
    /// When an OS layer reads the connector (page-table walks hit the same pages again and again); not when the chain
    /// ends in the connector, and not between a connector and an OS layer from the same plugin file, which are made
    /// for each other (a client and the OS its server found) and may need to meet unwrapped.
    /// </summary>
    Auto,
    /// <summary>Always.</summary>
    On,
    /// <summary>Never.</summary>
    Off,
}

/// <summary>
/// The caches the host wraps around a chain's steps: a page cache over a connector's memory
/// (<see cref="Caching.PageCache"/>) and the translation cache an OS layer is asked to keep.
/// </summary>
/// <remarks>
/// Set as defaults in <c>plugins.json</c>'s <c>middleware</c> object and per step with the same keys:
/// <c>cache=auto|on|off</c>, <c>cache.pages=N</c>, <c>cache.validity=forever|DURATION</c> on connector steps,
/// <c>tlb=on|off</c>, <c>tlb.entries=N</c>, <c>tlb.validity=forever|DURATION</c> on OS steps. A duration is a number
/// with <c>ms</c>, <c>s</c>, <c>m</c> or <c>h</c>. The host takes these keys off a step before the plugin sees its
/// arguments, so no plugin can have a parameter named <c>cache</c>, <c>tlb</c> or starting with <c>cache.</c>/<c>tlb.</c>.
/// </remarks>
public sealed record MiddlewareSettings
{
    /// <summary>The keys a chain step or <c>plugins.json</c> may set.</summary>
    public static IReadOnlyList<string> Keys { get; } = ["cache", "cache.pages", "cache.validity", "tlb", "tlb.entries", "tlb.validity"];

    /// <summary>No page cache (when on: 4096 pages, 16 MiB, valid forever); TLB on, 4096 entries, valid forever.</summary>
    /// <remarks>
    /// The page cache is off by default because today's connectors serve memory-mapped or already-cached files,
    /// where copying through a cache costs more than reading again (measured with <c>introspect bench</c>); turn it on
    /// (<c>auto</c> or <c>on</c>) for sources where a read is slow: a live machine, a DMA card, a remote server.
    /// </remarks>
    public static MiddlewareSettings Default { get; } = new();

    public PageCacheMode PageCache { get; init; } = PageCacheMode.Off;

    /// <summary>How many 4 KiB pages the page cache holds.</summary>
    public int PageCachePages { get; init; } = 4096;

    /// <summary>How long a cached page may be used; null for as long as it is kept (right for dump files, not for live machines).</summary>
    public TimeSpan? PageCacheMaxAge { get; init; }

    public bool Tlb { get; init; } = true;

    /// <summary>How many translations the OS layer's TLB holds.</summary>
    public int TlbEntries { get; init; } = 4096;

    public TimeSpan? TlbMaxAge { get; init; }

    /// <summary>Whether <paramref name="key"/> is a middleware key (the host's, not the plugin's).</summary>
    public static bool IsMiddlewareKey(string key) =>
        key is "cache" or "tlb" || key.StartsWith("cache.", StringComparison.Ordinal) || key.StartsWith("tlb.", StringComparison.Ordinal);

    /// <summary>Whether <paramref name="key"/> configures a connector step (the page cache) rather than an OS step (the TLB).</summary>
    public static bool IsConnectorKey(string key) => key == "cache" || key.StartsWith("cache.", StringComparison.Ordinal);

    /// <summary>These settings with one key set.</summary>
    /// <param name="where">Who gave the key, for messages (a plugin name, or <c>plugins.json line 7</c>).</param>
    /// <param name="key">One of <see cref="Keys"/>.</param>
    /// <param name="value">Its value as text.</param>
    /// <exception cref="PluginArgumentException">An unknown key or a bad value; the message names both and what was expected.</exception>
    public MiddlewareSettings With(string where, string key, string value)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        switch (key)
        {
            case "cache":
                return this with
                {
                    PageCache = value.Trim().ToLowerInvariant() switch
                    {
                        "auto" => PageCacheMode.Auto,
                        _ when PluginArguments.TryParseBoolean(value, out bool on) => on ? PageCacheMode.On : PageCacheMode.Off,
                        _ => throw Bad(where, key, value, "auto, on or off"),
                    },
                };
            case "cache.pages":
                return this with { PageCachePages = Count(where, key, value, 1 << 24) };
            case "cache.validity":
                return this with { PageCacheMaxAge = Validity(where, key, value) };
            case "tlb":
                return PluginArguments.TryParseBoolean(value, out bool tlb) ? this with { Tlb = tlb } : throw Bad(where, key, value, "on or off");
            case "tlb.entries":
                return this with { TlbEntries = Count(where, key, value, 1 << 26) };
            case "tlb.validity":
                return this with { TlbMaxAge = Validity(where, key, value) };
            default:
                throw new PluginArgumentException($"{where}: unknown middleware key '{key}'. Middleware keys: {string.Join(", ", Keys)}.");
        }
    }

    /// <summary>Parses a validity: <c>forever</c>, or a positive duration such as <c>250ms</c>, <c>2s</c>, <c>5m</c>, <c>1h</c>.</summary>
    public static bool TryParseValidity(string text, out TimeSpan? maxAge)
    {
        maxAge = null;
        var span = text.AsSpan().Trim();
        if (span.Equals("forever", StringComparison.OrdinalIgnoreCase))
            return true;
        (string unit, double scale)[] units = [("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600)];
        foreach (var (unit, scale) in units)
        {
            if (!span.EndsWith(unit, StringComparison.OrdinalIgnoreCase))
                continue;
            if (!double.TryParse(span[..^unit.Length], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double amount) || amount <= 0 || amount * scale > TimeSpan.MaxValue.TotalSeconds / 2)
                return false;
            maxAge = TimeSpan.FromSeconds(amount * scale);
            return true;
        }
        return false;
    }

    /// <summary>The validity policy of a cache with this maximum age.</summary>
    public static Caching.CacheValidity ToValidity(TimeSpan? maxAge) =>
        maxAge is { } age ? Caching.CacheValidity.ForTime(age) : Caching.CacheValidity.Forever;

    private static TimeSpan? Validity(string where, string key, string value) =>
        TryParseValidity(value, out var maxAge) ? maxAge : throw Bad(where, key, value, "forever or a duration such as 250ms, 2s, 5m");

    private static int Count(string where, string key, string value, int max) =>
        PluginArguments.TryParseNumber(value, out ulong count) && count is > 0 && count <= (ulong)max
            ? (int)count
            : throw Bad(where, key, value, $"a number from 1 to {max}");

    private static PluginArgumentException Bad(string where, string key, string value, string expected) =>
        new($"{where}: '{key}={value}' is not valid; expected {expected}.");
}
