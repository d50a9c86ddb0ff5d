using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Introspect.Abi;
using Introspect.Symbols.Pdb;
using Spectre.Console;

namespace Introspect.Cli.Commands;

/// <summary><c>introspect pdb FILE</c>: a PDB's identity, or the questions a debugger asks of it: a symbol's address,
/// the symbol nearest an address, a type's layout, a field's offset; and how fast those are answered.</summary>
internal static class PdbCommand
{
    /// <summary>Exit code when the PDB has no such symbol, type or field: the answer, not an error in the input.</summary>
    private const int NotFound = 1;

    public static Command Create(CliConsole console)
    {
        var file = new Argument<string>("file") { Description = "A PDB file (MSF 7.00)" };
        var symbol = new Option<string>("--symbol") { Description = "Print the RVA of this symbol (stored, undecorated or qualified name)" };
        var address = new Option<string>("--address") { Description = "Print the symbol at or nearest below this RVA, with the displacement (decimal or 0x hex)" };
        var type = new Option<string>("--type") { Description = "Print this type's layout (or, with --field, one field's offset)" };
        var field = new Option<string>("--field") { Description = "With --type: the field's offset, a member of a member with dots (Pcb.DirectoryTableBase)" };
        var bench = new Option<bool>("--bench") { Description = "Measure open time and symbol and type queries per second against baselines measured in the same run" };
        var rounds = new Option<int>("--rounds") { Description = "With --bench: how many measured rounds of each figure", DefaultValueFactory = _ => 5 };
        var json = CommonOptions.JsonOutput();
        var command = new Command("pdb", "Describe a PDB, or ask it for a symbol, an address, a type or a field") { file };
        CommonOptions.AddTo(command, symbol, address, type, field, bench, rounds, json);
        command.SetAction(parseResult =>
        {
            int chosen = new[] { parseResult.GetValue(symbol), parseResult.GetValue(address), parseResult.GetValue(type) }.Count(v => v is not null)
                + (parseResult.GetValue(bench) ? 1 : 0);
            if (chosen > 1)
                throw new CliUsageException("give at most one of --symbol, --address, --type and --bench.");
            if (parseResult.GetValue(field) is not null && parseResult.GetValue(type) is null)
                throw new CliUsageException("--field needs --type: the type the field belongs to.");
            if (parseResult.GetValue(rounds) is < 1 or > 1000)
                throw new CliUsageException("--rounds must be between 1 and 1000.");
            string path = parseResult.GetValue(file)!;
            bool asJson = parseResult.GetValue(json);
            if (parseResult.GetValue(bench))
                return Bench(console, path, parseResult.GetValue(rounds), asJson);
            var pdb = PdbFile.Open(path);
            if (parseResult.GetValue(symbol) is { } name)
                return WriteSymbol(console, pdb, name, asJson);
            if (parseResult.GetValue(address) is { } text)
            {
                if (!PluginArguments.TryParseNumber(text, out ulong rva) || rva > uint.MaxValue)
                    throw new CliUsageException($"--address '{text}' is not an RVA; expected a decimal or 0x-prefixed hexadecimal number below 2^32.");
                return WriteAddress(console, pdb, (uint)rva, asJson);
            }
            if (parseResult.GetValue(type) is { } typeName)
                return parseResult.GetValue(field) is { } fieldPath ? WriteField(console, pdb, typeName, fieldPath, asJson) : WriteType(console, pdb, typeName, asJson);
            WriteSummary(console, pdb, asJson);
            return 0;
        });
        return command;
    }

    private static string Hex(ulong value) => CommonOptions.Hex(value);

