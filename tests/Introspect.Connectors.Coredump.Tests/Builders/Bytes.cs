using System.Buffers.Binary;

namespace Introspect.Connectors.Coredump.Tests.Builders;

/// <summary>Little- and big-endian stores into a byte array, for building dumps in tests.</summary>
internal static class Bytes
{
    public static void U16(byte[] b, long at, ushort v) => BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(checked((int)at)), v);

    public static void U32(byte[] b, long at, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(checked((int)at)), v);

    public static void U64(byte[] b, long at, ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(checked((int)at)), v);

    public static void I64BigEndian(Stream s, long v)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(bytes, v);
        s.Write(bytes);
    }

    public static void Ascii(byte[] b, long at, string text) => System.Text.Encoding.ASCII.GetBytes(text).CopyTo(b, at);

    public static long AlignUp(long value, long alignment) => (value + alignment - 1) / alignment * alignment;
}
