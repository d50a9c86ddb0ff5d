using System.Buffers;
using System.Buffers.Binary;
using System.Collections;
using Introspect.Abi;
using Introspect.Core.Memory;

namespace Introspect.Core.Translation;

public sealed partial class AddressSpace
{
    /// <summary>The most tables one page map walks (1 GiB of tables); what lies beyond is left out and the map says so.</summary>
    internal const int MaxPageMapTables = 1 << 18;

    /// <summary>The most runs a page map returns.</summary>
    internal const int MaxPageMapRuns = 1 << 20;

    /// <summary>The most runs collected before the final merge.</summary>
    private const int MaxPartialRuns = 1 << 21;

    /// <summary>How many tables one physical batch of the page map reads.</summary>
    private const int TablesPerBatch = 256;

    /// <summary>Every mapped range of the address space between <paramref name="start"/> and <paramref name="end"/>.</summary>
    /// <param name="start">The first address of interest.</param>
    /// <param name="end">The end of interest, exclusive; <see cref="ulong.MaxValue"/> means the top of the space.</param>
    /// <param name="flags">Passed to the physical reads of the tables.</param>
    /// <remarks>
    /// Walks whole tables level by level (one physical batch per up to 256 tables), then merges virtually contiguous
    /// runs with equal permissions. Since the walk is by level its depth is bounded, so tables that point at
    /// themselves (Windows' self-map) or at each other cannot make it loop; at most 2^18 tables are walked and
    /// 2^20 runs returned, and a map cut short says so in <see cref="PageMap.Truncated"/>. Tables that cannot be
    /// read are skipped.
    /// </remarks>
    public PageMap GetPageMap(ulong start = 0, ulong end = ulong.MaxValue, MemoryFlags flags = MemoryFlags.None)
    {
        if (end <= start)
            return PageMap.Empty;
        ulong last = end == ulong.MaxValue ? ulong.MaxValue : end - 1;
        var architecture = _architecture;
        var levels = architecture.LevelTable;

        var current = new List<TableToWalk> { new(_root, 0, PagingArchitecture.InitialFlags) };
        if (_hasHighRoot)
            current.Add(new TableToWalk(_highRoot, ~0UL << architecture.VirtualAddressBits, PagingArchitecture.InitialFlags));
        var runs = new List<PageRun>();
        bool truncated = false;
        int tablesWalked = current.Count;

        for (int level = 0; level < levels.Length && current.Count > 0 && !truncated; level++)
        {
            var next = new List<TableToWalk>();
            var info = levels[level];
            int tableBytes = info.EntryCount * architecture.EntrySize;
            var buffer = ArrayPool<byte>.Shared.Rent(TablesPerBatch * tableBytes);
            var requests = ArrayPool<MemoryRequest>.Shared.Rent(TablesPerBatch);
            try
            {
                for (int first = 0; first < current.Count && !truncated; first += TablesPerBatch)
                {
                    int count = Math.Min(TablesPerBatch, current.Count - first);
                    for (int t = 0; t < count; t++)
                        requests[t] = new MemoryRequest(current[first + t].Table, buffer.AsMemory(t * tableBytes, tableBytes));
                    PhysicalBatch.Read(_physical, requests.AsSpan(0, count), flags & ~MemoryFlags.ZeroPadOnFail);
                    for (int t = 0; t < count && !truncated; t++)
                    {
                        if (requests[t].Succeeded)
                            truncated = ScanTable(current[first + t], buffer.AsSpan(t * tableBytes, tableBytes), level, start, last, runs, next, ref tablesWalked);
                    }
                }
            }
            finally
            {
                requests.AsSpan(0, TablesPerBatch).Clear();
                ArrayPool<MemoryRequest>.Shared.Return(requests);
                ArrayPool<byte>.Shared.Return(buffer);
            }
            current = next;
        }

        return new PageMap(MergeRuns(runs, ref truncated), truncated);
    }

