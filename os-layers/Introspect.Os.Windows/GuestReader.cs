using System.Buffers.Binary;
using System.Text;
using Introspect.Abi;
using Introspect.Core.Memory;

namespace Introspect.Os.Windows;

/// <summary>Reads Windows' own shapes (pointers of the guest's width, UNICODE_STRING, LIST_ENTRY) from guest memory.</summary>
/// <remarks>Nothing here throws for memory that cannot be read: a failed read is a false return or a null.</remarks>
internal readonly struct GuestReader(int pointerSize)
{
    public int PointerSize { get; } = pointerSize;

    public bool Is64 => PointerSize == 8;

    public bool TryPointer(IMemory memory, ulong address, out ulong value)
    {
        Span<byte> bytes = stackalloc byte[8];
        if (memory.Read(address, bytes[..PointerSize]) != PointerSize)
        {
            value = 0;
            return false;
        }
        value = PointerSize == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(bytes) : BinaryPrimitives.ReadUInt32LittleEndian(bytes);
        return true;
    }

    public ulong Pointer(IMemory memory, ulong address) => TryPointer(memory, address, out ulong value) ? value : 0;

    public static bool TryU32(IMemory memory, ulong address, out uint value) => memory.TryRead(address, out value);

    public static bool TryU64(IMemory memory, ulong address, out ulong value) => memory.TryRead(address, out value);

    /// <summary>A pointer read from a buffer already fetched.</summary>
    public ulong Pointer(ReadOnlySpan<byte> buffer, int offset) =>
        offset < 0 || offset > buffer.Length - PointerSize ? 0
        : PointerSize == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(buffer[offset..]) : BinaryPrimitives.ReadUInt32LittleEndian(buffer[offset..]);

    public static ulong U64(ReadOnlySpan<byte> buffer, int offset) =>
        offset < 0 || offset > buffer.Length - 8 ? 0 : BinaryPrimitives.ReadUInt64LittleEndian(buffer[offset..]);

    public static uint U32(ReadOnlySpan<byte> buffer, int offset) =>
        offset < 0 || offset > buffer.Length - 4 ? 0 : BinaryPrimitives.ReadUInt32LittleEndian(buffer[offset..]);

    /// <summary>The size of a UNICODE_STRING: two 16-bit lengths, padding to the pointer, the buffer pointer.</summary>
    public int UnicodeStringSize => 2 * PointerSize;

    /// <summary>Reads the UNICODE_STRING at <paramref name="address"/> and its text; null when either cannot be read or the
    /// lengths make no sense.</summary>
    public string? UnicodeString(IMemory memory, ulong address)
    {
        Span<byte> header = stackalloc byte[16];
        var used = header[..UnicodeStringSize];
        if (memory.Read(address, used) != used.Length)
            return null;
        return UnicodeString(memory, used, 0);
    }

    /// <summary>The text of a UNICODE_STRING held at <paramref name="offset"/> of a buffer already fetched.</summary>
    public string? UnicodeString(IMemory memory, ReadOnlySpan<byte> buffer, int offset)
    {
        if (offset < 0 || offset > buffer.Length - UnicodeStringSize)
            return null;
        ushort length = BinaryPrimitives.ReadUInt16LittleEndian(buffer[offset..]);
        ushort maximum = BinaryPrimitives.ReadUInt16LittleEndian(buffer[(offset + 2)..]);
        ulong pointer = Pointer(buffer, offset + PointerSize);
        if (length == 0)
            return pointer == 0 && maximum == 0 ? null : "";
        if ((length & 1) != 0 || pointer == 0 || (maximum != 0 && maximum < length))
            return null;
        var text = new byte[length];
        if (memory.Read(pointer, text) != text.Length)
            return null;
        return Encoding.Unicode.GetString(text);
    }

    /// <summary>A fixed-size ASCII name (EPROCESS.ImageFileName) up to its first NUL.</summary>
    public static string AsciiName(ReadOnlySpan<byte> bytes)
    {
        int end = bytes.IndexOf((byte)0);
        if (end < 0)
            end = bytes.Length;
        return Encoding.Latin1.GetString(bytes[..end]);
    }

    /// <summary>Whether <paramref name="address"/> lies in the kernel's half of the address space.</summary>
    public bool IsKernelAddress(ulong address) => Is64 ? address >= 0xFFFF_8000_0000_0000 : address is >= 0x8000_0000 and <= 0xFFFF_FFFF;

    /// <summary>Whether <paramref name="address"/> lies in user space (and is not null).</summary>
    public bool IsUserAddress(ulong address) => address != 0 && (Is64 ? address < 0x0000_8000_0000_0000 : address < 0x8000_0000);
}
