using System.Globalization;

namespace Introspect.Symbols.Pe;

/// <summary>One entry of the optional header's data directory: where a table lies (an RVA) and how large it is.</summary>
public readonly record struct PeDataDirectory(uint VirtualAddress, uint Size)
{
    public bool IsEmpty => VirtualAddress == 0 && Size == 0;

    /// <summary>Whether <paramref name="rva"/> lies inside the directory (the test for a forwarded export).</summary>
    public bool Contains(uint rva) => unchecked(rva - VirtualAddress) < Size; // an RVA below the start wraps to a huge value
}

/// <summary>The indexes of the data directory's entries.</summary>
public enum PeDirectory
{
    Export = 0,
    Import = 1,
    Resource = 2,
    Exception = 3,
    Security = 4,
    BaseRelocation = 5,
    Debug = 6,
    Architecture = 7,
    GlobalPointer = 8,
    Tls = 9,
    LoadConfig = 10,
    BoundImport = 11,
    ImportAddressTable = 12,
    DelayImport = 13,
    ClrRuntimeHeader = 14,
}

/// <summary>A section header. <see cref="Name"/> is resolved through the COFF string table when it is a <c>/offset</c> long name.</summary>
public sealed record PeSection(
    string Name,
    uint VirtualAddress,
    uint VirtualSize,
    uint PointerToRawData,
    uint SizeOfRawData,
    uint Characteristics)
{
    public const uint ContainsCode = 0x20;
    public const uint ContainsUninitializedData = 0x80;
    public const uint Executable = 0x20000000;
    public const uint Readable = 0x40000000;
    public const uint Writable = 0x80000000;

    /// <summary>How much address space the section covers once mapped (its virtual size, or its raw size when that is zero).</summary>
    public uint MappedSize => VirtualSize != 0 ? VirtualSize : SizeOfRawData;

    public bool Contains(uint rva) => unchecked(rva - VirtualAddress) < MappedSize; // wraps below the start
}

/// <summary>One exported entry point. <see cref="Name"/> is null for an export by ordinal only; a forwarded export has
/// <see cref="Forwarder"/> (<c>DLL.Name</c> or <c>DLL.#Ordinal</c>) and its <see cref="Rva"/> points at that string.</summary>
public sealed record PeExport(string? Name, uint Ordinal, uint Rva, string? Forwarder)
{
    public bool IsForwarded => Forwarder is not null;

    public override string ToString() =>
        $"{Name ?? "#" + Ordinal.ToString(CultureInfo.InvariantCulture)} @{Ordinal} " + (Forwarder is null ? $"rva 0x{Rva:x}" : $"-> {Forwarder}");
}

/// <summary>A DLL the image imports from, with what it imports.</summary>
public sealed record PeImportModule(
    string Name,
    uint LookupTableRva,
    uint TimeDateStamp,
    uint ForwarderChain,
    uint NameRva,
    uint AddressTableRva,
    IReadOnlyList<PeImportedFunction> Functions);

/// <summary>One imported function: by name (with the loader's hint) or by ordinal. <see cref="ThunkRva"/> is its slot in the import address table.</summary>
public sealed record PeImportedFunction(string? Name, ushort Hint, uint? Ordinal, uint HintNameRva, uint ThunkRva)
{
    public bool IsByOrdinal => Ordinal is not null;
}

/// <summary>One entry of the debug directory.</summary>
public sealed record PeDebugEntry(uint Type, uint TimeDateStamp, uint SizeOfData, uint AddressOfRawData, uint PointerToRawData)
{
    public const uint CodeViewType = 2;
}

/// <summary>The debug directory's CodeView record: which PDB matches the image.</summary>
/// <param name="Format"><c>RSDS</c> (PDB 7.00: a GUID) or <c>NB10</c> (PDB 2.00: a 32-bit signature).</param>
/// <param name="PdbPath">The PDB's path as the linker wrote it.</param>
/// <param name="Guid">The PDB's GUID (RSDS), or empty.</param>
/// <param name="Signature">The PDB's signature (NB10), or 0.</param>
/// <param name="Age">The PDB's age.</param>
public sealed record PeCodeView(string Format, string PdbPath, Guid Guid, uint Signature, uint Age)
{
    /// <summary>The PDB's file name without its folders (either separator).</summary>
    public string PdbFileName => PdbPath[(PdbPath.LastIndexOfAny(['\\', '/']) + 1)..];

    /// <summary>The symbol server's folder name for this PDB: the GUID (or signature) in upper-case hex followed by the age in hex.</summary>
    public string SymbolStoreId => Format == "NB10"
        ? Signature.ToString("X8", CultureInfo.InvariantCulture) + Age.ToString("X", CultureInfo.InvariantCulture)
        : FormatGuid(Guid) + Age.ToString("X", CultureInfo.InvariantCulture);

    /// <summary>A GUID as symbol servers spell it: 32 upper-case hex digits, no dashes, fields in their usual order.</summary>
    public static string FormatGuid(Guid guid) => guid.ToString("N").ToUpperInvariant();
}
