using Introspect.Abi;
using Introspect.Connectors.Coredump.Tests.Builders;
using Introspect.TestSupport;
using Moq;

namespace Introspect.Connectors.Coredump.Tests;

/// <summary>ELF cores: QEMU's own dumps of one paused guest against its pmemsave image, and ELF files built from the raw image's pages.</summary>
public class ElfTests
{
    private TempFolder _folder = null!;

    [OneTimeSetUp]
    public void MakeFolder() => _folder = new TempFolder();

    [OneTimeTearDown]
    public void RemoveFolder() => _folder.Dispose();

    [Test]
    public void Every_ram_page_of_qemus_elf_dump_equals_the_pmemsave_image()
    {
        using var elf = Support.Open(TestInputs.Fixture("guest.elf"));
        var raw = File.ReadAllBytes(TestInputs.Fixture("guest.raw"));
        Assert.That(Support.HintsOf(elf).Format, Is.EqualTo("elf"));
        int compared = 0;
        var ramPages = elf.MemoryMap.SelectMany(r => Enumerable.Range(0, (int)(r.Size / Support.PageSize)).Select(i => r.Base + (ulong)i * Support.PageSize))
            .Where(a => a < (ulong)raw.Length).ToList();
        Support.ForEachPage(elf, ramPages, (address, bytes) =>
        {
            if (bytes is null || !bytes.AsSpan().SequenceEqual(raw.AsSpan((int)address, Support.PageSize)))
                Assert.Fail($"page 0x{address:x} differs from the pmemsave image");
            compared++;
        });
        // All of RAM but the VGA window (0xa0000-0xbffff), which is not RAM.
        Assert.That(compared, Is.EqualTo(raw.Length / Support.PageSize - 32));
    }

    [Test]
    public void Qemus_elf_dump_carries_the_cpu_state_and_vmcoreinfo_when_the_guest_gave_it()
    {
        string path = TestInputs.Fixture("guest.elf");
        var oracle = Registers.Parse(File.ReadAllText(TestInputs.Fixture("guest-registers.txt")));
        using var elf = Support.Open(path);
        var hints = Support.HintsOf(elf);
        Assert.Multiple(() =>
        {
            Assert.That(hints.Architecture, Is.EqualTo(MachineArchitecture.X64));
            Assert.That(hints.Cpus, Is.Not.Empty);
            Assert.That(hints.Cpus[0].Cr3, Is.EqualTo(oracle["CR3"]), "CR3 of CPU 0, from the QEMU note");
            Assert.That(hints.Cpus[0].Cr0, Is.EqualTo(oracle["CR0"]));
            Assert.That(hints.Cpus[0].Cr4, Is.EqualTo(oracle["CR4"]));
            Assert.That(hints.Cpus[0].InstructionPointer, Is.EqualTo(oracle["RIP"]));
            Assert.That(hints.Cpus[0].StackPointer, Is.EqualTo(oracle["RSP"]));
            Assert.That(hints.Cpus[0].GsBase, Is.EqualTo(oracle["GS"]));
            Assert.That(hints.DirectoryTableBase, Is.EqualTo(oracle["CR3"] & 0x000F_FFFF_FFFF_F000UL));
        });
        // The notes come first in QEMU's dumps: the file has VMCOREINFO if its note area names it.
        var head = new byte[1 << 16];
        using (var stream = File.OpenRead(path))
            stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        bool hasVmcoreInfo = head.AsSpan().IndexOf("VMCOREINFO\0"u8) >= 0;
        if (hasVmcoreInfo)
            Assert.That(hints.VmcoreInfo, Does.Contain("OSRELEASE="));
        else
            Assert.That(hints.VmcoreInfo, Is.Null);
    }

