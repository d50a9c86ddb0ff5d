using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Introspect.Abi;
using Introspect.Core.Chains;
using Introspect.Remote.Server;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Introspect.Remote;

/// <summary>Serves a chain's physical memory, and the OS it ends in if any, to <c>remote</c> connectors over TCP or TLS.</summary>
/// <remarks>
/// <para>Each client gets a session of its own: its requests run side by side up to the in-flight limit, and a
/// client that stalls, floods, disconnects mid-batch or breaks the protocol loses its own connection and nothing
/// else. Physical reads from all clients run concurrently on the served memory (Introspect's memories read from
/// many threads); calls into the OS layer are made one at a time, since an OS layer need not be thread-safe.</para>
/// <para>Every client is logged when it connects (address, name, how it authenticated) and when it leaves, with
/// a summary of what it read: batches, bytes, the physical ranges touched and the processes read.</para>
/// </remarks>
public sealed class RemoteServer : IAsyncDisposable, IDisposable
{
    private readonly ConcurrentDictionary<ulong, Task> _sessions = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly ILogger _logger;
    private Socket? _listener;
    private Task? _acceptLoop;
    private long _nextSession;
    private IPEndPoint? _endPoint;
    private int _disposed;

    /// <summary>A server over <paramref name="memory"/> and, when the chain ends in one, <paramref name="system"/>; call <see cref="Start"/> to listen.</summary>
    /// <exception cref="ArgumentException">The options do not hang together (see <see cref="RemoteServerOptions.Validate"/>).</exception>
    public RemoteServer(IPhysicalMemory memory, IOperatingSystem? system, RemoteServerOptions options, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Memory = memory;
        OperatingSystem = system;
        Options = options;
        ChainDescription = options.ChainDescription;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("introspect.serve");
    }

    /// <summary>A server over an opened chain: its last physical memory and the OS it ends in, described to clients by its plugins' names.</summary>
    public static RemoteServer ForChain(OpenedChain chain, RemoteServerOptions options, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(chain);
        ArgumentNullException.ThrowIfNull(options);
        return new RemoteServer(chain.PhysicalMemory, chain.OperatingSystem, options, loggerFactory)
        {
            ChainDescription = options.ChainDescription.Length > 0 ? options.ChainDescription : string.Join(" -> ", chain.Plugins.Select(p => p.Name)),
        };
    }

    public RemoteServerOptions Options { get; }

    internal IPhysicalMemory Memory { get; }

    /// <summary>What clients are told they are served: plugin names only.</summary>
    internal string ChainDescription { get; private init; }

    internal IOperatingSystem? OperatingSystem { get; }

    /// <summary>Held around every call into the OS layer.</summary>
    internal Lock OperatingSystemLock { get; } = new();

    internal ILogger Logger => _logger;

    internal CancellationToken Stopping => _stopping.Token;

    /// <summary>Where the server listens (with the port picked when <see cref="RemoteServerOptions.Listen"/> asked for port 0).</summary>
    /// <exception cref="InvalidOperationException">The server has not been started.</exception>
    public IPEndPoint EndPoint => _endPoint ?? throw new InvalidOperationException("The server has not been started.");

    /// <summary>How many clients are connected now.</summary>
    public int ClientCount => _sessions.Count;

    /// <summary>Binds the listening socket and starts accepting clients.</summary>
    /// <exception cref="SocketException">The address cannot be bound (in use, not local, no permission).</exception>
    public void Start()
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (_listener is not null)
            throw new InvalidOperationException("The server is already started.");
        var listener = new Socket(Options.Listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (Options.Listen.AddressFamily == AddressFamily.InterNetworkV6 && Options.Listen.Address.Equals(IPAddress.IPv6Any))
                listener.DualMode = true;
            listener.Bind(Options.Listen);
            listener.Listen(Math.Min(Options.MaxClients, 512));
        }
        catch
        {
            listener.Dispose();
            throw;
        }
        _listener = listener;
        _endPoint = (IPEndPoint)listener.LocalEndPoint!;
        string endPoint = EndPoint.ToString();
        if (Options.Certificate is null && !IPAddress.IsLoopback(EndPoint.Address))
            ServerLog.PlainOnNetwork(_logger, endPoint);
        ServerLog.Listening(_logger, ChainDescription.Length > 0 ? ChainDescription : "a physical memory", endPoint,
            Options.Certificate is null ? "plain TCP" : $"TLS as {Options.Certificate.Subject}",
            Authentication(), Options.AllowWrite ? "read-write" : "read-only");
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    private string Authentication()
    {
        var ways = new List<string>();
        if (Options.Token is not null)
            ways.Add("token");
        if (Options.ClientCertificateAuthorities is { Count: > 0 })
            ways.Add("client certificates");
        return ways.Count == 0 ? "anyone who can connect" : string.Join(" and ", ways) + " required";
    }

    /// <summary>Serves until <paramref name="cancellationToken"/> is cancelled, then stops.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        if (_listener is null)
            Start();
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        await StopAsync().ConfigureAwait(false);
    }

    private async Task AcceptLoopAsync()
    {
        var listener = _listener!;
        while (!_stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            catch (ObjectDisposedException)
            {
                break;
            }
            catch (SocketException e)
            {
                // A client that reset before we accepted it; the listener itself goes on.
                ServerLog.AcceptFailed(_logger, e.Message);
                continue;
            }
            string peer = socket.RemoteEndPoint?.ToString() ?? "?";
            if (_sessions.Count >= Options.MaxClients)
            {
                ServerLog.Refused(_logger, peer, $"{Options.MaxClients} clients are connected, the most this server takes");
                socket.Dispose();
                continue;
            }
            ulong id = (ulong)Interlocked.Increment(ref _nextSession);
            var session = new ServerSession(this, socket, id, peer);
            // The session is registered before it runs, so that a stop never misses it.
            var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var run = RunSessionAsync(session, started.Task);
            _sessions[id] = run;
            started.SetResult();
        }
    }

    private async Task RunSessionAsync(ServerSession session, Task registered)
    {
        await registered.ConfigureAwait(false);
        try
        {
            await session.RunAsync().ConfigureAwait(false);
        }
        finally
        {
            _sessions.TryRemove(session.Id, out _);
        }
    }

    /// <summary>Stops listening, tells every client the server is going, and waits for their sessions to end.</summary>
    public async Task StopAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        await _stopping.CancelAsync().ConfigureAwait(false);
        _listener?.Dispose();
        if (_acceptLoop is not null)
            await _acceptLoop.ConfigureAwait(false);
        await Task.WhenAll(_sessions.Values).ConfigureAwait(false);
        if (_listener is not null)
            ServerLog.Stopped(_logger, EndPoint.ToString());
        _stopping.Dispose();
    }

    public ValueTask DisposeAsync() => new(StopAsync());

    public void Dispose() => StopAsync().GetAwaiter().GetResult();
}