    private static void WriteSummary(CliConsole console, PdbFile pdb, bool json)
    {
        if (json)
        {
            console.Output.WriteLine(JsonSerializer.Serialize(new
            {
                pdb.Name,
                Guid = pdb.Guid.ToString("D"),
                pdb.Age,
                pdb.DbiAge,
                pdb.Signature,
                pdb.SymbolStoreId,
                pdb.Machine,
                pdb.BlockSize,
                Streams = pdb.StreamCount,
                NamedStreams = pdb.NamedStreams,
                Modules = pdb.Modules.Count,
                Sections = pdb.Sections.Select(s => new { s.Name, s.VirtualAddress, s.VirtualSize }),
                pdb.HasOmap,
                Publics = pdb.Publics.Count,
                Globals = pdb.Globals.Count,
                Symbols = pdb.Symbols.Count,
                Types = pdb.TypeCount,
            }, CommonOptions.Json));
            return;
        }
        var grid = new Grid().AddColumn().AddColumn();
        grid.AddRow("file", Markup.Escape(pdb.Name));
        grid.AddRow("guid / age", $"{pdb.Guid:D} / {pdb.DbiAge}");
        grid.AddRow("symbol store id", pdb.SymbolStoreId);
        grid.AddRow("machine", Hex(pdb.Machine));
        grid.AddRow("streams", $"{pdb.StreamCount} in {pdb.BlockSize}-byte blocks");
        grid.AddRow("modules", pdb.Modules.Count.ToString(CultureInfo.InvariantCulture));
        grid.AddRow("sections", string.Join(' ', pdb.Sections.Select(s => Markup.Escape(s.Name))));
        grid.AddRow("omap", pdb.HasOmap ? "yes: the image was rewritten after linking" : "no");
        grid.AddRow("symbols", $"{pdb.Symbols.Count} with addresses ({pdb.Publics.Count} publics, {pdb.Globals.Count} globals)");
        grid.AddRow("types", pdb.TypeCount.ToString(CultureInfo.InvariantCulture));
        console.Ansi.Write(grid);
    }

    private static int WriteSymbol(CliConsole console, PdbFile pdb, string name, bool json)
    {
        var found = pdb.FindSymbols(name);
        if (json)
            console.Output.WriteLine(JsonSerializer.Serialize(found.Select(s => new { s.Name, s.Rva, s.Length, Kind = s.Kind.ToString().ToLowerInvariant() }), CommonOptions.Json));
        else
            foreach (var s in found)
                console.Output.WriteLine($"{Hex(s.Rva)}  {s.Kind.ToString().ToLowerInvariant(),-8}  {(s.Length == 0 ? "" : Hex(s.Length)),-8}  {s.Name}");
        if (found.Count > 0)
            return 0;
        console.Error.WriteLine($"no symbol named {name} in {pdb.Name}");
        return NotFound;
    }

    private static int WriteAddress(CliConsole console, PdbFile pdb, uint rva, bool json)
    {
        var match = pdb.FindNearestSymbol(rva);
        if (match is not { } found)
        {
            if (json)
                console.Output.WriteLine("null");
            console.Error.WriteLine($"no symbol at or below {Hex(rva)} in {pdb.Name}");
            return NotFound;
        }
        if (json)
        {
            console.Output.WriteLine(JsonSerializer.Serialize(new
            {
                Rva = rva,
                Symbol = found.Symbol.Name,
                SymbolRva = found.Symbol.Rva,
                found.Displacement,
                Kind = found.Symbol.Kind.ToString().ToLowerInvariant(),
                found.Symbol.Length,
            }, CommonOptions.Json));
        }
        else
        {
            console.Output.WriteLine(found.ToString());
        }
        return 0;
    }

    private static int WriteType(CliConsole console, PdbFile pdb, string name, bool json)
    {
        var type = pdb.FindType(name);
        if (type is null)
        {
            console.Error.WriteLine($"no type named {name} in {pdb.Name}");
            return NotFound;
        }
        if (!json)
        {
            console.Output.Write(pdb.DumpType(name));
            return 0;
        }
        var shown = type.Underlying;
        console.Output.WriteLine(JsonSerializer.Serialize(new
        {
            Name = shown.ToString(),
            Kind = shown.Kind.ToString().ToLowerInvariant(),
            shown.Size,
            shown.TypeIndex,
            Fields = shown.Fields.Select(f => new
            {
                f.Name,
                f.Offset,
                Type = f.IsBitfield ? f.Type.ElementType?.ToString() : f.Type.ToString(),
                Kind = f.Kind.ToString().ToLowerInvariant(),
                BitPosition = f.IsBitfield ? f.Type.BitPosition : (int?)null,
                BitLength = f.IsBitfield ? f.Type.BitLength : (int?)null,
            }),
            Enumerators = shown.Kind == PdbTypeKind.Enum ? shown.Enumerators.Select(e => new { e.Name, e.Value }) : null,
        }, CommonOptions.Json));
        return 0;
    }

