using System.CommandLine;
using System.Text.Json;
using Introspect.Abi;
using Spectre.Console;

namespace Introspect.Cli.Commands;

/// <summary><c>introspect kernel</c> and <c>symbol</c>: what the chain's OS layer knows of its kernel.</summary>
internal static class KernelCommands
{
    /// <summary>The OS property holding the layer's bootstrap account, one step per line.</summary>
    private const string BootstrapProperty = "bootstrap";

    public static Command Kernel(CliConsole console)
    {
        var chain = CommonOptions.Chain();
        var json = CommonOptions.JsonOutput();
        var pluginPath = CommonOptions.PluginPath();
        var verbose = CommonOptions.Verbose();
        var explain = new Option<bool>("--explain") { Description = "Also print the layer's account of how it found the kernel (what was tried, what worked)" };
        var command = new Command("kernel", "Describe the kernel: version, base, KASLR slide, page-table base, symbols");
        CommonOptions.AddTo(command, chain, json, pluginPath, verbose, explain);
        command.SetAction(parseResult =>
        {
            using var opened = CommonOptions.OpenChain(parseResult, chain, pluginPath, verbose);
            var system = opened.Chain.RequireOperatingSystem();
            var info = system.Info;
            int? symbolCount = system is IKernelSymbols symbols ? symbols.SymbolCount : null;
            if (parseResult.GetValue(json))
            {
                console.Output.WriteLine(JsonSerializer.Serialize(new
                {
                    info.Name,
                    info.Version,
                    Architecture = info.Architecture.ToString(),
                    info.KernelBase,
                    info.KernelSlide,
                    info.DirectoryTableBase,
                    SymbolCount = symbolCount,
                    info.Properties,
                }, CommonOptions.Json));
                return 0;
            }
            var grid = new Grid().AddColumn().AddColumn();
            grid.AddRow("os", Markup.Escape(info.Name));
            grid.AddRow("version", Markup.Escape(info.Version.TrimEnd()));
            grid.AddRow("architecture", info.Architecture.ToString());
            grid.AddRow("kernel base", CommonOptions.Hex(info.KernelBase));
            if (info.KernelSlide is { } slide)
                grid.AddRow("KASLR slide", slide < 0 ? "-" + CommonOptions.Hex((ulong)(-slide)) : CommonOptions.Hex((ulong)slide));
            grid.AddRow("page-table base", CommonOptions.Hex(info.DirectoryTableBase));
            if (symbolCount is { } count)
                grid.AddRow("symbols", count.ToString(System.Globalization.CultureInfo.InvariantCulture));
            foreach (var (key, value) in info.Properties.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                if (key != BootstrapProperty)
                    grid.AddRow(Markup.Escape(key), Markup.Escape(value));
            }
            console.Ansi.Write(grid);
            if (parseResult.GetValue(explain))
            {
                console.Output.WriteLine();
                if (info.Properties.TryGetValue(BootstrapProperty, out var account))
                {
                    console.Output.WriteLine($"how the {info.Name} layer found its way in:");
                    foreach (var line in account.Split('\n'))
                        console.Output.WriteLine("  " + line);
                }
                else
                {
                    console.Output.WriteLine($"the {info.Name} layer keeps no account of how it found the kernel.");
                }
            }
            return 0;
        });
        return command;
    }

    public static Command Symbol(CliConsole console)
    {
        var chain = CommonOptions.Chain();
        var query = new Argument<string>("name-or-address") { Description = "A symbol name, or an address (0x hex or decimal) to name" };
        var json = CommonOptions.JsonOutput();
        var pluginPath = CommonOptions.PluginPath();
        var verbose = CommonOptions.Verbose();
        var command = new Command("symbol", "Look a kernel symbol up by name, or name an address (nearest symbol and displacement)") { query };
        CommonOptions.AddTo(command, chain, json, pluginPath, verbose);
        command.SetAction(parseResult =>
        {
            using var opened = CommonOptions.OpenChain(parseResult, chain, pluginPath, verbose);
            var system = opened.Chain.RequireOperatingSystem();
            if (system is not IKernelSymbols symbols)
                throw new CliUsageException($"the {system.Info.Name} layer offers no kernel symbols.");
            var text = parseResult.GetValue(query)!;
            ulong address;
            string name;
            ulong displacement = 0;
            if (Abi.PluginArguments.TryParseNumber(text, out address))
            {
                if (!symbols.TryGetSymbolName(address, out name, out displacement))
                    throw new CliUsageException($"no kernel symbol at or below {CommonOptions.Hex(address)}.");
            }
            else
            {
                name = text;
                if (!symbols.TryGetSymbolAddress(name, out address))
                    throw new CliUsageException($"the kernel has no symbol named '{name}'.");
            }
            if (parseResult.GetValue(json))
                console.Output.WriteLine(JsonSerializer.Serialize(new { Name = name, Address = address - displacement, Displacement = displacement }, CommonOptions.Json));
            else
                console.Output.WriteLine(displacement == 0 ? $"{CommonOptions.Hex(address)} {name}" : $"{CommonOptions.Hex(address)} {name}+{CommonOptions.Hex(displacement)}");
            return 0;
        });
        return command;
    }
}
