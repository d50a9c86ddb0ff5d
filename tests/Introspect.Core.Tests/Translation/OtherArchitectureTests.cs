using Introspect.Abi;
using Introspect.Core.Memory;
using Introspect.Core.Tests.Memory;
using Introspect.Core.Translation;
using static Introspect.Core.Tests.Translation.PageTableBuilder;

namespace Introspect.Core.Tests.Translation;

public sealed class OtherArchitectureTests
{
    private ArrayPhysicalMemory _memory = null!;

    [TearDown]
    public void TearDown() => _memory.Dispose();

    [SetUp]
    public void SetUp() => _memory = new ArrayPhysicalMemory(16 << 20);

    [Test]
    public void X64_five_level_paging_translates_57_bit_addresses()
    {
        var tables = new PageTableBuilder(_memory, PagingArchitecture.X64FiveLevel, 0x80_0000);
        ulong root = tables.NewRoot();
        tables.Map(root, 0xff00_0000_0000_1000, 0x5000, 0x1000, X86Writable);
        tables.Map(root, 0x0000_8000_0000_0000, 0x20_0000, 0x20_0000, X86User);
        tables.Map(root, 0x0010_0000_4000_0000, 0x4000_0000, 0x4000_0000);
        var space = new AddressSpace(_memory, PagingArchitecture.X64FiveLevel, root);

        Assert.That(space.TryTranslate(0xff00_0000_0000_1234, out var t), Is.True);
        Assert.That((t.PhysicalAddress, t.PageSize, t.Flags), Is.EqualTo((0x5234UL, 0x1000UL, PageFlags.Writable)));
        Assert.That(space.TryTranslate(0x0000_8000_0000_0010, out t), Is.True, "canonical with 57 bits, not with 48");
        Assert.That((t.PhysicalAddress, t.Flags), Is.EqualTo((0x20_0010UL, PageFlags.User | PageFlags.Large)));
        Assert.That(space.TryTranslate(0x0010_0000_4000_0000, out t), Is.True);
        Assert.That((t.PhysicalAddress, t.PageSize), Is.EqualTo((0x4000_0000UL, 0x4000_0000UL)));
        Assert.That(space.TryTranslate(0x0100_0000_0000_0000, out _), Is.False, "bit 56 set without sign extension");
        Assert.That(PagingArchitecture.X64.IsCanonical(0x0000_8000_0000_0000), Is.False);
    }

    [Test]
    public void X86_PAE_translates_4K_and_2M_pages_with_NX_from_a_32_byte_aligned_root()
    {
        var tables = new PageTableBuilder(_memory, PagingArchitecture.X86Pae, 0x80_0000);
        ulong root = tables.NewRoot();
        Assert.That(root & 0xfff, Is.EqualTo(0x20UL));
        tables.Map(root, 0x0040_1000, 0x7000, 0x1000, X86Writable | X86User);
        tables.Map(root, 0xc000_0000, 0x20_0000, 0x20_0000, X86NoExecute);
        var space = new AddressSpace(_memory, PagingArchitecture.X86Pae, root);

        Assert.That(space.TryTranslate(0x0040_1abc, out var t), Is.True);
        Assert.That((t.PhysicalAddress, t.PageSize, t.Flags), Is.EqualTo((0x7abcUL, 0x1000UL, PageFlags.Writable | PageFlags.User)),
            "the PDPT entry (present only) takes nothing away");
        Assert.That(space.TryTranslate(0xc001_0000, out t), Is.True);
        Assert.That((t.PhysicalAddress, t.PageSize), Is.EqualTo((0x21_0000UL, 0x20_0000UL)));
        Assert.That(t.Flags, Is.EqualTo(PageFlags.NoExecute | PageFlags.PrivilegedNoExecute | PageFlags.Large));
        Assert.That(space.TryTranslate(0x1_0000_0000, out _), Is.False, "above 4 GiB");
        Assert.That(space.TryTranslate(0x8000_0000, out _), Is.False, "not mapped");
    }

