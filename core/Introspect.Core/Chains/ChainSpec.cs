using System.Text;

namespace Introspect.Core.Chains;

/// <summary>One step of a chain: a plugin's name, an optional version, and its arguments.</summary>
/// <param name="Name">The plugin's name, lower case.</param>
/// <param name="Version">The version asked for (<c>name@1.2</c>), or null for the newest.</param>
/// <param name="Arguments">The <c>key=value</c> pairs in the order written.</param>
public sealed record ChainStep(string Name, string? Version, IReadOnlyList<KeyValuePair<string, string>> Arguments)
{
    public override string ToString()
    {
        var text = new StringBuilder(Name);
        if (Version is not null)
            text.Append('@').Append(Version);
        for (int i = 0; i < Arguments.Count; i++)
        {
            text.Append(i == 0 ? ':' : ',').Append(Arguments[i].Key).Append('=');
            text.Append(ChainSpec.NeedsQuotes(Arguments[i].Value) ? $"\"{Arguments[i].Value.Replace("\"", "\\\"", StringComparison.Ordinal)}\"" : Arguments[i].Value);
        }
        return text.ToString();
    }
}

/// <summary>A chain as written everywhere: <c>coredump:path=/data/host.elf -> linux -> qemu:name=guest1 -> windows</c>.</summary>
/// <remarks>
/// Steps are separated by <c>-&gt;</c>; a step is <c>name[@version][:key=value[,key=value...]]</c>. A value that holds
/// a comma, <c>-&gt;</c>, a quote or surrounding spaces is written in double quotes, with <c>\"</c> and <c>\\</c> inside.
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
            if (TryConsume(":"))
            {
                do
                {
                    SkipSpaces();
                    var key = ParseName($"an argument name for '{name}'");
                    SkipSpaces();
                    if (!TryConsume("="))
                        Fail($"'=' after the argument name '{key}'", Describe());
                    arguments.Add(new(key, ParseValue(key)));
                    SkipSpaces();
                }
                while (TryConsume(","));
            }
            return new ChainStep(name, version, arguments);
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

        private string ParseValue(string key)
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
                        Fail($"a closing '\"' for the value of '{key}'", "the end of the chain");
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
                Fail($"a value for '{key}'", Describe());
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
