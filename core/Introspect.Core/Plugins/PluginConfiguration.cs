using System.Text;
using System.Text.Json;
using Introspect.Abi;
using Introspect.Core.Chains;

namespace Introspect.Core.Plugins;

/// <summary>
/// <c>plugins.json</c>: where else to look for plugins, the default middleware, and named chains
/// (<c>introspect ps --chain @myguest</c>).
/// </summary>
/// <remarks>
/// <para>The file is JSON with <c>//</c> comments and trailing commas allowed:</para>
/// <code>
/// {
///   "pluginPaths": ["plugins", "~/introspect-plugins"],      // relative to the file's folder
///   "middleware": { "cache": "auto", "cache.pages": 4096, "tlb.entries": 4096, "tlb.validity": "forever" },
///   "chains": { "myguest": "coredump:path=/data/guest.raw -> linux" }
/// }
/// </code>
/// <para>
/// Every member is optional; no other member is allowed. It is validated whole on load: an unknown member, a value
/// of the wrong type, a bad middleware value, a chain name that is not a plugin-style name or a chain that does not
/// parse is an <see cref="InvalidDataException"/> naming the file, the line and what was expected.
/// </para>
/// </remarks>
public sealed class PluginConfiguration
{
    /// <summary>The file's name, in the current folder and in the per-user configuration folder.</summary>
    public const string FileName = "plugins.json";

    private const int MaxFileSize = 4 << 20;

    private PluginConfiguration(string? path, IReadOnlyList<string> pluginPaths, MiddlewareSettings middleware, IReadOnlyDictionary<string, string> chains)
    {
        Path = path;
        PluginPaths = pluginPaths;
        Middleware = middleware;
        Chains = chains;
    }

    /// <summary>The configuration of a host that found no file: no extra paths, default middleware, no named chains.</summary>
    public static PluginConfiguration Empty { get; } = new(null, [], MiddlewareSettings.Default, new Dictionary<string, string>());

    /// <summary>The file read, or null for <see cref="Empty"/>.</summary>
    public string? Path { get; }

    /// <summary>Extra plugin folders, as full paths.</summary>
    public IReadOnlyList<string> PluginPaths { get; }

    public MiddlewareSettings Middleware { get; }

    /// <summary>Named chains by name (without the <c>@</c>), as chain text.</summary>
    public IReadOnlyDictionary<string, string> Chains { get; }