    [Test]
    public void X86_two_level_paging_uses_4_byte_entries_and_4M_pages()
    {
        var tables = new PageTableBuilder(_memory, PagingArchitecture.X86, 0x80_0000);
        ulong root = tables.NewRoot();
        tables.Map(root, 0x0040_1000, 0x3000, 0x1000, X86Writable | X86User);
        tables.Map(root, 0x8000_0000, 0x40_0000, 0x40_0000, X86Writable);
        _memory.Bytes[0x3010] = 0x5a;
        var space = new AddressSpace(_memory, PagingArchitecture.X86, root);

        Assert.That(space.TryTranslate(0x0040_1010, out var t), Is.True);
        Assert.That((t.PhysicalAddress, t.PageSize, t.Flags), Is.EqualTo((0x3010UL, 0x1000UL, PageFlags.Writable | PageFlags.User)));
        Assert.That(space.TryRead(0x0040_1010, out byte value), Is.True);
        Assert.That(value, Is.EqualTo(0x5a));
        Assert.That(space.TryTranslate(0x803f_fff0, out t), Is.True);
        Assert.That((t.PhysicalAddress, t.PageSize, t.Flags), Is.EqualTo((0x7f_fff0UL, 0x40_0000UL, PageFlags.Writable | PageFlags.Large)));
        Assert.That(space.TryTranslate(0x0080_0000, out _), Is.False);
    }

    [Test]
    public void AArch64_splits_the_address_space_between_TTBR0_and_TTBR1()
    {
        var tables = new PageTableBuilder(_memory, PagingArchitecture.AArch64, 0x80_0000);
        ulong ttbr0 = tables.NewRoot(), ttbr1 = tables.NewRoot();
        tables.Map(ttbr0, 0x0000_0040_0000_1000, 0x6000, 0x1000, ArmUser | ArmPxn);
        tables.Map(ttbr1, 0xffff_0000_0020_0000, 0x20_0000, 0x20_0000, ArmReadOnly | ArmUxn);
        tables.Map(ttbr1, 0xffff_ff80_0000_0000, 0, 0x4000_0000, ArmReadOnly);
        // The same low-half index in TTBR1's table must not answer for a low address.
        tables.Map(ttbr1, 0xffff_0040_0000_1000, 0x9000, 0x1000);
        var space = new AddressSpace(_memory, PagingArchitecture.AArch64, ttbr0 | (0x42UL << 48), ttbr1);

        Assert.That(space.TryTranslate(0x0000_0040_0000_1008, out var t), Is.True);
        Assert.That((t.PhysicalAddress, t.PageSize), Is.EqualTo((0x6008UL, 0x1000UL)));
        Assert.That(t.Flags, Is.EqualTo(PageFlags.Writable | PageFlags.User | PageFlags.PrivilegedNoExecute));

        Assert.That(space.TryTranslate(0xffff_0000_0021_0000, out t), Is.True);
        Assert.That((t.PhysicalAddress, t.PageSize), Is.EqualTo((0x21_0000UL, 0x20_0000UL)));
        Assert.That(t.Flags, Is.EqualTo(PageFlags.NoExecute | PageFlags.Large), "AP[2] read-only, UXN");

        Assert.That(space.TryTranslate(0xffff_ff80_0012_3456, out t), Is.True);
        Assert.That((t.PhysicalAddress, t.PageSize), Is.EqualTo((0x12_3456UL, 0x4000_0000UL)));

        Assert.That(space.TryTranslate(0xffff_0040_0000_1000, out t), Is.True);
        Assert.That(t.PhysicalAddress, Is.EqualTo(0x9000UL));

        Assert.That(space.TryTranslate(0x0001_0040_0000_1000, out _), Is.False, "bits 63:48 neither all zeros nor all ones");
        Assert.That(new AddressSpace(_memory, PagingArchitecture.AArch64, ttbr0).TryTranslate(0xffff_0000_0021_0000, out _), Is.False,
            "no TTBR1, no high half");
    }

    [Test]
    public void AArch64_descriptor_types_decide_blocks_pages_and_faults()
    {
        var tables = new PageTableBuilder(_memory, PagingArchitecture.AArch64, 0x80_0000);
        ulong root = tables.NewRoot();
        tables.Map(root, 0x1000, 0x6000, 0x1000);
        tables.Map(root, 0x2000, 0x7000, 0x1000);
        var space = new AddressSpace(_memory, PagingArchitecture.AArch64, root);
        Assert.That(space.TryTranslate(0x1000, out _), Is.True);

        // Level 3 with bits 1:0 = 0b01 is reserved, not a page.
        ulong pte = LastLevelEntryAddress(tables, root, 0x2000);
        tables.WriteEntry(pte, tables.ReadEntry(pte) & ~0b10UL);
        Assert.That(space.TryTranslate(0x2000, out _), Is.False);

        // A block descriptor at level 0 is invalid with the 4 KiB granule.
        tables.WriteEntry(tables.EntryAddress(root, 1), 0x80_0000_0000UL | 0b01 | (1UL << 10));
        Assert.That(space.TryTranslate(0x80_0000_0000, out _), Is.False);
    }

