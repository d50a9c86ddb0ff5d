using System.Globalization;

namespace Introspect.Abi;

/// <summary>What a plugin provides.</summary>
public enum PluginKind
{
    /// <summary>Serves physical memory from a source (a dump file, a live VM, a DMA card).</summary>
    Connector = 1,
    /// <summary>Turns physical memory into an operating system's kernel, processes and modules.</summary>
    OperatingSystem = 2,
}

/// <summary>Declares a plugin in a managed assembly; read by the host without running any plugin code.</summary>
/// <remarks>
/// The host reads this attribute's blob with <c>System.Reflection.Metadata</c>, so every value
/// that matters is a constructor argument or a named property with a literal value.
/// <paramref name="factory"/> names a public type with a public parameterless constructor that
/// implements <see cref="IConnectorFactory"/> for a connector.
/// </remarks>
[AttributeUsage(AttributeTargets.Assembly, AllowMultiple = true)]
public sealed class IntrospectPluginAttribute(PluginKind kind, string name, string version, int abiVersion, Type factory) : Attribute
{
    public PluginKind Kind { get; } = kind;

    /// <summary>The name a chain uses (lower case, <c>[a-z0-9_-]</c>).</summary>
    public string Name { get; } = name;

    /// <summary>The plugin's own version, <c>major.minor.patch</c>.</summary>
    public string Version { get; } = version;

    /// <summary>The contract version the plugin was built against; compare <see cref="IntrospectAbi.Version"/>.</summary>
    public int AbiVersion { get; } = abiVersion;

    public Type Factory { get; } = factory;

    /// <summary>One line saying what the plugin does.</summary>
    public string Description { get; init; } = "";
}

/// <summary>Creates connectors; the entry point of a connector plugin.</summary>
public interface IConnectorFactory
{
    /// <summary>The arguments the connector accepts; the host refuses any other before calling <see cref="Create"/>.</summary>
    IReadOnlyList<PluginParameter> Parameters { get; }

    /// <summary>Opens the connector.</summary>
    /// <exception cref="InvalidDataException">The source is malformed; the message names the file, the field and what was expected.</exception>
    /// <exception cref="PluginArgumentException">An argument is valid by type but unusable (a file that does not exist).</exception>
    IPhysicalMemory Create(PluginArguments arguments, IPluginContext context);
}

/// <summary>What the host offers a plugin while it runs.</summary>
public interface IPluginContext
{
    void Log(PluginLogLevel level, string message);
}

public enum PluginLogLevel
{
    Trace = 0,
    Debug = 1,
    Information = 2,
    Warning = 3,
    Error = 4,
}

/// <summary>The type of a plugin argument, which decides how its text is parsed.</summary>
public enum PluginParameterType
{
    String,
    /// <summary>A file system path.</summary>
    Path,
    /// <summary>An unsigned 64-bit number, decimal or <c>0x</c> hexadecimal, with an optional <c>k</c>/<c>m</c>/<c>g</c> binary suffix.</summary>
    Number,
    /// <summary><c>on</c>/<c>off</c>, <c>true</c>/<c>false</c>, <c>yes</c>/<c>no</c>, <c>1</c>/<c>0</c>.</summary>
    Boolean,
    /// <summary>One of <see cref="PluginParameter.Choices"/>.</summary>
    Choice,
}

/// <summary>One argument a plugin accepts.</summary>
public sealed record PluginParameter(string Name, PluginParameterType Type, string Description)
{
    public bool Required { get; init; }

    /// <summary>The value used when the chain gives none, shown in help; null for none.</summary>
    public string? DefaultValue { get; init; }

    /// <summary>The allowed values of a <see cref="PluginParameterType.Choice"/>.</summary>
    public IReadOnlyList<string> Choices { get; init; } = [];

    /// <summary>Whether a chain may give this argument's value bare, as the step's first argument.</summary>
    /// <remarks>
    /// <c>coredump:/data/x.raw</c> then means <c>coredump:path=/data/x.raw</c>. At most one parameter of a plugin
    /// has it; a plugin that marks none but has exactly one required parameter gets that one as its default.
    /// </remarks>
    public bool IsDefaultArgument { get; init; }
}

