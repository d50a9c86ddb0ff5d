using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Introspect.Abi;
using Introspect.Core.Chains;
using Introspect.Core.Plugins;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Introspect.Cli.Commands;

/// <summary>Options every command shares, and the services built from them.</summary>
internal static class CommonOptions
{
    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    public static Option<string> Chain() => new("--chain", "-c")
    {
        Description = "The chain to open, e.g. coredump:/data/guest.raw -> linux, or @name for a chain named in plugins.json",
        Required = true,
    };

    /// <summary>The name of the option every command that loads plugins gets (added by <see cref="AddTo"/>).</summary>
    public const string ConfigOptionName = "--config";

    /// <summary><c>--config FILE</c>: the plugins.json to read instead of the one in the current or the per-user folder.</summary>
    public static Option<string> Config() => new(ConfigOptionName)
    {
        Description = $"The {PluginConfiguration.FileName} to use (default: ./{PluginConfiguration.FileName}, then the per-user one)",
        Recursive = true,
    };

    public static Option<bool> JsonOutput() => new("--json") { Description = "Write the result as JSON on standard output" };

    public static Option<string[]> PluginPath() => new("--plugin-path")
    {
        Description = $"An extra folder to look for plugins in (also: {PluginHost.PluginPathVariable})",
        Recursive = true,
        AllowMultipleArgumentsPerToken = false,
    };

    public static Option<bool> Verbose() => new("--verbose", "-v") { Description = "Log what the plugins do on standard error", Recursive = true };

    /// <summary>Reads an address or a length: decimal, or hexadecimal with 0x.</summary>
    public static Option<ulong> Number(string name, string description) => new(name)
    {
        Description = description + " (decimal or 0x hex)",
        Required = true,
        CustomParser = result =>
        {
            var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
            if (PluginArguments.TryParseNumber(text, out var value))
                return value;
            result.AddError($"{name} '{text}' is not a number; expected decimal or 0x-prefixed hexadecimal.");
            return 0;
        },
    };

    /// <summary>Adds options to a command; a command that takes <c>--plugin-path</c> loads plugins, so it also gets <c>--config</c>.</summary>
    public static void AddTo(Command command, params Option[] options)
    {
        foreach (var option in options)
            command.Add(option);
        if (options.Any(o => o.Name == "--plugin-path") && FindConfigOption(command) is null)
            command.Add(Config());
    }

    private static Option<string>? FindConfigOption(Command? command)
    {
        for (; command is not null; command = command.Parents.OfType<Command>().FirstOrDefault())
        {
            if (command.Options.FirstOrDefault(o => o.Name == ConfigOptionName) is Option<string> option)
                return option;
        }
        return null;
    }

    /// <summary>
    /// The services a command runs with, composed with dependency injection: logging to standard error, and
    /// Introspect's (plugins.json, the per-user inventory, the plugin catalog and host).
    /// </summary>
    public static ServiceProvider BuildServices(ParseResult parseResult, Option<string[]> pluginPath, Option<bool> verbose)
    {
        var extraPaths = parseResult.GetValue(pluginPath) ?? [];
        var isVerbose = parseResult.GetValue(verbose);
        var configOption = FindConfigOption(parseResult.CommandResult.Command);
        var configFile = configOption is null ? null : parseResult.GetValue(configOption);
        var services = new ServiceCollection();
        services.AddLogging(logging =>
        {
            logging.SetMinimumLevel(isVerbose ? LogLevel.Debug : LogLevel.Warning);
            logging.AddSimpleConsole(options => options.SingleLine = true);
            logging.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(options => options.LogToStandardErrorThreshold = LogLevel.Trace);
        });
        services.AddIntrospect(options =>
        {
            options.ConfigurationFile = configFile;
            foreach (var path in extraPaths)
                options.PluginPaths.Add(path);
        });
        return services.BuildServiceProvider();
    }

    /// <summary>Opens a chain with the services a command runs with; <c>@name</c> is looked up in plugins.json.</summary>
    public static CliChain OpenChain(ParseResult parseResult, Option<string> chain, Option<string[]> pluginPath, Option<bool> verbose)
    {
        var services = BuildServices(parseResult, pluginPath, verbose);
        try
        {
            var spec = services.GetRequiredService<PluginConfiguration>().ResolveChain(parseResult.GetValue(chain)!);
            return new CliChain(services.GetRequiredService<PluginHost>().Open(spec), services);
        }
        catch
        {
            services.Dispose();
            throw;
        }
    }

    public static string Hex(ulong value) => "0x" + value.ToString("x", CultureInfo.InvariantCulture);
}

/// <summary>An opened chain and the services it runs with; disposing closes both.</summary>
internal sealed class CliChain(OpenedChain chain, ServiceProvider services) : IDisposable
{
    public OpenedChain Chain { get; } = chain;

    public ChainSpec Spec => Chain.Spec;

    /// <summary>The chain's first plugin, the connector that serves its memory.</summary>
    public PluginDescriptor Connector => Chain.Plugins[0];

    public IPhysicalMemory Memory => Chain.PhysicalMemory;

    public ConnectorHints Hints => Chain.Hints;

    public void Dispose()
    {
        Chain.Dispose();
        services.Dispose();
    }
}