    [Test]
    public void AArch64_table_attributes_restrict_everything_below()
    {
        var tables = new PageTableBuilder(_memory, PagingArchitecture.AArch64, 0x80_0000);
        ulong root = tables.NewRoot();
        tables.Map(root, 0x4000_0000, 0x6000, 0x1000, ArmUser, tableBits: ArmApTableNoUser | ArmUxnTable);
        tables.Map(root, 0x80_0000_0000, 0x7000, 0x1000, ArmUser, tableBits: ArmApTableReadOnly);
        var space = new AddressSpace(_memory, PagingArchitecture.AArch64, root);

        Assert.That(space.TryTranslate(0x4000_0000, out var t), Is.True);
        Assert.That(t.Flags, Is.EqualTo(PageFlags.Writable | PageFlags.NoExecute), "APTable[0] takes EL0 access, UXNTable adds UXN");
        Assert.That(space.TryTranslate(0x80_0000_0000, out t), Is.True);
        Assert.That(t.Flags, Is.EqualTo(PageFlags.User), "APTable[1] takes writes");
    }

    [Test]
    public void Each_architecture_batch_costs_levels_plus_one_physical_batches()
    {
        foreach (var architecture in new[] { PagingArchitecture.X64, PagingArchitecture.X64FiveLevel, PagingArchitecture.X86Pae, PagingArchitecture.X86, PagingArchitecture.AArch64 })
        {
            var memory = new ArrayPhysicalMemory(16 << 20);
            var tables = new PageTableBuilder(memory, architecture, 0x80_0000);
            ulong root = tables.NewRoot();
            var batch = new MemoryRequest[20];
            for (int i = 0; i < batch.Length; i++)
            {
                ulong va = 0x40_0000 + (ulong)i * 0x1000 * 37;
                tables.Map(root, va, 0x10_0000 + (ulong)i * 0x1000, 0x1000);
                // Every other request crosses into an unmapped page, whose walk fails somewhere on the way down.
                batch[i] = new MemoryRequest(va + (i % 2 == 0 ? 0xff8UL : 0x10UL), new byte[16]);
            }
            memory.ResetCounters();
            new AddressSpace(memory, architecture, root).Read(batch);
            Assert.That(memory.ReadCalls, Is.EqualTo(architecture.Levels.Count + 1), architecture.Name);
            Assert.That(batch.Select(r => r.Succeeded), Is.EqualTo(Enumerable.Range(0, batch.Length).Select(i => i % 2 == 1)), architecture.Name);
        }
    }

    [Test]
    public void The_machine_architecture_names_its_paging()
    {
        Assert.That(PagingArchitecture.For(MachineArchitecture.X64), Is.SameAs(PagingArchitecture.X64));
        Assert.That(PagingArchitecture.For(MachineArchitecture.X86Pae), Is.SameAs(PagingArchitecture.X86Pae));
        Assert.That(PagingArchitecture.For(MachineArchitecture.X86), Is.SameAs(PagingArchitecture.X86));
        Assert.That(PagingArchitecture.For(MachineArchitecture.Arm64), Is.SameAs(PagingArchitecture.AArch64));
        Assert.That(PagingArchitecture.For(MachineArchitecture.Unknown), Is.Null);
        Assert.That(PagingArchitecture.AArch64.Levels.Select(l => l.Shift), Is.EqualTo(new[] { 39, 30, 21, 12 }));
        Assert.That(PagingArchitecture.X86.EntrySize, Is.EqualTo(4));
    }

    private static ulong LastLevelEntryAddress(PageTableBuilder tables, ulong root, ulong va)
    {
        var levels = PagingArchitecture.AArch64.Levels;
        ulong table = root;
        for (int level = 0; level < levels.Count - 1; level++)
            table = tables.ReadEntry(tables.EntryAddress(table, (int)levels[level].IndexOf(va))) & PagingArchitecture.AArch64.AddressMask;
        return tables.EntryAddress(table, (int)levels[^1].IndexOf(va));
    }
}
