namespace Introspect.Connectors.Coredump.IO;

/// <summary>Bytes at offsets: a dump file, or the file a flattened dump describes.</summary>
/// <remarks>Reads never throw for offsets out of range; they return false.</remarks>
internal abstract class DataSource
{
    /// <summary>The file's path, for messages.</summary>
    public abstract string Name { get; }

    public abstract ulong Length { get; }

    /// <summary>Copies <paramref name="destination"/>.Length bytes from <paramref name="offset"/>.</summary>
    /// <returns>False when part of the range lies past <see cref="Length"/>; the destination is then unspecified.</returns>
    public abstract bool TryRead(ulong offset, Span<byte> destination);

    /// <summary>Gives the bytes in place when the source holds them contiguously (a mapped file does).</summary>
    public virtual bool TryGetSpan(ulong offset, int length, out ReadOnlySpan<byte> span)
    {
        span = default;
        return false;
    }

    /// <summary>Whether <paramref name="length"/> bytes from <paramref name="offset"/> lie inside the source; written so it cannot overflow.</summary>
    public bool Contains(ulong offset, ulong length) => offset <= Length && length <= Length - offset;

    /// <summary>Reads a header structure that must be there, or throws naming the file and the structure.</summary>
    public void ReadExact(ulong offset, Span<byte> destination, string what)
    {
        if (!TryRead(offset, destination))
            ThrowHelper.ThrowTruncated(Name, what, offset, (ulong)destination.Length, Length);
    }

    /// <summary>Reads a header structure into a new array (callers cap <paramref name="length"/> first).</summary>
    public byte[] ReadExact(ulong offset, int length, string what)
    {
        if (!Contains(offset, (ulong)length))
            ThrowHelper.ThrowTruncated(Name, what, offset, (ulong)length, Length);
        var buffer = new byte[length];
        ReadExact(offset, buffer, what);
        return buffer;
    }
}
