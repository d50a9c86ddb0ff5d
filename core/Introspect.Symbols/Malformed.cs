using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Introspect.Symbols;

/// <summary>The one way bad input is reported: an <see cref="InvalidDataException"/> naming the file, the field, the value and what was expected.</summary>
/// <remarks>Kept apart from our own bugs, which stay <see cref="InvalidOperationException"/> and friends.</remarks>
internal static class Malformed
{
    [DoesNotReturn]
    public static void Throw(string file, string field, string value, string expected) =>
        throw new InvalidDataException($"{file}: {field} is {value}; expected {expected}.");

    [DoesNotReturn]
    public static T Throw<T>(string file, string field, string value, string expected) =>
        throw new InvalidDataException($"{file}: {field} is {value}; expected {expected}.");

    /// <summary>A structure runs past the end of what holds it.</summary>
    [DoesNotReturn]
    public static void Truncated(string file, string what, long offset, long needed, long available) =>
        throw new InvalidDataException(
            $"{file}: {what} is truncated: {needed} bytes needed at offset {Hex((ulong)offset)}, but it ends at {Hex((ulong)available)}.");

    public static string Hex(ulong value) => "0x" + value.ToString("x", CultureInfo.InvariantCulture);

    public static string Number(ulong value) => value.ToString(CultureInfo.InvariantCulture) + (value >= 10 ? $" ({Hex(value)})" : "");
}
