using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Introspect.Symbols.Tests;

/// <summary>Writes single-file cabinets the way Microsoft's makecab does for MSZIP: 32 KiB blocks, each a deflate
/// stream that may refer back into the previous block's output.</summary>
internal static class CabBuilder
{
    public const ushort None = 0, MsZip = 1, Lzx = 0x1503;

    /// <summary>A cabinet holding <paramref name="content"/> as <paramref name="name"/>.</summary>
    /// <param name="dependentBlocks">Counts the MSZIP blocks whose deflate data refers to the previous block's output.</param>
    public static byte[] Build(string name, byte[] content, ushort compression, out int dependentBlocks)
    {
        dependentBlocks = 0;
        var blocks = new List<(byte[] Data, int Output)>();
        for (int at = 0; at < content.Length; at += 32768)
        {
            int length = Math.Min(32768, content.Length - at);
            var chunk = content.AsSpan(at, length);
            if (compression != MsZip)
            {
                blocks.Add((chunk.ToArray(), length));
                continue;
            }
            // Compress the previous block and this one as one stream, flushing between them: the flush ends on a byte
            // boundary without forgetting the history, so what follows is this block's data, free to refer back.
            var history = at == 0 ? [] : content.AsSpan(at - 32768, 32768);
            using var output = new MemoryStream();
            long mark;
            using (var deflate = new DeflateStream(output, CompressionLevel.SmallestSize, leaveOpen: true))
            {
                deflate.Write(history);
                deflate.Flush();
                mark = output.Length;
                deflate.Write(chunk);
            }
            var data = output.ToArray()[(int)mark..];
            if (at > 0 && !Inflates(data, length))
                dependentBlocks++;
            blocks.Add(([.. "CK"u8, .. data], length));
        }

        var nameBytes = Encoding.ASCII.GetBytes(name + "\0");
        int headerSize = 36, folderSize = 8, fileSize = 16 + nameBytes.Length;
        int dataStart = headerSize + folderSize + fileSize;
        int total = dataStart + blocks.Sum(b => 8 + b.Data.Length);
        var cab = new byte[total];
        "MSCF"u8.CopyTo(cab);
        BinaryPrimitives.WriteUInt32LittleEndian(cab.AsSpan(8), (uint)total);
        BinaryPrimitives.WriteUInt32LittleEndian(cab.AsSpan(16), (uint)(headerSize + folderSize));
        cab[24] = 3;
        cab[25] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(cab.AsSpan(26), 1); // folders
        BinaryPrimitives.WriteUInt16LittleEndian(cab.AsSpan(28), 1); // files
        BinaryPrimitives.WriteUInt32LittleEndian(cab.AsSpan(36), (uint)dataStart);
        BinaryPrimitives.WriteUInt16LittleEndian(cab.AsSpan(40), (ushort)blocks.Count);
        BinaryPrimitives.WriteUInt16LittleEndian(cab.AsSpan(42), compression);
        BinaryPrimitives.WriteUInt32LittleEndian(cab.AsSpan(44), (uint)content.Length);
        nameBytes.CopyTo(cab, 60);
        int p = dataStart;
        foreach (var (data, outputSize) in blocks)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(cab.AsSpan(p + 4), (ushort)data.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(cab.AsSpan(p + 6), (ushort)outputSize);
            data.CopyTo(cab, p + 8);
            p += 8 + data.Length;
        }
        return cab;
    }

    /// <summary>Whether a block's deflate data gives its output on its own, without the previous block.</summary>
    private static bool Inflates(byte[] data, int length)
    {
        try
        {
            using var inflate = new DeflateStream(new MemoryStream(data), CompressionMode.Decompress);
            var output = new byte[length + 1];
            int total = 0, read;
            while ((read = inflate.Read(output, total, output.Length - total)) > 0)
                total += read;
            return total == length;
        }
        catch (InvalidDataException)
        {
            return false;
        }
    }
}
