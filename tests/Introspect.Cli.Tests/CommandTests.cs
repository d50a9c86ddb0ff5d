using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Introspect.TestSupport;

namespace Introspect.Cli.Tests;

public class CommandTests
{
    private const long RamSize = 128L << 20;
    private const ulong LinuxBannerPhysical = 0x2161900; // linux_banner 0xffffffff82161900 in the oracle's kallsyms, kernel mapped at phys = virt - 0xffffffff80000000 (nokaslr)

    private static string RawChain => $"coredump:path=\"{TestInputs.LinuxRawImage}\"";
    private static string KdumpChain => $"coredump:path=\"{TestInputs.LinuxFlattenedKdump}\"";

    private string _scratch = null!;

    [SetUp]
    public void CreateScratch() => _scratch = Directory.CreateTempSubdirectory("introspect-cli-").FullName;

    [TearDown]
    public void DeleteScratch() => Directory.Delete(_scratch, recursive: true);

    [Test]
    public void Plugins_list_shows_the_built_in_connector_with_kind_version_abi_and_path()
    {
        var run = CliRun.Of("plugins", "list", "--json");

        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        using var json = JsonDocument.Parse(run.Output);
        var coredump = json.RootElement.GetProperty("plugins").EnumerateArray().Single(p => p.GetProperty("name").GetString() == "coredump");
        Assert.That(coredump.GetProperty("kind").GetString(), Is.EqualTo("connector"));
        Assert.That(coredump.GetProperty("abiVersion").GetInt32(), Is.EqualTo(Abi.IntrospectAbi.Version));
        Assert.That(coredump.GetProperty("version").GetString(), Does.Match(@"^\d+\.\d+"));
        Assert.That(File.Exists(coredump.GetProperty("path").GetString()));

        var table = CliRun.Of("plugins", "list");
        Assert.That(table.Output, Does.Contain("coredump").And.Contain("connector"));
    }

    [Test]
    public void Plugins_info_lists_the_connector_arguments()
    {
        var run = CliRun.Of("plugins", "info", "coredump");

        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        Assert.That(run.Output, Does.Contain("path (required)").And.Contain("format"));
    }

    [Test]
    public void Info_of_the_raw_image_gives_its_size_and_one_linear_range()
    {
        var run = CliRun.Of("info", "--chain", RawChain, "--json");

        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        using var json = JsonDocument.Parse(run.Output);
        var root = json.RootElement;
        Assert.That(root.GetProperty("connector").GetString(), Is.EqualTo("coredump"));
        Assert.That(root.GetProperty("format").GetString(), Is.EqualTo("raw"));
        Assert.That(root.GetProperty("maxAddress").GetUInt64(), Is.EqualTo((ulong)RamSize - 1));
        Assert.That(root.GetProperty("realSize").GetUInt64(), Is.EqualTo((ulong)RamSize));
        var map = root.GetProperty("memoryMap").EnumerateArray().Select(r => (r.GetProperty("base").GetUInt64(), r.GetProperty("size").GetUInt64())).ToList();
        Assert.That(map, Is.EqualTo(new[] { (0UL, (ulong)RamSize) }));
    }

    [Test]
    public void Info_of_the_kdump_covers_ram_video_memory_and_bios()
    {
        var run = CliRun.Of("info", "--chain", KdumpChain, "--json");

        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        using var json = JsonDocument.Parse(run.Output);
        var root = json.RootElement;
        Assert.That(root.GetProperty("format").GetString(), Does.Contain("kdump"));
        var map = root.GetProperty("memoryMap").EnumerateArray().Select(r => (Base: r.GetProperty("base").GetUInt64(), Size: r.GetProperty("size").GetUInt64())).ToList();
        Assert.That(map.Any(r => r.Base < 0x100000 && r.Base + r.Size > 0x100000), "low RAM is mapped");
        Assert.That(map.Any(r => r.Base <= 0xfd000000 && r.Base + r.Size > 0xfd000000), "video RAM is mapped");
        Assert.That(map.Any(r => r.Base <= 0xfffc0000 && r.Base + r.Size > 0xfffc0000), "the BIOS is mapped");
        Assert.That(root.GetProperty("maxAddress").GetUInt64(), Is.EqualTo(0xffffffffUL));

        var text = CliRun.Of("info", "--chain", KdumpChain);
        Assert.That(text.Output, Does.Contain("memory map").And.Contain("0xfd000000"));
    }

