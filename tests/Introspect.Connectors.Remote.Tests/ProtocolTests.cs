using System.Buffers.Binary;
using System.IO.Compression;
using Introspect.Abi;
using Introspect.Remote;
using Introspect.Remote.Protocol;

namespace Introspect.Connectors.Remote.Tests;

/// <summary>The message layouts, decoded from good and from malformed bytes.</summary>
public class ProtocolTests
{
    [Test]
    public void Hello_and_welcome_survive_the_round_trip()
    {
        var hello = new Hello(1, 3, [PageCompression.Brotli, PageCompression.Deflate], "tok", "client");
        var welcome = new Welcome(1, PageCompression.Brotli, ServerFeatures.OperatingSystem | ServerFeatures.KernelSymbols, 1 << 20, 500, 4, 77, "server");

        var helloBack = Hello.Decode(hello.Encode());
        var welcomeBack = Welcome.Decode(welcome.Encode());

        Assert.That((helloBack.MinVersion, helloBack.MaxVersion, helloBack.Token, helloBack.ClientName), Is.EqualTo((hello.MinVersion, hello.MaxVersion, hello.Token, hello.ClientName)));
        Assert.That(helloBack.Codecs, Is.EqualTo(hello.Codecs));
        Assert.That(welcomeBack, Is.EqualTo(welcome));
    }

    [Test]
    public void A_hello_with_a_huge_token_length_or_versions_backwards_is_malformed()
    {
        var hello = new Hello(1, 1, [], "x", "c").Encode();
        var hugeToken = hello.ToArray();
        BinaryPrimitives.WriteUInt16LittleEndian(hugeToken.AsSpan(13), 60000);
        var backwards = hello.ToArray();
        BinaryPrimitives.WriteUInt16LittleEndian(backwards.AsSpan(8), 5);

        Assert.That(() => Hello.Decode(hugeToken), Throws.InstanceOf<InvalidDataException>().With.Message.Contains("token length").And.Message.Contains("at most 1024"));
        Assert.That(() => Hello.Decode(backwards), Throws.InstanceOf<InvalidDataException>().With.Message.Contains("max version"));
        Assert.That(() => Hello.Decode(hello.Concat(new byte[] { 0 }).ToArray()), Throws.InstanceOf<InvalidDataException>().With.Message.Contains("left over"));
    }

    [Test]
    public void A_welcome_with_limits_out_of_range_is_malformed()
    {
        var tiny = new Welcome(1, PageCompression.None, ServerFeatures.None, 100, 1, 1, 1, "s").Encode();
        var noEntries = new Welcome(1, PageCompression.None, ServerFeatures.None, 1 << 20, 0, 1, 1, "s").Encode();
        var codec = new Welcome(1, PageCompression.None, ServerFeatures.None, 1 << 20, 1, 1, 1, "s").Encode();
        codec[2] = 9;

        Assert.That(() => Welcome.Decode(tiny), Throws.InstanceOf<InvalidDataException>().With.Message.Contains("max frame size"));
        Assert.That(() => Welcome.Decode(noEntries), Throws.InstanceOf<InvalidDataException>().With.Message.Contains("max batch entries"));
        Assert.That(() => Welcome.Decode(codec), Throws.InstanceOf<InvalidDataException>().With.Message.Contains("compression"));
        Assert.That(() => Welcome.Decode(codec.AsSpan(0, 7)), Throws.InstanceOf<InvalidDataException>());
    }

