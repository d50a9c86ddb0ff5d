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
        var json = CommonOptions.JsonOutput();
        var pluginPath = CommonOptions.PluginPath();
        var verbose = CommonOptions.Verbose();
        var command = new Command("search", "Find a byte pattern or a text in physical memory; prints the physical address of each hit");
        CommonOptions.AddTo(command, chain, pattern, text, utf16, maxHits, json, pluginPath, verbose);
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
            IReadOnlyList<ulong> hits = null!;
            void Search(IProgress<SearchProgress>? progress) =>
                hits = MemorySearch.Search(opened.Memory, needle, parseResult.GetValue(maxHits), progress, cancel);
            if (console.Interactive)
            {
                console.ErrorAnsi.Progress().Start(context =>
                {
                    var task = context.AddTask("searching", maxValue: opened.Memory.MemoryMap.TotalSize);
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
