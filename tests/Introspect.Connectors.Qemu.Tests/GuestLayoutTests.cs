namespace Introspect.Connectors.Qemu.Tests;

public sealed class GuestLayoutTests
{
    private static string Mtree(string name) => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "TestData", name));

    // The flat views QEMU 7.2 printed for these machines (TestData), and the rules for the same machines, agree.
    [TestCase("mtree-pc-128M.txt", "pc", 128UL << 20)]
    [TestCase("mtree-pc-4G.txt", "pc", 4UL << 30)]
    [TestCase("mtree-q35-4G.txt", "q35", 4UL << 30)]
    public void Machine_rules_agree_with_qemus_own_flat_view(string file, string machine, ulong ram)
    {
        var fromQemu = GuestLayout.FromMtree(Mtree(file), out var region);
        var fromRules = GuestLayout.FromMachineRules(machine, ram, null, out _);
        Assert.That(region, Is.EqualTo("pc.ram"));
        Assert.That(fromRules, Is.EqualTo(fromQemu));
    }

    [Test]
    public void The_notes_table_for_4_GiB_guests()
    {
        Assert.That(GuestLayout.FromMachineRules("pc-i440fx-7.2", 4UL << 30, null, out _)[^1], Is.EqualTo(new RamRange(1UL << 32, 1UL << 30, 0xc000_0000)));
        Assert.That(GuestLayout.FromMachineRules("pc-q35-7.2", 4UL << 30, null, out _)[^1], Is.EqualTo(new RamRange(1UL << 32, 2UL << 30, 0x8000_0000)));
    }

    [Test]
    public void Max_ram_below_4g_moves_the_hole_as_in_the_highmem_fixture()
    {
        var ranges = GuestLayout.FromMachineRules("pc", 1UL << 30, 512UL << 20, out var description);
        Assert.That(ranges, Is.EqualTo(new[]
        {
            new RamRange(0, 0xa0000, 0),
            new RamRange(0x100000, (512UL << 20) - 0x100000, 0x100000),
            new RamRange(1UL << 32, 512UL << 20, 512UL << 20),
        }));
        Assert.That(description, Does.Contain("below 4 GiB: 512 MiB"));
    }

    [Test]
    public void Tiny_guests_and_unknown_machines()
    {
        Assert.That(GuestLayout.FromMachineRules("pc", 0x8_0000, null, out _), Is.EqualTo(new[] { new RamRange(0, 0x8_0000, 0) }));
        Assert.That(() => GuestLayout.FromMachineRules("virt", 1UL << 30, null, out _),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains("'virt'").And.Message.Contains("map_base="));
    }

    [Test]
    public void The_largest_ram_region_wins_over_video_ram()
    {
        const string Text = """
            FlatView #0
             AS "memory", root: system
             Root memory region: system
              0000000000000000-000000000009ffff (prio 0, ram): mem
              0000000000100000-0000000007ffffff (prio 0, ram): mem @0000000000100000
              00000000fd000000-00000000fdffffff (prio 1, ram): vga.vram
              00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios
            """;
        var ranges = GuestLayout.FromMtree(Text, out var region);
        Assert.That(region, Is.EqualTo("mem"));
        Assert.That(ranges, Is.EqualTo(new[] { new RamRange(0, 0xa0000, 0), new RamRange(0x100000, 0x7f00000, 0x100000) }));
    }

    [Test]
    public void Malformed_flat_views_are_refused_with_what_was_seen()
    {
        Assert.That(() => GuestLayout.FromMtree("", out _), Throws.TypeOf<InvalidDataException>().With.Message.Contains("no flat view"));
        Assert.That(() => GuestLayout.FromMtree("FlatView #0\n AS \"memory\", root: system\n  0-fff (prio 0, i/o): x\n", out _),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains("maps no RAM"));
        Assert.That(() => GuestLayout.FromMtree("FlatView #0\n AS \"memory\", root: system\n  2000-0fff (prio 0, ram): x\n", out _),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains("START <= END"));
        Assert.That(() => GuestLayout.FromMtree("FlatView #0\n AS \"memory\", root: system\n  0-fff (prio 0, ram): x @zz\n", out _),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains("offset"));
        Assert.That(() => GuestLayout.FromMtree("FlatView #0\n AS \"memory\", root: system\n  0-ffffffffffffffff (prio 0, ram): x\n", out _),
            Throws.TypeOf<InvalidDataException>());
    }

    [Test]
    public void A_huge_reply_takes_a_bounded_number_of_ranges()
    {
        var text = new System.Text.StringBuilder("FlatView #0\n AS \"memory\", root: system\n");
        for (int i = 0; i < 10_000; i++)
            text.Append(System.Globalization.CultureInfo.InvariantCulture, $"  {(ulong)i * 0x2000:x16}-{(ulong)i * 0x2000 + 0xfff:x16} (prio 0, ram): r @{(ulong)i * 0x1000:x16}\n");
        Assert.That(GuestLayout.FromMtree(text.ToString(), out _), Has.Count.EqualTo(4096));
    }
}
