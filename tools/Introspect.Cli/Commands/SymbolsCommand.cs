using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Introspect.Symbols.Pe;
using Introspect.Symbols.Store;
using Spectre.Console;

namespace Introspect.Cli.Commands;

/// <summary><c>introspect symbols fetch --pe FILE</c>: the PDB an image was linked with, from the symbol path into the cache.</summary>
internal static class SymbolsCommand
{
    /// <summary>Exit code when the PDB was found nowhere on the symbol path.</summary>
    private const int NotFound = 1;

    public static Command Create(CliConsole console)
    {
        var command = new Command("symbols", "Find and download PDBs along a symbol path (_NT_SYMBOL_PATH syntax) into a local cache");

        var pe = new Option<string>("--pe") { Description = "The image whose PDB to fetch (its CodeView record names the PDB, GUID and age)", Required = true };
        var symbolPath = new Option<string>("--symbol-path") { Description = $"Where to look, e.g. srv*CACHE*URL;FOLDER (default: ${SymbolPath.EnvironmentVariable}, else Microsoft's server cached in {SymbolPath.DefaultCache})" };
        var cache = new Option<string>("--cache") { Description = "A cache folder looked in first and kept up to date (cache*DIR in front of the path)" };
        var offline = new Option<bool>("--offline") { Description = "Use caches and folders only; never the network" };
        var timeout = new Option<double>("--timeout") { Description = "Seconds to wait for a server's answer, and for each piece of a download", DefaultValueFactory = _ => 30 };
        var retries = new Option<int>("--retries") { Description = "Attempts per file and server on timeouts, broken downloads and server errors", DefaultValueFactory = _ => 3 };
        var json = CommonOptions.JsonOutput();
        var fetch = new Command("fetch", "Download the PDB matching an image into the cache; prints its path");
        CommonOptions.AddTo(fetch, pe, symbolPath, cache, offline, timeout, retries, json);
        fetch.SetAction(async (parseResult, cancel) =>
        {
            if (parseResult.GetValue(timeout) is not (> 0 and <= 3600))
                throw new CliUsageException("--timeout must be between 0 and 3600 seconds.");
            if (parseResult.GetValue(retries) is < 1 or > 100)
                throw new CliUsageException("--retries must be between 1 and 100.");
            var image = PeImage.Open(parseResult.GetValue(pe)!);
            if (image.CodeView is not { } codeView)
                throw new CliUsageException($"{image.Name} has no CodeView debug record: it names no PDB.");
            SymbolFileKey key;
            try
            {
                key = SymbolFileKey.ForPdb(codeView);
            }
            catch (NotSupportedException e)
            {
                throw new CliUsageException(e.Message, e);
            }

            SymbolPath path;
            try
            {
                string text = parseResult.GetValue(symbolPath) ?? SymbolPath.FromEnvironment().ToString();
                if (parseResult.GetValue(cache) is { } folder)
                    text = $"cache*{folder};{text}";
                path = SymbolPath.Parse(text);
            }
            catch (FormatException e)
            {
                throw new CliUsageException($"--symbol-path: {e.Message}", e);
            }

            var seconds = TimeSpan.FromSeconds(parseResult.GetValue(timeout));
            using var store = new SymbolStore(path, new SymbolStoreOptions
            {
                Offline = parseResult.GetValue(offline),
                ResponseTimeout = seconds,
                StallTimeout = seconds,
                MaxAttempts = parseResult.GetValue(retries),
            });
            SymbolLookup lookup = null!;
            if (console.Interactive)
            {
                await console.ErrorAnsi.Progress().StartAsync(async context =>
                {
                    var task = context.AddTask(Markup.Escape(key.StorePath), maxValue: 1);
                    var progress = new Progress<SymbolDownloadProgress>(p =>
                    {
                        if (p.TotalBytes is { } size)
                            task.MaxValue = size;
                        task.Value = p.BytesReceived;
                    });
                    lookup = await store.FindAsync(key, progress, cancel);
                    task.Value = task.MaxValue;
                });
            }
            else
            {
                lookup = await store.FindAsync(key, null, cancel);
            }

            if (parseResult.GetValue(json))
            {
                console.Output.WriteLine(JsonSerializer.Serialize(new
                {
                    Pdb = key.FileName,
                    key.Id,
                    lookup.Found,
                    lookup.Path,
                    SymbolPath = path.ToString(),
                    lookup.Log,
                }, CommonOptions.Json));
            }
            else if (lookup.Found)
            {
                console.Output.WriteLine(lookup.Path);
            }
            if (lookup.Found)
                return 0;
            if (!parseResult.GetValue(json))
            {
                foreach (var line in lookup.Log)
                    console.Error.WriteLine("  " + line);
            }
            console.Error.WriteLine($"error: {key.StorePath} was not found on the symbol path {path}");
            return NotFound;
        });
        command.Add(fetch);
        return command;
    }
}
