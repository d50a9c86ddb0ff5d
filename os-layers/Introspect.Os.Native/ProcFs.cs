using System.Globalization;
using System.Text;
using Introspect.Abi;

namespace Introspect.Os.Native;

/// <summary>Reads and parses the files of <c>/proc</c>. Parsers take text, so that malformed input is testable without a process.</summary>
/// <remarks>
/// A process can exit between any two reads: a file that vanished or turned unreadable ends that process's record
/// (or leaves the field empty), never the listing.
/// </remarks>
internal sealed class ProcFs(string root)
{
    /// <summary>The most bytes read from one <c>cmdline</c>, <c>environ</c> or <c>maps</c> file.</summary>
    internal const int MaxFileBytes = 16 << 20;

    /// <summary>The most strings taken from one NUL-separated file.</summary>
    internal const int MaxStrings = 1 << 16;

    private readonly long _ticksPerSecond = Libc.ClockTicksPerSecond();

    public string Root { get; } = root;

    /// <summary>The ids of the processes (thread groups) now in <c>/proc</c>.</summary>
    public List<int> ProcessIds()
    {
        var pids = new List<int>();
        foreach (var directory in Directory.EnumerateDirectories(Root))
        {
            var name = Path.GetFileName(directory.AsSpan());
            if (int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out int pid) && pid > 0)
                pids.Add(pid);
        }
        pids.Sort();
        return pids;
    }

    /// <summary>The boot time (<c>btime</c> of <c>/proc/stat</c>), the origin of process start times.</summary>
    public DateTimeOffset? BootTime()
    {
        var text = TryReadText(Path.Combine(Root, "stat"));
        return text is null ? null : ParseBootTime(text);
    }

    /// <summary>One process as <c>/proc/PID</c> shows it now, or null when it is gone.</summary>
    public ProcessInfo? Process(int pid, DateTimeOffset? bootTime)
    {
        var directory = Path.Combine(Root, pid.ToString(CultureInfo.InvariantCulture));
        var statText = TryReadText(Path.Combine(directory, "stat"));
        if (statText is null || ParseStat(statText) is not { } stat)
            return null;
        var status = TryReadText(Path.Combine(directory, "status"));
        uint? uid = status is null ? null : ParseStatusNumber(status, "Uid:") is { } u and <= uint.MaxValue ? (uint)u : null;
        int threads = status is null ? stat.Threads : (int)Math.Clamp(ParseStatusNumber(status, "Threads:") ?? (ulong)stat.Threads, 1, int.MaxValue);
        var arguments = ParseNulSeparated(TryReadBytes(Path.Combine(directory, "cmdline")));
        var environment = ParseNulSeparated(TryReadBytes(Path.Combine(directory, "environ")));
        string? exe = null;
        try
        {
            exe = new FileInfo(Path.Combine(directory, "exe")).LinkTarget;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A kernel thread has no executable, another user's process hides it.
        }
        DateTimeOffset? start = bootTime is { } boot ? boot.AddTicks(TicksSinceBoot(stat.StartTicks, _ticksPerSecond)) : null;
        return new ProcessInfo
        {
            Pid = (ulong)pid,
            ParentPid = (ulong)Math.Max(0, stat.ParentPid),
            Name = stat.Name,
            Path = exe,
            Arguments = arguments is { Count: > 0 } ? arguments : null,
            CommandLine = arguments is { Count: > 0 } ? string.Join(' ', arguments) : null,
            Environment = environment,
            State = StateOf(stat.State),
            StateText = stat.State.ToString(),
            Uid = uid,
            ThreadCount = Math.Max(1, threads),
            IsKernelThread = stat.IsKernelThread,
            StartTime = start,
        };
    }

    /// <summary>The memory areas of <c>/proc/PID/maps</c>; empty when the process is gone or hidden.</summary>
    public IReadOnlyList<MemoryArea> MemoryAreas(int pid)
    {
        var text = TryReadText(Path.Combine(Root, pid.ToString(CultureInfo.InvariantCulture), "maps"));
        return text is null ? [] : ParseMaps(text, $"/proc/{pid}/maps");
    }

    public string? TryReadText(string path)
    {
        var bytes = TryReadBytes(path);
        return bytes is null ? null : Encoding.UTF8.GetString(bytes);
    }

    /// <summary>A /proc file's bytes, up to <see cref="MaxFileBytes"/> (their sizes are not known before reading).</summary>
    public static byte[]? TryReadBytes(string path)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.None);
            var buffer = new MemoryStream();
            var chunk = new byte[16384];
            int read;
            while ((read = stream.Read(chunk)) > 0)
            {
                if (buffer.Length + read > MaxFileBytes)
                    break;
                buffer.Write(chunk, 0, read);
            }
            return buffer.ToArray();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Clock ticks as .NET ticks, capped at a century (a corrupt value must not overflow a date).</summary>
    internal static long TicksSinceBoot(ulong clockTicks, long ticksPerSecond)
    {
        ulong perSecond = (ulong)Math.Max(1, ticksPerSecond);
        ulong seconds = Math.Min(clockTicks / perSecond, 100UL * 365 * 24 * 3600);
        ulong fraction = clockTicks % perSecond * (ulong)TimeSpan.TicksPerSecond / perSecond;
        return (long)(seconds * (ulong)TimeSpan.TicksPerSecond + fraction);
    }

    internal readonly record struct Stat(string Name, char State, int ParentPid, int Threads, ulong StartTicks, bool IsKernelThread);

    /// <summary>Parses <c>/proc/PID/stat</c>: <c>pid (comm) state ppid ...</c>, where comm may hold spaces and parentheses.</summary>
    internal static Stat? ParseStat(string text)
    {
        int open = text.IndexOf('(', StringComparison.Ordinal);
        int close = text.LastIndexOf(')');
        if (open < 0 || close < open)
            return null;
        var name = text[(open + 1)..close];
        var fields = text[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // After comm: state(0) ppid(1) ... flags(6) ... num_threads(17) itrealvalue(18) starttime(19).
        if (fields.Length < 20 || fields[0].Length != 1)
            return null;
        if (!int.TryParse(fields[1], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int ppid)
            || !ulong.TryParse(fields[6], NumberStyles.None, CultureInfo.InvariantCulture, out ulong processFlags)
            || !int.TryParse(fields[17], NumberStyles.None, CultureInfo.InvariantCulture, out int threads)
            || !ulong.TryParse(fields[19], NumberStyles.None, CultureInfo.InvariantCulture, out ulong start))
            return null;
        const ulong PfKthread = 0x0020_0000;
        return new Stat(name, fields[0][0], ppid, threads, start, (processFlags & PfKthread) != 0);
    }

    /// <summary>The first number after <paramref name="key"/> in <c>/proc/PID/status</c> (for <c>Uid:</c>, the real uid).</summary>
    internal static ulong? ParseStatusNumber(string status, string key)
    {
        foreach (var line in status.AsSpan().EnumerateLines())
        {
            if (!line.StartsWith(key, StringComparison.Ordinal))
                continue;
            var rest = line[key.Length..].TrimStart();
            int end = rest.IndexOfAny(" \t");
            if (end >= 0)
                rest = rest[..end];
            return ulong.TryParse(rest, NumberStyles.None, CultureInfo.InvariantCulture, out ulong value) ? value : null;
        }
        return null;
    }

    internal static DateTimeOffset? ParseBootTime(string stat)
    {
        var value = ParseStatusNumber(stat, "btime ");
        return value is { } seconds && seconds < 1UL << 40 ? DateTimeOffset.FromUnixTimeSeconds((long)seconds) : null;
    }

    /// <summary>NUL-separated strings (<c>cmdline</c>, <c>environ</c>), at most <see cref="MaxStrings"/>.</summary>
    internal static List<string>? ParseNulSeparated(byte[]? bytes)
    {
        if (bytes is null)
            return null;
        var strings = new List<string>();
        int start = 0;
        while (start < bytes.Length && strings.Count < MaxStrings)
        {
            int end = Array.IndexOf(bytes, (byte)0, start);
            if (end < 0)
                end = bytes.Length;
            strings.Add(Encoding.UTF8.GetString(bytes, start, end - start));
            start = end + 1;
        }
        return strings;
    }

    /// <summary>Parses <c>/proc/PID/maps</c>: <c>start-end perms offset dev inode [path]</c> per line.</summary>
    /// <exception cref="InvalidDataException">A line is not in that form; the message names the source, the line and the field.</exception>
    internal static List<MemoryArea> ParseMaps(string text, string source)
    {
        var areas = new List<MemoryArea>();
        int lineNumber = 0;
        foreach (var rawLine in text.AsSpan().EnumerateLines())
        {
            lineNumber++;
            var line = rawLine.TrimEnd();
            if (line.IsEmpty)
                continue;
            var rest = line;
            var range = NextField(ref rest);
            var perms = NextField(ref rest);
            var offset = NextField(ref rest);
            _ = NextField(ref rest); // device
            var inode = NextField(ref rest);
            int dash = range.IndexOf('-');
            if (dash <= 0
                || !ulong.TryParse(range[..dash], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong start)
                || !ulong.TryParse(range[(dash + 1)..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong end)
                || end < start)
                throw Malformed(source, lineNumber, "address range", range, "START-END in hexadecimal, START <= END");
            if (perms.Length != 4)
                throw Malformed(source, lineNumber, "permissions", perms, "four letters such as r-xp");
            if (!ulong.TryParse(offset, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong fileOffset))
                throw Malformed(source, lineNumber, "offset", offset, "a hexadecimal number");
            if (inode.IsEmpty)
                throw Malformed(source, lineNumber, "inode", inode, "a number");
            var protection = MemoryProtection.None;
            if (perms[0] == 'r')
                protection |= MemoryProtection.Read;
            if (perms[1] == 'w')
                protection |= MemoryProtection.Write;
            if (perms[2] == 'x')
                protection |= MemoryProtection.Execute;
            if (perms[3] == 's')
                protection |= MemoryProtection.Shared;
            var path = rest.Trim();
            areas.Add(new MemoryArea(start, end, protection, fileOffset, path.IsEmpty ? null : path.ToString()));
        }
        return areas;
    }

    private static ReadOnlySpan<char> NextField(ref ReadOnlySpan<char> rest)
    {
        rest = rest.TrimStart(' ');
        int end = rest.IndexOf(' ');
        var field = end < 0 ? rest : rest[..end];
        rest = end < 0 ? [] : rest[end..];
        return field;
    }

    private static InvalidDataException Malformed(string source, int line, string field, ReadOnlySpan<char> value, string expected) =>
        new($"{source}, line {line}: the {field} '{value}' is malformed; expected {expected}.");

    private static ProcessState StateOf(char state) => state switch
    {
        'R' => ProcessState.Running,
        'S' => ProcessState.Sleeping,
        'D' => ProcessState.DiskSleep,
        'T' => ProcessState.Stopped,
        't' => ProcessState.Traced,
        'Z' => ProcessState.Zombie,
        'X' or 'x' => ProcessState.Dead,
        'I' => ProcessState.Idle,
        _ => ProcessState.Unknown,
    };
}
