using Introspect.Abi;
using Introspect.Remote.Protocol;

namespace Introspect.Remote.Client;

/// <summary>A caller's batch as it goes on the wire: entries cut into pieces that fit a frame, pieces grouped into chunks of one request each.</summary>
/// <remarks>
/// A batch within the server's limits is one piece per entry and one chunk: one request, one round trip. Only an
/// entry larger than a frame is cut, and only a batch over the limits takes several requests, which are sent
/// together and waited for together. A plan is reused by the thread that built it, so the steady state of a
/// reader allocates no arrays.
/// </remarks>
internal sealed class BatchPlan
{
    [ThreadStatic]
    private static BatchPlan? t_cached;

    private ulong[] _addresses = new ulong[64];
    private int[] _lengths = new int[64];
    private Memory<byte>[] _targets = new Memory<byte>[64];
    private int[] _owners = new int[64];
    private bool[] _ok = new bool[64];
    private bool[] _ownerFailed = new bool[16];
    private int[] _ownerPlanned = new int[16];

    public int PieceCount { get; private set; }

    public int OwnerCount { get; private set; }

    /// <summary>Chunks of pieces, each sent as one request: first piece, count, bytes.</summary>
    public List<(int Start, int Count, long Bytes)> Chunks { get; } = [];

    public ulong Address(int piece) => _addresses[piece];

    public int Length(int piece) => _lengths[piece];

    public Memory<byte> Target(int piece) => _targets[piece];

    public void SetOk(int piece, bool ok) => _ok[piece] = ok;

    public static BatchPlan Rent()
    {
        var plan = t_cached ?? new BatchPlan();
        t_cached = null;
        return plan;
    }

    /// <summary>Forgets the caller's buffers and keeps the arrays for this thread's next batch.</summary>
    public void Return()
    {
        Array.Clear(_targets, 0, PieceCount);
        PieceCount = 0;
        OwnerCount = 0;
        Chunks.Clear();
        t_cached = this;
    }

    /// <summary>Plans <paramref name="batch"/> under a server's limits; with <paramref name="remap"/>, addresses are translated through it first.</summary>
    public void Build(Span<MemoryRequest> batch, MemoryMap? remap, int maxEntries, int maxFrame)
    {
        Array.Clear(_targets, 0, PieceCount);
        PieceCount = 0;
        Chunks.Clear();
        OwnerCount = batch.Length;
        if (_ownerFailed.Length < batch.Length)
        {
            _ownerFailed = new bool[Math.Max(batch.Length, _ownerFailed.Length * 2)];
            _ownerPlanned = new int[_ownerFailed.Length];
        }
        Array.Clear(_ownerFailed, 0, batch.Length);
        Array.Clear(_ownerPlanned, 0, batch.Length);
        // Whatever else a frame holds, one piece alone always fits.
        int maxPiece = maxFrame - RemoteProtocol.BatchOverhead - RemoteProtocol.EntrySize;
        for (int owner = 0; owner < batch.Length; owner++)
        {
            ulong address = batch[owner].Address;
            var buffer = batch[owner].Buffer;
            if (buffer.Length == 0)
            {
                Add(address, 0, buffer, owner);
                continue;
            }
            // An entry that would wrap past 2^64 is not memory anyone has; the server would refuse the whole batch for it.
            if (unchecked(address + (ulong)(buffer.Length - 1)) < address)
            {
                _ownerFailed[owner] = true;
                continue;
            }
            int offset = 0;
            while (offset < buffer.Length)
            {
                int length = Math.Min(buffer.Length - offset, maxPiece);
                ulong at = address + (ulong)offset;
                if (remap is not null)
                {
                    if (!remap.TryTranslate(at, out ulong backing, out ulong contiguous))
                    {
                        _ownerFailed[owner] = true;
                        break;
                    }
                    length = (int)Math.Min((ulong)length, contiguous);
                    at = backing;
                }
                Add(at, length, buffer.Slice(offset, length), owner);
                offset += length;
            }
            _ownerPlanned[owner] = offset;
        }

        int start = 0, count = 0;
        long bytes = 0;
        for (int piece = 0; piece < PieceCount; piece++)
        {
            int length = _lengths[piece];
            if (count > 0 && (count == maxEntries || !RemoteProtocol.BatchFits(count + 1, bytes + length, maxFrame)))
            {
                Chunks.Add((start, count, bytes));
                start = piece;
                count = 0;
                bytes = 0;
            }
            count++;
            bytes += length;
        }
        if (count > 0)
            Chunks.Add((start, count, bytes));
    }

    private void Add(ulong address, int length, Memory<byte> target, int owner)
    {
        if (PieceCount == _addresses.Length)
        {
            int size = _addresses.Length * 2;
            Array.Resize(ref _addresses, size);
            Array.Resize(ref _lengths, size);
            Array.Resize(ref _targets, size);
            Array.Resize(ref _owners, size);
            Array.Resize(ref _ok, size);
        }
        _addresses[PieceCount] = address;
        _lengths[PieceCount] = length;
        _targets[PieceCount] = target;
        _owners[PieceCount] = owner;
        _ok[PieceCount] = false;
        PieceCount++;
    }

    /// <summary>Sets each entry's success from its pieces; with <see cref="MemoryFlags.ZeroPadOnFail"/> what failed is zeroed and counts as read.</summary>
    public void Complete(Span<MemoryRequest> batch, MemoryFlags flags)
    {
        bool pad = (flags & MemoryFlags.ZeroPadOnFail) != 0;
        for (int owner = 0; owner < batch.Length; owner++)
            batch[owner].Succeeded = !_ownerFailed[owner];
        for (int piece = 0; piece < PieceCount; piece++)
        {
            if (_ok[piece])
                continue;
            int owner = _owners[piece];
            batch[owner].Succeeded = false;
            if (pad)
                _targets[piece].Span.Clear();
        }
        if (!pad)
            return;
        for (int owner = 0; owner < batch.Length; owner++)
        {
            // The part of an entry no piece covered (past an unmapped address) is padded too.
            batch[owner].Buffer.Span[_ownerPlanned[owner]..].Clear();
            batch[owner].Succeeded = true;
        }
    }
}
