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
        Description = "The chain to open, e.g. coredump:path=/data/guest.raw",
        Required = true,
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

    public static void AddTo(Command command, params Option[] options)
    {
        foreach (var option in options)
            command.Add(option);
    }

    /// <summary>The services a command runs with: logging to standard error, and the plugin host.</summary>
    public static ServiceProvider BuildServices(ParseResult parseResult, Option<string[]> pluginPath, Option<bool> verbose)
    {
        var extraPaths = parseResult.GetValue(pluginPath) ?? [];
        var isVerbose = parseResult.GetValue(verbose);
        var services = new ServiceCollection();
        services.AddLogging(logging =>
        {
            logging.SetMinimumLevel(isVerbose ? LogLevel.Debug : LogLevel.Warning);
            logging.AddSimpleConsole(options => options.SingleLine = true);
            logging.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(options => options.LogToStandardErrorThreshold = LogLevel.Trace);
        });
        services.AddSingleton(provider => PluginHost.CreateDefault(extraPaths, provider.GetRequiredService<ILoggerFactory>()));
        return services.BuildServiceProvider();
    }

    /// <summary>Opens a chain with the services a command runs with.</summary>
    public static CliChain OpenChain(ParseResult parseResult, Option<string> chain, Option<string[]> pluginPath, Option<bool> verbose)
    {
        var services = BuildServices(parseResult, pluginPath, verbose);
        try
        {
            var spec = ChainSpec.Parse(parseResult.GetValue(chain)!);
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
