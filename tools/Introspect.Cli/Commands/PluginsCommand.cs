using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Introspect.Abi;
using Introspect.Core.Plugins;
using Microsoft.Extensions.DependencyInjection;
using Spectre.Console;

namespace Introspect.Cli.Commands;

/// <summary><c>introspect plugins list|info|install|remove|clean</c>: what is installed and where, read from declarations without running plugin code.</summary>
internal static class PluginsCommand
{
    public static Command Create(CliConsole console)
    {
        var pluginPath = CommonOptions.PluginPath();
        var verbose = CommonOptions.Verbose();
        var command = new Command("plugins", "List, describe, install and remove connectors and OS layers");
        CommonOptions.AddTo(command, pluginPath, verbose);

        var listJson = CommonOptions.JsonOutput();
        var list = new Command("list", "List every plugin found: name, kind, format, version, ABI version, whether it loads, path") { listJson };
        list.SetAction(parseResult =>
        {
            using var services = CommonOptions.BuildServices(parseResult, pluginPath, verbose);
            var catalog = services.GetRequiredService<PluginCatalog>();
            var inventory = services.GetRequiredService<PluginInventory>();
            if (parseResult.GetValue(listJson))
                WriteJson(console, catalog, inventory);
            else
                WriteTable(console, catalog, inventory);
            return 0;
        });

        var name = new Argument<string>("name") { Description = "The plugin's name, optionally with a version: name@1.2" };
        var infoJson = CommonOptions.JsonOutput();
        var info = new Command("info", "Describe one plugin, its help and the arguments it accepts (a managed plugin is loaded for this)") { name, infoJson };
        info.SetAction(parseResult =>
        {
            using var services = CommonOptions.BuildServices(parseResult, pluginPath, verbose);
            var host = services.GetRequiredService<PluginHost>();
            var (pluginName, version) = SplitName(parseResult.GetValue(name)!);
            var descriptor = host.Catalog.Plugins.FirstOrDefault(p => p.Name == pluginName && (version is null || VersionPattern.Matches(p.Version, version)) && p.IsCompatible)
                ?? host.Catalog.Plugins.FirstOrDefault(p => p.Name == pluginName && (version is null || VersionPattern.Matches(p.Version, version)))
                ?? host.Resolve(pluginName, version);
            var parameters = descriptor.IsCompatible ? host.GetParameters(descriptor) : descriptor.DeclaredParameters ?? [];
            var defaultParameter = PluginHost.DefaultParameter(parameters);
            var integrity = descriptor.Installation?.CheckIntegrity();
            if (parseResult.GetValue(infoJson))
            {
                console.Output.WriteLine(JsonSerializer.Serialize(new
                {
                    descriptor.Name,
                    Kind = descriptor.KindName,
                    Format = descriptor.Format.ToString().ToLowerInvariant(),
                    Version = descriptor.Version.ToString(),
                    descriptor.AbiVersion,
                    Compatible = descriptor.IsCompatible,
                    descriptor.Incompatibility,
                    descriptor.Description,
                    Help = descriptor.Help.Length == 0 ? null : descriptor.Help,
                    descriptor.Path,
                    Installed = descriptor.Installation is { } installed ? new { installed.Folder, installed.Sha256, installed.InstalledFrom, installed.InstalledAt, Intact = integrity is null } : null,
                    Parameters = parameters.Select(p => new
                    {
                        p.Name,
                        Type = p.Type.ToString().ToLowerInvariant(),
                        p.Required,
                        IsDefault = ReferenceEquals(p, defaultParameter),
                        Default = p.DefaultValue,
                        p.Choices,
                        p.Description,
                    }),
                }, CommonOptions.Json));
                return 0;
            }
            console.Output.WriteLine($"{descriptor.Name} {descriptor.Version} ({descriptor.KindName}, {descriptor.Format.ToString().ToLowerInvariant()}, ABI {descriptor.AbiVersion})");
            console.Output.WriteLine(descriptor.Description);
            console.Output.WriteLine(descriptor.Path);
            if (descriptor.Incompatibility is { } why)
                console.Output.WriteLine($"cannot be loaded: {why}");
            if (descriptor.Installation is { } record)
                console.Output.WriteLine($"installed {record.InstalledAt:u} from {record.InstalledFrom}, sha256 {record.Sha256} ({integrity ?? "intact"})");
            if (descriptor.Help.Length > 0)
                console.Output.WriteLine(descriptor.Help.TrimEnd());
            var table = new Table().AddColumns("argument", "type", "default", "description");
            foreach (var p in parameters)
            {
                var type = p.Choices.Count > 0 ? string.Join("|", p.Choices) : p.Type.ToString().ToLowerInvariant();
                var label = p.Name + (p.Required ? " (required)" : "") + (ReferenceEquals(p, defaultParameter) ? " (default argument)" : "");
                table.AddRow(Markup.Escape(label), Markup.Escape(type), Markup.Escape(p.DefaultValue ?? ""), Markup.Escape(p.Description));
            }
            console.Ansi.Write(table);
            console.Output.WriteLine("Any step also takes the host's middleware keys: " + string.Join(", ", Core.Chains.MiddlewareSettings.Keys) + ".");
            return 0;
        });

        var source = new Argument<string>("path") { Description = "A plugin file (.so, .dll) or a folder holding plugins (a managed plugin's build output folder)" };
        var force = new Option<bool>("--force") { Description = "Replace a plugin already installed with the same name and version" };
        var installJson = CommonOptions.JsonOutput();
        var install = new Command("install", "Install plugins into the per-user plugin folder, recording their sha256 and metadata") { source, force, installJson };
        install.SetAction(parseResult =>
        {
            using var services = CommonOptions.BuildServices(parseResult, pluginPath, verbose);
            var inventory = services.GetRequiredService<PluginInventory>();
            var installed = inventory.Install(parseResult.GetValue(source)!, parseResult.GetValue(force));
            WriteInstalled(console, installed, "installed", parseResult.GetValue(installJson));
            return 0;
        });

        var removeName = new Argument<string>("name") { Description = "The plugin to remove: name (every version) or name@1.2" };
        var remove = new Command("remove", "Remove installed versions of a plugin from the per-user plugin folder") { removeName };
        remove.SetAction(parseResult =>
        {
            using var services = CommonOptions.BuildServices(parseResult, pluginPath, verbose);
            var inventory = services.GetRequiredService<PluginInventory>();
            var (pluginName, version) = SplitName(parseResult.GetValue(removeName)!);
            if (!inventory.Installed().Any(p => p.Name == pluginName)
                && services.GetRequiredService<PluginCatalog>().Plugins.FirstOrDefault(p => p.Name == pluginName) is { } elsewhere)
            {
                throw new PluginException($"'{pluginName}' is not installed in {inventory.Root}: it is found at {elsewhere.Path}, which 'plugins remove' does not manage.");
            }
            WriteInstalled(console, inventory.Remove(pluginName, version), "removed", json: false);
            return 0;
        });

        var clean = new Command("clean", "Remove every installed version but the newest of each plugin");
        clean.SetAction(parseResult =>
        {
            using var services = CommonOptions.BuildServices(parseResult, pluginPath, verbose);
            var removed = services.GetRequiredService<PluginInventory>().Clean();
            if (removed.Count == 0)
                console.Output.WriteLine("Nothing to clean: one version of each plugin is installed.");
            WriteInstalled(console, removed, "removed", json: false);
            return 0;
        });

        command.Add(list);
        command.Add(info);
        command.Add(install);
        command.Add(remove);
        command.Add(clean);
        return command;
    }

