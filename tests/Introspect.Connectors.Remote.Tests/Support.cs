using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Introspect.Abi;
using Introspect.Core.Chains;
using Introspect.Core.Plugins;
using Introspect.Remote.Protocol;
using Introspect.TestSupport;
using Microsoft.Extensions.Logging;

namespace Introspect.Connectors.Remote.Tests;

/// <summary>The real guest image, opened once through the plugin host as a user's chain would, and shared by every test.</summary>
[SetUpFixture]
public sealed class ServedImage
{
    private static readonly Lock Gate = new();
    private static OpenedChain? s_chain;
    private static PluginHost? s_host;

    /// <summary>The host over the plugins built beside the tests (coredump and remote).</summary>
    public static PluginHost Host
    {
        get
        {
            lock (Gate)
                return s_host ??= PluginHost.CreateDefault([Path.Combine(AppContext.BaseDirectory, "plugins")]);
        }
    }

    /// <summary><c>coredump:path=linux-6.1-x64-128M.raw</c>, the local chain every remote one is compared with.</summary>
    public static IPhysicalMemory Memory
    {
        get
        {
            lock (Gate)
            {
                s_chain ??= Host.Open(ChainSpec.Parse($"coredump:path=\"{TestInputs.LinuxRawImage}\""));
                return s_chain.PhysicalMemory;
            }
        }
    }

    public const ulong Size = 128UL << 20;

    [OneTimeTearDown]
    public void Close()
    {
        lock (Gate)
        {
            s_chain?.Dispose();
            s_chain = null;
        }
    }
}

/// <summary>Servers and clients on the loopback address, with short timeouts so that every test ends soon.</summary>
internal static class Loopback
{
    public static IPEndPoint AnyPort => new(IPAddress.Loopback, 0);

    public static Introspect.Remote.RemoteServer Serve(IPhysicalMemory memory, Introspect.Remote.RemoteServerOptions options, IOperatingSystem? system = null, ILoggerFactory? logs = null)
    {
        var server = new Introspect.Remote.RemoteServer(memory, system, options, logs);
        server.Start();
        return server;
    }

    public static Introspect.Remote.RemoteServerOptions Anonymous(int maxFrame = 16 << 20, int maxEntries = 16384) => new()
    {
        Listen = AnyPort,
        AllowAnonymous = true,
        MaxFrameSize = maxFrame,
        MaxBatchEntries = maxEntries,
    };

    public static Introspect.Remote.RemoteClientOptions Client(Introspect.Remote.RemoteServer server, string? token = null) => new()
    {
        Host = "127.0.0.1",
        Port = server.EndPoint.Port,
        Token = token,
        Timeout = TimeSpan.FromSeconds(20),
        ConnectTimeout = TimeSpan.FromSeconds(5),
    };

    /// <summary>Waits (bounded) until <paramref name="condition"/> holds; false if it never did.</summary>
    public static bool Eventually(Func<bool> condition, int milliseconds = 10000)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(milliseconds);
        while (DateTime.UtcNow < deadline)
        {
            if (condition())
                return true;
            Thread.Sleep(20);
        }
        return condition();
    }

    /// <summary>Reads <paramref name="count"/> pages from <paramref name="start"/> in one batch.</summary>
    public static (byte[] Bytes, bool[] Ok) ReadPages(IMemory memory, IReadOnlyList<ulong> pages, MemoryFlags flags = MemoryFlags.None)
    {
        var bytes = new byte[pages.Count * 4096];
        var batch = new MemoryRequest[pages.Count];
        for (int i = 0; i < pages.Count; i++)
            batch[i] = new MemoryRequest(pages[i], bytes.AsMemory(i * 4096, 4096));
        memory.Read(batch, flags);
        return (bytes, batch.Select(r => r.Succeeded).ToArray());
    }
}

/// <summary>Log lines kept in memory, to check what the server says about its clients.</summary>
internal sealed class MemoryLog : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();

    public IReadOnlyList<string> Lines => [.. _lines];

    public ILoggerFactory Factory() => LoggerFactory.Create(builder => builder.SetMinimumLevel(LogLevel.Debug).AddProvider(this));

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void Dispose() { }

    private sealed class Logger(MemoryLog log) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            log._lines.Enqueue($"{logLevel}: {formatter(state, exception)}");
    }
}

/// <summary>A writable physical memory over an array, counting the batches it serves.</summary>
internal sealed class ArrayMemory(byte[] bytes, bool readOnly = false) : IPhysicalMemory, IConnectorHints
{
    private long _readCalls;

    public byte[] Bytes { get; } = bytes;

    public long ReadCalls => Interlocked.Read(ref _readCalls);

    public ConcurrentQueue<int> BatchSizes { get; } = new();

    public PhysicalMemoryMetadata Metadata => new((ulong)Bytes.Length - 1, (ulong)Bytes.Length, readOnly, 64);

    public MemoryMap MemoryMap { get; private set; } = MemoryMap.Linear((ulong)bytes.Length);

    public ConnectorHints Hints { get; init; } = new() { Format = "array", Architecture = MachineArchitecture.X64, DirectoryTableBase = 0x1000 };

