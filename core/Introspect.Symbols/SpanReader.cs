using System.Buffers.Binary;
using System.Text;

namespace Introspect.Symbols;

/// <summary>Little-endian reads from a span, each bounds-checked; a read past the end is bad input, never an index exception.</summary>
/// <remarks>
/// The check <c>(uint)count &gt; (uint)(Length - Position)</c> cannot overflow: <see cref="Position"/> never exceeds the
/// length, so the difference is non-negative, and a negative count becomes a huge unsigned one that fails.
/// </remarks>
internal ref struct SpanReader
{
    private readonly ReadOnlySpan<byte> _data;
    private readonly string _file;
    private readonly string _what;

    public SpanReader(ReadOnlySpan<byte> data, string file, string what, int position = 0)
    {
        _data = data;
        _file = file;
        _what = what;
        if (unchecked((uint)position) > (uint)data.Length)
            Malformed.Truncated(file, what, position, 0, data.Length);
        Position = position;
    }

    public int Position { readonly get; private set; }

    public readonly int Length => _data.Length;

    public readonly int Remaining => _data.Length - Position;

    public readonly ReadOnlySpan<byte> Data => _data;

    /// <summary>The file the bytes came from, for error messages.</summary>
    public readonly string File => _file;

    /// <summary>What the bytes are, for error messages.</summary>
    public readonly string What => _what;

    public byte U8()
    {
        Need(1);
        return _data[Position++];
    }

    public ushort U16()
    {
        Need(2);
        var value = BinaryPrimitives.ReadUInt16LittleEndian(_data[Position..]);
        Position += 2;
        return value;
    }

    public short I16() => unchecked((short)U16());

    public uint U32()
    {
        Need(4);
        var value = BinaryPrimitives.ReadUInt32LittleEndian(_data[Position..]);
        Position += 4;
        return value;
    }

    public int I32() => unchecked((int)U32());

    public ulong U64()
    {
        Need(8);
        var value = BinaryPrimitives.ReadUInt64LittleEndian(_data[Position..]);
        Position += 8;
        return value;
    }

    public Guid Guid()
    {
        Need(16);
        var value = new Guid(_data.Slice(Position, 16));
        Position += 16;
        return value;
    }

    public ReadOnlySpan<byte> Bytes(int count)
    {
        Need(count);
        var value = _data.Slice(Position, count);
        Position += count;
        return value;
    }

    public void Skip(int count)
    {
        Need(count);
        Position += count;
    }

    public void Seek(int position)
    {
        if (unchecked((uint)position) > (uint)_data.Length)
            Malformed.Truncated(_file, _what, position, 0, _data.Length);
        Position = position;
    }

    /// <summary>Moves to the next multiple of <paramref name="alignment"/>, or to the end if that lies past it.</summary>
    public void Align(int alignment)
    {
        int aligned = (Position + alignment - 1) & ~(alignment - 1);
        Position = Math.Min(aligned, _data.Length);
    }

    /// <summary>A NUL-terminated UTF-8 string; one without its NUL is bad input.</summary>
    public string CString()
    {
        int length = _data[Position..].IndexOf((byte)0);
        if (length < 0)
            Malformed.Throw(_file, _what, $"a string at offset {Malformed.Hex((ulong)Position)} without its terminating NUL", "a NUL-terminated string");
        var text = Encoding.UTF8.GetString(_data.Slice(Position, length));
        Position += length + 1;
        return text;
    }

    /// <summary>A NUL-terminated string, or the rest of the data when the NUL is missing (names at the end of a record).</summary>
    public string CStringOrRest()
    {
        var rest = _data[Position..];
        int length = rest.IndexOf((byte)0);
        if (length < 0)
        {
            Position = _data.Length;
            return Encoding.UTF8.GetString(rest);
        }
        Position += length + 1;
        return Encoding.UTF8.GetString(rest[..length]);
    }

    private readonly void Need(int count)
    {
        if (unchecked((uint)count) > (uint)(_data.Length - Position))
            Malformed.Truncated(_file, _what, Position, count, _data.Length);
    }
}
