using System.Buffers.Binary;
using System.Text;
using Introspect.Abi;
using Introspect.Core.Memory;
using Introspect.Os.Linux.Kernel;

namespace Introspect.Os.Linux.Processes;

/// <summary>Typed reads of kernel memory for the walks: pointers, counters, names, whole structures.</summary>
/// <remarks>Every read reports failure instead of throwing; the walks end where memory cannot be read.</remarks>
internal sealed class KernelReader(KernelMemory memory)
{
    public KernelMemory Memory { get; } = memory;

    public bool TryReadPointer(ulong address, out ulong value) => Memory.TryRead(address, out value);

    public ulong ReadPointerOrZero(ulong address) => Memory.TryRead(address, out ulong value) ? value : 0;

    /// <summary>Reads <paramref name="buffer"/>'s length from <paramref name="address"/>; false unless all of it could be read.</summary>
    public bool TryReadAll(ulong address, Span<byte> buffer) => Memory.Read(address, buffer) == buffer.Length;

    /// <summary>A NUL-terminated string of at most <paramref name="maxBytes"/> bytes, or null when unreadable.</summary>
    public string? ReadString(ulong address, int maxBytes) => address == 0 ? null : Memory.ReadUtf8String(address, maxBytes);

    /// <summary>A fixed-size character array (such as <c>comm</c>) from a buffer, up to its first NUL.</summary>
    public static string FixedString(ReadOnlySpan<byte> bytes)
    {
        int end = bytes.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? bytes : bytes[..end]);
    }

    public static ulong U64(ReadOnlySpan<byte> buffer, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(buffer[offset..]);

    public static uint U32(ReadOnlySpan<byte> buffer, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(buffer[offset..]);

    public static int I32(ReadOnlySpan<byte> buffer, int offset) => BinaryPrimitives.ReadInt32LittleEndian(buffer[offset..]);

    /// <summary>The address of a field: a structure's address from guest memory plus the field's offset. Wraps rather
    /// than throws, as damaged memory may hold any value; the read at a wrapped address then fails.</summary>
    public static ulong Field(ulong structure, int offset) => unchecked(structure + (ulong)offset);

    /// <summary>The structure that embeds a member (the kernel's <c>container_of</c>); wraps rather than throws, like <see cref="Field"/>.</summary>
    public static ulong Container(ulong member, int offset) => unchecked(member - (ulong)offset);

    public static bool IsKernelPointer(ulong value) => value >= KernelAddresses.KernelHalfStart && value != ulong.MaxValue;
}
