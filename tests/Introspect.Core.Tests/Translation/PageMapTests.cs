using Introspect.Core.Tests.Memory;
using Introspect.Core.Translation;
using static Introspect.Core.Tests.Translation.PageTableBuilder;

namespace Introspect.Core.Tests.Translation;

public sealed class PageMapTests
{
    private ArrayPhysicalMemory _memory = null!;

    [TearDown]
    public void TearDown() => _memory.Dispose();

    [SetUp]
    public void SetUp() => _memory = new ArrayPhysicalMemory(16 << 20);

    [Test]
    public void Runs_merge_across_pages_and_page_sizes_and_split_where_permissions_change()
    {
        var tables = new PageTableBuilder(_memory, PagingArchitecture.X64, 0x80_0000);
        ulong root = tables.NewRoot();
        // A 2 MiB page followed by two 4 KiB pages with the same permissions: one run.
        tables.Map(root, 0x20_0000, 0x20_0000, 0x20_0000, X86Writable | X86User);
        tables.Map(root, 0x40_0000, 0x1000, 0x1000, X86Writable | X86User);
        tables.Map(root, 0x40_1000, 0x9000, 0x1000, X86Writable | X86User);
        // Then a read-only page, a gap, and a kernel page in the high half.
        tables.Map(root, 0x40_2000, 0x2000, 0x1000, X86User);
        tables.Map(root, 0x40_4000, 0x3000, 0x1000, X86User);
        tables.Map(root, 0xffff_ffff_8000_0000, 0, 0x4000_0000, X86NoExecute);

        var map = new AddressSpace(_memory, PagingArchitecture.X64, root).GetPageMap();

        Assert.That(map.Truncated, Is.False);
        Assert.That(map, Is.EqualTo(new[]
        {
            new PageRun(0x20_0000, 0x20_2000, PageFlags.Writable | PageFlags.User),
            new PageRun(0x40_2000, 0x1000, PageFlags.User),
            new PageRun(0x40_4000, 0x1000, PageFlags.User),
            new PageRun(0xffff_ffff_8000_0000, 0x4000_0000, PageFlags.NoExecute | PageFlags.PrivilegedNoExecute),
        }));
        Assert.That(map.Find(0x40_1fff), Is.EqualTo(map[0]));
        Assert.That(map.Find(0x40_3000), Is.Null);
        Assert.That(map.TotalSize, Is.EqualTo(0x20_2000UL + 0x2000 + 0x4000_0000));
    }

    [Test]
    public void A_range_limits_and_clips_the_map()
    {
        var tables = new PageTableBuilder(_memory, PagingArchitecture.X64, 0x80_0000);
        ulong root = tables.NewRoot();
        tables.Map(root, 0x20_0000, 0x20_0000, 0x20_0000, X86Writable);
        tables.Map(root, 0x7f00_0000_0000, 0x1000, 0x1000);
        var space = new AddressSpace(_memory, PagingArchitecture.X64, root);

        Assert.That(space.GetPageMap(0x30_0000, 0x30_1000), Is.EqualTo(new[] { new PageRun(0x30_0000, 0x1000, PageFlags.Writable) }));
        Assert.That(space.GetPageMap(0x7000_0000_0000), Is.EqualTo(new[] { new PageRun(0x7f00_0000_0000, 0x1000, PageFlags.None) }));
        Assert.That(space.GetPageMap(0x50_0000, 0x50_0000), Is.Empty);
    }

    [Test]
    public void AArch64_maps_both_halves()
    {
        var tables = new PageTableBuilder(_memory, PagingArchitecture.AArch64, 0x80_0000);
        ulong ttbr0 = tables.NewRoot(), ttbr1 = tables.NewRoot();
        tables.Map(ttbr0, 0x40_0000, 0x6000, 0x1000, ArmUser);
        tables.Map(ttbr1, 0xffff_0000_0020_0000, 0x20_0000, 0x20_0000, ArmReadOnly | ArmUxn);
        var map = new AddressSpace(_memory, PagingArchitecture.AArch64, ttbr0, ttbr1).GetPageMap();
        Assert.That(map, Is.EqualTo(new[]
        {
            new PageRun(0x40_0000, 0x1000, PageFlags.Writable | PageFlags.User),
            new PageRun(0xffff_0000_0020_0000, 0x20_0000, PageFlags.NoExecute),
        }));
    }

