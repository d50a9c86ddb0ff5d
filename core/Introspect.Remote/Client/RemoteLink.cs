using System.Buffers.Binary;
using Introspect.Abi;
using Introspect.Remote.Protocol;

namespace Introspect.Remote.Client;

/// <summary>A client's lasting tie to one server: the current connection, made again after a loss, and what the server serves.</summary>
/// <remarks>
/// A lost connection fails the requests on it with an <see cref="IOException"/> that says so. The next request
/// connects afresh; a read that failed because the connection was lost under it is tried once more on the new
/// connection (reads repeat harmlessly; writes are never repeated). A server that comes back serving something
/// else (another memory size or map) is refused, so a chain never reads one machine's memory as another's.
/// </remarks>
internal sealed class RemoteLink : IDisposable
{
    private readonly Lock _lock = new();
    private readonly IPluginContext? _context;
    private RemoteConnection? _connection;
    private bool _disposed;

    public RemoteLink(RemoteClientOptions options, IPluginContext? context)
    {
        Options = options;
        _context = context;
        var connection = RemoteConnection.Connect(options);
        try
        {
            Description = Describe(connection);
        }
        catch
        {
            connection.Dispose();
            throw;
        }
        _connection = connection;
    }

    public RemoteClientOptions Options { get; }

    public string Peer => Options.Peer;

    /// <summary>What the server served when first connected; a reconnection must find the same.</summary>
    public ServedDescription Description { get; }

    /// <summary>What the current connection agreed (its limits, its compression, the server's features).</summary>
    public Welcome Welcome => Connection().Welcome;

