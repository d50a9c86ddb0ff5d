using Introspect.Abi;
using Introspect.Connectors.Coredump.Formats;
using Introspect.Connectors.Coredump.IO;
using Introspect.Connectors.Coredump.Tests.Builders;
using Introspect.TestSupport;
using Moq;

namespace Introspect.Connectors.Coredump.Tests;

/// <summary>Microsoft crash dumps: the real stripped headers, and full and bitmap dumps built around them from the raw image's pages.</summary>
public class CrashDumpTests
{
    private TempFolder _folder = null!;

    [OneTimeSetUp]
    public void MakeFolder() => _folder = new TempFolder();

    [OneTimeTearDown]
    public void RemoveFolder() => _folder.Dispose();

    private static string Win10 => TestInputs.TestData("crashdump", "coredump_win10_64bit_stripped.raw");

    private static string Win7 => TestInputs.TestData("crashdump", "coredump_win7_32bit_stripped.raw");

    [Test]
    public void The_windows_10_header_gives_its_kernel_pointers()
    {
        using var file = MappedFile.Open(Win10);
        var header = CrashDumpHeader.Parse(file);
        Assert.Multiple(() =>
        {
            Assert.That(header.Is64, Is.True);
            Assert.That(header.DirectoryTableBase, Is.EqualTo(0x3e6b1a000UL));
            Assert.That(header.MachineType, Is.EqualTo(0x8664u));
            Assert.That(header.Architecture, Is.EqualTo(MachineArchitecture.X64));
            Assert.That(header.NumberOfProcessors, Is.EqualTo(8u));
            Assert.That(header.MajorVersion, Is.EqualTo(0xFu));
            Assert.That(header.PfnDatabase, Is.EqualTo(0xffffdf8000000000UL));
            Assert.That(header.PsLoadedModuleList, Is.EqualTo(0xfffff80510a2a2b0UL));
            Assert.That(header.PsActiveProcessHead, Is.EqualTo(0xfffff80510a1e060UL));
            Assert.That(header.KdDebuggerDataBlock, Is.EqualTo(0xfffff80510a00b20UL));
            Assert.That(header.DumpType, Is.EqualTo(1u));
            Assert.That(header.NumberOfPages, Is.EqualTo(0x3ffc6fUL));
            Assert.That(header.Runs, Is.EqualTo(new[] { (1UL, 0x9fUL), (0x100UL, 0x7f7efUL), (0x7fbffUL, 0x3e1UL), (0x100000UL, 0x380000UL) }));
            Assert.That(header.PaeEnabled, Is.Null);
        });
    }

    [Test]
    public void The_windows_7_header_is_32_bit_with_pae()
    {
        using var file = MappedFile.Open(Win7);
        var header = CrashDumpHeader.Parse(file);
        Assert.Multiple(() =>
        {
            Assert.That(header.Is64, Is.False);
            Assert.That(header.MachineType, Is.EqualTo(0x14Cu));
            Assert.That(header.PaeEnabled, Is.True);
            Assert.That(header.Architecture, Is.EqualTo(MachineArchitecture.X86Pae));
            Assert.That(header.DirectoryTableBase, Is.EqualTo(0xbf62f2e0UL));
            Assert.That(header.PsActiveProcessHead, Is.EqualTo(0x82991f18UL));
            Assert.That(header.PsLoadedModuleList, Is.EqualTo(0x82999850UL));
            Assert.That(header.KdDebuggerDataBlock, Is.Null, "the field still holds the 'PAGE' fill");
            Assert.That(header.DumpType, Is.EqualTo(1u));
            Assert.That(header.Runs, Is.EqualTo(new[] { (1UL, 0x9eUL), (0x100UL, 0xbfedfUL) }));
            Assert.That(header.NumberOfPages, Is.EqualTo(0xbff7dUL));
        });
    }

    [Test]
    public void A_stripped_header_without_page_data_is_refused_naming_what_is_missing()
    {
        foreach (var (path, pages) in new[] { (Win10, "0x3ffc6f pages"), (Win7, "0xbff7d pages") })
        {
            Assert.That(() => Support.Open(path), Throws.TypeOf<InvalidDataException>()
                .With.Message.Contains(path).And.Message.Contains("page data is missing").And.Message.Contains(pages));
            Assert.That(() => Support.Open(path, allowTruncated: true), Throws.TypeOf<InvalidDataException>()
                .With.Message.Contains("page data is missing"), "nothing to serve even when truncation is allowed");
        }
    }

