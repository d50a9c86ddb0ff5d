using System.Buffers.Binary;
using System.Globalization;
using Introspect.Abi;
using Introspect.Connectors.Coredump.IO;

namespace Introspect.Connectors.Coredump.Formats;

/// <summary>The header of a Microsoft kernel crash dump (<c>PAGEDU64</c> or <c>PAGEDUMP</c>), as far as it concerns physical memory.</summary>
/// <remarks>Fields that still hold the header's fill pattern (<c>PAGE</c>) were never written and read as absent.</remarks>
internal sealed record CrashDumpHeader
{
    public const uint MachineX86 = 0x014C;
    public const uint MachineX64 = 0x8664;
    public const uint MachineArm64 = 0xAA64;
    public const uint FullDump = 1;

    /// <summary>How many runs the header's PhysicalMemoryBlock buffer can hold (704 bytes on 64-bit, 700 on 32-bit).</summary>
    public const int MaxRuns64 = (0x348 - 0x88 - 16) / 16;
    public const int MaxRuns32 = (0x320 - 0x64 - 8) / 8;

    private const uint Fill32 = 0x45474150; // "PAGE"
    private const ulong Fill64 = 0x4547415045474150; // "PAGEPAGE"

    public bool Is64 { get; init; }
    public uint MajorVersion { get; init; }
    public uint MinorVersion { get; init; }
    public ulong DirectoryTableBase { get; init; }
    public ulong? PfnDatabase { get; init; }
    public ulong? PsLoadedModuleList { get; init; }
    public ulong? PsActiveProcessHead { get; init; }
    public uint MachineType { get; init; }
    public uint NumberOfProcessors { get; init; }
    public bool? PaeEnabled { get; init; }
    public ulong? KdDebuggerDataBlock { get; init; }
    public uint DumpType { get; init; }
    public ulong NumberOfPages { get; init; }
    public IReadOnlyList<(ulong BasePage, ulong PageCount)> Runs { get; init; } = [];

    /// <summary>Where page data (full dump) or the bitmap header (bitmap dump) begins.</summary>
    public ulong HeaderSize => Is64 ? 0x2000UL : 0x1000UL;

    public MachineArchitecture Architecture => MachineType switch
    {
        MachineX64 => MachineArchitecture.X64,
        MachineX86 => PaeEnabled == true ? MachineArchitecture.X86Pae : MachineArchitecture.X86,
        MachineArm64 => MachineArchitecture.Arm64,
        _ => MachineArchitecture.Unknown,
    };

    public ConnectorHints ToHints(string format) => new()
    {
        Format = format,
        Architecture = Architecture,
        DirectoryTableBase = DirectoryTableBase,
        PfnDatabase = PfnDatabase,
        PsLoadedModuleList = PsLoadedModuleList,
        PsActiveProcessHead = PsActiveProcessHead,
        KdDebuggerDataBlock = KdDebuggerDataBlock,
        PaeEnabled = PaeEnabled,
    };

    /// <summary>Reads and checks the header at the start of <paramref name="file"/>.</summary>
    /// <exception cref="InvalidDataException">The header is truncated, has another signature, or its run list is inconsistent.</exception>
    public static CrashDumpHeader Parse(DataSource file)
    {
        string name = file.Name;
        Span<byte> magic = stackalloc byte[8];
        file.ReadExact(0, magic, "the crash dump signature");
        bool is64 = magic.SequenceEqual(FormatDetector.CrashDump64Magic);
        if (!is64 && !magic.SequenceEqual(FormatDetector.CrashDump32Magic))
            ThrowHelper.ThrowInvalid(name, "the signature is not PAGEDU64 or PAGEDUMP; expected a Microsoft kernel crash dump.");
        var header = file.ReadExact(0, is64 ? 0x2000 : 0x1000, is64 ? "the 64-bit crash dump header (0x2000 bytes)" : "the 32-bit crash dump header (0x1000 bytes)");
        return is64 ? Parse64(name, header) : Parse32(name, header);
    }

