using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Introspect.Abi;
using Introspect.Remote.Protocol;

namespace Introspect.Remote.Server;

/// <summary>One client's connection: handshake, then a loop that reads frames and answers each on the thread pool.</summary>
/// <remarks>
/// Whatever the client does, the harm stays here: frames longer than the limit, frames that stop halfway,
/// replies it does not read, or a disconnect while its batches run all end this session and no other. A frame
/// whose payload is wrong but whose length is honest gets an error reply and the session goes on, up to a few
/// such mistakes.
/// </remarks>
internal sealed partial class ServerSession
{
    private const int MaxProtocolErrors = 8;
    private static readonly Oid ClientAuthentication = new("1.3.6.1.5.5.7.3.2");

    private readonly RemoteServer _server;
    private readonly RemoteServerOptions _options;
    private readonly Socket _socket;
    private readonly CancellationTokenSource _closing;
    private readonly SemaphoreSlim _inFlight;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly AccessLog _log = new();
    private readonly Stopwatch _age = Stopwatch.StartNew();
    private readonly ProcessMemoryCache _processes;
    private Stream? _stream;
    private PipeReader? _reader;
    private PipeWriter? _writer;
    private PageCompression _compression;
    private string _closeReason = "disconnected";
    private string? _certificateProblem;
    private int _pending;
    private bool _broken;
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ServerSession(RemoteServer server, Socket socket, ulong id, string peer)
    {
        _server = server;
        _options = server.Options;
        _socket = socket;
        Id = id;
        Peer = peer;
        _closing = CancellationTokenSource.CreateLinkedTokenSource(server.Stopping);
        _inFlight = new SemaphoreSlim(_options.MaxInFlight, _options.MaxInFlight);
        _processes = new ProcessMemoryCache(server);
    }

    public ulong Id { get; }

    public string Peer { get; }

    public async Task RunAsync()
    {
        bool welcomed = false;
        try
        {
            _socket.NoDelay = true;
            _stream = new NetworkStream(_socket, ownsSocket: true);
            if (!await HandshakeAsync().ConfigureAwait(false))
                return;
            welcomed = true;
            await ServeAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException or AuthenticationException or InvalidDataException)
        {
            if (_server.Stopping.IsCancellationRequested)
                _closeReason = "the server stopped";
            else if (_closeReason == "disconnected")
                _closeReason = $"connection failed: {e.Message}";
        }
        finally
        {
            await CloseAsync(welcomed).ConfigureAwait(false);
        }
    }

