namespace Introspect.Symbols.Pdb;

/// <summary>CodeView record kinds and numeric leaves shared by the symbol and type readers.</summary>
internal static class CodeView
{
    // Symbol records.
    public const ushort S_UDT = 0x1108;
    public const ushort S_CONSTANT = 0x1107;
    public const ushort S_THUNK32 = 0x1102;
    public const ushort S_LDATA32 = 0x110c;
    public const ushort S_GDATA32 = 0x110d;
    public const ushort S_PUB32 = 0x110e;
    public const ushort S_LPROC32 = 0x110f;
    public const ushort S_GPROC32 = 0x1110;
    public const ushort S_LTHREAD32 = 0x1112;
    public const ushort S_GTHREAD32 = 0x1113;
    public const ushort S_PROCREF = 0x1125;
    public const ushort S_DATAREF = 0x1126;
    public const ushort S_LPROCREF = 0x1127;
    public const ushort S_LPROC32_ID = 0x1146;
    public const ushort S_GPROC32_ID = 0x1147;
    public const ushort S_LPROC32_DPC = 0x1155;
    public const ushort S_LPROC32_DPC_ID = 0x1156;

    public static bool IsProcedure(ushort kind) =>
        kind is S_GPROC32 or S_LPROC32 or S_GPROC32_ID or S_LPROC32_ID or S_LPROC32_DPC or S_LPROC32_DPC_ID;

    /// <summary>Reads a numeric leaf: a value below 0x8000 stands for itself, else a kind says what follows.</summary>
    /// <remarks>Values wider than 64 bits and reals are read for their size and given as 0: offsets and sizes never use them.</remarks>
    public static ulong Numeric(ref SpanReader reader)
    {
        ushort leaf = reader.U16();
        if (leaf < 0x8000)
            return leaf;
        switch (leaf)
        {
            case 0x8000: return unchecked((ulong)(sbyte)reader.U8());   // LF_CHAR
            case 0x8001: return unchecked((ulong)reader.I16());         // LF_SHORT
            case 0x8002: return reader.U16();                           // LF_USHORT
            case 0x8003: return unchecked((ulong)reader.I32());         // LF_LONG
            case 0x8004: return reader.U32();                           // LF_ULONG
            case 0x8009: return reader.U64();                           // LF_QUADWORD
            case 0x800a: return reader.U64();                           // LF_UQUADWORD
            case 0x8005: reader.Skip(4); return 0;                      // LF_REAL32
            case 0x8006: reader.Skip(8); return 0;                      // LF_REAL64
            case 0x8007: reader.Skip(10); return 0;                     // LF_REAL80
            case 0x8008: reader.Skip(16); return 0;                     // LF_REAL128
            case 0x800b: reader.Skip(6); return 0;                      // LF_REAL48
            case 0x8017: reader.Skip(16); return 0;                     // LF_OCTWORD
            case 0x8018: reader.Skip(16); return 0;                     // LF_UOCTWORD
            case 0x8019: reader.Skip(2); return 0;                      // LF_REAL16
            default:
                return Malformed.Throw<ulong>(reader.File, $"a numeric leaf in {reader.What}", Malformed.Hex(leaf), "a value below 0x8000 or a numeric leaf kind (0x8000-0x801a)");
        }
    }
}