    // Debian's makedumpfile writes lzo but was built without snappy and zstd; those codecs are
    // checked on kdump files the tests write themselves (KdumpSyntheticTests).
    [TestCase("guest-kdump-zlib.flat", true)]
    [TestCase("guest-kdump-zlib.kdump", false)]
    [TestCase("guest-kdump-lzo.kdump", false)]
    public void Every_page_of_a_kdump_of_the_same_moment_equals_the_elf_dump(string name, bool writtenByQemu)
    {
        using var kdump = Support.Open(TestInputs.Fixture(name));
        using var elf = Support.Open(TestInputs.Fixture("guest.elf"));
        ulong ramSize = (ulong)new FileInfo(TestInputs.Fixture("guest.raw")).Length;
        Assert.That(Support.HintsOf(kdump).Format, Does.StartWith("kdump-"));
        int compared = 0;
        Support.ForEachMappedPage(kdump, (address, bytes) =>
        {
            var expected = Support.Read(elf, address, Support.PageSize);
            if (bytes is null || expected is null || !bytes.AsSpan().SequenceEqual(expected))
                Assert.Fail($"page 0x{address:x} differs between {name} and guest.elf");
            compared++;
        });
        Assert.That(compared, Is.GreaterThanOrEqualTo((int)(ramSize / Support.PageSize) - 32 - 1024), "nearly all of RAM");
        // What the kdump left out of RAM must be zero pages in the ELF dump (QEMU's kdump also
        // holds video RAM and BIOS; makedumpfile's keeps RAM only).
        Support.ForEachMappedPage(elf, (address, bytes) =>
        {
            if (address < ramSize && Support.Read(kdump, address, 1) is null && !Support.IsZero(bytes))
                Assert.Fail($"RAM page 0x{address:x} is missing from {name} but holds data");
        });
        var cpus = Support.HintsOf(kdump).Cpus;
        if (writtenByQemu)
            Assert.That(cpus, Is.Not.Empty, "QEMU writes its CPU notes into its kdump files");
        if (cpus.Count > 0)
            Assert.That(cpus[0].Cr3, Is.EqualTo(Support.HintsOf(elf).Cpus[0].Cr3));
    }

    private static ElfBuilder.Load RawLoad(ulong physical, ulong source, int size) =>
        new(physical, Support.RawImage.AsSpan((int)source, size).ToArray());

    [Test]
    public void A_built_elf64_core_reads_back_its_segments_and_notes()
    {
        var builder = new ElfBuilder();
        builder.Loads.Add(RawLoad(0, 0, 0xA0000));
        builder.Loads.Add(RawLoad(0x100000, 0x100000, 0x800000));
        builder.Loads.Add(RawLoad(0x1_0000_0000, 0x1000000, 0x100000));
        builder.Notes.Add(("CORE", 1, ElfBuilder.PrStatusX64(0xffffffff81a592eb, 0xffffffff82a03e98, 0xffff888007a00000)));
        builder.Notes.Add(("QEMU", 0, ElfBuilder.QemuCpuState(0xffffffff81a592eb, 0xffffffff82a03e98, 0xffff888007a00000, 0x80050033, 0x635c000 | (1UL << 63) | 0x3, 0x751ef0, 0xffff888007b00000)));
        builder.Notes.Add(("CORE", 1, ElfBuilder.PrStatusX64(0x1111, 0x2222, 0x3333)));
        builder.Notes.Add(("VMCOREINFO", 0, "OSRELEASE=6.1.0-56-amd64\nSYMBOL(init_top_pgt)=ffffffff82a10000\n\0\0"u8.ToArray()));
        using var memory = Support.Open(_folder.Write("built64.elf", builder.Build()));
        Assert.That(memory.MemoryMap.ToString(), Does.StartWith("0x0 0x9ffff ").And.Contains("\n0x100000 0x8fffff ").And.Contains("\n0x100000000 0x1000fffff "));
        Support.ForEachMappedPage(memory, (address, bytes) =>
        {
            ulong source = address >= 0x1_0000_0000 ? address - 0x1_0000_0000 + 0x1000000 : address;
            if (bytes is null || !bytes.AsSpan().SequenceEqual(Support.RawImage.AsSpan((int)source, Support.PageSize)))
                Assert.Fail($"page 0x{address:x}");
        });
        var hints = Support.HintsOf(memory);
        Assert.Multiple(() =>
        {
            Assert.That(hints.Format, Is.EqualTo("elf"));
            Assert.That(hints.Architecture, Is.EqualTo(MachineArchitecture.X64));
            Assert.That(hints.DirectoryTableBase, Is.EqualTo(0x635c000UL));
            Assert.That(hints.Cpus, Has.Count.EqualTo(2));
            Assert.That(hints.Cpus[0], Is.EqualTo(new CpuRegisters
            {
                Index = 0,
                InstructionPointer = 0xffffffff81a592eb,
                StackPointer = 0xffffffff82a03e98,
                Cr0 = 0x80050033,
                Cr3 = 0x635c000 | (1UL << 63) | 0x3,
                Cr4 = 0x751ef0,
                GsBase = 0xffff888007a00000,
                KernelGsBase = 0xffff888007b00000,
            }));
            Assert.That(hints.Cpus[1], Is.EqualTo(new CpuRegisters { Index = 1, InstructionPointer = 0x1111, StackPointer = 0x2222, GsBase = 0x3333 }));
            Assert.That(hints.VmcoreInfo, Is.EqualTo("OSRELEASE=6.1.0-56-amd64\nSYMBOL(init_top_pgt)=ffffffff82a10000\n"));
        });
    }

