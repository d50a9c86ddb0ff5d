using System.Globalization;
using System.Text.RegularExpressions;
using Introspect.Abi;
using Introspect.Core.Caching;
using Introspect.Core.Memory;
using Introspect.Core.Translation;
using Introspect.TestSupport;

namespace Introspect.Core.Tests.Translation;

/// <summary>Translation on the real Debian 6.1 guest (nokaslr), checked against what the guest printed.</summary>
/// <remarks>
/// The guest's CR4 has LA57 (bit 12) set: its kernel runs 5-level paging, and the tests choose the paging from
/// that register as an OS layer would.
/// </remarks>
public sealed partial class LinuxImageTests
{
    private const int CommOffset = 0xba0; // task_struct.comm on 6.1.0-56-amd64, from its BTF

    private static FilePhysicalMemory _image = null!;
    private static Oracle _oracle = null!;

    [OneTimeSetUp]
    public static void OpenImage()
    {
        _image = new FilePhysicalMemory(TestInputs.LinuxRawImage);
        _oracle = Oracle.Load();
    }

    [OneTimeTearDown]
    public static void CloseImage() => _image?.Dispose();

    private static AddressSpace KernelSpace(IPhysicalMemory? physical = null, TranslationCache? tlb = null) =>
        new(physical ?? _image, _oracle.Paging, _oracle.Cr3, tlb: tlb);

    [Test]
    public void Linux_banner_reads_as_the_guests_proc_version()
    {
        string? banner = KernelSpace().ReadUtf8String(_oracle.Symbols["linux_banner"], 512);
        Assert.That(banner, Is.Not.Null);
        Assert.That(banner!.TrimEnd('\n'), Is.EqualTo(_oracle.ProcVersion));
    }

    [Test]
    public void Kernel_text_translates_to_where_iomem_puts_kernel_code()
    {
        ulong text = _oracle.Symbols["_text"];
        var space = KernelSpace();
        Assert.That(space.TryTranslate(text, out var t), Is.True);
        Assert.That(t.PhysicalAddress, Is.EqualTo(_oracle.KernelCodePhysical));
        Assert.That(space.TryTranslate(_oracle.Symbols["linux_banner"], out var banner), Is.True);
        Assert.That(banner.PhysicalAddress, Is.EqualTo(_oracle.Symbols["linux_banner"] - text + _oracle.KernelCodePhysical));
    }

    [Test]
    public void The_paging_mode_matters()
    {
        Assert.That(_oracle.Paging, Is.SameAs(PagingArchitecture.X64FiveLevel), "CR4.LA57 is set in this guest");
        var fourLevel = new AddressSpace(_image, PagingArchitecture.X64, _oracle.Cr3);
        Assert.That(fourLevel.ReadUtf8String(_oracle.Symbols["linux_banner"], 64), Is.Not.EqualTo(KernelSpace().ReadUtf8String(_oracle.Symbols["linux_banner"], 64)));
    }

    [Test]
    public void Init_task_is_swapper()
    {
        Assert.That(KernelSpace().ReadUtf8String(_oracle.Symbols["init_task"] + CommOffset, 16), Is.EqualTo("swapper/0"));
    }

    [Test]
    public void The_kernels_own_top_table_translates_the_kernel_half_the_same_way()
    {
        // init_top_pgt is itself in the kernel image: its physical address is a root too.
        var space = KernelSpace();
        Assert.That(space.TryTranslate(_oracle.Symbols["init_top_pgt"], out var pgt), Is.True);
        var initSpace = new AddressSpace(_image, _oracle.Paging, pgt.PhysicalAddress);
        foreach (var name in new[] { "_text", "linux_banner", "init_task", "init_mm", "page_offset_base" })
        {
            Assert.That(initSpace.TryTranslate(_oracle.Symbols[name], out var a), Is.True, name);
            Assert.That(space.TryTranslate(_oracle.Symbols[name], out var b), Is.True, name);
            Assert.That(a.PhysicalAddress, Is.EqualTo(b.PhysicalAddress), name);
        }
    }

    [Test]
    public void The_direct_map_shows_physical_memory()
    {
        var space = KernelSpace();
        Assert.That(space.TryRead(_oracle.Symbols["page_offset_base"], out ulong pageOffsetBase), Is.True);
        Assert.That(pageOffsetBase, Is.EqualTo(_oracle.Paging == PagingArchitecture.X64FiveLevel ? 0xff11_0000_0000_0000UL : 0xffff_8880_0000_0000UL),
            "nokaslr keeps the default direct-map base of the paging mode");
        var throughMap = new byte[0x3000];
        var physical = new byte[0x3000];
        Assert.That(space.Read(pageOffsetBase + 0x1000000, throughMap), Is.EqualTo(throughMap.Length));
        Assert.That(_image.Read(0x1000000, physical), Is.EqualTo(physical.Length));
        Assert.That(throughMap, Is.EqualTo(physical));
    }