    private static int WriteField(CliConsole console, PdbFile pdb, string typeName, string path, bool json)
    {
        if (pdb.FindType(typeName) is null)
        {
            console.Error.WriteLine($"no type named {typeName} in {pdb.Name}");
            return NotFound;
        }
        if (!pdb.TryGetFieldOffset(typeName, path, out var location))
        {
            console.Error.WriteLine($"{typeName} has no field {path}");
            return NotFound;
        }
        if (json)
        {
            console.Output.WriteLine(JsonSerializer.Serialize(new
            {
                Type = typeName,
                Field = path,
                location.Offset,
                FieldType = location.IsBitfield ? location.Type.ElementType?.ToString() : location.Type.ToString(),
                BitPosition = location.IsBitfield ? location.BitPosition : (int?)null,
                BitLength = location.IsBitfield ? location.BitLength : (int?)null,
            }, CommonOptions.Json));
        }
        else
        {
            string bits = location.IsBitfield ? $" bits {location.BitPosition}..{location.BitPosition + location.BitLength - 1} ({location.BitLength} bits)" : "";
            console.Output.WriteLine($"{Hex(location.Offset)}{bits}  {(location.IsBitfield ? location.Type.ElementType : location.Type)}");
        }
        return 0;
    }

    // ----------------------------------------------------------------------------------------------------------------
    // --bench
    //
    // Each figure has a baseline measured in the same run over the same inputs, the floor any PDB reader could reach:
    //  - opening: reading the file's bytes (every reader must at least do that; ours also indexes every symbol);
    //  - name -> address: a hash lookup in a Dictionary<string, uint> built beforehand from the same names (ours also
    //    matches undecorated names and collects every symbol of the name);
    //  - address -> nearest symbol: Array.BinarySearch over a sorted array of the same addresses;
    //  - type size and field offset: a hash lookup of the answer computed beforehand (ours finds the type by name,
    //    resolves forward references and walks the field list).
    // Rounds alternate ours and the baseline; round 0 warms both and is not counted; the median round is reported.

