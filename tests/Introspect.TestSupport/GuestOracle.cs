using System.Globalization;

namespace Introspect.TestSupport;

/// <summary>
/// The ground truth a fixture guest printed about itself just before it was paused and dumped
/// (<see cref="FixtureGuest.OracleFile"/>): sections between <c>--- BEGIN TITLE</c> and <c>--- END TITLE</c> lines,
/// inside <c>=== ORACLE BEGIN</c> / <c>=== ORACLE END</c>. The format is described in <c>tests/fixtures/README.md</c>.
/// </summary>
public sealed class GuestOracle
{
    private const string OracleBegin = "=== ORACLE BEGIN";
    private const string OracleEnd = "=== ORACLE END";
    private const string SectionBegin = "--- BEGIN ";
    private const string SectionEnd = "--- END ";

    private readonly Dictionary<string, Section> _sections;

    private GuestOracle(string source, Dictionary<string, Section> sections)
    {
        Source = source;
        _sections = sections;
    }

    /// <summary>Where the text came from, for messages.</summary>
    public string Source { get; }

    /// <summary>Every section's title (<c>version</c>, <c>memtest 92</c>, ...), in the order printed.</summary>
    public IEnumerable<string> Titles => _sections.Values.OrderBy(s => s.FirstLine).Select(s => s.Title);

    /// <summary>Reads an oracle file.</summary>
    /// <exception cref="InvalidDataException">The file is not a complete oracle.</exception>
    public static GuestOracle Load(string path) => Parse(File.ReadLines(path), path);

    /// <summary>Reads an oracle's lines; <paramref name="source"/> names them in messages.</summary>
    /// <exception cref="InvalidDataException">The lines are not a complete oracle: no BEGIN or END line, a section left open, nested or repeated.</exception>
    public static GuestOracle Parse(IEnumerable<string> lines, string source)
    {
        var sections = new Dictionary<string, Section>(StringComparer.Ordinal);
        bool begun = false, ended = false;
        string? open = null;
        int openLine = 0, number = 0;
        List<string>? body = null;
        foreach (string raw in lines)
        {
            number++;
            string line = raw.TrimEnd('\r');
            if (!begun)
            {
                begun = line == OracleBegin;
                continue;
            }
            if (ended)
                break;
            if (open is null)
            {
                if (line == OracleEnd)
                    ended = true;
                else if (line.StartsWith(SectionBegin, StringComparison.Ordinal))
                {
                    open = line[SectionBegin.Length..];
                    if (open.Length == 0)
                        throw Bad(source, number, "a section without a title");
                    if (sections.ContainsKey(open))
                        throw Bad(source, number, $"a second section '{open}'");
                    openLine = number;
                    body = [];
                }
                else
                    throw Bad(source, number, $"'{Shorten(line)}' outside any section; expected '{SectionBegin}TITLE' or '{OracleEnd}'");
            }
            else if (line.StartsWith(SectionEnd, StringComparison.Ordinal))
            {
                string title = line[SectionEnd.Length..];
                if (title != open)
                    throw Bad(source, number, $"'{line}' inside section '{open}' (begun on line {openLine})");
                sections.Add(open, new Section(open, openLine + 1, body!));
                open = null;
            }
            else if (line.StartsWith(SectionBegin, StringComparison.Ordinal))
                throw Bad(source, number, $"a section begun inside section '{open}' (begun on line {openLine})");
            else
                body!.Add(line);
        }
        if (!begun)
            throw new InvalidDataException($"{source}: no '{OracleBegin}' line: not a fixture guest's oracle.");
        if (open is not null)
            throw new InvalidDataException($"{source}: section '{open}' (line {openLine}) has no END line: the guest's output is cut short.");
        if (!ended)
            throw new InvalidDataException($"{source}: no '{OracleEnd}' line: the guest's output is cut short.");
        return new GuestOracle(source, sections);
    }

    /// <summary>Whether the oracle has a section of that title.</summary>
    public bool HasSection(string title) => _sections.ContainsKey(title);

