using Introspect.Core.Caching;
using Introspect.Core.Translation;

namespace Introspect.Core.Tests.Caching;

public sealed class TranslationCacheTests
{
    [Test]
    public void A_translation_is_found_for_every_address_of_its_page_and_root_only()
    {
        var tlb = new TranslationCache(64, CacheValidity.Forever);
        tlb.Add(0x1000, new PageTranslation(0x7fff_0000_5123, 0x9123, 0x1000, PageFlags.Writable | PageFlags.User));
        Assert.That(tlb.TryGet(0x1000, 0x7fff_0000_5ff8, out var t), Is.True);
        Assert.That(t, Is.EqualTo(new PageTranslation(0x7fff_0000_5ff8, 0x9ff8, 0x1000, PageFlags.Writable | PageFlags.User)));
        Assert.That(tlb.TryGet(0x2000, 0x7fff_0000_5ff8, out _), Is.False, "another address space");
        Assert.That(tlb.TryGet(0x1000, 0x7fff_0000_6000, out _), Is.False, "another page");
        Assert.That((tlb.Hits, tlb.Misses), Is.EqualTo((1L, 2L)));
    }

    [Test]
    public void A_large_page_answers_for_its_2M_around_the_address_walked()
    {
        var tlb = new TranslationCache(64, CacheValidity.Forever);
        // A 1 GiB page at physical 0x4000_0000, walked at an address 0x32_1123 into it.
        tlb.Add(1, new PageTranslation(0xffff_8880_0032_1123, 0x4032_1123, 0x4000_0000, PageFlags.Writable | PageFlags.Large));
        Assert.That(tlb.TryGet(1, 0xffff_8880_0020_0000, out var t), Is.True);
        Assert.That((t.PhysicalAddress, t.PageSize), Is.EqualTo((0x4020_0000UL, 0x4000_0000UL)));
        Assert.That(tlb.TryGet(1, 0xffff_8880_003f_ffff, out t), Is.True);
        Assert.That(t.PhysicalAddress, Is.EqualTo(0x403f_ffffUL));
        Assert.That(tlb.TryGet(1, 0xffff_8880_0040_0000, out _), Is.False, "the next 2 MiB of the page has its own entry");
        Assert.That(tlb.TryGet(2, 0xffff_8880_0032_1000, out _), Is.False, "another address space");
    }

    [Test]
    public void The_buffer_is_bounded()
    {
        var tlb = new TranslationCache(100, CacheValidity.Forever);
        Assert.That(tlb.Capacity, Is.EqualTo(128));
        for (ulong page = 0; page < 10_000; page++)
            tlb.Add(0x1000, new PageTranslation(page << 12, page << 12, 0x1000, PageFlags.None));
        int found = 0;
        for (ulong page = 0; page < 10_000; page++)
            found += tlb.TryGet(0x1000, page << 12, out _) ? 1 : 0;
        Assert.That(found, Is.LessThanOrEqualTo(tlb.Capacity).And.GreaterThan(0));
    }

    [Test]
    public void Validity_and_clearing_forget_translations()
    {
        var generation = new CacheGeneration();
        var metrics = new MemoryMetrics();
        var tlb = new TranslationCache(16, CacheValidity.ForGeneration(generation), metrics);
        tlb.Add(1, new PageTranslation(0x5000, 0x9000, 0x1000, PageFlags.None));
        Assert.That(tlb.TryGet(1, 0x5000, out _), Is.True);
        generation.Advance();
        Assert.That(tlb.TryGet(1, 0x5000, out _), Is.False);
        tlb.Add(1, new PageTranslation(0x5000, 0x9000, 0x1000, PageFlags.None));
        tlb.Clear();
        Assert.That(tlb.TryGet(1, 0x5000, out _), Is.False);
        Assert.That((metrics.TlbHits, metrics.TlbMisses), Is.EqualTo((1L, 2L)));
    }

    [Test]
    public void A_translation_stamped_before_a_change_is_not_trusted_after_it()
    {
        var generation = new CacheGeneration();
        var tlb = new TranslationCache(16, CacheValidity.ForGeneration(generation));
        long stamp = generation.Current;
        generation.Advance(); // the tables changed while the walk ran
        tlb.Add(1, new PageTranslation(0x5000, 0x9000, 0x1000, PageFlags.None), stamp);
        Assert.That(tlb.TryGet(1, 0x5000, out _), Is.False);
    }

    [Test]
    public void Many_threads_share_one_buffer()
    {
        var tlb = new TranslationCache(1024, CacheValidity.Forever);
        int wrong = 0;
        Parallel.For(0, 8, worker =>
        {
            for (ulong i = 0; i < 20_000; i++)
            {
                ulong page = (i % 512) << 12;
                ulong root = (ulong)worker << 12;
                tlb.Add(root, new PageTranslation(page, page ^ root << 20, 0x1000, PageFlags.None));
                if (tlb.TryGet(root, page + 8, out var t) && t.PhysicalAddress != (page ^ root << 20) + 8)
                    Interlocked.Increment(ref wrong);
            }
        });
        Assert.That(wrong, Is.Zero);
    }
}