    private static int Bench(CliConsole console, string path, int rounds, bool json)
    {
        var figures = new List<BenchFigure>();
        PdbFile pdb = null!;
        figures.Add(Time("open (reads and indexes the symbols)", rounds, "ms",
            () => pdb = PdbFile.Open(path),
            () => File.ReadAllBytes(path)));

        var names = pdb.Symbols.Select(s => s.Name).Distinct(StringComparer.Ordinal).ToArray();
        var byName = new Dictionary<string, uint>(StringComparer.Ordinal);
        foreach (var s in pdb.Symbols)
            byName.TryAdd(s.Name, s.Rva);
        figures.Add(Rate("symbol name to address", rounds, names.Length,
            () => { foreach (var n in names) pdb.TryGetSymbolAddress(n, out _); },
            () => { foreach (var n in names) byName.TryGetValue(n, out _); }));

        var sorted = pdb.Symbols.Select(s => s.Rva).ToArray();
        var random = new Random(0x5eed);
        uint low = sorted.Length > 0 ? sorted[0] : 0, high = sorted.Length > 0 ? sorted[^1] : 1;
        var addresses = Enumerable.Range(0, 100_000).Select(_ => (uint)random.NextInt64(low, (long)high + 1)).ToArray();
        figures.Add(Rate("address to nearest symbol", rounds, addresses.Length,
            () => { foreach (var a in addresses) pdb.FindNearestSymbol(a); },
            () => { foreach (var a in addresses) Array.BinarySearch(sorted, a); }));

        var types = pdb.UserDefinedTypes.Where(t => t.Name.Length > 0 && !t.Name.Contains("<unnamed", StringComparison.Ordinal)).Take(20_000).ToArray();
        var typeNames = types.Select(t => t.Name).Distinct(StringComparer.Ordinal).ToArray();
        var sizes = new Dictionary<string, ulong>(StringComparer.Ordinal);
        foreach (var t in typeNames)
            sizes[t] = pdb.FindType(t)!.Size;
        if (typeNames.Length > 0)
        {
            figures.Add(Rate("type name to size", rounds, typeNames.Length,
                () => { foreach (var t in typeNames) pdb.TryGetTypeSize(t, out _); },
                () => { foreach (var t in typeNames) sizes.TryGetValue(t, out _); }));
        }
        var fields = new List<(string Type, string Field)>();
        foreach (var t in typeNames)
        {
            if (pdb.FindType(t)!.Fields.FirstOrDefault(f => f.Kind == PdbFieldKind.Member && f.Name.Length > 0) is { } member)
                fields.Add((t, member.Name));
        }
        var offsets = new Dictionary<(string, string), ulong>();
        foreach (var (t, f) in fields)
        {
            pdb.TryGetFieldOffset(t, f, out var location);
            offsets[(t, f)] = location.Offset;
        }
        if (fields.Count > 0)
        {
            figures.Add(Rate("type and field to offset", rounds, fields.Count,
                () => { foreach (var (t, f) in fields) pdb.TryGetFieldOffset(t, f, out _); },
                () => { foreach (var key in fields) offsets.TryGetValue(key, out _); }));
        }

        if (json)
        {
            console.Output.WriteLine(JsonSerializer.Serialize(figures, CommonOptions.Json));
            return 0;
        }
        var table = new Table().AddColumns("measure", "introspect", "baseline", "unit", "ratio");
        foreach (var f in figures)
            table.AddRow(Markup.Escape(f.Name), f.Value.ToString("N1", CultureInfo.InvariantCulture), f.Baseline.ToString("N1", CultureInfo.InvariantCulture), f.Unit, f.Ratio.ToString("0.00", CultureInfo.InvariantCulture));
        console.Ansi.Write(table);
        console.Output.WriteLine($"{Markup.Escape(path)}: {new FileInfo(path).Length} bytes, {pdb.Symbols.Count} symbols, {pdb.TypeCount} types; median of {rounds} rounds.");
        console.Output.WriteLine("baselines: open = reading the file; name -> address, type size, field offset = a hash lookup of a precomputed answer; address -> symbol = a binary search.");
        return 0;
    }

    /// <summary>A time (ms, lower is better) against its baseline; ratio = ours / baseline.</summary>
    private static BenchFigure Time(string name, int rounds, string unit, Action ours, Action baseline)
    {
        var (oursSeconds, baselineSeconds) = Measure(rounds, ours, baseline);
        double value = oursSeconds * 1000, floor = baselineSeconds * 1000;
        return new BenchFigure(name, value, unit, floor, value / floor);
    }

    /// <summary>Queries per second (higher is better) against its baseline; ratio = ours / baseline.</summary>
    private static BenchFigure Rate(string name, int rounds, int count, Action ours, Action baseline)
    {
        var (oursSeconds, baselineSeconds) = Measure(rounds, ours, baseline);
        double value = count / oursSeconds, floor = count / baselineSeconds;
        return new BenchFigure(name + " (queries/s)", value, "queries/s", floor, value / floor);
    }

    private static (double Ours, double Baseline) Measure(int rounds, Action ours, Action baseline)
    {
        var oursTimes = new List<double>();
        var baselineTimes = new List<double>();
        for (int round = 0; round <= rounds; round++)
        {
            var watch = Stopwatch.StartNew();
            ours();
            double oursElapsed = watch.Elapsed.TotalSeconds;
            watch.Restart();
            baseline();
            double baselineElapsed = watch.Elapsed.TotalSeconds;
            if (round == 0)
                continue; // warms caches, the JIT and the lazy type index
            oursTimes.Add(oursElapsed);
            baselineTimes.Add(baselineElapsed);
        }
        return (Math.Max(Median(oursTimes), 1e-9), Math.Max(Median(baselineTimes), 1e-9));
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        return values[values.Count / 2];
    }
}