    /// <summary>Reads one table's entries: leaves become runs, tables are queued for the next level.</summary>
    /// <returns>True when a bound was reached and the walk must stop.</returns>
    private bool ScanTable(TableToWalk table, ReadOnlySpan<byte> entries, int level, ulong start, ulong last,
        List<PageRun> runs, List<TableToWalk> next, ref int tablesWalked)
    {
        var architecture = _architecture;
        var info = architecture.LevelTable[level];
        bool lastLevel = level == architecture.LevelTable.Length - 1;
        int entrySize = architecture.EntrySize;
        ulong span = info.EntrySpan;
        for (int index = 0; index < info.EntryCount; index++)
        {
            ulong virtualAddress = architecture.Canonicalize(table.VirtualBase + ((ulong)index << info.Shift));
            ulong virtualLast = virtualAddress + (span - 1);
            if (virtualLast < start || virtualAddress > last)
                continue;
            var bytes = entries.Slice(index * entrySize, entrySize);
            ulong entry = entrySize == sizeof(ulong)
                ? BinaryPrimitives.ReadUInt64LittleEndian(bytes)
                : BinaryPrimitives.ReadUInt32LittleEndian(bytes);
            if ((entry & architecture.ValidMask) == 0)
                continue;

            bool leaf;
            if (lastLevel)
            {
                if ((entry & architecture.PageLeafMask) != architecture.PageLeafValue)
                    continue;
                leaf = true;
            }
            else if ((entry & architecture.LargeLeafMask) == architecture.LargeLeafValue)
            {
                if (!info.AllowsLargeLeaf)
                    continue;
                leaf = true;
            }
            else
            {
                leaf = false;
            }

            if (!leaf)
            {
                if (tablesWalked >= MaxPageMapTables)
                    return true;
                tablesWalked++;
                var flags = info.CarriesPermissions
                    ? PagingArchitecture.Combine(table.Flags, PagingArchitecture.FlagsOf(entry, architecture.TableRules))
                    : table.Flags;
                next.Add(new TableToWalk(entry & architecture.AddressMask, virtualAddress, flags));
                continue;
            }

            var leafFlags = info.CarriesPermissions
                ? PagingArchitecture.Combine(table.Flags, PagingArchitecture.FlagsOf(entry, architecture.LeafRules))
                : table.Flags;
            ulong runStart = Math.Max(virtualAddress, start);
            ulong runLast = Math.Min(virtualLast, last);
            if (runs.Count > 0)
            {
                var previous = runs[^1];
                if (previous.Flags == leafFlags && previous.Last != ulong.MaxValue && previous.Last + 1 == runStart)
                {
                    runs[^1] = previous with { Size = previous.Size + (runLast - runStart + 1) };
                    continue;
                }
            }
            if (runs.Count >= MaxPartialRuns)
                return true;
            runs.Add(new PageRun(runStart, runLast - runStart + 1, leafFlags));
        }
        return false;
    }

    /// <summary>Sorts the runs the levels produced and merges the contiguous ones with equal permissions.</summary>
    private static PageRun[] MergeRuns(List<PageRun> runs, ref bool truncated)
    {
        runs.Sort(static (a, b) => a.VirtualAddress.CompareTo(b.VirtualAddress));
        var merged = new List<PageRun>(Math.Min(runs.Count, MaxPageMapRuns));
        foreach (var run in runs)
        {
            if (merged.Count > 0)
            {
                var previous = merged[^1];
                if (previous.Flags == run.Flags && previous.Last != ulong.MaxValue && previous.Last + 1 == run.VirtualAddress)
                {
                    merged[^1] = previous with { Size = previous.Size + run.Size };
                    continue;
                }
            }
            if (merged.Count == MaxPageMapRuns)
            {
                truncated = true;
                break;
            }
            merged.Add(run);
        }
        return [.. merged];
    }

    private readonly record struct TableToWalk(ulong Table, ulong VirtualBase, PageFlags Flags);
}

/// <summary>The mapped ranges of an address space, in address order.</summary>
public sealed class PageMap : IReadOnlyList<PageRun>
{
    private readonly PageRun[] _runs;

    internal PageMap(PageRun[] runs, bool truncated)
    {
        _runs = runs;
        Truncated = truncated;
    }

    internal static PageMap Empty { get; } = new([], false);

    /// <summary>Whether the walk stopped at a bound (too many tables or runs: a damaged or hostile table) before the end.</summary>
    public bool Truncated { get; }

    public int Count => _runs.Length;

    public PageRun this[int index] => _runs[index];

    /// <summary>How many bytes the runs cover.</summary>
    public ulong TotalSize
    {
        get
        {
            ulong total = 0;
            foreach (var run in _runs)
                total += run.Size;
            return total;
        }
    }

    /// <summary>The run holding <paramref name="virtualAddress"/>, if any.</summary>
    public PageRun? Find(ulong virtualAddress)
    {
        int lo = 0, hi = _runs.Length - 1;
        while (lo <= hi)
        {
            int mid = (int)((uint)(lo + hi) >> 1);
            var run = _runs[mid];
            if (virtualAddress < run.VirtualAddress)
                hi = mid - 1;
            else if (!run.Contains(virtualAddress))
                lo = mid + 1;
            else
                return run;
        }
        return null;
    }

    public IEnumerator<PageRun> GetEnumerator() => ((IEnumerable<PageRun>)_runs).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
