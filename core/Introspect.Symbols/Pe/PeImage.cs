using System.Buffers.Binary;
using System.Text;
using Introspect.Abi;

namespace Introspect.Symbols.Pe;

/// <summary>A PE32 or PE32+ image: headers, sections, exports, imports and the debug directory's CodeView record.</summary>
/// <remarks>
/// <para>Read from a file (<see cref="Open"/>, <see cref="Load"/>) or from an image mapped in memory
/// (<see cref="FromMemory"/>), where the RVAs are offsets from the image base and pages may be missing.</para>
/// <para>Bad input (a wrong magic, a table that leaves the image, absurd counts) throws <see cref="InvalidDataException"/>.
/// In memory, a page that cannot be read is not bad input: what it held is left out and <see cref="Notes"/> says what
/// is missing, so a partly paged-out image still gives everything that is there.</para>
/// </remarks>
public sealed class PeImage
{
    /// <summary>The most a header region may span; real ones take a page.</summary>
    private const int MaxHeaderBytes = 1 << 20;
    /// <summary>Ordinals index the export address table with 16 bits.</summary>
    private const uint MaxExports = 0x10000;
    private const int MaxImportModules = 4096;
    private const int MaxImportsPerModule = 0x10000;
    private const uint MaxDebugEntries = 64;
    private const int MaxNameLength = 4096;
    private const uint MaxCodeViewSize = 64 * 1024;

    private readonly List<string> _notes = [];
    private Dictionary<string, PeExport>? _exportsByName;

    private PeImage(string name, ulong? loadedAt)
    {
        Name = name;
        LoadedAt = loadedAt;
    }

    /// <summary>The file's path, or what the caller called the image in memory.</summary>
    public string Name { get; }

    /// <summary>Where the image was read in memory; null for a file.</summary>
    public ulong? LoadedAt { get; }

    /// <summary>False when not even the headers could be read from memory: then the image is empty and <see cref="Notes"/> says so.</summary>
    public bool HeadersRead { get; private set; }

    /// <summary>PE32+ (64-bit optional header) rather than PE32.</summary>
    public bool Is64Bit { get; private set; }

    /// <summary>The COFF machine type (0x14c x86, 0x8664 x64, 0xaa64 ARM64, ...).</summary>
    public ushort Machine { get; private set; }

    public MachineArchitecture Architecture => Machine switch
    {
        0x14c => MachineArchitecture.X86,
        0x8664 => MachineArchitecture.X64,
        0xaa64 => MachineArchitecture.Arm64,
        _ => MachineArchitecture.Unknown,
    };

    public ushort Characteristics { get; private set; }

    public uint TimeDateStamp { get; private set; }

    public ushort Magic { get; private set; }

    public ulong ImageBase { get; private set; }

    public uint SizeOfImage { get; private set; }

    public uint SizeOfHeaders { get; private set; }

    public uint AddressOfEntryPoint { get; private set; }

    public uint CheckSum { get; private set; }

    public ushort Subsystem { get; private set; }

    public ushort DllCharacteristics { get; private set; }

    public IReadOnlyList<PeDataDirectory> DataDirectories { get; private set; } = [];

    public IReadOnlyList<PeSection> Sections { get; private set; } = [];

    /// <summary>The DLL name the export directory gives, or null without one.</summary>
    public string? ExportName { get; private set; }

    /// <summary>Every export, by ordinal; an ordinal with several names appears once per name.</summary>
    public IReadOnlyList<PeExport> Exports { get; private set; } = [];

    public IReadOnlyList<PeImportModule> Imports { get; private set; } = [];

    public IReadOnlyList<PeDebugEntry> DebugEntries { get; private set; } = [];

    /// <summary>The PDB the image was linked with, when its debug directory names one.</summary>
    public PeCodeView? CodeView { get; private set; }

    /// <summary>What could not be read from memory (missing pages), one sentence each; empty for a complete image.</summary>
    public IReadOnlyList<string> Notes => _notes;

    public bool IsComplete => _notes.Count == 0;

