using System.Text;

namespace Introspect.Core.Memory;

/// <summary>Formats bytes as a hex dump in the layout of MemProcFS's <c>.hex</c> files.</summary>
/// <remarks>
/// <para>
/// Each line: the address in lower-case hex, four spaces, 16 bytes as two lower-case hex digits and a space each
/// with one more space after the eighth, one more space, then the 16 bytes as ASCII (0x20..0x7e as themselves,
/// 0x7f as a space, anything else as '.'), and '\n'. A last short line pads the missing bytes with spaces in both
/// columns.
/// </para>
/// <para>
/// The address column is 4 digits wide while every address fits (MemProcFS's own case: its offsets run to 64 KiB,
/// so a dump from address 0 of up to 64 KiB is byte for byte what MemProcFS writes, 76 characters a line), else 8
/// or 16 digits as the highest address needs.
/// </para>
/// </remarks>
public static class HexDump
{
    private const int BytesPerLine = 16;
    private const string Digits = "0123456789abcdef";

    /// <summary>Formats <paramref name="data"/>, the first byte at <paramref name="address"/>.</summary>
    public static string Format(ReadOnlySpan<byte> data, ulong address = 0)
    {
        if (data.IsEmpty)
            return "";
        int width = AddressWidth(data.Length, address);
        long lines = (data.Length + BytesPerLine - 1L) / BytesPerLine;
        var text = new StringBuilder((int)Math.Min(1 << 24, lines * LineLength(width)));
        Span<char> line = stackalloc char[LineLength(16)];
        for (int offset = 0; offset < data.Length; offset += BytesPerLine)
        {
            int length = FormatLine(data.Slice(offset, Math.Min(BytesPerLine, data.Length - offset)), unchecked(address + (ulong)offset), width, line);
            text.Append(line[..length]);
        }
        return text.ToString();
    }

    /// <summary>Writes the dump of <paramref name="data"/> to <paramref name="writer"/>, line by line, for dumps too large for one string.</summary>
    public static void Write(TextWriter writer, ReadOnlySpan<byte> data, ulong address = 0)
    {
        ArgumentNullException.ThrowIfNull(writer);
        if (data.IsEmpty)
            return;
        int width = AddressWidth(data.Length, address);
        Span<char> line = stackalloc char[LineLength(16)];
        for (int offset = 0; offset < data.Length; offset += BytesPerLine)
        {
            int length = FormatLine(data.Slice(offset, Math.Min(BytesPerLine, data.Length - offset)), unchecked(address + (ulong)offset), width, line);
            writer.Write(line[..length]);
        }
    }

    private static int LineLength(int addressWidth) => addressWidth + 4 + BytesPerLine * 3 + 1 + 2 + BytesPerLine + 1;

    private static int AddressWidth(int length, ulong address)
    {
        // The address of the last line decides; it wraps past 2^64 only for absurd input, which then gets 16 digits.
        ulong lastLine = unchecked(address + (ulong)((length - 1) / BytesPerLine * BytesPerLine));
        if (lastLine < address || lastLine > uint.MaxValue)
            return 16;
        return lastLine > ushort.MaxValue ? 8 : 4;
    }

    private static int FormatLine(ReadOnlySpan<byte> bytes, ulong address, int width, Span<char> line)
    {
        int o = 0;
        for (int shift = (width - 1) * 4; shift >= 0; shift -= 4)
            line[o++] = Digits[(int)((address >> shift) & 0xf)];
        line[o++] = ' ';
        line[o++] = ' ';
        line[o++] = ' ';
        line[o++] = ' ';
        for (int i = 0; i < BytesPerLine; i++)
        {
            if (i == 8)
                line[o++] = ' ';
            if (i < bytes.Length)
            {
                line[o++] = Digits[bytes[i] >> 4];
                line[o++] = Digits[bytes[i] & 0xf];
            }
            else
            {
                line[o++] = ' ';
                line[o++] = ' ';
            }
            line[o++] = ' ';
        }
        line[o++] = ' ';
        line[o++] = ' ';
        for (int i = 0; i < BytesPerLine; i++)
            line[o++] = i < bytes.Length ? Printable(bytes[i]) : ' ';
        line[o++] = '\n';
        return o;
    }

    private static char Printable(byte value) => value switch
    {
        >= 0x20 and < 0x7f => (char)value,
        0x7f => ' ',
        _ => '.',
    };
}
