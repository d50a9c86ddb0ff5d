using System.Globalization;
using System.Text.RegularExpressions;

namespace Introspect.Symbols.Tests;

/// <summary>One field of clang's record layout dump: its dotted path from the record, its byte offset, and for a bit
/// field its first and last bit (clang counts bits from the byte it names).</summary>
internal sealed record ClangField(string Path, ulong Offset, int? FirstBit, int? LastBit)
{
    public bool IsBitfield => FirstBit is not null;

    /// <summary>The field's first bit counted from the start of the record.</summary>
    public ulong AbsoluteBit => Offset * 8 + (ulong)(FirstBit ?? 0);

    public int Width => LastBit!.Value - FirstBit!.Value + 1;
}

/// <summary>A record as <c>clang -Xclang -fdump-record-layouts</c> lays it out.</summary>
internal sealed partial record ClangRecord(string Name, ulong Size, List<ClangField> Fields)
{
    /// <summary>Every top-level record of the dump (those that start at depth 0), by name.</summary>
    public static Dictionary<string, ClangRecord> Parse(string dump)
    {
        var records = new Dictionary<string, ClangRecord>();
        ClangRecord? current = null;
        var path = new List<string?>();
        foreach (var raw in dump.Split('\n'))
        {
            if (raw.StartsWith("*** Dumping AST Record Layout", StringComparison.Ordinal))
            {
                current = null;
                continue;
            }
            var m = Line().Match(raw);
            if (!m.Success)
                continue;
            string text = m.Groups[5].Value.TrimEnd();
            if (text.StartsWith("[sizeof=", StringComparison.Ordinal))
            {
                if (current is not null && SizeText().Match(text) is { Success: true } size)
                    records[current.Name] = current with { Size = ulong.Parse(size.Groups[1].Value, CultureInfo.InvariantCulture) };
                current = null;
                continue;
            }
            if (!m.Groups[1].Success)
                continue;
            int depth = m.Groups[4].Value.Length / 2;
            // Anonymous members have no name: the type ends the line, with the place clang found it.
            string? name = text.EndsWith(')') && text.Contains("(anonymous at", StringComparison.Ordinal) ? null : text[(text.LastIndexOf(' ') + 1)..];
            if (depth == 0)
            {
                current = new ClangRecord(name ?? "", 0, []);
                path.Clear();
                path.Add(null);
                continue;
            }
            if (current is null)
                continue;
            while (path.Count > depth)
                path.RemoveAt(path.Count - 1);
            path.Add(name);
            if (name is null)
                continue;
            var full = string.Join('.', path.Where(p => p is not null));
            current.Fields.Add(new ClangField(full, ulong.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture),
                m.Groups[2].Success ? int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture) : null,
                m.Groups[3].Success ? int.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture) : null));
        }
        return records;
    }

    [GeneratedRegex(@"^\s*(?:(\d+)(?::(\d+)-(\d+))?)?\s*\| (\s*)(.*)$")]
    private static partial Regex Line();

    [GeneratedRegex(@"sizeof=(\d+)")]
    private static partial Regex SizeText();
}
