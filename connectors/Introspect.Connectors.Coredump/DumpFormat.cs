using System.Buffers.Binary;
using Introspect.Connectors.Coredump.IO;

namespace Introspect.Connectors.Coredump;

/// <summary>The dump formats this connector reads, as the <c>format=</c> argument names them.</summary>
internal enum DumpFormat
{
    Auto,
    Raw,
    Elf,
    Lime,
    CrashDump,
    Kdump,
}

/// <summary>Picks a format from the file's first bytes.</summary>
internal static class FormatDetector
{
    public const uint LimeMagic = 0x4C694D45;

    public static ReadOnlySpan<byte> ElfMagic => "\u007fELF"u8;

    public static ReadOnlySpan<byte> CrashDump64Magic => "PAGEDU64"u8;

    public static ReadOnlySpan<byte> CrashDump32Magic => "PAGEDUMP"u8;

    public static ReadOnlySpan<byte> KdumpMagic => "KDUMP   "u8;

    /// <summary>The flattened form's signature, NUL-padded to 16 bytes in the file.</summary>
    public static ReadOnlySpan<byte> FlattenedMagic => "makedumpfile"u8;

    /// <summary>The format whose magic opens the file; <see cref="DumpFormat.Raw"/> when none does.</summary>
    public static DumpFormat Detect(DataSource file)
    {
        Span<byte> head = stackalloc byte[16];
        int length = file.Length < 16 ? (int)file.Length : 16;
        if (!file.TryRead(0, head[..length]))
            return DumpFormat.Raw;
        head = head[..length];
        if (head.StartsWith(ElfMagic))
            return DumpFormat.Elf;
        if (head.Length >= 4 && BinaryPrimitives.ReadUInt32LittleEndian(head) == LimeMagic)
            return DumpFormat.Lime;
        if (head.StartsWith(CrashDump64Magic) || head.StartsWith(CrashDump32Magic))
            return DumpFormat.CrashDump;
        if (head.StartsWith(KdumpMagic) || head.StartsWith(FlattenedMagic))
            return DumpFormat.Kdump;
        return DumpFormat.Raw;
    }

    public static string Name(DumpFormat format) => format switch
    {
        DumpFormat.Auto => "auto",
        DumpFormat.Raw => "raw",
        DumpFormat.Elf => "elf",
        DumpFormat.Lime => "lime",
        DumpFormat.CrashDump => "crashdump",
        DumpFormat.Kdump => "kdump",
        _ => format.ToString(),
    };

    public static bool TryParse(string text, out DumpFormat format)
    {
        foreach (var candidate in Enum.GetValues<DumpFormat>())
        {
            if (string.Equals(Name(candidate), text.Trim(), StringComparison.OrdinalIgnoreCase))
            {
                format = candidate;
                return true;
            }
        }
        format = DumpFormat.Auto;
        return false;
    }
}
