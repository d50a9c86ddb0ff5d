namespace Introspect.Symbols.Pdb;

/// <summary>What a symbol of the address index is.</summary>
public enum PdbSymbolKind
{
    /// <summary>A procedure from a module's symbols (<c>S_GPROC32</c>, <c>S_LPROC32</c>, ...): it has a length.</summary>
    Function,
    /// <summary>Global or file-static data (<c>S_GDATA32</c>, <c>S_LDATA32</c>).</summary>
    Data,
    /// <summary>A public symbol (<c>S_PUB32</c>): what the linker exported to the symbol table, often decorated.</summary>
    Public,
    /// <summary>An incremental-linking or import thunk (<c>S_THUNK32</c>).</summary>
    Thunk,
}

/// <summary>A symbol at an address of the image.</summary>
/// <param name="Name">The name as the PDB stores it (publics keep their decoration, e.g. <c>_NtClose@4</c>).</param>
/// <param name="Rva">Its address relative to the image base, after OMAP.</param>
/// <param name="Length">Its length in bytes when known (functions), else 0.</param>
/// <param name="Kind">What it is.</param>
/// <param name="Section">The section number (1-based) the PDB gives.</param>
/// <param name="Offset">The offset in that section the PDB gives (before OMAP).</param>
public sealed record PdbSymbol(string Name, uint Rva, uint Length, PdbSymbolKind Kind, ushort Section, uint Offset)
{
    /// <summary>The name without C decoration (<c>_name</c>, <c>_name@8</c>, <c>@name@8</c> give <c>name</c>), as debuggers show it.</summary>
    public string UndecoratedName => SymbolNames.Undecorate(Name);
}

/// <summary>The nearest symbol at or below an address, and how far the address lies past it.</summary>
public readonly record struct PdbSymbolMatch(PdbSymbol Symbol, uint Displacement)
{
    public override string ToString() => Displacement == 0 ? Symbol.Name : $"{Symbol.Name}+0x{Displacement:x}";
}

/// <summary>One record of the public symbol table (<c>S_PUB32</c>).</summary>
/// <param name="Name">The name as stored, decoration and all.</param>
/// <param name="Section">The section number (1-based).</param>
/// <param name="Offset">The offset in the section.</param>
/// <param name="Flags">1 code, 2 function, 4 managed, 8 MSIL.</param>
/// <param name="Rva">Its RVA, or null when its section:offset does not map into the image.</param>
public sealed record PdbPublicSymbol(string Name, ushort Section, uint Offset, uint Flags, uint? Rva)
{
    public bool IsFunction => (Flags & 2) != 0;
}

/// <summary>One record of the global symbol table: data, constants, typedefs and references to procedures.</summary>
/// <param name="Name">The symbol's name.</param>
/// <param name="RecordKind">The CodeView record kind (0x110d <c>S_GDATA32</c>, 0x1108 <c>S_UDT</c>, 0x1125 <c>S_PROCREF</c>, ...).</param>
/// <param name="TypeIndex">The type of data, constants and typedefs; 0 for others.</param>
/// <param name="Section">Data: the section number; procedure references: 0.</param>
/// <param name="Offset">Data: the offset in the section; procedure references: the offset of the procedure in its module's symbols.</param>
/// <param name="Module">Procedure references: the module (0-based); others: -1.</param>
/// <param name="Rva">Data: its RVA when it maps into the image.</param>
/// <param name="Value">Constants: the value (negative ones sign-extended); others: 0.</param>
public sealed record PdbGlobalSymbol(ushort RecordKind, string Name, uint TypeIndex, ushort Section, uint Offset, int Module, uint? Rva, ulong Value = 0);

/// <summary>A module (an object file or an import library member) the linker put into the image.</summary>
public sealed record PdbModule(int Index, string Name, string ObjectFile, int SymbolStream, uint SymbolBytes, int SourceFileCount);

/// <summary>A section header as the PDB keeps it.</summary>
public sealed record PdbSection(string Name, uint VirtualAddress, uint VirtualSize, uint SizeOfRawData, uint PointerToRawData, uint Characteristics);
