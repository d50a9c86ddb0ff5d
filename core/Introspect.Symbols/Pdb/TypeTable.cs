using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace Introspect.Symbols.Pdb;

/// <summary>The TPI stream: type records by index, read on demand, with forward references resolved the way the
/// stream's own hash resolves them (same kind, same unique name, or same name without one).</summary>
/// <remarks>
/// Made on the first type question: one pass records where each record starts (every record is checked to lie inside
/// the stream, and the count against the stream's bytes). Names are indexed on the first name lookup, and
/// <see cref="PdbType"/> objects are made on first use and kept.
/// </remarks>
internal sealed class TypeTable
{
    /// <summary>How deep a chain of type references may go (modifiers of modifiers, base classes of base classes) before
    /// it is taken for a cycle; real types nest a handful of levels.</summary>
    public const int MaxDepth = 100;

    private const ushort LF_MODIFIER = 0x1001, LF_POINTER = 0x1002, LF_PROCEDURE = 0x1008, LF_MFUNCTION = 0x1009;
    private const ushort LF_ARGLIST = 0x1201, LF_FIELDLIST = 0x1203, LF_BITFIELD = 0x1205;
    private const ushort LF_BCLASS = 0x1400, LF_VBCLASS = 0x1401, LF_IVBCLASS = 0x1402, LF_INDEX = 0x1404, LF_VFUNCTAB = 0x1409, LF_VFUNCOFF = 0x140c;
    private const ushort LF_ENUMERATE = 0x1502, LF_ARRAY = 0x1503, LF_CLASS = 0x1504, LF_STRUCTURE = 0x1505, LF_UNION = 0x1506, LF_ENUM = 0x1507;
    private const ushort LF_MEMBER = 0x150d, LF_STMEMBER = 0x150e, LF_METHOD = 0x150f, LF_NESTTYPE = 0x1510, LF_ONEMETHOD = 0x1511;
    private const ushort LF_NESTTYPEEX = 0x1512, LF_INTERFACE = 0x1519, LF_BINTERFACE = 0x151a;
    private const ushort LF_CLASS2 = 0x1608, LF_STRUCTURE2 = 0x1609, LF_UNION2 = 0x160a, LF_INTERFACE2 = 0x160b;
    private const ushort ForwardReferenceFlag = 0x80, HasUniqueNameFlag = 0x200;

    private readonly string _file;
    private readonly string _what;
    private readonly ReadOnlyMemory<byte> _records;
    private readonly int[] _offsets;
    private readonly PdbType?[] _types;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<uint, PdbType> _primitives = new();
    private readonly IReadOnlyList<PdbGlobalSymbol> _typedefs;
    private Dictionary<(int Family, string Key), uint>? _definitions;
    private Dictionary<string, uint>? _byName;
    private Dictionary<string, uint>? _byTypedef;

