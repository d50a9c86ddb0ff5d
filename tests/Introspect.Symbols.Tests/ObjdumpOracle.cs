using System.Globalization;
using System.Text.RegularExpressions;

namespace Introspect.Symbols.Tests;

/// <summary>What <c>objdump -p</c> and <c>objdump -h -w</c> print about a PE image, parsed.</summary>
internal sealed partial class ObjdumpOracle
{
    public Dictionary<string, string> Header { get; } = [];
    public List<(string Name, ulong Size, ulong Vma, ulong FileOffset)> Sections { get; } = [];
    public List<(uint Rva, uint Size)> Directories { get; } = [];
    public List<(string Dll, uint LookupTable, uint NameRva, uint FirstThunk, List<(ushort Hint, string Name)> Functions)> Imports { get; } = [];
    public string? ExportName { get; private set; }
    public uint OrdinalBase { get; private set; }
    /// <summary>Export address table entries: index (ordinal - base), RVA, forwarder.</summary>
    public List<(int Index, uint Rva, string? Forwarder)> ExportAddresses { get; } = [];
    /// <summary>Name pointer table entries: index into the address table, name.</summary>
    public List<(int Index, string Name)> ExportNames { get; } = [];
    public (string Guid, uint Age, string Pdb)? CodeView { get; private set; }

    public static ObjdumpOracle Of(string path)
    {
        var oracle = new ObjdumpOracle();
        oracle.ParsePrivateHeaders(Tools.Run("objdump", "-p", path));
        oracle.ParseSections(Tools.Run("objdump", "-h", "-w", path));
        return oracle;
    }

    private static uint Hex32(string text) => (uint)ulong.Parse(text, NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    private static ulong Hex64(string text) => ulong.Parse(text, NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    private void ParseSections(string text)
    {
        foreach (Match m in SectionLine().Matches(text))
            Sections.Add((m.Groups[1].Value, Hex64(m.Groups[2].Value), Hex64(m.Groups[3].Value), Hex64(m.Groups[4].Value)));
    }

    private void ParsePrivateHeaders(string text)
    {
        var lines = text.Split('\n');
        string part = "header";
        (string Dll, uint LookupTable, uint NameRva, uint FirstThunk, List<(ushort, string)> Functions)? import = null;
        (uint Lookup, uint Name, uint Thunk) descriptor = default;
        foreach (var raw in lines)
        {
            var line = raw.TrimEnd('\r');
            if (line.StartsWith("The Data Directory", StringComparison.Ordinal)) { part = "directories"; continue; }
            if (line.StartsWith("The Import Tables", StringComparison.Ordinal)) { part = "imports"; continue; }
            if (line.StartsWith("The Export Tables", StringComparison.Ordinal)) { part = "exports"; continue; }
            if (line.StartsWith("Export Address Table --", StringComparison.Ordinal)) { part = "eat"; continue; }
            if (line.StartsWith("[Ordinal/Name Pointer] Table", StringComparison.Ordinal)) { part = "names"; continue; }
            if (line.StartsWith("The Function Table", StringComparison.Ordinal) || line.StartsWith("PE File Base Relocations", StringComparison.Ordinal)
                || line.StartsWith("The .rsrc", StringComparison.Ordinal) || line.StartsWith("There is a debug directory", StringComparison.Ordinal))
            {
                part = "other";
            }
            if (line.StartsWith("(format RSDS", StringComparison.Ordinal))
            {
                var m = CodeViewLine().Match(line);
                CodeView = (m.Groups[1].Value, uint.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture), m.Groups[3].Value);
                continue;
            }
            switch (part)
            {
                case "header":
                {
                    var m = HeaderLine().Match(line);
                    if (m.Success)
                        Header[m.Groups[1].Value] = m.Groups[2].Value;
                    break;
                }
                case "directories":
                {
                    var m = DirectoryLine().Match(line);
                    if (m.Success)
                        Directories.Add((Hex32(m.Groups[1].Value), Hex32(m.Groups[2].Value)));
                    break;
                }
                case "imports":
                {
                    var d = DescriptorLine().Match(line);
                    if (d.Success)
                    {
                        descriptor = (Hex32(d.Groups[2].Value), Hex32(d.Groups[5].Value), Hex32(d.Groups[6].Value));
                        continue;
                    }
                    if (line.StartsWith("\tDLL Name: ", StringComparison.Ordinal))
                    {
                        import = (line["\tDLL Name: ".Length..], descriptor.Lookup, descriptor.Name, descriptor.Thunk, []);
                        Imports.Add(import.Value);
                        continue;
                    }
                    var f = ImportLine().Match(line);
                    if (f.Success && import is { } current)
                        current.Functions.Add((ushort.Parse(f.Groups[2].Value, CultureInfo.InvariantCulture), f.Groups[3].Value));
                    break;
                }
                case "exports":
                {
                    if (line.StartsWith("Name ", StringComparison.Ordinal))
                        ExportName = line.Split(' ', '\t').Last(s => s.Length > 0);
                    if (line.StartsWith("Ordinal Base", StringComparison.Ordinal))
                        OrdinalBase = uint.Parse(line.Split(' ', '\t').Last(s => s.Length > 0), CultureInfo.InvariantCulture);
                    break;
                }
                case "eat":
                {
                    var m = ExportAddressLine().Match(line);
                    if (m.Success)
                        ExportAddresses.Add((int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), Hex32(m.Groups[3].Value), m.Groups[5].Success ? m.Groups[5].Value : null));
                    break;
                }
                case "names":
                {
                    var m = ExportNameLine().Match(line);
                    if (m.Success)
                        ExportNames.Add((int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), m.Groups[2].Value));
                    break;
                }
            }
        }
    }

    [GeneratedRegex(@"^\s*\d+\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+2\*\*", RegexOptions.Multiline)]
    private static partial Regex SectionLine();

    [GeneratedRegex(@"^([A-Za-z/]+)\s+([0-9a-fA-Fx]+)")]
    private static partial Regex HeaderLine();

    [GeneratedRegex(@"^Entry [0-9a-f] ([0-9a-f]+) ([0-9a-f]+) ")]
    private static partial Regex DirectoryLine();

    [GeneratedRegex(@"^ ([0-9a-f]{8})\t([0-9a-f]{8}) ([0-9a-f]{8}) ([0-9a-f]{8}) ([0-9a-f]{8}) ([0-9a-f]{8})$")]
    private static partial Regex DescriptorLine();

    [GeneratedRegex(@"^\t([0-9a-f]+)\t\s*(\d+)\s+(\S+)")]
    private static partial Regex ImportLine();

    [GeneratedRegex(@"^\t\[\s*(\d+)\] \+base\[\s*(\d+)\] ([0-9a-f]+) (Export|Forwarder) RVA(?: -- (\S+))?")]
    private static partial Regex ExportAddressLine();

    [GeneratedRegex(@"^\t\[\s*(\d+)\] (\S+)$")]
    private static partial Regex ExportNameLine();

    [GeneratedRegex(@"^\(format RSDS signature ([0-9a-f]{32}) age (\d+) pdb (.*)\)$")]
    private static partial Regex CodeViewLine();
}
