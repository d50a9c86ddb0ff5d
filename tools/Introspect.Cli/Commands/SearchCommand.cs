using System.CommandLine;
using System.Text.Json;
using Introspect.Core.Memory;
using Spectre.Console;

namespace Introspect.Cli.Commands;

/// <summary><c>introspect search</c>: where a byte pattern or a text occurs in physical memory.</summary>
internal static class SearchCommand
{
    public static Command Create(CliConsole console)
    {
        var chain = CommonOptions.Chain();
        var pattern = new Option<string>("--pattern") { Description = "Bytes in hex, ?? for any byte, e.g. \"4d 5a ?? 00\"" };
        var text = new Option<string>("--text") { Description = "A text, searched as UTF-8" };
        var utf16 = new Option<bool>("--utf16") { Description = "Search --text as UTF-16LE instead of UTF-8" };
        var maxHits = new Option<int>("--max-hits") { Description = "Stop after this many hits", DefaultValueFactory = _ => 10000 };
        var pid = ProcessCommands.Pid(required: false);
        var json = CommonOptions.JsonOutput();
        var pluginPath = CommonOptions.PluginPath();
        var verbose = CommonOptions.Verbose();
        var command = new Command("search", "Find a byte pattern or a text in physical memory, or in a process's memory areas with --pid; prints the address of each hit");
        CommonOptions.AddTo(command, chain, pattern, text, utf16, maxHits, pid, json, pluginPath, verbose);
        command.SetAction((parseResult, cancel) =>
        {
            var patternText = parseResult.GetValue(pattern);
            var searchText = parseResult.GetValue(text);
            if ((patternText is null) == (searchText is null))
                throw new CliUsageException("give exactly one of --pattern HEX or --text STRING.");
            if (parseResult.GetValue(maxHits) < 1)
                throw new CliUsageException("--max-hits must be at least 1.");
            BytePattern needle;
            try
            {
                needle = patternText is not null
                    ? BytePattern.Parse(patternText)
                    : BytePattern.FromText(searchText!, parseResult.GetValue(utf16) ? System.Text.Encoding.Unicode : System.Text.Encoding.UTF8);
            }
            catch (FormatException e)
            {
                throw new CliUsageException($"--pattern: {e.Message}", e);
            }

            using var opened = CommonOptions.OpenChain(parseResult, chain, pluginPath, verbose);
            Func<IProgress<SearchProgress>?, IReadOnlyList<ulong>> search;
            ulong total = opened.Memory.MemoryMap.TotalSize;
            if (parseResult.GetResult(pid) is null)
            {
                search = progress => MemorySearch.Search(opened.Memory, needle, parseResult.GetValue(maxHits), progress, cancel);
            }
            else
            {
                var system = opened.Chain.RequireOperatingSystem();
                var process = ProcessCommands.FindProcess(system, parseResult.GetValue(pid));
                var memory = system.OpenProcessMemory(process);
                var areas = system.GetMemoryAreas(process).Select(a => (a.Start, a.End)).ToList();
                total = areas.Aggregate(0UL, (sum, area) => sum + (area.End - area.Start));
                search = progress => MemorySearch.Search(memory, needle, areas, parseResult.GetValue(maxHits), progress, cancel);
            }
            IReadOnlyList<ulong> hits = null!;
            void Search(IProgress<SearchProgress>? progress) => hits = search(progress);
            if (console.Interactive)
            {
                console.ErrorAnsi.Progress().Start(context =>
                {
                    var task = context.AddTask("searching", maxValue: total);
                    Search(new Progress<SearchProgress>(p => task.Value = p.BytesDone));
                });
            }
            else
            {
                Search(null);
            }

            if (parseResult.GetValue(json))
                console.Output.WriteLine(JsonSerializer.Serialize(new { Hits = hits }, CommonOptions.Json));
            else
                foreach (var hit in hits)
                    console.Output.WriteLine(CommonOptions.Hex(hit));
            if (hits.Count >= parseResult.GetValue(maxHits))
                console.Error.WriteLine($"warning: stopped at --max-hits {hits.Count}; there may be more.");
            return Task.FromResult(0);
        });
        return command;
    }
}
