using System.Buffers;

namespace Introspect.Core.Memory;

/// <summary>A <see cref="Memory{T}"/> over a caller's pinned span, so a span can travel in a <c>MemoryRequest</c> without a copy.</summary>
/// <remarks>
/// This type is the one place the memory readers use <c>unsafe</c>: the caller pins the span with <c>fixed</c>,
/// rents a manager for the pointer, hands its <see cref="MemoryManager{T}.Memory"/> to a synchronous batch call,
/// and returns the manager before the pin ends. Batches are synchronous by contract (<c>IMemory.Read</c> returns
/// when the entries are filled), so no memory holds the pointer beyond the call. One manager per thread is
/// cached, so the steady state allocates nothing.
/// </remarks>
internal sealed unsafe class PinnedSpanMemory : MemoryManager<byte>
{
    [ThreadStatic]
    private static PinnedSpanMemory? t_cached;

    private byte* _pointer;
    private int _length;

    private PinnedSpanMemory() { }

    /// <summary>A manager over <paramref name="length"/> bytes at <paramref name="pointer"/>, which must stay pinned until <see cref="Return"/>.</summary>
    public static PinnedSpanMemory Rent(byte* pointer, int length)
    {
        // A nested read on the same thread (a memory that itself reads another memory through these methods) finds the cache empty and makes its own.
        var manager = t_cached ?? new PinnedSpanMemory();
        t_cached = null;
        manager._pointer = pointer;
        manager._length = length;
        return manager;
    }

    /// <summary>Forgets the pointer and makes the manager available to the next read on this thread.</summary>
    public void Return()
    {
        _pointer = null;
        _length = 0;
        t_cached = this;
    }

    public override Span<byte> GetSpan() => new(_pointer, _length);

    public override MemoryHandle Pin(int elementIndex = 0)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)elementIndex, (uint)_length, nameof(elementIndex));
        return new MemoryHandle(_pointer + elementIndex);
    }

    public override void Unpin() { }

    protected override void Dispose(bool disposing) { }
}
