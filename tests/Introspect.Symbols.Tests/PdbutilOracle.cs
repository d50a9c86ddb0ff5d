using System.Globalization;
using System.Text.RegularExpressions;

namespace Introspect.Symbols.Tests;

/// <summary>What <c>llvm-pdbutil dump</c> prints about a PDB, parsed: summary, streams, modules, section headers,
/// public and global symbols, and type records.</summary>
internal sealed partial class PdbutilOracle
{
    public Dictionary<string, string> Summary { get; } = [];
    public Dictionary<int, uint> StreamSizes { get; } = [];
    public List<(string Name, string Object, int Stream)> Modules { get; } = [];
    public List<(string Name, uint VirtualSize, uint VirtualAddress)> Sections { get; } = [];
    public List<(string Name, ushort Section, uint Offset)> Publics { get; } = [];
    public List<(string Kind, string Name, string Detail)> Globals { get; } = [];
    public Dictionary<uint, TypeRecord> Types { get; } = [];

    public sealed class TypeRecord
    {
        public required string Kind { get; init; }
        public string? Name { get; init; }
        public List<string> Lines { get; } = [];
        public List<Member> Members { get; } = [];
        public string Body => string.Join('\n', Lines);
    }

    public sealed record Member(string Kind, string Name, ulong Offset, string Text);

    public static PdbutilOracle Of(string path)
    {
        var oracle = new PdbutilOracle();
        oracle.ParseSummary(Tools.Run("llvm-pdbutil", "dump", "-summary", "-streams", path));
        oracle.ParseModules(Tools.Run("llvm-pdbutil", "dump", "-modules", path));
        oracle.ParseSections(Tools.Run("llvm-pdbutil", "dump", "-section-headers", path));
        oracle.ParseSymbols(Tools.Run("llvm-pdbutil", "dump", "-publics", path), publics: true);
        oracle.ParseSymbols(Tools.Run("llvm-pdbutil", "dump", "-globals", path), publics: false);
        oracle.ParseTypes(Tools.Run("llvm-pdbutil", "dump", "-types", path));
        return oracle;
    }

    public static uint Hex(string text) => uint.Parse(text.StartsWith("0x", StringComparison.Ordinal) ? text[2..] : text, NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    private void ParseSummary(string text)
    {
        foreach (var line in text.Split('\n'))
        {
            var m = SummaryLine().Match(line);
            if (m.Success)
                Summary[m.Groups[1].Value] = m.Groups[2].Value.Trim();
            var s = StreamLine().Match(line);
            if (s.Success)
                StreamSizes[int.Parse(s.Groups[1].Value, CultureInfo.InvariantCulture)] = uint.Parse(s.Groups[2].Value, CultureInfo.InvariantCulture);
        }
    }

    private void ParseModules(string text)
    {
        string? name = null, obj = null;
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            var m = ModuleLine().Match(line);
            if (m.Success)
            {
                name = m.Groups[1].Value;
                continue;
            }
            var o = ObjectLine().Match(line);
            if (o.Success)
            {
                obj = o.Groups[1].Value;
                continue;
            }
            var d = DebugStreamLine().Match(line);
            if (d.Success && name is not null)
            {
                Modules.Add((name, obj ?? "", int.Parse(d.Groups[1].Value, CultureInfo.InvariantCulture)));
                name = obj = null;
            }
        }
    }

    private void ParseSections(string text)
    {
        string? name = null;
        uint size = 0;
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.StartsWith("Original Section Headers", StringComparison.Ordinal))
                break;
            if (line == "name")
                name = "";
            else if (line.EndsWith(" name", StringComparison.Ordinal))
                name = line[..^5];
            else if (line.EndsWith(" virtual size", StringComparison.Ordinal))
                size = Hex(line.Split(' ')[0]);
            else if (line.EndsWith(" virtual address", StringComparison.Ordinal) && name is not null)
            {
                Sections.Add((name, size, Hex(line.Split(' ')[0])));
                name = null;
            }
        }
    }

    private void ParseSymbols(string text, bool publics)
    {
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            var m = SymbolLine().Match(lines[i]);
            if (!m.Success)
                continue;
            string kind = m.Groups[1].Value, name = m.Groups[2].Value;
            string detail = i + 1 < lines.Length ? lines[i + 1].Trim() : "";
            if (publics)
            {
                var a = AddressText().Match(detail);
                Publics.Add((name, ushort.Parse(a.Groups[1].Value, CultureInfo.InvariantCulture), uint.Parse(a.Groups[2].Value, CultureInfo.InvariantCulture)));
            }
            else
            {
                Globals.Add((kind, name, detail));
            }
        }
    }

    private void ParseTypes(string text)
    {
        TypeRecord? current = null;
        foreach (var raw in text.Split('\n'))
        {
            var header = TypeHeader().Match(raw);
            if (header.Success)
            {
                current = new TypeRecord { Kind = header.Groups[2].Value, Name = header.Groups[3].Success ? header.Groups[3].Value : null };
                Types[Hex(header.Groups[1].Value)] = current;
                continue;
            }
            if (current is null)
                continue;
            var line = raw.Trim();
            if (line.Length == 0)
                continue;
            if (line.StartsWith("- LF_", StringComparison.Ordinal))
            {
                var member = MemberLine().Match(line);
                string memberKind = line[2..].Split(' ', '[')[0];
                if (member.Success)
                    current.Members.Add(new Member(memberKind, member.Groups[1].Value, ulong.Parse(member.Groups[2].Value, CultureInfo.InvariantCulture), line));
                else
                    current.Members.Add(new Member(memberKind, StmemberName().Match(line) is { Success: true } s ? s.Groups[1].Value : "", 0, line));
                continue;
            }
            if (current.Members.Count > 0)
            {
                // A member's second line (base classes print their offset there).
                var last = current.Members[^1];
                var offset = OffsetText().Match(line);
                current.Members[^1] = last with { Offset = offset.Success ? ulong.Parse(offset.Groups[1].Value, CultureInfo.InvariantCulture) : last.Offset, Text = last.Text + " " + line };
                continue;
            }
            current.Lines.Add(line);
        }
    }

    [GeneratedRegex(@"^\s+([A-Za-z][A-Za-z ]+): (.*)$")]
    private static partial Regex SummaryLine();

    [GeneratedRegex(@"^\s+Stream\s+(\d+) \(\s*(\d+) bytes\)")]
    private static partial Regex StreamLine();

    [GeneratedRegex(@"^Mod \d+ \| `(.*)`:\s*$")]
    private static partial Regex ModuleLine();

    [GeneratedRegex(@"^Obj: `(.*)`:\s*$")]
    private static partial Regex ObjectLine();

    [GeneratedRegex(@"^debug stream: (\d+),")]
    private static partial Regex DebugStreamLine();

    [GeneratedRegex(@"^\s+\d+ \| (S_\w+) \[size = \d+\](?: `(.*)`)?\s*$")]
    private static partial Regex SymbolLine();

    [GeneratedRegex(@"addr = (\d+):(\d+)")]
    private static partial Regex AddressText();

    [GeneratedRegex(@"^\s+0x([0-9A-F]+) \| (LF_\w+) \[size = \d+\](?: `(.*)`)?\s*$")]
    private static partial Regex TypeHeader();

    [GeneratedRegex(@"^- LF_\w+ \[name = `(.*)`, Type = [^,]+, offset = (\d+),")]
    private static partial Regex MemberLine();

    [GeneratedRegex(@"\[name = `(.*?)`")]
    private static partial Regex StmemberName();

    [GeneratedRegex(@"offset = (\d+)")]
    private static partial Regex OffsetText();
}
