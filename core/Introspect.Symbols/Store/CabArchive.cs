using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Introspect.Symbols.Store;

/// <summary>Reads Microsoft cabinet files (<c>MSCF</c>), the format of a symbol server's compressed files (<c>.pd_</c>,
/// <c>.dl_</c>, ...): uncompressed and MSZIP folders. LZX and Quantum folders are refused by name.</summary>
/// <remarks>
/// MSZIP compresses each data block of at most 32 KiB as a deflate stream after the signature <c>CK</c>, and a block
/// may refer back into the previous block's output. <see cref="DeflateStream"/> cannot be given such history, so the
/// history is put in front of the block as a stored (uncompressed) deflate block: the decompressor then has it in its
/// window, and the block's own output follows it.
/// </remarks>
internal static class CabArchive
{
    private const int MaxBlockOutput = 32 * 1024;
    private const int MaxFolders = 1024;
    private const int MaxFiles = 65535;

    public static bool IsCabinet(ReadOnlySpan<byte> start) => start.StartsWith("MSCF"u8);

    /// <summary>The files of the cabinet, as (name, size).</summary>
    public static List<(string Name, uint Size)> List(ReadOnlySpan<byte> cabinet, string name) =>
        [.. ReadDirectory(cabinet, name).Files.Select(f => (f.Name, f.Size))];

    /// <summary>Writes the file of that name (or the only file when <paramref name="fileName"/> is null) to <paramref name="output"/>.</summary>
    /// <exception cref="InvalidDataException">The cabinet is malformed, or has no such file.</exception>
    /// <exception cref="NotSupportedException">The file's folder is compressed with LZX or Quantum.</exception>
    public static void Extract(ReadOnlySpan<byte> cabinet, string name, string? fileName, Stream output)
    {
        var directory = ReadDirectory(cabinet, name);
        CabFile file;
        if (fileName is null)
        {
            if (directory.Files.Count != 1)
                Malformed.Throw(name, "the cabinet's file count", Malformed.Number((ulong)directory.Files.Count), "one file (name the file to take)");
            file = directory.Files[0];
        }
        else
        {
            file = directory.Files.FirstOrDefault(f => string.Equals(f.Name, fileName, StringComparison.OrdinalIgnoreCase))
                ?? Malformed.Throw<CabFile>(name, "the cabinet's files", string.Join(", ", directory.Files.Select(f => f.Name)), $"a file named {fileName}");
        }
        if (file.Folder >= directory.Folders.Count)
            Malformed.Throw(name, $"the folder of {file.Name}", Malformed.Number((ulong)file.Folder), $"a folder below {directory.Folders.Count}");
        var folder = directory.Folders[file.Folder];
        int compression = folder.Compression & 0x0f;
        if (compression is 2 or 3)
            throw new NotSupportedException($"{name}: {file.Name} is compressed with {(compression == 3 ? "LZX" : "Quantum")}, which this reader does not decompress (only uncompressed and MSZIP cabinets); expand it with cabextract or expand.exe.");
        if (compression > 3)
            Malformed.Throw(name, $"the compression of folder {file.Folder}", Malformed.Hex(folder.Compression), "0 (none), 1 (MSZIP), 2 (Quantum) or 3 (LZX)");

        // Walk the folder's data blocks, keeping the bytes that belong to the file.
        ulong folderOffset = 0;
        ulong fileStart = file.Offset, fileEnd = (ulong)file.Offset + file.Size;
        int at = folder.DataStart > int.MaxValue ? int.MaxValue : (int)folder.DataStart;
        var history = new byte[MaxBlockOutput];
        int historyLength = 0;
        var block = new byte[MaxBlockOutput];
        for (int i = 0; i < folder.BlockCount && folderOffset < fileEnd; i++)
        {
            if (at < 0 || cabinet.Length - 8 - directory.DataReserve < at)
                Malformed.Truncated(name, $"data block {i} of folder {file.Folder}", at, 8 + directory.DataReserve, cabinet.Length);
            int compressedSize = BinaryPrimitives.ReadUInt16LittleEndian(cabinet[(at + 4)..]);
            int outputSize = BinaryPrimitives.ReadUInt16LittleEndian(cabinet[(at + 6)..]);
            int dataAt = at + 8 + directory.DataReserve;
            if (compressedSize > cabinet.Length - dataAt)
                Malformed.Truncated(name, $"data block {i} of folder {file.Folder}", dataAt, compressedSize, cabinet.Length);
            if (outputSize > MaxBlockOutput)
                Malformed.Throw(name, $"the uncompressed size of data block {i}", Malformed.Number((ulong)outputSize), $"at most {MaxBlockOutput}");
            var data = cabinet.Slice(dataAt, compressedSize);
            if (compression == 0)
            {
                if (compressedSize != outputSize)
                    Malformed.Throw(name, $"the sizes of uncompressed data block {i}", $"{compressedSize} and {outputSize}", "equal sizes");
                data.CopyTo(block);
            }
            else
            {
                InflateBlock(name, i, data, history.AsSpan(0, historyLength), block.AsSpan(0, outputSize));
                block.AsSpan(0, outputSize).CopyTo(history);
                historyLength = outputSize;
            }

            // The part of this block that lies inside the file.
            ulong blockStart = folderOffset, blockEnd = folderOffset + (ulong)outputSize;
            ulong from = Math.Max(blockStart, fileStart), to = Math.Min(blockEnd, fileEnd);
            if (from < to)
                output.Write(block, (int)(from - blockStart), (int)(to - from));
            folderOffset = blockEnd;
            at = dataAt + compressedSize;
        }
        if (folderOffset < fileEnd)
            Malformed.Throw(name, $"the data of {file.Name}", $"{folderOffset - Math.Min(folderOffset, fileStart)} of its {file.Size} bytes", "as many bytes as its file entry says (the cabinet is truncated?)");
    }

