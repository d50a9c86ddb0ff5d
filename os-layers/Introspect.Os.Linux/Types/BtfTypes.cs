using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Introspect.Os.Linux.Types;

/// <summary>The kernel's BPF Type Format blob (<c>__start_BTF</c>..<c>__stop_BTF</c>): every structure's layout.</summary>
/// <remarks>
/// <para>
/// Layout (include/uapi/linux/btf.h): a header (magic <c>0xEB9F</c>, version 1, header length, then the type and
/// string sections' offsets and lengths, counted from the header's end), the types one after another (12 bytes of
/// name, info and size-or-type, then a kind-specific tail whose length depends on the kind and the member count),
/// and NUL-terminated names. Type ids count from 1 in order; 0 is void.
/// </para>
/// <para>
/// Parsing walks the types once to index where each begins; a type whose tail runs past the section, or a kind
/// this reader does not know, makes the blob invalid (the tail lengths of later types could not be trusted).
/// Names are indexed on the first query by name. References are checked when followed: a type id out of range, a
/// name offset past the strings, or a chain of typedefs that loops make that query fail, never the process.
/// </para>
/// </remarks>
internal sealed class BtfTypes : IKernelTypeSource
{
    private const ushort Magic = 0xEB9F;
    private const int HeaderMinimum = 24;
    private const int TypeHeaderSize = 12;

    // Kinds (BTF_KIND_*).
    private const int KindInt = 1;
    private const int KindPtr = 2;
    private const int KindArray = 3;
    private const int KindStruct = 4;
    private const int KindUnion = 5;
    private const int KindEnum = 6;
    private const int KindFwd = 7;
    private const int KindTypedef = 8;
    private const int KindVolatile = 9;
    private const int KindConst = 10;
    private const int KindRestrict = 11;
    private const int KindFunc = 12;
    private const int KindFuncProto = 13;
    private const int KindVar = 14;
    private const int KindDatasec = 15;
    private const int KindFloat = 16;
    private const int KindDeclTag = 17;
    private const int KindTypeTag = 18;
    private const int KindEnum64 = 19;

    private const int PointerSize = 8;

    private readonly byte[] _types;
    private readonly byte[] _strings;
    private readonly int[] _offsets;
    private readonly Lazy<NameIndex> _names;