    public TypeTable(string file, ReadOnlyMemory<byte> stream, string what, IReadOnlyList<PdbGlobalSymbol> typedefs)
    {
        _file = file;
        _what = what;
        _typedefs = typedefs;
        if (stream.Length == 0)
        {
            First = End = 0x1000;
            _offsets = [];
            _types = [];
            return;
        }
        var header = new SpanReader(stream.Span, file, $"the {what} stream header");
        uint version = header.U32();
        uint headerSize = header.U32();
        First = header.U32();
        End = header.U32();
        uint recordBytes = header.U32();
        if (version < 19990903 || version > 20040203 + 100000)
            Malformed.Throw(file, $"the {what} stream's version", version.ToString(System.Globalization.CultureInfo.InvariantCulture), "20040203 (or another VC 7.0+ version)");
        if (headerSize < 56 || headerSize > stream.Length)
            Malformed.Throw(file, $"the {what} stream's HeaderSize", Malformed.Number(headerSize), $"between 56 and the stream's {stream.Length} bytes");
        if ((ulong)headerSize + recordBytes > (ulong)stream.Length)
            Malformed.Throw(file, $"the {what} stream's TypeRecordBytes", Malformed.Number(recordBytes), $"at most the {stream.Length - headerSize} bytes after its header");
        if (First < 0x1000 || End < First)
            Malformed.Throw(file, $"the {what} stream's type index range", $"{Malformed.Hex(First)}..{Malformed.Hex(End)}", "a range starting at 0x1000 or above and not running backwards");
        ulong count = End - First;
        // Every record takes at least 4 bytes (its length and kind), so the bytes bound the count.
        if (count > recordBytes / 4)
            Malformed.Throw(file, $"the {what} stream's type count (TypeIndexEnd - TypeIndexBegin)", Malformed.Number(count),
                $"at most {recordBytes / 4} (records of at least 4 bytes in {recordBytes} bytes)");
        _records = stream.Slice((int)headerSize, (int)recordBytes);
        _offsets = new int[count];
        var records = _records.Span;
        int offset = 0;
        for (int i = 0; i < (int)count; i++)
        {
            if (records.Length - offset < 4)
                Malformed.Throw(file, $"the {what} stream's type count", Malformed.Number(count), $"{i} (the records end after type {Malformed.Hex(First + (uint)i - 1)})");
            int length = BinaryPrimitives.ReadUInt16LittleEndian(records[offset..]);
            if (length < 2 || length > records.Length - offset - 2)
                Malformed.Throw(file, $"the length of type {Malformed.Hex(First + (uint)i)} (at {Malformed.Hex((ulong)offset)})", Malformed.Number((ulong)length),
                    $"between 2 and the {records.Length - offset - 2} bytes left");
            _offsets[i] = offset;
            offset += 2 + length;
        }
        _types = new PdbType?[count];
    }

    public uint First { get; }

    public uint End { get; }

    public int Count => _offsets.Length;

    public PdbType Get(uint typeIndex)
    {
        if (typeIndex < First)
            return Primitive(typeIndex);
        uint slot = typeIndex - First;
        if (slot >= (uint)_types.Length)
            Malformed.Throw(_file, $"a reference to type {Malformed.Hex(typeIndex)}", "past the last type", $"an index below {Malformed.Hex(End)}");
        return _types[slot] ??= Create(typeIndex);
    }

    /// <summary>A record's kind and its bytes after the kind.</summary>
    private ReadOnlySpan<byte> Record(uint typeIndex, out ushort kind)
    {
        int offset = _offsets[typeIndex - First];
        var records = _records.Span;
        int length = BinaryPrimitives.ReadUInt16LittleEndian(records[offset..]);
        kind = BinaryPrimitives.ReadUInt16LittleEndian(records[(offset + 2)..]);
        return records.Slice(offset + 4, length - 2);
    }

