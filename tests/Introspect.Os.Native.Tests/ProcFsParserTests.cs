using Introspect.Abi;

namespace Introspect.Os.Native.Tests;

public sealed class ProcFsParserTests
{
    [Test]
    public void Stat_with_spaces_and_parentheses_in_the_name_is_parsed_after_the_last_parenthesis()
    {
        const string Stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 123456 1000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        var stat = ProcFs.ParseStat(Stat);
        Assert.That(stat, Is.Not.Null);
        Assert.That(stat!.Value.Name, Is.EqualTo("a (weird) name"));
        Assert.That(stat.Value.State, Is.EqualTo('S'));
        Assert.That(stat.Value.ParentPid, Is.EqualTo(1));
        Assert.That(stat.Value.Threads, Is.EqualTo(3));
        Assert.That(stat.Value.StartTicks, Is.EqualTo(123456UL));
        Assert.That(stat.Value.IsKernelThread, Is.False);
    }

    [Test]
    public void A_kernel_thread_is_recognised_by_its_flags()
    {
        // PF_KTHREAD (0x200000) is set in kthreadd's flags 2129984 = 0x208040.
        const string Stat = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 0 1 0 0 0 0 0";
        Assert.That(ProcFs.ParseStat(Stat)!.Value.IsKernelThread, Is.True);
    }

    [TestCase("")]
    [TestCase("12 (truncated")]
    [TestCase("12 (x) S 1 2 3")]
    [TestCase("12 (x) SS 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0")]
    [TestCase("12 (x) S notanumber 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0")]
    [TestCase("12 (x) S 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99999999999999999999999 0 0")]
    public void Malformed_stat_gives_no_record(string text) =>
        Assert.That(ProcFs.ParseStat(text), Is.Null);

    [Test]
    public void Status_numbers_take_the_first_value_after_the_key()
    {
        const string Status = "Name:\tbash\nUid:\t1000\t1001\t1002\t1003\nThreads:\t7\n";
        Assert.That(ProcFs.ParseStatusNumber(Status, "Uid:"), Is.EqualTo(1000UL));
        Assert.That(ProcFs.ParseStatusNumber(Status, "Threads:"), Is.EqualTo(7UL));
        Assert.That(ProcFs.ParseStatusNumber(Status, "Gid:"), Is.Null);
        Assert.That(ProcFs.ParseStatusNumber("Uid:\t-5\n", "Uid:"), Is.Null);
    }

    [Test]
    public void Boot_time_comes_from_btime_and_absurd_values_are_refused()
    {
        Assert.That(ProcFs.ParseBootTime("cpu 1 2 3\nbtime 1700000000\n"), Is.EqualTo(DateTimeOffset.FromUnixTimeSeconds(1700000000)));
        Assert.That(ProcFs.ParseBootTime("btime 99999999999999999\n"), Is.Null);
        Assert.That(ProcFs.ParseBootTime("cpu 1\n"), Is.Null);
    }

    [Test]
    public void Start_ticks_never_overflow_a_date()
    {
        Assert.That(ProcFs.TicksSinceBoot(250, 100), Is.EqualTo(TimeSpan.FromSeconds(2.5).Ticks));
        Assert.That(() => DateTimeOffset.UnixEpoch.AddTicks(ProcFs.TicksSinceBoot(ulong.MaxValue, 100)), Throws.Nothing);
        Assert.That(ProcFs.TicksSinceBoot(100, 0), Is.EqualTo(TimeSpan.FromSeconds(100).Ticks));
    }

    [Test]
    public void Nul_separated_strings_keep_empty_ones_inside_and_drop_the_trailing_terminator()
    {
        Assert.That(ProcFs.ParseNulSeparated("a\0\0b c\0"u8.ToArray()), Is.EqualTo(new[] { "a", "", "b c" }));
        Assert.That(ProcFs.ParseNulSeparated([]), Is.Empty);
        Assert.That(ProcFs.ParseNulSeparated(null), Is.Null);
    }

    [Test]
    public void Huge_nul_separated_files_are_cut_at_the_string_cap()
    {
        var bytes = new byte[ProcFs.MaxStrings * 2];
        Assert.That(ProcFs.ParseNulSeparated(bytes)!, Has.Count.EqualTo(ProcFs.MaxStrings));
    }

    [Test]
    public void Maps_lines_are_parsed_with_paths_that_hold_spaces()
    {
        const string Maps = """
            55d4c7a00000-55d4c7a02000 r--p 00000000 08:01 1048602                    /usr/bin/my tool
            55d4c7a02000-55d4c7a07000 r-xp 00002000 08:01 1048602                    /usr/bin/my tool
            7ffd1c9f0000-7ffd1ca11000 rw-p 00000000 00:00 0                          [stack]
            7f0000000000-7f0008000000 rw-s 00000000 00:1b 2                          /dev/shm/guest (deleted)
            7f1000000000-7f1000001000 ---p 00000000 00:00 0
            """;
        var areas = ProcFs.ParseMaps(Maps, "maps");
        Assert.That(areas, Has.Count.EqualTo(5));
        Assert.That(areas[0], Is.EqualTo(new MemoryArea(0x55d4c7a00000, 0x55d4c7a02000, MemoryProtection.Read, 0, "/usr/bin/my tool")));
        Assert.That(areas[1].Protection, Is.EqualTo(MemoryProtection.Read | MemoryProtection.Execute));
        Assert.That(areas[1].Offset, Is.EqualTo(0x2000UL));
        Assert.That(areas[2].Path, Is.EqualTo("[stack]"));
        Assert.That(areas[3].Permissions, Is.EqualTo("rw-s"));
        Assert.That(areas[3].Path, Is.EqualTo("/dev/shm/guest (deleted)"));
        Assert.That(areas[4].Path, Is.Null);
        Assert.That(areas[4].Protection, Is.EqualTo(MemoryProtection.None));
    }

    [TestCase("zzzz-1000 r--p 00000000 08:01 1", "address range")]
    [TestCase("2000-1000 r--p 00000000 08:01 1", "address range")]
    [TestCase("1000 r--p 00000000 08:01 1", "address range")]
    [TestCase("1000-2000 r--p-x 00000000 08:01 1", "permissions")]
    [TestCase("1000-2000 r--p 0000zz00 08:01 1", "offset")]
    [TestCase("1000-2000 r--p 00000000", "inode")]
    [TestCase("1000-99999999999999999999 r--p 00000000 08:01 1", "address range")]
    public void Malformed_maps_lines_are_refused_naming_the_line_and_field(string line, string field) =>
        Assert.That(() => ProcFs.ParseMaps("1000-2000 r--p 00000000 08:01 1\n" + line, "/proc/7/maps"),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains("/proc/7/maps, line 2").And.Message.Contains(field));
}
