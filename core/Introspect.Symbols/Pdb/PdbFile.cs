using System.Buffers.Binary;
using System.Text;

namespace Introspect.Symbols.Pdb;

/// <summary>A Microsoft PDB file (MSF 7.00): its identity, modules, sections, public and global symbols and types, with
/// the questions a debugger asks of it answered fast.</summary>
/// <remarks>
/// <para>Opening reads the PDB info and DBI streams, every module's procedures, the public and global symbols, and
/// builds the symbol indexes: an array of addresses sorted for binary search and a dictionary of names. Types are
/// indexed on the first type question.</para>
/// <para>Symbol addresses are RVAs of the image, after OMAP when the image was rewritten after linking.</para>
/// <para>Queries may run on several threads at once.</para>
/// <para>Bad input throws <see cref="InvalidDataException"/> naming the file, the field, its value and what was
/// expected. Every count read from the file is checked against the bytes that must hold it before anything is
/// allocated for it. A PDB is read whole: the largest accepted is 2 GiB.</para>
/// </remarks>
public sealed class PdbFile
{
    private const int PdbInfoStream = 1;
    private const int TpiStream = 2;
    private const int DbiStream = 3;

    private readonly MsfFile _msf;
    private readonly AddressMap _addressMap;
    private readonly PdbSymbol[] _byAddress;
    private readonly uint[] _addresses;
    private readonly Dictionary<string, int[]> _byName;
    private readonly Dictionary<string, int[]> _byUndecoratedName;
    private readonly Lazy<TypeTable> _types;

    private PdbFile(string name, MsfFile msf)
    {
        Name = name;
        _msf = msf;

        ReadInfoStream();
        var dbi = ReadDbi();
        Machine = dbi.Machine;
        Modules = dbi.Modules;
        var optional = dbi.OptionalStreams;
        int OptionalStream(int i) => i < optional.Length && optional[i] != 0xffff ? optional[i] : -1;
        Sections = ReadSections(OptionalStream(5), "section headers");
        int originalSectionsStream = OptionalStream(10);
        OriginalSections = originalSectionsStream >= 0 ? ReadSections(originalSectionsStream, "original section headers") : Sections;
        var omapTo = StreamOrEmpty(OptionalStream(3), "OMAPTO");
        var omapFrom = StreamOrEmpty(OptionalStream(4), "OMAPFROM");
        _addressMap = BuildAddressMap(omapTo.Span, omapFrom.Span, dbi.SectionMap);

        var symbolRecords = StreamOrEmpty(dbi.SymbolRecordStream, "symbol records");
        Publics = ReadPublics(dbi.PublicStream, symbolRecords.Span);
        Globals = ReadGlobals(dbi.GlobalStream, symbolRecords.Span);

        var symbols = new List<PdbSymbol>(Publics.Count * 2);
        foreach (var module in Modules)
            ReadModuleSymbols(module, symbols);
        foreach (var global in Globals)
        {
            if (global.Rva is { } rva && global.RecordKind is CodeView.S_GDATA32 or CodeView.S_LDATA32 or CodeView.S_GTHREAD32 or CodeView.S_LTHREAD32)
                symbols.Add(new PdbSymbol(global.Name, rva, 0, PdbSymbolKind.Data, global.Section, global.Offset));
        }
        foreach (var publicSymbol in Publics)
        {
            if (publicSymbol.Rva is { } rva)
                symbols.Add(new PdbSymbol(publicSymbol.Name, rva, 0, PdbSymbolKind.Public, publicSymbol.Section, publicSymbol.Offset));
        }
        symbols.Sort(static (a, b) =>
        {
            int byAddress = a.Rva.CompareTo(b.Rva);
            if (byAddress != 0)
                return byAddress;
            int byKind = a.Kind.CompareTo(b.Kind);
            return byKind != 0 ? byKind : string.CompareOrdinal(a.Name, b.Name);
        });
        _byAddress = [.. symbols];
        _addresses = new uint[_byAddress.Length];
        for (int i = 0; i < _byAddress.Length; i++)
            _addresses[i] = _byAddress[i].Rva;
        (_byName, _byUndecoratedName) = BuildNameIndexes(_byAddress);
        _types = new Lazy<TypeTable>(() => new TypeTable(Name, _msf.ReadStream(TpiStream, "TPI"), "TPI", Globals));
    }

