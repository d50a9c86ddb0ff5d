using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Introspect.Abi;

namespace Introspect.Core.Dumps;

/// <summary>What writing a dump did.</summary>
/// <param name="BytesCovered">How many bytes of mapped memory the dump holds.</param>
/// <param name="UnreadableBytes">How many of those could not be read and were written as zeros.</param>
/// <param name="FileSize">The length of the file written.</param>
public readonly record struct DumpResult(ulong BytesCovered, ulong UnreadableBytes, ulong FileSize);

/// <summary>Writes a physical memory to a file: a raw image, or an ELF core file like QEMU's <c>dump-guest-memory</c>.</summary>
/// <remarks>
/// Both formats read the memory map's ranges in chunks of <see cref="ChunkSize"/>; a chunk that fails is read again
/// page by page so that one bad page costs 4 KiB of zeros, not a megabyte. Zero chunks are not written but skipped,
/// so the file system keeps them as holes where it can.
/// </remarks>
public static class PhysicalMemoryDump
{
    public const int ChunkSize = 1 << 20;
    private const int PageSize = 4096;

    /// <summary>Writes a raw image: file offset = physical address, holes left as zeros, up to the highest mapped address.</summary>
    public static DumpResult WriteRaw(IPhysicalMemory memory, string path, IProgress<ulong>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(memory);
        var map = memory.MemoryMap;
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, bufferSize: 0);
        ulong fileSize = map.Count == 0 ? 0 : map.MaxAddress + 1;
        if (fileSize > long.MaxValue)
            throw new IOException($"{path}: a raw image up to physical address 0x{map.MaxAddress:x} would exceed the largest file size.");
        file.SetLength((long)fileSize);
        var (covered, unreadable) = CopyRanges(memory, map, file, range => (long)range.Base, progress, cancel);
        return new DumpResult(covered, unreadable, fileSize);
    }

    /// <summary>Writes an ELF64 core file: one <c>PT_LOAD</c> per memory-map range (physical = virtual address), and a <c>VMCOREINFO</c> note where the hints hold one.</summary>
    public static DumpResult WriteElf(IPhysicalMemory memory, string path, ConnectorHints? hints = null, IProgress<ulong>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(memory);
        hints ??= ConnectorHints.None;
        var map = memory.MemoryMap;
        const int ElfHeaderSize = 64;
        const int ProgramHeaderSize = 56;
        byte[] note = hints.VmcoreInfo is { } vmcoreInfo ? BuildNote("VMCOREINFO", 0, Encoding.ASCII.GetBytes(vmcoreInfo)) : [];
        int headerCount = map.Count + (note.Length > 0 ? 1 : 0);
        if (headerCount >= 0xffff)
            throw new IOException($"{path}: an ELF file holds at most 65534 program headers; the memory map has {map.Count} ranges.");

        ulong headersEnd = ElfHeaderSize + (ulong)(headerCount * ProgramHeaderSize);
        ulong noteOffset = headersEnd;
        ulong dataOffset = AlignUp(noteOffset + (ulong)note.Length, PageSize);
        var segmentOffsets = new ulong[map.Count];
        for (int i = 0; i < map.Count; i++)
        {
            segmentOffsets[i] = dataOffset;
            dataOffset = AlignUp(dataOffset + map[i].Size, PageSize);
        }

        var headers = new byte[checked((int)headersEnd)];
        WriteElfHeader(headers, MachineOf(hints.Architecture), (ushort)headerCount);
        int at = ElfHeaderSize;
        if (note.Length > 0)
        {
            WriteProgramHeader(headers.AsSpan(at), type: 4, flags: 0, offset: noteOffset, address: 0, size: (ulong)note.Length, align: 4);
            at += ProgramHeaderSize;
        }
        for (int i = 0; i < map.Count; i++, at += ProgramHeaderSize)
            WriteProgramHeader(headers.AsSpan(at), type: 1, flags: 7, offset: segmentOffsets[i], address: map[i].Base, size: map[i].Size, align: 0);

        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, bufferSize: 0);
        file.SetLength(checked((long)dataOffset));
        file.Write(headers);
        file.Write(note);
        var (covered, unreadable) = CopyRanges(memory, map, file, range => (long)segmentOffsets[map.IndexOf(range.Base)], progress, cancel);
        return new DumpResult(covered, unreadable, dataOffset);
    }

    private static (ulong Covered, ulong Unreadable) CopyRanges(
        IPhysicalMemory memory, MemoryMap map, FileStream file, Func<MemoryRange, long> fileOffsetOf, IProgress<ulong>? progress, CancellationToken cancel)
    {
        var chunk = ArrayPool<byte>.Shared.Rent(ChunkSize);
        var pages = new MemoryRequest[ChunkSize / PageSize];
        ulong covered = 0, unreadable = 0;
        try
        {
            foreach (var range in map)
            {
                long fileOffset = fileOffsetOf(range);
                for (ulong done = 0; done < range.Size;)
                {
                    cancel.ThrowIfCancellationRequested();
                    int length = (int)Math.Min((ulong)ChunkSize, range.Size - done);
                    var buffer = chunk.AsMemory(0, length);
                    unreadable += ReadChunk(memory, range.Base + done, buffer, pages);
                    if (buffer.Span.IndexOfAnyExcept((byte)0) >= 0)
                    {
                        file.Position = fileOffset + (long)done;
                        file.Write(buffer.Span);
                    }
                    done += (ulong)length;
                    covered += (ulong)length;
                    progress?.Report(covered);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
        return (covered, unreadable);
    }

    /// <summary>Reads one chunk; what cannot be read becomes zeros. Returns how many bytes were unreadable.</summary>
    private static ulong ReadChunk(IPhysicalMemory memory, ulong address, Memory<byte> buffer, MemoryRequest[] pages)
    {
        Span<MemoryRequest> whole = [new MemoryRequest(address, buffer)];
        memory.Read(whole);
        if (whole[0].Succeeded)
            return 0;

        int count = 0;
        for (int offset = 0; offset < buffer.Length; count++)
        {
            // Entries end at page boundaries so that one bad page fails alone.
            int length = (int)Math.Min((ulong)(buffer.Length - offset), PageSize - ((address + (ulong)offset) % PageSize));
            pages[count] = new MemoryRequest(address + (ulong)offset, buffer.Slice(offset, length));
            offset += length;
        }
        memory.Read(pages.AsSpan(0, count));
        ulong unreadable = 0;
        foreach (ref var page in pages.AsSpan(0, count))
        {
            if (page.Succeeded)
                continue;
            page.Buffer.Span.Clear();
            unreadable += (ulong)page.Buffer.Length;
        }
        return unreadable;
    }

    private static ushort MachineOf(MachineArchitecture architecture) => architecture switch
    {
        MachineArchitecture.X86 or MachineArchitecture.X86Pae => 3,
        MachineArchitecture.Arm64 => 183,
        _ => 62,
    };

    private static void WriteElfHeader(Span<byte> header, ushort machine, ushort programHeaderCount)
    {
        "\u007fELF"u8.CopyTo(header);
        header[4] = 2; // 64-bit
        header[5] = 1; // little-endian
        header[6] = 1; // ELF version 1
        BinaryPrimitives.WriteUInt16LittleEndian(header[16..], 4); // ET_CORE
        BinaryPrimitives.WriteUInt16LittleEndian(header[18..], machine);
        BinaryPrimitives.WriteUInt32LittleEndian(header[20..], 1);
        BinaryPrimitives.WriteUInt64LittleEndian(header[32..], 64); // program headers follow this header
        BinaryPrimitives.WriteUInt16LittleEndian(header[52..], 64);
        BinaryPrimitives.WriteUInt16LittleEndian(header[54..], 56);
        BinaryPrimitives.WriteUInt16LittleEndian(header[56..], programHeaderCount);
    }

    private static void WriteProgramHeader(Span<byte> header, uint type, uint flags, ulong offset, ulong address, ulong size, ulong align)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(header, type);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], flags);
        BinaryPrimitives.WriteUInt64LittleEndian(header[8..], offset);
        BinaryPrimitives.WriteUInt64LittleEndian(header[16..], address); // virtual = physical, as QEMU writes without paging
        BinaryPrimitives.WriteUInt64LittleEndian(header[24..], address);
        BinaryPrimitives.WriteUInt64LittleEndian(header[32..], size);
        BinaryPrimitives.WriteUInt64LittleEndian(header[40..], size);
        BinaryPrimitives.WriteUInt64LittleEndian(header[48..], align);
    }

    private static byte[] BuildNote(string name, uint type, byte[] description)
    {
        int nameSize = Encoding.ASCII.GetByteCount(name) + 1;
        var note = new byte[12 + (int)AlignUp((ulong)nameSize, 4) + (int)AlignUp((ulong)description.Length, 4)];
        BinaryPrimitives.WriteUInt32LittleEndian(note, (uint)nameSize);
        BinaryPrimitives.WriteUInt32LittleEndian(note.AsSpan(4), (uint)description.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(note.AsSpan(8), type);
        Encoding.ASCII.GetBytes(name, note.AsSpan(12));
        description.CopyTo(note.AsSpan(12 + (int)AlignUp((ulong)nameSize, 4)));
        return note;
    }

    private static ulong AlignUp(ulong value, ulong alignment) => (value + alignment - 1) & ~(alignment - 1);
}