    private PdbType Create(uint typeIndex)
    {
        var body = Record(typeIndex, out ushort kind);
        var reader = new SpanReader(body, _file, $"type {Malformed.Hex(typeIndex)}");
        var details = new TypeDetails();
        string name = "";
        PdbTypeKind typeKind;
        switch (kind)
        {
            case LF_MODIFIER:
                details.Referenced = reader.U32();
                details.Modifiers = reader.U16() & 7;
                typeKind = PdbTypeKind.Modifier;
                break;
            case LF_POINTER:
            {
                details.Referenced = reader.U32();
                uint attributes = reader.U32();
                uint pointerKind = attributes & 0x1f;
                details.PointerMode = (int)((attributes >> 5) & 7);
                uint size = (attributes >> 13) & 0x3f;
                details.Size = size != 0 ? size : pointerKind == 0x0c ? 8u : 4u;
                typeKind = PdbTypeKind.Pointer;
                break;
            }
            case LF_ARRAY:
                details.Referenced = reader.U32();
                reader.U32(); // index type
                details.Size = CodeView.Numeric(ref reader);
                name = reader.CStringOrRest();
                typeKind = PdbTypeKind.Array;
                break;
            case LF_BITFIELD:
                details.Referenced = reader.U32();
                details.BitLength = reader.U8();
                details.BitPosition = reader.U8();
                typeKind = PdbTypeKind.Bitfield;
                break;
            case LF_CLASS or LF_STRUCTURE or LF_INTERFACE:
            {
                details.MemberCount = reader.U16();
                ushort properties = reader.U16();
                details.FieldList = reader.U32();
                reader.U32(); // derivation list
                reader.U32(); // virtual table shape
                ReadTagTail(ref reader, properties, ref details, ref name);
                typeKind = kind == LF_CLASS ? PdbTypeKind.Class : kind == LF_STRUCTURE ? PdbTypeKind.Structure : PdbTypeKind.Interface;
                break;
            }
            case LF_CLASS2 or LF_STRUCTURE2 or LF_INTERFACE2:
            {
                uint properties = reader.U32();
                details.FieldList = reader.U32();
                reader.U32();
                reader.U32();
                details.MemberCount = (int)Math.Min(CodeView.Numeric(ref reader), int.MaxValue);
                ReadTagTail(ref reader, unchecked((ushort)properties), ref details, ref name);
                typeKind = kind == LF_CLASS2 ? PdbTypeKind.Class : kind == LF_STRUCTURE2 ? PdbTypeKind.Structure : PdbTypeKind.Interface;
                break;
            }
            case LF_UNION:
            {
                details.MemberCount = reader.U16();
                ushort properties = reader.U16();
                details.FieldList = reader.U32();
                ReadTagTail(ref reader, properties, ref details, ref name);
                typeKind = PdbTypeKind.Union;
                break;
            }
            case LF_UNION2:
            {
                uint properties = reader.U32();
                details.FieldList = reader.U32();
                details.MemberCount = (int)Math.Min(CodeView.Numeric(ref reader), int.MaxValue);
                ReadTagTail(ref reader, unchecked((ushort)properties), ref details, ref name);
                typeKind = PdbTypeKind.Union;
                break;
            }
            case LF_ENUM:
            {
                details.MemberCount = reader.U16();
                ushort properties = reader.U16();
                details.Referenced = reader.U32();
                details.FieldList = reader.U32();
                details.IsForwardReference = (properties & ForwardReferenceFlag) != 0;
                name = reader.CStringOrRest();
                if ((properties & HasUniqueNameFlag) != 0 && reader.Remaining > 0)
                    details.UniqueName = reader.CStringOrRest();
                typeKind = PdbTypeKind.Enum;
                break;
            }
            case LF_PROCEDURE:
                details.Referenced = reader.U32();
                details.Size = 0;
                typeKind = PdbTypeKind.Procedure;
                break;
            case LF_MFUNCTION:
                details.Referenced = reader.U32();
                details.Size = 0;
                typeKind = PdbTypeKind.MemberFunction;
                break;
            default:
                details.Size = 0;
                typeKind = PdbTypeKind.Other;
                break;
        }
        return new PdbType(this, typeIndex, typeKind, name, details);
    }

    private static void ReadTagTail(ref SpanReader reader, ushort properties, ref TypeDetails details, ref string name)
    {
        details.IsForwardReference = (properties & ForwardReferenceFlag) != 0;
        ulong size = CodeView.Numeric(ref reader);
        if (!details.IsForwardReference)
            details.Size = size;
        name = reader.CStringOrRest();
        if ((properties & HasUniqueNameFlag) != 0 && reader.Remaining > 0)
            details.UniqueName = reader.CStringOrRest();
    }

    // --------------------------------------------------------------------------------------------------------------
    // Built-in types

