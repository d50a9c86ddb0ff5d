using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Introspect.Connectors.Coredump.IO;

namespace Introspect.Connectors.Coredump.Kdump;

/// <summary>makedumpfile's <c>disk_dump_header</c> and <c>kdump_sub_header</c> (64-bit layout), checked against the file.</summary>
internal sealed class KdumpHeader
{
    public const uint StatusIncomplete = 0x8;

    private const int MinimumBlockSize = 1024;
    private const int MaximumBlockSize = 1 << 20;
    private const int MainHeaderSize = 464;
    private const int SubHeaderSize = 104;

    public int HeaderVersion { get; private init; }
    public string Machine { get; private init; } = "";
    public string Release { get; private init; } = "";
    public uint Status { get; private init; }
    public int BlockSize { get; private init; }
    public int SubHeaderBlocks { get; private init; }
    public uint BitmapBlocks { get; private init; }
    public ulong MaxMapNr { get; private init; }
    public ulong PhysBase { get; private init; }
    public ulong VmcoreInfoOffset { get; private init; }
    public ulong VmcoreInfoSize { get; private init; }
    public ulong NoteOffset { get; private init; }
    public ulong NoteSize { get; private init; }

    public ulong BitmapOffset => (1 + (ulong)SubHeaderBlocks) * (ulong)BlockSize;

    public ulong BitmapLength => BitmapBlocks * (ulong)BlockSize;

    public ulong DescriptorOffset => BitmapOffset + BitmapLength;

    public bool Incomplete => (Status & StatusIncomplete) != 0;

    /// <summary>The compressions the header says pages use.</summary>
    public uint CompressionFlags => Status & Codecs.CompressionMask;

    /// <exception cref="InvalidDataException">A field is out of range or points outside the file.</exception>
    public static KdumpHeader Parse(DataSource file)
    {
        string name = file.Name;
        var main = file.ReadExact(0, MainHeaderSize, "the kdump disk_dump_header");
        if (!main.AsSpan().StartsWith(FormatDetector.KdumpMagic))
            ThrowHelper.ThrowInvalid(name, "the signature is not 'KDUMP   '; expected a makedumpfile kdump-compressed dump.");
        int version = BinaryPrimitives.ReadInt32LittleEndian(main.AsSpan(8));
        if (version < 1)
            ThrowHelper.ThrowInvalid(name, $"disk_dump_header.header_version is {version}; expected 1 or more.");
        int blockSize = BinaryPrimitives.ReadInt32LittleEndian(main.AsSpan(428));
        if (blockSize is < MinimumBlockSize or > MaximumBlockSize || (blockSize & (blockSize - 1)) != 0)
        {
            ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture,
                $"disk_dump_header.block_size is {blockSize}; expected a power of two from {MinimumBlockSize} to {MaximumBlockSize} (the 64-bit header layout; 32-bit kdump files are not read)."));
        }
        int subBlocks = BinaryPrimitives.ReadInt32LittleEndian(main.AsSpan(432));
        uint bitmapBlocks = BinaryPrimitives.ReadUInt32LittleEndian(main.AsSpan(436));
        uint maxMapNr32 = BinaryPrimitives.ReadUInt32LittleEndian(main.AsSpan(440));
        if (subBlocks < 0 || !file.Contains((ulong)blockSize, (ulong)subBlocks * (ulong)blockSize))
        {
            ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture,
                $"disk_dump_header.sub_hdr_size is {subBlocks} blocks of {blockSize} bytes, which does not fit in the file (0x{file.Length:x} bytes)."));
        }

        ulong physBase = 0, vmcoreInfoOffset = 0, vmcoreInfoSize = 0, noteOffset = 0, noteSize = 0;
        ulong maxMapNr = maxMapNr32;
        if (subBlocks > 0)
        {
            var sub = file.ReadExact((ulong)blockSize, SubHeaderSize, "the kdump_sub_header");
            physBase = U64(sub, 0);
            if (version >= 3)
            {
                vmcoreInfoOffset = U64(sub, 32);
                vmcoreInfoSize = U64(sub, 40);
            }
            if (version >= 4)
            {
                noteOffset = U64(sub, 48);
                noteSize = U64(sub, 56);
            }
            // From version 6 the 32-bit field is obsolete; the sub header holds the full count.
            if (version >= 6)
                maxMapNr = U64(sub, 96);
        }
        var header = new KdumpHeader
        {
            HeaderVersion = version,
            Release = Text(main.AsSpan(12 + 2 * 65, 65)),
            Machine = Text(main.AsSpan(12 + 4 * 65, 65)),
            Status = BinaryPrimitives.ReadUInt32LittleEndian(main.AsSpan(424)),
            BlockSize = blockSize,
            SubHeaderBlocks = subBlocks,
            BitmapBlocks = bitmapBlocks,
            MaxMapNr = maxMapNr,
            PhysBase = physBase,
            VmcoreInfoOffset = vmcoreInfoOffset,
            VmcoreInfoSize = vmcoreInfoSize,
            NoteOffset = noteOffset,
            NoteSize = noteSize,
        };
        header.Check(file);
        return header;
    }

    private void Check(DataSource file)
    {
        string name = file.Name;
        if (!file.Contains(BitmapOffset, BitmapLength) || BitmapLength % 2 != 0)
        {
            ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture,
                $"disk_dump_header.bitmap_blocks is {BitmapBlocks}: its two bitmaps of 0x{BitmapLength / 2:x} bytes each at 0x{BitmapOffset:x} do not fit in the file (0x{file.Length:x} bytes)."));
        }
        // Each bitmap holds one bit per page, which caps max_mapnr by the file's length.
        ulong bitsPerBitmap = BitmapLength / 2 * 8;
        if (MaxMapNr > bitsPerBitmap)
        {
            ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture,
                $"max_mapnr is 0x{MaxMapNr:x} pages, but bitmap_blocks {BitmapBlocks} gives bitmaps of 0x{bitsPerBitmap:x} bits."));
        }
        if (MaxMapNr / 8 > int.MaxValue - 8)
            ThrowHelper.ThrowInvalid(name, $"max_mapnr is 0x{MaxMapNr:x} pages; the limit is 0x{(ulong)(int.MaxValue - 8) * 8:x}.");
        if (VmcoreInfoSize != 0 && (!file.Contains(VmcoreInfoOffset, VmcoreInfoSize) || VmcoreInfoSize > Formats.CoreNotes.MaxNoteAreaSize))
        {
            ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture,
                $"kdump_sub_header.offset_vmcoreinfo 0x{VmcoreInfoOffset:x} with size_vmcoreinfo 0x{VmcoreInfoSize:x} lies outside the file (0x{file.Length:x} bytes) or exceeds 0x{Formats.CoreNotes.MaxNoteAreaSize:x} bytes."));
        }
        if (NoteSize != 0 && (!file.Contains(NoteOffset, NoteSize) || NoteSize > Formats.CoreNotes.MaxNoteAreaSize))
        {
            ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture,
                $"kdump_sub_header.offset_note 0x{NoteOffset:x} with size_note 0x{NoteSize:x} lies outside the file (0x{file.Length:x} bytes) or exceeds 0x{Formats.CoreNotes.MaxNoteAreaSize:x} bytes."));
        }
    }

    private static string Text(ReadOnlySpan<byte> field)
    {
        int end = field.IndexOf((byte)0);
        return Encoding.ASCII.GetString(end < 0 ? field : field[..end]);
    }

    private static ulong U64(byte[] bytes, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(offset));
}