    private BtfTypes(string description, byte[] types, byte[] strings, int[] offsets)
    {
        Description = description;
        _types = types;
        _strings = strings;
        _offsets = offsets;
        _names = new Lazy<NameIndex>(BuildNameIndex, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    public string Description { get; }

    /// <summary>How many types the blob holds (ids 1 to this).</summary>
    public int TypeCount => _offsets.Length - 1;

    /// <summary>Parses a BTF blob.</summary>
    /// <param name="blob">The blob, from its header on.</param>
    /// <param name="description">Where it came from, for messages.</param>
    /// <exception cref="InvalidDataException">The header or a type is malformed; the message names the field, its value and what was expected.</exception>
    public static BtfTypes Parse(ReadOnlySpan<byte> blob, string description)
    {
        if (blob.Length < HeaderMinimum)
            ThrowHelper.ThrowInvalid($"{description}: the BTF blob is {blob.Length} bytes long; its header alone needs {HeaderMinimum}.");
        ushort magic = BinaryPrimitives.ReadUInt16LittleEndian(blob);
        if (magic != Magic)
            ThrowHelper.ThrowInvalid($"{description}: the BTF magic is 0x{magic:x4}; expected 0x{Magic:x4}.");
        byte version = blob[2];
        if (version != 1)
            ThrowHelper.ThrowInvalid($"{description}: the BTF version is {version}; expected 1.");
        uint headerLength = BinaryPrimitives.ReadUInt32LittleEndian(blob[4..]);
        uint typeOffset = BinaryPrimitives.ReadUInt32LittleEndian(blob[8..]);
        uint typeLength = BinaryPrimitives.ReadUInt32LittleEndian(blob[12..]);
        uint stringOffset = BinaryPrimitives.ReadUInt32LittleEndian(blob[16..]);
        uint stringLength = BinaryPrimitives.ReadUInt32LittleEndian(blob[20..]);
        if (headerLength < HeaderMinimum || headerLength > (uint)blob.Length)
            ThrowHelper.ThrowInvalid($"{description}: the BTF header length is {headerLength}; expected at least {HeaderMinimum} and at most the blob's {blob.Length} bytes.");
        ulong body = (ulong)blob.Length - headerLength;
        // Sums of two 32-bit values in 64 bits cannot overflow.
        if ((ulong)typeOffset + typeLength > body)
            ThrowHelper.ThrowInvalid($"{description}: the BTF type section (offset {typeOffset}, length {typeLength}) runs past the blob's {body} bytes after the header.");
        if ((ulong)stringOffset + stringLength > body)
            ThrowHelper.ThrowInvalid($"{description}: the BTF string section (offset {stringOffset}, length {stringLength}) runs past the blob's {body} bytes after the header.");

        var types = blob.Slice((int)(headerLength + typeOffset), (int)typeLength).ToArray();
        var strings = blob.Slice((int)(headerLength + stringOffset), (int)stringLength).ToArray();

        // Every type takes at least 12 bytes, so the section's length bounds the count before anything is allocated.
        var offsets = new List<int>(Math.Min(types.Length / TypeHeaderSize, 1 << 20) + 1) { -1 };
        int position = 0;
        while (position < types.Length)
        {
            int id = offsets.Count;
            if (types.Length - position < TypeHeaderSize)
                ThrowHelper.ThrowInvalid($"{description}: BTF type #{id} at offset {position} is cut off: {types.Length - position} bytes remain of the {TypeHeaderSize} its header needs.");
            uint info = BinaryPrimitives.ReadUInt32LittleEndian(types.AsSpan(position + 4));
            int kind = (int)((info >> 24) & 0x1f);
            int vlen = (int)(info & 0xffff);
            long tail = TailLength(kind, vlen);
            if (tail < 0)
                ThrowHelper.ThrowInvalid($"{description}: BTF type #{id} at offset {position} has kind {kind}; expected a kind from 1 to {KindEnum64}.");
            if (tail > types.Length - position - TypeHeaderSize)
                ThrowHelper.ThrowInvalid($"{description}: BTF type #{id} at offset {position} (kind {kind}, {vlen} entries) needs {TypeHeaderSize + tail} bytes; only {types.Length - position} remain in the type section.");
            offsets.Add(position);
            position += TypeHeaderSize + (int)tail;
        }
        return new BtfTypes(description, types, strings, [.. offsets]);
    }

    /// <summary>The bytes after a type's 12-byte header, or -1 for an unknown kind.</summary>
    private static long TailLength(int kind, int vlen) => kind switch
    {
        KindInt => 4,
        KindPtr or KindFwd or KindTypedef or KindVolatile or KindConst or KindRestrict or KindFunc or KindFloat or KindTypeTag => 0,
        KindArray => 12,
        KindStruct or KindUnion => 12L * vlen,
        KindEnum => 8L * vlen,
        KindFuncProto => 8L * vlen,
        KindVar => 4,
        KindDatasec => 12L * vlen,
        KindDeclTag => 4,
        KindEnum64 => 12L * vlen,
        _ => -1,
    };

    public bool TryGetTypeSize(string typeName, out ulong size)
    {
        size = 0;
        return TryFindType(typeName, out int id) && TrySizeOf(id, 0, out size);
    }

    public bool TryGetField(string typeName, string fieldPath, out FieldLayout field)
    {
        field = default;
        if (!TryFindType(typeName, out int id) || string.IsNullOrEmpty(fieldPath))
            return false;
        ulong bitOffset = 0;
        int memberType = id;
        int bitSize = 0;
        foreach (var part in fieldPath.Split('.'))
        {
            if (bitSize != 0)
                return false; // a bit field has no members
            int aggregate = Resolve(memberType);
            if (aggregate <= 0 || Kind(aggregate) is not (KindStruct or KindUnion))
                return false;
            if (!TryFindMember(aggregate, Encoding.UTF8.GetBytes(part), 0, out ulong memberBits, out memberType, out bitSize))
                return false;
            bitOffset += memberBits;
        }

        ulong size = 0;
        ulong? count = null;
        if (bitSize == 0)
        {
            TrySizeOf(memberType, 0, out size);
            int resolved = Resolve(memberType);
            if (resolved > 0 && Kind(resolved) == KindArray)
                count = U32(_offsets[resolved] + TypeHeaderSize + 8);
        }
        field = new FieldLayout(bitOffset / 8, size, count, (int)(bitOffset % 8), bitSize);
        return true;
    }

    /// <summary>A type's id by name: structures, unions and enums first, then typedefs and base types.</summary>
    private bool TryFindType(string typeName, out int id)
    {
        var name = TypeNames.StripTag(typeName, out bool tagged);
        var index = _names.Value;
        if (index.Aggregates.TryGetValue(name, out id))
            return true;
        return !tagged && index.Others.TryGetValue(name, out id);
    }

    /// <summary>Finds a member by name in a structure or union, looking into anonymous members too.</summary>
    private bool TryFindMember(int aggregate, ReadOnlySpan<byte> name, int depth, out ulong bitOffset, out int memberType, out int bitSize)
    {
        bitOffset = 0;
        memberType = 0;
        bitSize = 0;
        if (depth > LinuxLimits.MaxTypeDepth)
            return false;
        int start = _offsets[aggregate];
        uint info = U32(start + 4);
        int vlen = (int)(info & 0xffff);
        bool kindFlag = (info >> 31) != 0;
        for (int i = 0; i < vlen; i++)
        {
            int member = start + TypeHeaderSize + 12 * i;
            uint nameOffset = U32(member);
            int type = (int)U32(member + 4);
            uint offset = U32(member + 8);
            uint bits = kindFlag ? offset & 0xffffff : offset;
            int width = kindFlag ? (int)(offset >> 24) : 0;
            var memberName = Name(nameOffset);
            if (memberName.Length > 0)
            {
                if (memberName.SequenceEqual(name))
                {
                    bitOffset = bits;
                    memberType = type;
                    bitSize = width;
                    return true;
                }
                continue;
            }
            int inner = Resolve(type);
            if (inner > 0 && Kind(inner) is (KindStruct or KindUnion)
                && TryFindMember(inner, name, depth + 1, out ulong innerBits, out memberType, out bitSize))
            {
                bitOffset = bits + innerBits;
                return true;
            }
        }
        return false;
    }

    /// <summary>Follows typedefs and qualifiers to the type they name; 0 for void, -1 for a bad id or a loop.</summary>
    private int Resolve(int id)
    {
        for (int step = 0; step <= LinuxLimits.MaxTypeDepth; step++)
        {
            if (id == 0)
                return 0;
            if ((uint)id >= (uint)_offsets.Length)
                return -1;
            if (Kind(id) is not (KindTypedef or KindVolatile or KindConst or KindRestrict or KindTypeTag))
                return id;
            id = (int)U32(_offsets[id] + 8);
        }
        return -1;
    }

    private bool TrySizeOf(int id, int depth, out ulong size)
    {
        size = 0;
        int resolved = Resolve(id);
        if (resolved <= 0 || depth > LinuxLimits.MaxTypeDepth)
            return false;
        int start = _offsets[resolved];
        switch (Kind(resolved))
        {
            case KindInt or KindStruct or KindUnion or KindEnum or KindEnum64 or KindFloat or KindDatasec:
                size = U32(start + 8);
                return true;
            case KindPtr:
                size = PointerSize;
                return true;
            case KindArray:
                int element = (int)U32(start + TypeHeaderSize);
                uint count = U32(start + TypeHeaderSize + 8);
                if (!TrySizeOf(element, depth + 1, out ulong elementSize))
                    return false;
                // An element of at most 2^32 bytes times a 32-bit count cannot overflow 64 bits.
                if (elementSize > uint.MaxValue)
                    return false;
                size = elementSize * count;
                return true;
            default:
                return false;
        }
    }

    private int Kind(int id) => (int)((U32(_offsets[id] + 4) >> 24) & 0x1f);

    private uint U32(int offset) => BinaryPrimitives.ReadUInt32LittleEndian(_types.AsSpan(offset));

    /// <summary>The UTF-8 bytes of a name; empty for offset 0 or an offset past the string section.</summary>
    private ReadOnlySpan<byte> Name(uint offset)
    {
        if (offset == 0 || offset >= (uint)_strings.Length)
            return [];
        var rest = _strings.AsSpan((int)offset);
        int end = rest.IndexOf((byte)0);
        return end < 0 ? rest : rest[..end];
    }

    private NameIndex BuildNameIndex()
    {
        var aggregates = new Dictionary<string, int>(StringComparer.Ordinal);
        var others = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int id = 1; id < _offsets.Length; id++)
        {
            int kind = Kind(id);
            bool aggregate = kind is KindStruct or KindUnion or KindEnum or KindEnum64;
            if (!aggregate && kind is not (KindTypedef or KindInt or KindFloat))
                continue;
            var name = Name(U32(_offsets[id]));
            if (name.IsEmpty)
                continue;
            // The first definition wins: deduplicated kernel BTF has one per name, and later ones are rarer variants.
            (aggregate ? aggregates : others).TryAdd(Encoding.UTF8.GetString(name), id);
        }
        return new NameIndex(aggregates, others);
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Description}: {TypeCount} types");

    private sealed record NameIndex(Dictionary<string, int> Aggregates, Dictionary<string, int> Others);
}
