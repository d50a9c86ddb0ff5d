using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace Introspect.Remote.Protocol;

/// <summary>Reads a frame's payload field by field; every read is bounds-checked against what the peer sent.</summary>
/// <remarks>A payload comes from the other side of a socket: a short one is an <see cref="InvalidDataException"/> naming the message and the field, never an index error.</remarks>
internal ref struct PayloadReader
{
    private readonly ReadOnlySpan<byte> _payload;
    private readonly string _message;
    private int _position;

    public PayloadReader(ReadOnlySpan<byte> payload, string message)
    {
        _payload = payload;
        _message = message;
        _position = 0;
    }

    public readonly int Remaining => _payload.Length - _position;

    public readonly ReadOnlySpan<byte> Rest => _payload[_position..];

    public byte ReadByte(string field) => Take(1, field)[0];

    public ushort ReadUInt16(string field) => BinaryPrimitives.ReadUInt16LittleEndian(Take(2, field));

    public uint ReadUInt32(string field) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, field));

    public ulong ReadUInt64(string field) => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, field));

    public ReadOnlySpan<byte> ReadBytes(int length, string field) => Take(length, field);

    /// <summary>A u16-length-prefixed UTF-8 string of at most <paramref name="maxBytes"/> bytes.</summary>
    public string ReadString(string field, int maxBytes)
    {
        int length = ReadUInt16(field + " length");
        if (length > maxBytes)
            Throw(field + " length", length.ToString(System.Globalization.CultureInfo.InvariantCulture), $"at most {maxBytes} bytes");
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(Take(length, field));
        }
        catch (DecoderFallbackException)
        {
            Throw(field, "invalid UTF-8", "UTF-8 text");
            return "";
        }
    }

    /// <summary>Requires the payload to be used up: trailing bytes mean the peer and we disagree on the layout.</summary>
    public readonly void ExpectEnd()
    {
        if (_position != _payload.Length)
            Throw("end of payload", $"{_payload.Length - _position} bytes left over", "no bytes after the last field");
    }

    private ReadOnlySpan<byte> Take(int length, string field)
    {
        // Both are non-negative ints, so the difference cannot overflow.
        if (length < 0 || _payload.Length - _position < length)
            Throw(field, $"{_payload.Length - _position} bytes left", $"{length} bytes");
        var span = _payload.Slice(_position, length);
        _position += length;
        return span;
    }

    [DoesNotReturn]
    public readonly void Throw(string field, string found, string expected) =>
        throw new InvalidDataException($"{_message} message: field '{field}' is {found}; expected {expected}.");
}