    [Test]
    public void The_page_map_holds_the_kernel_text_read_only_and_executable()
    {
        ulong text = _oracle.Symbols["_text"], etext = _oracle.Symbols["_etext"];
        var map = KernelSpace().GetPageMap(0xffff_ffff_8000_0000);
        Assert.That(map.Truncated, Is.False);
        var run = map.Find(text);
        Assert.That(run, Is.Not.Null);
        Assert.That(run!.Value.Contains(etext - 1), Is.True, $"one run from _text to _etext; found {run}");
        Assert.That(run.Value.Flags & (PageFlags.Writable | PageFlags.User | PageFlags.PrivilegedNoExecute), Is.EqualTo(PageFlags.None));
        Assert.That(map.Find(_oracle.Symbols["init_task"])!.Value.Flags & PageFlags.Writable, Is.EqualTo(PageFlags.Writable), "kernel data");
    }

    [Test]
    public void The_page_map_covers_all_RAM_in_the_direct_map_with_the_kernel_image_aliases_read_only()
    {
        var space = KernelSpace();
        Assert.That(space.TryRead(_oracle.Symbols["page_offset_base"], out ulong pageOffsetBase), Is.True);
        var map = space.GetPageMap();
        Assert.That(map.Truncated, Is.False);

        // Every byte of iomem's "System RAM" above 1 MiB is in the direct map, never executable.
        var (ramFirst, ramLast) = _oracle.Iomem["System RAM"][^1];
        ulong covered = pageOffsetBase + ramFirst;
        while (covered <= pageOffsetBase + ramLast)
        {
            var run = map.Find(covered);
            Assert.That(run, Is.Not.Null, $"0x{covered:x} is not mapped");
            Assert.That(run!.Value.Flags & PageFlags.NoExecute, Is.EqualTo(PageFlags.NoExecute), $"{run}");
            covered = run.Value.Last + 1;
        }

        // The kernel keeps the direct-map aliases of its code and rodata read-only, exactly as iomem places them.
        foreach (var name in new[] { "Kernel code", "Kernel rodata" })
        {
            var (first, last) = _oracle.Iomem[name][0];
            var alias = map.Find(pageOffsetBase + first);
            Assert.That(alias, Is.Not.Null, name);
            Assert.That(alias!.Value.Flags & PageFlags.Writable, Is.EqualTo(PageFlags.None), $"{name}: {alias}");
            Assert.That(alias.Value.Contains(pageOffsetBase + last), Is.True, $"{name}: {alias}");
        }
        var rodata = _oracle.Iomem["Kernel rodata"][0];
        ulong rodataVirtual = _oracle.Symbols["_text"] + (rodata.First - _oracle.KernelCodePhysical);
        Assert.That(map.Find(rodataVirtual), Is.EqualTo(new PageRun(rodataVirtual, rodata.Last - rodata.First + 1,
            PageFlags.NoExecute | PageFlags.PrivilegedNoExecute)), "the kernel image's rodata mapping is exactly iomem's range");
    }

    [Test]
    public void A_page_cache_and_a_translation_cache_give_the_same_bytes_and_save_the_walks()
    {
        var metrics = new MemoryMetrics();
        using var cached = new PageCache(new MeteredMemory(new NonDisposing(_image), metrics), 1024, CacheValidity.Forever, metrics);
        var tlb = new TranslationCache(1024, CacheValidity.Forever, metrics);
        var space = KernelSpace(cached, tlb);
        ulong task = _oracle.Symbols["init_task"];

        Assert.That(space.ReadUtf8String(task + CommOffset, 16), Is.EqualTo("swapper/0"));
        var before = metrics.Snapshot();
        Assert.That(space.ReadUtf8String(task + CommOffset, 16), Is.EqualTo("swapper/0"));
        var delta = metrics.Snapshot() - before;
        Assert.That(delta.Reads, Is.Zero, "page and translation both cached");
        Assert.That(delta.TlbHits, Is.EqualTo(1));
        Assert.That(delta.CacheHits, Is.EqualTo(1));
    }