    /// <summary>The lines of a section, which must exist.</summary>
    /// <exception cref="InvalidDataException">There is no such section.</exception>
    public IReadOnlyList<string> Lines(string title) => Get(title).Lines;

    /// <summary>The guest's <c>/proc/version</c>.</summary>
    public string Version => Single("version");

    /// <summary>The guest's <c>/proc/cmdline</c>.</summary>
    public string CommandLine => Single("cmdline");

    /// <summary>The <c>/proc/kallsyms</c> lines the guest printed: symbol name to address.</summary>
    public IReadOnlyDictionary<string, ulong> Symbols => Pairs<ulong>("kallsyms", fields => fields.Length >= 3 ? (fields[2], Hex(fields[0])) : null);

    /// <summary>Values of kernel variables read through <c>/proc/kcore</c>: <c>page_offset_base</c>, <c>vmemmap_base</c>, <c>vmalloc_base</c>, <c>phys_base</c>, <c>__pgtable_l5_enabled</c>, <c>nr_cpu_ids</c>.</summary>
    public IReadOnlyDictionary<string, ulong> KernelVariables => Pairs<ulong>("kernel-vars", fields => fields.Length == 2 ? (fields[0], Hex(fields[1])) : null);

    /// <summary>
    /// Processes the guest started for a purpose, by role: <c>init</c>, <c>sleeper</c>, <c>memtest-alpha</c> ... <c>memtest-epsilon</c>,
    /// <c>tree-root</c>, <c>zombie-parent</c>, <c>zombie</c>, <c>stopped</c>.
    /// </summary>
    public IReadOnlyDictionary<string, int> Roles => Pairs<int>("roles", fields => fields.Length == 2 ? (fields[0], Decimal(fields[1])) : null);

    /// <summary>The guest's <c>/proc/modules</c>.</summary>
    public IReadOnlyList<OracleModule> Modules => SplitRows("modules", (fields, fail) => fields.Length >= 6
        ? new OracleModule(fields[0], Decimal(fields[1]), Hex(fields[5]))
        : throw fail("expected 'name size refcount dependencies state address'"));

    /// <summary>Every process but the one that printed the table, from <c>/proc</c>, at the last moment before the dump.</summary>
    public IReadOnlyList<OracleProcess> Processes => Rows("processes", (line, fail) =>
    {
        string[] f = line.Split('\t');
        if (f.Length != 10)
            throw fail($"expected 10 tab-separated fields, found {f.Length}");
        return new OracleProcess(Decimal(f[0]), Decimal(f[1]), Letter(f[2]), Decimal(f[3]), Decimal(f[4]), f[5] == "1",
            ulong.Parse(f[6], CultureInfo.InvariantCulture), f[7], f[8], f[9]);
    });

    /// <summary>The threads of every process that has more than one (the first of each is the process itself).</summary>
    public IReadOnlyList<OracleThread> Threads => Rows("threads", (line, fail) =>
    {
        string[] f = line.Split('\t');
        if (f.Length != 4)
            throw fail($"expected 4 tab-separated fields, found {f.Length}");
        return new OracleThread(Decimal(f[0]), Decimal(f[1]), Letter(f[2]), f[3]);
    });

    /// <summary>The reports of the memtest processes (sections <c>memtest PID</c>).</summary>
    public IReadOnlyList<MemtestReport> Memtests =>
        [.. _sections.Values.Where(s => s.Title.StartsWith("memtest ", StringComparison.Ordinal)).OrderBy(s => s.FirstLine).Select(ParseMemtest)];

    /// <summary>The guest's <c>/proc/PID/maps</c> of a memtest process.</summary>
    public IReadOnlyList<OracleMapping> Maps(int pid) => Rows($"maps {pid}", (line, fail) => ParseMapping(line) ?? throw fail("expected 'start-end perms offset device inode [path]'"));

    /// <summary>The guest's <c>/proc/PID/environ</c> of a memtest process, one <c>NAME=value</c> a line.</summary>
    public IReadOnlyList<string> Environment(int pid) => Lines($"environ {pid}");

