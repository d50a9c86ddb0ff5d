using Introspect.Abi;
using Introspect.Connectors.Coredump.Kdump;
using Introspect.Connectors.Coredump.Tests.Builders;
using Moq;

namespace Introspect.Connectors.Coredump.Tests;

/// <summary>kdump files built from the raw image's pages with every compression makedumpfile knows, plain and flattened; and broken ones.</summary>
public class KdumpSyntheticTests
{
    private TempFolder _folder = null!;

    [OneTimeSetUp]
    public void MakeFolder() => _folder = new TempFolder();

    [OneTimeTearDown]
    public void RemoveFolder() => _folder.Dispose();

    /// <summary>Two stretches of the raw image (low memory and the kernel's first pages), zero pages excluded as makedumpfile -d 1 would.</summary>
    private static KdumpBuilder FromRawImage(PageCodec codec, Func<ulong, byte[], uint, (byte[], uint)>? tamper = null)
    {
        var builder = new KdumpBuilder { MaxMapNr = 0x8000, Codec = codec, Tamper = tamper };
        foreach (var pfn in Support.NonZeroPages(0, 0x800).Concat(Support.NonZeroPages(0x1000, 0x1800)))
            builder.Pages[pfn] = Support.RawPage(pfn).ToArray();
        return builder;
    }

    private static void AssertEqualsRawImage(IPhysicalMemory memory, KdumpBuilder builder)
    {
        var expectedMap = new MemoryMap(builder.Pages.Keys.Select(pfn => new MemoryRange(pfn * Support.PageSize, Support.PageSize)));
        Assert.That(memory.MemoryMap.ToString(), Is.EqualTo(expectedMap.ToString()));
        int pages = 0;
        foreach (var flags in new[] { MemoryFlags.None, MemoryFlags.NoCache })
        {
            Support.ForEachMappedPage(memory, (address, bytes) =>
            {
                if (bytes is null || !bytes.AsSpan().SequenceEqual(Support.RawPage(address / Support.PageSize)))
                    Assert.Fail($"{flags}: page 0x{address:x} differs from the raw image");
                pages++;
            }, flags);
        }
        Assert.That(pages, Is.EqualTo(2 * builder.Pages.Count));
        // An excluded zero page fails rather than reading as zeros.
        ulong excluded = Enumerable.Range(0, 0x800).Select(p => (ulong)p).First(p => !builder.Pages.ContainsKey(p));
        Assert.That(Support.Read(memory, excluded * Support.PageSize, 8), Is.Null);
    }

    [TestCase(0x1u, "zlib")]
    [TestCase(0x2u, "lzo")]
    [TestCase(0x4u, "snappy")]
    [TestCase(0x20u, "zstd")]
    [TestCase(0u, "uncompressed")]
    public void Every_compression_reads_back_the_raw_image_plain_and_flattened(uint flag, string name)
    {
        var codec = (PageCodec)flag;
        var builder = FromRawImage(codec);
        var plain = builder.BuildPlain();
        string plainPath = _folder.Write($"synthetic-{name}.kdump", plain);
        using (var memory = Support.Open(plainPath))
        {
            Assert.That(Support.HintsOf(memory).Format, Is.EqualTo($"kdump-{name}"));
            AssertEqualsRawImage(memory, builder);
        }
        string flatPath = _folder.Write($"synthetic-{name}.flat", KdumpBuilder.Flatten(plain, seed: (int)codec));
        using (var memory = Support.Open(flatPath, format: "kdump"))
        {
            Assert.That(Support.HintsOf(memory).Format, Is.EqualTo($"kdump-flattened-{name}"));
            AssertEqualsRawImage(memory, builder);
        }
    }

    [Test]
    public void Overlapping_flattened_records_resolve_to_the_last_one_written()
    {
        var builder = FromRawImage(PageCodec.Zlib);
        string path = _folder.Write("overwritten.flat", KdumpBuilder.Flatten(builder.BuildPlain(), seed: 99, overwritten: true));
        using var memory = Support.Open(path);
        AssertEqualsRawImage(memory, builder);
    }

