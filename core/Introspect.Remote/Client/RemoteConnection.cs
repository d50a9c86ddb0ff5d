using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Introspect.Remote.Protocol;

namespace Introspect.Remote.Client;

/// <summary>The body of a request: its length is known before it is written, so the header can go first.</summary>
internal interface IRequestBody
{
    int Length { get; }

    void WriteTo(IBufferWriter<byte> writer);
}

/// <summary>A request body that is a ready array.</summary>
internal sealed class BytesBody(byte[] bytes) : IRequestBody
{
    public static readonly BytesBody Empty = new([]);

    public int Length => bytes.Length;

    public void WriteTo(IBufferWriter<byte> writer) => writer.Write(bytes);
}

/// <summary>One connection to a server: handshake, a receive loop that matches replies to requests by id, and sends from any thread.</summary>
/// <remarks>
/// Requests are sent synchronously (the memory contract is synchronous) and several may be in flight at once,
/// from one batch split in parts or from several threads, up to the server's in-flight limit. When the connection
/// fails, for any reason, every request waiting on it fails with <see cref="RemoteConnectionLostException"/>
/// naming the reason, and the connection is dead for good: <see cref="RemoteLink"/> makes a new one.
/// </remarks>
internal sealed class RemoteConnection : IDisposable
{
    private readonly RemoteClientOptions _options;
    private readonly Socket _socket;
    private readonly Stream _stream;
    private readonly PipeReader _reader;
    private readonly PipeWriter _writer;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly SemaphoreSlim _inFlight;
    private readonly ConcurrentDictionary<uint, PendingReply> _pending = new();
    private Exception? _failure;
    private int _nextId;

    private RemoteConnection(RemoteClientOptions options, Socket socket, Stream stream, PipeReader reader, PipeWriter writer, Welcome welcome)
    {
        _options = options;
        _socket = socket;
        _stream = stream;
        _reader = reader;
        _writer = writer;
        Welcome = welcome;
        _inFlight = new SemaphoreSlim(welcome.MaxInFlight, welcome.MaxInFlight);
        _ = Task.Run(ReceiveLoopAsync);
    }

    public Welcome Welcome { get; }

    public string Peer => _options.Peer;

    public bool IsAlive => Volatile.Read(ref _failure) is null;

    /// <summary>Connects, speaks TLS if asked, and says hello.</summary>
    /// <exception cref="IOException">The server cannot be reached, the TLS handshake failed, or the server broke the handshake.</exception>
    /// <exception cref="UnauthorizedAccessException">The server refused this client's token or certificate.</exception>
    public static RemoteConnection Connect(RemoteClientOptions options) =>
        Task.Run(() => ConnectAsync(options)).GetAwaiter().GetResult();

