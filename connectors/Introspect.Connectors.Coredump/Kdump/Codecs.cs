using System.Runtime.InteropServices;

namespace Introspect.Connectors.Coredump.Kdump;

/// <summary>The per-page compression flags of makedumpfile's page descriptors (<c>DUMP_DH_COMPRESSED_*</c>).</summary>
internal enum PageCodec : uint
{
    None = 0,
    Zlib = 0x1,
    Lzo = 0x2,
    Snappy = 0x4,
    Zstd = 0x20,
}

/// <summary>The system's decompression libraries, each loaded the first time a page needs it.</summary>
/// <remarks>
/// Pages are decompressed straight from the mapped file into their destination, so a read
/// allocates nothing. Every decoder used here checks its input and output bounds (zlib's
/// <c>uncompress</c>, <c>lzo1x_decompress_safe</c>, snappy, zstd), so corrupt data fails the
/// page rather than the process.
/// </remarks>
internal static partial class Codecs
{
    public const uint CompressionMask = (uint)(PageCodec.Zlib | PageCodec.Lzo | PageCodec.Snappy | PageCodec.Zstd);

    private const string ZlibLibrary = "libz.so.1";
    private const string LzoLibrary = "liblzo2.so.2";
    private const string SnappyLibrary = "libsnappy.so.1";
    private const string ZstdLibrary = "libzstd.so.1";

    // Per codec: 0 not tried yet, 1 loaded, -1 missing.
    private static readonly int[] States = new int[4];

    public static string Name(PageCodec codec) => codec switch
    {
        PageCodec.Zlib => "zlib",
        PageCodec.Lzo => "lzo",
        PageCodec.Snappy => "snappy",
        PageCodec.Zstd => "zstd",
        _ => "uncompressed",
    };

    public static string LibraryName(PageCodec codec) => codec switch
    {
        PageCodec.Zlib => ZlibLibrary,
        PageCodec.Lzo => LzoLibrary,
        PageCodec.Snappy => SnappyLibrary,
        PageCodec.Zstd => ZstdLibrary,
        _ => "",
    };

    /// <summary>The Debian package that ships the library, for error messages.</summary>
    public static string PackageName(PageCodec codec) => codec switch
    {
        PageCodec.Zlib => "zlib1g",
        PageCodec.Lzo => "liblzo2-2",
        PageCodec.Snappy => "libsnappy1v5",
        PageCodec.Zstd => "libzstd1",
        _ => "",
    };

    /// <summary>Whether <paramref name="codec"/>'s library can be loaded; tried once per process.</summary>
    public static bool IsAvailable(PageCodec codec)
    {
        int slot = Slot(codec);
        if (slot < 0)
            return false;
        int state = Volatile.Read(ref States[slot]);
        if (state == 0)
        {
            state = NativeLibrary.TryLoad(LibraryName(codec), out _) ? 1 : -1;
            Volatile.Write(ref States[slot], state);
        }
        return state > 0;
    }

    /// <summary>Decompresses <paramref name="source"/> into exactly <paramref name="destination"/>.Length bytes.</summary>
    /// <returns>False when the library is missing, the data is corrupt, or it does not decompress to exactly that length.</returns>
    public static bool TryDecompress(PageCodec codec, ReadOnlySpan<byte> source, Span<byte> destination)
    {
        if (source.IsEmpty || destination.IsEmpty || !IsAvailable(codec))
            return false;
        ref byte input = ref MemoryMarshal.GetReference(source);
        ref byte output = ref MemoryMarshal.GetReference(destination);
        nuint length = (nuint)destination.Length;
        switch (codec)
        {
            case PageCodec.Zlib:
                return ZlibUncompress(ref output, ref length, ref input, (nuint)source.Length) == 0 && length == (nuint)destination.Length;
            case PageCodec.Lzo:
                // lzo_init only checks the caller's type sizes; the safe decoder needs no state or work memory.
                return LzoDecompressSafe(ref input, (nuint)source.Length, ref output, ref length, 0) == 0 && length == (nuint)destination.Length;
            case PageCodec.Snappy:
                return SnappyUncompress(ref input, (nuint)source.Length, ref output, ref length) == 0 && length == (nuint)destination.Length;
            case PageCodec.Zstd:
                // Errors come back as sizes near 2^64, never equal to a page's length.
                return ZstdDecompress(ref output, length, ref input, (nuint)source.Length) == (nuint)destination.Length;
            default:
                return false;
        }
    }

    private static int Slot(PageCodec codec) => codec switch
    {
        PageCodec.Zlib => 0,
        PageCodec.Lzo => 1,
        PageCodec.Snappy => 2,
        PageCodec.Zstd => 3,
        _ => -1,
    };

    [LibraryImport(ZlibLibrary, EntryPoint = "uncompress")]
    private static partial int ZlibUncompress(ref byte destination, ref nuint destinationLength, ref byte source, nuint sourceLength);

    [LibraryImport(LzoLibrary, EntryPoint = "lzo1x_decompress_safe")]
    private static partial int LzoDecompressSafe(ref byte source, nuint sourceLength, ref byte destination, ref nuint destinationLength, nint workMemory);

    [LibraryImport(SnappyLibrary, EntryPoint = "snappy_uncompress")]
    private static partial int SnappyUncompress(ref byte compressed, nuint compressedLength, ref byte uncompressed, ref nuint uncompressedLength);

    [LibraryImport(ZstdLibrary, EntryPoint = "ZSTD_decompress")]
    private static partial nuint ZstdDecompress(ref byte destination, nuint destinationCapacity, ref byte source, nuint sourceLength);
}