    [Test]
    public void The_real_header_with_part_of_its_pages_serves_them_when_truncation_is_allowed()
    {
        // The Windows 10 header as it is (16 GiB of runs), followed by the first 0x200 pages of its first run.
        var header = CrashDumpBuilder.Win10Header;
        var file = new byte[0x2000 + 0x200 * Support.PageSize];
        header.CopyTo(file, 0);
        for (ulong i = 0; i < 0x200; i++)
            Support.RawPage(i).CopyTo(file.AsSpan(0x2000 + (int)i * Support.PageSize));
        string path = _folder.Write("win10-partial.dmp", file);
        Assert.That(() => Support.Open(path), Throws.TypeOf<InvalidDataException>().With.Message.Contains("truncated").And.Message.Contains("0x3ffc6f pages"));
        var context = new Mock<IPluginContext>();
        using var memory = Support.Open(path, allowTruncated: true, context: context.Object);
        var hints = Support.HintsOf(memory);
        Assert.Multiple(() =>
        {
            Assert.That(hints.Format, Is.EqualTo("crashdump-full"));
            Assert.That(hints.DirectoryTableBase, Is.EqualTo(0x3e6b1a000UL));
            Assert.That(hints.Architecture, Is.EqualTo(MachineArchitecture.X64));
            Assert.That(hints.PsActiveProcessHead, Is.EqualTo(0xfffff80510a1e060UL));
            Assert.That(hints.KdDebuggerDataBlock, Is.EqualTo(0xfffff80510a00b20UL));
            Assert.That(hints.PfnDatabase, Is.EqualTo(0xffffdf8000000000UL));
            Assert.That(hints.PsLoadedModuleList, Is.EqualTo(0xfffff80510a2a2b0UL));
        });
        // Run 0 (base page 1, 0x9f pages) then run 1 from page 0x100 take the file's 0x200 pages.
        Assert.That(memory.MemoryMap.ToString(), Is.EqualTo("0x1000 0x9ffff 0x2000\n0x100000 0x260fff 0xa1000\n"));
        Assert.That(Support.Read(memory, 0x1000, 4096), Is.EqualTo(Support.RawPage(0).ToArray()));
        Assert.That(Support.Read(memory, 0x100000, 4096), Is.EqualTo(Support.RawPage(0x9f).ToArray()));
        Assert.That(Support.Read(memory, 0x261000, 8), Is.Null);
        context.Verify(c => c.Log(PluginLogLevel.Warning, It.Is<string>(m => m.Contains("truncated"))), Times.Once);
    }

    [TestCase(true)]
    [TestCase(false)]
    public void A_full_dump_reads_back_the_raw_image(bool is64)
    {
        (ulong, ulong)[] runs = [(1, 0x9f), (0x100, 0x1f00), (0x4000, 0x10)];
        string path = _folder.Write($"full-{is64}.dmp", CrashDumpBuilder.Full(is64, runs));
        using var memory = Support.Open(path);
        var hints = Support.HintsOf(memory);
        Assert.That(hints.Format, Is.EqualTo("crashdump-full"));
        Assert.That(hints.Architecture, Is.EqualTo(is64 ? MachineArchitecture.X64 : MachineArchitecture.X86Pae));
        Assert.That(hints.DirectoryTableBase, Is.EqualTo(is64 ? 0x3e6b1a000UL : 0xbf62f2e0UL));
        Assert.That(memory.MemoryMap.Select(r => (r.Base, r.Size)), Is.EqualTo(runs.Select(r => (r.Item1 * 4096, r.Item2 * 4096))));
        int pages = 0;
        Support.ForEachMappedPage(memory, (address, bytes) =>
        {
            if (bytes is null || !bytes.AsSpan().SequenceEqual(Support.RawPage(address / Support.PageSize)))
                Assert.Fail($"page 0x{address:x}");
            pages++;
        });
        Assert.That(pages, Is.EqualTo(0x9f + 0x1f00 + 0x10));
        Assert.That(Support.Read(memory, 0, 8), Is.Null, "page 0 is in no run");
    }

