using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Introspect.Abi;
using Introspect.Remote;
using Introspect.Remote.Protocol;

namespace Introspect.Connectors.Remote.Tests;

/// <summary>A server that lies in its replies: the connector refuses what does not match its own request, and writes nothing it did not ask for.</summary>
public class HostileServerTests
{
    /// <summary>A one-client server that welcomes, describes 1 MiB of memory, and answers each read with what <paramref name="answer"/> makes of it.</summary>
    private sealed class FakeServer : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly Task _serving;

        public FakeServer(Func<uint, byte[], byte[]> answer, PageCompression compression = PageCompression.None)
        {
            _listener.Start();
            // Every client gets the same treatment, so a connector that reconnects meets the same lies again.
            _serving = Task.Run(async () =>
            {
                var clients = new List<Task>();
                while (true)
                {
                    TcpClient client;
                    try
                    {
                        client = await _listener.AcceptTcpClientAsync();
                    }
                    catch (Exception e) when (e is SocketException or ObjectDisposedException)
                    {
                        break;
                    }
                    clients.Add(Task.Run(() => Serve(client, answer, compression)));
                }
                await Task.WhenAll(clients);
            });
        }

        private static void Serve(TcpClient client, Func<uint, byte[], byte[]> answer, PageCompression compression)
        {
            using var _ = client;
            using var stream = client.GetStream();
            var header = new byte[RemoteProtocol.HeaderSize];
            try
            {
                while (stream.ReadAtLeast(header, header.Length, throwOnEndOfStream: false) == header.Length)
                {
                    var parsed = FrameHeader.Parse(header, 1 << 24, "fake");
                    var payload = new byte[parsed.Length];
                    stream.ReadExactly(payload);
                    byte[] reply = parsed.Type switch
                    {
                        MessageType.Hello => RawClient.Frame(MessageType.Welcome, 0, new Welcome(1, compression, ServerFeatures.None, 1 << 20, 1024, 4, 1, "fake").Encode()),
                        MessageType.Describe => RawClient.Frame(MessageType.Description, parsed.RequestId, JsonPayload.Encode(new ServedDescription
                        {
                            Chain = "fake",
                            MaxAddress = (1 << 20) - 1,
                            RealSize = 1 << 20,
                            ReadOnly = true,
                            IdealBatchSize = 16,
                            MemoryMap = [[0, 1 << 20]],
                        })),
                        _ => answer(parsed.RequestId, payload),
                    };
                    stream.Write(reply);
                }
            }
            catch (IOException)
            {
                // The connector hung up on a lie: that is what the tests want.
            }
        }

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public void Dispose()
        {
            _listener.Stop();
            _serving.Wait(TimeSpan.FromSeconds(10));
            _listener.Dispose();
        }
    }

    private static byte[] ReadReply(uint id, int count, PageCompression compression, uint raw, byte[] bitmap, byte[] data, uint? dataLength = null)
    {
        var payload = new byte[BatchLayout.ReadReplyFixed + bitmap.Length + data.Length];
        BatchLayout.WriteReadReplyHeader(payload, count, compression, (int)raw, (int)(dataLength ?? (uint)data.Length));
        bitmap.CopyTo(payload, BatchLayout.ReadReplyFixed);
        data.CopyTo(payload, BatchLayout.ReadReplyFixed + bitmap.Length);
        return RawClient.Frame(MessageType.ReadReply, id, payload);
    }

    private static Exception ReadFails(FakeServer server, PageCompression compression = PageCompression.None)
    {
        using var remote = RemoteClient.OpenPhysicalMemory(new RemoteClientOptions
        {
            Host = "127.0.0.1",
            Port = server.Port,
            Compression = compression == PageCompression.None ? [] : [compression],
            Timeout = TimeSpan.FromSeconds(5),
        });
        var buffer = new byte[4096];
        buffer.AsSpan().Fill(0xAA);
        var e = Assert.Catch(() => remote.Read([new MemoryRequest(0x1000, buffer)]))!;
        Assert.That(buffer, Has.All.EqualTo((byte)0xAA), "nothing was written into the caller's buffer");
        return e;
    }

    [Test]
    public void A_reply_for_another_number_of_entries_is_refused()
    {
        using var server = new FakeServer((id, _) => ReadReply(id, 2, PageCompression.None, 0, [0], []));

        var e = ReadFails(server);

        Assert.That(e, Is.InstanceOf<InvalidDataException>());
        Assert.That(e.Message, Does.Contain("an answer for 2 entries to a request of 1"));
    }

    [Test]
    public void A_reply_whose_lengths_disagree_with_its_bitmap_is_refused()
    {
        using var server = new FakeServer((id, _) => ReadReply(id, 1, PageCompression.None, 10, [1], new byte[10]));

        var e = ReadFails(server);

        Assert.That(e, Is.InstanceOf<InvalidDataException>());
        Assert.That(e.Message, Does.Contain("10 bytes of data announced where its bitmap implies 4096"));
    }

    [Test]
    public void A_reply_in_a_codec_that_was_not_agreed_is_refused()
    {
        using var server = new FakeServer((id, _) => ReadReply(id, 1, PageCompression.Brotli, 4096, [1], new byte[20]));

        var e = ReadFails(server);

        Assert.That(e.Message, Does.Contain("not agreed"));
    }

    [Test]
    public void Compressed_data_that_inflates_to_more_than_was_asked_is_refused()
    {
        var bomb = new byte[1 << 20];
        var compressed = new byte[bomb.Length];
        PageCodec.TryCompress(PageCompression.Brotli, bomb, compressed, 0, out int written);
        using var server = new FakeServer((id, _) => ReadReply(id, 1, PageCompression.Brotli, 4096, [1], compressed[..written]), PageCompression.Brotli);

        var e = ReadFails(server, PageCompression.Brotli);

        Assert.That(e, Is.InstanceOf<InvalidDataException>());
        Assert.That(e.Message, Does.Contain("does not decompress to the 4096 bytes it announced"));
    }

    [Test]
    public void A_frame_over_the_agreed_limit_ends_the_connection()
    {
        using var server = new FakeServer((id, _) =>
        {
            var frame = new byte[RemoteProtocol.HeaderSize];
            new FrameHeader(0, MessageType.ReadReply, id).Write(frame);
            BinaryPrimitives.WriteUInt32LittleEndian(frame, (1 << 20) + 1);
            return frame;
        });

        var e = ReadFails(server);

        Assert.That(e, Is.InstanceOf<IOException>());
        Assert.That(e.Message, Does.Contain("connection was lost").And.Contain("over the limit"));
    }
}
