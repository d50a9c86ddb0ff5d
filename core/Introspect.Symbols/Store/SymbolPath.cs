using System.Text;

namespace Introspect.Symbols.Store;

/// <summary>What an element of a symbol path is.</summary>
public enum SymbolPathElementKind
{
    /// <summary><c>srv*CACHE*...*UPSTREAM</c>: a symbol store (a URL or a folder in the server's layout) with the local
    /// caches that keep what it gives, nearest first.</summary>
    Store,
    /// <summary>A plain folder: <c>name.pdb</c> in it, or in the store layout below it.</summary>
    Directory,
    /// <summary><c>cache*DIR</c>: a cache consulted here that keeps whatever the elements after it find.</summary>
    Cache,
}

/// <summary>One element of a symbol path.</summary>
/// <param name="Kind">What it is.</param>
/// <param name="Location">The upstream store (a URL or folder), the folder, or the cache folder.</param>
/// <param name="Caches">For a store: its downstream caches, nearest first; otherwise empty.</param>
public sealed record SymbolPathElement(SymbolPathElementKind Kind, string Location, IReadOnlyList<string> Caches)
{
    public bool IsRemote => Location.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || Location.StartsWith("https://", StringComparison.OrdinalIgnoreCase);

    public override string ToString() => Kind switch
    {
        SymbolPathElementKind.Store => "srv*" + string.Concat(Caches.Select(c => c + "*")) + Location,
        SymbolPathElementKind.Cache => "cache*" + Location,
        _ => Location,
    };
}

/// <summary>A symbol path in the syntax of <c>_NT_SYMBOL_PATH</c>: elements separated by <c>;</c>, each
/// <c>srv*CACHE*URL</c> (a symbol server with local caches), <c>cache*DIR</c>, or a plain folder.</summary>
/// <remarks>
/// <c>srv*URL</c> without a cache, and <c>cache*</c> or an empty cache between stars, mean <see cref="DefaultCache"/>.
/// <c>symsrv*symsrv.dll*...</c> is read as <c>srv*...</c>. A URL written alone is taken as <c>srv*URL</c>.
/// </remarks>
public sealed class SymbolPath
{
    /// <summary>The environment variable debuggers read the symbol path from.</summary>
    public const string EnvironmentVariable = "_NT_SYMBOL_PATH";

    /// <summary>Microsoft's public symbol server.</summary>
    public const string MicrosoftSymbolServer = "https://msdl.microsoft.com/download/symbols";

    private SymbolPath(IReadOnlyList<SymbolPathElement> elements) => Elements = elements;

    public IReadOnlyList<SymbolPathElement> Elements { get; }

    /// <summary>Where downloaded symbols are kept by default: <c>$XDG_CACHE_HOME/introspect/symbols</c>, else
    /// <c>~/.cache/introspect/symbols</c>.</summary>
    public static string DefaultCache
    {
        get
        {
            var cacheHome = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            if (string.IsNullOrEmpty(cacheHome))
                cacheHome = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(cacheHome, "introspect", "symbols");
        }
    }

    /// <summary>Microsoft's symbol server, cached in <see cref="DefaultCache"/>.</summary>
    public static SymbolPath Default => Parse($"srv*{DefaultCache}*{MicrosoftSymbolServer}");

    /// <summary><c>_NT_SYMBOL_PATH</c> when it is set, else <see cref="Default"/>.</summary>
    public static SymbolPath FromEnvironment() =>
        Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } text ? Parse(text) : Default;

    /// <exception cref="FormatException">An element is malformed (<c>srv*</c> without an upstream).</exception>
    public static SymbolPath Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var elements = new List<SymbolPathElement>();
        foreach (var raw in text.Split(';'))
        {
            var element = raw.Trim();
            if (element.Length == 0)
                continue;
            var parts = element.Split('*');
            string keyword = parts[0].ToLowerInvariant();
            if (parts.Length > 1 && keyword is "srv" or "symsrv")
            {
                var rest = parts.Skip(keyword == "symsrv" ? 2 : 1).Select(p => p.Trim()).ToList();
                if (rest.Count == 0 || rest[^1].Length == 0)
                    throw new FormatException($"symbol path element '{element}' names no upstream store; expected srv*CACHE*URL or srv*URL.");
                var caches = rest.Take(rest.Count - 1).Select(c => c.Length == 0 ? DefaultCache : c).ToList();
                if (caches.Count == 0)
                    caches.Add(DefaultCache);
                elements.Add(new SymbolPathElement(SymbolPathElementKind.Store, rest[^1], caches));
            }
            else if (parts.Length > 1 && keyword == "cache")
            {
                string folder = string.Join('*', parts.Skip(1)).Trim();
                elements.Add(new SymbolPathElement(SymbolPathElementKind.Cache, folder.Length == 0 ? DefaultCache : folder, []));
            }
            else if (element.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || element.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
            {
                elements.Add(new SymbolPathElement(SymbolPathElementKind.Store, element, [DefaultCache]));
            }
            else if (parts.Length > 1)
            {
                throw new FormatException($"symbol path element '{element}' starts with the unknown keyword '{parts[0]}'; expected srv*, symsrv*, cache* or a folder.");
            }
            else
            {
                elements.Add(new SymbolPathElement(SymbolPathElementKind.Directory, element, []));
            }
        }
        return new SymbolPath(elements);
    }

    public override string ToString()
    {
        var text = new StringBuilder();
        foreach (var element in Elements)
        {
            if (text.Length > 0)
                text.Append(';');
            text.Append(element);
        }
        return text.ToString();
    }
}
