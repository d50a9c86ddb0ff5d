using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;

namespace Introspect.Remote.Protocol;

/// <summary>The 12-byte header in front of every payload.</summary>
internal readonly record struct FrameHeader(int Length, MessageType Type, uint RequestId)
{
    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)Length);
        destination[4] = (byte)Type;
        destination[5] = 0;
        destination[6] = 0;
        destination[7] = 0;
        BinaryPrimitives.WriteUInt32LittleEndian(destination[8..], RequestId);
    }

    /// <summary>Decodes a header, refusing a length over <paramref name="maxPayload"/> before any payload is waited for.</summary>
    /// <exception cref="ProtocolViolationException">Reserved bytes are set or the length is over the limit.</exception>
    public static FrameHeader Parse(ReadOnlySpan<byte> source, int maxPayload, string peer)
    {
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(source);
        uint requestId = BinaryPrimitives.ReadUInt32LittleEndian(source[8..]);
        if (source[5] != 0 || source[6] != 0 || source[7] != 0)
            throw new ProtocolViolationException(RemoteErrorCode.Malformed, requestId,
                $"{peer}: frame header's reserved bytes are {source[5]:x2} {source[6]:x2} {source[7]:x2}; expected zeros (is this the Introspect remote protocol?).");
        if (length > (uint)maxPayload)
            throw new ProtocolViolationException(RemoteErrorCode.FrameTooLarge, requestId,
                $"{peer}: frame length {length.ToString(CultureInfo.InvariantCulture)} is over the limit of {maxPayload.ToString(CultureInfo.InvariantCulture)} bytes.");
        return new FrameHeader((int)length, (MessageType)source[4], requestId);
    }

    /// <summary>Takes one whole frame off the front of <paramref name="buffer"/>, if it holds one.</summary>
    /// <returns>False when more bytes are needed; the buffer is then left as it was.</returns>
    public static bool TryTake(ref ReadOnlySequence<byte> buffer, int maxPayload, string peer, out FrameHeader header, out ReadOnlySequence<byte> payload)
    {
        header = default;
        payload = default;
        if (buffer.Length < RemoteProtocol.HeaderSize)
            return false;
        Span<byte> headerBytes = stackalloc byte[RemoteProtocol.HeaderSize];
        buffer.Slice(0, RemoteProtocol.HeaderSize).CopyTo(headerBytes);
        // The header is checked as soon as it is whole, so a huge length is refused without waiting for its bytes.
        header = Parse(headerBytes, maxPayload, peer);
        if (buffer.Length - RemoteProtocol.HeaderSize < header.Length)
            return false;
        payload = buffer.Slice(RemoteProtocol.HeaderSize, header.Length);
        buffer = buffer.Slice(payload.End);
        return true;
    }
}

/// <summary>A peer broke the protocol; <see cref="Code"/> is what the server answers with.</summary>
/// <remarks>The client turns one into <see cref="InvalidDataException"/> (a server that breaks the protocol sent bad input); the server answers it with an error frame.</remarks>
internal sealed class ProtocolViolationException : Exception
{
    public ProtocolViolationException(RemoteErrorCode code, uint requestId, string message) : base(message)
    {
        Code = code;
        RequestId = requestId;
    }

    public RemoteErrorCode Code { get; }

    public uint RequestId { get; }
}

/// <summary>Writes frames into a buffer writer: the header first, with the payload's length known in advance.</summary>
internal static class FrameWriter
{
    public static void WriteHeader(IBufferWriter<byte> writer, MessageType type, uint requestId, int payloadLength)
    {
        var span = writer.GetSpan(RemoteProtocol.HeaderSize);
        new FrameHeader(payloadLength, type, requestId).Write(span);
        writer.Advance(RemoteProtocol.HeaderSize);
    }

    public static void WriteUInt16(IBufferWriter<byte> writer, ushort value)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(writer.GetSpan(2), value);
        writer.Advance(2);
    }

    public static void WriteUInt32(IBufferWriter<byte> writer, uint value)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(writer.GetSpan(4), value);
        writer.Advance(4);
    }

    public static void WriteUInt64(IBufferWriter<byte> writer, ulong value)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(writer.GetSpan(8), value);
        writer.Advance(8);
    }

    public static void WriteByte(IBufferWriter<byte> writer, byte value)
    {
        writer.GetSpan(1)[0] = value;
        writer.Advance(1);
    }

    /// <summary>The bytes a <see cref="WriteString"/> of <paramref name="text"/> takes.</summary>
    public static int StringSize(string text) => 2 + System.Text.Encoding.UTF8.GetByteCount(text);

    public static void WriteString(IBufferWriter<byte> writer, string text)
    {
        int length = System.Text.Encoding.UTF8.GetByteCount(text);
        WriteUInt16(writer, checked((ushort)length));
        var span = writer.GetSpan(length);
        System.Text.Encoding.UTF8.GetBytes(text, span);
        writer.Advance(length);
    }

    /// <summary>An error payload: code, then the message cut to the protocol's limit on a character boundary.</summary>
    public static byte[] ErrorPayload(RemoteErrorCode code, string message)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(message);
        int length = Math.Min(bytes.Length, RemoteProtocol.MaxErrorMessageBytes);
        // Step back over UTF-8 continuation bytes so a cut never splits a character.
        while (length < bytes.Length && length > 0 && (bytes[length] & 0xC0) == 0x80)
            length--;
        var payload = new byte[4 + length];
        BinaryPrimitives.WriteUInt16LittleEndian(payload, (ushort)code);
        BinaryPrimitives.WriteUInt16LittleEndian(payload.AsSpan(2), (ushort)length);
        bytes.AsSpan(0, length).CopyTo(payload.AsSpan(4));
        return payload;
    }

    public static (RemoteErrorCode Code, string Message) ParseError(ReadOnlySpan<byte> payload)
    {
        var reader = new PayloadReader(payload, "Error");
        var code = (RemoteErrorCode)reader.ReadUInt16("code");
        int length = reader.ReadUInt16("message length");
        if (length > RemoteProtocol.MaxErrorMessageBytes)
            reader.Throw("message length", length.ToString(CultureInfo.InvariantCulture), $"at most {RemoteProtocol.MaxErrorMessageBytes}");
        var message = System.Text.Encoding.UTF8.GetString(reader.ReadBytes(length, "message"));
        return (code, message);
    }
}