    [TestCase(true, 5u, "FDMP")]
    [TestCase(true, 6u, "SDMP")]
    [TestCase(false, 5u, "FDMP")]
    public void A_bitmap_dump_reads_back_the_raw_image(bool is64, uint dumpType, string signature)
    {
        var pfns = Support.NonZeroPages(0, 0x3000).ToList();
        string path = _folder.Write($"bitmap-{is64}-{dumpType}.dmp", CrashDumpBuilder.Bitmap(is64, pfns, 0x8000, dumpType, signature));
        using var memory = Support.Open(path);
        Assert.That(Support.HintsOf(memory).Format, Is.EqualTo("crashdump-bitmap"));
        Assert.That(memory.MemoryMap.TotalSize, Is.EqualTo((ulong)pfns.Count * 4096));
        int pages = 0;
        Support.ForEachMappedPage(memory, (address, bytes) =>
        {
            if (bytes is null || !bytes.AsSpan().SequenceEqual(Support.RawPage(address / Support.PageSize)))
                Assert.Fail($"page 0x{address:x}");
            pages++;
        });
        Assert.That(pages, Is.EqualTo(pfns.Count));
        ulong absent = Enumerable.Range(0, 0x3000).Select(p => (ulong)p).First(p => !pfns.Contains(p));
        Assert.That(Support.Read(memory, absent * 4096, 8), Is.Null);
    }

    private static IEnumerable<TestCaseData> BrokenDumps()
    {
        (ulong, ulong)[] runs = [(1, 0x9f), (0x100, 0x100)];
        yield return new TestCaseData(new Func<byte[]>(() => Patch(CrashDumpBuilder.Full(true, runs), f => Bytes.U32(f, 0x88, 1000))), "NumberOfRuns is 1000; the 64-bit header holds at most 43");
        yield return new TestCaseData(new Func<byte[]>(() => Patch(CrashDumpBuilder.Full(false, runs), f => Bytes.U32(f, 0x64, 87))), "NumberOfRuns is 87; the 32-bit header holds at most 86");
        yield return new TestCaseData(new Func<byte[]>(() => Patch(CrashDumpBuilder.Full(true, runs), f => Bytes.U64(f, 0x90, 5))), "NumberOfPages is 0x5 but its 2 runs add up to 0x19f");
        yield return new TestCaseData(new Func<byte[]>(() => Patch(CrashDumpBuilder.Full(true, runs), f => Bytes.U64(f, 0xA8, 0x50))), "overlap");
        yield return new TestCaseData(new Func<byte[]>(() => Patch(CrashDumpBuilder.Full(true, runs), f => Bytes.U64(f, 0xA8, 1UL << 60))), "lies past the 64-bit physical address space");
        yield return new TestCaseData(new Func<byte[]>(() => Patch(CrashDumpBuilder.Full(true, runs), f => Bytes.U32(f, 0xF98, 4))), "DumpType is 4");
        yield return new TestCaseData(new Func<byte[]>(() => Patch(CrashDumpBuilder.Full(true, runs), f => Bytes.U32(f, 0xF98, 5))), "expected 'SDMP' or 'FDMP'");
        var pfns = new List<ulong> { 1, 2, 3, 0x100 };
        yield return new TestCaseData(new Func<byte[]>(() => Patch(CrashDumpBuilder.Bitmap(true, pfns, 0x200), f => Bytes.U64(f, 0x2028, 7))), "TotalPresentPages is 0x7 but its bitmap has 0x4 bits set");
        yield return new TestCaseData(new Func<byte[]>(() => Patch(CrashDumpBuilder.Bitmap(true, pfns, 0x200), f => Bytes.U64(f, 0x2030, 1UL << 50))), "Pages (bit count) is 0x4000000000000");
        yield return new TestCaseData(new Func<byte[]>(() => Patch(CrashDumpBuilder.Bitmap(true, pfns, 0x200), f => Bytes.U64(f, 0x2020, 1UL << 40))), "FirstPage is 0x10000000000");
        yield return new TestCaseData(new Func<byte[]>(() => CrashDumpBuilder.Bitmap(true, pfns, 0x200)[..^100]), "truncated");
        yield return new TestCaseData(new Func<byte[]>(() => CrashDumpBuilder.Full(true, runs)[..0x1800]), "the 64-bit crash dump header (0x2000 bytes)");
    }

    private static byte[] Patch(byte[] file, Action<byte[]> change)
    {
        change(file);
        return file;
    }

    [TestCaseSource(nameof(BrokenDumps))]
    public void A_broken_crash_dump_is_refused_by_field(Func<byte[]> build, string expected)
    {
        string path = _folder.Write($"broken-{Guid.NewGuid():N}.dmp", build());
        Assert.That(() => Support.Open(path), Throws.TypeOf<InvalidDataException>().With.Message.Contains(expected).And.Message.Contains(path));
    }
}