    /// <summary>
    /// The places looked at, in order, when no file is named: <c>plugins.json</c> in the current folder, then the
    /// per-user one (<c>$INTROSPECT_HOME/plugins.json</c>, else <c>$XDG_CONFIG_HOME/introspect/plugins.json</c>, else
    /// <c>~/.config/introspect/plugins.json</c>).
    /// </summary>
    public static IReadOnlyList<string> DefaultLocations()
    {
        string user;
        if (Environment.GetEnvironmentVariable(PluginInventory.HomeVariable) is { Length: > 0 } home)
            user = System.IO.Path.Combine(home, FileName);
        else if (Environment.GetEnvironmentVariable("XDG_CONFIG_HOME") is { Length: > 0 } config && System.IO.Path.IsPathRooted(config))
            user = System.IO.Path.Combine(config, "introspect", FileName);
        else if (OperatingSystem.IsWindows())
            user = System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.ApplicationData), "introspect", FileName);
        else
            user = System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config", "introspect", FileName);
        return [System.IO.Path.Combine(Directory.GetCurrentDirectory(), FileName), user];
    }

    /// <summary>Reads <paramref name="explicitPath"/>, or the first file of <see cref="DefaultLocations"/> that exists, or gives <see cref="Empty"/>.</summary>
    /// <exception cref="FileNotFoundException">An explicit file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a valid configuration; the message names the line.</exception>
    public static PluginConfiguration Load(string? explicitPath = null)
    {
        if (explicitPath is not null)
        {
            if (!File.Exists(explicitPath))
                throw new FileNotFoundException($"The configuration file '{explicitPath}' does not exist.", explicitPath);
            return LoadFile(explicitPath);
        }
        foreach (var candidate in DefaultLocations())
        {
            if (File.Exists(candidate))
                return LoadFile(candidate);
        }
        return Empty;
    }

    /// <summary>Reads and validates one file.</summary>
    public static PluginConfiguration LoadFile(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        var info = new FileInfo(full);
        if (info.Length > MaxFileSize)
            throw new InvalidDataException($"{full}: the file has {info.Length} bytes; a configuration holds at most {MaxFileSize}.");
        return Parse(File.ReadAllBytes(full), full);
    }

    /// <summary>Parses configuration text; <paramref name="path"/> names it in messages and anchors relative plugin paths.</summary>
    public static PluginConfiguration Parse(ReadOnlySpan<byte> json, string path) => new Parser(json, path).Parse();

    /// <summary>Replaces a leading <c>@name</c> with the named chain: <c>@myguest</c> or <c>@myguest -&gt; linux</c>.</summary>
    /// <exception cref="PluginException">No chain has that name; the message lists the named chains and where they come from.</exception>
    public ChainSpec ResolveChain(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var trimmed = text.TrimStart();
        if (!trimmed.StartsWith('@'))
            return ChainSpec.Parse(text);
        int end = 1;
        while (end < trimmed.Length && (char.IsAsciiLetterOrDigit(trimmed[end]) || trimmed[end] is '_' or '-') && string.CompareOrdinal(trimmed, end, "->", 0, 2) != 0)
            end++;
        string name = trimmed[1..end].ToLowerInvariant();
        if (!Chains.TryGetValue(name, out var chain))
        {
            string where = Path is null
                ? $"no {FileName} was found (looked at {string.Join(", ", DefaultLocations())}; give one with --config)"
                : $"{Path} names {(Chains.Count == 0 ? "none" : string.Join(", ", Chains.Keys.Order(StringComparer.Ordinal).Select(k => "@" + k)))}";
            throw new PluginException($"No chain named '@{name}': {where}.");
        }
        return ChainSpec.Parse(chain + trimmed[end..]);
    }

    private ref struct Parser(ReadOnlySpan<byte> json, string path)
    {
        private readonly ReadOnlySpan<byte> _json = json;
        private readonly string _path = path;
        private Utf8JsonReader _reader = new(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true, MaxDepth = 16 });

        public PluginConfiguration Parse()
        {
            var paths = new List<string>();
            var middleware = MiddlewareSettings.Default;
            var chains = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            try
            {
                Next("a JSON object");
                if (_reader.TokenType != JsonTokenType.StartObject)
                    Fail("an object ({ \"pluginPaths\": [...], \"middleware\": {...}, \"chains\": {...} })");
                while (Next("a member name or '}'") && _reader.TokenType != JsonTokenType.EndObject)
                {
                    string member = _reader.GetString()!;
                    int line = Line;
                    if (!seen.Add(member))
                        Fail($"'{member}' once; it is given twice", line);
                    Next($"a value for '{member}'");
                    switch (member)
                    {
                        case "pluginPaths":
                            ReadPaths(paths);
                            break;
                        case "middleware":
                            middleware = ReadMiddleware();
                            break;
                        case "chains":
                            ReadChains(chains);
                            break;
                        default:
                            Fail($"one of the members pluginPaths, middleware, chains; '{member}' is unknown", line);
                            break;
                    }
                }
                if (_reader.Read())
                    Fail("the end of the file after the configuration object");
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{_path}, line {(e.LineNumber ?? 0) + 1}: not valid JSON: {FirstSentence(e.Message)}", e);
            }
            return new PluginConfiguration(_path, paths, middleware, chains);
        }

        private void ReadPaths(List<string> paths)
        {
            if (_reader.TokenType != JsonTokenType.StartArray)
                Fail("'pluginPaths' to be an array of folder paths");
            string folder = System.IO.Path.GetDirectoryName(_path) ?? Directory.GetCurrentDirectory();
            while (Next("a folder path or ']'") && _reader.TokenType != JsonTokenType.EndArray)
            {
                string? text = _reader.TokenType == JsonTokenType.String ? _reader.GetString() : null;
                if (string.IsNullOrEmpty(text))
                    Fail("a folder path (a non-empty string) in 'pluginPaths'");
                if (text == "~" || text.StartsWith("~/", StringComparison.Ordinal))
                    text = System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), text.Length > 2 ? text[2..] : "");
                paths.Add(System.IO.Path.GetFullPath(text, folder));
            }
        }

        private MiddlewareSettings ReadMiddleware()
        {
            if (_reader.TokenType != JsonTokenType.StartObject)
                Fail($"'middleware' to be an object of middleware keys ({string.Join(", ", MiddlewareSettings.Keys)})");
            var settings = MiddlewareSettings.Default;
            while (Next("a middleware key or '}'") && _reader.TokenType != JsonTokenType.EndObject)
            {
                string key = _reader.GetString()!;
                int line = Line;
                Next($"a value for middleware key '{key}'");
                string value = _reader.TokenType switch
                {
                    JsonTokenType.String => _reader.GetString()!,
                    JsonTokenType.Number => Encoding.UTF8.GetString(_reader.ValueSpan),
                    JsonTokenType.True => "on",
                    JsonTokenType.False => "off",
                    _ => Fail<string>($"a string, number or boolean for middleware key '{key}'"),
                };
                try
                {
                    settings = settings.With($"{_path}, line {line}", key, value);
                }
                catch (PluginArgumentException e)
                {
                    throw new InvalidDataException(e.Message, e);
                }
            }
            return settings;
        }

        private void ReadChains(Dictionary<string, string> chains)
        {
            if (_reader.TokenType != JsonTokenType.StartObject)
                Fail("'chains' to be an object of named chains (\"name\": \"connector:... -> os\")");
            while (Next("a chain name or '}'") && _reader.TokenType != JsonTokenType.EndObject)
            {
                string name = _reader.GetString()!;
                int line = Line;
                if (!PluginNames.IsValid(name))
                    Fail($"a chain name of lower-case letters, digits, '_' or '-'; '{name}' is not one", line);
                if (chains.ContainsKey(name))
                    Fail($"chain '{name}' once; it is given twice", line);
                Next($"the chain text of '{name}'");
                if (_reader.TokenType != JsonTokenType.String)
                    Fail($"the chain of '{name}' as a string, such as \"coredump:path=/data/guest.raw -> linux\"");
                string text = _reader.GetString()!;
                try
                {
                    ChainSpec.Parse(text);
                }
                catch (ChainSyntaxException e)
                {
                    throw new InvalidDataException($"{_path}, line {Line}: chain '{name}': {e.Message}", e);
                }
                chains[name] = text;
            }
        }

        private bool Next(string expected)
        {
            if (!_reader.Read())
                Fail($"{expected}, found the end of the file");
            return true;
        }

        /// <summary>The 1-based line of the current token, counted in the text (the reader does not expose it).</summary>
        private readonly int Line
        {
            get
            {
                long end = Math.Min(_reader.TokenStartIndex, _json.Length);
                return _json[..(int)end].Count((byte)'\n') + 1;
            }
        }

        [System.Diagnostics.CodeAnalysis.DoesNotReturn]
        private readonly void Fail(string expected, int? line = null) =>
            throw new InvalidDataException($"{_path}, line {line ?? Line}: expected {expected}.");

        [System.Diagnostics.CodeAnalysis.DoesNotReturn]
        private readonly T Fail<T>(string expected) => throw new InvalidDataException($"{_path}, line {Line}: expected {expected}.");

        private static string FirstSentence(string message)
        {
            int cut = message.IndexOf(" Path:", StringComparison.Ordinal);
            return cut > 0 ? message[..cut] : message;
        }
    }
}
