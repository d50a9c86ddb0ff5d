using Introspect.Abi;

namespace Introspect.Connectors.Coredump;

/// <summary>What every dump format shares: the batch loop, the memory map and its replacement, hints.</summary>
/// <remarks>
/// A read walks the current memory map: each part of an entry that falls in a range is read from
/// the range's backing address by <see cref="ReadBacking"/>; a part outside every range fails
/// the entry (or reads as zeros with <see cref="MemoryFlags.ZeroPadOnFail"/>). The map is
/// swapped as a whole, so a batch sees either the old or the new one.
/// </remarks>
internal abstract class DumpMemory : IPhysicalMemory, IConnectorHints
{
    private readonly int _idealBatchSize;
    private volatile MapState _state;

    protected DumpMemory(string path, MemoryMap map, ConnectorHints hints, int idealBatchSize)
    {
        Path = path;
        Hints = hints;
        _idealBatchSize = idealBatchSize;
        _state = new MapState(map, idealBatchSize);
    }

    /// <summary>The dump file's path, for messages.</summary>
    public string Path { get; }

    public ConnectorHints Hints { get; }

    public PhysicalMemoryMetadata Metadata => _state.Metadata;

    public MemoryMap MemoryMap => _state.Map;

    public void SetMemoryMap(MemoryMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        _state = new MapState(map, _idealBatchSize);
    }

    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        var ranges = _state.Map.Ranges;
        bool zeroPad = (flags & MemoryFlags.ZeroPadOnFail) != 0;
        EnterBatch();
        try
        {
            for (int i = 0; i < batch.Length; i++)
            {
                ref var entry = ref batch[i];
                entry.Succeeded = ReadEntry(ranges, entry.Address, entry.Buffer.Span, flags, zeroPad);
            }
        }
        finally
        {
            ExitBatch();
        }
    }

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) =>
        throw new NotSupportedException($"{Path}: dump files are served read-only.");

    private bool ReadEntry(ReadOnlySpan<MemoryRange> ranges, ulong address, Span<byte> destination, MemoryFlags flags, bool zeroPad)
    {
        if (destination.IsEmpty)
            return true;
        // An entry that would wrap past 2^64 names no memory.
        if ((ulong)(destination.Length - 1) > ulong.MaxValue - address)
            return false;
        while (true)
        {
            int index = Find(ranges, address);
            int chunk;
            if (index >= 0)
            {
                ref readonly var range = ref ranges[index];
                ulong delta = address - range.Base;
                ulong available = range.Size - delta;
                chunk = available < (ulong)destination.Length ? (int)available : destination.Length;
                if (!ReadBacking(range.BackingBase + delta, destination[..chunk], flags, zeroPad))
                    return false;
            }
            else
            {
                if (!zeroPad)
                    return false;
                int next = ~index;
                ulong gap = next < ranges.Length ? ranges[next].Base - address : ulong.MaxValue;
                chunk = gap < (ulong)destination.Length ? (int)gap : destination.Length;
                destination[..chunk].Clear();
            }
            if (chunk == destination.Length)
                return true;
            destination = destination[chunk..];
            address += (ulong)chunk;
        }
    }

    /// <summary>The index of the range holding <paramref name="address"/>, or the complement of the index of the first range above it.</summary>
    private static int Find(ReadOnlySpan<MemoryRange> ranges, ulong address)
    {
        int lo = 0, hi = ranges.Length - 1;
        while (lo <= hi)
        {
            int mid = (int)((uint)(lo + hi) >> 1);
            ref readonly var range = ref ranges[mid];
            if (address < range.Base)
                hi = mid - 1;
            else if (address - range.Base >= range.Size)
                lo = mid + 1;
            else
                return mid;
        }
        return ~lo;
    }

    /// <summary>Reads <paramref name="destination"/> from the format's own coordinate <paramref name="backing"/>.</summary>
    /// <returns>
    /// Whether every byte was read; with <paramref name="zeroPad"/> the parts that could not be
    /// read are zeroed and count as read. Never throws for unreadable data.
    /// </returns>
    protected abstract bool ReadBacking(ulong backing, Span<byte> destination, MemoryFlags flags, bool zeroPad);

    /// <summary>Called before a batch: keeps the backing alive until <see cref="ExitBatch"/>.</summary>
    protected abstract void EnterBatch();

    protected abstract void ExitBatch();

    public abstract void Dispose();

    private sealed class MapState(MemoryMap map, int idealBatchSize)
    {
        public MemoryMap Map { get; } = map;

        public PhysicalMemoryMetadata Metadata { get; } = new(map.MaxAddress, map.TotalSize, ReadOnly: true, idealBatchSize);
    }
}
