using System.Buffers;
using Introspect.Abi;

namespace Introspect.Core.Chains;

/// <summary>
/// A process's virtual memory served as physical memory: the adapter between an OS step and the connector after it
/// (<c>... -&gt; linux -&gt; qemu:name=guest1 -&gt; linux</c>), where a VM's RAM is mapped into a host process.
/// </summary>
/// <remarks>
/// <para>
/// The memory map says where guest RAM is: each range's <see cref="MemoryRange.Base"/> is a guest-physical address and its
/// <see cref="MemoryRange.BackingBase"/> the host-virtual address that holds it (QEMU's RAM blocks: below-4G RAM at its
/// mapping, above-4G RAM at its own). A read cuts each request where the ranges end and sends all the pieces to the
/// process's memory as one batch, which translates them breadth-first; a request succeeds when all its pieces did, and a
/// part outside the map fails it (or reads as zeros with <see cref="MemoryFlags.ZeroPadOnFail"/>).
/// </para>
/// <para>
/// <see cref="SetMemoryMap"/> replaces the map whole, backing addresses included (they stay host-virtual).
/// Disposing does not dispose the process memory: it belongs to the OS step.
/// </para>
/// </remarks>
public sealed class GuestPhysicalMemory : IPhysicalMemory, IConnectorHints
{
    private readonly IVirtualMemory _process;
    private readonly bool _readOnly;
    private readonly int _idealBatchSize;
    private volatile State _state;

    /// <param name="process">The host process's virtual memory.</param>
    /// <param name="map">Guest-physical ranges and the host-virtual address each is backed at.</param>
    /// <param name="readOnly">Refuse writes even where the process memory takes them.</param>
    /// <param name="idealBatchSize">The batch size to report (the process memory batches breadth-first, so large ones pay).</param>
    /// <param name="hints">What the connector knows about the guest.</param>
    public GuestPhysicalMemory(IVirtualMemory process, MemoryMap map, bool readOnly = true, int idealBatchSize = 1024, ConnectorHints? hints = null)
    {
        ArgumentNullException.ThrowIfNull(process);
        ArgumentNullException.ThrowIfNull(map);
        ArgumentOutOfRangeException.ThrowIfLessThan(idealBatchSize, 1);
        _process = process;
        _readOnly = readOnly;
        _idealBatchSize = idealBatchSize;
        Hints = hints ?? ConnectorHints.None;
        _state = new State(map, new PhysicalMemoryMetadata(map.MaxAddress, map.TotalSize, readOnly, idealBatchSize));
    }

    public PhysicalMemoryMetadata Metadata => _state.Metadata;

    public MemoryMap MemoryMap => _state.Map;

    public ConnectorHints Hints { get; }

    public void SetMemoryMap(MemoryMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        _state = new State(map, new PhysicalMemoryMetadata(map.MaxAddress, map.TotalSize, _readOnly, _idealBatchSize));
    }

    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => Transfer(batch, flags, write: false);

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        if (_readOnly)
            throw new NotSupportedException("This guest memory view is read-only.");
        Transfer(batch, flags, write: true);
    }

    private void Transfer(Span<MemoryRequest> batch, MemoryFlags flags, bool write)
    {
        var map = _state.Map;
        bool zeroPad = !write && (flags & MemoryFlags.ZeroPadOnFail) != 0;
        int pieces = 0;
        for (int i = 0; i < batch.Length; i++)
            pieces += CountPieces(map, batch[i].Address, batch[i].Buffer.Length);
        var down = ArrayPool<MemoryRequest>.Shared.Rent(Math.Max(1, pieces));
        var owners = ArrayPool<int>.Shared.Rent(Math.Max(1, pieces));
        try
        {
            int n = 0;
            for (int i = 0; i < batch.Length; i++)
            {
                ref var entry = ref batch[i];
                entry.Succeeded = true;
                ulong address = entry.Address;
                var buffer = entry.Buffer;
                if (buffer.Length > 0 && (ulong)(buffer.Length - 1) > ulong.MaxValue - address)
                {
                    entry.Succeeded = false; // wraps past 2^64: names no memory
                    continue;
                }
                while (!buffer.IsEmpty)
                {
                    int index = map.IndexOf(address);
                    int chunk;
                    if (index < 0)
                    {
                        if (!zeroPad)
                        {
                            entry.Succeeded = false;
                            break;
                        }
                        ulong gap = GapLength(map, address);
                        chunk = gap < (ulong)buffer.Length ? (int)gap : buffer.Length;
                        buffer.Span[..chunk].Clear();
                    }
                    else
                    {
                        var range = map[index];
                        ulong delta = address - range.Base;
                        ulong available = range.Size - delta;
                        chunk = available < (ulong)buffer.Length ? (int)available : buffer.Length;
                        down[n] = new MemoryRequest(range.BackingBase + delta, buffer[..chunk]);
                        owners[n] = i;
                        n++;
                    }
                    buffer = buffer[chunk..];
                    if (!buffer.IsEmpty)
                        address += (ulong)chunk; // only while bytes remain: the end of a request may be 2^64
                }
            }
            if (n == 0)
                return;
            var pieceBatch = down.AsSpan(0, n);
            if (write)
                _process.Write(pieceBatch, flags);
            else
                _process.Read(pieceBatch, flags & ~MemoryFlags.ZeroPadOnFail | (zeroPad ? MemoryFlags.ZeroPadOnFail : 0));
            for (int k = 0; k < n; k++)
            {
                if (!pieceBatch[k].Succeeded)
                    batch[owners[k]].Succeeded = false;
            }
        }
        finally
        {
            down.AsSpan(0, Math.Max(1, pieces)).Clear();
            ArrayPool<MemoryRequest>.Shared.Return(down);
            ArrayPool<int>.Shared.Return(owners);
        }
    }

    /// <summary>How many pieces a request is cut into, at most (mapped pieces and the gaps between them).</summary>
    private static int CountPieces(MemoryMap map, ulong address, int length)
    {
        int pieces = 0;
        ulong remaining = (ulong)length;
        if (length > 0 && (ulong)(length - 1) > ulong.MaxValue - address)
            return 0;
        while (remaining > 0)
        {
            int index = map.IndexOf(address);
            ulong chunk = index < 0 ? GapLength(map, address) : map[index].Size - (address - map[index].Base);
            chunk = Math.Min(chunk, remaining);
            pieces++;
            remaining -= chunk;
            if (remaining > 0)
                address += chunk;
        }
        return pieces;
    }

    /// <summary>How far <paramref name="address"/>, outside every range, is from the next range (to 2^64 when none follows).</summary>
    private static ulong GapLength(MemoryMap map, ulong address)
    {
        foreach (var range in map.Ranges)
        {
            if (range.Base > address)
                return range.Base - address;
        }
        return ulong.MaxValue; // callers cut it to what remains of the request
    }

    public void Dispose()
    {
    }

    private sealed record State(MemoryMap Map, PhysicalMemoryMetadata Metadata);
}
