using System.Buffers.Binary;

namespace Introspect.Symbols.Pdb;

/// <summary>An MSF 7.00 container ("big MSF"): a superblock, a stream directory, and streams scattered over fixed-size blocks.</summary>
/// <remarks>
/// The file is held whole; a stream whose blocks happen to be consecutive is a slice of it, any other is assembled once
/// into its own array. Nothing is allocated from a count in the file before that count has been checked against the
/// bytes that would have to hold it.
/// </remarks>
internal sealed class MsfFile
{
    private static ReadOnlySpan<byte> Magic => "Microsoft C/C++ MSF 7.00\r\n\u001aDS\0\0\0"u8;

    private const uint NilStreamSize = 0xffffffff;

    private readonly ReadOnlyMemory<byte> _file;
    private readonly uint[] _sizes;
    private readonly int[] _blockStart; // where each stream's block list starts in _blocks
    private readonly uint[] _blocks;

    private MsfFile(string name, ReadOnlyMemory<byte> file, int blockSize, uint blockCount, uint[] sizes, int[] blockStart, uint[] blocks)
    {
        Name = name;
        _file = file;
        BlockSize = blockSize;
        BlockCount = blockCount;
        _sizes = sizes;
        _blockStart = blockStart;
        _blocks = blocks;
    }

    public string Name { get; }

    public int BlockSize { get; }

    public uint BlockCount { get; }

    public int StreamCount => _sizes.Length;

    public static bool HasMagic(ReadOnlySpan<byte> file) => file.StartsWith(Magic);

    /// <summary>A stream's size in bytes; 0 for a nil or missing stream.</summary>
    public uint StreamSize(int index) =>
        unchecked((uint)index) < (uint)_sizes.Length && _sizes[index] != NilStreamSize ? _sizes[index] : 0;

    public bool HasStream(int index) => unchecked((uint)index) < (uint)_sizes.Length && _sizes[index] != NilStreamSize;

    public static MsfFile Open(string name, ReadOnlyMemory<byte> file)
    {
        var bytes = file.Span;
        if (bytes.Length < 56)
            Malformed.Truncated(name, "the MSF superblock", 0, 56, bytes.Length);
        if (!bytes.StartsWith(Magic))
        {
            if (bytes.StartsWith("Microsoft C/C++ program database 2.00"u8))
                Malformed.Throw(name, "the file signature", "\"Microsoft C/C++ program database 2.00\" (a PDB 2.0 file)", "an MSF 7.00 PDB (Visual C++ 7.0 and later)");
            Malformed.Throw(name, "the file signature", $"\"{System.Text.Encoding.ASCII.GetString(bytes[..24]).Replace('\0', '.')}\"", "\"Microsoft C/C++ MSF 7.00\"");
        }
        uint blockSize = BinaryPrimitives.ReadUInt32LittleEndian(bytes[32..]);
        uint blockCount = BinaryPrimitives.ReadUInt32LittleEndian(bytes[40..]);
        uint directoryBytes = BinaryPrimitives.ReadUInt32LittleEndian(bytes[44..]);
        uint blockMapAddress = BinaryPrimitives.ReadUInt32LittleEndian(bytes[52..]);
        if (blockSize is not (512 or 1024 or 2048 or 4096 or 8192 or 16384 or 32768))
            Malformed.Throw(name, "the superblock's BlockSize", Malformed.Number(blockSize), "512, 1024, 2048, 4096 (or a larger power of two up to 32768)");
        if (blockCount == 0 || (ulong)blockCount * blockSize > (ulong)bytes.Length + blockSize)
            Malformed.Throw(name, "the superblock's NumBlocks", Malformed.Number(blockCount),
                $"at most {((ulong)bytes.Length + blockSize - 1) / blockSize} (the file has {bytes.Length} bytes of {blockSize}-byte blocks)");
        if (directoryBytes < 4 || directoryBytes > (ulong)blockCount * blockSize)
            Malformed.Throw(name, "the superblock's NumDirectoryBytes", Malformed.Number(directoryBytes), $"between 4 and the file's {(ulong)blockCount * blockSize} bytes");
        uint directoryBlocks = (directoryBytes + blockSize - 1) / blockSize;
        if (directoryBlocks > blockSize / 4)
            Malformed.Throw(name, "the superblock's NumDirectoryBytes", Malformed.Number(directoryBytes), $"at most {(ulong)blockSize / 4 * blockSize} (one block of directory block numbers)");
        var blockMap = BlockSpan(name, bytes, blockSize, blockCount, blockMapAddress, "the directory's block map");

        // The directory, assembled from its blocks.
        var directory = new byte[directoryBytes];
        for (int i = 0; i < directoryBlocks; i++)
        {
            uint block = BinaryPrimitives.ReadUInt32LittleEndian(blockMap[(4 * i)..]);
            var source = BlockSpan(name, bytes, blockSize, blockCount, block, $"directory block {i}");
            int offset = i * (int)blockSize;
            int count = (int)Math.Min(blockSize, directoryBytes - (uint)offset);
            source[..count].CopyTo(directory.AsSpan(offset));
        }

        var reader = new SpanReader(directory, name, "the MSF stream directory");
        uint streamCount = reader.U32();
        uint maxStreams = (directoryBytes - 4) / 4;
        if (streamCount > maxStreams)
            Malformed.Throw(name, "the stream directory's NumStreams", Malformed.Number(streamCount),
                $"at most {maxStreams} (each stream needs 4 bytes of the {directoryBytes}-byte directory)");
        var sizes = new uint[streamCount];
        var blockStart = new int[streamCount + 1];
        long totalBlocks = 0;
        for (int i = 0; i < streamCount; i++)
        {
            uint size = reader.U32();
            sizes[i] = size;
            blockStart[i] = (int)totalBlocks;
            if (size != NilStreamSize)
            {
                if ((ulong)size > (ulong)blockCount * blockSize)
                    Malformed.Throw(name, $"the size of stream {i}", Malformed.Number(size), $"at most the file's {(ulong)blockCount * blockSize} bytes");
                totalBlocks += (size + blockSize - 1) / blockSize;
            }
        }
        blockStart[streamCount] = (int)Math.Min(totalBlocks, int.MaxValue);
        if (totalBlocks > reader.Remaining / 4)
            Malformed.Throw(name, "the stream directory", $"{totalBlocks} block numbers for {streamCount} streams",
                $"at most {reader.Remaining / 4} (what the rest of the {directoryBytes}-byte directory holds)");
        var blocks = new uint[totalBlocks];
        for (int i = 0; i < totalBlocks; i++)
        {
            uint block = reader.U32();
            if (block >= blockCount)
                Malformed.Throw(name, $"block number {i} of the stream directory", Malformed.Number(block), $"a block below NumBlocks ({blockCount})");
            blocks[i] = block;
        }
        return new MsfFile(name, file, (int)blockSize, blockCount, sizes, blockStart, blocks);
    }