    [Test]
    public void Read_returns_the_kernel_banner_that_the_guest_printed_as_proc_version()
    {
        var procVersion = File.ReadLines(TestInputs.TestData("linux", "oracle-serial.txt")).SkipWhile(l => !l.StartsWith("=== ORACLE BEGIN", StringComparison.Ordinal)).Skip(1).First().TrimEnd('\r');

        foreach (var chain in new[] { RawChain, KdumpChain })
        {
            var run = CliRun.Of("read", "--chain", chain, "--phys", "0x" + LinuxBannerPhysical.ToString("x"), "--length", "512", "--format", "raw");

            Assert.That(run.ExitCode, Is.Zero, run.ToString());
            var banner = Encoding.ASCII.GetString(run.RawOutput);
            Assert.That(banner[..banner.IndexOf('\n', StringComparison.Ordinal)], Is.EqualTo(procVersion));
        }

        var hex = CliRun.Of("read", "--chain", RawChain, "--phys", LinuxBannerPhysical.ToString(System.Globalization.CultureInfo.InvariantCulture), "--length", "32");
        Assert.That(hex.ExitCode, Is.Zero, hex.ToString());
        Assert.That(hex.Output, Does.Contain("4c 69 6e 75 78 20 76 65").And.Contain("Linux version"));
    }

    [Test]
    public void Read_of_unmapped_memory_says_so_and_fails()
    {
        var run = CliRun.Of("read", "--chain", RawChain, "--phys", "0x10000000", "--length", "16");

        Assert.That(run.ExitCode, Is.EqualTo(1), run.ToString());
        Assert.That(run.Error, Does.Contain("only 0 of 16 bytes are readable at 0x10000000"));
    }

    [Test]
    public void Search_finds_the_marker_at_the_same_places_in_the_raw_image_and_the_kdump()
    {
        const string Marker = "MEMFORENSICS_TEST_MARKER_7f3a";
        var raw = CliRun.Of("search", "--chain", RawChain, "--text", Marker, "--json");
        var kdump = CliRun.Of("search", "--chain", KdumpChain, "--text", Marker, "--json");

        Assert.That(raw.ExitCode, Is.Zero, raw.ToString());
        Assert.That(kdump.ExitCode, Is.Zero, kdump.ToString());
        var rawHits = Hits(raw);
        Assert.That(rawHits, Is.Not.Empty);
        Assert.That(Hits(kdump), Is.EqualTo(rawHits));
        using var image = File.OpenRead(TestInputs.LinuxRawImage);
        var found = new byte[Marker.Length];
        foreach (var hit in rawHits)
        {
            image.Position = (long)hit;
            image.ReadExactly(found);
            Assert.That(Encoding.ASCII.GetString(found), Is.EqualTo(Marker), $"hit at 0x{hit:x}");
        }

        static List<ulong> Hits(CliRun run)
        {
            using var json = JsonDocument.Parse(run.Output);
            return json.RootElement.GetProperty("hits").EnumerateArray().Select(h => h.GetUInt64()).ToList();
        }
    }

