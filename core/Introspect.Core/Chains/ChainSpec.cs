using System.Text;

namespace Introspect.Core.Chains;

/// <summary>One step of a chain: a plugin's name, an optional version, and its arguments.</summary>
/// <param name="Name">The plugin's name, lower case.</param>
/// <param name="Version">The version asked for (<c>name@1.2</c>), or null for the newest.</param>
/// <param name="Arguments">The <c>key=value</c> pairs in the order written (keys lower case).</param>
public sealed record ChainStep(string Name, string? Version, IReadOnlyList<KeyValuePair<string, string>> Arguments)
{
    /// <summary>A value given bare as the step's first argument (<c>coredump:/data/x.raw</c>), for the plugin's default argument; null when none.</summary>
    public string? DefaultValue { get; init; }

    public override string ToString()
    {
        var text = new StringBuilder(Name);
        if (Version is not null)
            text.Append('@').Append(Version);
        bool first = true;
        if (DefaultValue is not null)
        {
            text.Append(':').Append(Quote(DefaultValue, bare: true));
            first = false;
        }
        foreach (var (key, value) in Arguments)
        {
            text.Append(first ? ':' : ',').Append(key).Append('=').Append(Quote(value, bare: false));
            first = false;
        }
        return text.ToString();
    }

    private static string Quote(string value, bool bare) =>
        ChainSpec.NeedsQuotes(value) || (bare && value.Contains('=', StringComparison.Ordinal))
            ? $"\"{value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal)}\""
            : value;
}

/// <summary>A chain as written everywhere: <c>coredump:path=/data/host.elf -> linux -> qemu:name=guest1 -> windows</c>.</summary>
/// <remarks>
/// Steps are separated by <c>-&gt;</c>; a step is <c>name[@version][:[value,]key=value[,key=value...]]</c>, where a first
/// value without a key is the plugin's default argument. Keys are names, optionally dotted (<c>cache.pages</c>). A value
/// that holds a comma, <c>-&gt;</c>, a quote or surrounding spaces is written in double quotes, with <c>\"</c> and <c>\\</c> inside.
/// Whether each step's plugin exists, and whether the kinds follow each other in a valid order, is the plugin host's
/// business: this type only knows the syntax.
/// </remarks>
public sealed class ChainSpec
{
    private ChainSpec(IReadOnlyList<ChainStep> steps, string text)
    {
        Steps = steps;
        Text = text;
    }

    public IReadOnlyList<ChainStep> Steps { get; }

    /// <summary>The text the chain was parsed from.</summary>
    public string Text { get; }