    private static readonly Dictionary<uint, (string Name, uint Size)> BasicTypes = new()
    {
        [0x00] = ("<no type>", 0), [0x03] = ("void", 0), [0x08] = ("HRESULT", 4),
        [0x10] = ("signed char", 1), [0x20] = ("unsigned char", 1), [0x70] = ("char", 1), [0x71] = ("wchar_t", 2),
        [0x7a] = ("char16_t", 2), [0x7b] = ("char32_t", 4), [0x7c] = ("char8_t", 1),
        [0x11] = ("short", 2), [0x21] = ("unsigned short", 2), [0x72] = ("short", 2), [0x73] = ("unsigned short", 2),
        [0x12] = ("long", 4), [0x22] = ("unsigned long", 4), [0x74] = ("int", 4), [0x75] = ("unsigned int", 4),
        [0x13] = ("__int64", 8), [0x23] = ("unsigned __int64", 8), [0x76] = ("__int64", 8), [0x77] = ("unsigned __int64", 8),
        [0x14] = ("__int128", 16), [0x24] = ("unsigned __int128", 16), [0x78] = ("__int128", 16), [0x79] = ("unsigned __int128", 16),
        [0x68] = ("__int8", 1), [0x69] = ("unsigned __int8", 1),
        [0x30] = ("bool", 1), [0x31] = ("__bool16", 2), [0x32] = ("__bool32", 4), [0x33] = ("__bool64", 8),
        [0x40] = ("float", 4), [0x41] = ("double", 8), [0x42] = ("long double", 10), [0x43] = ("__float128", 16),
        [0x44] = ("__float48", 6), [0x46] = ("__half", 2),
    };

    private static readonly Dictionary<string, uint> BasicTypeNames = new(StringComparer.Ordinal)
    {
        ["void"] = 0x03, ["char"] = 0x70, ["signed char"] = 0x10, ["unsigned char"] = 0x20, ["wchar_t"] = 0x71,
        ["short"] = 0x11, ["unsigned short"] = 0x21, ["int"] = 0x74, ["unsigned int"] = 0x75, ["unsigned"] = 0x75,
        ["long"] = 0x12, ["unsigned long"] = 0x22, ["__int64"] = 0x13, ["long long"] = 0x13, ["unsigned __int64"] = 0x23,
        ["unsigned long long"] = 0x23, ["bool"] = 0x30, ["float"] = 0x40, ["double"] = 0x41, ["HRESULT"] = 0x08,
        ["__int8"] = 0x68, ["unsigned __int8"] = 0x69, ["__int16"] = 0x72, ["unsigned __int16"] = 0x73, ["__int32"] = 0x74, ["unsigned __int32"] = 0x75,
        ["char16_t"] = 0x7a, ["char32_t"] = 0x7b, ["char8_t"] = 0x7c,
    };

    private PdbType Primitive(uint typeIndex)
    {
        if (_primitives.TryGetValue(typeIndex, out var known))
            return known;
        uint basic = typeIndex & 0xff;
        uint mode = (typeIndex >> 8) & 0x7;
        var (basicName, basicSize) = BasicTypes.TryGetValue(basic, out var entry) ? entry : ($"<built-in {Malformed.Hex(basic)}>", 0u);
        var details = new TypeDetails();
        PdbType type;
        if (mode == 0)
        {
            details.Size = basicSize;
            type = new PdbType(this, typeIndex, PdbTypeKind.Primitive, basicName, details);
        }
        else
        {
            // A pointer to a built-in type, encoded in the index: 4 is 32-bit, 6 is 64-bit, the rest 16-bit segmented.
            details.Size = mode switch { 4 => 4u, 6 => 8u, 1 => 2u, _ => 4u };
            details.Referenced = basic;
            type = new PdbType(this, typeIndex, PdbTypeKind.Pointer, "", details);
        }
        return _primitives.GetOrAdd(typeIndex, type);
    }

    // --------------------------------------------------------------------------------------------------------------
    // Names and forward references

    private static int Family(ushort kind) => kind switch
    {
        LF_CLASS or LF_CLASS2 => 1,
        LF_STRUCTURE or LF_STRUCTURE2 => 2,
        LF_INTERFACE or LF_INTERFACE2 => 3,
        LF_UNION or LF_UNION2 => 4,
        LF_ENUM => 5,
        _ => 0,
    };

    private static int Family(PdbTypeKind kind) => kind switch
    {
        PdbTypeKind.Class => 1,
        PdbTypeKind.Structure => 2,
        PdbTypeKind.Interface => 3,
        PdbTypeKind.Union => 4,
        PdbTypeKind.Enum => 5,
        _ => 0,
    };

