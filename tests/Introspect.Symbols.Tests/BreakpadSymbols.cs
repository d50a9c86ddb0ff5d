using System.Globalization;

namespace Introspect.Symbols.Tests;

/// <summary>A Breakpad symbol file (<c>.sym</c>): the module line and every FUNC and PUBLIC record.</summary>
internal sealed record BreakpadSymbols(string Architecture, string ModuleId, string PdbName, IReadOnlyList<BreakpadRecord> Records)
{
    public static BreakpadSymbols Read(string path)
    {
        string architecture = "", id = "", name = "";
        var records = new List<BreakpadRecord>();
        foreach (var line in File.ReadLines(path))
        {
            var parts = line.Split(' ');
            switch (parts[0])
            {
                case "MODULE":
                    (architecture, id, name) = (parts[2], parts[3], string.Join(' ', parts[4..]));
                    break;
                case "FUNC":
                {
                    // FUNC [m] address size parameter_size name
                    int at = parts[1] == "m" ? 2 : 1;
                    records.Add(new BreakpadRecord(false, at == 2, Hex(parts[at]), Hex(parts[at + 1]), string.Join(' ', parts[(at + 3)..])));
                    break;
                }
                case "PUBLIC":
                {
                    // PUBLIC [m] address parameter_size name
                    int at = parts[1] == "m" ? 2 : 1;
                    records.Add(new BreakpadRecord(true, at == 2, Hex(parts[at]), 0, string.Join(' ', parts[(at + 2)..])));
                    break;
                }
            }
        }
        return new BreakpadSymbols(architecture, id, name, records);
    }

    private static uint Hex(string text) => uint.Parse(text, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
}

/// <summary>One FUNC or PUBLIC record; <see cref="Multiple"/> marks an address that several names share (identical code folded).</summary>
internal sealed record BreakpadRecord(bool IsPublic, bool Multiple, uint Address, uint Size, string Name)
{
    public override string ToString() => $"{(IsPublic ? "PUBLIC" : "FUNC")} {Address:x} {Size:x} {Name}";
}
