using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Runtime.InteropServices;
using Introspect.Abi;
using Introspect.Connectors.Coredump.Formats;
using Introspect.Connectors.Coredump.IO;

namespace Introspect.Connectors.Coredump.Kdump;

/// <summary>makedumpfile's kdump-compressed dumps, plain (<c>KDUMP   </c>) or flattened, read page by page.</summary>
/// <remarks>
/// <para>The dumpable-page bitmap decides which pages exist: the memory map is its runs of set
/// bits. Pages makedumpfile excluded (zero pages, free pages, caches, by its dump level) are not
/// in the file and read as failed, not as zeros: a zero page that was excluded and a page whose
/// content was filtered out cannot be told apart.</para>
/// <para>The map's backing address is the dump's own physical address (page frame number times
/// the block size), so a replaced map can move ranges but only onto pages the dump holds.</para>
/// <para>Recently decompressed pages are kept in a small direct-mapped cache (one lock per slot);
/// <see cref="MemoryFlags.NoCache"/> bypasses it. Stored-uncompressed pages are copied straight
/// from the file.</para>
/// </remarks>
internal sealed class KdumpMemory : DumpMemory
{
    private const int DescriptorSize = 24;
    private const int IdealBatch = 256;

    [ThreadStatic]
    private static byte[]? t_compressed;

    [ThreadStatic]
    private static byte[]? t_page;

    private readonly MappedFile _file;
    private readonly DataSource _data;
    private readonly PageIndex _index;
    private readonly OpenContext _context;
    private readonly ulong _descriptorOffset;
    private readonly ulong _descriptorsInFile;
    private readonly bool _incomplete;
    private readonly int _blockSize;
    private readonly int _blockShift;
    private readonly byte[] _cachePages;
    private readonly ulong[] _cacheTags;
    private readonly Lock[] _cacheLocks;
    private readonly int _cacheMask;
    private int _warnedUnknownFlags;
    private int _warnedMissingLibrary;