    /// <summary>A stream's bytes; empty for a nil or missing stream.</summary>
    /// <exception cref="InvalidDataException">A block of the stream lies past the end of a truncated file.</exception>
    public ReadOnlyMemory<byte> ReadStream(int index, string what)
    {
        if (!HasStream(index))
            return ReadOnlyMemory<byte>.Empty;
        uint size = _sizes[index];
        int first = _blockStart[index];
        int count = (int)((size + (uint)BlockSize - 1) / (uint)BlockSize);
        if (count == 0)
            return ReadOnlyMemory<byte>.Empty;

        bool consecutive = true;
        for (int i = 1; i < count && consecutive; i++)
            consecutive = _blocks[first + i] == _blocks[first] + (uint)i;
        if (consecutive)
        {
            long start = (long)_blocks[first] * BlockSize;
            if (start + size > _file.Length)
                Malformed.Throw(Name, $"stream {index} ({what})", $"{size} bytes from block {_blocks[first]} (offset {Malformed.Hex((ulong)start)})",
                    $"data inside the file, which ends at {Malformed.Hex((ulong)_file.Length)} (truncated?)");
            return _file.Slice((int)start, (int)size);
        }

        var data = new byte[size];
        var file = _file.Span;
        for (int i = 0; i < count; i++)
        {
            uint block = _blocks[first + i];
            int offset = i * BlockSize;
            int length = (int)Math.Min((uint)BlockSize, size - (uint)offset);
            long at = (long)block * BlockSize;
            if (at + length > file.Length)
                Malformed.Throw(Name, $"block {i} of stream {index} ({what})", $"block {block} at offset {Malformed.Hex((ulong)at)}",
                    $"a block inside the file, which ends at {Malformed.Hex((ulong)file.Length)} (truncated?)");
            file.Slice((int)at, length).CopyTo(data.AsSpan(offset));
        }
        return data;
    }

    private static ReadOnlySpan<byte> BlockSpan(string name, ReadOnlySpan<byte> file, uint blockSize, uint blockCount, uint block, string what)
    {
        if (block >= blockCount)
            Malformed.Throw(name, what, $"block {block}", $"a block below NumBlocks ({blockCount})");
        long at = (long)block * blockSize;
        if (at + blockSize > file.Length)
            Malformed.Throw(name, what, $"block {block} at offset {Malformed.Hex((ulong)at)}", $"a block inside the file, which ends at {Malformed.Hex((ulong)file.Length)} (truncated?)");
        return file.Slice((int)at, (int)blockSize);
    }
}
