using System.Buffers.Binary;
using Introspect.Remote;
using Introspect.Remote.Protocol;

namespace Introspect.Connectors.Remote.Tests;

/// <summary>
/// What a broken or hostile client sends: the server answers with a clear error or cuts that client off, never
/// crashes, never hangs, and goes on serving everyone else.
/// </summary>
public class ProtocolRobustnessTests
{
    private ArrayMemory _memory = null!;
    private RemoteServer _server = null!;
    private MemoryLog _log = null!;

    [SetUp]
    public void Start()
    {
        _memory = ArrayMemory.Patterned(4 << 20);
        _log = new MemoryLog();
        _server = Loopback.Serve(_memory, new RemoteServerOptions
        {
            Listen = Loopback.AnyPort,
            AllowAnonymous = true,
            MaxFrameSize = 1 << 20,
            MaxBatchEntries = 1024,
            MaxInFlight = 2,
            HandshakeTimeout = TimeSpan.FromMilliseconds(800),
            IdleTimeout = TimeSpan.FromSeconds(30),
            StallTimeout = TimeSpan.FromMilliseconds(800),
        }, logs: _log.Factory());
    }

    [TearDown]
    public void Stop()
    {
        // Whatever the test did, the server still serves a well-behaved client afterwards.
        using (var remote = RemoteClient.OpenPhysicalMemory(Loopback.Client(_server)))
        {
            var (bytes, ok) = Loopback.ReadPages(remote, [0x1000, 0x3000]);
            Assert.That(ok, Has.All.True, "a good client is still served");
            Assert.That(bytes.AsSpan(0, 4096).SequenceEqual(_memory.Bytes.AsSpan(0x1000, 4096)));
        }
        Assert.That(Loopback.Eventually(() => _server.ClientCount == 0), "every session ended");
        _server.Dispose();
        _memory.Dispose();
        _log.Dispose();
    }

