using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Introspect.Symbols.Pe;
using Spectre.Console;

namespace Introspect.Cli.Commands;

/// <summary><c>introspect pe FILE</c>: a PE image's headers, sections, exports, imports and CodeView record.</summary>
internal static class PeCommand
{
    public static Command Create(CliConsole console)
    {
        var file = new Argument<string>("file") { Description = "A PE image (.exe, .dll, .sys)" };
        var exports = new Option<bool>("--exports") { Description = "List every export: ordinal, RVA, name, forwarder" };
        var imports = new Option<bool>("--imports") { Description = "List every import, by DLL" };
        var sections = new Option<bool>("--sections") { Description = "List the section headers" };
        var json = CommonOptions.JsonOutput();
        var command = new Command("pe", "Describe a PE image: headers and CodeView record, or its exports, imports or sections") { file };
        CommonOptions.AddTo(command, exports, imports, sections, json);
        command.SetAction(parseResult =>
        {
            int chosen = (parseResult.GetValue(exports) ? 1 : 0) + (parseResult.GetValue(imports) ? 1 : 0) + (parseResult.GetValue(sections) ? 1 : 0);
            if (chosen > 1)
                throw new CliUsageException("give at most one of --exports, --imports and --sections.");
            var image = PeImage.Open(parseResult.GetValue(file)!);
            bool asJson = parseResult.GetValue(json);
            if (parseResult.GetValue(exports))
                WriteExports(console, image, asJson);
            else if (parseResult.GetValue(imports))
                WriteImports(console, image, asJson);
            else if (parseResult.GetValue(sections))
                WriteSections(console, image, asJson);
            else
                WriteSummary(console, image, asJson);
            return 0;
        });
        return command;
    }

    private static string Hex(ulong value) => CommonOptions.Hex(value);

    private static void WriteSummary(CliConsole console, PeImage image, bool json)
    {
        var codeView = image.CodeView;
        if (json)
        {
            console.Output.WriteLine(JsonSerializer.Serialize(new
            {
                image.Name,
                Format = image.Is64Bit ? "PE32+" : "PE32",
                image.Machine,
                Architecture = image.Architecture.ToString(),
                image.Characteristics,
                image.TimeDateStamp,
                image.ImageBase,
                image.SizeOfImage,
                image.AddressOfEntryPoint,
                image.Subsystem,
                image.DllCharacteristics,
                image.CheckSum,
                image.ExportName,
                Sections = image.Sections.Count,
                Exports = image.Exports.Count,
                Imports = image.Imports.Sum(m => m.Functions.Count),
                ImportedDlls = image.Imports.Count,
                CodeView = codeView is null ? null : new { codeView.Format, codeView.PdbPath, Guid = codeView.Guid.ToString("D"), codeView.Age, codeView.SymbolStoreId },
                ImageStoreId = image.ImageStoreId,
            }, CommonOptions.Json));
            return;
        }
        var grid = new Grid().AddColumn().AddColumn();
        grid.AddRow("file", Markup.Escape(image.Name));
        grid.AddRow("format", $"{(image.Is64Bit ? "PE32+" : "PE32")}, machine {Hex(image.Machine)} ({image.Architecture})");
        grid.AddRow("image base", Hex(image.ImageBase));
        grid.AddRow("size of image", Hex(image.SizeOfImage));
        grid.AddRow("entry point", $"RVA {Hex(image.AddressOfEntryPoint)}");
        grid.AddRow("time stamp", $"{Hex(image.TimeDateStamp)} ({DateTimeOffset.FromUnixTimeSeconds(image.TimeDateStamp).UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC)");
        grid.AddRow("characteristics", Hex(image.Characteristics));
        grid.AddRow("subsystem", image.Subsystem.ToString(CultureInfo.InvariantCulture));
        grid.AddRow("sections", image.Sections.Count.ToString(CultureInfo.InvariantCulture));
        grid.AddRow("exports", $"{image.Exports.Count}{(image.ExportName is { } dll ? $" (as {Markup.Escape(dll)})" : "")}");
        grid.AddRow("imports", $"{image.Imports.Sum(m => m.Functions.Count)} from {image.Imports.Count} DLLs");
        if (codeView is not null)
        {
            grid.AddRow("pdb", Markup.Escape(codeView.PdbPath));
            grid.AddRow("pdb guid / age", $"{codeView.Guid:D} / {codeView.Age}");
            grid.AddRow("symbol store id", $"{Markup.Escape(codeView.PdbFileName)}/{codeView.SymbolStoreId}");
        }
        console.Ansi.Write(grid);
    }

    private static void WriteExports(CliConsole console, PeImage image, bool json)
    {
        if (json)
        {
            console.Output.WriteLine(JsonSerializer.Serialize(image.Exports.Select(e => new { e.Ordinal, e.Rva, e.Name, e.Forwarder }), CommonOptions.Json));
            return;
        }
        foreach (var export in image.Exports)
        {
            string target = export.Forwarder is { } forwarder ? $"-> {forwarder}" : Hex(export.Rva);
            console.Output.WriteLine($"{export.Ordinal,6}  {target,-12}  {export.Name ?? "(by ordinal)"}");
        }
    }

    private static void WriteImports(CliConsole console, PeImage image, bool json)
    {
        if (json)
        {
            console.Output.WriteLine(JsonSerializer.Serialize(image.Imports.Select(m => new
            {
                Dll = m.Name,
                Functions = m.Functions.Select(f => new { f.Name, f.Hint, f.Ordinal, f.ThunkRva }),
            }), CommonOptions.Json));
            return;
        }
        foreach (var module in image.Imports)
        {
            console.Output.WriteLine(module.Name);
            foreach (var function in module.Functions)
                console.Output.WriteLine(function.Name is { } name ? $"    {name} (hint {function.Hint})" : $"    #{function.Ordinal}");
        }
    }

    private static void WriteSections(CliConsole console, PeImage image, bool json)
    {
        if (json)
        {
            console.Output.WriteLine(JsonSerializer.Serialize(image.Sections.Select(s => new { s.Name, s.VirtualAddress, s.VirtualSize, s.PointerToRawData, s.SizeOfRawData, s.Characteristics }), CommonOptions.Json));
            return;
        }
        var table = new Table().AddColumns("name", "RVA", "virtual size", "file offset", "file size", "characteristics");
        foreach (var section in image.Sections)
            table.AddRow(Markup.Escape(section.Name), Hex(section.VirtualAddress), Hex(section.VirtualSize), Hex(section.PointerToRawData), Hex(section.SizeOfRawData), Hex(section.Characteristics));
        console.Ansi.Write(table);
    }
}