    /// <summary>The key a symbol server files the image itself under: time stamp (8 hex digits) and image size (hex).</summary>
    public string ImageStoreId => $"{TimeDateStamp:X8}{SizeOfImage:X}";

    public PeDataDirectory Directory(PeDirectory which) =>
        (int)which < DataDirectories.Count ? DataDirectories[(int)which] : default;

    /// <summary>The section holding <paramref name="rva"/>, or null.</summary>
    public PeSection? SectionOf(uint rva)
    {
        foreach (var section in Sections)
        {
            if (section.Contains(rva))
                return section;
        }
        return null;
    }

    /// <summary>The export of that name (case-sensitive), or null.</summary>
    public PeExport? FindExport(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        _exportsByName ??= BuildExportIndex();
        return _exportsByName.GetValueOrDefault(name);
    }

    /// <summary>The export of that ordinal (biased, as callers see it), or null.</summary>
    public PeExport? FindExport(uint ordinal)
    {
        foreach (var export in Exports)
        {
            if (export.Ordinal == ordinal)
                return export;
        }
        return null;
    }

    /// <summary>Reads a PE file.</summary>
    /// <exception cref="InvalidDataException">The file is not a well-formed PE image.</exception>
    public static PeImage Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        return Load(File.ReadAllBytes(path), path);
    }

    /// <summary>Reads a PE file held in memory; <paramref name="name"/> names it in errors.</summary>
    public static PeImage Load(ReadOnlyMemory<byte> bytes, string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var image = new PeImage(name, null);
        image.Parse(new PeFileSource(name, bytes));
        return image;
    }

    /// <summary>Reads an image as the loader mapped it, from <paramref name="memory"/> at <paramref name="imageBase"/>.</summary>
    /// <remarks>Never throws for unreadable memory: what lies on missing pages is left out and <see cref="Notes"/> says what.</remarks>
    /// <exception cref="InvalidDataException">What could be read is not a PE image.</exception>
    public static PeImage FromMemory(IMemory memory, ulong imageBase, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        name ??= $"image at {Malformed.Hex(imageBase)}";
        var image = new PeImage(name, imageBase);
        image.Parse(new PeMemorySource(name, memory, imageBase));
        return image;
    }

    private Dictionary<string, PeExport> BuildExportIndex()
    {
        var index = new Dictionary<string, PeExport>(StringComparer.Ordinal);
        foreach (var export in Exports)
        {
            if (export.Name is not null)
                index.TryAdd(export.Name, export);
        }
        return index;
    }

    private void Note(string text) => _notes.Add(text);

    private void Parse(PeSource source)
    {
        if (!ParseHeaders(source))
            return;
        source.Sections = Sections;
        source.SizeOfHeaders = SizeOfHeaders;
        ParseExports(source);
        ParseImports(source);
        ParseDebugDirectory(source);
    }

    private bool ParseHeaders(PeSource source)
    {
        var headers = new byte[4096];
        int read = source.ReadHeaders(headers);
        if (read < 64)
        {
            if (source.MayMissPages && read == 0)
            {
                Note($"the headers at {Malformed.Hex(LoadedAt ?? 0)} cannot be read");
                return false;
            }
            Malformed.Truncated(Name, "DOS header", 0, 64, read);
        }
        ushort dosMagic = BinaryPrimitives.ReadUInt16LittleEndian(headers);
        if (dosMagic != 0x5a4d)
            Malformed.Throw(Name, "e_magic", Malformed.Hex(dosMagic), "0x5a4d (\"MZ\")");
        uint lfanew = BinaryPrimitives.ReadUInt32LittleEndian(headers.AsSpan(0x3c));
        if (lfanew > MaxHeaderBytes - 24)
            Malformed.Throw(Name, "e_lfanew", Malformed.Hex(lfanew), $"an offset below {Malformed.Hex(MaxHeaderBytes - 24)}");
        if (!EnsureHeaders(source, ref headers, ref read, (int)lfanew + 24, "the COFF header"))
            return false;

        var reader = new SpanReader(headers.AsSpan(0, read), Name, "PE headers", (int)lfanew);
        uint signature = reader.U32();
        if (signature != 0x4550)
            Malformed.Throw(Name, "the PE signature", Malformed.Hex(signature), "0x4550 (\"PE\\0\\0\")");
        Machine = reader.U16();
        ushort sectionCount = reader.U16();
        TimeDateStamp = reader.U32();
        uint symbolTable = reader.U32();
        uint symbolCount = reader.U32();
        ushort optionalSize = reader.U16();
        Characteristics = reader.U16();
        int optionalStart = reader.Position;
        if (!EnsureHeaders(source, ref headers, ref read, optionalStart + optionalSize, "the optional header"))
            return false;
        reader = new SpanReader(headers.AsSpan(0, read), Name, "optional header", optionalStart);
        if (optionalSize < 2)
            Malformed.Throw(Name, "SizeOfOptionalHeader", Malformed.Number(optionalSize), "at least 96 (PE32) or 112 (PE32+)");
        Magic = reader.U16();
        int directoriesAt;
        if (Magic == 0x10b)
        {
            Is64Bit = false;
            directoriesAt = 96;
        }
        else if (Magic == 0x20b)
        {
            Is64Bit = true;
            directoriesAt = 112;
        }
        else
        {
            return Malformed.Throw<bool>(Name, "the optional header's Magic", Malformed.Hex(Magic), "0x10b (PE32) or 0x20b (PE32+)");
        }
        if (optionalSize < directoriesAt)
            Malformed.Throw(Name, "SizeOfOptionalHeader", Malformed.Number(optionalSize), $"at least {directoriesAt} for {(Is64Bit ? "PE32+" : "PE32")}");
        var optional = headers.AsSpan(optionalStart, optionalSize);
        AddressOfEntryPoint = BinaryPrimitives.ReadUInt32LittleEndian(optional[16..]);
        ImageBase = Is64Bit ? BinaryPrimitives.ReadUInt64LittleEndian(optional[24..]) : BinaryPrimitives.ReadUInt32LittleEndian(optional[28..]);
        SizeOfImage = BinaryPrimitives.ReadUInt32LittleEndian(optional[56..]);
        SizeOfHeaders = BinaryPrimitives.ReadUInt32LittleEndian(optional[60..]);
        CheckSum = BinaryPrimitives.ReadUInt32LittleEndian(optional[64..]);
        Subsystem = BinaryPrimitives.ReadUInt16LittleEndian(optional[68..]);
        DllCharacteristics = BinaryPrimitives.ReadUInt16LittleEndian(optional[70..]);
        uint directoryCount = BinaryPrimitives.ReadUInt32LittleEndian(optional[(directoriesAt - 4)..]);
        // The loader reads at most 16 entries, and only those the optional header has room for.
        int usable = (int)Math.Min(Math.Min(directoryCount, 16u), (uint)(optionalSize - directoriesAt) / 8);
        var directories = new PeDataDirectory[usable];
        for (int i = 0; i < usable; i++)
        {
            var entry = optional[(directoriesAt + 8 * i)..];
            directories[i] = new PeDataDirectory(BinaryPrimitives.ReadUInt32LittleEndian(entry), BinaryPrimitives.ReadUInt32LittleEndian(entry[4..]));
        }
        DataDirectories = directories;

        int sectionTable = optionalStart + optionalSize;
        long sectionTableEnd = sectionTable + 40L * sectionCount;
        if (source is PeFileSource file && sectionTableEnd > file.Bytes.Length)
            Malformed.Throw(Name, "NumberOfSections", Malformed.Number(sectionCount),
                $"at most {Math.Max(0, (file.Bytes.Length - sectionTable) / 40)} (the section table at {Malformed.Hex((ulong)sectionTable)} must fit in the file's {file.Bytes.Length} bytes)");
        if (sectionTableEnd > MaxHeaderBytes)
            Malformed.Throw(Name, "NumberOfSections", Malformed.Number(sectionCount),
                $"at most {(MaxHeaderBytes - sectionTable) / 40} (the section table at {Malformed.Hex((ulong)sectionTable)} must fit in the first {MaxHeaderBytes} bytes)");
        if (!EnsureHeaders(source, ref headers, ref read, (int)sectionTableEnd, "the section table"))
            return false;
        HeadersRead = true;

        var sections = new PeSection[sectionCount];
        reader = new SpanReader(headers.AsSpan(0, read), Name, "section table", sectionTable);
        for (int i = 0; i < sectionCount; i++)
        {
            var rawName = reader.Bytes(8);
            int nul = rawName.IndexOf((byte)0);
            string sectionName = Encoding.UTF8.GetString(nul >= 0 ? rawName[..nul] : rawName);
            uint virtualSize = reader.U32();
            uint virtualAddress = reader.U32();
            uint rawSize = reader.U32();
            uint rawPointer = reader.U32();
            reader.Skip(12); // relocations, line numbers: object files only
            uint characteristics = reader.U32();
            if (source is PeFileSource withStrings)
                sectionName = LongSectionName(withStrings, sectionName, symbolTable, symbolCount);
            sections[i] = new PeSection(sectionName, virtualAddress, virtualSize, rawPointer, rawSize, characteristics);
        }
        Sections = sections;
        return true;
    }

    /// <summary>Makes sure the first <paramref name="length"/> header bytes are at hand, reading more if needed.</summary>
    private bool EnsureHeaders(PeSource source, ref byte[] headers, ref int read, int length, string what)
    {
        if (length <= read)
            return true;
        if (read == headers.Length)
        {
            var larger = new byte[Math.Min(MaxHeaderBytes, Math.Max(length, headers.Length * 2))];
            read = source.ReadHeaders(larger);
            headers = larger;
            if (length <= read)
                return true;
        }
        if (source.MayMissPages)
        {
            Note($"{what} (header bytes up to {Malformed.Hex((ulong)length)}) cannot be read: only {Malformed.Hex((ulong)read)} bytes of headers are readable");
            return false;
        }
        Malformed.Truncated(Name, what, read, length - read, read);
        return false;
    }

    /// <summary>Resolves a <c>/123</c> section name through the COFF string table that MinGW-built images keep.</summary>
    private static string LongSectionName(PeFileSource file, string name, uint symbolTable, uint symbolCount)
    {
        if (name.Length < 2 || name[0] != '/' || symbolTable == 0 || !uint.TryParse(name.AsSpan(1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out uint offset))
            return name;
        ulong at = symbolTable + 18UL * symbolCount + offset;
        var bytes = file.Bytes.Span;
        if (at >= (ulong)bytes.Length)
            return name; // no string table after all: keep the name as written
        var rest = bytes[(int)at..];
        int nul = rest.IndexOf((byte)0);
        return nul < 0 ? name : Encoding.UTF8.GetString(rest[..nul]);
    }

    /// <summary>Whether the <paramref name="length"/> bytes at <paramref name="rva"/> lie inside the image; bad input if not.</summary>
    private void RequireInImage(ulong rva, ulong length, string field)
    {
        if (rva + length > SizeOfImage)
            Malformed.Throw(Name, field, $"RVA {Malformed.Hex(rva)} + {Malformed.Hex(length)} bytes",
                $"a range inside the image (SizeOfImage {Malformed.Hex(SizeOfImage)})");
    }

    private void ParseExports(PeSource source)
    {
        var directory = Directory(PeDirectory.Export);
        if (directory.VirtualAddress == 0)
            return;
        RequireInImage(directory.VirtualAddress, 40, "the export directory");
        Span<byte> header = stackalloc byte[40];
        if (!source.TryRead(directory.VirtualAddress, header, "the export directory"))
        {
            Note($"exports: the export directory at RVA {Malformed.Hex(directory.VirtualAddress)} cannot be read");
            return;
        }
        var reader = new SpanReader(header, Name, "export directory");
        reader.Skip(12);
        uint nameRva = reader.U32();
        uint ordinalBase = reader.U32();
        uint functionCount = reader.U32();
        uint nameCount = reader.U32();
        uint functionsRva = reader.U32();
        uint namesRva = reader.U32();
        uint ordinalsRva = reader.U32();
        if (functionCount > MaxExports)
            Malformed.Throw(Name, "the export directory's NumberOfFunctions", Malformed.Number(functionCount), $"at most {MaxExports}");
        if (nameCount > MaxExports)
            Malformed.Throw(Name, "the export directory's NumberOfNames", Malformed.Number(nameCount), $"at most {MaxExports}");
        RequireInImage(functionsRva, 4UL * functionCount, "the export address table");
        RequireInImage(namesRva, 4UL * nameCount, "the export name pointer table");
        RequireInImage(ordinalsRva, 2UL * nameCount, "the export ordinal table");

        if (nameRva != 0)
        {
            ExportName = source.ReadString(nameRva, MaxNameLength, "the export directory's DLL name");
            if (ExportName is null)
                Note($"exports: the DLL name at RVA {Malformed.Hex(nameRva)} cannot be read");
        }

        var functions = source.ReadTable(functionsRva, (int)(4 * functionCount), "the export address table");
        var names = source.ReadTable(namesRva, (int)(4 * nameCount), "the export name pointer table");
        var ordinals = source.ReadTable(ordinalsRva, (int)(2 * nameCount), "the export ordinal table");

        var namesByIndex = new List<string>?[functionCount];
        var nameUnreadable = new bool[functionCount];
        int missingNames = 0;
        for (int i = 0; i < nameCount; i++)
        {
            if (!names.Has(4 * i, 4) || !ordinals.Has(2 * i, 2))
            {
                missingNames++;
                continue;
            }
            uint exportNameRva = BinaryPrimitives.ReadUInt32LittleEndian(names.Data.AsSpan(4 * i));
            ushort index = BinaryPrimitives.ReadUInt16LittleEndian(ordinals.Data.AsSpan(2 * i));
            if (index >= functionCount)
                Malformed.Throw(Name, $"export ordinal table entry {i}", Malformed.Number(index), $"an index below NumberOfFunctions ({functionCount})");
            var exportName = source.ReadString(exportNameRva, MaxNameLength, $"export name {i}");
            if (exportName is null)
            {
                // Left out rather than shown as an export by ordinal only, which it is not.
                nameUnreadable[index] = true;
                missingNames++;
                continue;
            }
            (namesByIndex[index] ??= []).Add(exportName);
        }

        var exports = new List<PeExport>((int)functionCount);
        int missingFunctions = 0;
        for (int i = 0; i < functionCount; i++)
        {
            if (!functions.Has(4 * i, 4))
            {
                missingFunctions++;
                continue;
            }
            uint rva = BinaryPrimitives.ReadUInt32LittleEndian(functions.Data.AsSpan(4 * i));
            var named = namesByIndex[i];
            if (rva == 0 && named is null)
                continue; // an unused ordinal
            if (named is null && nameUnreadable[i])
                continue;
            uint ordinal = unchecked(ordinalBase + (uint)i);
            string? forwarder = null;
            if (directory.Contains(rva))
            {
                forwarder = source.ReadString(rva, MaxNameLength, $"the forwarder of ordinal {ordinal}");
                if (forwarder is null)
                {
                    missingFunctions++;
                    continue;
                }
            }
            if (named is null)
            {
                exports.Add(new PeExport(null, ordinal, rva, forwarder));
                continue;
            }
            foreach (var exportName in named)
                exports.Add(new PeExport(exportName, ordinal, rva, forwarder));
        }
        Exports = exports;
        if (missingNames > 0)
            Note($"exports: {missingNames} of {nameCount} export names lie on pages that cannot be read");
        if (missingFunctions > 0)
            Note($"exports: {missingFunctions} of {functionCount} export addresses lie on pages that cannot be read");
    }

    private void ParseImports(PeSource source)
    {
        var directory = Directory(PeDirectory.Import);
        if (directory.VirtualAddress == 0)
            return;
        var modules = new List<PeImportModule>();
        Span<byte> descriptor = stackalloc byte[20];
        for (int i = 0; ; i++)
        {
            if (i >= MaxImportModules)
                Malformed.Throw(Name, "the import directory", $"more than {MaxImportModules} descriptors", "a zero descriptor ending the list");
            ulong descriptorAt = directory.VirtualAddress + 20UL * (uint)i;
            RequireInImage(descriptorAt, 20, $"import descriptor {i}");
            uint at = (uint)descriptorAt;
            if (!source.TryRead(at, descriptor, $"import descriptor {i}"))
            {
                Note($"imports: import descriptor {i} at RVA {Malformed.Hex(at)} cannot be read; imports from there on are missing");
                break;
            }
            var reader = new SpanReader(descriptor, Name, "import descriptor");
            uint lookupRva = reader.U32();
            uint timeStamp = reader.U32();
            uint forwarderChain = reader.U32();
            uint nameRva = reader.U32();
            uint addressRva = reader.U32();
            if (lookupRva == 0 && timeStamp == 0 && forwarderChain == 0 && nameRva == 0 && addressRva == 0)
                break;
            var dllName = source.ReadString(nameRva, MaxNameLength, $"the DLL name of import descriptor {i}");
            if (dllName is null)
            {
                Note($"imports: the DLL name of import descriptor {i} at RVA {Malformed.Hex(nameRva)} cannot be read; its imports are left out");
                continue;
            }
            modules.Add(new PeImportModule(dllName, lookupRva, timeStamp, forwarderChain, nameRva, addressRva, ParseThunks(source, dllName, lookupRva, addressRva)));
        }
        Imports = modules;
    }

    private List<PeImportedFunction> ParseThunks(PeSource source, string dllName, uint lookupRva, uint addressRva)
    {
        var functions = new List<PeImportedFunction>();
        uint table = lookupRva;
        if (table == 0)
        {
            // Without a lookup table the names are known only from the address table, which the loader has
            // overwritten with addresses in a mapped image.
            if (source.MayMissPages)
            {
                Note($"imports: {dllName} has no import lookup table, and a mapped image's address table holds addresses, not names");
                return functions;
            }
            table = addressRva;
        }
        int thunkSize = Is64Bit ? 8 : 4;
        Span<byte> thunk = stackalloc byte[8];
        Span<byte> hint = stackalloc byte[2];
        for (int k = 0; ; k++)
        {
            if (k >= MaxImportsPerModule)
                Malformed.Throw(Name, $"the import lookup table of {dllName}", $"more than {MaxImportsPerModule} entries", "a zero entry ending it");
            ulong thunkAt = table + (ulong)(k * thunkSize);
            RequireInImage(thunkAt, (ulong)thunkSize, $"the import lookup table of {dllName}");
            uint at = (uint)thunkAt;
            if (!source.TryRead(at, thunk[..thunkSize], $"the import lookup table of {dllName}"))
            {
                Note($"imports: the import lookup table of {dllName} cannot be read from RVA {Malformed.Hex(at)}; {k} functions were read");
                break;
            }
            ulong value = Is64Bit ? BinaryPrimitives.ReadUInt64LittleEndian(thunk) : BinaryPrimitives.ReadUInt32LittleEndian(thunk);
            if (value == 0)
                break;
            uint thunkRva = unchecked(addressRva + (uint)(k * thunkSize)); // only reported, never read
            ulong ordinalFlag = Is64Bit ? 1UL << 63 : 1UL << 31;
            if ((value & ordinalFlag) != 0)
            {
                functions.Add(new PeImportedFunction(null, 0, (uint)(value & 0xffff), 0, thunkRva));
                continue;
            }
            uint hintNameRva = (uint)(value & 0x7fffffff);
            RequireInImage(hintNameRva, 2, $"the hint/name entry of import {k} from {dllName}");
            string? functionName = null;
            if (source.TryRead(hintNameRva, hint, $"the hint of import {k} from {dllName}"))
                functionName = source.ReadString(hintNameRva + 2, MaxNameLength, $"the name of import {k} from {dllName}");
            if (functionName is null)
            {
                Note($"imports: the name of import {k} from {dllName} at RVA {Malformed.Hex(hintNameRva)} cannot be read");
                continue;
            }
            functions.Add(new PeImportedFunction(functionName, BinaryPrimitives.ReadUInt16LittleEndian(hint), null, hintNameRva, thunkRva));
        }
        return functions;
    }

    private void ParseDebugDirectory(PeSource source)
    {
        var directory = Directory(PeDirectory.Debug);
        if (directory.VirtualAddress == 0 || directory.Size == 0)
            return;
        uint count = directory.Size / 28;
        if (count > MaxDebugEntries)
            Malformed.Throw(Name, "the debug directory's size", Malformed.Number(directory.Size), $"at most {MaxDebugEntries} entries of 28 bytes");
        RequireInImage(directory.VirtualAddress, 28UL * count, "the debug directory");
        var entries = new List<PeDebugEntry>();
        Span<byte> raw = stackalloc byte[28];
        for (int i = 0; i < count; i++)
        {
            uint at = directory.VirtualAddress + 28u * (uint)i;
            if (!source.TryRead(at, raw, $"debug directory entry {i}"))
            {
                Note($"debug: debug directory entry {i} at RVA {Malformed.Hex(at)} cannot be read");
                continue;
            }
            var reader = new SpanReader(raw, Name, "debug directory entry");
            reader.Skip(4);
            uint timeStamp = reader.U32();
            reader.Skip(4);
            uint type = reader.U32();
            uint size = reader.U32();
            uint address = reader.U32();
            uint pointer = reader.U32();
            var entry = new PeDebugEntry(type, timeStamp, size, address, pointer);
            entries.Add(entry);
            if (type == PeDebugEntry.CodeViewType && CodeView is null)
                CodeView = ReadCodeView(source, entry);
        }
        DebugEntries = entries;
    }

    private PeCodeView? ReadCodeView(PeSource source, PeDebugEntry entry)
    {
        if (entry.SizeOfData < 24 || entry.SizeOfData > MaxCodeViewSize)
            Malformed.Throw(Name, "the CodeView debug entry's SizeOfData", Malformed.Number(entry.SizeOfData), $"between 24 and {MaxCodeViewSize}");
        var data = new byte[entry.SizeOfData];
        if (entry.AddressOfRawData != 0)
        {
            RequireInImage(entry.AddressOfRawData, entry.SizeOfData, "the CodeView record");
            if (!source.TryRead(entry.AddressOfRawData, data, "the CodeView record"))
            {
                Note($"debug: the CodeView record at RVA {Malformed.Hex(entry.AddressOfRawData)} cannot be read");
                return null;
            }
        }
        else if (source is PeFileSource file)
        {
            if ((ulong)entry.PointerToRawData + entry.SizeOfData > (ulong)file.Bytes.Length)
                Malformed.Truncated(Name, "the CodeView record", entry.PointerToRawData, entry.SizeOfData, file.Bytes.Length);
            file.Bytes.Span.Slice((int)entry.PointerToRawData, (int)entry.SizeOfData).CopyTo(data);
        }
        else
        {
            Note("debug: the CodeView record is not mapped (AddressOfRawData is 0)");
            return null;
        }

        var reader = new SpanReader(data, Name, "CodeView record");
        uint magic = reader.U32();
        if (magic == 0x53445352) // "RSDS"
        {
            var guid = reader.Guid();
            uint age = reader.U32();
            return new PeCodeView("RSDS", reader.CStringOrRest(), guid, 0, age);
        }
        if (magic == 0x3031424e) // "NB10"
        {
            reader.Skip(4);
            uint signature = reader.U32();
            uint age = reader.U32();
            return new PeCodeView("NB10", reader.CStringOrRest(), Guid.Empty, signature, age);
        }
        return null; // another format (a CodeView 4 "NB09" record): no PDB to name
    }
}
