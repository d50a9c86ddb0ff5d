using System.Globalization;

namespace Introspect.Os.Linux.Tests;

/// <summary>The ground truth a guest printed on its console: <c>/proc/version</c>, then sections.</summary>
/// <remarks>
/// Two layouts exist: sections headed <c>--- NAME</c> that run to the next header (the shared guest and the first
/// fixture guest), and sections between <c>--- BEGIN NAME</c> and <c>--- END NAME</c>. Both are read into the same
/// name → lines map; a section's name keeps its arguments (<c>maps 90</c>).
/// </remarks>
internal sealed class Oracle
{
    private readonly Dictionary<string, List<string>> _sections = new(StringComparer.Ordinal);

    private Oracle(string version) => Version = version;

    /// <summary>The first line after <c>=== ORACLE BEGIN</c>: <c>/proc/version</c>.</summary>
    public string Version { get; }

    public IReadOnlyCollection<string> SectionNames => _sections.Keys;

    public static Oracle Load(string path)
    {
        var lines = File.ReadAllLines(path).Select(l => l.TrimEnd('\r')).ToList();
        int begin = lines.IndexOf("=== ORACLE BEGIN");
        int end = lines.IndexOf("=== ORACLE END");
        Assert.That(begin, Is.GreaterThanOrEqualTo(0).And.LessThan(end), $"{path} holds no ORACLE BEGIN/END block");
        var oracle = new Oracle(lines[begin + 1]);
        List<string>? current = null;
        for (int i = begin + 2; i < end; i++)
        {
            var line = lines[i];
            if (line.StartsWith("--- END ", StringComparison.Ordinal))
            {
                current = null;
                continue;
            }
            if (line.StartsWith("--- ", StringComparison.Ordinal))
            {
                var name = line.StartsWith("--- BEGIN ", StringComparison.Ordinal) ? line["--- BEGIN ".Length..] : line[4..];
                current = [];
                oracle._sections[name.Trim()] = current;
                continue;
            }
            current?.Add(line);
        }
        return oracle;
    }

    public bool Has(string name) => _sections.ContainsKey(name);

    public IReadOnlyList<string> Section(string name)
    {
        Assert.That(_sections.ContainsKey(name), $"the oracle has no section '{name}'; it has {string.Join(", ", _sections.Keys)}");
        return _sections[name];
    }

    /// <summary>The kallsyms section: name → address (the first of each name).</summary>
    public Dictionary<string, ulong> Kallsyms()
    {
        var symbols = new Dictionary<string, ulong>(StringComparer.Ordinal);
        foreach (var line in Section("kallsyms"))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length >= 3)
                symbols.TryAdd(parts[2], ulong.Parse(parts[0], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture));
        }
        return symbols;
    }

    /// <summary>busybox <c>ps -o pid,ppid,comm,args</c>: a header, then <c>%5u %5u %-16s %s</c>.</summary>
    public List<PsLine> Ps(string section = "ps")
    {
        var result = new List<PsLine>();
        foreach (var line in Section(section).Skip(1))
        {
            if (line.Length < 29)
                continue;
            result.Add(new PsLine(
                ulong.Parse(line[..5], NumberStyles.AllowLeadingWhite, CultureInfo.InvariantCulture),
                ulong.Parse(line[6..11], NumberStyles.AllowLeadingWhite, CultureInfo.InvariantCulture),
                line[12..28].TrimEnd(),
                line[29..]));
        }
        return result;
    }
}

/// <summary>One line of the guest's <c>ps</c>.</summary>
internal sealed record PsLine(ulong Pid, ulong ParentPid, string Name, string Args);
