using System.IO.Compression;

namespace Introspect.Remote.Protocol;

/// <summary>Compresses the data of read replies, and decompresses it into a buffer of the size the reply announced.</summary>
/// <remarks>
/// Decompression never produces more than the announced size: the bytes of the entries the reply marks as read,
/// which the client computed from its own request. A stream that would produce more or less is malformed, so a
/// hostile server cannot make the client allocate or write past what it asked for.
/// </remarks>
internal static class PageCodec
{
    /// <summary>Below this, compressing costs more than it could save.</summary>
    public const int MinimumSize = 1024;

    private const int BrotliQuality = 1;
    private const int BrotliWindow = 22;

    /// <summary>Compresses <paramref name="source"/> into <paramref name="destination"/> from <paramref name="offset"/> on; false when the result would not be smaller.</summary>
    public static bool TryCompress(PageCompression codec, ReadOnlySpan<byte> source, byte[] destination, int offset, out int written)
    {
        written = 0;
        if (source.Length < MinimumSize || codec == PageCompression.None)
            return false;
        int limit = Math.Min(destination.Length - offset, source.Length - 1);
        switch (codec)
        {
            case PageCompression.Brotli:
                return BrotliEncoder.TryCompress(source, destination.AsSpan(offset, limit), out written, BrotliQuality, BrotliWindow);
            case PageCompression.Deflate:
            {
                var output = new BoundedOutputStream(destination, offset, limit);
                using (var deflate = new DeflateStream(output, CompressionLevel.Fastest, leaveOpen: true))
                    deflate.Write(source);
                written = output.WrittenLength;
                return !output.Overflowed;
            }
            default:
                return false;
        }
    }

    /// <summary>Decompresses exactly <paramref name="destination"/>'s length of bytes.</summary>
    /// <exception cref="InvalidDataException">The data is not valid for the codec, or decompresses to another size.</exception>
    public static void Decompress(PageCompression codec, ReadOnlySpan<byte> source, Span<byte> destination, string peer)
    {
        switch (codec)
        {
            case PageCompression.Brotli:
                if (!BrotliDecoder.TryDecompress(source, destination, out int written) || written != destination.Length)
                    throw new InvalidDataException($"{peer}: a read reply's Brotli data does not decompress to the {destination.Length} bytes it announced.");
                return;
            case PageCompression.Deflate:
            {
                using var input = new MemoryStream(source.ToArray(), writable: false);
                using var deflate = new DeflateStream(input, CompressionMode.Decompress);
                int read = deflate.ReadAtLeast(destination, destination.Length, throwOnEndOfStream: false);
                Span<byte> extra = stackalloc byte[1];
                if (read != destination.Length || deflate.Read(extra) != 0)
                    throw new InvalidDataException($"{peer}: a read reply's Deflate data does not decompress to the {destination.Length} bytes it announced.");
                return;
            }
            default:
                throw new InvalidDataException($"{peer}: a read reply names compression {(byte)codec}; expected 0 (none), 1 (deflate) or 2 (brotli).");
        }
    }

    /// <summary>A write-only stream into a buffer of fixed size that notes, rather than throws, when it would overflow.</summary>
    private sealed class BoundedOutputStream(byte[] buffer, int offset, int capacity) : Stream
    {
        private int _length;

        public bool Overflowed { get; private set; }

        public int WrittenLength => _length;

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _length;
        public override long Position { get => _length; set => throw new NotSupportedException(); }

        public override void Write(ReadOnlySpan<byte> data)
        {
            if (Overflowed || data.Length > capacity - _length)
            {
                Overflowed = true;
                return;
            }
            data.CopyTo(buffer.AsSpan(offset + _length));
            _length += data.Length;
        }

        public override void Write(byte[] data, int offset, int count) => Write(data.AsSpan(offset, count));

        public override void Flush() { }
        public override int Read(byte[] data, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