    private static CrashDumpHeader Parse64(string name, byte[] h)
    {
        uint runCount = U32(h, 0x88);
        if (runCount > MaxRuns64)
            ThrowHelper.ThrowInvalid(name, $"PhysicalMemoryBlock.NumberOfRuns is {runCount}; the 64-bit header holds at most {MaxRuns64} runs.");
        var runs = new (ulong, ulong)[runCount];
        for (int i = 0; i < runs.Length; i++)
            runs[i] = (U64(h, 0x98 + i * 16), U64(h, 0xA0 + i * 16));
        return new CrashDumpHeader
        {
            Is64 = true,
            MajorVersion = U32(h, 0x08),
            MinorVersion = U32(h, 0x0C),
            DirectoryTableBase = U64(h, 0x10),
            PfnDatabase = Optional(U64(h, 0x18)),
            PsLoadedModuleList = Optional(U64(h, 0x20)),
            PsActiveProcessHead = Optional(U64(h, 0x28)),
            MachineType = U32(h, 0x30),
            NumberOfProcessors = U32(h, 0x34),
            KdDebuggerDataBlock = Optional(U64(h, 0x80)),
            NumberOfPages = U64(h, 0x90),
            Runs = runs,
            DumpType = U32(h, 0xF98),
        };
    }

    private static CrashDumpHeader Parse32(string name, byte[] h)
    {
        uint runCount = U32(h, 0x64);
        if (runCount > MaxRuns32)
            ThrowHelper.ThrowInvalid(name, $"PhysicalMemoryBlock.NumberOfRuns is {runCount}; the 32-bit header holds at most {MaxRuns32} runs.");
        var runs = new (ulong, ulong)[runCount];
        for (int i = 0; i < runs.Length; i++)
            runs[i] = (U32(h, 0x6C + i * 8), U32(h, 0x70 + i * 8));
        return new CrashDumpHeader
        {
            Is64 = false,
            MajorVersion = U32(h, 0x08),
            MinorVersion = U32(h, 0x0C),
            DirectoryTableBase = U32(h, 0x10),
            PfnDatabase = Optional(U32(h, 0x14)),
            PsLoadedModuleList = Optional(U32(h, 0x18)),
            PsActiveProcessHead = Optional(U32(h, 0x1C)),
            MachineType = U32(h, 0x20),
            NumberOfProcessors = U32(h, 0x24),
            PaeEnabled = h[0x5C] != 0,
            KdDebuggerDataBlock = Optional(U32(h, 0x60)),
            NumberOfPages = U32(h, 0x68),
            Runs = runs,
            DumpType = U32(h, 0xF88),
        };
    }

    private static ulong? Optional(ulong value) => value is Fill64 or 0 ? null : value;

    private static ulong? Optional(uint value) => value is Fill32 or 0 ? null : value;

    private static uint U32(byte[] bytes, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(offset));

    private static ulong U64(byte[] bytes, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(offset));
}

/// <summary>Microsoft kernel crash dumps: full dumps (runs of pages back to back) and bitmap dumps (a bitmap of present pages, stored densely).</summary>
/// <remarks>
/// A dump whose file ends before all its pages is refused with a message naming what is missing,
/// unless <c>allow-truncated=on</c>, which serves the pages the file holds; a dump with no page
/// data at all (a header on its own) is refused either way, since it holds no memory.
/// </remarks>
internal static class CrashDump
{
    private const int PageShift = 12;
    private const ulong PageSize = 1UL << PageShift;
    private const uint BitmapSignatureSummary = 0x504D4453; // "SDMP"
    private const uint BitmapSignatureFull = 0x504D4446; // "FDMP"
    private const uint BitmapValidDump = 0x504D5544; // "DUMP"
    private const int BitmapHeaderSize = 0x38;

    public static FileBackedMemory Open(MappedFile file, OpenContext context)
    {
        var (map, hints) = Parse(file, context);
        return new FileBackedMemory(file, map, hints);
    }