    /// <exception cref="ChainSyntaxException">The text is not a chain; the message shows where and what was expected.</exception>
    public static ChainSpec Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parser = new Parser(text);
        return new ChainSpec(parser.ParseSteps(), text);
    }

    public override string ToString() => string.Join(" -> ", Steps);

    internal static bool NeedsQuotes(string value) =>
        value.Length == 0 || value.AsSpan().IndexOfAny(",\"\\") >= 0 || value.Contains("->", StringComparison.Ordinal)
        || char.IsWhiteSpace(value[0]) || char.IsWhiteSpace(value[^1]);

    private ref struct Parser(string text)
    {
        private readonly string _text = text;
        private int _position;

        public List<ChainStep> ParseSteps()
        {
            var steps = new List<ChainStep>();
            SkipSpaces();
            if (AtEnd)
                Fail("a plugin name", "an empty chain");
            while (true)
            {
                steps.Add(ParseStep());
                SkipSpaces();
                if (AtEnd)
                    return steps;
                if (!TryConsume("->"))
                    Fail("'->' or the end of the chain", Describe());
                SkipSpaces();
            }
        }

        private ChainStep ParseStep()
        {
            var name = ParseName("a plugin name");
            SkipSpaces();
            string? version = null;
            if (TryConsume("@"))
            {
                version = ParseVersion();
                SkipSpaces();
            }
            var arguments = new List<KeyValuePair<string, string>>();
            string? defaultValue = null;
            if (TryConsume(":"))
            {
                bool first = true;
                do
                {
                    SkipSpaces();
                    if (first && !LooksAtKey())
                    {
                        defaultValue = ParseValue($"the default argument of '{name}'");
                    }
                    else
                    {
                        var key = ParseKey($"an argument name for '{name}' (key=value; only the first argument may be given bare)");
                        SkipSpaces();
                        if (!TryConsume("="))
                            Fail($"'=' after the argument name '{key}'", Describe());
                        arguments.Add(new(key, ParseValue($"'{key}'")));
                    }
                    first = false;
                    SkipSpaces();
                }
                while (TryConsume(","));
            }
            return new ChainStep(name, version, arguments) { DefaultValue = defaultValue };
        }

        /// <summary>Whether a <c>key=</c> starts here (a bare first value is anything else).</summary>
        private readonly bool LooksAtKey()
        {
            int position = _position;
            int start = position;
            while (position < _text.Length && (char.IsAsciiLetterOrDigit(_text[position]) || _text[position] is '_' or '-' or '.')
                && string.CompareOrdinal(_text, position, "->", 0, 2) != 0)
                position++;
            if (position == start)
                return false;
            while (position < _text.Length && char.IsWhiteSpace(_text[position]))
                position++;
            return position < _text.Length && _text[position] == '=';
        }

        private string ParseKey(string what)
        {
            int start = _position;
            while (!AtEnd && (char.IsAsciiLetterOrDigit(Current) || Current is '_' or '-' or '.') && !LooksAtArrow())
                _position++;
            if (_position == start)
                Fail(what, Describe());
            return _text[start.._position].ToLowerInvariant();
        }

        private string ParseName(string what)
        {
            int start = _position;
            while (!AtEnd && (char.IsAsciiLetterOrDigit(Current) || Current is '_' or '-') && !LooksAtArrow())
                _position++;
            if (_position == start)
                Fail(what, Describe());
            return _text[start.._position].ToLowerInvariant();
        }

        private string ParseVersion()
        {
            int start = _position;
            while (!AtEnd && (char.IsAsciiDigit(Current) || Current == '.'))
                _position++;
            if (_position == start)
                Fail("a version such as 1.2.0 after '@'", Describe());
            return _text[start.._position];
        }

        private string ParseValue(string what)
        {
            if (!AtEnd && Current == '"')
            {
                int open = _position++;
                var value = new StringBuilder();
                while (true)
                {
                    if (AtEnd)
                    {
                        _position = open;
                        Fail($"a closing '\"' for the value of {what}", "the end of the chain");
                    }
                    char c = _text[_position++];
                    if (c == '"')
                        return value.ToString();
                    if (c == '\\' && !AtEnd && Current is '"' or '\\')
                        c = _text[_position++];
                    value.Append(c);
                }
            }
            int start = _position;
            while (!AtEnd && Current != ',' && !LooksAtArrow())
                _position++;
            var plain = _text[start.._position].Trim();
            if (plain.Length == 0)
            {
                _position = start;
                Fail($"a value for {what}", Describe());
            }
            return plain;
        }

        private readonly bool AtEnd => _position >= _text.Length;

        private readonly char Current => _text[_position];

        private readonly bool LooksAtArrow() => string.CompareOrdinal(_text, _position, "->", 0, 2) == 0;

        private bool TryConsume(string token)
        {
            if (string.CompareOrdinal(_text, _position, token, 0, token.Length) != 0)
                return false;
            _position += token.Length;
            return true;
        }

        private void SkipSpaces()
        {
            while (!AtEnd && char.IsWhiteSpace(Current))
                _position++;
        }

        private readonly string Describe() => AtEnd ? "the end of the chain" : $"'{_text[_position..Math.Min(_text.Length, _position + 12)]}'";

        [System.Diagnostics.CodeAnalysis.DoesNotReturn]
        private readonly void Fail(string expected, string found) =>
            throw new ChainSyntaxException($"Chain '{_text}', position {_position + 1}: expected {expected}, found {found}.", _position);
    }
}

/// <summary>A chain's text is not a chain.</summary>
public sealed class ChainSyntaxException : FormatException
{
    public ChainSyntaxException(string message, int position) : base(message) => Position = position;

    /// <summary>The zero-based character position of the error.</summary>
    public int Position { get; }
}
