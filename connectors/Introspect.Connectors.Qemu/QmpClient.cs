using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Introspect.Connectors.Qemu;

/// <summary>A QMP session over a unix socket: the greeting, <c>qmp_capabilities</c>, then one command at a time.</summary>
/// <remarks>
/// QEMU serves one client per QMP socket at a time, so sessions are opened per use and closed at once. Events that
/// arrive between replies are skipped. Every wait is bounded by <see cref="Timeout"/>.
/// </remarks>
internal sealed class QmpClient : IDisposable
{
    /// <summary>The longest line accepted from QEMU (an <c>info mtree -f</c> reply is tens of kilobytes).</summary>
    private const int MaxLineChars = 16 << 20;

    private readonly Socket _socket;
    private readonly StreamReader _reader;
    private readonly NetworkStream _stream;

    private QmpClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false) { ReadTimeout = (int)Timeout.TotalMilliseconds, WriteTimeout = (int)Timeout.TotalMilliseconds };
        _reader = new StreamReader(_stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: false, bufferSize: 65536);
    }

    public static TimeSpan Timeout { get; } = TimeSpan.FromSeconds(10);

    /// <summary>Connects and negotiates, or says why not.</summary>
    public static QmpClient? TryConnect(string path, out string? problem)
    {
        problem = null;
        if (!File.Exists(path))
        {
            problem = $"no socket at {path}";
            return null;
        }
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        QmpClient? client = null;
        try
        {
            var connect = socket.ConnectAsync(new UnixDomainSocketEndPoint(path));
            if (!connect.Wait(Timeout))
            {
                problem = $"{path} did not accept a connection within {Timeout.TotalSeconds:0} s";
                socket.Dispose();
                return null;
            }
            client = new QmpClient(socket);
            var greeting = client.ReadMessage();
            if (greeting?["QMP"] is null)
                throw new IOException("no QMP greeting");
            client.Execute("qmp_capabilities");
            return client;
        }
        catch (Exception e) when (e is IOException or SocketException or AggregateException or JsonException or QmpException)
        {
            problem = $"{path}: {(e is AggregateException { InnerException: { } inner } ? inner.Message : e.Message)}";
            if (client is not null)
                client.Dispose();
            else
                socket.Dispose();
            return null;
        }
    }

    /// <summary>Runs a command and returns its <c>return</c> value.</summary>
    /// <exception cref="QmpException">QEMU answered with an error.</exception>
    /// <exception cref="IOException">The connection failed or timed out.</exception>
    public JsonNode? Execute(string command, JsonObject? arguments = null)
    {
        var request = new JsonObject { ["execute"] = command };
        if (arguments is not null)
            request["arguments"] = arguments;
        var bytes = Encoding.UTF8.GetBytes(request.ToJsonString() + "\n");
        _stream.Write(bytes);
        while (true)
        {
            var message = ReadMessage() ?? throw new IOException($"QMP closed the connection during '{command}'.");
            if (message["event"] is not null)
                continue;
            if (message["error"] is JsonObject error)
                throw new QmpException($"QMP '{command}' failed: {error["desc"]?.GetValue<string>() ?? error.ToJsonString()}");
            if (message.AsObject().TryGetPropertyValue("return", out var value))
                return value;
        }
    }

    /// <summary>Runs a human monitor command (<c>info mtree -f</c>, <c>gpa2hva</c>) and returns its text.</summary>
    public string Human(string commandLine) =>
        Execute("human-monitor-command", new JsonObject { ["command-line"] = commandLine })?.GetValue<string>() ?? "";

    private JsonNode? ReadMessage()
    {
        var line = new StringBuilder();
        while (true)
        {
            int c = _reader.Read();
            if (c < 0)
                return line.Length == 0 ? null : JsonNode.Parse(line.ToString());
            if (c == '\n')
            {
                if (line.Length > 0 && line.ToString().Trim().Length > 0)
                    return JsonNode.Parse(line.ToString());
                line.Clear();
                continue;
            }
            if (line.Length >= MaxLineChars)
                throw new IOException($"QMP sent a line longer than {MaxLineChars} characters.");
            line.Append((char)c);
        }
    }

    public void Dispose()
    {
        _reader.Dispose();
        _stream.Dispose();
        _socket.Dispose();
    }
}

/// <summary>QEMU refused a QMP command.</summary>
internal sealed class QmpException(string message) : Exception(message);