    /// <summary>Splits <c>name@1.2</c>.</summary>
    private static (string Name, string? Version) SplitName(string text)
    {
        int at = text.IndexOf('@', StringComparison.Ordinal);
        return at < 0 ? (text.ToLowerInvariant(), null) : (text[..at].ToLowerInvariant(), text[(at + 1)..]);
    }

    private static void WriteInstalled(CliConsole console, IReadOnlyList<InstalledPlugin> plugins, string verb, bool json)
    {
        if (json)
        {
            console.Output.WriteLine(JsonSerializer.Serialize(plugins.Select(p => new
            {
                p.Name,
                Kind = p.Kind == PluginKind.Connector ? "connector" : "os",
                Version = p.Version.ToString(),
                Format = p.Format.ToString().ToLowerInvariant(),
                p.Folder,
                p.File,
                p.Sha256,
            }), CommonOptions.Json));
            return;
        }
        foreach (var p in plugins)
            console.Output.WriteLine($"{verb} {p.Name} {p.Version} ({(p.Kind == PluginKind.Connector ? "connector" : "os")}, {p.Format.ToString().ToLowerInvariant()}) {p.Folder} sha256 {p.Sha256}");
    }

    private static void WriteJson(CliConsole console, PluginCatalog catalog, PluginInventory inventory)
    {
        console.Output.WriteLine(JsonSerializer.Serialize(new
        {
            Plugins = catalog.Plugins.Select(p => new
            {
                p.Name,
                Kind = p.KindName,
                Format = p.Format.ToString().ToLowerInvariant(),
                Version = p.Version.ToString(),
                p.AbiVersion,
                Compatible = p.IsCompatible,
                p.Incompatibility,
                p.Description,
                p.Path,
                Installed = p.Installation is not null,
                Sha256 = p.Installation?.Sha256,
            }),
            Problems = catalog.Problems,
            catalog.SearchPaths,
            InstallFolder = inventory.Root,
        }, CommonOptions.Json));
    }

    private static void WriteTable(CliConsole console, PluginCatalog catalog, PluginInventory inventory)
    {
        var table = new Table().AddColumns("name", "kind", "format", "version", "abi", "status", "path", "description");
        foreach (var p in catalog.Plugins)
        {
            var status = p.IsCompatible ? (p.Installation is null ? "ok" : "ok (installed)") : $"cannot load: {p.Incompatibility}";
            table.AddRow(Markup.Escape(p.Name), p.KindName, p.Format.ToString().ToLowerInvariant(), p.Version.ToString(), p.AbiVersion.ToString(CultureInfo.InvariantCulture),
                Markup.Escape(status), Markup.Escape(p.Path), Markup.Escape(p.Description));
        }
        console.Ansi.Write(table);
        foreach (var problem in catalog.Problems)
            console.Error.WriteLine($"warning: {problem.Path}: {problem.Reason}");
        if (catalog.Plugins.Count == 0)
            console.Error.WriteLine($"No plugins found. Searched: {string.Join(", ", catalog.SearchPaths)}. Install one with 'introspect plugins install PATH' (into {inventory.Root}).");
    }
}