    /// <summary>One pass over the user-defined types: definitions by (kind, unique name or name), and by name.</summary>
    [MemberNotNull(nameof(_definitions), nameof(_byName))]
    private void IndexNames()
    {
        if (_definitions is not null && _byName is not null)
            return;
        var definitions = new Dictionary<(int, string), uint>();
        var byName = new Dictionary<string, uint>(StringComparer.Ordinal);
        var forwardOnly = new Dictionary<string, uint>(StringComparer.Ordinal);
        for (uint i = 0; i < (uint)_offsets.Length; i++)
        {
            uint typeIndex = First + i;
            var body = Record(typeIndex, out ushort kind);
            int family = Family(kind);
            if (family == 0)
                continue;
            var type = Get(typeIndex);
            if (type.IsForwardReference)
            {
                forwardOnly.TryAdd(type.Name, typeIndex);
                continue;
            }
            definitions.TryAdd((family, type.UniqueName ?? type.Name), typeIndex);
            byName.TryAdd(type.Name, typeIndex);
        }
        foreach (var (name, typeIndex) in forwardOnly)
            byName.TryAdd(name, typeIndex);
        _definitions = definitions;
        _byName = byName;
    }

    public PdbType ResolveForwardReference(PdbType forward)
    {
        IndexNames();
        return _definitions.TryGetValue((Family(forward.Kind), forward.UniqueName ?? forward.Name), out uint definition)
            ? Get(definition)
            : forward;
    }

    public PdbType? FindByName(string name)
    {
        var text = name.Trim();
        foreach (var keyword in (ReadOnlySpan<string>)["struct ", "class ", "union ", "enum ", "interface "])
        {
            if (text.StartsWith(keyword, StringComparison.Ordinal))
            {
                text = text[keyword.Length..].TrimStart();
                break;
            }
        }
        IndexNames();
        if (_byName.TryGetValue(text, out uint typeIndex))
            return Get(typeIndex).Definition;
        if (BasicTypeNames.TryGetValue(text, out uint basic))
            return Primitive(basic);
        _byTypedef ??= BuildTypedefs();
        return _byTypedef.TryGetValue(text, out uint aliased) ? Get(aliased).Definition : null;
    }

    private Dictionary<string, uint> BuildTypedefs()
    {
        var typedefs = new Dictionary<string, uint>(StringComparer.Ordinal);
        foreach (var symbol in _typedefs)
        {
            if (symbol.RecordKind == CodeView.S_UDT && symbol.TypeIndex != 0 && symbol.TypeIndex < End)
                typedefs.TryAdd(symbol.Name, symbol.TypeIndex);
        }
        return typedefs;
    }

    public IEnumerable<PdbType> Definitions()
    {
        for (uint i = 0; i < (uint)_offsets.Length; i++)
        {
            Record(First + i, out ushort kind);
            if (Family(kind) == 0)
                continue;
            var type = Get(First + i);
            if (!type.IsForwardReference)
                yield return type;
        }
    }

    // --------------------------------------------------------------------------------------------------------------
    // Sizes, members and names

    [DoesNotReturn]
    public void ThrowCycle(PdbType type, string via) =>
        Malformed.Throw(_file, $"type {Malformed.Hex(type.TypeIndex)} ({_what})", $"a chain of references through {via} more than {MaxDepth} deep",
            "types that do not refer back to themselves (a cycle)");

    public ulong SizeOf(PdbType type, int depth)
    {
        if (depth > MaxDepth)
            ThrowCycle(type, $"{type.Kind} records");
        if (type.KnownSize is { } known)
            return known;
        switch (type.Kind)
        {
            case PdbTypeKind.Modifier or PdbTypeKind.Bitfield or PdbTypeKind.Enum:
                return type.ElementType is { } element ? SizeOf(element, depth + 1) : 0;
            case PdbTypeKind.Structure or PdbTypeKind.Class or PdbTypeKind.Interface or PdbTypeKind.Union:
                var definition = type.Definition;
                return ReferenceEquals(definition, type) ? 0 : definition.Size;
            default:
                return 0;
        }
    }

