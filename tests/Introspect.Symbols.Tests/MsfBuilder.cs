using System.Buffers.Binary;
using System.Text;

namespace Introspect.Symbols.Tests;

/// <summary>Writes small MSF 7.00 files from a list of streams, for the malformed-input tests; the directory can be
/// overridden to say what it should not.</summary>
internal sealed class MsfBuilder
{
    private const int BlockSize = 512;

    public List<byte[]?> Streams { get; } = [];

    /// <summary>Replaces the directory's stream count with this value.</summary>
    public uint? StreamCountOverride { get; set; }

    /// <summary>Replaces the first stream block number of the directory with this value.</summary>
    public uint? FirstBlockOverride { get; set; }

    /// <summary>A minimal valid PDB: info stream, the given TPI stream, an empty DBI and IPI.</summary>
    public static MsfBuilder Pdb(byte[]? tpi = null, byte[]? dbi = null)
    {
        var builder = new MsfBuilder();
        builder.Streams.Add([]);
        builder.Streams.Add(InfoStream());
        builder.Streams.Add(tpi ?? TpiStream([]));
        builder.Streams.Add(dbi ?? []);
        builder.Streams.Add(TpiStream([]));
        return builder;
    }

    public static byte[] InfoStream()
    {
        var info = new byte[28 + 20];
        BinaryPrimitives.WriteUInt32LittleEndian(info, 20000404);
        BinaryPrimitives.WriteUInt32LittleEndian(info.AsSpan(4), 0x12345678);
        BinaryPrimitives.WriteUInt32LittleEndian(info.AsSpan(8), 1);
        Guid.Parse("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").TryWriteBytes(info.AsSpan(12));
        return info; // the named stream map: all zero counts
    }

    /// <summary>A TPI stream holding <paramref name="records"/> (kind, body) from type 0x1000 on.</summary>
    public static byte[] TpiStream(IReadOnlyList<(ushort Kind, byte[] Body)> records, uint? endOverride = null)
    {
        var bytes = new List<byte>();
        foreach (var (kind, body) in records)
        {
            int length = 2 + body.Length;
            int padded = (length + 2 + 3) / 4 * 4 - 2;
            var record = new byte[2 + padded];
            BinaryPrimitives.WriteUInt16LittleEndian(record, (ushort)padded);
            BinaryPrimitives.WriteUInt16LittleEndian(record.AsSpan(2), kind);
            body.CopyTo(record, 4);
            for (int i = 4 + body.Length, pad = record.Length - i; i < record.Length; i++, pad--)
                record[i] = (byte)(0xf0 + pad);
            bytes.AddRange(record);
        }
        var header = new byte[56];
        BinaryPrimitives.WriteUInt32LittleEndian(header, 20040203);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), 56);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), 0x1000);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(12), endOverride ?? 0x1000 + (uint)records.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(16), (uint)bytes.Count);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(20), 0xffff);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(22), 0xffff);
        return [.. header, .. bytes];
    }

    public byte[] Build()
    {
        // Block 0: superblock; 1 and 2: free block maps; then stream data, the directory and its block map.
        var blocks = new List<byte[]> { new byte[BlockSize], new byte[BlockSize], new byte[BlockSize] };
        var streamBlocks = new List<List<uint>>();
        foreach (var stream in Streams)
        {
            var list = new List<uint>();
            for (int at = 0; stream is not null && at < stream.Length; at += BlockSize)
            {
                var block = new byte[BlockSize];
                stream.AsSpan(at, Math.Min(BlockSize, stream.Length - at)).CopyTo(block);
                list.Add((uint)blocks.Count);
                blocks.Add(block);
            }
            streamBlocks.Add(list);
        }
        var directory = new List<byte>();
        void U32(uint value)
        {
            var b = new byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(b, value);
            directory.AddRange(b);
        }
        U32(StreamCountOverride ?? (uint)Streams.Count);
        foreach (var stream in Streams)
            U32(stream is null ? 0xffffffff : (uint)stream.Length);
        bool first = true;
        foreach (var list in streamBlocks)
        {
            foreach (var block in list)
            {
                U32(first && FirstBlockOverride is { } over ? over : block);
                first = false;
            }
        }
        var directoryBlocks = new List<uint>();
        for (int at = 0; at < directory.Count; at += BlockSize)
        {
            var block = new byte[BlockSize];
            directory.Skip(at).Take(BlockSize).ToArray().CopyTo(block, 0);
            directoryBlocks.Add((uint)blocks.Count);
            blocks.Add(block);
        }
        var map = new byte[BlockSize];
        for (int i = 0; i < directoryBlocks.Count; i++)
            BinaryPrimitives.WriteUInt32LittleEndian(map.AsSpan(4 * i), directoryBlocks[i]);
        uint mapBlock = (uint)blocks.Count;
        blocks.Add(map);

        var super = blocks[0];
        Encoding.ASCII.GetBytes("Microsoft C/C++ MSF 7.00\r\n\u001aDS\0\0\0").CopyTo(super, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(super.AsSpan(32), BlockSize);
        BinaryPrimitives.WriteUInt32LittleEndian(super.AsSpan(36), 1);
        BinaryPrimitives.WriteUInt32LittleEndian(super.AsSpan(40), (uint)blocks.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(super.AsSpan(44), (uint)directory.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(super.AsSpan(52), mapBlock);
        return blocks.SelectMany(b => b).ToArray();
    }
}

/// <summary>Type record bodies for the malformed-input tests.</summary>
internal static class TypeRecords
{
    public const ushort Modifier = 0x1001, FieldList = 0x1203, Structure = 0x1505, Pointer = 0x1002;

    public static byte[] U16(ushort v) => BitConverter.GetBytes(v);

    public static byte[] U32(uint v) => BitConverter.GetBytes(v);

    public static byte[] Name(string name) => [.. Encoding.ASCII.GetBytes(name), 0];

    /// <summary>An LF_MEMBER inside a field list: attributes, type, offset (a small numeric leaf), name.</summary>
    public static byte[] Member(uint type, ushort offset, string name) => [.. U16(0x150d), .. U16(3), .. U32(type), .. U16(offset), .. Name(name)];

    /// <summary>An LF_BCLASS inside a field list.</summary>
    public static byte[] BaseClass(uint type) => [.. U16(0x1400), .. U16(3), .. U32(type), .. U16(0)];

    /// <summary>An LF_INDEX inside a field list: "continued in that field list".</summary>
    public static byte[] Continue(uint fieldList) => [.. U16(0x1404), .. U16(0), .. U32(fieldList)];

    public static byte[] Struct(uint fieldList, ushort size, string name, ushort count = 1) =>
        [.. U16(count), .. U16(0), .. U32(fieldList), .. U32(0), .. U32(0), .. U16(size), .. Name(name)];
}
