using Introspect.Abi;

namespace Introspect.Core.Plugins;

/// <summary>Checks a chain step's arguments against what the plugin declares, before the plugin sees them.</summary>
/// <remarks>memflow's users lose hours to arguments that were silently ignored; here every key must be known and every value well-formed.</remarks>
public static class PluginArgumentBinder
{
    /// <summary>Validates the arguments and fills in declared defaults.</summary>
    /// <exception cref="PluginArgumentException">A key is unknown or duplicated, a required one is missing, or a value has the wrong form.</exception>
    public static PluginArguments Bind(string pluginName, IReadOnlyList<PluginParameter> parameters, IEnumerable<KeyValuePair<string, string>> given)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(given);
        var byName = parameters.ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);
        var values = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in given)
        {
            if (!byName.TryGetValue(key, out var parameter))
                throw new PluginArgumentException($"{pluginName}: unknown argument '{key}'. Accepted: {Describe(parameters)}.");
            if (!values.TryAdd(parameter.Name, value))
                throw new PluginArgumentException($"{pluginName}: the argument '{key}' is given twice.");
            Check(pluginName, parameter, value);
        }
        foreach (var parameter in parameters)
        {
            if (values.ContainsKey(parameter.Name))
                continue;
            if (parameter.Required)
                throw new PluginArgumentException($"{pluginName}: the argument '{parameter.Name}' is required ({parameter.Description}).");
            if (parameter.DefaultValue is not null)
                values[parameter.Name] = parameter.DefaultValue;
        }
        return new PluginArguments(pluginName, values);
    }

    private static void Check(string pluginName, PluginParameter parameter, string value)
    {
        switch (parameter.Type)
        {
            case PluginParameterType.Number when !PluginArguments.TryParseNumber(value, out _):
                throw new PluginArgumentException($"{pluginName}: '{parameter.Name}={value}' is not a number; expected decimal or 0x-prefixed hexadecimal (a k, m or g suffix multiplies by 1024, 1024^2, 1024^3).");
            case PluginParameterType.Boolean when !PluginArguments.TryParseBoolean(value, out _):
                throw new PluginArgumentException($"{pluginName}: '{parameter.Name}={value}' is not a boolean; expected on/off, true/false, yes/no or 1/0.");
            case PluginParameterType.Choice when !parameter.Choices.Contains(value, StringComparer.OrdinalIgnoreCase):
                throw new PluginArgumentException($"{pluginName}: '{parameter.Name}={value}' is not one of {string.Join(", ", parameter.Choices)}.");
            case PluginParameterType.String or PluginParameterType.Path when value.Length == 0:
                throw new PluginArgumentException($"{pluginName}: '{parameter.Name}' is empty.");
        }
    }

    private static string Describe(IReadOnlyList<PluginParameter> parameters) =>
        parameters.Count == 0 ? "none" : string.Join(", ", parameters.Select(p => p.Name));
}