    [Test]
    public void Searching_the_direct_map_finds_the_marker_where_physical_memory_has_it()
    {
        var pattern = BytePattern.FromText("MEMFORENSICS_TEST_MARKER_7f3a");
        var bytes = File.ReadAllBytes(TestInputs.LinuxRawImage);
        var expected = new List<ulong>();
        for (int at = 0; ;)
        {
            int found = bytes.AsSpan(at).IndexOf("MEMFORENSICS_TEST_MARKER_7f3a"u8);
            if (found < 0)
                break;
            expected.Add((ulong)(at + found));
            at += found + 1;
        }
        Assert.That(expected, Is.Not.Empty);

        Assert.That(MemorySearch.Search(_image, pattern), Is.EqualTo(expected));

        var space = KernelSpace();
        Assert.That(space.TryRead(_oracle.Symbols["page_offset_base"], out ulong pageOffsetBase), Is.True);
        var hits = MemorySearch.Search(space, pattern, [(pageOffsetBase, pageOffsetBase + (ulong)bytes.Length)]);
        Assert.That(hits.Select(h => h - pageOffsetBase), Is.EqualTo(expected));
    }

    /// <summary>Keeps the shared image open when a wrapper that owns its inner memory is disposed.</summary>
    private sealed class NonDisposing(IPhysicalMemory inner) : IPhysicalMemory
    {
        public PhysicalMemoryMetadata Metadata => inner.Metadata;
        public MemoryMap MemoryMap => inner.MemoryMap;
        public void SetMemoryMap(MemoryMap map) => inner.SetMemoryMap(map);
        public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => inner.Read(batch, flags);
        public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => inner.Write(batch, flags);
        public void Dispose() { }
    }

    /// <summary>What the guest printed before the dump, and its registers at the dump.</summary>
    private sealed partial class Oracle
    {
        public required string ProcVersion { get; init; }
        public required Dictionary<string, ulong> Symbols { get; init; }
        public required ulong KernelCodePhysical { get; init; }
        public required ulong Cr3 { get; init; }
        public required PagingArchitecture Paging { get; init; }
        public required Dictionary<string, List<(ulong First, ulong Last)>> Iomem { get; init; }

        public static Oracle Load()
        {
            var lines = File.ReadAllLines(TestInputs.TestData("linux", "oracle-serial.txt"));
            int begin = Array.IndexOf(lines, "=== ORACLE BEGIN");
            var symbols = new Dictionary<string, ulong>();
            ulong? kernelCode = null;
            var iomem = new Dictionary<string, List<(ulong First, ulong Last)>>();
            foreach (var line in lines)
            {
                var symbol = SymbolLine().Match(line);
                if (symbol.Success)
                    symbols[symbol.Groups[3].Value] = ulong.Parse(symbol.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                var range = IomemLine().Match(line);
                if (range.Success)
                {
                    ulong first = ulong.Parse(range.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                    ulong last = ulong.Parse(range.Groups[2].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                    string name = range.Groups[3].Value.TrimEnd('\r');
                    if (!iomem.TryGetValue(name, out var ranges))
                        iomem[name] = ranges = [];
                    ranges.Add((first, last));
                    if (name == "Kernel code")
                        kernelCode = first;
                }
            }
            var registers = File.ReadAllText(TestInputs.TestData("linux", "registers-at-dump.txt"));
            var cr3 = Cr3Register().Match(registers);
            var cr4 = Cr4Register().Match(registers);
            Assert.That(begin, Is.GreaterThanOrEqualTo(0));
            Assert.That(kernelCode, Is.Not.Null);
            Assert.That(cr3.Success && cr4.Success, Is.True);
            bool la57 = (ulong.Parse(cr4.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture) & (1UL << 12)) != 0;
            return new Oracle
            {
                ProcVersion = lines[begin + 1].TrimEnd('\r'),
                Symbols = symbols,
                KernelCodePhysical = kernelCode!.Value,
                Cr3 = ulong.Parse(cr3.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                Paging = la57 ? PagingArchitecture.X64FiveLevel : PagingArchitecture.X64,
                Iomem = iomem,
            };
        }

        [GeneratedRegex(@"^([0-9a-f]{16}) ([A-Za-z]) (\S+)\s*$")]
        private static partial Regex SymbolLine();

        [GeneratedRegex(@"^\s*([0-9a-f]+)-([0-9a-f]+) : (.+)$")]
        private static partial Regex IomemLine();

        [GeneratedRegex(@"CR3=([0-9a-f]+)")]
        private static partial Regex Cr3Register();

        [GeneratedRegex(@"CR4=([0-9a-f]+)")]
        private static partial Regex Cr4Register();
    }
}
