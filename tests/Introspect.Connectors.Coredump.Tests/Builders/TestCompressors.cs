using System.IO.Compression;
using System.Runtime.InteropServices;
using Introspect.Connectors.Coredump.Kdump;

namespace Introspect.Connectors.Coredump.Tests.Builders;

/// <summary>The compressors makedumpfile uses, from the same system libraries the connector decompresses with.</summary>
internal static partial class TestCompressors
{
    /// <summary>Compresses a page with <paramref name="codec"/>; fails the test with what to install when the library is missing.</summary>
    public static byte[] Compress(PageCodec codec, byte[] page)
    {
        if (codec != PageCodec.Zlib && !NativeLibrary.TryLoad(Codecs.LibraryName(codec), out _))
            Assert.Fail($"{Codecs.LibraryName(codec)} is missing: install the Debian package {Codecs.PackageName(codec)}.");
        switch (codec)
        {
            case PageCodec.Zlib:
            {
                using var output = new MemoryStream();
                using (var zlib = new ZLibStream(output, CompressionLevel.Optimal, leaveOpen: true))
                    zlib.Write(page);
                return output.ToArray();
            }
            case PageCodec.Lzo:
            {
                var output = new byte[page.Length + page.Length / 16 + 64 + 3];
                var work = new byte[1 << 19];
                nuint length = (nuint)output.Length;
                int status = Lzo1x1Compress(ref page[0], (nuint)page.Length, ref output[0], ref length, ref work[0]);
                Assert.That(status, Is.Zero, "lzo1x_1_compress");
                return output.AsSpan(0, (int)length).ToArray();
            }
            case PageCodec.Snappy:
            {
                var output = new byte[(int)SnappyMaxCompressedLength((nuint)page.Length)];
                nuint length = (nuint)output.Length;
                int status = SnappyCompress(ref page[0], (nuint)page.Length, ref output[0], ref length);
                Assert.That(status, Is.Zero, "snappy_compress");
                return output.AsSpan(0, (int)length).ToArray();
            }
            case PageCodec.Zstd:
            {
                var output = new byte[(int)ZstdCompressBound((nuint)page.Length)];
                nuint length = ZstdCompress(ref output[0], (nuint)output.Length, ref page[0], (nuint)page.Length, 3);
                Assert.That(length, Is.LessThanOrEqualTo((nuint)output.Length), "ZSTD_compress");
                return output.AsSpan(0, (int)length).ToArray();
            }
            default:
                return page;
        }
    }

    [LibraryImport("liblzo2.so.2", EntryPoint = "lzo1x_1_compress")]
    private static partial int Lzo1x1Compress(ref byte source, nuint sourceLength, ref byte destination, ref nuint destinationLength, ref byte work);

    [LibraryImport("libsnappy.so.1", EntryPoint = "snappy_compress")]
    private static partial int SnappyCompress(ref byte input, nuint inputLength, ref byte compressed, ref nuint compressedLength);

    [LibraryImport("libsnappy.so.1", EntryPoint = "snappy_max_compressed_length")]
    private static partial nuint SnappyMaxCompressedLength(nuint sourceLength);

    [LibraryImport("libzstd.so.1", EntryPoint = "ZSTD_compress")]
    private static partial nuint ZstdCompress(ref byte destination, nuint capacity, ref byte source, nuint sourceLength, int level);

    [LibraryImport("libzstd.so.1", EntryPoint = "ZSTD_compressBound")]
    private static partial nuint ZstdCompressBound(nuint sourceLength);
}
