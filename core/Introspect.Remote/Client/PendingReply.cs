using System.Buffers;
using Introspect.Remote.Protocol;

namespace Introspect.Remote.Client;

/// <summary>A request on the wire, waiting for the frame with its id.</summary>
/// <remarks>
/// The connection's receive loop hands the reply's payload to <see cref="Accept"/> while it still lies in the
/// pipe, so a read reply's bytes go straight into the caller's buffers. A reply settles exactly once: delivered,
/// or failed when the connection is lost; the caller waits for it to settle before its buffers are let go.
/// </remarks>
internal abstract class PendingReply(MessageType expected)
{
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _settled;

    public MessageType Expected { get; } = expected;

    public Task Completion => _completion.Task;

    public void Deliver(MessageType type, in ReadOnlySequence<byte> payload, string peer)
    {
        if (Interlocked.Exchange(ref _settled, 1) != 0)
            return;
        try
        {
            if (type == MessageType.Error)
            {
                var bytes = payload.Length <= RemoteProtocol.MaxErrorMessageBytes + 4 ? payload.ToArray() : payload.Slice(0, RemoteProtocol.MaxErrorMessageBytes + 4).ToArray();
                var (code, message) = FrameWriter.ParseError(bytes);
                _completion.SetException(new RemoteRequestException(code, $"{peer}: {message}"));
                return;
            }
            if (type != Expected)
                throw new InvalidDataException($"{peer}: a {Expected} was expected in reply, a message of type {(byte)type} came.");
            Accept(payload, peer);
            _completion.SetResult();
        }
        catch (InvalidDataException e)
        {
            _completion.TrySetException(e);
        }
    }

    public void Fail(Exception exception)
    {
        if (Interlocked.Exchange(ref _settled, 1) == 0)
            _completion.TrySetException(exception);
    }

    /// <summary>Takes the reply's payload; throws <see cref="InvalidDataException"/> when it is not what the request implies.</summary>
    protected abstract void Accept(in ReadOnlySequence<byte> payload, string peer);
}

/// <summary>A reply kept as bytes, for the caller to decode: descriptions, lists, translations, symbols.</summary>
internal sealed class BytesReply(MessageType expected) : PendingReply(expected)
{
    public byte[] Payload { get; private set; } = [];

    protected override void Accept(in ReadOnlySequence<byte> payload, string peer) => Payload = payload.ToArray();
}

/// <summary>The server refused or failed one request; the connection goes on.</summary>
internal sealed class RemoteRequestException(RemoteErrorCode code, string message) : IOException(message)
{
    public RemoteErrorCode Code { get; } = code;
}

/// <summary>The connection to the server is gone (or never came); every request on it failed with this.</summary>
internal sealed class RemoteConnectionLostException(string message, Exception? inner = null) : IOException(message, inner)
{
    /// <summary>The server stopped answering (rather than went away): trying again at once would only wait as long again.</summary>
    public bool TimedOut { get; init; }
}
