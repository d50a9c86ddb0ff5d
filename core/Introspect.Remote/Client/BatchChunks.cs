using System.Buffers;
using System.Buffers.Binary;
using Introspect.Abi;
using Introspect.Remote.Protocol;

namespace Introspect.Remote.Client;

/// <summary>One request of a batch: it writes itself onto the wire and takes its reply into the caller's buffers.</summary>
internal abstract class BatchChunk(MessageType expected, BatchPlan plan, int start, int count, long bytes, ulong? pid, MemoryFlags flags)
    : PendingReply(expected), IRequestBody
{
    protected BatchPlan Plan { get; } = plan;

    protected int Start { get; } = start;

    protected int Count { get; } = count;

    protected long Bytes { get; } = bytes;

    protected virtual bool CarriesData => false;

    public int Length => (pid.HasValue ? 8 : 0) + 8 + Count * RemoteProtocol.EntrySize + (CarriesData ? (int)Bytes : 0);

    public void WriteTo(IBufferWriter<byte> writer)
    {
        if (pid is { } processId)
            FrameWriter.WriteUInt64(writer, processId);
        FrameWriter.WriteUInt32(writer, (uint)flags);
        FrameWriter.WriteUInt32(writer, (uint)Count);
        for (int i = Start; i < Start + Count; i++)
        {
            var span = writer.GetSpan(RemoteProtocol.EntrySize);
            BinaryPrimitives.WriteUInt64LittleEndian(span, Plan.Address(i));
            BinaryPrimitives.WriteUInt32LittleEndian(span[8..], (uint)Plan.Length(i));
            writer.Advance(RemoteProtocol.EntrySize);
        }
        if (!CarriesData)
            return;
        for (int i = Start; i < Start + Count; i++)
            writer.Write(Plan.Target(i).Span);
    }
}

/// <summary>A read request and its reply: count, compression, lengths, a bitmap of the entries read, then their bytes.</summary>
internal sealed class ReadChunk(BatchPlan plan, int start, int count, long bytes, ulong? pid, MemoryFlags flags, PageCompression allowed)
    : BatchChunk(MessageType.ReadReply, plan, start, count, bytes, pid, flags)
{
    protected override void Accept(in ReadOnlySequence<byte> payload, string peer)
    {
        var reader = new SequenceReader<byte>(payload);
        Span<byte> head = stackalloc byte[BatchLayout.ReadReplyFixed];
        if (!reader.TryCopyTo(head))
            throw Malformed(peer, $"{payload.Length} bytes, shorter than its {BatchLayout.ReadReplyFixed}-byte header");
        reader.Advance(head.Length);
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(head);
        var compression = (PageCompression)head[4];
        uint raw = BinaryPrimitives.ReadUInt32LittleEndian(head[8..]);
        uint data = BinaryPrimitives.ReadUInt32LittleEndian(head[12..]);
        if (count != (uint)Count)
            throw Malformed(peer, $"an answer for {count} entries to a request of {Count}");
        if (head[5] != 0 || head[6] != 0 || head[7] != 0)
            throw Malformed(peer, "reserved header bytes set");
        if (compression != PageCompression.None && compression != allowed)
            throw Malformed(peer, $"compression {(byte)compression}, which was not agreed");

        int bitmapSize = BatchLayout.BitmapSize(Count);
        var bitmap = ArrayPool<byte>.Shared.Rent(bitmapSize);
        try
        {
            if (!reader.TryCopyTo(bitmap.AsSpan(0, bitmapSize)))
                throw Malformed(peer, "a bitmap cut short");
            reader.Advance(bitmapSize);
            // What the bitmap says was read, computed from our own request, is the only size trusted.
            long expected = 0;
            for (int i = 0; i < Count; i++)
            {
                if (BatchLayout.Bit(bitmap, i))
                    expected += Plan.Length(Start + i);
            }
            if (raw != expected)
                throw Malformed(peer, $"{raw} bytes of data announced where its bitmap implies {expected}");
            if (data != reader.Remaining || (compression == PageCompression.None && data != raw))
                throw Malformed(peer, $"{data} bytes of data announced, {reader.Remaining} present");

            if (compression == PageCompression.None)
            {
                for (int i = 0; i < Count; i++)
                {
                    if (!BatchLayout.Bit(bitmap, i))
                        continue;
                    var target = Plan.Target(Start + i).Span;
                    reader.TryCopyTo(target);
                    reader.Advance(target.Length);
                }
            }
            else
            {
                Inflate(reader.UnreadSequence, (int)data, (int)raw, bitmap, compression, peer);
            }
            for (int i = 0; i < Count; i++)
                Plan.SetOk(Start + i, BatchLayout.Bit(bitmap, i));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bitmap);
        }
    }

    private void Inflate(ReadOnlySequence<byte> compressed, int compressedLength, int rawLength, byte[] bitmap, PageCompression compression, string peer)
    {
        var input = ArrayPool<byte>.Shared.Rent(compressedLength);
        var output = ArrayPool<byte>.Shared.Rent(rawLength);
        try
        {
            compressed.CopyTo(input);
            PageCodec.Decompress(compression, input.AsSpan(0, compressedLength), output.AsSpan(0, rawLength), peer);
            int position = 0;
            for (int i = 0; i < Count; i++)
            {
                if (!BatchLayout.Bit(bitmap, i))
                    continue;
                var target = Plan.Target(Start + i).Span;
                output.AsSpan(position, target.Length).CopyTo(target);
                position += target.Length;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(input);
            ArrayPool<byte>.Shared.Return(output);
        }
    }

    private static InvalidDataException Malformed(string peer, string what) =>
        new($"{peer}: a read reply is malformed: {what}.");
}

/// <summary>A write request (entries, then their bytes) and its reply: count and a bitmap of the entries written.</summary>
internal sealed class WriteChunk(BatchPlan plan, int start, int count, long bytes, ulong? pid, MemoryFlags flags)
    : BatchChunk(MessageType.WriteReply, plan, start, count, bytes, pid, flags)
{
    protected override bool CarriesData => true;

    protected override void Accept(in ReadOnlySequence<byte> payload, string peer)
    {
        int bitmapSize = BatchLayout.BitmapSize(Count);
        if (payload.Length != BatchLayout.WriteReplyFixed + bitmapSize)
            throw new InvalidDataException($"{peer}: a write reply is {payload.Length} bytes; expected {BatchLayout.WriteReplyFixed + bitmapSize} for {Count} entries.");
        var bytes = payload.ToArray();
        if (BinaryPrimitives.ReadUInt32LittleEndian(bytes) != (uint)Count)
            throw new InvalidDataException($"{peer}: a write reply answers {BinaryPrimitives.ReadUInt32LittleEndian(bytes)} entries; the request had {Count}.");
        for (int i = 0; i < Count; i++)
            Plan.SetOk(Start + i, BatchLayout.Bit(bytes.AsSpan(BatchLayout.WriteReplyFixed), i));
    }
}