/// <summary>A bad plugin argument: the message names the plugin, the key, the value and what was expected.</summary>
public sealed class PluginArgumentException : Exception
{
    public PluginArgumentException(string message) : base(message) { }

    public PluginArgumentException(string message, Exception inner) : base(message, inner) { }

    public PluginArgumentException() { }
}

/// <summary>The <c>key=value</c> arguments a chain gives one plugin, with typed accessors.</summary>
/// <remarks>Keys are case-insensitive. Accessors throw <see cref="PluginArgumentException"/> naming the key and the expected form.</remarks>
public sealed class PluginArguments
{
    private readonly Dictionary<string, string> _values;

    public PluginArguments(string pluginName, IEnumerable<KeyValuePair<string, string>> values)
    {
        PluginName = pluginName;
        _values = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in values)
        {
            if (!_values.TryAdd(key, value))
                throw new PluginArgumentException($"{pluginName}: the argument '{key}' is given twice.");
        }
    }

    public static PluginArguments Empty(string pluginName) => new(pluginName, []);

    public string PluginName { get; }

    public IReadOnlyDictionary<string, string> Values => _values;

    public bool Contains(string key) => _values.ContainsKey(key);

    public string? GetString(string key) => _values.TryGetValue(key, out var value) ? value : null;

    public string GetRequiredString(string key) =>
        GetString(key) ?? throw new PluginArgumentException($"{PluginName}: the argument '{key}' is required.");

    public ulong? GetNumber(string key)
    {
        if (!_values.TryGetValue(key, out var text))
            return null;
        if (TryParseNumber(text, out var value))
            return value;
        throw new PluginArgumentException($"{PluginName}: the argument '{key}={text}' is not a number; expected decimal or 0x-prefixed hexadecimal, optionally with a k, m or g suffix.");
    }

    public bool? GetBoolean(string key)
    {
        if (!_values.TryGetValue(key, out var text))
            return null;
        if (TryParseBoolean(text, out var value))
            return value;
        throw new PluginArgumentException($"{PluginName}: the argument '{key}={text}' is not a boolean; expected on/off, true/false, yes/no or 1/0.");
    }

    /// <summary>Parses an unsigned number: decimal, or hexadecimal with <c>0x</c>; <c>k</c>, <c>m</c>, <c>g</c> multiply by 2^10, 2^20, 2^30.</summary>
    /// <remarks>Hexadecimal without <c>0x</c> is refused rather than read as decimal, because that silent misreading is a classic of memflow's users.</remarks>
    public static bool TryParseNumber(string text, out ulong value)
    {
        value = 0;
        var span = text.AsSpan().Trim();
        if (span.IsEmpty)
            return false;
        int shift = 0;
        if (!(span.Length > 2 && span[0] == '0' && (span[1] == 'x' || span[1] == 'X')))
        {
            shift = char.ToLowerInvariant(span[^1]) switch { 'k' => 10, 'm' => 20, 'g' => 30, _ => 0 };
            if (shift != 0)
                span = span[..^1];
        }
        bool parsed = span.Length > 2 && span[0] == '0' && (span[1] == 'x' || span[1] == 'X')
            ? ulong.TryParse(span[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value)
            : ulong.TryParse(span, NumberStyles.None, CultureInfo.InvariantCulture, out value);
        if (!parsed)
            return false;
        if (shift != 0)
        {
            if (value > ulong.MaxValue >> shift)
                return false;
            value <<= shift;
        }
        return true;
    }

    public static bool TryParseBoolean(string text, out bool value)
    {
        switch (text.Trim().ToLowerInvariant())
        {
            case "on" or "true" or "yes" or "1":
                value = true;
                return true;
            case "off" or "false" or "no" or "0":
                value = false;
                return true;
            default:
                value = false;
                return false;
        }
    }
}
