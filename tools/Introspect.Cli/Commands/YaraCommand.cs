using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Introspect.Yara;
using Spectre.Console;

namespace Introspect.Cli.Commands;

/// <summary><c>introspect yara</c>: YARA rules over physical memory, or over one process's memory areas with <c>--pid</c>.</summary>
internal static class YaraCommand
{
    public static Command Create(CliConsole console)
    {
        var chain = CommonOptions.Chain();
        var rules = new Option<string>("--rules", "-r") { Description = "The YARA rules file", Required = true };
        var pid = ProcessCommands.Pid(required: false);
        var max = new Option<int>("--max") { Description = "Stop after this many matches", DefaultValueFactory = _ => YaraSearch.DefaultMaxMatches };
        var json = CommonOptions.JsonOutput();
        var pluginPath = CommonOptions.PluginPath();
        var verbose = CommonOptions.Verbose();
        var command = new Command("yara", "Scan physical memory, or a process's memory with --pid, with YARA rules");
        CommonOptions.AddTo(command, chain, rules, pid, max, json, pluginPath, verbose);
        command.SetAction(parseResult =>
        {
            if (parseResult.GetValue(max) < 1)
                throw new CliUsageException("--max must be at least 1.");
            // Rules first: a typo in them should not cost opening the chain to find out.
            using var compiled = YaraRules.CompileFile(parseResult.GetValue(rules)!);
            foreach (var warning in compiled.Warnings)
                console.Error.WriteLine(warning);
            using var services = CommonOptions.BuildServices(parseResult, pluginPath, verbose);
            using var machine = MountCommand.OpenMachine(services, parseResult.GetValue(chain)!);
            var options = new YaraScanOptions { MaxMatches = parseResult.GetValue(max) };
            IReadOnlyList<YaraMatch> matches;
            if (parseResult.GetResult(pid) is null)
            {
                matches = machine.SearchYara(compiled, options);
            }
            else
            {
                var system = machine.OperatingSystem ?? machine.Chain!.RequireOperatingSystem();
                var process = machine.GetProcess(parseResult.GetValue(pid))
                    ?? throw new CliUsageException($"no process with pid {parseResult.GetValue(pid)} in the {system.Info.Name} at the end of the chain; 'introspect ps' lists them.");
                matches = process.SearchYara(compiled, options);
            }
            if (parseResult.GetValue(json))
            {
                console.Output.WriteLine(JsonSerializer.Serialize(matches.Select(m => new
                {
                    m.Rule,
                    m.Namespace,
                    m.Tags,
                    String = m.StringIdentifier,
                    m.Offset,
                    m.Length,
                    m.PhysicalAddress,
                    m.VirtualAddress,
                    m.Pid,
                    Data = Convert.ToHexStringLower(m.Data),
                }), CommonOptions.Json));
                return 0;
            }
            var table = new Table().NoBorder().AddColumns("RULE", "STRING", "PID", "VIRTUAL", "PHYSICAL", "OFFSET", "DATA");
            foreach (var match in matches)
            {
                table.AddRow(
                    Markup.Escape(match.Rule),
                    Markup.Escape(match.StringIdentifier ?? "-"),
                    match.Pid?.ToString(CultureInfo.InvariantCulture) ?? "-",
                    match.VirtualAddress is { } virtualAddress ? CommonOptions.Hex(virtualAddress) : "-",
                    match.PhysicalAddress is { } physicalAddress ? CommonOptions.Hex(physicalAddress) : "-",
                    CommonOptions.Hex(match.Offset),
                    Markup.Escape(Printable(match.Data)));
            }
            console.Ansi.Write(table);
            console.Output.WriteLine($"{matches.Count} match{(matches.Count == 1 ? "" : "es")}{(matches.Count >= options.MaxMatches ? " (stopped at --max)" : "")}");
            return 0;
        });
        return command;
    }

    /// <summary>The matched bytes as text where they are printable, dots elsewhere, cut to 48 characters.</summary>
    private static string Printable(byte[] data)
    {
        var text = new StringBuilder(Math.Min(data.Length, 48));
        foreach (var b in data.AsSpan(0, Math.Min(data.Length, 48)))
            text.Append(b is >= 0x20 and < 0x7f ? (char)b : '.');
        return text.ToString();
    }
}
