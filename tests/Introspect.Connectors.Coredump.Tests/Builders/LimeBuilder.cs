namespace Introspect.Connectors.Coredump.Tests.Builders;

/// <summary>Writes LiME dumps: each range after a 32-byte header.</summary>
internal static class LimeBuilder
{
    public static byte[] Build(IEnumerable<(ulong Start, byte[] Data)> ranges)
    {
        using var output = new MemoryStream();
        foreach (var (start, data) in ranges)
        {
            output.Write(Header(start, start + (ulong)data.Length - 1));
            output.Write(data);
        }
        return output.ToArray();
    }

    public static byte[] Header(ulong first, ulong last, uint magic = 0x4C694D45, uint version = 1)
    {
        var header = new byte[32];
        Bytes.U32(header, 0, magic);
        Bytes.U32(header, 4, version);
        Bytes.U64(header, 8, first);
        Bytes.U64(header, 16, last);
        return header;
    }
}
