using Introspect.Abi;

namespace Introspect.Os.Windows.Bootstrap;

/// <summary>What the bootstrap tried, in order, and what each attempt gave: the account <c>kernel --explain</c> prints.</summary>
/// <remarks>Every line also goes to the plugin context's log at debug level, so <c>--verbose</c> shows it as it happens.</remarks>
internal sealed class BootstrapAccount(IPluginContext context)
{
    private readonly List<string> _lines = [];

    public IReadOnlyList<string> Lines => _lines;

    /// <summary>The method that gave each part of the bootstrap (dtb, kernel, version, offsets, ...).</summary>
    public Dictionary<string, string> Methods { get; } = new(StringComparer.Ordinal);

    public void Note(string step, string text)
    {
        string line = $"{step}: {text}";
        _lines.Add(line);
        context.Log(PluginLogLevel.Debug, "windows: " + line);
    }

    /// <summary>Records the method that worked for <paramref name="step"/>.</summary>
    public void Chose(string step, string method, string? detail = null)
    {
        Methods[step] = method;
        Note(step, detail is null ? $"using {method}" : $"using {method} ({detail})");
    }

    public string Text => string.Join('\n', _lines);
}