    public void SetMemoryMap(MemoryMap map) => MemoryMap = map;

    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        Interlocked.Increment(ref _readCalls);
        BatchSizes.Enqueue(batch.Length);
        for (int i = 0; i < batch.Length; i++)
        {
            ref var request = ref batch[i];
            ulong length = (ulong)request.Buffer.Length;
            request.Succeeded = request.Address < (ulong)Bytes.Length && length <= (ulong)Bytes.Length - request.Address;
            if (request.Succeeded)
                Bytes.AsSpan((int)request.Address, (int)length).CopyTo(request.Buffer.Span);
            else if ((flags & MemoryFlags.ZeroPadOnFail) != 0)
            {
                request.Buffer.Span.Clear();
                request.Succeeded = true;
            }
        }
    }

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        if (readOnly)
            throw new NotSupportedException("read-only");
        for (int i = 0; i < batch.Length; i++)
        {
            ref var request = ref batch[i];
            ulong length = (ulong)request.Buffer.Length;
            request.Succeeded = request.Address < (ulong)Bytes.Length && length <= (ulong)Bytes.Length - request.Address;
            if (request.Succeeded)
                request.Buffer.Span.CopyTo(Bytes.AsSpan((int)request.Address));
        }
    }

    public void Dispose() { }

    public static ArrayMemory Patterned(int size)
    {
        var bytes = new byte[size];
        for (int i = 0; i < size; i += 8)
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(i), unchecked((ulong)i * 0x9E3779B97F4A7C15UL)); // a hash: wrapping is the point
        return new ArrayMemory(bytes);
    }
}

/// <summary>Counts the batches that reach a memory, to prove that a client's batch stays one batch.</summary>
internal sealed class CountingMemory(IPhysicalMemory inner) : IPhysicalMemory
{
    private long _calls;

    public long Calls => Interlocked.Read(ref _calls);

    public ConcurrentQueue<int> BatchSizes { get; } = new();

    public PhysicalMemoryMetadata Metadata => inner.Metadata;

    public MemoryMap MemoryMap => inner.MemoryMap;

    public void SetMemoryMap(MemoryMap map) => inner.SetMemoryMap(map);

    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        Interlocked.Increment(ref _calls);
        BatchSizes.Enqueue(batch.Length);
        inner.Read(batch, flags);
    }

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => inner.Write(batch, flags);

    public void Dispose() { }
}

/// <summary>A hand-driven client speaking the wire protocol byte by byte, to send what no well-behaved client would.</summary>
internal sealed class RawClient : IDisposable
{
    private readonly TcpClient _client;
    private readonly NetworkStream _stream;

    public RawClient(Introspect.Remote.RemoteServer server)
    {
        _client = new TcpClient();
        _client.Connect(IPAddress.Loopback, server.EndPoint.Port);
        _client.NoDelay = true;
        _stream = _client.GetStream();
        _stream.ReadTimeout = 10000;
    }

    public void Send(byte[] bytes) => _stream.Write(bytes);

    public void SendFrame(MessageType type, uint id, byte[] payload) => Send(Frame(type, id, payload));

    public static byte[] Frame(MessageType type, uint id, byte[] payload, uint? length = null)
    {
        var frame = new byte[RemoteProtocol.HeaderSize + payload.Length];
        new FrameHeader((int)(length ?? (uint)payload.Length), type, id).Write(frame);
        if (length is { } claimed)
            BinaryPrimitives.WriteUInt32LittleEndian(frame, claimed);
        payload.CopyTo(frame, RemoteProtocol.HeaderSize);
        return frame;
    }

    public static byte[] HelloPayload(ushort min = RemoteProtocol.MinVersion, ushort max = RemoteProtocol.MaxVersion, string token = "") =>
        new Hello(min, max, [], token, "raw test client").Encode();

    /// <summary>Says hello and expects a welcome.</summary>
    public Welcome Handshake(string token = "")
    {
        SendFrame(MessageType.Hello, 0, HelloPayload(token: token));
        var (type, _, payload) = ReadFrame() ?? throw new AssertionException("the server closed instead of welcoming");
        Assert.That(type, Is.EqualTo(MessageType.Welcome), () => Describe(type, payload));
        return Welcome.Decode(payload);
    }

    /// <summary>The next frame, or null when the server closed the connection.</summary>
    public (MessageType Type, uint Id, byte[] Payload)? ReadFrame()
    {
        var header = new byte[RemoteProtocol.HeaderSize];
        if (!ReadExactly(header))
            return null;
        var parsed = FrameHeader.Parse(header, int.MaxValue, "test");
        var payload = new byte[parsed.Length];
        if (!ReadExactly(payload))
            return null;
        return (parsed.Type, parsed.RequestId, payload);
    }

    /// <summary>An error frame's code and message.</summary>
    public (RemoteErrorCode Code, string Message, uint Id) ReadError()
    {
        var (type, id, payload) = ReadFrame() ?? throw new AssertionException("the server closed without an error frame");
        Assert.That(type, Is.EqualTo(MessageType.Error), () => Describe(type, payload));
        var (code, message) = FrameWriter.ParseError(payload);
        return (code, message, id);
    }

    /// <summary>True when the server closes the connection within the time (reads until the end, dropping what comes).</summary>
    public bool ClosedByServer(int milliseconds = 10000)
    {
        _stream.ReadTimeout = milliseconds;
        var buffer = new byte[65536];
        var deadline = DateTime.UtcNow.AddMilliseconds(milliseconds);
        try
        {
            while (DateTime.UtcNow < deadline)
            {
                if (_stream.Read(buffer) == 0)
                    return true;
            }
        }
        catch (IOException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
        {
            return true;
        }
        catch (IOException)
        {
            return false;
        }
        return false;
    }

    private bool ReadExactly(Span<byte> buffer)
    {
        try
        {
            return _stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false) == buffer.Length;
        }
        catch (IOException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
        {
            return false;
        }
    }

    private static string Describe(MessageType type, byte[] payload) =>
        type == MessageType.Error ? $"error: {FrameWriter.ParseError(payload)}" : $"type {type}, {payload.Length} bytes";

    public void Dispose() => _client.Dispose();
}