    /// <summary>The path the PDB was opened from, or the name given to <see cref="Load"/>.</summary>
    public string Name { get; }

    /// <summary>The GUID that ties the PDB to its image (the CodeView record's GUID).</summary>
    public Guid Guid { get; private set; }

    /// <summary>The PDB info stream's age; the DBI stream's age is what images record, see <see cref="DbiAge"/>.</summary>
    public uint Age { get; private set; }

    /// <summary>The DBI stream's age: the one an image's CodeView record carries.</summary>
    public uint DbiAge { get; private set; }

    /// <summary>The PDB's 32-bit signature (a time stamp).</summary>
    public uint Signature { get; private set; }

    /// <summary>The PDB info stream's version (20000404 for VC 7.0 and later).</summary>
    public uint Version { get; private set; }

    /// <summary>The machine the image was built for (0x14c x86, 0x8664 x64, ...), from the DBI stream.</summary>
    public ushort Machine { get; }

    /// <summary>The symbol server's folder name for this PDB: GUID and age in upper-case hex.</summary>
    public string SymbolStoreId => Pe.PeCodeView.FormatGuid(Guid) + DbiAge.ToString("X", System.Globalization.CultureInfo.InvariantCulture);

    public int StreamCount => _msf.StreamCount;

    public int BlockSize => _msf.BlockSize;

    /// <summary>The named streams (<c>/names</c>, <c>/LinkInfo</c>, ...) and their stream numbers.</summary>
    public IReadOnlyDictionary<string, int> NamedStreams { get; private set; } = new Dictionary<string, int>();

    public IReadOnlyList<PdbModule> Modules { get; }

    /// <summary>The image's section headers.</summary>
    public IReadOnlyList<PdbSection> Sections { get; }

    /// <summary>The section headers symbols are relative to: the image's before OMAP rewrote it, else <see cref="Sections"/>.</summary>
    public IReadOnlyList<PdbSection> OriginalSections { get; }

    /// <summary>Whether the image was rewritten after linking and symbols go through OMAP.</summary>
    public bool HasOmap => _addressMap.HasOmap;

    public IReadOnlyList<PdbPublicSymbol> Publics { get; }

    public IReadOnlyList<PdbGlobalSymbol> Globals { get; }

    /// <summary>Every symbol with an address, sorted by address (functions before data before publics at one address).</summary>
    public IReadOnlyList<PdbSymbol> Symbols => _byAddress;

    /// <summary>The size in bytes of stream <paramref name="index"/> (0 for a nil stream).</summary>
    public uint StreamSize(int index) => _msf.StreamSize(index);

