using Introspect.TestSupport;

namespace Introspect.Connectors.Coredump.Tests.Builders;

/// <summary>Writes Microsoft crash dumps around the real headers in the shared test data, with page data from the raw Linux image.</summary>
internal static class CrashDumpBuilder
{
    public static byte[] Win10Header => File.ReadAllBytes(TestInputs.TestData("crashdump", "coredump_win10_64bit_stripped.raw"));

    public static byte[] Win7Header => File.ReadAllBytes(TestInputs.TestData("crashdump", "coredump_win7_32bit_stripped.raw"));

    /// <summary>A full dump: the header with its run list replaced, then every run's pages back to back.</summary>
    public static byte[] Full(bool is64, IReadOnlyList<(ulong BasePage, ulong PageCount)> runs)
    {
        var header = is64 ? Win10Header : Win7Header;
        int headerSize = is64 ? 0x2000 : 0x1000;
        Assert.That(header, Has.Length.EqualTo(headerSize));
        ulong pages = 0;
        foreach (var run in runs)
            pages += run.PageCount;
        WriteRuns(header, is64, runs, pages);
        Bytes.U32(header, is64 ? 0xF98 : 0xF88, 1);
        var file = new byte[headerSize + (long)pages * Support.PageSize];
        header.CopyTo(file, 0);
        long at = headerSize;
        foreach (var (basePage, count) in runs)
        {
            for (ulong i = 0; i < count; i++, at += Support.PageSize)
                Support.RawPage(basePage + i).CopyTo(file.AsSpan((int)at));
        }
        return file;
    }

    public static void WriteRuns(byte[] header, bool is64, IReadOnlyList<(ulong BasePage, ulong PageCount)> runs, ulong numberOfPages)
    {
        if (is64)
        {
            Bytes.U32(header, 0x88, (uint)runs.Count);
            Bytes.U64(header, 0x90, numberOfPages);
            for (int i = 0; i < runs.Count; i++)
            {
                Bytes.U64(header, 0x98 + i * 16, runs[i].BasePage);
                Bytes.U64(header, 0xA0 + i * 16, runs[i].PageCount);
            }
        }
        else
        {
            Bytes.U32(header, 0x64, (uint)runs.Count);
            Bytes.U32(header, 0x68, (uint)numberOfPages);
            for (int i = 0; i < runs.Count; i++)
            {
                Bytes.U32(header, 0x6C + i * 8, (uint)runs[i].BasePage);
                Bytes.U32(header, 0x70 + i * 8, (uint)runs[i].PageCount);
            }
        }
    }

    /// <summary>A bitmap dump of <paramref name="pfns"/> (sorted), with a bitmap of <paramref name="bitCount"/> bits.</summary>
    public static byte[] Bitmap(bool is64, IReadOnlyList<ulong> pfns, ulong bitCount, uint dumpType = 5, string signature = "FDMP")
    {
        var header = is64 ? Win10Header : Win7Header;
        int headerSize = is64 ? 0x2000 : 0x1000;
        Bytes.U32(header, is64 ? 0xF98 : 0xF88, dumpType);
        long bitmapBytes = (long)((bitCount + 7) / 8);
        long firstPage = Bytes.AlignUp(headerSize + 0x38 + bitmapBytes, Support.PageSize);
        var file = new byte[firstPage + (long)pfns.Count * Support.PageSize];
        header.CopyTo(file, 0);
        Bytes.Ascii(file, headerSize, signature + "DUMP");
        Bytes.U64(file, headerSize + 0x20, (ulong)firstPage);
        Bytes.U64(file, headerSize + 0x28, (ulong)pfns.Count);
        Bytes.U64(file, headerSize + 0x30, bitCount);
        long at = firstPage;
        foreach (var pfn in pfns)
        {
            file[headerSize + 0x38 + (long)(pfn / 8)] |= (byte)(1 << (int)(pfn % 8));
            Support.RawPage(pfn).CopyTo(file.AsSpan((int)at));
            at += Support.PageSize;
        }
        return file;
    }
}
