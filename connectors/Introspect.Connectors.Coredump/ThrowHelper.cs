using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Introspect.Connectors.Coredump;

/// <summary>The exceptions for malformed dumps, kept out of the methods that find them.</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    public static void ThrowInvalid(string file, string message) =>
        throw new InvalidDataException($"{file}: {message}");

    [DoesNotReturn]
    public static T ThrowInvalid<T>(string file, string message) =>
        throw new InvalidDataException($"{file}: {message}");

    [DoesNotReturn]
    public static void ThrowTruncated(string file, string what, ulong offset, ulong length, ulong fileLength) =>
        throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
            $"{file}: the file is truncated: {what} needs 0x{length:x} bytes at offset 0x{offset:x}, but the file is 0x{fileLength:x} bytes long."));
}
