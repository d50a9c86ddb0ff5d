using System.Buffers;
using Introspect.Remote.Protocol;

namespace Introspect.Remote.Server;

/// <summary>A received frame whose payload was copied out of the pipe into a pooled buffer, so the pipe can move on while it is answered.</summary>
internal sealed class OwnedFrame : IDisposable
{
    private byte[]? _buffer;

    private OwnedFrame(FrameHeader header, byte[] buffer)
    {
        Header = header;
        _buffer = buffer;
    }

    public FrameHeader Header { get; }

    public ReadOnlySpan<byte> Payload => _buffer.AsSpan(0, Header.Length);

    public static OwnedFrame Copy(FrameHeader header, ReadOnlySequence<byte> payload)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(header.Length);
        payload.CopyTo(buffer);
        return new OwnedFrame(header, buffer);
    }

    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, null);
        if (buffer is not null)
            ArrayPool<byte>.Shared.Return(buffer);
    }
}

/// <summary>A reply ready to send: its payload, in a pooled buffer where it is large.</summary>
internal sealed class Reply : IDisposable
{
    private byte[]? _rented;

    private Reply(MessageType type, uint requestId, byte[] payload, int length, bool rented)
    {
        Type = type;
        RequestId = requestId;
        Payload = payload.AsMemory(0, length);
        _rented = rented ? payload : null;
    }

    public MessageType Type { get; }

    public uint RequestId { get; }

    public ReadOnlyMemory<byte> Payload { get; }

    public static Reply Of(MessageType type, uint requestId, byte[] payload) => new(type, requestId, payload, payload.Length, rented: false);

    /// <summary>A reply over a buffer rented from <see cref="ArrayPool{T}.Shared"/>, returned when the reply is disposed.</summary>
    public static Reply Rented(MessageType type, uint requestId, byte[] buffer, int length) => new(type, requestId, buffer, length, rented: true);

    public static Reply Error(uint requestId, RemoteErrorCode code, string message) =>
        Of(MessageType.Error, requestId, FrameWriter.ErrorPayload(code, message));

    public void Dispose()
    {
        var rented = Interlocked.Exchange(ref _rented, null);
        if (rented is not null)
            ArrayPool<byte>.Shared.Return(rented);
    }
}
