using Introspect.Abi;
using Introspect.Core;
using Introspect.Core.Memory;

namespace Introspect.Yara;

/// <summary>One match of a YARA rule in a machine's memory.</summary>
/// <param name="Rule">The rule's identifier.</param>
/// <param name="Namespace">The rule's namespace (<c>default</c> unless the rules set one).</param>
/// <param name="Tags">The rule's tags.</param>
/// <param name="StringIdentifier">The string that matched (<c>$a</c>), or null for a rule that matched on its condition alone.</param>
/// <param name="Offset">Where the match starts: in a process, from the start of its memory area; in physical memory, its physical address; in a buffer, from its start.</param>
/// <param name="Length">How many bytes matched.</param>
/// <param name="Data">The matched bytes (at most the first 512).</param>
/// <param name="PhysicalAddress">The physical address of the match, where it is known (a process's page may be swapped out).</param>
/// <param name="VirtualAddress">The virtual address of the match in a process; null in physical memory.</param>
/// <param name="Pid">The process the match is in; null in physical memory.</param>
public sealed record YaraMatch(string Rule, string Namespace, IReadOnlyList<string> Tags, string? StringIdentifier, ulong Offset, int Length,
    byte[] Data, ulong? PhysicalAddress, ulong? VirtualAddress, ulong? Pid);

/// <summary>How a YARA search reads memory.</summary>
public sealed record YaraScanOptions
{
    /// <summary>Where to start (inclusive): a physical or a virtual address.</summary>
    public ulong Start { get; init; }

    /// <summary>Where to stop (exclusive).</summary>
    public ulong End { get; init; } = ulong.MaxValue;

    /// <summary>Stop after this many matches.</summary>
    public int MaxMatches { get; init; } = YaraSearch.DefaultMaxMatches;

    /// <summary>How many bytes each batch read hands to libyara (64 KiB to 1 GiB).</summary>
    /// <remarks>Each batch is scanned as its own block: a rule's condition sees one batch (with <c>filesize</c> its length), as in MemProcFS's YARA search.</remarks>
    public int ChunkSize { get; init; } = 16 << 20;

    /// <summary>How far each batch reaches into the next, so that a match across the border is found (once): longer matches across it are missed.</summary>
    public int Overlap { get; init; } = 64 << 10;

    /// <summary>Flags of the reads; <see cref="MemoryFlags.NoCache"/> (the default) keeps a scan of all memory from flushing caches.</summary>
    public MemoryFlags Flags { get; init; } = MemoryFlags.NoCache;

    public IProgress<SearchProgress>? Progress { get; init; }

    public CancellationToken Cancel { get; init; }
}

/// <summary>YARA searches over a machine's memory (MemProcFS's <c>search_yara</c>): physical memory by its map, a process by its memory areas.</summary>
/// <remarks>
/// Memory is read in batches of <see cref="YaraScanOptions.ChunkSize"/> bytes (unreadable pages as zeros), each scanned
/// by libyara on the calling thread before the next is read. Matches come back range by range, batch by batch.
/// </remarks>
public static class YaraSearch
{
    public const int DefaultMaxMatches = 65536;

    /// <summary>Scans the machine's physical memory.</summary>
    public static IReadOnlyList<YaraMatch> SearchYara(this Machine machine, YaraRules rules, YaraScanOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(machine);
        return machine.Memory.SearchYara(rules, options);
    }

    /// <summary>Scans physical memory, range by range of its memory map.</summary>
    public static IReadOnlyList<YaraMatch> SearchYara(this MachinePhysicalMemory memory, YaraRules rules, YaraScanOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(rules);
        options ??= new YaraScanOptions();
        var ranges = memory.Ranges(options.Start, options.End);
        return Scan(memory, rules, options, ranges.Select(r => (r.Start, r.End, (Func<ulong, YaraLocation>)(address => new YaraLocation(address, address, null, null)))));
    }

    /// <summary>Scans a process's readable memory areas.</summary>
    public static IReadOnlyList<YaraMatch> SearchYara(this MachineProcess process, YaraRules rules, YaraScanOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(process);
        ArgumentNullException.ThrowIfNull(rules);
        options ??= new YaraScanOptions();
        var memory = process.Memory;
        var ranges = new List<(ulong, ulong, Func<ulong, YaraLocation>)>();
        foreach (var area in process.GetMemoryAreas())
        {
            if ((area.Protection & MemoryProtection.Read) == 0)
                continue;
            ulong start = Math.Max(area.Start, options.Start), end = Math.Min(area.End, options.End);
            if (end <= start)
                continue;
            ranges.Add((start, end, address => new YaraLocation(address - area.Start, memory.VirtualToPhysical(address), address, process.Pid)));
        }
        return Scan(memory, rules, options, ranges);
    }

    private static List<YaraMatch> Scan(MachineMemory memory, YaraRules rules, YaraScanOptions options, IEnumerable<(ulong Start, ulong End, Func<ulong, YaraLocation> Locate)> ranges)
    {
        if (options.ChunkSize is < 1 << 16 or > 1 << 30)
            throw new ArgumentOutOfRangeException(nameof(options), $"YaraScanOptions.ChunkSize is {options.ChunkSize}; it must be between 64 KiB and 1 GiB.");
        if (options.Overlap < 0 || options.Overlap > options.ChunkSize)
            throw new ArgumentOutOfRangeException(nameof(options), $"YaraScanOptions.Overlap is {options.Overlap}; it must be between 0 and the chunk size.");
        var list = ranges.ToList();
        ulong total = list.Aggregate(0UL, (sum, r) => sum + (r.End - r.Start));
        ulong done = 0;
        var buffer = GC.AllocateUninitializedArray<byte>((int)Math.Min((ulong)options.ChunkSize + (ulong)options.Overlap, Math.Max(total, 1)));
        using var scanner = new YaraScanner(rules, options.MaxMatches);
        foreach (var (start, end, locate) in list)
        {
            for (ulong at = start; at < end && !scanner.IsFull;)
            {
                options.Cancel.ThrowIfCancellationRequested();
                ulong owned = Math.Min((ulong)options.ChunkSize, end - at);
                int length = (int)Math.Min(owned + (ulong)options.Overlap, end - at);
                var chunk = buffer.AsSpan(0, length);
                memory.Read(at, chunk, options.Flags | MemoryFlags.ZeroPadOnFail);
                ulong chunkStart = at;
                scanner.Scan(chunk, offset => locate(chunkStart + offset), keepBelow: owned);
                at += owned;
                done += owned;
                options.Progress?.Report(new SearchProgress(done, total, scanner.Matches.Count));
            }
        }
        return scanner.Matches;
    }
}
