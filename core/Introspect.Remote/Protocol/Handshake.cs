using System.Buffers;
using System.Globalization;

namespace Introspect.Remote.Protocol;

/// <summary>The client's first frame: who it is, which versions and codecs it speaks, and its token.</summary>
internal sealed record Hello(ushort MinVersion, ushort MaxVersion, IReadOnlyList<PageCompression> Codecs, string Token, string ClientName)
{
    private const int MaxCodecs = 8;

    public byte[] Encode()
    {
        var writer = new ArrayBufferWriter<byte>(128);
        writer.Write(RemoteProtocol.Magic);
        FrameWriter.WriteUInt16(writer, MinVersion);
        FrameWriter.WriteUInt16(writer, MaxVersion);
        FrameWriter.WriteByte(writer, (byte)Codecs.Count);
        foreach (var codec in Codecs)
            FrameWriter.WriteByte(writer, (byte)codec);
        FrameWriter.WriteString(writer, Token);
        FrameWriter.WriteString(writer, ClientName);
        return writer.WrittenSpan.ToArray();
    }

    /// <summary>Decodes a hello; a wrong magic is told apart from a wrong layout, since it means another protocol altogether.</summary>
    public static Hello Decode(ReadOnlySpan<byte> payload)
    {
        var reader = new PayloadReader(payload, "Hello");
        if (!reader.ReadBytes(RemoteProtocol.Magic.Length, "magic").SequenceEqual(RemoteProtocol.Magic))
            reader.Throw("magic", "not INTRSPCT", "the bytes INTRSPCT (is the peer an Introspect remote client?)");
        ushort min = reader.ReadUInt16("min version");
        ushort max = reader.ReadUInt16("max version");
        if (max < min)
            reader.Throw("max version", max.ToString(CultureInfo.InvariantCulture), $"at least the min version {min}");
        int count = reader.ReadByte("codec count");
        if (count > MaxCodecs)
            reader.Throw("codec count", count.ToString(CultureInfo.InvariantCulture), $"at most {MaxCodecs}");
        var codecs = new List<PageCompression>(count);
        for (int i = 0; i < count; i++)
        {
            // Codecs this build does not know are passed over: a newer client may offer more.
            var codec = (PageCompression)reader.ReadByte("codec");
            if (Enum.IsDefined(codec) && !codecs.Contains(codec))
                codecs.Add(codec);
        }
        string token = reader.ReadString("token", RemoteProtocol.MaxTokenBytes);
        string name = reader.ReadString("client name", RemoteProtocol.MaxNameBytes);
        reader.ExpectEnd();
        return new Hello(min, max, codecs, token, name);
    }
}

/// <summary>The server's answer to a good hello: what was agreed and the limits the server enforces.</summary>
internal sealed record Welcome(
    ushort Version,
    PageCompression Compression,
    ServerFeatures Features,
    int MaxFrameSize,
    int MaxBatchEntries,
    int MaxInFlight,
    ulong SessionId,
    string ServerName)
{
    /// <summary>The smallest frame limit a server may announce: enough for a page and its bookkeeping.</summary>
    public const int MinFrameSize = 64 * 1024;

    /// <summary>The largest a server may announce: what a client is prepared to buffer for one reply.</summary>
    public const int LargestFrameSize = 1 << 30;

    public byte[] Encode()
    {
        var writer = new ArrayBufferWriter<byte>(64);
        FrameWriter.WriteUInt16(writer, Version);
        FrameWriter.WriteByte(writer, (byte)Compression);
        FrameWriter.WriteByte(writer, (byte)Features);
        FrameWriter.WriteUInt32(writer, (uint)MaxFrameSize);
        FrameWriter.WriteUInt32(writer, (uint)MaxBatchEntries);
        FrameWriter.WriteUInt32(writer, (uint)MaxInFlight);
        FrameWriter.WriteUInt64(writer, SessionId);
        FrameWriter.WriteString(writer, ServerName);
        return writer.WrittenSpan.ToArray();
    }

    public static Welcome Decode(ReadOnlySpan<byte> payload)
    {
        var reader = new PayloadReader(payload, "Welcome");
        ushort version = reader.ReadUInt16("version");
        var compression = (PageCompression)reader.ReadByte("compression");
        if (!Enum.IsDefined(compression))
            reader.Throw("compression", ((byte)compression).ToString(CultureInfo.InvariantCulture), "0 (none), 1 (deflate) or 2 (brotli)");
        var features = (ServerFeatures)reader.ReadByte("features");
        uint maxFrame = reader.ReadUInt32("max frame size");
        if (maxFrame is < MinFrameSize or > LargestFrameSize)
            reader.Throw("max frame size", maxFrame.ToString(CultureInfo.InvariantCulture), $"{MinFrameSize}..{LargestFrameSize}");
        uint maxEntries = reader.ReadUInt32("max batch entries");
        if (maxEntries is 0 or > int.MaxValue)
            reader.Throw("max batch entries", maxEntries.ToString(CultureInfo.InvariantCulture), $"1..{int.MaxValue}");
        uint maxInFlight = reader.ReadUInt32("max in flight");
        if (maxInFlight is 0 or > 4096)
            reader.Throw("max in flight", maxInFlight.ToString(CultureInfo.InvariantCulture), "1..4096");
        ulong session = reader.ReadUInt64("session id");
        string name = reader.ReadString("server name", RemoteProtocol.MaxNameBytes);
        reader.ExpectEnd();
        return new Welcome(version, compression, features, (int)maxFrame, (int)maxEntries, (int)maxInFlight, session, name);
    }
}