    [Test]
    public void X86_maps_4M_pages_and_PAE_its_four_directories()
    {
        var tables = new PageTableBuilder(_memory, PagingArchitecture.X86, 0x80_0000);
        ulong root = tables.NewRoot();
        tables.Map(root, 0x8000_0000, 0x40_0000, 0x40_0000, X86Writable);
        tables.Map(root, 0x8040_0000, 0x1000, 0x1000, X86Writable);
        Assert.That(new AddressSpace(_memory, PagingArchitecture.X86, root).GetPageMap(),
            Is.EqualTo(new[] { new PageRun(0x8000_0000, 0x40_1000, PageFlags.Writable) }));

        var pae = new PageTableBuilder(_memory, PagingArchitecture.X86Pae, 0xc0_0000);
        ulong paeRoot = pae.NewRoot();
        pae.Map(paeRoot, 0x1000, 0x1000, 0x1000, X86User);
        pae.Map(paeRoot, 0xffe0_0000, 0x20_0000, 0x20_0000, X86NoExecute);
        Assert.That(new AddressSpace(_memory, PagingArchitecture.X86Pae, paeRoot).GetPageMap(), Is.EqualTo(new[]
        {
            new PageRun(0x1000, 0x1000, PageFlags.User),
            new PageRun(0xffe0_0000, 0x20_0000, PageFlags.NoExecute | PageFlags.PrivilegedNoExecute),
        }));
    }

    [Test]
    public void A_self_referencing_PML4_entry_is_walked_once_per_level_and_ends()
    {
        var tables = new PageTableBuilder(_memory, PagingArchitecture.X64, 0x80_0000);
        ulong root = tables.NewRoot();
        tables.Map(root, 0x40_0000, 0x1000, 0x1000, X86Writable);
        // Windows' self-map: PML4[0x1ed] points at the PML4 itself.
        tables.WriteEntry(tables.EntryAddress(root, 0x1ed), tables.TableEntry(root, carriesPermissions: true) | X86NoExecute);

        var map = new AddressSpace(_memory, PagingArchitecture.X64, root).GetPageMap();

        Assert.That(map.Truncated, Is.False);
        Assert.That(map[0], Is.EqualTo(new PageRun(0x40_0000, 0x1000, PageFlags.Writable)));
        // Through the self-map, the page table of 0x400000 is itself a page at 0xfffff680'00002000 (PML4 0x1ed, PDPT 0, PD 2),
        // and the PML4 appears at 0xfffff6fb'7dbed000.
        const PageFlags SelfMapFlags = PageFlags.Writable | PageFlags.User | PageFlags.NoExecute | PageFlags.PrivilegedNoExecute;
        Assert.That(map.Find(0xffff_f680_0000_2000)?.Flags, Is.EqualTo(SelfMapFlags));
        Assert.That(map.Find(0xffff_f6fb_7dbe_d000)?.Flags, Is.EqualTo(SelfMapFlags));
        Assert.That(map.All(run => run.VirtualAddress == 0x40_0000 || (run.VirtualAddress >> 39 & 0x1ff) == 0x1ed), Is.True);
    }

    [Test]
    public void Tables_that_all_point_at_one_table_stop_at_the_bound_and_say_so()
    {
        var tables = new PageTableBuilder(_memory, PagingArchitecture.X64, 0x80_0000);
        ulong root = tables.NewRoot();
        // Every entry of the PML4 points at the PML4: 512 tables at level 1, 512^2 at level 2, 512^3 at level 3.
        for (int i = 0; i < 512; i++)
            tables.WriteEntry(tables.EntryAddress(root, i), tables.TableEntry(root, carriesPermissions: true));

        var map = new AddressSpace(_memory, PagingArchitecture.X64, root).GetPageMap();

        Assert.That(map.Truncated, Is.True);
        Assert.That(map.Count, Is.LessThanOrEqualTo(AddressSpace.MaxPageMapRuns));
        Assert.That(_memory.BytesRequested, Is.LessThanOrEqualTo((AddressSpace.MaxPageMapTables + 1L) * 0x1000));
    }

    [Test]
    public void Tables_pointing_outside_physical_memory_are_skipped()
    {
        var tables = new PageTableBuilder(_memory, PagingArchitecture.X64, 0x80_0000);
        ulong root = tables.NewRoot();
        tables.Map(root, 0x40_0000, 0x1000, 0x1000);
        tables.WriteEntry(tables.EntryAddress(root, 7), 0x000f_ffff_ffff_f000UL | 3);
        Assert.That(new AddressSpace(_memory, PagingArchitecture.X64, root).GetPageMap(),
            Is.EqualTo(new[] { new PageRun(0x40_0000, 0x1000, PageFlags.None) }));
    }

    [Test]
    public void A_run_contains_its_addresses_only_and_never_overflows()
    {
        var run = new PageRun(0xffff_ffff_ffff_f000, 0x1000, PageFlags.None);
        Assert.That(run.Contains(0xffff_ffff_ffff_ffff), Is.True);
        Assert.That(run.Contains(0xffff_ffff_ffff_efff), Is.False);
        Assert.That(run.Contains(0), Is.False);
        Assert.That(run.Last, Is.EqualTo(ulong.MaxValue));
    }
}