    [Test]
    public void Notes_and_vmcoreinfo_become_hints()
    {
        var notes = ElfBuilder.NoteBytes(
        [
            ("CORE", 1, ElfBuilder.PrStatusX64(0xffffffff81000000, 0xffffc90000003f00, 0xffff888007c00000)),
            ("QEMU", 0, ElfBuilder.QemuCpuState(0xffffffff81000010, 0xffffc90000003f10, 0xffff888007c00000, 0x80050033, 0x1234000 | 0x5, 0x350ef0, 0xffff888007d00000)),
        ]);
        var builder = new KdumpBuilder { MaxMapNr = 16, Notes = notes, VmcoreInfo = "OSRELEASE=6.1.0-56-amd64\nPAGESIZE=4096\n", Machine = "" };
        builder.Pages[1] = Support.RawPage(0x1000).ToArray();
        using var memory = Support.Open(_folder.Write("notes.kdump", builder.BuildPlain()));
        var hints = Support.HintsOf(memory);
        Assert.Multiple(() =>
        {
            Assert.That(hints.Architecture, Is.EqualTo(MachineArchitecture.X64), "from the NT_PRSTATUS size, the machine field being empty");
            Assert.That(hints.VmcoreInfo, Does.StartWith("OSRELEASE=6.1.0-56-amd64\n"));
            Assert.That(hints.Cpus[0].Cr3, Is.EqualTo(0x1234005UL));
            Assert.That(hints.DirectoryTableBase, Is.EqualTo(0x1234000UL));
            Assert.That(hints.Cpus[0].InstructionPointer, Is.EqualTo(0xffffffff81000010UL));
            Assert.That(hints.Cpus[0].KernelGsBase, Is.EqualTo(0xffff888007d00000UL));
        });
    }

    [Test]
    public void A_corrupt_compressed_page_fails_alone()
    {
        ulong victim = 0x1005;
        var builder = FromRawImage(PageCodec.Zlib, (pfn, data, flags) =>
        {
            if (pfn != victim)
                return (data, flags);
            var broken = (byte[])data.Clone();
            broken.AsSpan(2).Fill(0x5A);
            return (broken, flags);
        });
        Assert.That(builder.Pages.ContainsKey(victim), Is.True);
        using var memory = Support.Open(_folder.Write("corrupt-page.kdump", builder.BuildPlain()));
        var before = new byte[8];
        var broken = new byte[8];
        var after = new byte[8];
        MemoryRequest[] batch = [new((victim - 1) * 4096, before), new(victim * 4096, broken), new((victim + 1) * 4096, after)];
        memory.Read(batch);
        Assert.That(batch.Select(e => e.Succeeded), Is.EqualTo(new[] { true, false, true }));
        memory.Read(batch, MemoryFlags.NoCache);
        Assert.That(batch.Select(e => e.Succeeded), Is.EqualTo(new[] { true, false, true }));
        Assert.That(before, Is.EqualTo(Support.RawPage(victim - 1)[..8].ToArray()));
    }

    [Test]
    public void A_page_with_unknown_flags_fails_and_is_reported_once()
    {
        var builder = FromRawImage(PageCodec.Zlib, (pfn, data, flags) => pfn is 0x1010 or 0x1011 ? (data, 0x40u) : (data, flags));
        var context = new Mock<IPluginContext>();
        using var memory = Support.Open(_folder.Write("unknown-flag.kdump", builder.BuildPlain()), context: context.Object);
        Assert.That(Support.Read(memory, 0x1010 * 4096, 8), Is.Null);
        Assert.That(Support.Read(memory, 0x1011 * 4096, 8), Is.Null);
        Assert.That(Support.Read(memory, 0x1012 * 4096, 8), Is.Not.Null);
        context.Verify(c => c.Log(PluginLogLevel.Warning, It.Is<string>(m => m.Contains("0x40") && m.Contains("page 0x1010"))), Times.Once);
    }