    public static (MemoryMap Map, ConnectorHints Hints) Parse(MappedFile file, OpenContext context)
    {
        var header = CrashDumpHeader.Parse(file);
        return header.DumpType switch
        {
            CrashDumpHeader.FullDump => (ParseFull(file, header, context), header.ToHints("crashdump-full")),
            2 or 5 or 6 => (ParseBitmap(file, header, context), header.ToHints("crashdump-bitmap")),
            _ => ThrowHelper.ThrowInvalid<(MemoryMap, ConnectorHints)>(file.Name,
                $"DumpType is {header.DumpType}; expected 1 (full) or 2, 5, 6 (bitmap). Other types (header-only, triage) hold no physical memory."),
        };
    }

    private static MemoryMap ParseFull(MappedFile file, CrashDumpHeader header, OpenContext context)
    {
        string name = file.Name;
        var ranges = new List<MemoryRange>(header.Runs.Count);
        ulong pages = 0;
        for (int i = 0; i < header.Runs.Count; i++)
        {
            var (basePage, pageCount) = header.Runs[i];
            if (basePage > ulong.MaxValue >> PageShift || pageCount > (ulong.MaxValue >> PageShift) - basePage)
            {
                ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture,
                    $"PhysicalMemoryBlock.Run[{i}] (BasePage 0x{basePage:x}, PageCount 0x{pageCount:x}) lies past the 64-bit physical address space."));
            }
            if (pageCount == 0)
                continue;
            ulong limit = (ulong.MaxValue - header.HeaderSize) >> PageShift;
            if (pageCount > limit || pages > limit - pageCount)
                ThrowHelper.ThrowInvalid(name, $"PhysicalMemoryBlock.Run[{i}]: the runs' page counts add up to more than a 64-bit file can hold.");
            ranges.Add(new MemoryRange(basePage << PageShift, pageCount << PageShift, header.HeaderSize + (pages << PageShift)));
            pages += pageCount;
        }
        if (pages != header.NumberOfPages)
        {
            ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture,
                $"PhysicalMemoryBlock.NumberOfPages is 0x{header.NumberOfPages:x} but its {header.Runs.Count} runs add up to 0x{pages:x} pages."));
        }
        if (pages == 0)
            ThrowHelper.ThrowInvalid(name, "PhysicalMemoryBlock lists no pages; the dump holds no memory.");
        return Finish(file, context, ranges, header.HeaderSize, pages, "PhysicalMemoryBlock");
    }

    private static MemoryMap ParseBitmap(MappedFile file, CrashDumpHeader header, OpenContext context)
    {
        string name = file.Name;
        ulong at = header.HeaderSize;
        var head = file.ReadExact(at, BitmapHeaderSize, "the bitmap dump header");
        uint signature = BinaryPrimitives.ReadUInt32LittleEndian(head);
        uint valid = BinaryPrimitives.ReadUInt32LittleEndian(head.AsSpan(4));
        if (signature is not (BitmapSignatureSummary or BitmapSignatureFull) || valid != BitmapValidDump)
        {
            ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture,
                $"DumpType {header.DumpType} promises a bitmap dump, but the header at 0x{at:x} starts 0x{signature:x8} 0x{valid:x8}; expected 'SDMP' or 'FDMP' then 'DUMP'."));
        }
        ulong firstPage = BinaryPrimitives.ReadUInt64LittleEndian(head.AsSpan(0x20));
        ulong presentPages = BinaryPrimitives.ReadUInt64LittleEndian(head.AsSpan(0x28));
        ulong bitCount = BinaryPrimitives.ReadUInt64LittleEndian(head.AsSpan(0x30));
        ulong bitmapOffset = at + BitmapHeaderSize;
        ulong bitmapBytes = bitCount / 8 + (bitCount % 8 == 0 ? 0UL : 1UL);
        // The bitmap lies between its header and the first page, inside the file: that caps
        // the bit count by the file's length before the bitmap is read.
        if (!file.Contains(bitmapOffset, bitmapBytes) || bitmapOffset + bitmapBytes > firstPage || bitmapBytes > int.MaxValue)
        {
            ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture,
                $"the bitmap header's Pages (bit count) is 0x{bitCount:x}: its 0x{bitmapBytes:x} bytes at 0x{bitmapOffset:x} do not fit before FirstPage 0x{firstPage:x} inside the file (0x{file.Length:x} bytes)."));
        }
        if (bitCount > (ulong.MaxValue >> PageShift) + 1)
            ThrowHelper.ThrowInvalid(name, $"the bitmap header's Pages (bit count) 0x{bitCount:x} lies past the 64-bit physical address space.");
        var bitmap = file.ReadExact(bitmapOffset, (int)bitmapBytes, "the page bitmap");
        ulong set = BitRuns.PopCount(bitmap, bitCount);
        if (set != presentPages)
        {
            ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture,
                $"the bitmap header's TotalPresentPages is 0x{presentPages:x} but its bitmap has 0x{set:x} bits set."));
        }
        if (firstPage >= file.Length)
        {
            ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture,
                $"the crash dump's page data is missing: the bitmap header's FirstPage is 0x{firstPage:x}, at or past the end of the file (0x{file.Length:x} bytes); it holds the headers only."));
        }
        if (set > (ulong.MaxValue - firstPage) >> PageShift)
            ThrowHelper.ThrowInvalid(name, $"the bitmap's 0x{set:x} pages from FirstPage 0x{firstPage:x} are more than a 64-bit file can hold.");
        var runs = new List<(ulong Start, ulong Length)>();
        BitRuns.Collect(bitmap, bitCount, runs);
        var ranges = new List<MemoryRange>(runs.Count);
        ulong stored = 0;
        foreach (var (start, length) in runs)
        {
            ranges.Add(new MemoryRange(start << PageShift, length << PageShift, firstPage + (stored << PageShift)));
            stored += length;
        }
        if (stored == 0)
            ThrowHelper.ThrowInvalid(name, "the page bitmap has no bit set; the dump holds no memory.");
        return Finish(file, context, ranges, firstPage, stored, "the page bitmap");
    }

    /// <summary>Checks that the file holds every page, or trims the map to what it holds when allowed.</summary>
    private static MemoryMap Finish(MappedFile file, OpenContext context, List<MemoryRange> ranges, ulong dataStart, ulong pages, string source)
    {
        string name = file.Name;
        if (pages > (ulong.MaxValue - dataStart) >> PageShift)
            ThrowHelper.ThrowInvalid(name, $"{source} describes 0x{pages:x} pages, more than a 64-bit file can hold.");
        ulong needed = dataStart + (pages << PageShift);
        if (needed > file.Length)
        {
            string what = string.Create(CultureInfo.InvariantCulture,
                $"{source} describes 0x{pages:x} pages ({FormatSize(pages << PageShift)}) stored from offset 0x{dataStart:x} to 0x{needed:x}, but the file is 0x{file.Length:x} bytes long");
            if (file.Length <= dataStart)
                ThrowHelper.ThrowInvalid(name, $"the crash dump's page data is missing: {what}; it holds the header only.");
            if (!context.AllowTruncated)
                ThrowHelper.ThrowInvalid(name, $"the crash dump is truncated: {what} (allow-truncated=on serves the pages it holds).");
            context.Log(PluginLogLevel.Warning, $"truncated: {what}; pages past the end fail to read.");
            ranges = Trim(ranges, file.Length);
        }
        try
        {
            return new MemoryMap(ranges);
        }
        catch (ArgumentException e)
        {
            return ThrowHelper.ThrowInvalid<MemoryMap>(name, $"{source} is inconsistent: {e.Message}");
        }
    }

    /// <summary>The parts of the ranges whose whole pages lie inside the file.</summary>
    private static List<MemoryRange> Trim(List<MemoryRange> ranges, ulong fileLength)
    {
        var kept = new List<MemoryRange>(ranges.Count);
        foreach (var range in ranges)
        {
            if (range.BackingBase >= fileLength)
                continue;
            ulong held = (fileLength - range.BackingBase) & ~(PageSize - 1);
            if (held == 0)
                continue;
            kept.Add(held < range.Size ? range with { Size = held } : range);
        }
        return kept;
    }

    private static string FormatSize(ulong bytes) =>
        bytes >= 1UL << 30 ? string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1UL << 30):0.##} GiB")
        : string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1UL << 20):0.##} MiB");
}