    /// <summary>Walks a field list and the lists it continues into (<c>LF_INDEX</c>), refusing to walk one twice.</summary>
    private void WalkFieldList(PdbType owner, uint fieldList, FieldVisitor visit)
    {
        var seen = new HashSet<uint>();
        uint current = fieldList;
        while (current != 0)
        {
            if (!seen.Add(current))
                Malformed.Throw(_file, $"the field list of type {Malformed.Hex(owner.TypeIndex)}", $"continued (LF_INDEX) into {Malformed.Hex(current)} a second time",
                    "a chain of field lists without a cycle");
            if (current < First || current >= End)
                Malformed.Throw(_file, $"the field list of type {Malformed.Hex(owner.TypeIndex)}", Malformed.Hex(current), $"a type index between {Malformed.Hex(First)} and {Malformed.Hex(End - 1)}");
            var body = Record(current, out ushort kind);
            if (kind != LF_FIELDLIST)
                Malformed.Throw(_file, $"the field list {Malformed.Hex(current)} of type {Malformed.Hex(owner.TypeIndex)}", $"a record of kind {Malformed.Hex(kind)}", "LF_FIELDLIST (0x1203)");
            var reader = new SpanReader(body, _file, $"field list {Malformed.Hex(current)}");
            uint next = 0;
            while (reader.Remaining >= 2)
            {
                // Members are padded to 4 bytes with LF_PAD bytes (0xf0 + how many bytes to skip).
                byte lead = reader.Data[reader.Position];
                if (lead >= 0xf0)
                {
                    int skip = lead & 0x0f;
                    reader.Skip(Math.Min(Math.Max(skip, 1), reader.Remaining));
                    continue;
                }
                ushort member = reader.U16();
                if (member == LF_INDEX)
                {
                    reader.U16();
                    next = reader.U32();
                    break;
                }
                if (!visit(member, ref reader))
                    Malformed.Throw(_file, $"member kind in field list {Malformed.Hex(current)}", Malformed.Hex(member), "a known field list member (LF_MEMBER, LF_METHOD, ...)");
            }
            current = next;
        }
    }

    private delegate bool FieldVisitor(ushort member, ref SpanReader reader);

    public IReadOnlyList<PdbField> ReadFields(PdbType owner, uint fieldList)
    {
        var fields = new List<PdbField>();
        WalkFieldList(owner, fieldList, (ushort member, ref SpanReader reader) =>
        {
            switch (member)
            {
                case LF_MEMBER:
                {
                    reader.U16();
                    uint type = reader.U32();
                    ulong offset = CodeView.Numeric(ref reader);
                    fields.Add(new PdbField(reader.CStringOrRest(), offset, Get(type), PdbFieldKind.Member));
                    return true;
                }
                case LF_STMEMBER:
                {
                    reader.U16();
                    uint type = reader.U32();
                    fields.Add(new PdbField(reader.CStringOrRest(), 0, Get(type), PdbFieldKind.StaticMember));
                    return true;
                }
                case LF_BCLASS or LF_BINTERFACE:
                {
                    reader.U16();
                    var type = Get(reader.U32());
                    ulong offset = CodeView.Numeric(ref reader);
                    fields.Add(new PdbField(type.Name, offset, type, PdbFieldKind.BaseClass));
                    return true;
                }
                case LF_VBCLASS or LF_IVBCLASS:
                {
                    reader.U16();
                    var type = Get(reader.U32());
                    reader.U32(); // virtual base pointer type
                    ulong pointerOffset = CodeView.Numeric(ref reader);
                    CodeView.Numeric(ref reader); // index in the virtual base table
                    fields.Add(new PdbField(type.Name, pointerOffset, type, PdbFieldKind.VirtualBaseClass));
                    return true;
                }
                case LF_VFUNCTAB:
                {
                    reader.U16();
                    var type = Get(reader.U32());
                    fields.Add(new PdbField("__vfptr", 0, type, PdbFieldKind.VirtualTablePointer));
                    return true;
                }
                default:
                    return SkipOther(member, ref reader);
            }
        });
        return fields;
    }