    [Test]
    public void Search_with_a_wildcard_pattern_prints_hex_addresses()
    {
        // "Linux version " with the space replaced by a wildcard.
        var run = CliRun.Of("search", "--chain", RawChain, "--pattern", "4c 69 6e 75 78 ?? 76 65 72 73 69 6f 6e");

        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        Assert.That(run.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries), Does.Contain("0x" + LinuxBannerPhysical.ToString("x")));
    }

    [Test]
    public void Dump_of_the_makedumpfile_file_equals_the_raw_image_of_the_same_moment()
    {
        var output = Path.Combine(_scratch, "from-kdump.raw");

        var run = CliRun.Of("dump", "--chain", KdumpChain, "--out", output, "--format", "raw");

        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        Assert.That(new FileInfo(output).Length, Is.EqualTo(0x1_0000_0000L), "up to the highest mapped address (the BIOS at the top of 4 GiB)");
        Assert.That(FileCompare.FirstDifference(output, TestInputs.LinuxRawImage, RamSize), Is.EqualTo(-1));
    }

    [Test]
    public void Dump_as_elf_reopens_to_the_same_bytes_and_readelf_reads_its_segments()
    {
        var elf = Path.Combine(_scratch, "image.elf");
        var raw = Path.Combine(_scratch, "image.raw");

        Assert.That(CliRun.Of("dump", "--chain", RawChain, "--out", elf, "--format", "elf").ExitCode, Is.Zero);
        var info = CliRun.Of("info", "--chain", $"coredump:path=\"{elf}\"", "--json");
        Assert.That(info.Output, Does.Contain("\"format\": \"elf\""), info.ToString());
        Assert.That(CliRun.Of("dump", "--chain", $"coredump:path=\"{elf}\"", "--out", raw).ExitCode, Is.Zero);
        Assert.That(FileCompare.FirstDifference(raw, TestInputs.LinuxRawImage, RamSize), Is.EqualTo(-1));

        var readelf = Process.Start(new ProcessStartInfo("readelf", ["-l", "-W", elf]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var segments = readelf.StandardOutput.ReadToEnd();
        readelf.WaitForExit();
        Assert.That(readelf.ExitCode, Is.Zero, readelf.StandardError.ReadToEnd());
        Assert.That(segments, Does.Contain("Elf file type is CORE"));
        Assert.That(segments, Does.Match(@"LOAD\s+0x[0-9a-f]+ 0x0+ 0x0+ 0x0*8000000 0x0*8000000 RWE"));
    }

    [Test]
    public void Dump_of_the_qemu_elf_equals_the_raw_memory_saved_at_the_same_moment_wherever_both_have_the_page()
    {
        var guestElf = TestInputs.Fixture("guest.elf");
        var guestRaw = TestInputs.Fixture("guest.raw");
        var output = Path.Combine(_scratch, "from-elf.raw");
        var ramSize = new FileInfo(guestRaw).Length;

        var run = CliRun.Of("dump", "--chain", $"coredump:path=\"{guestElf}\"", "--out", output);
        var info = CliRun.Of("info", "--chain", $"coredump:path=\"{guestElf}\"", "--json");

        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        using var json = JsonDocument.Parse(info.Output);
        var ramRanges = json.RootElement.GetProperty("memoryMap").EnumerateArray()
            .Select(r => (Base: (long)r.GetProperty("base").GetUInt64(), Size: (long)r.GetProperty("size").GetUInt64()))
            .Where(r => r.Base < ramSize)
            .ToList();
        // QEMU leaves the VGA window (0xa0000-0xbffff) out of the ELF, while pmemsave reads the VGA memory there.
        Assert.That(ramRanges.Sum(r => Math.Min(r.Size, ramSize - r.Base)), Is.EqualTo(ramSize - 0x20000));
        foreach (var (start, size) in ramRanges)
            Assert.That(FileCompare.FirstDifference(output, guestRaw, start, Math.Min(size, ramSize - start)), Is.EqualTo(-1), $"range 0x{start:x}");
    }

    [Test]
    public void Bench_reports_each_figure_beside_its_baseline_and_their_ratio()
    {
        var run = CliRun.Of("bench", "--chain", RawChain, "--json", "--size", "16777216", "--rounds", "1");

        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        using var json = JsonDocument.Parse(run.Output);
        var figures = json.RootElement.EnumerateArray().ToList();
        Assert.That(figures, Has.Count.EqualTo(2));
        foreach (var figure in figures)
        {
            Assert.That(figure.GetProperty("name").GetString(), Is.Not.Empty);
            Assert.That(figure.GetProperty("unit").GetString(), Is.AnyOf("MiB/s", "reads/s"));
            var value = figure.GetProperty("value").GetDouble();
            var baseline = figure.GetProperty("baseline").GetDouble();
            Assert.That(value, Is.GreaterThan(0));
            Assert.That(baseline, Is.GreaterThan(0));
            Assert.That(figure.GetProperty("ratio").GetDouble(), Is.EqualTo(value / baseline).Within(1e-9));
        }
    }

    [TestCase("coredump:path=", "expected a value for 'path'")]
    [TestCase("nosuch:x=1", "No plugin named 'nosuch'")]
    [TestCase("coredump:path=/x,speed=3", "unknown argument 'speed'")]
    [TestCase("coredump:path=/nonexistent/file.raw", "/nonexistent/file.raw")]
    [TestCase("coredump:path=/x,format=vmware", "not one of")]
    public void Bad_chains_are_one_line_errors_with_exit_code_2(string chain, string expected)
    {
        var run = CliRun.Of("info", "--chain", chain);

        Assert.That(run.ExitCode, Is.EqualTo(2), run.ToString());
        Assert.That(run.Error, Does.StartWith("error: ").And.Contain(expected));
        Assert.That(run.Error.Trim().Split('\n'), Has.Length.EqualTo(1), "one line, no stack trace");
    }

    [Test]
    public void Numbers_without_0x_that_are_not_decimal_are_refused()
    {
        var run = CliRun.Of("read", "--chain", RawChain, "--phys", "ff00", "--length", "16");

        Assert.That(run.ExitCode, Is.Not.Zero);
        Assert.That(run.Error + run.Output, Does.Contain("'ff00' is not a number"));
    }

    [TestCase("ps")]
    [TestCase("kernel")]
    [TestCase("modules")]
    public void Os_commands_on_a_chain_without_an_os_layer_say_what_to_add(string command)
    {
        var run = CliRun.Of(command, "--chain", RawChain);

        Assert.That(run.ExitCode, Is.EqualTo(2), run.ToString());
        Assert.That(run.Error, Does.Contain("ends in a connector; this needs an OS layer at its end"));
    }

    [TestCase("--phys", "0x1000", "--pid", "1")]
    [TestCase("--pid", "1")]
    [TestCase("--virt", "0x1000")]
    public void Read_takes_a_physical_address_or_a_pid_with_a_virtual_one(params string[] where)
    {
        var run = CliRun.Of(["read", "--chain", RawChain, "--length", "16", .. where]);

        Assert.That(run.ExitCode, Is.EqualTo(2), run.ToString());
        Assert.That(run.Error, Does.Contain("give either --phys ADDRESS, or --pid N with --virt ADDRESS"));
    }
}
