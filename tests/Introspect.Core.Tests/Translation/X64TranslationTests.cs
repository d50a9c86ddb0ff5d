using Introspect.Abi;
using Introspect.Core.Caching;
using Introspect.Core.Memory;
using Introspect.Core.Tests.Memory;
using Introspect.Core.Translation;
using static Introspect.Core.Tests.Translation.PageTableBuilder;

namespace Introspect.Core.Tests.Translation;

public sealed class X64TranslationTests
{
    private const ulong UserPage = 0x0000_7fff_1234_5000;
    private const ulong KernelLarge = 0xffff_8000_0020_0000;
    private const ulong KernelHuge = 0xffff_ffff_8000_0000;

    private ArrayPhysicalMemory _memory = null!;
    private PageTableBuilder _tables = null!;
    private ulong _root;

    [TearDown]
    public void TearDown() => _memory.Dispose();

    [SetUp]
    public void SetUp()
    {
        _memory = new ArrayPhysicalMemory(16 << 20);
        _tables = new PageTableBuilder(_memory, PagingArchitecture.X64, 0x80_0000);
        _root = _tables.NewRoot();
        _tables.Map(_root, UserPage, 0x10000, 0x1000, X86Writable | X86User | X86NoExecute);
        _tables.Map(_root, KernelLarge, 0x20_0000, 0x20_0000, X86Writable | X86NoExecute);
        _tables.Map(_root, KernelHuge, 0, 0x4000_0000);
    }

    private AddressSpace Space(TranslationCache? tlb = null) => new(_memory, PagingArchitecture.X64, _root, tlb: tlb);

    [Test]
    public void A_4K_page_translates_with_its_permissions()
    {
        Assert.That(Space().TryTranslate(UserPage + 0x123, out var t), Is.True);
        Assert.That(t, Is.EqualTo(new PageTranslation(UserPage + 0x123, 0x10123, 0x1000,
            PageFlags.Writable | PageFlags.User | PageFlags.NoExecute | PageFlags.PrivilegedNoExecute)));
    }

    [Test]
    public void A_2M_page_translates_as_a_large_page()
    {
        Assert.That(Space().TryTranslate(KernelLarge + 0x1_2345, out var t), Is.True);
        Assert.That(t.PhysicalAddress, Is.EqualTo(0x21_2345UL));
        Assert.That(t.PageSize, Is.EqualTo(0x20_0000UL));
        Assert.That(t.Flags, Is.EqualTo(PageFlags.Writable | PageFlags.NoExecute | PageFlags.PrivilegedNoExecute | PageFlags.Large));
    }

    [Test]
    public void A_1G_page_translates_as_a_large_page()
    {
        Assert.That(Space().TryTranslate(KernelHuge + 0x3_4567, out var t), Is.True);
        Assert.That(t.PhysicalAddress, Is.EqualTo(0x3_4567UL));
        Assert.That(t.PageSize, Is.EqualTo(0x4000_0000UL));
        Assert.That(t.Flags, Is.EqualTo(PageFlags.Large), "read-only, supervisor, executable");
    }

    [Test]
    public void A_read_only_table_level_makes_the_page_read_only()
    {
        // Clear R/W in the PDPT entry above the user page: the leaf's R/W no longer grants writes.
        ulong pml4e = _tables.ReadEntry(_tables.EntryAddress(_root, (int)((UserPage >> 39) & 511)));
        ulong pdpt = pml4e & PagingArchitecture.X64.AddressMask;
        ulong pdpteAddress = _tables.EntryAddress(pdpt, (int)((UserPage >> 30) & 511));
        _tables.WriteEntry(pdpteAddress, _tables.ReadEntry(pdpteAddress) & ~X86Writable);
        Assert.That(Space().TryTranslate(UserPage, out var t), Is.True);
        Assert.That(t.Flags & PageFlags.Writable, Is.EqualTo(PageFlags.None));
        Assert.That(t.Flags & PageFlags.User, Is.EqualTo(PageFlags.User));
    }