    private MemtestReport ParseMemtest(Section section)
    {
        int pid = 0, uid = -1, threads = 0;
        ulong seed = 0, fileOffset = 0;
        string name = "", comm = "", filePath = "";
        bool? hugePage = null;
        var buffers = new List<MemtestBuffer>();
        for (int i = 0; i < section.Lines.Count; i++)
        {
            string line = section.Lines[i];
            string[] f = line.Split(' ');
            InvalidDataException Fail(string expected) => Bad(Source, section.FirstLine + i, $"in section '{section.Title}': '{Shorten(line)}'; expected {expected}");
            try
            {
                switch (f[0])
                {
                    case "pid" when f.Length == 2: pid = Decimal(f[1]); break;
                    case "name" when f.Length == 2: name = f[1]; break;
                    case "comm": comm = line.Length > 5 ? line[5..] : ""; break;
                    case "uid" when f.Length == 2: uid = Decimal(f[1]); break;
                    case "seed" when f.Length == 2: seed = Hex(f[1]); break;
                    case "threads" when f.Length == 2: threads = Decimal(f[1]); break;
                    case "file" when f.Length == 3: filePath = f[1]; fileOffset = ulong.Parse(f[2], CultureInfo.InvariantCulture); break;
                    case "huge-page" when f.Length == 2 && f[1] is "yes" or "no": hugePage = f[1] == "yes"; break;
                    case "buffer" when f.Length == 6 && f[5].Length == 128:
                        buffers.Add(new MemtestBuffer(f[1], Hex(f[2]), Decimal(f[3]), ulong.Parse(f[4], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                            Convert.FromHexString(f[5])));
                        break;
                    default: throw Fail("'pid', 'name', 'comm', 'uid', 'seed', 'threads', 'buffer KIND ADDRESS LENGTH FNV1A64 FIRST64', 'file PATH OFFSET' or 'huge-page yes|no'");
                }
            }
            catch (Exception e) when (e is FormatException or OverflowException)
            {
                throw Fail($"numbers in their format ({e.Message})");
            }
        }
        if (pid == 0 || name.Length == 0 || hugePage is null || buffers.Count == 0 || $"memtest {pid}" != section.Title)
            throw new InvalidDataException($"{Source}: section '{section.Title}' (line {section.FirstLine}) lacks its pid (matching the title), name, buffers or huge-page line.");
        return new MemtestReport(pid, name, comm, uid, seed, threads, buffers, filePath, fileOffset, hugePage.Value);
    }

    private static OracleMapping? ParseMapping(string line)
    {
        // "start-end perms offset dev inode", then spaces up to the path, which may hold spaces itself.
        string[] f = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
        if (f.Length < 5)
            return null;
        int dash = f[0].IndexOf('-', StringComparison.Ordinal);
        if (dash <= 0 || f[1].Length != 4)
            return null;
        return new OracleMapping(Hex(f[0][..dash]), Hex(f[0][(dash + 1)..]), f[1], Hex(f[2]), f[3],
            ulong.Parse(f[4], CultureInfo.InvariantCulture), f.Length == 6 ? f[5].TrimStart() : "");
    }

    private Section Get(string title) => _sections.TryGetValue(title, out var section)
        ? section
        : throw new InvalidDataException($"{Source}: no section '{title}'; it has {string.Join(", ", Titles.Select(t => $"'{t}'"))}.");

    private string Single(string title)
    {
        var section = Get(title);
        return section.Lines.Count == 1
            ? section.Lines[0]
            : throw new InvalidDataException($"{Source}: section '{title}' (line {section.FirstLine}) has {section.Lines.Count} lines; expected 1.");
    }

    private Dictionary<string, T> Pairs<T>(string title, Func<string[], (string Key, T Value)?> parse)
    {
        var section = Get(title);
        var result = new Dictionary<string, T>(StringComparer.Ordinal);
        for (int i = 0; i < section.Lines.Count; i++)
        {
            (string Key, T Value)? pair;
            try
            {
                pair = parse(section.Lines[i].Split(' ', StringSplitOptions.RemoveEmptyEntries));
            }
            catch (Exception e) when (e is FormatException or OverflowException)
            {
                throw Bad(Source, section.FirstLine + i, $"in section '{title}': '{Shorten(section.Lines[i])}': {e.Message}");
            }
            if (pair is null)
                throw Bad(Source, section.FirstLine + i, $"in section '{title}': '{Shorten(section.Lines[i])}' has the wrong number of fields");
            result.TryAdd(pair.Value.Key, pair.Value.Value);
        }
        return result;
    }

    // Lines starting with '#' are column headers.
    private List<T> Rows<T>(string title, Func<string, Func<string, InvalidDataException>, T> parse)
    {
        var section = Get(title);
        var result = new List<T>(section.Lines.Count);
        for (int i = 0; i < section.Lines.Count; i++)
        {
            string line = section.Lines[i];
            if (line.StartsWith('#'))
                continue;
            int number = section.FirstLine + i;
            try
            {
                result.Add(parse(line, expected => Bad(Source, number, $"in section '{title}': '{Shorten(line)}'; {expected}")));
            }
            catch (Exception e) when (e is FormatException or OverflowException)
            {
                throw Bad(Source, number, $"in section '{title}': '{Shorten(line)}': {e.Message}");
            }
        }
        return result;
    }

    private List<T> SplitRows<T>(string title, Func<string[], Func<string, InvalidDataException>, T> parse) =>
        Rows(title, (line, fail) => parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries), fail));

    private static ulong Hex(string text) =>
        ulong.Parse(text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? text[2..] : text, NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    private static int Decimal(string text) => int.Parse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);

    private static char Letter(string text) => text.Length == 1 ? text[0] : throw new FormatException($"'{text}' is not a state letter");

    private static string Shorten(string line) => line.Length <= 80 ? line : line[..77] + "...";

    private static InvalidDataException Bad(string source, int line, string what) => new($"{source}, line {line}: {what}.");

    private sealed record Section(string Title, int FirstLine, List<string> Lines);
}