    public IReadOnlyList<PdbEnumerator> ReadEnumerators(PdbType owner, uint fieldList)
    {
        var values = new List<PdbEnumerator>();
        WalkFieldList(owner, fieldList, (ushort member, ref SpanReader reader) =>
        {
            if (member != LF_ENUMERATE)
                return SkipOther(member, ref reader);
            reader.U16();
            ulong value = CodeView.Numeric(ref reader);
            values.Add(new PdbEnumerator(reader.CStringOrRest(), value));
            return true;
        });
        return values;
    }

    /// <summary>Steps over a member that carries no data layout (methods, nested types).</summary>
    private static bool SkipOther(ushort member, ref SpanReader reader)
    {
        switch (member)
        {
            case LF_METHOD:
                reader.U16();
                reader.U32();
                reader.CStringOrRest();
                return true;
            case LF_ONEMETHOD:
            {
                ushort attributes = reader.U16();
                reader.U32();
                int property = (attributes >> 2) & 7;
                if (property is 4 or 6) // introducing virtual: a virtual table offset follows
                    reader.U32();
                reader.CStringOrRest();
                return true;
            }
            case LF_NESTTYPE or LF_NESTTYPEEX:
                reader.U16();
                reader.U32();
                reader.CStringOrRest();
                return true;
            case LF_VFUNCOFF:
                reader.U16();
                reader.U32();
                reader.U32();
                return true;
            case LF_ENUMERATE:
                reader.U16();
                CodeView.Numeric(ref reader);
                reader.CStringOrRest();
                return true;
            case LF_MEMBER:
                reader.U16();
                reader.U32();
                CodeView.Numeric(ref reader);
                reader.CStringOrRest();
                return true;
            default:
                return false;
        }
    }

    public string DisplayName(PdbType type, int depth)
    {
        if (depth > MaxDepth)
            ThrowCycle(type, "the types it names");
        switch (type.Kind)
        {
            case PdbTypeKind.Primitive:
                return type.Name;
            case PdbTypeKind.Structure or PdbTypeKind.Class or PdbTypeKind.Interface or PdbTypeKind.Union or PdbTypeKind.Enum:
                return $"{type.KindKeyword} {type.Name}";
            case PdbTypeKind.Pointer:
            {
                string target = type.ElementType is { } pointee ? DisplayName(pointee, depth + 1) : "void";
                return type.PointerMode switch { 1 => target + " &", 4 => target + " &&", _ => target + " *" };
            }
            case PdbTypeKind.Modifier:
            {
                string inner = type.ElementType is { } modified ? DisplayName(modified, depth + 1) : "void";
                var prefix = new StringBuilder();
                if (type.IsConst)
                    prefix.Append("const ");
                if (type.IsVolatile)
                    prefix.Append("volatile ");
                if ((type.Modifiers & 4) != 0)
                    prefix.Append("__unaligned ");
                return prefix + inner;
            }
            case PdbTypeKind.Array:
            {
                // Arrays of arrays print outermost dimension first, as C declares them.
                var dimensions = new StringBuilder();
                var current = type;
                int steps = 0;
                while (current.Kind == PdbTypeKind.Array && current.ElementType is { } element)
                {
                    if (++steps > MaxDepth)
                        ThrowCycle(type, "LF_ARRAY");
                    dimensions.Append('[').Append(current.ElementCount).Append(']');
                    current = element;
                }
                return DisplayName(current, depth + 1) + dimensions;
            }
            case PdbTypeKind.Bitfield:
                return $"{(type.ElementType is { } storage ? DisplayName(storage, depth + 1) : "int")} : {type.BitLength}";
            case PdbTypeKind.Procedure or PdbTypeKind.MemberFunction:
                return $"{(type.ElementType is { } returns ? DisplayName(returns, depth + 1) : "void")} ()";
            default:
                return $"<type {Malformed.Hex(type.TypeIndex)}>";
        }
    }
}
