using System.Globalization;

namespace Introspect.Symbols.Pdb;

/// <summary>What a type record is.</summary>
public enum PdbTypeKind
{
    /// <summary>A built-in type (<c>int</c>, <c>unsigned __int64</c>, <c>void *</c>, ...), with an index below 0x1000.</summary>
    Primitive,
    Pointer,
    /// <summary><c>const</c>, <c>volatile</c> or <c>__unaligned</c> around another type.</summary>
    Modifier,
    Array,
    /// <summary>A bit field's type: <see cref="PdbType.BitPosition"/> and <see cref="PdbType.BitLength"/> bits of <see cref="PdbType.ElementType"/>.</summary>
    Bitfield,
    Structure,
    Class,
    Interface,
    Union,
    Enum,
    Procedure,
    MemberFunction,
    /// <summary>Anything else (argument lists, field lists, method lists, virtual table shapes, ...).</summary>
    Other,
}

/// <summary>What a member of a user-defined type is.</summary>
public enum PdbFieldKind
{
    Member,
    StaticMember,
    BaseClass,
    VirtualBaseClass,
    VirtualTablePointer,
}

/// <summary>A member of a structure, class or union.</summary>
/// <param name="Name">The member's name (a base class's name for a base class).</param>
/// <param name="Offset">Its byte offset in the type; a bit field's storage unit starts there.</param>
/// <param name="Type">Its type (a <see cref="PdbTypeKind.Bitfield"/> for a bit field).</param>
/// <param name="Kind">What it is.</param>
public sealed record PdbField(string Name, ulong Offset, PdbType Type, PdbFieldKind Kind)
{
    public bool IsBitfield => Type.Kind == PdbTypeKind.Bitfield;
}

/// <summary>A named value of an enum; negative values are sign-extended to 64 bits.</summary>
public sealed record PdbEnumerator(string Name, ulong Value);

/// <summary>Where a field lies: its byte offset from the start of the type it was looked up in, its type, and for a bit
/// field its first bit and its width (both 0 otherwise).</summary>
public readonly record struct PdbFieldLocation(ulong Offset, PdbType Type, int BitPosition, int BitLength)
{
    public bool IsBitfield => BitLength > 0;
}

/// <summary>A type of a PDB's TPI stream, read lazily: members and referenced types are read on first use.</summary>
public sealed class PdbType
{
    private readonly TypeTable _table;
    private readonly uint _referenced;   // pointer referent, array element, modifier or bit field target, enum underlying type
    private readonly uint _fieldList;
    private IReadOnlyList<PdbField>? _fields;
    private IReadOnlyList<PdbEnumerator>? _enumerators;
    private ulong? _size;
    private string? _displayName;

    internal PdbType(TypeTable table, uint typeIndex, PdbTypeKind kind, string name, TypeDetails details)
    {
        _table = table;
        TypeIndex = typeIndex;
        Kind = kind;
        Name = name;
        UniqueName = details.UniqueName;
        IsForwardReference = details.IsForwardReference;
        _referenced = details.Referenced;
        _fieldList = details.FieldList;
        _size = details.Size;
        BitPosition = details.BitPosition;
        BitLength = details.BitLength;
        Modifiers = details.Modifiers;
        PointerMode = details.PointerMode;
        MemberCount = details.MemberCount;
    }

    public uint TypeIndex { get; }

    public PdbTypeKind Kind { get; }

    /// <summary>The record's own name: a user-defined type's or a built-in's; empty for pointers, arrays and the like (see <see cref="ToString"/>).</summary>
    public string Name { get; }

    /// <summary>The decorated unique name MSVC gives user-defined types (<c>.?AU_EPROCESS@@</c>), or null.</summary>
    public string? UniqueName { get; }

    /// <summary>A declaration without members (<c>struct X;</c>); <see cref="Definition"/> finds the full type.</summary>
    public bool IsForwardReference { get; }

    /// <summary>The number of members a user-defined type declares (as its record says), or the enumerator count.</summary>
    public int MemberCount { get; }

    /// <summary>For a modifier: 1 const, 2 volatile, 4 unaligned.</summary>
    public int Modifiers { get; }

    public bool IsConst => (Modifiers & 1) != 0;

    public bool IsVolatile => (Modifiers & 2) != 0;

    /// <summary>For a pointer: 0 pointer, 1 lvalue reference, 2 pointer to data member, 3 pointer to member function, 4 rvalue reference.</summary>
    public int PointerMode { get; }

    /// <summary>For a bit field: the first bit within its storage unit.</summary>
    public int BitPosition { get; }

    /// <summary>For a bit field: how many bits it has; 0 for anything else.</summary>
    public int BitLength { get; }

    /// <summary>The full definition of a forward reference (the same type when it is not one, or when no definition exists).</summary>
    public PdbType Definition => IsForwardReference ? _table.ResolveForwardReference(this) : this;

    /// <summary>The type a pointer points to, an array holds, a modifier or bit field wraps, or an enum is stored as; null otherwise.</summary>
    public PdbType? ElementType => _referenced != 0 ? _table.Get(_referenced) : null;

    /// <summary>The size in bytes; forward references give their definition's.</summary>
    public ulong Size => _size ??= _table.SizeOf(this, 0);

    /// <summary>The size when the record itself gives it (or it was computed already); null when it must be looked up.</summary>
    internal ulong? KnownSize => _size;

