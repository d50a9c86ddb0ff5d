using System.CommandLine;
using System.Text.Json;
using Introspect.Core.Plugins;
using Microsoft.Extensions.DependencyInjection;
using Spectre.Console;

namespace Introspect.Cli.Commands;

/// <summary><c>introspect plugins list|info</c>: what is installed, read from declarations without running plugin code.</summary>
internal static class PluginsCommand
{
    public static Command Create(CliConsole console)
    {
        var pluginPath = CommonOptions.PluginPath();
        var verbose = CommonOptions.Verbose();
        var command = new Command("plugins", "List and describe the installed connectors and OS layers");
        CommonOptions.AddTo(command, pluginPath, verbose);

        var listJson = CommonOptions.JsonOutput();
        var list = new Command("list", "List every plugin found: name, kind, version, ABI version, path") { listJson };
        list.SetAction(parseResult =>
        {
            using var services = CommonOptions.BuildServices(parseResult, pluginPath, verbose);
            var catalog = services.GetRequiredService<PluginHost>().Catalog;
            if (parseResult.GetValue(listJson))
                WriteJson(console, catalog);
            else
                WriteTable(console, catalog);
            return 0;
        });

        var name = new Argument<string>("name") { Description = "The plugin's name" };
        var infoJson = CommonOptions.JsonOutput();
        var info = new Command("info", "Describe one plugin and the arguments it accepts (this loads it)") { name, infoJson };
        info.SetAction(parseResult =>
        {
            using var services = CommonOptions.BuildServices(parseResult, pluginPath, verbose);
            var host = services.GetRequiredService<PluginHost>();
            var descriptor = host.Resolve(parseResult.GetValue(name)!.ToLowerInvariant());
            var parameters = host.GetParameters(descriptor);
            if (parseResult.GetValue(infoJson))
            {
                console.Output.WriteLine(JsonSerializer.Serialize(new
                {
                    descriptor.Name,
                    Kind = descriptor.KindName,
                    Version = descriptor.Version.ToString(),
                    descriptor.AbiVersion,
                    descriptor.Description,
                    descriptor.Path,
                    Parameters = parameters.Select(p => new { p.Name, Type = p.Type.ToString().ToLowerInvariant(), p.Required, Default = p.DefaultValue, p.Choices, p.Description }),
                }, CommonOptions.Json));
                return 0;
            }
            console.Output.WriteLine($"{descriptor.Name} {descriptor.Version} ({descriptor.KindName}, ABI {descriptor.AbiVersion})");
            console.Output.WriteLine(descriptor.Description);
            console.Output.WriteLine(descriptor.Path);
            var table = new Table().AddColumns("argument", "type", "default", "description");
            foreach (var p in parameters)
            {
                var type = p.Choices.Count > 0 ? string.Join("|", p.Choices) : p.Type.ToString().ToLowerInvariant();
                table.AddRow(Markup.Escape(p.Name + (p.Required ? " (required)" : "")), Markup.Escape(type), Markup.Escape(p.DefaultValue ?? ""), Markup.Escape(p.Description));
            }
            console.Ansi.Write(table);
            return 0;
        });

        command.Add(list);
        command.Add(info);
        return command;
    }

    private static void WriteJson(CliConsole console, PluginCatalog catalog)
    {
        console.Output.WriteLine(JsonSerializer.Serialize(new
        {
            Plugins = catalog.Plugins.Select(p => new
            {
                p.Name,
                Kind = p.KindName,
                Version = p.Version.ToString(),
                p.AbiVersion,
                Compatible = p.IsCompatible,
                p.Description,
                p.Path,
            }),
            Problems = catalog.Problems,
            catalog.SearchPaths,
        }, CommonOptions.Json));
    }

    private static void WriteTable(CliConsole console, PluginCatalog catalog)
    {
        var table = new Table().AddColumns("name", "kind", "version", "abi", "path", "description");
        foreach (var p in catalog.Plugins)
        {
            var abi = p.IsCompatible ? p.AbiVersion.ToString(System.Globalization.CultureInfo.InvariantCulture) : $"{p.AbiVersion} (incompatible)";
            table.AddRow(Markup.Escape(p.Name), p.KindName, p.Version.ToString(), abi, Markup.Escape(p.Path), Markup.Escape(p.Description));
        }
        console.Ansi.Write(table);
        foreach (var problem in catalog.Problems)
            console.Error.WriteLine($"warning: {problem.Path}: {problem.Reason}");
        if (catalog.Plugins.Count == 0)
            console.Error.WriteLine($"No plugins found. Searched: {string.Join(", ", catalog.SearchPaths)}");
    }
}
