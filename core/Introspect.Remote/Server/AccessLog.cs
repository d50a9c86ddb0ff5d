using System.Globalization;
using System.Text;
using Introspect.Remote.Protocol;

namespace Introspect.Remote.Server;

/// <summary>What one client read and wrote, kept for the log line written when it leaves.</summary>
/// <remarks>
/// Physical reads are recorded at 2 MiB granularity, so a client that reads the whole machine costs a bounded
/// set; past <see cref="MaxRegions"/> granules only the counts grow. Thread-safe: a client's requests run side by side.
/// </remarks>
internal sealed class AccessLog
{
    private const int GranuleShift = 21;
    private const int MaxRegions = 1 << 16;
    private const int MaxProcesses = 4096;
    private const int RangesShown = 16;

    private readonly Lock _lock = new();
    private readonly HashSet<ulong> _granules = [];
    private readonly Dictionary<ulong, long> _processBytes = [];
    private bool _regionsTruncated;

    public long Requests { get; private set; }
    public long ReadBatches { get; private set; }
    public long ReadEntries { get; private set; }
    public long BytesAsked { get; private set; }
    public long BytesRead { get; private set; }
    public long WriteBatches { get; private set; }
    public long BytesWritten { get; private set; }
    public long ProtocolErrors { get; private set; }

    public void Request()
    {
        lock (_lock)
            Requests++;
    }

    public void ProtocolError()
    {
        lock (_lock)
            ProtocolErrors++;
    }

    /// <summary>Counts a read batch: by process for virtual reads, by the physical ranges it touched otherwise.</summary>
    public void Read(bool isVirtual, in BatchRequest request, long read)
    {
        lock (_lock)
        {
            ReadBatches++;
            ReadEntries += request.Count;
            BytesAsked += request.TotalBytes;
            BytesRead += read;
            if (isVirtual)
                CountProcess(request.Pid, read);
            else
                AddRegions(request);
        }
    }

    public void Write(bool isVirtual, in BatchRequest request, long written)
    {
        lock (_lock)
        {
            WriteBatches++;
            BytesWritten += written;
            if (isVirtual)
                CountProcess(request.Pid, written);
            else
                AddRegions(request);
        }
    }

    public void TouchProcess(ulong pid)
    {
        lock (_lock)
            CountProcess(pid, 0);
    }

    private void CountProcess(ulong pid, long bytes)
    {
        if (_processBytes.TryGetValue(pid, out var total))
            _processBytes[pid] = total + bytes;
        else if (_processBytes.Count < MaxProcesses)
            _processBytes[pid] = bytes;
    }

    private void AddRegions(in BatchRequest request)
    {
        ulong previous = ulong.MaxValue;
        for (int i = 0; i < request.Count; i++)
        {
            int length = request.Length(i);
            if (length == 0)
                continue;
            ulong address = request.Address(i);
            // The batch was checked not to wrap past 2^64.
            ulong first = address >> GranuleShift;
            ulong last = (address + (ulong)(length - 1)) >> GranuleShift;
            for (ulong granule = first; granule <= last; granule++)
            {
                // Scatter batches mostly stay in one granule for many entries: skip the set for those.
                if (granule == previous)
                    continue;
                previous = granule;
                if (_granules.Count >= MaxRegions && !_granules.Contains(granule))
                {
                    _regionsTruncated = true;
                    return;
                }
                _granules.Add(granule);
            }
        }
    }

    /// <summary>One line: the counts, the physical regions touched (merged, the first few), the processes read.</summary>
    public string Summary()
    {
        lock (_lock)
        {
            var text = new StringBuilder();
            text.Append(CultureInfo.InvariantCulture, $"{Requests} requests; read {ReadBatches} batches, {ReadEntries} entries, {Size(BytesRead)} of {Size(BytesAsked)} asked");
            text.Append(CultureInfo.InvariantCulture, $"; wrote {WriteBatches} batches, {Size(BytesWritten)}");
            if (ProtocolErrors > 0)
                text.Append(CultureInfo.InvariantCulture, $"; {ProtocolErrors} protocol errors");
            if (_granules.Count > 0)
            {
                var ranges = MergedRegions();
                text.Append("; physical ");
                text.AppendJoin(", ", ranges.Take(RangesShown).Select(r => $"0x{r.Start:x}-0x{unchecked(r.End - 1):x}"));
                if (ranges.Count > RangesShown)
                    text.Append(CultureInfo.InvariantCulture, $" and {ranges.Count - RangesShown} more ranges");
                if (_regionsTruncated)
                    text.Append(" (and more regions than are tracked)");
            }
            if (_processBytes.Count > 0)
            {
                text.Append("; processes ");
                text.AppendJoin(", ", _processBytes.OrderBy(p => p.Key).Take(RangesShown).Select(p => $"{p.Key} ({Size(p.Value)})"));
                if (_processBytes.Count > RangesShown)
                    text.Append(CultureInfo.InvariantCulture, $" and {_processBytes.Count - RangesShown} more");
            }
            return text.ToString();
        }
    }

    private List<(ulong Start, ulong End)> MergedRegions()
    {
        var sorted = _granules.Order().ToList();
        var ranges = new List<(ulong Start, ulong End)>();
        foreach (var granule in sorted)
        {
            ulong start = granule << GranuleShift;
            if (ranges.Count > 0 && ranges[^1].End == start)
                ranges[^1] = (ranges[^1].Start, unchecked(start + (1UL << GranuleShift)));
            else
                ranges.Add((start, unchecked(start + (1UL << GranuleShift))));
        }
        return ranges;
    }

    private static string Size(long bytes) => bytes switch
    {
        < 1 << 10 => $"{bytes} B",
        < 1 << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:0.#} KiB"),
        < 1 << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024):0.#} MiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024 * 1024):0.##} GiB"),
    };
}