    /// <summary>For an array: how many elements it holds (0 when the element's size is 0).</summary>
    public ulong ElementCount
    {
        get
        {
            if (Kind != PdbTypeKind.Array || ElementType is not { } element)
                return 0;
            ulong elementSize = element.Size;
            return elementSize == 0 ? 0 : Size / elementSize;
        }
    }

    /// <summary>A structure's, class's or union's members in declaration order (base classes first, as the PDB lists them).</summary>
    public IReadOnlyList<PdbField> Fields
    {
        get
        {
            var definition = Definition;
            if (!ReferenceEquals(definition, this))
                return definition.Fields;
            return _fields ??= Kind is PdbTypeKind.Structure or PdbTypeKind.Class or PdbTypeKind.Interface or PdbTypeKind.Union
                ? _table.ReadFields(this, _fieldList)
                : [];
        }
    }

    /// <summary>An enum's values.</summary>
    public IReadOnlyList<PdbEnumerator> Enumerators
    {
        get
        {
            var definition = Definition;
            if (!ReferenceEquals(definition, this))
                return definition.Enumerators;
            return _enumerators ??= Kind == PdbTypeKind.Enum ? _table.ReadEnumerators(this, _fieldList) : [];
        }
    }

    public bool IsUserDefined => Kind is PdbTypeKind.Structure or PdbTypeKind.Class or PdbTypeKind.Interface or PdbTypeKind.Union or PdbTypeKind.Enum;

    /// <summary>The type with modifiers taken off and forward references resolved: what a member's name is looked up in.</summary>
    public PdbType Underlying
    {
        get
        {
            var type = this;
            for (int depth = 0; ; depth++)
            {
                if (depth > TypeTable.MaxDepth)
                    _table.ThrowCycle(this, "LF_MODIFIER");
                if (type.Kind == PdbTypeKind.Modifier && type.ElementType is { } inner)
                    type = inner;
                else
                    return type.Definition;
            }
        }
    }

    /// <summary>Finds a member by name, or a member of a member with dots (<c>a.b.c</c>); base classes' members and those
    /// of anonymous unions and structures count as the type's own. Null when there is none.</summary>
    public PdbFieldLocation? FindField(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var type = Underlying;
        ulong offset = 0;
        PdbFieldLocation? found = null;
        foreach (var part in path.Split('.'))
        {
            if (part.Length == 0)
                return null;
            if (found is { } previous)
            {
                if (previous.IsBitfield)
                    return null;
                type = previous.Type.Underlying;
            }
            var member = FindMember(type, part, 0);
            if (member is null)
                return null;
            offset = unchecked(offset + member.Value.Offset); // offsets come from the file: a bad one wraps, never throws
            found = member.Value with { Offset = offset };
        }
        return found;
    }

    private static PdbFieldLocation? FindMember(PdbType type, string name, int depth)
    {
        if (depth > TypeTable.MaxDepth)
            type._table.ThrowCycle(type, "base classes or anonymous members");
        var fields = type.Fields;
        foreach (var field in fields)
        {
            if (field.Kind == PdbFieldKind.Member && field.Name == name)
                return Locate(field, field.Offset);
        }
        foreach (var field in fields)
        {
            // Compilers for Windows list an anonymous union's members in the enclosing type; a format that keeps them
            // inside a member without a name is searched through it.
            bool anonymous = field.Kind == PdbFieldKind.Member && IsAnonymousName(field.Name) && field.Type.Underlying.IsUserDefined;
            if (field.Kind != PdbFieldKind.BaseClass && !anonymous)
                continue;
            if (FindMember(field.Type.Underlying, name, depth + 1) is { } inner)
                return inner with { Offset = unchecked(inner.Offset + field.Offset) };
        }
        foreach (var field in fields)
        {
            if (field.Kind == PdbFieldKind.StaticMember && field.Name == name)
                return Locate(field, 0);
        }
        return null;
    }

    private static PdbFieldLocation Locate(PdbField field, ulong offset) =>
        field.Type.Kind == PdbTypeKind.Bitfield
            ? new PdbFieldLocation(offset, field.Type, field.Type.BitPosition, field.Type.BitLength)
            : new PdbFieldLocation(offset, field.Type, 0, 0);

    /// <summary>Whether a user-defined type's name is one compilers give unnamed unions and structures.</summary>
    internal static bool IsAnonymousName(string name) =>
        name.Length == 0 || name.StartsWith("<unnamed", StringComparison.Ordinal) || name.StartsWith("__unnamed", StringComparison.Ordinal)
        || name.Contains("::<unnamed", StringComparison.Ordinal) || name.Contains("<anonymous", StringComparison.Ordinal);

    /// <summary>The type as C would write it: <c>struct _LIST_ENTRY *</c>, <c>const char[16]</c>, <c>unsigned long : 3</c>.</summary>
    public override string ToString() => _displayName ??= _table.DisplayName(this, 0);

    internal string KindKeyword => Kind switch
    {
        PdbTypeKind.Structure => "struct",
        PdbTypeKind.Class => "class",
        PdbTypeKind.Interface => "interface",
        PdbTypeKind.Union => "union",
        PdbTypeKind.Enum => "enum",
        _ => "",
    };

    internal static string Hex(ulong value) => "0x" + value.ToString("x", CultureInfo.InvariantCulture);
}

/// <summary>What a type record says about itself, read when its <see cref="PdbType"/> is made.</summary>
internal struct TypeDetails
{
    public string? UniqueName;
    public bool IsForwardReference;
    public uint Referenced;
    public uint FieldList;
    public ulong? Size;
    public int BitPosition;
    public int BitLength;
    public int Modifiers;
    public int PointerMode;
    public int MemberCount;
}