    [Test]
    public void Non_present_and_non_canonical_addresses_do_not_translate()
    {
        var space = Space();
        Assert.That(space.TryTranslate(0x1000, out _), Is.False, "not mapped");
        Assert.That(space.TryTranslate(UserPage + 0x1000, out _), Is.False, "next page not mapped");
        Assert.That(space.TryTranslate(0x0000_8000_0000_0000, out _), Is.False, "not canonical");
        Assert.That(space.TryTranslate(0xfff0_ffff_8000_0000, out _), Is.False, "not canonical");
    }

    [Test]
    public void A_PS_bit_in_a_PML4_entry_is_not_a_leaf()
    {
        ulong address = _tables.EntryAddress(_root, 3);
        _tables.WriteEntry(address, 0x40_0000UL | 1 | (1UL << 7));
        Assert.That(Space().TryTranslate(3UL << 39, out _), Is.False);
    }

    [Test]
    public void Tables_outside_physical_memory_fail_the_walk_only()
    {
        _tables.WriteEntry(_tables.EntryAddress(_root, 5), 0x7_0000_0000UL | 3);
        var space = Space();
        Assert.That(space.TryTranslate(5UL << 39, out _), Is.False);
        Assert.That(space.TryTranslate(UserPage, out _), Is.True);
    }

    [Test]
    public void The_root_ignores_CR3_flag_and_PCID_bits()
    {
        var space = new AddressSpace(_memory, PagingArchitecture.X64, _root | 0x18 | 0x5);
        Assert.That(space.TryTranslate(UserPage, out var t), Is.True);
        Assert.That(t.PhysicalAddress, Is.EqualTo(0x10000UL));
    }

    [Test]
    public void Batch_translation_returns_each_address_including_duplicates_and_failures()
    {
        ulong[] addresses = [UserPage + 8, 0x1000, KernelHuge + 0x10, UserPage + 16, 0x0000_8000_0000_0000];
        var results = new PageTranslation?[addresses.Length];
        Space().Translate(addresses, results);
        Assert.That(results[0]?.PhysicalAddress, Is.EqualTo(0x10008UL));
        Assert.That(results[1], Is.Null);
        Assert.That(results[2]?.PhysicalAddress, Is.EqualTo(0x10UL));
        Assert.That(results[3]?.PhysicalAddress, Is.EqualTo(0x10010UL));
        Assert.That(results[4], Is.Null);
    }

    [Test]
    public void A_read_crossing_pages_gathers_both_frames()
    {
        _tables.Map(_root, 0x40_0000, 0x3_0000, 0x1000, X86Writable);
        _tables.Map(_root, 0x40_1000, 0x5_0000, 0x1000, X86Writable);
        for (int i = 0; i < 16; i++)
        {
            _memory.Bytes[0x3_0ff0 + i] = (byte)(0xa0 + i);
            _memory.Bytes[0x5_0000 + i] = (byte)(0xb0 + i);
        }
        var buffer = new byte[32];
        Assert.That(Space().Read(0x40_0ff0, buffer), Is.EqualTo(32));
        Assert.That(buffer[..16], Is.EqualTo(Enumerable.Range(0xa0, 16).Select(b => (byte)b).ToArray()));
        Assert.That(buffer[16..], Is.EqualTo(Enumerable.Range(0xb0, 16).Select(b => (byte)b).ToArray()));
    }

    [Test]
    public void A_request_with_an_unmapped_page_fails_or_is_zero_padded()
    {
        _tables.Map(_root, 0x40_0000, 0x3_0000, 0x1000, X86Writable);
        _memory.Bytes.AsSpan(0x3_0000, 0x1000).Fill(0x77);
        var space = Space();
        var buffer = new byte[0x2000];
        var batch = new[] { new MemoryRequest(0x40_0000, buffer) };
        space.Read(batch);
        Assert.That(batch[0].Succeeded, Is.False);

        buffer.AsSpan().Fill(0xff);
        space.Read(batch, MemoryFlags.ZeroPadOnFail);
        Assert.That(batch[0].Succeeded, Is.True);
        Assert.That(buffer[..0x1000].All(b => b == 0x77), Is.True);
        Assert.That(buffer[0x1000..].All(b => b == 0), Is.True);

        Assert.That(space.Read(0x40_0000, new byte[0x2000]), Is.EqualTo(0x1000), "the readable prefix");
    }

