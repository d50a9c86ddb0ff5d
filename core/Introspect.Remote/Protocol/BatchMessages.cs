using System.Buffers.Binary;
using System.Globalization;
using Introspect.Abi;

namespace Introspect.Remote.Protocol;

/// <summary>
/// A read or write batch as the client sent it: <c>[pid u64]</c> (virtual batches only), flags u32, count u32,
/// then count entries of (address u64, length u32), then, for writes, the entries' bytes one after another.
/// </summary>
/// <remarks>A view over the received payload: entries are decoded where they lie, nothing is copied or allocated.</remarks>
internal readonly ref struct BatchRequest
{
    private const MemoryFlags KnownFlags = MemoryFlags.NoCache | MemoryFlags.ZeroPadOnFail | MemoryFlags.ForceCache;

    private readonly ReadOnlySpan<byte> _entries;

    private BatchRequest(ulong pid, MemoryFlags flags, int count, long totalBytes, ReadOnlySpan<byte> entries, ReadOnlySpan<byte> data)
    {
        Pid = pid;
        Flags = flags;
        Count = count;
        TotalBytes = totalBytes;
        _entries = entries;
        Data = data;
    }

    public ulong Pid { get; }

    public MemoryFlags Flags { get; }

    public int Count { get; }

    /// <summary>The sum of the entries' lengths.</summary>
    public long TotalBytes { get; }

    /// <summary>The bytes to write (write batches only).</summary>
    public ReadOnlySpan<byte> Data { get; }

    public ulong Address(int index) => BinaryPrimitives.ReadUInt64LittleEndian(_entries.Slice(index * RemoteProtocol.EntrySize, 8));

    public int Length(int index) => (int)BinaryPrimitives.ReadUInt32LittleEndian(_entries.Slice(index * RemoteProtocol.EntrySize + 8, 4));

    /// <summary>Decodes and checks a batch against the server's limits.</summary>
    /// <exception cref="ProtocolViolationException">The layout is wrong (Malformed) or the batch is over a limit (LimitExceeded).</exception>
    public static BatchRequest Decode(ReadOnlySpan<byte> payload, MessageType type, uint requestId, int maxEntries, int maxFrame)
    {
        bool isVirtual = type is MessageType.ReadVirtual or MessageType.WriteVirtual;
        bool withData = type is MessageType.WritePhysical or MessageType.WriteVirtual;
        string name = type.ToString();
        int fixedSize = (isVirtual ? 8 : 0) + 8;
        if (payload.Length < fixedSize)
            throw Malformed(requestId, name, "payload", $"{payload.Length} bytes", $"at least {fixedSize}");
        int offset = 0;
        ulong pid = 0;
        if (isVirtual)
        {
            pid = BinaryPrimitives.ReadUInt64LittleEndian(payload);
            offset = 8;
        }
        var flags = (MemoryFlags)BinaryPrimitives.ReadUInt32LittleEndian(payload[offset..]);
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(payload[(offset + 4)..]);
        offset += 8;
        if ((flags & ~KnownFlags) != 0)
            throw Malformed(requestId, name, "flags", $"0x{(uint)flags:x}", $"a combination of 0x{(uint)KnownFlags:x}");
        if (count > (uint)maxEntries)
            throw new ProtocolViolationException(RemoteErrorCode.LimitExceeded, requestId,
                $"{name}: {count.ToString(CultureInfo.InvariantCulture)} entries is over the server's limit of {maxEntries.ToString(CultureInfo.InvariantCulture)} per batch.");
        // count <= maxEntries <= int.MaxValue, and the product is taken in 64 bits, so it cannot overflow.
        long entriesSize = (long)count * RemoteProtocol.EntrySize;
        if (payload.Length - offset < entriesSize)
            throw Malformed(requestId, name, "entries", $"{payload.Length - offset} bytes", $"{entriesSize} bytes for {count} entries");
        var entries = payload.Slice(offset, (int)entriesSize);
        long total = 0;
        for (int i = 0; i < (int)count; i++)
        {
            ulong address = BinaryPrimitives.ReadUInt64LittleEndian(entries.Slice(i * RemoteProtocol.EntrySize, 8));
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(entries.Slice(i * RemoteProtocol.EntrySize + 8, 4));
            // An entry may end exactly at 2^64 but never wrap past it.
            if (length != 0 && unchecked(address + (length - 1UL)) < address)
                throw Malformed(requestId, name, $"entry {i}", $"0x{address:x}+0x{length:x}", "a range that does not wrap past 2^64");
            total += length;
            if (!RemoteProtocol.BatchFits(count, total, maxFrame))
                throw new ProtocolViolationException(RemoteErrorCode.LimitExceeded, requestId,
                    $"{name}: the batch's {count} entries ask for more than the server's frame limit of {maxFrame.ToString(CultureInfo.InvariantCulture)} bytes.");
        }
        var rest = payload[(offset + (int)entriesSize)..];
        if (withData ? rest.Length != total : rest.Length != 0)
            throw Malformed(requestId, name, "data", $"{rest.Length} bytes", $"{(withData ? total : 0)} bytes");
        return new BatchRequest(pid, flags, (int)count, total, entries, rest);
    }

    private static ProtocolViolationException Malformed(uint requestId, string message, string field, string found, string expected) =>
        new(RemoteErrorCode.Malformed, requestId, $"{message} message: field '{field}' is {found}; expected {expected}.");
}

/// <summary>The layouts of batch replies and of the other fixed-layout messages.</summary>
internal static class BatchLayout
{
    /// <summary>A read reply before its bitmap: count u32, compression u8, 3 reserved bytes, raw length u32, data length u32.</summary>
    public const int ReadReplyFixed = 16;

    /// <summary>A write reply before its bitmap: count u32.</summary>
    public const int WriteReplyFixed = 4;

    /// <summary>A translate request: pid u64, count u32, reserved u32, then count addresses u64.</summary>
    public const int TranslateFixed = 16;

    public static int BitmapSize(int count) => (int)(((uint)count + 7) / 8);

    public static bool Bit(ReadOnlySpan<byte> bitmap, int index) => (bitmap[index >> 3] & (1 << (index & 7))) != 0;

    public static void SetBit(Span<byte> bitmap, int index) => bitmap[index >> 3] |= (byte)(1 << (index & 7));

    public static void WriteReadReplyHeader(Span<byte> destination, int count, PageCompression compression, int rawLength, int dataLength)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)count);
        destination[4] = (byte)compression;
        destination[5] = 0;
        destination[6] = 0;
        destination[7] = 0;
        BinaryPrimitives.WriteUInt32LittleEndian(destination[8..], (uint)rawLength);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[12..], (uint)dataLength);
    }
}
