using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;
using Introspect.Abi;

namespace Introspect.Core.Memory;

/// <summary>Reads of one range, typed values and strings from any <see cref="IMemory"/>, ClrMD-style: short reads, never throws for unreadable memory.</summary>
public static class MemoryReads
{
    private const int PageSize = PhysicalBatch.PageSize;
    private const ulong PageMask = PhysicalBatch.PageMask;

    /// <summary>How much of a string is fetched per step, so a short string does not cost a long read.</summary>
    private const int StringChunk = 256;

    /// <summary>Reads <paramref name="buffer"/>'s length from <paramref name="address"/>.</summary>
    /// <returns>How many bytes were read contiguously from <paramref name="address"/> (0 if none); with
    /// <see cref="MemoryFlags.ZeroPadOnFail"/>, unreadable pages are zero-filled and the whole length is returned.
    /// A range running past 2^64 is cut there.</returns>
    /// <remarks>
    /// The whole range goes down as one request, straight into <paramref name="buffer"/>, so a large read costs what
    /// the memory's copy costs. Only if that fails is it split at 4 KiB page boundaries, into one batch, to find the
    /// readable prefix.
    /// </remarks>
    public static int Read(this IMemory memory, ulong address, Span<byte> buffer, MemoryFlags flags = MemoryFlags.None)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (buffer.IsEmpty)
            return 0;
        return ReadPinned(memory, address, buffer, flags);
    }

    /// <summary>Reads a value of an unmanaged type (little-endian as the memory holds it).</summary>
    /// <returns>False when not all of its bytes could be read; <paramref name="value"/> is then default.</returns>
    public static bool TryRead<T>(this IMemory memory, ulong address, out T value, MemoryFlags flags = MemoryFlags.None)
        where T : unmanaged
    {
        value = default;
        var bytes = MemoryMarshal.AsBytes(new Span<T>(ref value));
        if (memory.Read(address, bytes, flags) == bytes.Length)
            return true;
        value = default;
        return false;
    }

    /// <summary>Reads a NUL-terminated UTF-8 string of at most <paramref name="maxBytes"/> bytes.</summary>
    /// <returns>The text up to the first NUL, the last readable byte or <paramref name="maxBytes"/>; null when nothing at
    /// <paramref name="address"/> is readable.</returns>
    public static string? ReadUtf8String(this IMemory memory, ulong address, int maxBytes, MemoryFlags flags = MemoryFlags.None) =>
        ReadString(memory, address, maxBytes, 1, flags);

    /// <summary>Reads a NUL-terminated UTF-16 (little-endian) string of at most <paramref name="maxBytes"/> bytes.</summary>
    /// <returns>The text up to the first NUL character, the last readable character or <paramref name="maxBytes"/>; null
    /// when nothing at <paramref name="address"/> is readable.</returns>
    public static string? ReadUtf16String(this IMemory memory, ulong address, int maxBytes, MemoryFlags flags = MemoryFlags.None) =>
        ReadString(memory, address, maxBytes, 2, flags);

    private static string? ReadString(IMemory memory, ulong address, int maxBytes, int unit, MemoryFlags flags)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        maxBytes -= maxBytes % unit;
        if (maxBytes == 0)
            return null;
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Min(maxBytes, PageSize));
        try
        {
            int length = 0;
            bool readAny = false;
            while (length < maxBytes)
            {
                ulong at = unchecked(address + (ulong)length);
                if (length > 0 && at == 0)
                    break; // wrapped past 2^64
                // Steps end at page boundaries, so the step that meets an unreadable page reads nothing else.
                int step = (int)Math.Min((ulong)Math.Min(maxBytes - length, StringChunk), PageSize - (at & PageMask));
                if (step < unit)
                    step = unit; // a UTF-16 unit straddling a page boundary
                if (buffer.Length < length + step)
                {
                    var larger = ArrayPool<byte>.Shared.Rent(Math.Min(maxBytes, Math.Max(buffer.Length * 2, length + step)));
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }
                int read = ReadCore(memory, at, buffer.AsMemory(length, step), flags);
                read -= read % unit;
                if (read > 0)
                    readAny = true;
                int terminator = unit == 1
                    ? buffer.AsSpan(length, read).IndexOf((byte)0)
                    : MemoryMarshal.Cast<byte, char>(buffer.AsSpan(length, read)).IndexOf('\0') * 2;
                if (terminator >= 0)
                {
                    length += terminator;
                    break;
                }
                length += read;
                if (read < step)
                    break;
            }
            if (!readAny)
                return null;
            return unit == 1
                ? Encoding.UTF8.GetString(buffer, 0, length)
                : Encoding.Unicode.GetString(buffer, 0, length);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    // The one unsafe member of this type: it pins the caller's span so the read lands in it without a copy
    // (see PinnedSpanMemory for why the pointer cannot outlive the call).
    private static unsafe int ReadPinned(IMemory memory, ulong address, Span<byte> buffer, MemoryFlags flags)
    {
        fixed (byte* pointer = buffer)
        {
            var manager = PinnedSpanMemory.Rent(pointer, buffer.Length);
            try
            {
                return ReadCore(memory, address, manager.Memory, flags);
            }
            finally
            {
                manager.Return();
            }
        }
    }

    internal static int ReadCore(IMemory memory, ulong address, Memory<byte> buffer, MemoryFlags flags)
    {
        int length = buffer.Length;
        if (length == 0)
            return 0;
        if (!PhysicalBatch.FitsInAddressSpace(address, length))
        {
            length = (int)(ulong.MaxValue - address + 1);
            buffer = buffer[..length];
        }

        var request = new MemoryRequest(address, buffer);
        memory.Read(new Span<MemoryRequest>(ref request), flags);
        if (request.Succeeded)
            return length;

        bool zeroPad = (flags & MemoryFlags.ZeroPadOnFail) != 0;
        int pages = (int)PhysicalBatch.PageCount(address, length);
        if (pages == 1)
        {
            if (!zeroPad)
                return 0;
            buffer.Span.Clear();
            return length;
        }

        var requests = ArrayPool<MemoryRequest>.Shared.Rent(pages);
        try
        {
            var batch = requests.AsSpan(0, pages);
            PhysicalBatch.SplitByPage(address, buffer, batch);
            memory.Read(batch, flags);
            if (zeroPad)
            {
                foreach (ref readonly var piece in batch)
                {
                    if (!piece.Succeeded)
                        piece.Buffer.Span.Clear();
                }
                return length;
            }
            return PhysicalBatch.SucceededPrefix(batch);
        }
        finally
        {
            requests.AsSpan(0, pages).Clear();
            ArrayPool<MemoryRequest>.Shared.Return(requests);
        }
    }
}