    [Test]
    public void A_batch_request_is_decoded_in_place_and_checked_against_the_limits()
    {
        var payload = new byte[8 + 8 + 24];
        BinaryPrimitives.WriteUInt64LittleEndian(payload, 42);
        BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(8), (uint)MemoryFlags.NoCache);
        BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(12), 2);
        BinaryPrimitives.WriteUInt64LittleEndian(payload.AsSpan(16), 0x1000);
        BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(24), 16);
        BinaryPrimitives.WriteUInt64LittleEndian(payload.AsSpan(28), ulong.MaxValue - 7);
        BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(36), 8);

        var request = BatchRequest.Decode(payload, MessageType.ReadVirtual, 1, 10, 1 << 20);
        var (pid, flags, count, total, second) = (request.Pid, request.Flags, request.Count, request.TotalBytes, request.Address(1));

        Assert.That((pid, flags, count, total, second), Is.EqualTo((42UL, MemoryFlags.NoCache, 2, 24L, ulong.MaxValue - 7)), "an entry may end exactly at 2^64");
        Assert.That(Code(() => BatchRequest.Decode(payload, MessageType.ReadVirtual, 1, 1, 1 << 20)), Is.EqualTo(RemoteErrorCode.LimitExceeded));
        Assert.That(Code(() => BatchRequest.Decode(payload.AsSpan(0, 30), MessageType.ReadVirtual, 1, 10, 1 << 20)), Is.EqualTo(RemoteErrorCode.Malformed));
        Assert.That(Code(() => BatchRequest.Decode(payload, MessageType.WriteVirtual, 1, 10, 1 << 20)), Is.EqualTo(RemoteErrorCode.Malformed), "a write without its data");
        var badFlags = payload.ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(badFlags.AsSpan(8), 0x80);
        Assert.That(Code(() => BatchRequest.Decode(badFlags, MessageType.ReadVirtual, 1, 10, 1 << 20)), Is.EqualTo(RemoteErrorCode.Malformed));
    }

    private static RemoteErrorCode Code(Action decode)
    {
        try
        {
            decode();
        }
        catch (ProtocolViolationException e)
        {
            return e.Code;
        }
        Assert.Fail("the payload was accepted");
        return default;
    }

    [TestCase(PageCompression.Deflate)]
    [TestCase(PageCompression.Brotli)]
    public void Page_data_compresses_and_decompresses_only_to_the_announced_size(PageCompression codec)
    {
        var pages = new byte[64 * 1024];
        new Random(3).NextBytes(pages.AsSpan(0, 4096));
        var compressed = new byte[pages.Length + 16];

        Assert.That(PageCodec.TryCompress(codec, pages, compressed, 16, out int written), Is.True);
        Assert.That(written, Is.LessThan(pages.Length / 4));
        var back = new byte[pages.Length];
        PageCodec.Decompress(codec, compressed.AsSpan(16, written), back, "test");
        Assert.That(back, Is.EqualTo(pages));

        Assert.That(() => PageCodec.Decompress(codec, compressed.AsSpan(16, written), new byte[pages.Length - 1], "test"),
            Throws.InstanceOf<InvalidDataException>().With.Message.Contains("announced"), "more data than announced");
        Assert.That(() => PageCodec.Decompress(codec, compressed.AsSpan(16, written), new byte[pages.Length + 1], "test"),
            Throws.InstanceOf<InvalidDataException>(), "less data than announced");
        Assert.That(() => PageCodec.Decompress(codec, new byte[] { 0xff, 0xfe, 0x01, 0x02, 0x03 }, new byte[100], "test"),
            Throws.InstanceOf<InvalidDataException>(), "garbage");
    }

    [Test]
    public void Incompressible_data_is_sent_as_it_is()
    {
        var noise = new byte[8192];
        new Random(5).NextBytes(noise);

        Assert.That(PageCodec.TryCompress(PageCompression.Deflate, noise, new byte[noise.Length], 0, out _), Is.False);
        Assert.That(PageCodec.TryCompress(PageCompression.Brotli, noise, new byte[noise.Length], 0, out _), Is.False);
        Assert.That(PageCodec.TryCompress(PageCompression.Deflate, new byte[100], new byte[100], 0, out _), Is.False, "too small to bother");
    }

    [Test]
    public void A_frame_header_with_reserved_bytes_set_or_over_the_limit_is_refused_before_its_payload()
    {
        var header = new byte[RemoteProtocol.HeaderSize];
        new FrameHeader(10, MessageType.Ping, 3).Write(header);
        var reserved = header.ToArray();
        reserved[6] = 1;

        Assert.That(FrameHeader.Parse(header, 10, "peer"), Is.EqualTo(new FrameHeader(10, MessageType.Ping, 3)));
        Assert.That(Code(() => FrameHeader.Parse(header, 9, "peer")), Is.EqualTo(RemoteErrorCode.FrameTooLarge));
        Assert.That(Code(() => FrameHeader.Parse(reserved, 10, "peer")), Is.EqualTo(RemoteErrorCode.Malformed));
    }

    [Test]
    public void Error_messages_are_cut_on_a_character_boundary_at_the_limit()
    {
        var payload = FrameWriter.ErrorPayload(RemoteErrorCode.Internal, new string('é', 5000));

        var (code, message) = FrameWriter.ParseError(payload);

        Assert.That(code, Is.EqualTo(RemoteErrorCode.Internal));
        Assert.That(message.Length, Is.EqualTo(RemoteProtocol.MaxErrorMessageBytes / 2));
        Assert.That(message, Has.All.EqualTo('é'));
    }

    [Test]
    public void A_deflate_stream_that_would_expand_past_the_announced_size_is_stopped_there()
    {
        // 16 MiB of zeros compress to a few KiB: a reply may not make the client inflate more than it asked for.
        using var output = new MemoryStream();
        using (var deflate = new DeflateStream(output, CompressionLevel.Optimal, leaveOpen: true))
            deflate.Write(new byte[16 << 20]);

        Assert.That(() => PageCodec.Decompress(PageCompression.Deflate, output.ToArray(), new byte[4096], "test"),
            Throws.InstanceOf<InvalidDataException>());
    }
}