    [Test]
    public void A_batch_of_N_addresses_costs_one_physical_batch_per_level_and_one_for_data()
    {
        // 64 pages spread over 4 page tables and 2 page directories, all under one PML4 entry.
        const ulong Base = 0x0000_1000_0000_0000;
        var addresses = new List<ulong>();
        for (int i = 0; i < 64; i++)
        {
            ulong va = Base + (ulong)(i / 32) * 0x4000_0000 + (ulong)(i % 32 / 16) * 0x20_0000 + (ulong)(i % 16) * 0x1000;
            _tables.Map(_root, va, 0x10_0000 + (ulong)i * 0x2000, 0x1000, X86Writable);
            addresses.Add(va + 0x10);
        }
        var space = Space();
        var buffers = addresses.Select(_ => new byte[8]).ToArray();
        var batch = addresses.Select((a, i) => new MemoryRequest(a, buffers[i])).ToArray();
        _memory.ResetCounters();

        space.Read(batch);

        Assert.That(batch.All(r => r.Succeeded), Is.True);
        Assert.That(_memory.ReadCalls, Is.EqualTo(PagingArchitecture.X64.Levels.Count + 1));
        Assert.That(_memory.BatchSizes, Is.EqualTo(new[] { 1, 2, 4, 64, 64 }), "shared table entries are read once per level");
    }

    [Test]
    public void Physically_contiguous_pages_are_read_with_one_request()
    {
        for (int i = 0; i < 8; i++)
            _tables.Map(_root, 0x60_0000 + (ulong)i * 0x1000, 0x40_0000 + (ulong)i * 0x1000, 0x1000);
        Random.Shared.NextBytes(_memory.Bytes.AsSpan(0x40_0000, 0x8000));
        var space = Space();
        var buffer = new byte[0x7000];
        _memory.ResetCounters();
        Assert.That(space.Read(0x60_0800, buffer), Is.EqualTo(buffer.Length));
        Assert.That(_memory.BatchSizes[^1], Is.EqualTo(1));
        Assert.That(buffer, Is.EqualTo(_memory.Bytes.AsSpan(0x40_0800, 0x7000).ToArray()));
    }

    [Test]
    public void The_translation_cache_answers_repeated_walks_and_NoCache_bypasses_it()
    {
        var metrics = new MemoryMetrics();
        var tlb = new TranslationCache(64, CacheValidity.Forever, metrics);
        var space = Space(tlb);
        var buffer = new byte[8];
        Assert.That(space.Read(UserPage, buffer), Is.EqualTo(8));
        Assert.That(tlb.Misses, Is.EqualTo(1));

        _memory.ResetCounters();
        Assert.That(space.Read(UserPage + 0x100, buffer), Is.EqualTo(8));
        Assert.That(_memory.ReadCalls, Is.EqualTo(1), "data only: the translation came from the TLB");
        Assert.That(tlb.Hits, Is.EqualTo(1));

        _memory.ResetCounters();
        Assert.That(space.Read(UserPage, buffer, MemoryFlags.NoCache), Is.EqualTo(8));
        Assert.That(_memory.ReadCalls, Is.EqualTo(5));
        Assert.That(tlb.Hits + tlb.Misses, Is.EqualTo(2), "NoCache neither looks up nor counts");
        Assert.That(metrics.TlbHits, Is.EqualTo(1));
        Assert.That(metrics.TlbMisses, Is.EqualTo(1));
    }