    [Test]
    public void Descriptors_pointing_outside_the_file_fail_their_pages()
    {
        var builder = FromRawImage(PageCodec.Zlib);
        var file = builder.BuildPlain();
        // Descriptor 3: offset far past the end; descriptor 4: size larger than a page.
        Bytes.U64(file, builder.DescriptorOffset + 3 * 24, 1UL << 40);
        Bytes.U32(file, builder.DescriptorOffset + 4 * 24 + 8, 0x10000);
        using var memory = Support.Open(_folder.Write("bad-descriptors.kdump", file));
        var pfns = builder.Pages.Keys.ToArray();
        Assert.That(Support.Read(memory, pfns[3] * 4096, 8), Is.Null);
        Assert.That(Support.Read(memory, pfns[4] * 4096, 8), Is.Null);
        Assert.That(Support.Read(memory, pfns[5] * 4096, 8), Is.EqualTo(Support.RawPage(pfns[5])[..8].ToArray()));
    }

    private static IEnumerable<TestCaseData> BrokenHeaders()
    {
        yield return new TestCaseData(new Action<byte[]>(f => Bytes.U32(f, 428, 3000)), "block_size is 3000");
        yield return new TestCaseData(new Action<byte[]>(f => Bytes.U32(f, 428, 1 << 30)), "block_size is 1073741824");
        yield return new TestCaseData(new Action<byte[]>(f => Bytes.U32(f, 436, 0xFFFF_FFF0)), "bitmap_blocks is 4294967280");
        yield return new TestCaseData(new Action<byte[]>(f => Bytes.U32(f, 432, 0x7FFF_FFFF)), "sub_hdr_size is 2147483647");
        yield return new TestCaseData(new Action<byte[]>(f => Bytes.U64(f, 4096 + 96, 1UL << 60)), "max_mapnr is 0x1000000000000000");
        yield return new TestCaseData(new Action<byte[]>(f => Bytes.U32(f, 8, 0)), "header_version is 0");
        yield return new TestCaseData(new Action<byte[]>(f => { Bytes.U64(f, 4096 + 48, 1UL << 50); Bytes.U64(f, 4096 + 56, 100); }), "offset_note 0x4000000000000");
        yield return new TestCaseData(new Action<byte[]>(f => { Bytes.U64(f, 4096 + 32, 0x100); Bytes.U64(f, 4096 + 40, 1UL << 40); }), "size_vmcoreinfo 0x10000000000");
        // Every bit of the dumpable bitmap set: far more pages than descriptors.
        var b = new KdumpBuilder { MaxMapNr = 0x8000 };
        yield return new TestCaseData(new Action<byte[]>(f => f.AsSpan((int)(b.BitmapOffset + b.BitmapBlocks * 4096L / 2), (int)(b.BitmapBlocks * 4096L / 2)).Fill(0xFF)), "inside the 0xc0000 bytes their page descriptors need");
    }

    [TestCaseSource(nameof(BrokenHeaders))]
    public void A_broken_header_is_refused_by_field(Action<byte[]> breakIt, string expected)
    {
        var builder = FromRawImage(PageCodec.Zlib);
        var file = builder.BuildPlain();
        breakIt(file);
        string path = _folder.Write($"broken-{Guid.NewGuid():N}.kdump", file);
        Assert.That(() => Support.Open(path), Throws.TypeOf<InvalidDataException>().With.Message.Contains(expected).And.Message.Contains(path));
    }

    [Test]
    public void A_bitmap_claiming_more_descriptors_than_the_file_holds_is_refused()
    {
        var builder = new KdumpBuilder { MaxMapNr = 1 << 20 };
        builder.Pages[5] = Support.RawPage(0x1000).ToArray();
        var file = builder.BuildPlain();
        file.AsSpan((int)(builder.BitmapOffset + builder.BitmapBlocks * 4096L / 2), (int)(builder.BitmapBlocks * 4096L / 2)).Fill(0xFF);
        string path = _folder.Write("bitmap-too-full.kdump", file);
        Assert.That(() => Support.Open(path), Throws.TypeOf<InvalidDataException>()
            .With.Message.Contains("0x100000 pages set").And.Message.Contains("run past the end of the dump"));
    }