    /// <summary>TLS if configured, then hello and welcome; false when the client was turned away.</summary>
    private async Task<bool> HandshakeAsync()
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_closing.Token);
        deadline.CancelAfter(_options.HandshakeTimeout);
        string authentication = "anonymous";
        try
        {
            if (_options.Certificate is { } certificate)
            {
                var ssl = new SslStream(_stream!, leaveInnerStreamOpen: false);
                _stream = ssl;
                await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                {
                    ServerCertificate = certificate,
                    ClientCertificateRequired = _options.ClientCertificateAuthorities is { Count: > 0 },
                    RemoteCertificateValidationCallback = ValidateClientCertificate,
                    CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                }, deadline.Token).ConfigureAwait(false);
                if (ssl.RemoteCertificate is { } clientCertificate)
                    authentication = $"certificate {clientCertificate.Subject}";
                authentication += $", {ssl.SslProtocol}";
            }
        }
        catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException)
        {
            string reason = _certificateProblem
                ?? (e is OperationCanceledException ? $"no TLS handshake within {_options.HandshakeTimeout.TotalSeconds:0.#} s" : $"TLS handshake failed: {e.Message}");
            ServerLog.Refused(_server.Logger, Peer, reason);
            _closeReason = "refused";
            return false;
        }

        _reader = PipeReader.Create(_stream!, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 16 * 1024, leaveOpen: true));
        _writer = PipeWriter.Create(_stream!, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024, leaveOpen: true));

        OwnedFrame? frame;
        try
        {
            frame = await ReadFrameAsync(RemoteProtocol.MaxHandshakeFrame, _options.HandshakeTimeout, deadline.Token).ConfigureAwait(false);
        }
        catch (ProtocolViolationException e)
        {
            await RefuseAsync(e.Code, e.Message).ConfigureAwait(false);
            return false;
        }
        catch (OperationCanceledException) when (!_server.Stopping.IsCancellationRequested)
        {
            ServerLog.Refused(_server.Logger, Peer, $"no hello within {_options.HandshakeTimeout.TotalSeconds:0.#} s");
            _closeReason = "refused";
            return false;
        }
        if (frame is null)
        {
            ServerLog.Refused(_server.Logger, Peer, "closed the connection before its hello");
            _closeReason = "refused";
            return false;
        }
        using (frame)
        {
            if (frame.Header.Type != MessageType.Hello)
            {
                await RefuseAsync(RemoteErrorCode.Malformed, $"the first frame must be a Hello (type {(byte)MessageType.Hello}); this one is type {(byte)frame.Header.Type}.").ConfigureAwait(false);
                return false;
            }
            Hello hello;
            try
            {
                hello = Hello.Decode(frame.Payload);
            }
            catch (InvalidDataException e)
            {
                await RefuseAsync(RemoteErrorCode.Malformed, e.Message).ConfigureAwait(false);
                return false;
            }
            if (hello.MaxVersion < RemoteProtocol.MinVersion || hello.MinVersion > RemoteProtocol.MaxVersion)
            {
                await RefuseAsync(RemoteErrorCode.UnsupportedVersion,
                    $"the server speaks protocol versions {RemoteProtocol.MinVersion}..{RemoteProtocol.MaxVersion}; the client speaks {hello.MinVersion}..{hello.MaxVersion}.").ConfigureAwait(false);
                return false;
            }
            if (_options.Token is { } token)
            {
                if (hello.Token.Length == 0)
                {
                    await RefuseAsync(RemoteErrorCode.Unauthorized, "the server requires a token and the client gave none.").ConfigureAwait(false);
                    return false;
                }
                if (!TokensEqual(token, hello.Token))
                {
                    await RefuseAsync(RemoteErrorCode.Unauthorized, "the token is wrong.").ConfigureAwait(false);
                    return false;
                }
                authentication = authentication == "anonymous" ? "token" : $"token, {authentication}";
            }
            ushort version = Math.Min(hello.MaxVersion, RemoteProtocol.MaxVersion);
            _compression = hello.Codecs.FirstOrDefault(c => c == PageCompression.None || _options.Compression.Contains(c));
            var features = ServerFeatures.None;
            if (_options.AllowWrite && !_server.Memory.Metadata.ReadOnly)
                features |= ServerFeatures.Writable;
            if (_server.OperatingSystem is { } system)
            {
                features |= ServerFeatures.OperatingSystem;
                if (system is IKernelSymbols)
                    features |= ServerFeatures.KernelSymbols;
                if (system is IKernelTypes)
                    features |= ServerFeatures.KernelTypes;
            }
            var welcome = new Welcome(version, _compression, features, _options.MaxFrameSize, _options.MaxBatchEntries, _options.MaxInFlight, Id, "introspect serve");
            await SendAsync(MessageType.Welcome, 0, welcome.Encode()).ConfigureAwait(false);
            ServerLog.Connected(_server.Logger, Id, Peer, hello.ClientName, authentication, version, _compression.ToString().ToLowerInvariant());
            return true;
        }
    }

    private static bool TokensEqual(string expected, string given)
    {
        // Hashing first makes the comparison's time independent of where the strings differ and of their lengths.
        Span<byte> a = stackalloc byte[32];
        Span<byte> b = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(expected), a);
        SHA256.HashData(Encoding.UTF8.GetBytes(given), b);
        return CryptographicOperations.FixedTimeEquals(a, b);
    }

    private bool ValidateClientCertificate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        var authorities = _options.ClientCertificateAuthorities;
        if (authorities is not { Count: > 0 })
            return true;
        if (certificate is null)
        {
            _certificateProblem = "it presented no client certificate, which this server requires";
            return false;
        }
        using var presented = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        using var verifier = new X509Chain();
        verifier.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        verifier.ChainPolicy.CustomTrustStore.AddRange(authorities);
        verifier.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        verifier.ChainPolicy.ApplicationPolicy.Add(ClientAuthentication);
        if (chain is not null)
            verifier.ChainPolicy.ExtraStore.AddRange(chain.ChainElements.Select(e => e.Certificate).ToArray());
        if (verifier.Build(presented))
            return true;
        string status = string.Join("; ", verifier.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct());
        _certificateProblem = $"its client certificate {presented.Subject} is not issued by an authority this server trusts ({status})";
        return false;
    }

    private async Task RefuseAsync(RemoteErrorCode code, string message)
    {
        ServerLog.Refused(_server.Logger, Peer, message);
        _closeReason = "refused";
        try
        {
            await SendAsync(MessageType.Error, 0, FrameWriter.ErrorPayload(code, message)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // The client is gone already; the refusal is logged.
        }
    }

    /// <summary>The request loop: each frame is answered on the thread pool while the next one is read.</summary>
    private async Task ServeAsync()
    {
        while (true)
        {
            OwnedFrame? frame;
            try
            {
                frame = await ReadFrameAsync(_options.MaxFrameSize, _options.IdleTimeout, _closing.Token).ConfigureAwait(false);
            }
            catch (ProtocolViolationException e)
            {
                // The frame's length cannot be trusted, so neither can anything after it.
                _log.ProtocolError();
                ServerLog.ProtocolError(_server.Logger, Id, Peer, e.Message);
                await RefuseAsyncQuietly(e.RequestId, e.Code, e.Message).ConfigureAwait(false);
                _closeReason = "protocol error";
                return;
            }
            catch (OperationCanceledException) when (!_server.Stopping.IsCancellationRequested && !_closing.IsCancellationRequested)
            {
                return;
            }
            if (frame is null)
                return;
            _log.Request();
            await _inFlight.WaitAsync(_closing.Token).ConfigureAwait(false);
            Interlocked.Increment(ref _pending);
            _ = Task.Run(() => AnswerAsync(frame));
            if (_log.ProtocolErrors >= MaxProtocolErrors)
            {
                _closeReason = $"{MaxProtocolErrors} protocol errors";
                return;
            }
        }
    }

    private async Task RefuseAsyncQuietly(uint requestId, RemoteErrorCode code, string message)
    {
        try
        {
            await SendAsync(MessageType.Error, requestId, FrameWriter.ErrorPayload(code, message)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
    }

    private async Task AnswerAsync(OwnedFrame frame)
    {
        Reply reply;
        try
        {
            reply = Answer(frame);
        }
        catch (ProtocolViolationException e)
        {
            _log.ProtocolError();
            ServerLog.ProtocolError(_server.Logger, Id, Peer, e.Message);
            reply = Reply.Error(frame.Header.RequestId, e.Code, e.Message);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The served chain failed (a connector's own error, a lost remote beneath): this request fails, the server goes on.
            ServerLog.ChainFailed(_server.Logger, Id, Peer, frame.Header.Type.ToString(), e.Message, e);
            reply = Reply.Error(frame.Header.RequestId, RemoteErrorCode.Internal, $"the served chain failed: {e.Message}");
        }
        finally
        {
            frame.Dispose();
        }
        try
        {
            using (reply)
                await SendAsync(reply.Type, reply.RequestId, reply.Payload).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException or TimeoutException)
        {
            if (e is TimeoutException)
                _closeReason = $"did not take a reply within {_options.StallTimeout.TotalSeconds:0.#} s";
            Abort();
        }
        finally
        {
            _inFlight.Release();
            if (Interlocked.Decrement(ref _pending) == 0 && _closing.IsCancellationRequested)
                _drained.TrySetResult();
        }
    }

    /// <summary>Reads one whole frame; null at a clean end of stream.</summary>
    /// <remarks>
    /// Waiting for a frame to begin is bounded by <paramref name="idle"/>; once its first bytes are in, every
    /// further wait is bounded by the stall timeout, so a client that sends half a frame and stops is cut off.
    /// </remarks>
    private async Task<OwnedFrame?> ReadFrameAsync(int maxPayload, TimeSpan idle, CancellationToken cancellationToken)
    {
        var reader = _reader!;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(idle);
        bool partial = false;
        while (true)
        {
            ReadResult result;
            try
            {
                result = await reader.ReadAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                _closeReason = partial ? $"stalled mid-frame for {_options.StallTimeout.TotalSeconds:0.#} s" : $"idle for {idle.TotalSeconds:0.#} s";
                throw;
            }
            var buffer = result.Buffer;
            if (FrameHeader.TryTake(ref buffer, maxPayload, $"client #{Id} {Peer}", out var header, out var payload))
            {
                var frame = OwnedFrame.Copy(header, payload);
                reader.AdvanceTo(buffer.Start);
                return frame;
            }
            if (result.IsCompleted)
            {
                if (buffer.Length == 0)
                    return null;
                throw new ProtocolViolationException(RemoteErrorCode.Malformed, 0, $"the connection ended inside a frame ({buffer.Length} bytes of it arrived).");
            }
            reader.AdvanceTo(buffer.Start, buffer.End);
            if (buffer.Length > 0)
            {
                // Part of a frame is in: from here on the client must keep its bytes coming.
                partial = true;
                timeout.CancelAfter(_options.StallTimeout);
            }
        }
    }

    /// <summary>Writes one frame; a client that leaves it unread past the stall timeout is cut off.</summary>
    private Task SendAsync(MessageType type, uint requestId, ReadOnlyMemory<byte> payload) => SendAsync(type, requestId, payload, _closing.Token);

    private async Task SendAsync(MessageType type, uint requestId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        var writer = _writer!;
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // A flush that was abandoned may still be pending on the writer, which must then not be touched again.
            if (_broken)
                throw new IOException("the connection is closing.");
            FrameWriter.WriteHeader(writer, type, requestId, payload.Length);
            writer.Write(payload.Span);
            var flush = writer.FlushAsync(CancellationToken.None);
            if (!flush.IsCompleted)
            {
                try
                {
                    await flush.AsTask().WaitAsync(_options.StallTimeout, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is TimeoutException or OperationCanceledException)
                {
                    _broken = true;
                    Abort();
                    throw;
                }
            }
            else
            {
                await flush.ConfigureAwait(false);
            }
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private void Abort()
    {
        try
        {
            _closing.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
        _socket.Dispose();
    }

    private async Task CloseAsync(bool welcomed)
    {
        if (welcomed && _server.Stopping.IsCancellationRequested && _writer is not null)
        {
            // Best effort, briefly: a client told why is better than one that finds a reset.
            using var quick = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            try
            {
                await SendAsync(MessageType.Error, 0, FrameWriter.ErrorPayload(RemoteErrorCode.ShuttingDown, "the server is shutting down."), quick.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException or SocketException or TimeoutException)
            {
            }
        }
        try
        {
            await _closing.CancelAsync().ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
        }
        // Requests already running finish (or fail on the closed socket) before their buffers go back.
        if (Volatile.Read(ref _pending) > 0)
            await _drained.Task.WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _socket.Dispose();
        if (_stream is not null)
            await _stream.DisposeAsync().ConfigureAwait(false);
        if (welcomed)
            ServerLog.Disconnected(_server.Logger, Id, Peer, _age.Elapsed.TotalSeconds, _closeReason, _log.Summary());
        _processes.Dispose();
        _closing.Dispose();
    }
}
