using System.Buffers;
using System.Runtime.InteropServices;
using Introspect.Abi;

namespace Introspect.Connectors.LeechCore.Native;

/// <summary>Turns a batch of requests into <c>MEM_SCATTER</c> calls: pages split, calls cut to the device's batch size.</summary>
/// <remarks>
/// <para>The <c>unsafe</c> code of this type is its native entries and the pinned request buffers they point into.
/// One instance serves one call at a time; the memory keeps a pool of them, so concurrent reads never share
/// entries and the steady state allocates nothing.</para>
/// <para>LeechCore's rules for an entry (<c>leechcore.h</c>): 8 to 0x1000 bytes, aligned, never crossing a page,
/// <c>f</c> FALSE going in, <c>iStack</c> the caller's own (0 here). A request is cut at page boundaries; a piece
/// whose address and length are multiples of 8 (and at least 8) is read straight into the caller's pinned buffer,
/// any other through a bounce window, the 8-aligned span around it, which never leaves the page. Every entry is
/// written afresh before each call, so a reused entry never goes in with a stale <c>f</c>.</para>
/// </remarks>
internal sealed unsafe class ScatterBatch : IDisposable
{
    private const int Alignment = 8;
    private const int MaxBouncePages = 256;

    private readonly int _capacity;
    private readonly MemScatter* _entries;
    private readonly MemScatter** _pointers;
    private readonly Piece[] _pieces;
    private byte* _bounce;
    private int _bounceSize;
    private int _bounceUsed;
    private int _count;
    private MemoryHandle[] _pins = new MemoryHandle[16];
    private int _pinCount;
    private bool _disposed;

    /// <summary>Where a piece of a request goes once its entry was served.</summary>
    private struct Piece
    {
        public int Request;
        public byte* Destination;
        public int Length;
        /// <summary>The bounce window the entry reads into, or null when the entry reads into <see cref="Destination"/>.</summary>
        public byte* Bounce;
        public int BounceOffset;
    }

    public ScatterBatch(int capacity)
    {
        _capacity = capacity;
        _entries = (MemScatter*)NativeMemory.AlignedAlloc((nuint)capacity * (nuint)sizeof(MemScatter), 64);
        _pointers = (MemScatter**)NativeMemory.Alloc((nuint)capacity, (nuint)sizeof(MemScatter*));
        _pieces = new Piece[capacity];
    }

    /// <summary>Reads every request of <paramref name="batch"/> through <c>LcReadScatter</c>, setting each one's success.</summary>
    /// <remarks>Parts outside <paramref name="map"/> are not asked of the device: they fail, or read as zeros with <paramref name="zeroPad"/>.</remarks>
    public void Read(LeechCoreLibrary library, nint handle, MemoryMap map, Span<MemoryRequest> batch, bool zeroPad)
    {
        try
        {
            for (int i = 0; i < batch.Length; i++)
            {
                ref var request = ref batch[i];
                request.Succeeded = false;
                int length = request.Buffer.Length;
                if (length == 0)
                {
                    request.Succeeded = true;
                    continue;
                }
                ulong address = request.Address;
                // An entry that would wrap past 2^64 names no memory.
                if ((ulong)(length - 1) > ulong.MaxValue - address)
                    continue;
                byte* destination = Pin(request.Buffer);
                request.Succeeded = true;
                for (int done = 0; done < length;)
                {
                    ulong pieceAddress = address + (ulong)done;
                    int piece = Math.Min(length - done, LeechCoreAbi.PageSize - (int)(pieceAddress & (LeechCoreAbi.PageSize - 1)));
                    if (!Mapped(map, pieceAddress, piece))
                    {
                        if (!zeroPad)
                        {
                            request.Succeeded = false;
                            break;
                        }
                        new Span<byte>(destination + done, piece).Clear();
                    }
                    else
                    {
                        AddPiece(library, handle, batch, zeroPad, write: false, i, pieceAddress, destination + done, piece);
                    }
                    done += piece;
                }
            }
            Flush(library, handle, batch, zeroPad, write: false);
        }
        finally
        {
            Unpin();
        }
    }