    [Test]
    public void A_truncated_kdump_is_refused()
    {
        var builder = FromRawImage(PageCodec.Zlib);
        var file = builder.BuildPlain();
        foreach (int length in new[] { 100, 5000, (int)builder.BitmapOffset + 100, (int)builder.DescriptorOffset + 50 })
        {
            string path = _folder.Write($"truncated-{length}.kdump", file[..length]);
            Assert.That(() => Support.Open(path), Throws.TypeOf<InvalidDataException>().With.Message.Contains(path), $"{length} bytes");
        }
    }

    [Test]
    public void An_incomplete_dump_opens_and_fails_the_pages_it_lost()
    {
        var builder = new KdumpBuilder { MaxMapNr = 0x800, ExtraStatus = KdumpHeader.StatusIncomplete };
        foreach (var pfn in Support.NonZeroPages(0, 0x800))
            builder.Pages[pfn] = Support.RawPage(pfn).ToArray();
        var file = builder.BuildPlain();
        // makedumpfile ran out of space: the last ten descriptors were never written.
        var pfns = builder.Pages.Keys.ToArray();
        file.AsSpan((int)builder.DescriptorOffset + (pfns.Length - 10) * 24, 10 * 24).Clear();
        var context = new Mock<IPluginContext>();
        using var memory = Support.Open(_folder.Write("incomplete.kdump", file), context: context.Object);
        Assert.That(Support.Read(memory, pfns[^1] * 4096, 8), Is.Null);
        Assert.That(Support.Read(memory, pfns[0] * 4096, 4096), Is.EqualTo(Support.RawPage(pfns[0]).ToArray()));
        context.Verify(c => c.Log(PluginLogLevel.Warning, It.Is<string>(m => m.Contains("incomplete"))), Times.Once);
    }

    private static IEnumerable<TestCaseData> BrokenRecords()
    {
        yield return new TestCaseData(-2L, 16L, "target offset is -2");
        yield return new TestCaseData(1L << 62, 16L, "0x4000000000000000");
        yield return new TestCaseData(0L, -5L, "size is -5");
        yield return new TestCaseData(0L, 1L << 40, "run past the end of the file");
    }

    [TestCaseSource(nameof(BrokenRecords))]
    public void A_broken_flattened_record_is_refused(long offset, long size, string expected)
    {
        using var stream = new MemoryStream();
        var header = new byte[4096];
        Bytes.Ascii(header, 0, "makedumpfile");
        header[23] = 1;
        header[31] = 1;
        stream.Write(header);
        KdumpBuilder.WriteRecord(stream, 0, "KDUMP   "u8);
        Bytes.I64BigEndian(stream, offset);
        Bytes.I64BigEndian(stream, size);
        stream.Write(new byte[16]);
        Bytes.I64BigEndian(stream, -1);
        Bytes.I64BigEndian(stream, 0);
        string path = _folder.Write($"broken-record-{Guid.NewGuid():N}.flat", stream.ToArray());
        Assert.That(() => Support.Open(path), Throws.TypeOf<InvalidDataException>().With.Message.Contains(expected).And.Message.Contains("record #1"));
    }

    [Test]
    public void A_flattened_stream_without_its_end_record_is_refused()
    {
        var flat = KdumpBuilder.Flatten(FromRawImage(PageCodec.Zlib).BuildPlain(), seed: 5);
        string path = _folder.Write("no-end.flat", flat[..^16]);
        Assert.That(() => Support.Open(path), Throws.TypeOf<InvalidDataException>().With.Message.Contains("without its end record"));
        var header = (byte[])flat.Clone();
        header[23] = 2;
        Assert.That(() => Support.Open(_folder.Write("bad-type.flat", header)), Throws.TypeOf<InvalidDataException>().With.Message.Contains("type is 2"));
    }
}