    private static byte[] ReadBatch(params (ulong Address, uint Length)[] entries)
    {
        var payload = new byte[8 + entries.Length * 12];
        BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(4), (uint)entries.Length);
        for (int i = 0; i < entries.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(payload.AsSpan(8 + i * 12), entries[i].Address);
            BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(16 + i * 12), entries[i].Length);
        }
        return payload;
    }

    [Test]
    public void A_frame_cut_short_by_a_disconnect_ends_only_that_session()
    {
        using (var raw = new RawClient(_server))
        {
            raw.Handshake();
            var frame = RawClient.Frame(MessageType.ReadPhysical, 1, ReadBatch((0, 4096)));
            raw.Send(frame[..(frame.Length / 2)]);
        }
        Assert.That(Loopback.Eventually(() => _log.Lines.Any(l => l.Contains("connection ended inside a frame", StringComparison.Ordinal) || l.Contains("mid-frame", StringComparison.Ordinal))),
            string.Join("\n", _log.Lines));
    }

    [Test]
    public void A_huge_length_before_the_welcome_is_refused_without_waiting_for_its_bytes()
    {
        using var raw = new RawClient(_server);
        raw.Send(RawClient.Frame(MessageType.Hello, 0, [], length: 0xFFFFFFF0));

        var (code, message, _) = raw.ReadError();

        Assert.That(code, Is.EqualTo(RemoteErrorCode.FrameTooLarge));
        Assert.That(message, Does.Contain("4294967280").And.Contain("limit"));
        Assert.That(raw.ClosedByServer(), Is.True);
    }

    [Test]
    public void A_huge_length_after_the_welcome_is_refused_and_the_connection_closed()
    {
        using var raw = new RawClient(_server);
        raw.Handshake();
        raw.Send(RawClient.Frame(MessageType.ReadPhysical, 5, [], length: (1 << 20) + 1));

        var (code, message, id) = raw.ReadError();

        Assert.That(code, Is.EqualTo(RemoteErrorCode.FrameTooLarge));
        Assert.That(message, Does.Contain("1048577").And.Contain("1048576"));
        Assert.That(id, Is.EqualTo(5u));
        Assert.That(raw.ClosedByServer(), Is.True);
    }

    [Test]
    public void An_unknown_message_type_gets_an_error_and_the_connection_goes_on()
    {
        using var raw = new RawClient(_server);
        raw.Handshake();
        raw.SendFrame((MessageType)99, 7, [1, 2, 3]);

        var (code, message, id) = raw.ReadError();
        raw.SendFrame(MessageType.Ping, 8, [42]);
        var pong = raw.ReadFrame();

        Assert.That(code, Is.EqualTo(RemoteErrorCode.UnknownType));
        Assert.That(message, Does.Contain("99"));
        Assert.That(id, Is.EqualTo(7u));
        Assert.That(pong, Is.Not.Null);
        Assert.That(pong!.Value.Type, Is.EqualTo(MessageType.Pong));
        Assert.That(pong.Value.Id, Is.EqualTo(8u));
        Assert.That(pong.Value.Payload, Is.EqualTo(new byte[] { 42 }));
    }

    [Test]
    public void A_client_of_another_protocol_version_is_refused_with_both_ranges_named()
    {
        using var raw = new RawClient(_server);
        raw.SendFrame(MessageType.Hello, 0, RawClient.HelloPayload(min: 7, max: 9));

        var (code, message, _) = raw.ReadError();

        Assert.That(code, Is.EqualTo(RemoteErrorCode.UnsupportedVersion));
        Assert.That(message, Does.Contain("1..1").And.Contain("7..9"));
        Assert.That(raw.ClosedByServer(), Is.True);
    }

    [Test]
    public void Another_protocol_altogether_is_refused()
    {
        using var raw = new RawClient(_server);
        raw.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());

        var (code, message, _) = raw.ReadError();

        Assert.That(code, Is.EqualTo(RemoteErrorCode.Malformed));
        Assert.That(message, Does.Contain("reserved bytes"));
        Assert.That(raw.ClosedByServer(), Is.True);
    }

    [Test]
    public void A_hello_with_the_wrong_magic_is_refused()
    {
        using var raw = new RawClient(_server);
        var hello = RawClient.HelloPayload();
        hello[0] = (byte)'X';
        raw.SendFrame(MessageType.Hello, 0, hello);

        var (code, message, _) = raw.ReadError();

        Assert.That(code, Is.EqualTo(RemoteErrorCode.Malformed));
        Assert.That(message, Does.Contain("INTRSPCT"));
    }

    [Test]
    public void A_request_before_the_hello_is_refused()
    {
        using var raw = new RawClient(_server);
        raw.SendFrame(MessageType.ReadPhysical, 1, ReadBatch((0, 16)));

        var (code, message, _) = raw.ReadError();

        Assert.That(code, Is.EqualTo(RemoteErrorCode.Malformed));
        Assert.That(message, Does.Contain("first frame must be a Hello"));
    }

    [Test]
    public void A_truncated_hello_is_refused_naming_the_field()
    {
        using var raw = new RawClient(_server);
        raw.SendFrame(MessageType.Hello, 0, RawClient.HelloPayload()[..12]);

        var (code, message, _) = raw.ReadError();

        Assert.That(code, Is.EqualTo(RemoteErrorCode.Malformed));
        Assert.That(message, Does.Contain("Hello message").And.Contain("codec count"));
    }

    [TestCase(1000u, 1, "entries")]
    [TestCase(1u, 2, "data")]
    public void A_batch_whose_count_disagrees_with_its_bytes_gets_an_error_and_the_session_goes_on(uint claimedCount, int entriesSent, string field)
    {
        using var raw = new RawClient(_server);
        raw.Handshake();
        var payload = ReadBatch(Enumerable.Range(0, entriesSent).Select(i => ((ulong)i * 4096, 4096u)).ToArray());
        BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(4), claimedCount);
        raw.SendFrame(MessageType.ReadPhysical, 3, payload);

        var (code, message, id) = raw.ReadError();
        raw.SendFrame(MessageType.ReadPhysical, 4, ReadBatch((0x2000, 16)));
        var reply = raw.ReadFrame();

        Assert.That(code, Is.EqualTo(RemoteErrorCode.Malformed));
        Assert.That(message, Does.Contain($"'{field}'"));
        Assert.That(id, Is.EqualTo(3u));
        Assert.That(reply!.Value.Type, Is.EqualTo(MessageType.ReadReply));
        Assert.That(reply.Value.Payload.AsSpan(BatchLayout.ReadReplyFixed + 1).SequenceEqual(_memory.Bytes.AsSpan(0x2000, 16)));
    }

    [Test]
    public void Batches_over_the_limits_and_ranges_that_wrap_are_refused()
    {
        using var raw = new RawClient(_server);
        raw.Handshake();
        var tooMany = new byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(tooMany.AsSpan(4), 5000);
        raw.SendFrame(MessageType.ReadPhysical, 1, tooMany);
        raw.SendFrame(MessageType.ReadPhysical, 2, ReadBatch((0, 600_000), (0, 600_000)));
        raw.SendFrame(MessageType.ReadPhysical, 3, ReadBatch((ulong.MaxValue - 10, 100)));

        var errors = Enumerable.Range(0, 3).Select(_ => raw.ReadError()).OrderBy(e => e.Id).ToList();

        Assert.That(errors[0].Code, Is.EqualTo(RemoteErrorCode.LimitExceeded));
        Assert.That(errors[0].Message, Does.Contain("5000 entries").And.Contain("1024"));
        Assert.That(errors[1].Code, Is.EqualTo(RemoteErrorCode.LimitExceeded));
        Assert.That(errors[1].Message, Does.Contain("frame limit"));
        Assert.That(errors[2].Code, Is.EqualTo(RemoteErrorCode.Malformed));
        Assert.That(errors[2].Message, Does.Contain("wrap"));
        Assert.That(_memory.ReadCalls, Is.Zero, "nothing refused reached the memory");
    }

    [Test]
    public void A_write_to_a_read_only_server_is_refused_and_nothing_is_written()
    {
        using var raw = new RawClient(_server);
        raw.Handshake();
        var payload = new byte[8 + 12 + 4];
        BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(4), 1);
        BinaryPrimitives.WriteUInt64LittleEndian(payload.AsSpan(8), 0x100);
        BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(16), 4);
        payload.AsSpan(20).Fill(0xEE);
        var before = _memory.Bytes.AsSpan(0x100, 4).ToArray();
        raw.SendFrame(MessageType.WritePhysical, 9, payload);

        var (code, message, _) = raw.ReadError();

        Assert.That(code, Is.EqualTo(RemoteErrorCode.ReadOnly));
        Assert.That(message, Does.Contain("--allow-write"));
        Assert.That(_memory.Bytes.AsSpan(0x100, 4).ToArray(), Is.EqualTo(before));
    }

    [Test]
    public void Request_id_zero_and_a_second_hello_are_refused()
    {
        using var raw = new RawClient(_server);
        raw.Handshake();
        raw.SendFrame(MessageType.Ping, 0, []);
        var zero = raw.ReadError();
        raw.SendFrame(MessageType.Hello, 2, RawClient.HelloPayload());
        var again = raw.ReadError();

        Assert.That(zero.Message, Does.Contain("request id 0"));
        Assert.That(again.Message, Does.Contain("already sent"));
    }

    [Test]
    public void Operating_system_requests_to_a_chain_without_one_say_what_to_serve()
    {
        using var raw = new RawClient(_server);
        raw.Handshake();
        raw.SendFrame(MessageType.ListProcesses, 1, []);

        var (code, message, _) = raw.ReadError();

        Assert.That(code, Is.EqualTo(RemoteErrorCode.NoOperatingSystem));
        Assert.That(message, Does.Contain("ends in a connector").And.Contain("-> linux"));
    }

    [Test]
    public void A_client_that_keeps_breaking_the_protocol_is_cut_off()
    {
        using var raw = new RawClient(_server);
        raw.Handshake();
        for (uint id = 1; id <= 12; id++)
            raw.SendFrame((MessageType)200, id, []);

        Assert.That(raw.ClosedByServer(), Is.True);
        Assert.That(Loopback.Eventually(() => _log.Lines.Any(l => l.Contains("protocol errors)", StringComparison.Ordinal))), string.Join("\n", _log.Lines));
    }

    [Test]
    public void A_client_that_stops_halfway_through_a_frame_is_cut_off_after_the_stall_timeout()
    {
        using var raw = new RawClient(_server);
        raw.Handshake();
        var frame = RawClient.Frame(MessageType.ReadPhysical, 1, ReadBatch((0, 4096), (4096, 4096)));
        raw.Send(frame[..20]);

        Assert.That(raw.ClosedByServer(), Is.True, "the server hung up on the stalled client");
        Assert.That(Loopback.Eventually(() => _log.Lines.Any(l => l.Contains("stalled mid-frame", StringComparison.Ordinal))), string.Join("\n", _log.Lines));
    }

    [Test]
    public void A_client_that_never_says_hello_is_cut_off_after_the_handshake_timeout()
    {
        using var raw = new RawClient(_server);

        Assert.That(raw.ClosedByServer(), Is.True);
        Assert.That(Loopback.Eventually(() => _log.Lines.Any(l => l.Contains("no hello within", StringComparison.Ordinal))), string.Join("\n", _log.Lines));
    }

    [Test]
    public void A_client_that_disconnects_with_batches_in_flight_hurts_no_one()
    {
        for (int round = 0; round < 5; round++)
        {
            using var raw = new RawClient(_server);
            raw.Handshake();
            for (uint id = 1; id <= 4; id++)
                raw.SendFrame(MessageType.ReadPhysical, id, ReadBatch(Enumerable.Range(0, 200).Select(i => ((ulong)i * 4096, 4096u)).ToArray()));
        }
        Assert.That(Loopback.Eventually(() => _server.ClientCount == 0));
    }

    [Test]
    public void A_client_that_does_not_read_its_replies_is_cut_off_while_others_are_served()
    {
        using var raw = new RawClient(_server);
        raw.Handshake();
        var big = ReadBatch(Enumerable.Range(0, 250).Select(i => ((ulong)i * 4096, 4096u)).ToArray());
        bool senderFailed = false;
        var flood = Task.Run(() =>
        {
            try
            {
                for (uint id = 1; id <= 200; id++)
                    raw.SendFrame(MessageType.ReadPhysical, id, big);
            }
            catch (IOException)
            {
                senderFailed = true;
            }
        });

        using (var good = RemoteClient.OpenPhysicalMemory(Loopback.Client(_server)))
        {
            var (_, ok) = Loopback.ReadPages(good, [0x5000]);
            Assert.That(ok, Has.All.True, "another client is served meanwhile");
        }
        Assert.That(Loopback.Eventually(() => _log.Lines.Any(l => l.Contains("did not take a reply", StringComparison.Ordinal)), 20000), string.Join("\n", _log.Lines));
        Assert.That(flood.Wait(TimeSpan.FromSeconds(20)), "the flooding sender was stopped");
        Assert.That(senderFailed || raw.ClosedByServer(), Is.True);
    }
}