    private static async Task<RemoteConnection> ConnectAsync(RemoteClientOptions options)
    {
        string peer = options.Peer;
        using var deadline = new CancellationTokenSource(options.ConnectTimeout);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        Stream? stream = null;
        try
        {
            try
            {
                await socket.ConnectAsync(options.Host, options.Port, deadline.Token).ConfigureAwait(false);
            }
            catch (SocketException e)
            {
                throw new RemoteConnectionLostException($"{peer}: cannot connect: {e.Message}.", e);
            }
            catch (OperationCanceledException e)
            {
                throw new RemoteConnectionLostException($"{peer}: no connection within {options.ConnectTimeout.TotalSeconds:0.#} s.", e);
            }
            stream = new NetworkStream(socket, ownsSocket: true);
            if (options.UsesTls)
                stream = await AuthenticateAsync(options, stream, deadline.Token).ConfigureAwait(false);

            var reader = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 256 * 1024, minimumReadSize: 64 * 1024, leaveOpen: true));
            var writer = PipeWriter.Create(stream, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024, leaveOpen: true));
            var hello = new Hello(RemoteProtocol.MinVersion, RemoteProtocol.MaxVersion, options.Compression, options.Token ?? "", Truncate(options.ClientName, RemoteProtocol.MaxNameBytes / 4));
            var helloBytes = hello.Encode();
            FrameWriter.WriteHeader(writer, MessageType.Hello, 0, helloBytes.Length);
            writer.Write(helloBytes);
            try
            {
                await writer.FlushAsync(deadline.Token).ConfigureAwait(false);
                var (header, payload) = await ReadHandshakeFrameAsync(reader, peer, options, deadline.Token).ConfigureAwait(false);
                if (header.Type == MessageType.Error)
                {
                    var (code, message) = FrameWriter.ParseError(payload);
                    if (code == RemoteErrorCode.Unauthorized)
                        throw new UnauthorizedAccessException($"{peer} refused this client: {message}");
                    throw new RemoteConnectionLostException($"{peer} refused the connection ({code}): {message}");
                }
                if (header.Type != MessageType.Welcome)
                    throw new InvalidDataException($"{peer}: the server answered hello with a message of type {(byte)header.Type}; expected a Welcome.");
                var welcome = Welcome.Decode(payload);
                if (welcome.Version < RemoteProtocol.MinVersion || welcome.Version > RemoteProtocol.MaxVersion)
                    throw new InvalidDataException($"{peer}: the server chose protocol version {welcome.Version}; this client speaks {RemoteProtocol.MinVersion}..{RemoteProtocol.MaxVersion}.");
                if (welcome.Compression != PageCompression.None && !options.Compression.Contains(welcome.Compression))
                    throw new InvalidDataException($"{peer}: the server chose {welcome.Compression} compression, which this client did not offer.");
                return new RemoteConnection(options, socket, stream, reader, writer, welcome);
            }
            catch (OperationCanceledException e)
            {
                throw new RemoteConnectionLostException($"{peer}: no welcome within {options.ConnectTimeout.TotalSeconds:0.#} s of connecting.", e);
            }
        }
        catch
        {
            if (stream is not null)
                await stream.DisposeAsync().ConfigureAwait(false);
            socket.Dispose();
            throw;
        }
    }

    private static string Truncate(string text, int length) => text.Length <= length ? text : text[..length];

    private static async Task<(FrameHeader Header, byte[] Payload)> ReadHandshakeFrameAsync(PipeReader reader, string peer, RemoteClientOptions options, CancellationToken cancellationToken)
    {
        while (true)
        {
            ReadResult result;
            try
            {
                result = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw new RemoteConnectionLostException(ClosedDuringHandshake(peer, options, e.Message), e);
            }
            var buffer = result.Buffer;
            FrameHeader header;
            ReadOnlySequence<byte> payload;
            bool whole;
            try
            {
                whole = FrameHeader.TryTake(ref buffer, RemoteProtocol.MaxHandshakeFrame, peer, out header, out payload);
            }
            catch (ProtocolViolationException e)
            {
                throw new InvalidDataException($"{e.Message} (is {peer} an Introspect server?)", e);
            }
            if (whole)
            {
                var bytes = payload.ToArray();
                reader.AdvanceTo(buffer.Start);
                return (header, bytes);
            }
            if (result.IsCompleted)
                throw new RemoteConnectionLostException(ClosedDuringHandshake(peer, options, null));
            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private static string ClosedDuringHandshake(string peer, RemoteClientOptions options, string? detail)
    {
        string hint = options.UsesTls
            ? " (a server that requires client certificates closes on one it does not trust: see its log)"
            : " (a server with TLS closes on a plain client: add tls=on)";
        return $"{peer} closed the connection during the handshake{(detail is null ? "" : $": {detail}")}{hint}.";
    }

    private static async Task<Stream> AuthenticateAsync(RemoteClientOptions options, Stream stream, CancellationToken cancellationToken)
    {
        string? problem = null;
        var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
        try
        {
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = options.ServerName ?? options.Host,
                ClientCertificates = options.ClientCertificate is { } own ? [own] : null,
                LocalCertificateSelectionCallback = options.ClientCertificate is { } chosen ? (_, _, _, _, _) => chosen : null,
                RemoteCertificateValidationCallback = (_, certificate, chain, errors) => ValidateServer(options, certificate, chain, errors, out problem),
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            }, cancellationToken).ConfigureAwait(false);
            return ssl;
        }
        catch (Exception e) when (e is AuthenticationException or IOException)
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw new RemoteConnectionLostException($"{options.Peer}: TLS handshake failed: {problem ?? e.Message}", e);
        }
        catch (OperationCanceledException e)
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw new RemoteConnectionLostException($"{options.Peer}: no TLS handshake within {options.ConnectTimeout.TotalSeconds:0.#} s.", e);
        }
    }

    /// <summary>Judges the server's certificate: a pinned fingerprint, else the given roots, else the system's store; always the name, unless pinned.</summary>
    private static bool ValidateServer(RemoteClientOptions options, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors, out string? problem)
    {
        problem = null;
        if (certificate is null)
        {
            problem = "the server presented no certificate";
            return false;
        }
        using var presented = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        if (options.ServerFingerprint is { } pinned)
        {
            string actual = Convert.ToHexString(SHA256.HashData(presented.RawData));
            string wanted = pinned.Replace(":", "", StringComparison.Ordinal).Trim();
            if (string.Equals(actual, wanted, StringComparison.OrdinalIgnoreCase))
                return true;
            problem = $"the server's certificate {presented.Subject} has SHA-256 fingerprint {actual}, not the pinned {wanted.ToUpperInvariant()}";
            return false;
        }
        if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
        {
            problem = $"the server's certificate {presented.Subject} is not for the name '{options.ServerName ?? options.Host}' (give servername=NAME, or pin it with fingerprint=SHA256)";
            return false;
        }
        if (options.TrustedCertificates is { Count: > 0 } roots)
        {
            using var verifier = new X509Chain();
            verifier.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            verifier.ChainPolicy.CustomTrustStore.AddRange(roots);
            verifier.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            if (chain is not null)
                verifier.ChainPolicy.ExtraStore.AddRange(chain.ChainElements.Select(e => e.Certificate).ToArray());
            if (verifier.Build(presented))
                return true;
            string status = string.Join("; ", verifier.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct());
            problem = $"the server's certificate {presented.Subject} is not issued by the trusted certificates given in ca= ({status})";
            return false;
        }
        if (errors == SslPolicyErrors.None)
            return true;
        problem = $"the server's certificate {presented.Subject} is not trusted by this system ({errors}); give ca=FILE with the server's certificate or its CA, or pin it with fingerprint=SHA256";
        return false;
    }

    /// <summary>Sends one request and registers <paramref name="reply"/> for its answer; returns once the request is on the wire.</summary>
    /// <exception cref="RemoteConnectionLostException">The connection is dead or died while sending.</exception>
    public void Send(MessageType type, IRequestBody body, PendingReply reply)
    {
        ThrowIfDead();
        if (!_inFlight.Wait(_options.Timeout))
        {
            Kill(new TimeoutException($"no reply freed a request slot within {_options.Timeout.TotalSeconds:0.#} s"));
            ThrowIfDead();
        }
        uint id = (uint)Interlocked.Increment(ref _nextId);
        if (id == 0)
            id = (uint)Interlocked.Increment(ref _nextId);
        _pending[id] = reply;
        // A connection killed between the check above and the registration has already swept the table: sweep this one ourselves.
        if (!IsAlive)
        {
            Settle(id, static (r, e) => r.Fail(e!), Lost());
            ThrowIfDead();
        }
        _writeLock.Wait();
        try
        {
            ThrowIfDead();
            FrameWriter.WriteHeader(_writer, type, id, body.Length);
            body.WriteTo(_writer);
            var flush = _writer.FlushAsync();
            FlushResult flushed;
            if (flush.IsCompleted)
            {
                flushed = flush.Result;
            }
            else
            {
                var pending = flush.AsTask();
                if (!pending.Wait(_options.Timeout))
                    throw new TimeoutException($"the server took no data for {_options.Timeout.TotalSeconds:0.#} s");
                flushed = pending.Result;
            }
            if (flushed.IsCompleted)
                throw new IOException("the connection is closed");
        }
        catch (Exception e) when (e is IOException or TimeoutException or ObjectDisposedException or InvalidOperationException or AggregateException or SocketException)
        {
            Kill(e is AggregateException { InnerException: { } inner } ? inner : e);
            ThrowIfDead();
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Waits for <paramref name="replies"/> to settle by <paramref name="deadline"/>; past it the connection is killed and they fail.</summary>
    public void Wait(ReadOnlySpan<PendingReply> replies, DateTime deadline)
    {
        foreach (var reply in replies)
        {
            var remaining = deadline - DateTime.UtcNow;
            if (remaining > TimeSpan.Zero && WaitQuietly(reply.Completion, remaining))
                continue;
            Kill(new TimeoutException($"no reply within {_options.Timeout.TotalSeconds:0.#} s"));
            break;
        }
        // Every reply settles once the connection is dead; one being delivered right now is waited for, so that no
        // reply writes into the caller's buffers after the caller has returned.
        foreach (var reply in replies)
            WaitQuietly(reply.Completion, System.Threading.Timeout.InfiniteTimeSpan);
    }

    /// <summary>Waits for a task to finish, successfully or not; the caller looks at the outcome.</summary>
    private static bool WaitQuietly(Task task, TimeSpan timeout)
    {
        if (task.IsCompleted)
            return true;
        try
        {
            return task.Wait(timeout);
        }
        catch (AggregateException)
        {
            return true;
        }
    }

    private void ThrowIfDead()
    {
        if (!IsAlive)
            throw Lost();
    }

    private RemoteConnectionLostException Lost()
    {
        var failure = Volatile.Read(ref _failure);
        return failure as RemoteConnectionLostException
            ?? new RemoteConnectionLostException($"{Peer}: the connection was lost: {failure?.Message ?? "closed"}", failure);
    }

    private async Task ReceiveLoopAsync()
    {
        try
        {
            while (true)
            {
                var result = await _reader.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                while (FrameHeader.TryTake(ref buffer, Welcome.MaxFrameSize, Peer, out var header, out var payload))
                    Dispatch(header, payload);
                if (result.IsCompleted)
                    throw new IOException(buffer.IsEmpty ? "the server closed the connection" : "the connection ended inside a frame");
                _reader.AdvanceTo(buffer.Start, buffer.End);
            }
        }
        catch (ProtocolViolationException e)
        {
            Kill(new InvalidDataException(e.Message, e));
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ObjectDisposedException or SocketException or InvalidOperationException or OperationCanceledException)
        {
            Kill(e);
        }
        finally
        {
            await _reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    private void Dispatch(FrameHeader header, in ReadOnlySequence<byte> payload)
    {
        if (header.RequestId == 0)
        {
            // The server speaks to the connection itself only to end it, and says why.
            string reason = "the server sent a message outside any request";
            if (header.Type == MessageType.Error)
            {
                try
                {
                    reason = FrameWriter.ParseError(payload.ToArray()).Message;
                }
                catch (InvalidDataException e)
                {
                    reason = e.Message;
                }
            }
            throw new IOException($"the server closed the connection: {reason}");
        }
        if (!_pending.TryRemove(header.RequestId, out var reply))
            return;
        try
        {
            reply.Deliver(header.Type, payload, Peer);
        }
        finally
        {
            _inFlight.Release();
        }
    }

    private void Settle(uint id, Action<PendingReply, Exception?> settle, Exception? exception)
    {
        if (_pending.TryRemove(id, out var reply))
        {
            settle(reply, exception);
            _inFlight.Release();
        }
    }

    /// <summary>Ends the connection for <paramref name="reason"/>; every waiting request fails with it.</summary>
    public void Kill(Exception reason)
    {
        var lost = reason as RemoteConnectionLostException
            ?? new RemoteConnectionLostException($"{Peer}: the connection was lost: {reason.Message}", reason) { TimedOut = reason is TimeoutException };
        if (Interlocked.CompareExchange(ref _failure, lost, null) is not null)
            return;
        _socket.Dispose();
        foreach (var id in _pending.Keys)
            Settle(id, static (r, e) => r.Fail(e!), lost);
    }

    public void Dispose()
    {
        // A FIN first: closing a socket with a receive pending resets the connection, which the server would log as a failure.
        try
        {
            _socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
        Kill(new IOException("the connector was closed"));
        _stream.Dispose();
    }
}