    [TestCase(false, MachineArchitecture.X86, 0x1234000UL)]
    [TestCase(true, MachineArchitecture.X86Pae, 0x1234020UL)]
    public void A_built_elf32_core_names_its_paging_mode(bool pae, MachineArchitecture expected, ulong directoryTableBase)
    {
        var builder = new ElfBuilder { Is64 = false, Machine = 3, ExtendedNumbering = true };
        builder.Loads.Add(RawLoad(0, 0, 0x9F000));
        builder.Loads.Add(RawLoad(0x100000, 0x100000, 0x100000));
        builder.Notes.Add(("QEMU", 0, ElfBuilder.QemuCpuState(0xc1000000, 0xc2000000, 0, 0x80000011, 0x1234020, pae ? 0x20UL : 0, 0)));
        using var memory = Support.Open(_folder.Write($"built32-{pae}.elf", builder.Build()));
        var hints = Support.HintsOf(memory);
        Assert.That(hints.Format, Is.EqualTo("elf32"));
        Assert.That(hints.Architecture, Is.EqualTo(expected));
        Assert.That(hints.PaeEnabled, Is.EqualTo(pae));
        Assert.That(hints.DirectoryTableBase, Is.EqualTo(directoryTableBase));
        Assert.That(memory.MemoryMap.Count, Is.EqualTo(2));
        Assert.That(Support.Read(memory, 0x150000, 4096), Is.EqualTo(Support.RawPage(0x150).ToArray()));
    }

    [Test]
    public void Segments_that_agree_where_they_overlap_merge_as_in_paging_dumps()
    {
        var builder = new ElfBuilder();
        builder.Loads.Add(RawLoad(0x100000, 0x100000, 0x40000));
        var first = builder.Build();
        long offset = BitConverter.ToInt64(first, (int)builder.ProgramHeaderOffset(1) + 8);
        // Two more views of the same physical pages at the same file offsets, as QEMU writes one per virtual mapping.
        builder.Loads.Add(RawLoad(0x110000, 0x110000, 0x10000) with { Offset = offset + 0x10000 });
        builder.Loads.Add(RawLoad(0x100000, 0x100000, 0x40000) with { Offset = offset });
        using var memory = Support.Open(_folder.Write("overlap-agrees.elf", builder.Build()));
        Assert.That(memory.MemoryMap.ToString(), Is.EqualTo($"0x100000 0x13ffff 0x{offset:x}\n"));
        Assert.That(Support.Read(memory, 0x120000, 4096), Is.EqualTo(Support.RawPage(0x120).ToArray()));
    }