    /// <summary>The live connection, connecting again if the last one was lost.</summary>
    /// <exception cref="IOException">The server cannot be reached, or now serves something else.</exception>
    public RemoteConnection Connection()
    {
        var current = Volatile.Read(ref _connection);
        if (current is { IsAlive: true })
            return current;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_connection is { IsAlive: true })
                return _connection;
            _connection?.Dispose();
            _connection = null;
            var fresh = RemoteConnection.Connect(Options);
            try
            {
                var description = Describe(fresh);
                if (!SameMemory(Description, description, out var difference))
                    throw new IOException($"{Peer} now serves different memory ({difference}); open the chain again to read it.");
            }
            catch
            {
                fresh.Dispose();
                throw;
            }
            _context?.Log(PluginLogLevel.Information, $"{Peer}: reconnected (session {fresh.Welcome.SessionId}).");
            _connection = fresh;
            return fresh;
        }
    }

    private static bool SameMemory(ServedDescription before, ServedDescription now, out string difference)
    {
        difference = "";
        if (before.Chain != now.Chain)
            difference = $"chain '{before.Chain}' before, '{now.Chain}' now";
        else if (before.MaxAddress != now.MaxAddress || before.RealSize != now.RealSize)
            difference = $"highest address 0x{before.MaxAddress:x} and size 0x{before.RealSize:x} before, 0x{now.MaxAddress:x} and 0x{now.RealSize:x} now";
        else if (!before.MemoryMap.SelectMany(r => r).SequenceEqual(now.MemoryMap.SelectMany(r => r)))
            difference = "another memory map";
        return difference.Length == 0;
    }

    private ServedDescription Describe(RemoteConnection connection)
    {
        var payload = Call(connection, MessageType.Describe, BytesBody.Empty, MessageType.Description);
        return JsonPayload.Decode<ServedDescription>(payload, Peer, "description")
            ?? throw new InvalidDataException($"{Peer}: the description reply is empty.");
    }

    /// <summary>One request with a reply kept as bytes; a lost connection is retried once when <paramref name="idempotent"/>.</summary>
    public byte[] Call(MessageType type, IRequestBody body, MessageType expected, bool idempotent = true)
    {
        for (int attempt = 0; ; attempt++)
        {
            var connection = Connection();
            try
            {
                return Call(connection, type, body, expected);
            }
            catch (RemoteConnectionLostException e) when (idempotent && attempt == 0 && !e.TimedOut)
            {
            }
        }
    }

    private byte[] Call(RemoteConnection connection, MessageType type, IRequestBody body, MessageType expected)
    {
        var reply = new BytesReply(expected);
        connection.Send(type, body, reply);
        connection.Wait([reply], DateTime.UtcNow + Options.Timeout);
        if (reply.Completion.Exception?.InnerException is { } failure)
            throw Rethrowable(failure);
        return reply.Payload;
    }

    /// <summary>Reads or writes a batch, physical (<paramref name="pid"/> null) or in a process.</summary>
    /// <returns>False when the server says the process does not exist: every entry then fails.</returns>
    public bool Transfer(Span<MemoryRequest> batch, MemoryFlags flags, ulong? pid, MemoryMap? remap, bool write)
    {
        var plan = BatchPlan.Rent();
        try
        {
            for (int attempt = 0; ; attempt++)
            {
                var connection = Connection();
                plan.Build(batch, remap, connection.Welcome.MaxBatchEntries, connection.Welcome.MaxFrameSize);
                try
                {
                    bool found = Execute(connection, plan, flags, pid, write);
                    plan.Complete(batch, write ? flags & ~MemoryFlags.ZeroPadOnFail : flags);
                    return found;
                }
                catch (RemoteConnectionLostException e) when (!write && attempt == 0 && !e.TimedOut)
                {
                    // The connection went under this read; the next attempt connects afresh.
                }
            }
        }
        finally
        {
            plan.Return();
        }
    }

    private bool Execute(RemoteConnection connection, BatchPlan plan, MemoryFlags flags, ulong? pid, bool write)
    {
        var type = (write, pid.HasValue) switch
        {
            (false, false) => MessageType.ReadPhysical,
            (false, true) => MessageType.ReadVirtual,
            (true, false) => MessageType.WritePhysical,
            (true, true) => MessageType.WriteVirtual,
        };
        var chunks = new PendingReply[plan.Chunks.Count];
        int sent = 0;
        try
        {
            foreach (var (start, count, bytes) in plan.Chunks)
            {
                BatchChunk chunk = write
                    ? new WriteChunk(plan, start, count, bytes, pid, flags)
                    : new ReadChunk(plan, start, count, bytes, pid, flags, connection.Welcome.Compression);
                connection.Send(type, chunk, chunk);
                chunks[sent++] = chunk;
            }
        }
        finally
        {
            // Whatever went wrong, no reply may still write into the caller's buffers once this returns.
            connection.Wait(chunks.AsSpan(0, sent), DateTime.UtcNow + Options.Timeout);
        }
        bool found = true;
        foreach (var chunk in chunks)
        {
            switch (chunk.Completion.Exception?.InnerException)
            {
                case null:
                    break;
                case RemoteRequestException { Code: RemoteErrorCode.NoSuchProcess }:
                    found = false;
                    break;
                case var failure:
                    throw Rethrowable(failure);
            }
        }
        return found;
    }

    /// <summary>A reply's failure as the caller should see it: refusals of writes as <see cref="NotSupportedException"/>, the rest as they came.</summary>
    private static Exception Rethrowable(Exception failure) => failure switch
    {
        RemoteRequestException { Code: RemoteErrorCode.ReadOnly } e => new NotSupportedException(e.Message, e),
        RemoteConnectionLostException e => new RemoteConnectionLostException(e.Message, e) { TimedOut = e.TimedOut },
        RemoteRequestException e => new RemoteRequestException(e.Code, e.Message),
        InvalidDataException e => new InvalidDataException(e.Message, e),
        _ => new IOException(failure.Message, failure),
    };

    public static byte[] PidPayload(ulong pid)
    {
        var payload = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(payload, pid);
        return payload;
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _connection?.Dispose();
            _connection = null;
        }
    }
}