    [Test]
    public void A_shared_translation_cache_keeps_address_spaces_apart()
    {
        ulong otherRoot = _tables.NewRoot();
        _tables.Map(otherRoot, UserPage, 0x9_0000, 0x1000, X86User);
        var tlb = new TranslationCache(64, CacheValidity.Forever);
        var first = Space(tlb);
        var second = new AddressSpace(_memory, PagingArchitecture.X64, otherRoot, tlb: tlb);
        Assert.That(first.TryTranslate(UserPage, out var a), Is.True);
        Assert.That(second.TryTranslate(UserPage, out var b), Is.True);
        Assert.That(first.TryTranslate(UserPage, out var c), Is.True);
        Assert.That((a.PhysicalAddress, b.PhysicalAddress, c.PhysicalAddress), Is.EqualTo((0x10000UL, 0x9_0000UL, 0x10000UL)));
        Assert.That(tlb.Hits, Is.EqualTo(1));
    }

    [Test]
    public void Writes_land_at_the_translated_address_and_untranslatable_requests_write_nothing()
    {
        var space = Space();
        byte[] data = [1, 2, 3, 4];
        var batch = new[]
        {
            new MemoryRequest(UserPage + 0xffc, data),
            new MemoryRequest(UserPage + 0xffe, new byte[] { 9, 9, 9, 9 }), // runs into an unmapped page
        };
        space.Write(batch);
        Assert.That(batch[0].Succeeded, Is.True);
        Assert.That(batch[1].Succeeded, Is.False);
        Assert.That(_memory.Bytes.AsSpan(0x10ffc, 4).ToArray(), Is.EqualTo(data), "the failed request did not write its first half");
    }

    [Test]
    public void A_read_only_physical_memory_refuses_writes()
    {
        _memory.ReadOnly = true;
        var batch = new[] { new MemoryRequest(UserPage, new byte[4]) };
        Assert.That(() => Space().Write(batch), Throws.TypeOf<NotSupportedException>());
    }

    [Test]
    public void A_high_root_is_refused_where_the_architecture_has_none()
    {
        Assert.That(() => new AddressSpace(_memory, PagingArchitecture.X64, _root, directoryTableBaseHigh: 0x1000),
            Throws.ArgumentException.With.Message.Contains("x64"));
    }

    [Test]
    public void Reads_at_the_top_of_the_address_space_do_not_overflow()
    {
        _tables.Map(_root, 0xffff_ffff_ffff_f000, 0x7000, 0x1000);
        _memory.Bytes[0x7fff] = 0x42;
        var buffer = new byte[4];
        Assert.That(Space().Read(0xffff_ffff_ffff_fffc, buffer), Is.EqualTo(4));
        Assert.That(buffer[3], Is.EqualTo(0x42));
        Assert.That(Space().Read(0xffff_ffff_ffff_fffe, buffer), Is.EqualTo(2), "cut at 2^64");
    }

    [Test]
    public void Reads_with_translation_cache_hits_do_not_allocate()
    {
        var space = Space(new TranslationCache(64, CacheValidity.Forever));
        Span<byte> buffer = stackalloc byte[64];
        _memory.Recording = false;
        const int Reads = 20_000;
        for (int i = 0; i < 100; i++)
            space.Read(UserPage + 0x40, buffer);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < Reads; i++)
            space.Read(UserPage + 0x40, buffer);
        // Less than a byte per read: the runtime's own one-off allocations (tiered JIT) pass, one object per read cannot.
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.LessThan(Reads));
    }

    [Test]
    public void A_long_read_through_a_large_page_looks_the_translation_up_once()
    {
        var tlb = new TranslationCache(64, CacheValidity.Forever);
        var space = Space(tlb);
        var buffer = new byte[0x10_0000];
        Assert.That(space.Read(KernelHuge + 0x10_0000, buffer), Is.EqualTo(buffer.Length));
        long hits = tlb.Hits, misses = tlb.Misses;
        _memory.ResetCounters();
        Assert.That(space.Read(KernelHuge + 0x10_0000, buffer), Is.EqualTo(buffer.Length));
        Assert.That(buffer, Is.EqualTo(_memory.Bytes.AsSpan(0x10_0000, buffer.Length).ToArray()));
        Assert.That((tlb.Hits - hits, tlb.Misses - misses), Is.EqualTo((1L, 0L)), "one lookup for 256 pages");
        Assert.That(_memory.BatchSizes, Is.EqualTo(new[] { 1 }), "one physical request for the data");
    }
}