    [Test]
    public void Segments_holding_the_same_bytes_at_different_offsets_merge_as_in_kexec_vmcores()
    {
        // RAM, and a kernel-text segment over part of it with its own copy of the bytes.
        var builder = new ElfBuilder();
        builder.Loads.Add(RawLoad(0x100000, 0x100000, 0x2000000));
        builder.Loads.Add(RawLoad(0x1000000, 0x1000000, 0x1800000));
        using var memory = Support.Open(_folder.Write("overlap-same-bytes.elf", builder.Build()));
        Assert.That(memory.MemoryMap.Select(r => (r.Base, r.Size)), Is.EqualTo(new[] { (0x100000UL, 0x2000000UL), (0x2100000UL, 0x700000UL) }));
        Support.ForEachMappedPage(memory, (address, bytes) =>
        {
            if (bytes is null || !bytes.AsSpan().SequenceEqual(Support.RawPage(address / Support.PageSize)))
                Assert.Fail($"page 0x{address:x}");
        });
    }

    [Test]
    public void Segments_that_disagree_where_they_overlap_are_refused()
    {
        var builder = new ElfBuilder();
        builder.Loads.Add(RawLoad(0x100000, 0x100000, 0x40000));
        builder.Loads.Add(RawLoad(0x120000, 0x200000, 0x40000));
        string path = _folder.Write("overlap-disagrees.elf", builder.Build());
        Assert.That(() => Support.Open(path), Throws.TypeOf<InvalidDataException>()
            .With.Message.Contains("PT_LOAD 1 and PT_LOAD 2 overlap but disagree at physical 0x12"));
    }

    [Test]
    public void A_staircase_of_consistent_segments_opens_as_one_range()
    {
        // Segment k covers pages k..k+2999 of one block at the matching offset, as in a paging dump.
        const int count = 3000;
        var builder = new ElfBuilder();
        var pages = new byte[count * 4096];
        for (int k = 0; k < count; k++)
            builder.Loads.Add(new ElfBuilder.Load((ulong)k * 4096, pages) { Offset = 0x100000 + k * 4096L, WriteData = false });
        using var memory = Support.Open(_folder.Write("staircase.elf", builder.Build()));
        Assert.That(memory.MemoryMap.ToString(), Is.EqualTo($"0x0 0x{(2 * count - 1) * 4096L - 1:x} 0x100000\n"));
    }

    [Test]
    public void A_staircase_of_segments_at_different_offsets_is_refused_rather_than_compared_forever()
    {
        // The same staircase with every segment at its own offset over zeros: each overlap would be
        // compared byte by byte, about 18 GB in all.
        const int count = 3000;
        var builder = new ElfBuilder();
        var pages = new byte[count * 4096];
        for (int k = 0; k < count; k++)
            builder.Loads.Add(new ElfBuilder.Load((ulong)k * 4096, pages) { Offset = 0x100000 + k * 8192L, WriteData = false });
        string path = _folder.Write("staircase-apart.elf", builder.Build());
        Assert.That(() => Support.Open(path), Throws.TypeOf<InvalidDataException>().With.Message.Contains("over more than the file's length"));
    }

    [Test]
    public void Memory_past_a_segments_file_size_is_not_mapped()
    {
        var builder = new ElfBuilder();
        builder.Loads.Add(RawLoad(0x100000, 0x100000, 0x2000) with { MemorySize = 0x10000 });
        using var memory = Support.Open(_folder.Write("memsz.elf", builder.Build()));
        Assert.That(memory.Metadata.RealSize, Is.EqualTo(0x2000UL));
        Assert.That(Support.Read(memory, 0x101000, 4096), Is.EqualTo(Support.RawPage(0x101).ToArray()));
        Assert.That(Support.Read(memory, 0x102000, 8), Is.Null);
    }

    [Test]
    public void A_segment_past_the_end_of_the_file_is_refused_unless_truncation_is_allowed()
    {
        var builder = new ElfBuilder();
        builder.Loads.Add(RawLoad(0, 0, 0x10000));
        builder.Loads.Add(RawLoad(0x100000, 0x100000, 0x10000));
        var file = builder.Build();
        string path = _folder.Write("truncated.elf", file[..^0x8000]);
        Assert.That(() => Support.Open(path), Throws.TypeOf<InvalidDataException>()
            .With.Message.Contains("PT_LOAD 2 (p_paddr 0x100000)").And.Message.Contains("runs past the end of the file"));
        var context = new Mock<IPluginContext>();
        using var memory = Support.Open(path, allowTruncated: true, context: context.Object);
        Assert.That(memory.Metadata.RealSize, Is.EqualTo(0x18000UL));
        Assert.That(Support.Read(memory, 0x107000, 4096), Is.EqualTo(Support.RawPage(0x107).ToArray()));
        Assert.That(Support.Read(memory, 0x108000, 8), Is.Null);
        context.Verify(c => c.Log(PluginLogLevel.Warning, It.Is<string>(m => m.Contains("PT_LOAD 2"))), Times.Once);
    }