    /// <summary>Reads a PDB file.</summary>
    /// <exception cref="InvalidDataException">The file is not a well-formed MSF 7.00 PDB.</exception>
    public static PdbFile Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var length = new FileInfo(path).Length;
        if (length > int.MaxValue)
            Malformed.Throw(path, "the file size", Malformed.Number((ulong)length), "at most 2 GiB");
        return Load(File.ReadAllBytes(path), path);
    }

    /// <summary>Reads a PDB held in memory; <paramref name="name"/> names it in errors.</summary>
    public static PdbFile Load(ReadOnlyMemory<byte> bytes, string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return new PdbFile(name, MsfFile.Open(name, bytes));
    }

    /// <summary>Reads only what ties a PDB to its image: the GUID and the DBI age (what a CodeView record holds).</summary>
    /// <exception cref="InvalidDataException">The bytes are not a well-formed MSF 7.00 PDB.</exception>
    public static (Guid Guid, uint Age) ReadIdentity(ReadOnlyMemory<byte> bytes, string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var msf = MsfFile.Open(name, bytes);
        var info = new SpanReader(msf.ReadStream(PdbInfoStream, "PDB info").Span, name, "the PDB info stream");
        uint version = info.U32();
        info.Skip(4);
        uint age = info.U32();
        var guid = version >= 20000404 ? info.Guid() : Guid.Empty;
        var dbi = msf.ReadStream(DbiStream, "DBI").Span;
        if (dbi.Length >= 12)
            age = BinaryPrimitives.ReadUInt32LittleEndian(dbi[8..]);
        return (guid, age);
    }

    /// <summary>Whether the bytes start like an MSF 7.00 PDB.</summary>
    public static bool IsPdb(ReadOnlySpan<byte> start) => MsfFile.HasMagic(start);

    // ------------------------------------------------------------------------------------------------------------
    // Symbol queries

    /// <summary>Every symbol of that name.</summary>
    /// <remarks>
    /// A name matches as stored (<c>_NtClose@4</c>), else undecorated (<c>NtClose</c>), else, for a name as a debugger
    /// prints a function (<c>static int ns::C::f(int) const</c>), by its qualified name (<c>ns::C::f</c>). Functions
    /// come first. A function that OMAP split into pieces gives one symbol per piece.
    /// </remarks>
    public IReadOnlyList<PdbSymbol> FindSymbols(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (Lookup(name) is { } found)
            return found;
        if (SymbolNames.StripSignature(name) is { } stripped && Lookup(stripped) is { } byQualifiedName)
            return byQualifiedName;
        return [];
    }

    /// <summary>The RVA of the symbol of that name (see <see cref="FindSymbols"/> for how names match).</summary>
    public bool TryGetSymbolAddress(string name, out uint rva)
    {
        var found = FindSymbols(name);
        rva = found.Count > 0 ? found[0].Rva : 0;
        return found.Count > 0;
    }

    /// <summary>The symbol at or nearest below <paramref name="rva"/>, and the distance from it; null below the first symbol.</summary>
    public PdbSymbolMatch? FindNearestSymbol(uint rva)
    {
        int index = UpperBound(rva) - 1;
        if (index < 0)
            return null;
        // The first symbol at that address is the preferred one (a function before a public).
        uint at = _addresses[index];
        while (index > 0 && _addresses[index - 1] == at)
            index--;
        return new PdbSymbolMatch(_byAddress[index], rva - at);
    }

    /// <summary>Every symbol exactly at <paramref name="rva"/>.</summary>
    public IReadOnlyList<PdbSymbol> SymbolsAt(uint rva)
    {
        int end = UpperBound(rva);
        int start = end;
        while (start > 0 && _addresses[start - 1] == rva)
            start--;
        return new ArraySegment<PdbSymbol>(_byAddress, start, end - start);
    }

    private int UpperBound(uint rva)
    {
        int lo = 0, hi = _addresses.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_addresses[mid] <= rva)
                lo = mid + 1;
            else
                hi = mid;
        }
        return lo;
    }

    /// <summary>Symbols stored under the name, then those whose undecorated name it is; null when none.</summary>
    private PdbSymbol[]? Lookup(string name)
    {
        var indexes = new List<int>();
        HashSet<int>? seen = null;
        string plain = SymbolNames.Undecorate(name);
        // As stored; then stored decorated under this name (_name, _name@8); then, for a decorated query, its plain form.
        Add(_byName, name);
        Add(_byUndecoratedName, name);
        if (!ReferenceEquals(plain, name))
        {
            Add(_byName, plain);
            Add(_byUndecoratedName, plain);
        }
        return indexes.Count == 0 ? null : Select(indexes);

        void Add(Dictionary<string, int[]> index, string key)
        {
            if (!index.TryGetValue(key, out var found))
                return;
            if (indexes.Count == 0)
            {
                indexes.AddRange(found);
                return;
            }
            seen ??= [.. indexes];
            foreach (int i in found)
            {
                if (seen.Add(i))
                    indexes.Add(i);
            }
        }
    }

    private PdbSymbol[] Select(List<int> indexes)
    {
        var result = new PdbSymbol[indexes.Count];
        for (int i = 0; i < indexes.Count; i++)
            result[i] = _byAddress[indexes[i]];
        return result;
    }

    private static (Dictionary<string, int[]> Exact, Dictionary<string, int[]> Undecorated) BuildNameIndexes(PdbSymbol[] symbols)
    {
        var exact = new Dictionary<string, List<int>>(symbols.Length, StringComparer.Ordinal);
        var undecorated = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        // Functions first, so that a name's first symbol is its function rather than its public.
        foreach (var kind in (ReadOnlySpan<PdbSymbolKind>)[PdbSymbolKind.Function, PdbSymbolKind.Data, PdbSymbolKind.Public, PdbSymbolKind.Thunk])
        {
            for (int i = 0; i < symbols.Length; i++)
            {
                var symbol = symbols[i];
                if (symbol.Kind != kind)
                    continue;
                Add(exact, symbol.Name, i);
                string plain = SymbolNames.Undecorate(symbol.Name);
                if (!ReferenceEquals(plain, symbol.Name))
                    Add(undecorated, plain, i);
            }
        }
        return (exact.ToDictionary(p => p.Key, p => p.Value.ToArray(), StringComparer.Ordinal),
                undecorated.ToDictionary(p => p.Key, p => p.Value.ToArray(), StringComparer.Ordinal));

        static void Add(Dictionary<string, List<int>> index, string key, int value)
        {
            if (!index.TryGetValue(key, out var list))
                index[key] = list = new List<int>(1);
            list.Add(value);
        }
    }

    // ------------------------------------------------------------------------------------------------------------
    // Type queries

    /// <summary>Every type record, lazily: the first call indexes the TPI stream.</summary>
    public int TypeCount => _types.Value.Count;

    /// <summary>The first type index of the TPI stream (0x1000); indexes below it are built-in types.</summary>
    public uint FirstTypeIndex => _types.Value.First;

    /// <summary>The type of that index, forward references left as they are.</summary>
    public PdbType GetType(uint typeIndex) => _types.Value.Get(typeIndex);

    /// <summary>The type (a structure, class, union, enum or typedef-free built-in like <c>int</c>) of that name,
    /// forward references resolved to their definition; null when there is none.</summary>
    public PdbType? FindType(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _types.Value.FindByName(name);
    }

    /// <summary>Every user-defined type (structure, class, interface, union, enum) that has a definition.</summary>
    public IEnumerable<PdbType> UserDefinedTypes => _types.Value.Definitions();

    /// <summary>The size in bytes of the type of that name.</summary>
    public bool TryGetTypeSize(string typeName, out ulong size)
    {
        var type = FindType(typeName);
        size = type?.Size ?? 0;
        return type is not null;
    }

    /// <summary>Where a field lies in a type: <paramref name="fieldPath"/> names a member, or a member of a member with
    /// dots (<c>Pcb.DirectoryTableBase</c>); members of base classes and of anonymous unions and structures count as
    /// the type's own.</summary>
    public bool TryGetFieldOffset(string typeName, string fieldPath, out PdbFieldLocation location)
    {
        ArgumentNullException.ThrowIfNull(fieldPath);
        location = default;
        var type = FindType(typeName);
        if (type is null)
            return false;
        var found = type.FindField(fieldPath);
        if (found is null)
            return false;
        location = found.Value;
        return true;
    }

    /// <summary>A type laid out as a debugger's <c>dt</c> shows it: one line per member with its offset and type.</summary>
    /// <returns>Null when there is no such type.</returns>
    public string? DumpType(string typeName) => FindType(typeName) is { } type ? TypeDump.Format(type) : null;

    // ------------------------------------------------------------------------------------------------------------
    // Reading

    private ReadOnlyMemory<byte> StreamOrEmpty(int index, string what) =>
        index >= 0 && _msf.HasStream(index) ? _msf.ReadStream(index, what) : ReadOnlyMemory<byte>.Empty;

    private void ReadInfoStream()
    {
        var data = _msf.ReadStream(PdbInfoStream, "PDB info");
        var reader = new SpanReader(data.Span, Name, "the PDB info stream");
        Version = reader.U32();
        Signature = reader.U32();
        Age = reader.U32();
        if (Version >= 20000404)
            Guid = reader.Guid();
        if (reader.Remaining < 4)
            return;
        // The named stream map: a buffer of names, then a hash table of (name offset, stream) pairs.
        uint namesSize = reader.U32();
        if (namesSize > reader.Remaining)
            Malformed.Throw(Name, "the PDB info stream's name buffer size", Malformed.Number(namesSize), $"at most the {reader.Remaining} bytes left in the stream");
        var names = reader.Bytes((int)namesSize);
        uint count = reader.U32();
        uint capacity = reader.U32();
        if (count > capacity || capacity > reader.Remaining * 8L)
            Malformed.Throw(Name, "the named stream map's size and capacity", $"{count} and {capacity}", "a size no larger than the capacity, and a capacity the stream can hold");
        uint presentWords = reader.U32();
        if (presentWords > reader.Remaining / 4)
            Malformed.Throw(Name, "the named stream map's present-bit word count", Malformed.Number(presentWords), $"at most {reader.Remaining / 4}");
        int present = 0;
        for (int i = 0; i < presentWords; i++)
            present += System.Numerics.BitOperations.PopCount(reader.U32());
        uint deletedWords = reader.U32();
        if (deletedWords > reader.Remaining / 4)
            Malformed.Throw(Name, "the named stream map's deleted-bit word count", Malformed.Number(deletedWords), $"at most {reader.Remaining / 4}");
        reader.Skip((int)deletedWords * 4);
        if (present > reader.Remaining / 8)
            Malformed.Throw(Name, "the named stream map's entry count", Malformed.Number((ulong)present), $"at most {reader.Remaining / 8}");
        var named = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < present; i++)
        {
            uint nameOffset = reader.U32();
            uint stream = reader.U32();
            if (nameOffset >= namesSize)
                Malformed.Throw(Name, $"named stream entry {i}'s name offset", Malformed.Number(nameOffset), $"an offset below {namesSize}");
            var rest = names[(int)nameOffset..];
            int nul = rest.IndexOf((byte)0);
            named[Encoding.UTF8.GetString(nul < 0 ? rest : rest[..nul])] = stream > int.MaxValue ? -1 : (int)stream;
        }
        NamedStreams = named;
    }

    private sealed record DbiHeader(
        ushort Machine, int GlobalStream, int PublicStream, int SymbolRecordStream,
        List<PdbModule> Modules, ushort[] OptionalStreams, List<(ushort Frame, uint Offset, uint Length)> SectionMap);

    private DbiHeader ReadDbi()
    {
        var data = _msf.ReadStream(DbiStream, "DBI");
        if (data.Length == 0)
            return new DbiHeader(0, -1, -1, -1, [], [], []);
        var reader = new SpanReader(data.Span, Name, "the DBI stream");
        int signature = reader.I32();
        if (signature != -1)
            Malformed.Throw(Name, "the DBI stream's VersionSignature", signature.ToString(System.Globalization.CultureInfo.InvariantCulture), "-1 (the format of VC 7.0 and later)");
        reader.U32(); // version
        DbiAge = reader.U32();
        int globalStream = reader.U16();
        reader.U16(); // build number
        int publicStream = reader.U16();
        reader.U16(); // PDB DLL version
        int symbolRecordStream = reader.U16();
        reader.U16(); // PDB DLL rebuild
        int moduleInfoSize = reader.I32();
        int sectionContributionSize = reader.I32();
        int sectionMapSize = reader.I32();
        int sourceInfoSize = reader.I32();
        int typeServerMapSize = reader.I32();
        reader.U32(); // MFC type server
        int optionalHeaderSize = reader.I32();
        int ecSize = reader.I32();
        reader.U16(); // flags
        ushort machine = reader.U16();
        reader.U32();

        long total = 0;
        foreach (var (size, field) in (ReadOnlySpan<(int, string)>)[
            (moduleInfoSize, "ModInfoSize"), (sectionContributionSize, "SectionContributionSize"), (sectionMapSize, "SectionMapSize"),
            (sourceInfoSize, "SourceInfoSize"), (typeServerMapSize, "TypeServerMapSize"), (optionalHeaderSize, "OptionalDbgHeaderSize"), (ecSize, "ECSubstreamSize")])
        {
            if (size < 0 || size > reader.Remaining)
                Malformed.Throw(Name, $"the DBI stream's {field}", size.ToString(System.Globalization.CultureInfo.InvariantCulture), $"between 0 and the {reader.Remaining} bytes after the DBI header");
            total += size;
        }
        if (total > reader.Remaining)
            Malformed.Throw(Name, "the DBI stream's substream sizes", $"{total} bytes in all", $"at most the {reader.Remaining} bytes after the DBI header");

        int modulesAt = reader.Position;
        var modules = ReadModules(data.Span.Slice(modulesAt, moduleInfoSize));
        int sectionMapAt = modulesAt + moduleInfoSize + sectionContributionSize;
        var sectionMap = ReadSectionMap(data.Span.Slice(sectionMapAt, sectionMapSize));
        int optionalAt = sectionMapAt + sectionMapSize + sourceInfoSize + typeServerMapSize + ecSize;
        var optional = new ushort[optionalHeaderSize / 2];
        for (int i = 0; i < optional.Length; i++)
            optional[i] = BinaryPrimitives.ReadUInt16LittleEndian(data.Span[(optionalAt + 2 * i)..]);
        return new DbiHeader(machine, globalStream == 0xffff ? -1 : globalStream, publicStream == 0xffff ? -1 : publicStream,
            symbolRecordStream == 0xffff ? -1 : symbolRecordStream, modules, optional, sectionMap);
    }

    private List<PdbModule> ReadModules(ReadOnlySpan<byte> data)
    {
        var modules = new List<PdbModule>();
        var reader = new SpanReader(data, Name, "the DBI module list");
        while (reader.Remaining >= 64)
        {
            reader.Skip(4 + 28 + 2); // unused, section contribution, flags
            ushort stream = reader.U16();
            uint symbolBytes = reader.U32();
            reader.Skip(8); // C11 and C13 line bytes
            ushort sourceFiles = reader.U16();
            reader.Skip(2 + 4 + 4 + 4);
            string moduleName = reader.CString();
            string objectName = reader.CString();
            reader.Align(4);
            modules.Add(new PdbModule(modules.Count, moduleName, objectName, stream == 0xffff ? -1 : stream, symbolBytes, sourceFiles));
        }
        return modules;
    }

    private List<(ushort Frame, uint Offset, uint Length)> ReadSectionMap(ReadOnlySpan<byte> data)
    {
        var map = new List<(ushort, uint, uint)>();
        if (data.Length < 4)
            return map;
        var reader = new SpanReader(data, Name, "the DBI section map");
        ushort count = reader.U16();
        reader.U16();
        if (count > reader.Remaining / 20)
            Malformed.Throw(Name, "the DBI section map's count", Malformed.Number(count), $"at most {reader.Remaining / 20} (20-byte entries)");
        for (int i = 0; i < count; i++)
        {
            reader.Skip(6); // flags, overlay, group
            ushort frame = reader.U16();
            reader.Skip(4); // section name, class name
            uint offset = reader.U32();
            uint length = reader.U32();
            map.Add((frame, offset, length));
        }
        return map;
    }

    private List<PdbSection> ReadSections(int stream, string what)
    {
        var sections = new List<PdbSection>();
        if (stream < 0)
            return sections;
        var data = _msf.ReadStream(stream, what).Span;
        if (data.Length % 40 != 0)
            Malformed.Throw(Name, $"the {what} stream's size", Malformed.Number((ulong)data.Length), "a multiple of 40 (IMAGE_SECTION_HEADER)");
        for (int at = 0; at < data.Length; at += 40)
        {
            var header = data.Slice(at, 40);
            var rawName = header[..8];
            int nul = rawName.IndexOf((byte)0);
            sections.Add(new PdbSection(
                Encoding.UTF8.GetString(nul < 0 ? rawName : rawName[..nul]),
                BinaryPrimitives.ReadUInt32LittleEndian(header[12..]),
                BinaryPrimitives.ReadUInt32LittleEndian(header[8..]),
                BinaryPrimitives.ReadUInt32LittleEndian(header[16..]),
                BinaryPrimitives.ReadUInt32LittleEndian(header[20..]),
                BinaryPrimitives.ReadUInt32LittleEndian(header[36..])));
        }
        return sections;
    }

    private AddressMap BuildAddressMap(ReadOnlySpan<byte> omapTo, ReadOnlySpan<byte> omapFrom, List<(ushort Frame, uint Offset, uint Length)> sectionMap)
    {
        var starts = new uint[OriginalSections.Count];
        uint end = 0;
        for (int i = 0; i < starts.Length; i++)
        {
            starts[i] = OriginalSections[i].VirtualAddress;
            end = (uint)Math.Min(uint.MaxValue, Math.Max(end, (ulong)OriginalSections[i].VirtualAddress + OriginalSections[i].VirtualSize));
        }
        // The original image's extent as the section map gives it (what DIA calls its segments), else the sections'.
        uint mapped = 0;
        foreach (var (frame, offset, length) in sectionMap)
        {
            if (frame >= 1 && frame <= starts.Length)
                mapped = (uint)Math.Min(uint.MaxValue, Math.Max(mapped, (ulong)starts[frame - 1] + offset + length));
        }
        return AddressMap.Create(Name, starts, omapTo, omapFrom, mapped != 0 ? mapped : end);
    }

    /// <summary>The RVA of a single address given as section:offset, or null when it does not map into the image.</summary>
    private uint? MapPoint(ushort section, uint offset) =>
        _addressMap.TryOriginalRva(section, offset, out uint original) && _addressMap.TryMapPoint(original, out uint rva) ? rva : null;

    /// <summary>Offsets into the symbol record stream from a GSI hash table (the globals stream, or the publics stream after its header).</summary>
    private List<int> ReadHashRecords(ReadOnlySpan<byte> hash, string what)
    {
        var offsets = new List<int>();
        if (hash.Length < 16)
            return offsets;
        var reader = new SpanReader(hash, Name, what);
        uint signature = reader.U32();
        uint version = reader.U32();
        if (signature != 0xffffffff || version != 0xeffe0000 + 19990810)
            Malformed.Throw(Name, $"the {what} hash header", $"{Malformed.Hex(signature)} {Malformed.Hex(version)}", "0xffffffff 0xf12f091a (the VC 7.0 hash format)");
        uint recordsSize = reader.U32();
        reader.U32(); // bucket bytes
        if (recordsSize % 8 != 0 || recordsSize > reader.Remaining)
            Malformed.Throw(Name, $"the {what} hash's record bytes", Malformed.Number(recordsSize), $"a multiple of 8 no larger than the {reader.Remaining} bytes that follow");
        for (int i = 0; i < recordsSize / 8; i++)
        {
            int offset = unchecked(reader.I32() - 1); // stored plus one, so that 0 can mean none; a bad one is refused by RecordAt
            reader.U32();
            offsets.Add(offset);
        }
        return offsets;
    }

    /// <summary>The kind and body (after kind) of the symbol record at <paramref name="offset"/>.</summary>
    private SpanReader RecordAt(ReadOnlySpan<byte> records, int offset, string what, out ushort kind)
    {
        if (records.Length < 4 || unchecked((uint)offset) > (uint)(records.Length - 4)) // a negative offset is a huge unsigned one
            Malformed.Throw(Name, $"a {what} offset", Malformed.Number(unchecked((ulong)(uint)offset)), $"an offset inside the {records.Length}-byte symbol record stream");
        int length = BinaryPrimitives.ReadUInt16LittleEndian(records[offset..]);
        if (length < 2 || offset + 2 + length > records.Length)
            Malformed.Throw(Name, $"the length of the symbol record at {Malformed.Hex((ulong)offset)}", Malformed.Number((ulong)length), $"between 2 and {records.Length - offset - 2}");
        kind = BinaryPrimitives.ReadUInt16LittleEndian(records[(offset + 2)..]);
        return new SpanReader(records.Slice(offset + 4, length - 2), Name, $"the symbol record at {Malformed.Hex((ulong)offset)}");
    }

    private List<PdbPublicSymbol> ReadPublics(int stream, ReadOnlySpan<byte> records)
    {
        var publics = new List<PdbPublicSymbol>();
        if (stream < 0 || !_msf.HasStream(stream))
            return publics;
        var data = _msf.ReadStream(stream, "publics").Span;
        if (data.Length < 28)
            return publics;
        uint hashSize = BinaryPrimitives.ReadUInt32LittleEndian(data);
        if (hashSize > data.Length - 28)
            Malformed.Throw(Name, "the publics stream's SymHash size", Malformed.Number(hashSize), $"at most {data.Length - 28}");
        foreach (int offset in ReadHashRecords(data.Slice(28, (int)hashSize), "publics"))
        {
            var reader = RecordAt(records, offset, "public symbol", out ushort kind);
            if (kind != CodeView.S_PUB32)
                continue;
            uint flags = reader.U32();
            uint symbolOffset = reader.U32();
            ushort section = reader.U16();
            string name = reader.CStringOrRest();
            publics.Add(new PdbPublicSymbol(name, section, symbolOffset, flags, MapPoint(section, symbolOffset)));
        }
        return publics;
    }

    private List<PdbGlobalSymbol> ReadGlobals(int stream, ReadOnlySpan<byte> records)
    {
        var globals = new List<PdbGlobalSymbol>();
        if (stream < 0 || !_msf.HasStream(stream))
            return globals;
        foreach (int offset in ReadHashRecords(_msf.ReadStream(stream, "globals").Span, "globals"))
        {
            var reader = RecordAt(records, offset, "global symbol", out ushort kind);
            switch (kind)
            {
                case CodeView.S_GDATA32 or CodeView.S_LDATA32 or CodeView.S_GTHREAD32 or CodeView.S_LTHREAD32:
                {
                    uint type = reader.U32();
                    uint dataOffset = reader.U32();
                    ushort section = reader.U16();
                    globals.Add(new PdbGlobalSymbol(kind, reader.CStringOrRest(), type, section, dataOffset, -1, MapPoint(section, dataOffset)));
                    break;
                }
                case CodeView.S_PROCREF or CodeView.S_LPROCREF or CodeView.S_DATAREF:
                {
                    reader.U32(); // checksum of the name
                    uint symbolOffset = reader.U32();
                    ushort module = reader.U16();
                    globals.Add(new PdbGlobalSymbol(kind, reader.CStringOrRest(), 0, 0, symbolOffset, module - 1, null));
                    break;
                }
                case CodeView.S_UDT:
                {
                    uint type = reader.U32();
                    globals.Add(new PdbGlobalSymbol(kind, reader.CStringOrRest(), type, 0, 0, -1, null));
                    break;
                }
                case CodeView.S_CONSTANT:
                {
                    uint type = reader.U32();
                    var value = CodeView.Numeric(ref reader);
                    globals.Add(new PdbGlobalSymbol(kind, reader.CStringOrRest(), type, 0, 0, -1, null, value));
                    break;
                }
                default:
                    globals.Add(new PdbGlobalSymbol(kind, "", 0, 0, 0, -1, null));
                    break;
            }
        }
        return globals;
    }

    private void ReadModuleSymbols(PdbModule module, List<PdbSymbol> symbols)
    {
        if (module.SymbolStream < 0 || module.SymbolBytes <= 4)
            return;
        var data = _msf.ReadStream(module.SymbolStream, $"symbols of module {module.Index}").Span;
        if (module.SymbolBytes > data.Length)
            Malformed.Throw(Name, $"module {module.Index}'s symbol byte count", Malformed.Number(module.SymbolBytes), $"at most its stream's {data.Length} bytes");
        var records = data[..(int)module.SymbolBytes];
        int offset = 4; // after the CodeView signature
        while (offset + 4 <= records.Length)
        {
            var reader = RecordAt(records, offset, "module symbol", out ushort kind);
            int next = offset + 2 + BinaryPrimitives.ReadUInt16LittleEndian(records[offset..]);
            if (CodeView.IsProcedure(kind))
            {
                reader.Skip(12); // parent, end, next
                uint length = reader.U32();
                reader.Skip(12); // debug start, debug end, type
                uint procOffset = reader.U32();
                ushort section = reader.U16();
                reader.U8(); // flags
                AddRanges(symbols, reader.CStringOrRest(), PdbSymbolKind.Function, section, procOffset, length);
            }
            else if (kind == CodeView.S_THUNK32)
            {
                reader.Skip(12);
                uint thunkOffset = reader.U32();
                ushort section = reader.U16();
                ushort length = reader.U16();
                reader.U8(); // ordinal
                AddRanges(symbols, reader.CStringOrRest(), PdbSymbolKind.Thunk, section, thunkOffset, length);
            }
            offset = next;
        }
    }

    private void AddRanges(List<PdbSymbol> symbols, string name, PdbSymbolKind kind, ushort section, uint offset, uint length)
    {
        if (!_addressMap.TryOriginalRva(section, offset, out uint original))
            return;
        foreach (var (rva, pieceLength) in _addressMap.MapRange(original, length))
            symbols.Add(new PdbSymbol(name, rva, pieceLength, kind, section, offset));
    }
}