    /// <summary>Writes every request of <paramref name="batch"/>, setting each one's success.</summary>
    /// <remarks>
    /// Aligned pieces go through <c>LcWriteScatter</c>. A piece that is not (a byte, a misaligned field) goes through
    /// <c>LcWrite</c>, which hands the device exactly those bytes: reading the aligned span around it and writing it
    /// back would race the machine's own writes to the neighbouring bytes. Pending scatter entries go first, so
    /// writes land in the order given.
    /// </remarks>
    public void Write(LeechCoreLibrary library, nint handle, MemoryMap map, Span<MemoryRequest> batch)
    {
        try
        {
            for (int i = 0; i < batch.Length; i++)
            {
                ref var request = ref batch[i];
                request.Succeeded = false;
                int length = request.Buffer.Length;
                if (length == 0)
                {
                    request.Succeeded = true;
                    continue;
                }
                ulong address = request.Address;
                if ((ulong)(length - 1) > ulong.MaxValue - address)
                    continue;
                byte* source = Pin(request.Buffer);
                request.Succeeded = true;
                for (int done = 0; done < length;)
                {
                    ulong pieceAddress = address + (ulong)done;
                    int piece = Math.Min(length - done, LeechCoreAbi.PageSize - (int)(pieceAddress & (LeechCoreAbi.PageSize - 1)));
                    if (!Mapped(map, pieceAddress, piece))
                    {
                        request.Succeeded = false;
                        break;
                    }
                    if (IsAligned(pieceAddress, piece))
                    {
                        AddPiece(library, handle, batch, zeroPad: false, write: true, i, pieceAddress, source + done, piece);
                    }
                    else
                    {
                        Flush(library, handle, batch, zeroPad: false, write: true);
                        if (!library.Write(handle, pieceAddress, (uint)piece, source + done))
                            request.Succeeded = false;
                    }
                    done += piece;
                }
            }
            Flush(library, handle, batch, zeroPad: false, write: true);
        }
        finally
        {
            Unpin();
        }
    }

    private static bool IsAligned(ulong address, int length) =>
        (address & (Alignment - 1)) == 0 && (length & (Alignment - 1)) == 0 && length >= LeechCoreAbi.MinimumScatterSize;

    private static bool Mapped(MemoryMap map, ulong address, int length) =>
        map.TryTranslate(address, out _, out ulong contiguous) && contiguous >= (ulong)length;

    private void AddPiece(LeechCoreLibrary library, nint handle, Span<MemoryRequest> batch, bool zeroPad, bool write, int request, ulong address, byte* destination, int length)
    {
        bool direct = IsAligned(address, length);
        int offset = (int)(address & (Alignment - 1));
        // The 8-aligned window around the piece: the page is a multiple of 8, so the window stays inside it.
        int window = Math.Max((offset + length + Alignment - 1) & ~(Alignment - 1), LeechCoreAbi.MinimumScatterSize);
        if (!direct && _bounce == null)
            AllocateBounce();
        if (_count == _capacity || (!direct && _bounceUsed + window > _bounceSize))
            Flush(library, handle, batch, zeroPad, write);

        ref var entry = ref _entries[_count];
        entry.Version = LeechCoreAbi.MemScatterVersion;
        entry.Succeeded = 0;
        entry.StackIndex = 0;
        ref var piece = ref _pieces[_count];
        piece.Request = request;
        piece.Destination = destination;
        piece.Length = length;
        if (direct)
        {
            entry.Address = address;
            entry.Size = (uint)length;
            entry.Buffer = destination;
            piece.Bounce = null;
        }
        else
        {
            byte* bounce = _bounce + _bounceUsed;
            _bounceUsed += window;
            entry.Address = address - (ulong)offset;
            entry.Size = (uint)window;
            entry.Buffer = bounce;
            piece.Bounce = bounce;
            piece.BounceOffset = offset;
        }
        _pointers[_count] = &_entries[_count];
        _count++;
    }

    /// <summary>Bounce windows are needed only by misaligned pieces, so their buffer is made on the first one.</summary>
    private void AllocateBounce()
    {
        _bounceSize = Math.Min(_capacity, MaxBouncePages) * LeechCoreAbi.PageSize;
        _bounce = (byte*)NativeMemory.AlignedAlloc((nuint)_bounceSize, LeechCoreAbi.PageSize);
    }

    private void Flush(LeechCoreLibrary library, nint handle, Span<MemoryRequest> batch, bool zeroPad, bool write)
    {
        if (_count == 0)
            return;
        if (write)
            library.WriteScatter(handle, _count, _pointers);
        else
            library.ReadScatter(handle, _count, _pointers);
        for (int k = 0; k < _count; k++)
        {
            ref var piece = ref _pieces[k];
            if (_entries[k].Succeeded != 0)
            {
                if (piece.Bounce != null)
                    Buffer.MemoryCopy(piece.Bounce + piece.BounceOffset, piece.Destination, piece.Length, piece.Length);
            }
            else if (zeroPad)
            {
                new Span<byte>(piece.Destination, piece.Length).Clear();
            }
            else
            {
                batch[piece.Request].Succeeded = false;
            }
        }
        _count = 0;
        _bounceUsed = 0;
    }

    private byte* Pin(Memory<byte> buffer)
    {
        if (_pinCount == _pins.Length)
            Array.Resize(ref _pins, _pins.Length * 2);
        var pin = buffer.Pin();
        _pins[_pinCount++] = pin;
        return (byte*)pin.Pointer;
    }

    private void Unpin()
    {
        for (int i = 0; i < _pinCount; i++)
        {
            _pins[i].Dispose();
            _pins[i] = default;
        }
        _pinCount = 0;
        _count = 0;
        _bounceUsed = 0;
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        NativeMemory.AlignedFree(_entries);
        NativeMemory.Free(_pointers);
        if (_bounce != null)
            NativeMemory.AlignedFree(_bounce);
        _bounce = null;
    }
}
