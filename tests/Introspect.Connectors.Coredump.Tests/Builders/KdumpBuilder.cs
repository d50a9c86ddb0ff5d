using Introspect.Connectors.Coredump.Kdump;

namespace Introspect.Connectors.Coredump.Tests.Builders;

/// <summary>Writes makedumpfile's kdump-compressed format (header version 6, 64-bit layout), plain or flattened, from given pages.</summary>
internal sealed class KdumpBuilder
{
    public const int DescriptorSize = 24;

    public int BlockSize { get; init; } = 4096;

    public ulong MaxMapNr { get; init; }

    /// <summary>The dumped pages by page frame number.</summary>
    public SortedDictionary<ulong, byte[]> Pages { get; } = [];

    public PageCodec Codec { get; init; } = PageCodec.Zlib;

    public uint ExtraStatus { get; init; }

    public string Machine { get; init; } = "x86_64";

    public byte[]? Notes { get; init; }

    public string? VmcoreInfo { get; init; }

    /// <summary>Lets a test replace a page's stored bytes and descriptor flags.</summary>
    public Func<ulong, byte[], uint, (byte[] Data, uint Flags)>? Tamper { get; init; }

    /// <summary>Where the page descriptors start in the plain file.</summary>
    public long DescriptorOffset => (2 + BitmapBlocks) * (long)BlockSize;

    public long BitmapOffset => 2L * BlockSize;

    public uint BitmapBlocks => (uint)(2 * Bytes.AlignUp((long)((MaxMapNr + 7) / 8), BlockSize) / BlockSize);

    public byte[] BuildPlain()
    {
        int bs = BlockSize;
        long bitmapEach = (long)BitmapBlocks * bs / 2;
        var stored = new List<(byte[] Data, uint Flags)>();
        foreach (var (pfn, page) in Pages)
        {
            byte[] data = page;
            uint flags = 0;
            if (Codec != PageCodec.None)
            {
                var compressed = TestCompressors.Compress(Codec, page);
                if (compressed.Length < bs)
                {
                    data = compressed;
                    flags = (uint)Codec;
                }
            }
            stored.Add(Tamper is null ? (data, flags) : Tamper(pfn, data, flags));
        }
        long dataOffset = DescriptorOffset + (long)stored.Count * DescriptorSize;
        long end = dataOffset + stored.Sum(s => (long)s.Data.Length);
        long noteOffset = end;
        long vmcoreOffset = noteOffset + (Notes?.Length ?? 0);
        var vmcore = VmcoreInfo is null ? null : System.Text.Encoding.ASCII.GetBytes(VmcoreInfo);
        long total = vmcoreOffset + (vmcore?.Length ?? 0);

        var file = new byte[total];
        Bytes.Ascii(file, 0, "KDUMP   ");
        Bytes.U32(file, 8, 6);
        Bytes.Ascii(file, 12 + 4 * 65, Machine);
        Bytes.U32(file, 424, (uint)Codec | ExtraStatus);
        Bytes.U32(file, 428, (uint)bs);
        Bytes.U32(file, 432, 1);
        Bytes.U32(file, 436, BitmapBlocks);
        Bytes.U32(file, 440, (uint)Math.Min(MaxMapNr, uint.MaxValue));
        Bytes.U32(file, 460, 1);
        long sub = bs;
        if (vmcore is not null)
        {
            Bytes.U64(file, sub + 32, (ulong)vmcoreOffset);
            Bytes.U64(file, sub + 40, (ulong)vmcore.Length);
            vmcore.CopyTo(file, vmcoreOffset);
        }
        if (Notes is not null)
        {
            Bytes.U64(file, sub + 48, (ulong)noteOffset);
            Bytes.U64(file, sub + 56, (ulong)Notes.Length);
            Notes.CopyTo(file, noteOffset);
        }
        Bytes.U64(file, sub + 96, MaxMapNr);

        int index = 0;
        long at = dataOffset;
        foreach (var pfn in Pages.Keys)
        {
            // Both bitmaps: the pages that exist and the pages that were dumped.
            file[BitmapOffset + (long)(pfn / 8)] |= (byte)(1 << (int)(pfn % 8));
            file[BitmapOffset + bitmapEach + (long)(pfn / 8)] |= (byte)(1 << (int)(pfn % 8));
            var (data, flags) = stored[index];
            long descriptor = DescriptorOffset + (long)index * DescriptorSize;
            Bytes.U64(file, descriptor, (ulong)at);
            Bytes.U32(file, descriptor + 8, (uint)data.Length);
            Bytes.U32(file, descriptor + 12, flags);
            data.CopyTo(file, at);
            at += data.Length;
            index++;
        }
        return file;
    }

    /// <summary>The flattened form of <paramref name="plain"/>: its bytes cut into records of random sizes, in shuffled order.</summary>
    /// <param name="plain">The plain file.</param>
    /// <param name="seed">Seeds the cuts and the order.</param>
    /// <param name="overwritten">Adds records of garbage that later records overwrite.</param>
    public static byte[] Flatten(byte[] plain, int seed, bool overwritten = false)
    {
        var random = new Random(seed);
        var records = new List<(long Offset, int Length)>();
        for (long offset = 0; offset < plain.Length;)
        {
            int length = (int)Math.Min(random.Next(1, 20000), plain.Length - offset);
            records.Add((offset, length));
            offset += length;
        }
        random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(records));
        using var output = new MemoryStream();
        var header = new byte[4096];
        Bytes.Ascii(header, 0, "makedumpfile");
        output.Write(header);
        output.Position = 16;
        Bytes.I64BigEndian(output, 1);
        Bytes.I64BigEndian(output, 1);
        output.Position = 4096;
        if (overwritten)
        {
            for (int i = 0; i < 50; i++)
            {
                long offset = random.NextInt64(0, plain.Length - 1);
                int length = (int)Math.Min(random.Next(1, 30000), plain.Length - offset);
                var garbage = new byte[length];
                random.NextBytes(garbage);
                WriteRecord(output, offset, garbage);
            }
        }
        foreach (var (offset, length) in records)
            WriteRecord(output, offset, plain.AsSpan((int)offset, length));
        Bytes.I64BigEndian(output, -1);
        Bytes.I64BigEndian(output, 0);
        return output.ToArray();
    }

    public static void WriteRecord(Stream output, long offset, ReadOnlySpan<byte> data)
    {
        Bytes.I64BigEndian(output, offset);
        Bytes.I64BigEndian(output, data.Length);
        output.Write(data);
    }
}