    private static IEnumerable<TestCaseData> BrokenHeaders()
    {
        yield return new TestCaseData(new Action<byte[]>(f => f[4] = 3), "EI_CLASS] is 3");
        yield return new TestCaseData(new Action<byte[]>(f => f[5] = 2), "EI_DATA] is 2");
        yield return new TestCaseData(new Action<byte[]>(f => Bytes.U16(f, 16, 2)), "e_type is 2");
        yield return new TestCaseData(new Action<byte[]>(f => Bytes.U16(f, 56, 0xFFFE)), "e_phnum 65534 program headers");
        yield return new TestCaseData(new Action<byte[]>(f => Bytes.U16(f, 54, 8)), "e_phentsize is 8");
        yield return new TestCaseData(new Action<byte[]>(f => Bytes.U64(f, 32, ulong.MaxValue - 8)), "e_phoff 0xfffffffffffffff7");
        // PT_LOAD 1's offset far past the end.
        yield return new TestCaseData(new Action<byte[]>(f => Bytes.U64(f, 64 + 56 + 8, 1UL << 62)), "p_offset 0x4000000000000000");
        // PT_LOAD 1's physical range wraps.
        yield return new TestCaseData(new Action<byte[]>(f => Bytes.U64(f, 64 + 56 + 24, ulong.MaxValue - 0x100)), "wraps past 2^64");
        // The note segment's first note claims a huge descriptor.
        yield return new TestCaseData(new Action<byte[]>(f => Bytes.U32(f, (int)BitConverter.ToUInt64(f, 64 + 8) + 4, 0x7FFF_FFF0)), "n_descsz 2147483632");
        yield return new TestCaseData(new Action<byte[]>(f => Bytes.U64(f, 64 + 32, 1UL << 40)), "PT_NOTE 0: p_filesz 0x10000000000 exceeds");
        // The only PT_LOAD becomes a PT_NULL.
        yield return new TestCaseData(new Action<byte[]>(f => Bytes.U32(f, 64 + 56, 0)), "no PT_LOAD segment");
    }

    [TestCaseSource(nameof(BrokenHeaders))]
    public void A_broken_elf_is_refused_by_field(Action<byte[]> breakIt, string expected)
    {
        var builder = new ElfBuilder();
        builder.Loads.Add(RawLoad(0x100000, 0x100000, 0x4000));
        builder.Notes.Add(("CORE", 1, ElfBuilder.PrStatusX64(1, 2, 3)));
        var file = builder.Build();
        breakIt(file);
        string path = _folder.Write($"broken-{Guid.NewGuid():N}.elf", file);
        Assert.That(() => Support.Open(path), Throws.TypeOf<InvalidDataException>().With.Message.Contains(expected).And.Message.Contains(path));
    }

    [Test]
    public void Extended_numbering_reads_the_count_from_section_zero_and_checks_it()
    {
        var builder = new ElfBuilder { ExtendedNumbering = true };
        builder.Loads.Add(RawLoad(0x100000, 0x100000, 0x4000));
        var file = builder.Build();
        using (var memory = Support.Open(_folder.Write("xnum.elf", file)))
            Assert.That(memory.MemoryMap.TotalSize, Is.EqualTo(0x4000UL));
        long section = BitConverter.ToInt64(file, 40);
        Bytes.U32(file, section + 44, 0xFFFF_FFFF);
        string path = _folder.Write("xnum-huge.elf", file);
        Assert.That(() => Support.Open(path), Throws.TypeOf<InvalidDataException>().With.Message.Contains("e_phnum 4294967295"));
    }
}