    private static void InflateBlock(string name, int index, ReadOnlySpan<byte> data, ReadOnlySpan<byte> history, Span<byte> output)
    {
        if (data.Length < 2 || data[0] != (byte)'C' || data[1] != (byte)'K')
            Malformed.Throw(name, $"the signature of MSZIP block {index}", data.Length < 2 ? "missing" : $"\"{(char)data[0]}{(char)data[1]}\"", "\"CK\"");
        // A stored deflate block holding the history (header byte 0: not final, stored; then LEN and its complement),
        // then the block's own deflate data, which starts on a byte boundary.
        var stream = new byte[5 + history.Length + data.Length - 2];
        stream[0] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(stream.AsSpan(1), (ushort)history.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(stream.AsSpan(3), unchecked((ushort)~history.Length));
        history.CopyTo(stream.AsSpan(5));
        data[2..].CopyTo(stream.AsSpan(5 + history.Length));

        using var inflater = new DeflateStream(new MemoryStream(stream), CompressionMode.Decompress);
        var scratch = new byte[history.Length + output.Length + 1];
        int total = 0;
        try
        {
            while (total < scratch.Length)
            {
                int read = inflater.Read(scratch, total, scratch.Length - total);
                if (read == 0)
                    break;
                total += read;
            }
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{name}: MSZIP block {index} is not valid deflate data: {e.Message}", e);
        }
        if (total != history.Length + output.Length)
            Malformed.Throw(name, $"the output of MSZIP block {index}", $"{Math.Max(0, total - history.Length)} bytes", $"the {output.Length} bytes its header gives");
        scratch.AsSpan(history.Length, output.Length).CopyTo(output);
    }

    private sealed record CabFolder(uint DataStart, int BlockCount, ushort Compression);

    private sealed record CabFile(string Name, uint Size, uint Offset, int Folder);

    private sealed record CabDirectory(List<CabFolder> Folders, List<CabFile> Files, int DataReserve);

    private static CabDirectory ReadDirectory(ReadOnlySpan<byte> cabinet, string name)
    {
        var reader = new SpanReader(cabinet, name, "the cabinet header");
        if (!IsCabinet(cabinet))
            Malformed.Throw(name, "the cabinet signature", cabinet.Length >= 4 ? $"\"{Encoding.ASCII.GetString(cabinet[..4])}\"" : "missing", "\"MSCF\"");
        reader.Skip(16);
        uint filesAt = reader.U32();
        reader.Skip(6); // reserved, version
        ushort folderCount = reader.U16();
        ushort fileCount = reader.U16();
        ushort flags = reader.U16();
        reader.Skip(4); // set id, cabinet index
        int folderReserve = 0, dataReserve = 0;
        if ((flags & 4) != 0)
        {
            int headerReserve = reader.U16();
            folderReserve = reader.U8();
            dataReserve = reader.U8();
            reader.Skip(headerReserve);
        }
        if ((flags & 1) != 0)
        {
            reader.CString();
            reader.CString();
        }
        if ((flags & 2) != 0)
        {
            reader.CString();
            reader.CString();
        }
        if (folderCount > MaxFolders || folderCount > reader.Remaining / (8 + folderReserve))
            Malformed.Throw(name, "the cabinet's folder count", Malformed.Number(folderCount), $"at most {Math.Min(MaxFolders, reader.Remaining / (8 + folderReserve))}");
        var folders = new List<CabFolder>(folderCount);
        for (int i = 0; i < folderCount; i++)
        {
            uint start = reader.U32();
            ushort blocks = reader.U16();
            ushort compression = reader.U16();
            reader.Skip(folderReserve);
            folders.Add(new CabFolder(start, blocks, compression));
        }
        reader.Seek(filesAt > int.MaxValue ? int.MaxValue : (int)filesAt);
        if (fileCount > MaxFiles || fileCount > reader.Remaining / 17)
            Malformed.Throw(name, "the cabinet's file count", Malformed.Number(fileCount), $"at most {reader.Remaining / 17} (file entries of 17 bytes or more)");
        var files = new List<CabFile>(fileCount);
        for (int i = 0; i < fileCount; i++)
        {
            uint size = reader.U32();
            uint offset = reader.U32();
            ushort folder = reader.U16();
            reader.Skip(6); // date, time, attributes
            files.Add(new CabFile(reader.CString(), size, offset, folder));
        }
        return new CabDirectory(folders, files, dataReserve);
    }
}