/// <summary>A line of the guest's <c>/proc/modules</c>.</summary>
public sealed record OracleModule(string Name, int Size, ulong Address);

/// <summary>A process as the guest's <c>/proc</c> showed it.</summary>
/// <param name="Pid">Its pid.</param>
/// <param name="ParentPid">Its parent's pid (0 for init and kthreadd).</param>
/// <param name="State">The letter of <c>/proc/PID/stat</c>: R, S, D, T, t, Z, X, I.</param>
/// <param name="Uid">Its real uid.</param>
/// <param name="Threads">Its number of threads.</param>
/// <param name="KernelThread">Whether it is a kernel thread (<c>PF_KTHREAD</c>).</param>
/// <param name="StartTicks">When it started, in clock ticks (100 a second) since boot.</param>
/// <param name="ExecutablePath">The target of <c>/proc/PID/exe</c>; empty for kernel threads and zombies.</param>
/// <param name="Name">Its <c>/proc/PID/comm</c>. For a kworker the kernel appends <c>-</c> and its workqueue to what <c>task_struct.comm</c> holds.</param>
/// <param name="CommandLine">Its arguments joined by spaces; empty for kernel threads and zombies.</param>
public sealed record OracleProcess(int Pid, int ParentPid, char State, int Uid, int Threads, bool KernelThread, ulong StartTicks,
    string ExecutablePath, string Name, string CommandLine);

/// <summary>A thread of a process with more than one.</summary>
public sealed record OracleThread(int Pid, int Tid, char State, string Name);

/// <summary>A line of a guest's <c>/proc/PID/maps</c>.</summary>
public sealed record OracleMapping(ulong Start, ulong End, string Permissions, ulong Offset, string Device, ulong Inode, string Path);