    private KdumpMemory(MappedFile file, DataSource data, KdumpHeader header, PageIndex index, MemoryMap map, ConnectorHints hints, OpenContext context)
        : base(file.Name, map, hints, IdealBatch)
    {
        _file = file;
        _data = data;
        _index = index;
        _context = context;
        _descriptorOffset = header.DescriptorOffset;
        _descriptorsInFile = data.Length > _descriptorOffset ? (data.Length - _descriptorOffset) / DescriptorSize : 0;
        _incomplete = header.Incomplete;
        _blockSize = header.BlockSize;
        _blockShift = BitOperations.Log2((uint)header.BlockSize);
        int slots = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Clamp((1 << 20) / header.BlockSize, 16, 256));
        _cachePages = new byte[slots * header.BlockSize];
        _cacheTags = new ulong[slots];
        _cacheLocks = new Lock[slots];
        for (int i = 0; i < slots; i++)
            _cacheLocks[i] = new Lock();
        _cacheMask = slots - 1;
    }

    public static KdumpMemory Open(MappedFile file, OpenContext context)
    {
        bool flattened = file.TryGetSpan(0, FormatDetector.FlattenedMagic.Length, out var head) && head.SequenceEqual(FormatDetector.FlattenedMagic);
        DataSource data = flattened ? FlattenedFile.Open(file) : file;
        var header = KdumpHeader.Parse(data);
        string name = file.Name;

        // Refuse now, by name, a compression this machine cannot decode, rather than failing every page.
        foreach (var codec in (ReadOnlySpan<PageCodec>)[PageCodec.Zlib, PageCodec.Lzo, PageCodec.Snappy, PageCodec.Zstd])
        {
            if ((header.CompressionFlags & (uint)codec) != 0 && !Codecs.IsAvailable(codec))
            {
                throw new NotSupportedException(string.Create(CultureInfo.InvariantCulture,
                    $"{name}: pages are compressed with {Codecs.Name(codec)} (disk_dump_header.status flag 0x{(uint)codec:x}), but {Codecs.LibraryName(codec)} cannot be loaded; install it (Debian package {Codecs.PackageName(codec)})."));
            }
        }

        var index = ReadBitmap(data, header);
        ulong descriptorsNeeded = index.DumpedCount;
        ulong descriptorBytes = descriptorsNeeded * DescriptorSize;
        if (!data.Contains(header.DescriptorOffset, descriptorBytes) && !header.Incomplete)
        {
            ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture,
                $"the dumpable-page bitmap has 0x{descriptorsNeeded:x} pages set, whose page descriptors (0x{descriptorBytes:x} bytes from 0x{header.DescriptorOffset:x}) run past the end of the dump (0x{data.Length:x} bytes)."));
        }
        // makedumpfile writes page data after the whole descriptor table, so the first page's data
        // shows where the table ends: a bitmap claiming more pages would index into page data.
        Span<byte> first = stackalloc byte[8];
        if (descriptorsNeeded > 0 && !header.Incomplete && data.TryRead(header.DescriptorOffset, first)
            && BinaryPrimitives.ReadUInt64LittleEndian(first) is var firstData && firstData < header.DescriptorOffset + descriptorBytes)
        {
            ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture,
                $"the dumpable-page bitmap has 0x{descriptorsNeeded:x} pages set, but the first page's data begins at 0x{firstData:x}, inside the 0x{descriptorBytes:x} bytes their page descriptors need from 0x{header.DescriptorOffset:x}."));
        }

        var runs = new List<(ulong Start, ulong Length)>();
        BitRuns.Collect(index.Bytes, index.PageCount, runs);
        var ranges = new MemoryRange[runs.Count];
        int shift = BitOperations.Log2((uint)header.BlockSize);
        for (int i = 0; i < runs.Count; i++)
            ranges[i] = new MemoryRange(runs[i].Start << shift, runs[i].Length << shift);

        var hints = BuildHints(data, header, flattened);
        if (header.Incomplete)
            context.Log(PluginLogLevel.Warning, "the dump is marked incomplete (status flag 0x8): pages makedumpfile could not write fail to read.");
        return new KdumpMemory(file, data, header, index, new MemoryMap(ranges), hints, context);
    }

    private static PageIndex ReadBitmap(DataSource data, KdumpHeader header)
    {
        ulong pages = header.MaxMapNr;
        ulong bytes = (pages + 7) / 8;
        var words = new ulong[(pages + 63) / 64];
        // The second bitmap marks the pages whose descriptors follow.
        ulong at = header.BitmapOffset + header.BitmapLength / 2;
        data.ReadExact(at, MemoryMarshal.AsBytes(words.AsSpan())[..(int)bytes], "the dumpable-page bitmap");
        if (pages % 64 != 0)
            words[^1] &= (1UL << (int)(pages % 64)) - 1;
        return new PageIndex(words, pages);
    }

    private static ConnectorHints BuildHints(DataSource data, KdumpHeader header, bool flattened)
    {
        var notes = new CoreNotes();
        if (header.NoteSize != 0)
            notes.Parse(data.ReadExact(header.NoteOffset, (int)header.NoteSize, "the kdump note area"), data.Name, header.NoteOffset);
        if (header.VmcoreInfoSize != 0)
            notes.VmcoreInfo = CoreNotes.DecodeText(data.ReadExact(header.VmcoreInfoOffset, (int)header.VmcoreInfoSize, "the kdump VMCOREINFO"));
        ushort machine = header.Machine switch
        {
            "x86_64" => CoreNotes.MachineX64,
            "i386" or "i486" or "i586" or "i686" => CoreNotes.MachineX86,
            "aarch64" => CoreNotes.MachineArm64,
            _ => notes.GuessMachine(),
        };
        string compression = header.CompressionFlags switch
        {
            (uint)PageCodec.Zlib => "zlib",
            (uint)PageCodec.Lzo => "lzo",
            (uint)PageCodec.Snappy => "snappy",
            (uint)PageCodec.Zstd => "zstd",
            0 => "uncompressed",
            _ => "mixed",
        };
        return notes.ToHints(flattened ? $"kdump-flattened-{compression}" : $"kdump-{compression}", machine);
    }

    protected override bool ReadBacking(ulong backing, Span<byte> destination, MemoryFlags flags, bool zeroPad)
    {
        ulong mask = (ulong)_blockSize - 1;
        while (true)
        {
            int inPage = (int)(backing & mask);
            int chunk = Math.Min(_blockSize - inPage, destination.Length);
            if (!ReadPage(backing >> _blockShift, inPage, destination[..chunk], flags))
            {
                if (!zeroPad)
                    return false;
                destination[..chunk].Clear();
            }
            if (chunk == destination.Length)
                return true;
            // A replaced map could put a range's backing at the very top of the address space.
            if (backing > ulong.MaxValue - (ulong)chunk)
                return false;
            destination = destination[chunk..];
            backing += (ulong)chunk;
        }
    }

    private bool ReadPage(ulong pfn, int inPage, Span<byte> destination, MemoryFlags flags)
    {
        if (!_index.TryGetIndex(pfn, out ulong descriptor))
            return false;
        if ((flags & MemoryFlags.NoCache) != 0)
            return ReadUncached(pfn, descriptor, inPage, destination);
        int slot = (int)(pfn & (ulong)_cacheMask);
        lock (_cacheLocks[slot])
        {
            var page = _cachePages.AsSpan(slot * _blockSize, _blockSize);
            if (_cacheTags[slot] == pfn + 1)
            {
                page.Slice(inPage, destination.Length).CopyTo(destination);
                return true;
            }
            switch (Load(pfn, descriptor, inPage, destination, page))
            {
                case LoadResult.Copied:
                    return true;
                case LoadResult.Decompressed:
                    _cacheTags[slot] = pfn + 1;
                    page.Slice(inPage, destination.Length).CopyTo(destination);
                    return true;
                default:
                    // The slot's page may be half overwritten.
                    _cacheTags[slot] = 0;
                    return false;
            }
        }
    }

    private bool ReadUncached(ulong pfn, ulong descriptor, int inPage, Span<byte> destination)
    {
        var page = t_page is { } buffer && buffer.Length >= _blockSize ? buffer : t_page = new byte[_blockSize];
        switch (Load(pfn, descriptor, inPage, destination, page.AsSpan(0, _blockSize)))
        {
            case LoadResult.Copied:
                return true;
            case LoadResult.Decompressed:
                page.AsSpan(inPage, destination.Length).CopyTo(destination);
                return true;
            default:
                return false;
        }
    }

    /// <summary>Copies a stored-uncompressed page's bytes to <paramref name="destination"/>, or decompresses a compressed page into <paramref name="page"/>.</summary>
    private LoadResult Load(ulong pfn, ulong descriptor, int inPage, Span<byte> destination, Span<byte> page)
    {
        if (descriptor >= _descriptorsInFile)
            return LoadResult.Failed;
        Span<byte> entry = stackalloc byte[DescriptorSize];
        if (!_data.TryRead(_descriptorOffset + descriptor * DescriptorSize, entry))
            return LoadResult.Failed;
        long offset = BinaryPrimitives.ReadInt64LittleEndian(entry);
        uint size = BinaryPrimitives.ReadUInt32LittleEndian(entry[8..]);
        uint pageFlags = BinaryPrimitives.ReadUInt32LittleEndian(entry[12..]);
        // An incomplete dump leaves the descriptors of pages it could not write zeroed.
        if (offset <= 0 || size == 0 || size > (uint)_blockSize)
            return LoadResult.Failed;
        uint compression = pageFlags & Codecs.CompressionMask;
        if (compression == 0)
        {
            if (size != (uint)_blockSize || pageFlags != 0)
                return Unknown(pfn, pageFlags);
            return _data.TryRead((ulong)offset + (ulong)inPage, destination) ? LoadResult.Copied : LoadResult.Failed;
        }
        if ((pageFlags & ~Codecs.CompressionMask) != 0 || !BitOperations.IsPow2(compression))
            return Unknown(pfn, pageFlags);
        var codec = (PageCodec)compression;
        if (!_data.TryGetSpan((ulong)offset, (int)size, out var source))
        {
            var scratch = t_compressed is { } buffer && buffer.Length >= (int)size ? buffer : t_compressed = new byte[Math.Max((int)size, _blockSize)];
            if (!_data.TryRead((ulong)offset, scratch.AsSpan(0, (int)size)))
                return LoadResult.Failed;
            source = scratch.AsSpan(0, (int)size);
        }
        if (Codecs.TryDecompress(codec, source, page))
            return LoadResult.Decompressed;
        if (!Codecs.IsAvailable(codec) && Interlocked.Exchange(ref _warnedMissingLibrary, 1) == 0)
        {
            _context.Log(PluginLogLevel.Error, string.Create(CultureInfo.InvariantCulture,
                $"page 0x{pfn:x} is compressed with {Codecs.Name(codec)} (flag 0x{compression:x}), but {Codecs.LibraryName(codec)} cannot be loaded (Debian package {Codecs.PackageName(codec)}); such pages fail to read."));
        }
        return LoadResult.Failed;
    }

    private LoadResult Unknown(ulong pfn, uint pageFlags)
    {
        if (Interlocked.Exchange(ref _warnedUnknownFlags, 1) == 0)
        {
            _context.Log(PluginLogLevel.Warning, string.Create(CultureInfo.InvariantCulture,
                $"page 0x{pfn:x} has page descriptor flags 0x{pageFlags:x}, which name no single known compression (zlib 0x1, lzo 0x2, snappy 0x4, zstd 0x20); such pages fail to read."));
        }
        return LoadResult.Failed;
    }

    protected override void EnterBatch() => _file.Enter();

    protected override void ExitBatch() => _file.Exit();

    public override void Dispose() => _file.Dispose();

    private enum LoadResult
    {
        Failed,
        Copied,
        Decompressed,
    }
}
