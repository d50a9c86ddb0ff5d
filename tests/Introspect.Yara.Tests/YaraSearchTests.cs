using Introspect.Core;
using Introspect.TestSupport;

namespace Introspect.Yara.Tests;

public class YaraSearchTests
{
    private const string Rules =
        "rule marker { strings: $m = \"MEMFORENSICS_TEST_MARKER_7f3a\" condition: $m }\n" +
        "rule banner : kernel { strings: $b = \"Linux version 6.1\" $w = \"MEMFORENSICS\" wide condition: any of them }\n";

    private string _scratch = null!;

    [SetUp]
    public void CreateScratch() => _scratch = Directory.CreateTempSubdirectory("introspect-yara-").FullName;

    [TearDown]
    public void DeleteScratch() => Directory.Delete(_scratch, recursive: true);

    [Test]
    public void Physical_memory_matches_are_those_the_yara_tool_finds_in_the_raw_image()
    {
        var rulesPath = Path.Combine(_scratch, "rules.yar");
        File.WriteAllText(rulesPath, Rules);
        var tool = YaraRulesTests.RunYaraTool("-s", rulesPath, TestInputs.LinuxRawImage);
        Assert.That(tool.ExitCode, Is.Zero, tool.Error);
        var expected = YaraRulesTests.ParseToolMatches(tool.Output);
        Assert.That(expected, Has.Count.GreaterThan(3), "the marker and the banner are in the image");

        using var machine = Machine.Open($"coredump:path=\"{TestInputs.LinuxRawImage}\"");
        using var rules = YaraRules.CompileFile(rulesPath);
        var matches = machine.SearchYara(rules);

        Assert.That(matches.Select(m => (m.Rule, m.StringIdentifier!, m.Offset)), Is.EquivalentTo(expected));
        Assert.That(matches.All(m => m.PhysicalAddress == m.Offset && m.VirtualAddress is null && m.Pid is null));
        var first = matches.First(m => m.Rule == "marker");
        Assert.That(System.Text.Encoding.ASCII.GetString(first.Data), Is.EqualTo("MEMFORENSICS_TEST_MARKER_7f3a"));
        Assert.That(machine.Memory.Read(first.PhysicalAddress!.Value, first.Length), Is.EqualTo(first.Data));
    }

    [Test]
    public void Matches_across_batch_borders_are_found_once_with_small_batches()
    {
        using var machine = Machine.Open($"coredump:path=\"{TestInputs.LinuxRawImage}\"");
        using var rules = YaraRules.Compile(Rules);
        var whole = machine.SearchYara(rules);

        // 64 KiB batches: two thousand borders in the way.
        var small = machine.SearchYara(rules, new YaraScanOptions { ChunkSize = 1 << 16, Overlap = 64 });

        Assert.That(small.Select(m => (m.Rule, m.StringIdentifier, m.Offset)), Is.EquivalentTo(whole.Select(m => (m.Rule, m.StringIdentifier, m.Offset))));
    }

    [Test]
    public void A_match_across_a_border_is_found_once_in_the_overlap_and_missed_without_one()
    {
        var bytes = new byte[3 << 16];
        "needle-across-the-border"u8.CopyTo(bytes.AsSpan((1 << 16) - 5));
        "needle-across-the-border"u8.CopyTo(bytes.AsSpan((2 << 16) - 10));
        "needle-across-the-border"u8.CopyTo(bytes.AsSpan((2 << 16) + 16)); // inside the first overlap's reach, and the next batch's own
        using var machine = Machine.Open(new BytesMemory(bytes));
        using var rules = YaraRules.Compile("rule n { strings: $n = \"needle-across-the-border\" condition: $n }");

        var overlapped = machine.SearchYara(rules, new YaraScanOptions { ChunkSize = 1 << 16, Overlap = 64 });
        var cut = machine.SearchYara(rules, new YaraScanOptions { ChunkSize = 1 << 16, Overlap = 0 });

        Assert.That(overlapped.Select(m => m.Offset), Is.EqualTo(new[] { (1UL << 16) - 5, (2UL << 16) - 10, (2UL << 16) + 16 }));
        Assert.That(cut.Select(m => m.Offset), Is.EqualTo(new[] { (2UL << 16) + 16 }));
    }

    [Test]
    public void Unreadable_pages_scan_as_zeros_and_never_fail_the_scan()
    {
        var bytes = new byte[1 << 18];
        "findme-after-a-hole"u8.CopyTo(bytes.AsSpan(0x30000));
        var memory = new BytesMemory(bytes) { Unreadable = { 0x10000, 0x11000, 0x2f000 } };
        using var machine = Machine.Open(memory);
        using var rules = YaraRules.Compile("rule f { strings: $f = \"findme-after-a-hole\" condition: $f }");

        var matches = machine.SearchYara(rules);

        Assert.That(matches.Select(m => m.Offset), Is.EqualTo(new[] { 0x30000UL }));
    }

    [Test]
    public void A_window_limits_the_scan_to_its_addresses()
    {
        using var machine = Machine.Open($"coredump:path=\"{TestInputs.LinuxRawImage}\"");
        using var rules = YaraRules.Compile(Rules);

        var matches = machine.SearchYara(rules, new YaraScanOptions { Start = 0x29e0000, End = 0x29f0000 });

        Assert.That(matches.Select(m => m.Offset), Is.EqualTo(new[] { 0x29e6000UL }));
    }

    [Test]
    public void Bad_options_are_refused_with_the_limit_named()
    {
        using var machine = Machine.Open($"coredump:path=\"{TestInputs.LinuxRawImage}\"");
        using var rules = YaraRules.Compile(Rules);

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => machine.SearchYara(rules, new YaraScanOptions { ChunkSize = 100 }))!;
        Assert.That(error.Message, Does.Contain("64 KiB"));
    }
}
