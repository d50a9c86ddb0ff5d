using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Introspect.Symbols.Tests;

/// <summary>How the test server answers a path.</summary>
internal enum Behavior
{
    /// <summary>200 with Content-Length and the whole body.</summary>
    Normal,
    /// <summary>200 without Content-Length: the body ends when the connection closes.</summary>
    NoLength,
    /// <summary>200 announcing the whole length, then half the body and a closed connection.</summary>
    Truncated,
    /// <summary>200 without Content-Length, half the body, then a closed connection: only a check of the content tells.</summary>
    TruncatedNoLength,
    /// <summary>Accepts the request and never answers.</summary>
    NoResponse,
    /// <summary>Sends the headers and a little of the body, then nothing more.</summary>
    Stall,
    /// <summary>503 on the first request, the whole body after.</summary>
    FailOnce,
    /// <summary>The given status, no body.</summary>
    Status,
}

/// <summary>A small HTTP/1.1 server on 127.0.0.1 for symbol store tests: fixed routes, each with a behavior, and a
/// count of requests per path. Every connection is answered once and closed.</summary>
internal sealed class TestSymbolServer : IDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly ConcurrentDictionary<string, (Behavior Behavior, byte[] Body, int Status)> _routes = new(StringComparer.OrdinalIgnoreCase);

    public TestSymbolServer()
    {
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _loop = Task.Run(AcceptLoop);
    }

    public string Url => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    public ConcurrentDictionary<string, int> Requests { get; } = new(StringComparer.OrdinalIgnoreCase);

    public int TotalRequests => Requests.Values.Sum();

    public void Serve(string path, byte[] body, Behavior behavior = Behavior.Normal) => _routes[path] = (behavior, body, 200);

    public void Answer(string path, int status) => _routes[path] = (Behavior.Status, [], status);

    public int RequestsFor(string path) => Requests.GetValueOrDefault(path);

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            _ = Task.Run(() => Handle(client));
        }
    }

    private async Task Handle(TcpClient client)
    {
        using var _ = client;
        try
        {
            var stream = client.GetStream();
            var request = new StringBuilder();
            var buffer = new byte[4096];
            while (!request.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                int read = await stream.ReadAsync(buffer, _stop.Token);
                if (read == 0)
                    return;
                request.Append(Encoding.ASCII.GetString(buffer, 0, read));
            }
            var path = Uri.UnescapeDataString(request.ToString().Split(' ')[1]);
            int count = Requests.AddOrUpdate(path, 1, (_, n) => n + 1);
            if (!_routes.TryGetValue(path, out var route))
            {
                await Write(stream, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                return;
            }
            var (behavior, body, status) = route;
            switch (behavior)
            {
                case Behavior.Status:
                    await Write(stream, $"HTTP/1.1 {status} Test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    return;
                case Behavior.NoResponse:
                    await Task.Delay(Timeout.Infinite, _stop.Token);
                    return;
                case Behavior.FailOnce when count == 1:
                    await Write(stream, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    return;
                case Behavior.Stall:
                    await Write(stream, $"HTTP/1.1 200 OK\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n");
                    await stream.WriteAsync(body.AsMemory(0, Math.Min(100, body.Length)), _stop.Token);
                    await stream.FlushAsync(_stop.Token);
                    await Task.Delay(Timeout.Infinite, _stop.Token);
                    return;
                case Behavior.Truncated:
                    await Write(stream, $"HTTP/1.1 200 OK\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n");
                    await stream.WriteAsync(body.AsMemory(0, body.Length / 2), _stop.Token);
                    return;
                case Behavior.TruncatedNoLength:
                    await Write(stream, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                    await stream.WriteAsync(body.AsMemory(0, body.Length / 2), _stop.Token);
                    return;
                case Behavior.NoLength:
                    await Write(stream, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                    await stream.WriteAsync(body, _stop.Token);
                    return;
                default:
                    await Write(stream, $"HTTP/1.1 200 OK\r\nContent-Length: {body.Length}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n");
                    await stream.WriteAsync(body, _stop.Token);
                    return;
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
        {
            // The client went away, or the server is stopping.
        }
    }

    private async Task Write(NetworkStream stream, string text) => await stream.WriteAsync(Encoding.ASCII.GetBytes(text), _stop.Token);

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        try
        {
            _loop.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }
        _stop.Dispose();
    }
}