/// <summary>What a memtest process reported about itself.</summary>
/// <param name="Pid">Its pid.</param>
/// <param name="Name">The name it was given (<c>alpha</c> ...), which its buffers' headers hold.</param>
/// <param name="Comm">Its comm (cut to 15 characters by the kernel).</param>
/// <param name="Uid">The uid it runs as.</param>
/// <param name="Seed">The seed of its buffers' pattern.</param>
/// <param name="Threads">Its number of threads.</param>
/// <param name="Buffers">Its buffers: <c>heap</c>, <c>mmap</c>, <c>ro</c>, <c>file</c>, <c>huge</c>, <c>stack</c>.</param>
/// <param name="FilePath">The tmpfs file the <c>file</c> buffer maps (shared, read-only).</param>
/// <param name="FileOffset">The file offset at which the <c>file</c> buffer's mapping starts.</param>
/// <param name="HugePage">Whether the kernel backs the <c>huge</c> buffer with a 2 MiB page.</param>
public sealed record MemtestReport(int Pid, string Name, string Comm, int Uid, ulong Seed, int Threads, IReadOnlyList<MemtestBuffer> Buffers,
    string FilePath, ulong FileOffset, bool HugePage)
{
    /// <summary>The buffer of that kind.</summary>
    public MemtestBuffer Buffer(string kind) => Buffers.FirstOrDefault(b => b.Kind == kind)
        ?? throw new InvalidDataException($"memtest {Pid} reported no '{kind}' buffer; it has {string.Join(", ", Buffers.Select(b => b.Kind))}.");

    /// <summary>What the buffer of that kind holds: the pattern, regenerated.</summary>
    public byte[] ExpectedContents(string kind) => MemtestPattern.Generate(kind, Pid, Seed, Name, Buffer(kind).Length);
}

/// <summary>A buffer a memtest process filled: its virtual address and length, the FNV-1a 64 hash of its bytes and its first 64 bytes.</summary>
public sealed record MemtestBuffer(string Kind, ulong Address, int Length, ulong Fnv1a64, byte[] First64);

/// <summary>The pattern memtest fills its buffers with (<c>tests/fixtures/src/memtest.c</c>).</summary>
public static class MemtestPattern
{
    private const ulong Golden = 0x9e3779b97f4a7c15;

    private static readonly string[] Kinds = ["", "heap", "mmap", "ro", "file", "huge", "stack"];

    /// <summary>
    /// The bytes of a buffer: <c>MEMTEST/KIND/PID/NAME</c> NUL-padded to 32 bytes (cut to 31 characters), then splitmix64 outputs,
    /// little-endian, from the state <c>seed ^ (pid &lt;&lt; 32) ^ (kind_id * 0x9e3779b97f4a7c15)</c>.
    /// </summary>
    public static byte[] Generate(string kind, int pid, ulong seed, string name, int length)
    {
        int kindId = Array.IndexOf(Kinds, kind);
        if (kindId <= 0)
            throw new ArgumentException($"'{kind}' is not a memtest buffer kind; expected one of {string.Join(", ", Kinds.Skip(1))}.", nameof(kind));
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        var bytes = new byte[length];
        string header = $"MEMTEST/{kind}/{pid.ToString(CultureInfo.InvariantCulture)}/{name}";
        if (header.Length > 31)
            header = header[..31];
        System.Text.Encoding.ASCII.GetBytes(header).AsSpan(0, Math.Min(header.Length, length)).CopyTo(bytes);
        ulong state = unchecked(seed ^ ((ulong)(uint)pid << 32) ^ ((ulong)kindId * Golden));
        for (int offset = 32; offset + 8 <= length; offset += 8)
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(offset), Next(ref state));
        return bytes;
    }

    /// <summary>FNV-1a, 64 bits: the hash memtest reports of each buffer.</summary>
    public static ulong Fnv1a64(ReadOnlySpan<byte> bytes)
    {
        ulong hash = 0xcbf29ce484222325;
        foreach (byte b in bytes)
            hash = unchecked((hash ^ b) * 0x100000001b3);
        return hash;
    }

    private static ulong Next(ref ulong state)
    {
        unchecked
        {
            ulong z = state += Golden;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
            z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
            return z ^ (z >> 31);
        }
    }
}
