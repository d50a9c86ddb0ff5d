using System.Globalization;
using Introspect.Abi;
using Introspect.TestSupport;
using Microsoft.Win32.SafeHandles;

namespace Introspect.Connectors.Coredump.Tests;

/// <summary>
/// The Linux fixture guests are what they claim to be: each ELF dump holds the RAM its pmemsave images hold, the CPU
/// state QEMU printed and the kernel's own VMCOREINFO, and each guest's ground truth holds what the Linux layer's
/// tests are compared against (processes of every kind, memtest buffers whose bytes are in the guest's RAM).
/// </summary>
public class GuestFixtureTests
{
    private const ulong KernelLinkAddress = 0xffffffff81000000;
    private const ulong DefaultPageOffset = 0xffff888000000000;
    private const ulong Cr4La57 = 1UL << 12;

    public static IEnumerable<FixtureGuest> Guests => TestInputs.LinuxGuests;

    [TestCaseSource(nameof(Guests))]
    public void Every_ram_page_of_the_elf_dump_equals_the_pmemsave_images(FixtureGuest guest)
    {
        using var elf = Support.Open(guest.Elf);
        using var low = File.OpenHandle(guest.Raw);
        using var high = guest.HighRamBytes > 0 ? File.OpenHandle(guest.HighRaw) : null;
        Assert.That(RandomAccess.GetLength(low), Is.EqualTo((long)guest.LowRamBytes));
        if (high is not null)
            Assert.That(RandomAccess.GetLength(high), Is.EqualTo((long)guest.HighRamBytes));

        // Ranges are classified page by page: the connector joins neighbours, and on a guest with RAM above
        // 4 GiB the BIOS (up to 0xffffffff) and that RAM follow each other in the address space and in the file.
        var ramPages = new List<ulong>();
        var otherPages = new List<ulong>();
        foreach (var range in elf.MemoryMap)
        {
            for (ulong offset = 0; offset < range.Size; offset += Support.PageSize)
                (IsRam(guest, range.Base + offset) ? ramPages : otherPages).Add(range.Base + offset);
        }
        Assert.That(otherPages.Count(a => unchecked(a - 0xfd000000) < 0x1000000 || a >= 0xfffc0000), Is.EqualTo(otherPages.Count).And.EqualTo(4096 + 64),
            $"beside RAM only video RAM (16 MiB at 0xfd000000) and BIOS (256 KiB at 0xfffc0000); the dump's map:\n{elf.MemoryMap}");

        var expected = new byte[Support.PageSize];
        var differing = new List<ulong>();
        int lowPages = 0, highPages = 0;
        Support.ForEachPage(elf, ramPages, (address, bytes) =>
        {
            bool above = address >= FixtureGuest.HighRamBase;
            RandomAccess.Read(above ? high! : low, expected, (long)(above ? address - FixtureGuest.HighRamBase : address));
            if (bytes is null || !bytes.AsSpan().SequenceEqual(expected))
                differing.Add(address);
            else if (above)
                highPages++;
            else
                lowPages++;
        });
        Assert.That(differing.Take(10).Select(a => $"0x{a:x}"), Is.Empty, $"{differing.Count} pages differ from the pmemsave images");
        Assert.That(lowPages, Is.EqualTo((int)(guest.LowRamBytes / Support.PageSize) - 32), "all RAM below 4 GiB but the VGA window (0xa0000-0xbffff)");
        Assert.That(highPages, Is.EqualTo((int)(guest.HighRamBytes / Support.PageSize)), $"all RAM above 4 GiB; the dump's map:\n{elf.MemoryMap}");
    }

    [TestCaseSource(nameof(Guests))]
    public void The_elf_dump_carries_the_cpu_state_qemu_printed_and_the_kernels_vmcoreinfo(FixtureGuest guest)
    {
        var registers = Registers.Parse(File.ReadAllText(guest.Registers));
        var oracle = guest.Oracle;
        var facts = KernelFacts(guest);
        using var elf = Support.Open(guest.Elf);
        var hints = Support.HintsOf(elf);
        var info = (hints.VmcoreInfo ?? "").Split('\n').Where(l => l.Contains('=', StringComparison.Ordinal))
            .Select(l => l.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
        Assert.Multiple(() =>
        {
            Assert.That(hints.Architecture, Is.EqualTo(MachineArchitecture.X64));
            Assert.That(hints.Cpus, Has.Count.EqualTo(1));
            Assert.That(hints.Cpus[0].Cr3, Is.EqualTo(registers["CR3"]));
            Assert.That(hints.Cpus[0].Cr4, Is.EqualTo(registers["CR4"]));
            Assert.That((registers["CR4"] & Cr4La57) != 0, Is.EqualTo(guest.PagingLevels == 5), "CR4.LA57");
            Assert.That(info.GetValueOrDefault("OSRELEASE"), Is.EqualTo(facts["release"]));
            Assert.That(info.GetValueOrDefault("NUMBER(pgtable_l5_enabled)"), Is.EqualTo(guest.PagingLevels == 5 ? "1" : "0"));
            Assert.That(info.GetValueOrDefault("KERNELOFFSET"), Is.EqualTo((oracle.Symbols["_text"] - KernelLinkAddress).ToString("x", CultureInfo.InvariantCulture)));
            Assert.That(info.GetValueOrDefault("SYMBOL(init_top_pgt)"), Is.EqualTo(oracle.Symbols["init_top_pgt"].ToString("x", CultureInfo.InvariantCulture)));
            // VMCOREINFO prints phys_base as a signed long; the guest read it as 8 bytes through /proc/kcore.
            Assert.That(info.GetValueOrDefault("NUMBER(phys_base)"), Is.EqualTo(unchecked((long)oracle.KernelVariables["phys_base"]).ToString(CultureInfo.InvariantCulture)));
        });
    }

    [TestCaseSource(nameof(Guests))]
    public void The_guest_is_the_machine_its_definition_names(FixtureGuest guest)
    {
        var facts = KernelFacts(guest);
        var oracle = guest.Oracle;
        var variables = oracle.KernelVariables;
        ulong text = oracle.Symbols["_text"];
        Assert.Multiple(() =>
        {
            Assert.That(facts["machine"], Is.EqualTo(guest.Machine));
            Assert.That(facts["cpu"], Is.EqualTo(guest.Cpu));
            Assert.That(ulong.Parse(facts["ram-bytes"], CultureInfo.InvariantCulture), Is.EqualTo(guest.RamBytes));
            Assert.That(ulong.Parse(facts["low-ram-bytes"], CultureInfo.InvariantCulture), Is.EqualTo(guest.LowRamBytes));
            Assert.That(ulong.Parse(facts["high-ram-bytes"], CultureInfo.InvariantCulture), Is.EqualTo(guest.HighRamBytes));
            Assert.That(facts["kaslr"], Is.EqualTo(guest.Kaslr ? "on" : "off"));
            Assert.That(facts["paging"], Is.EqualTo($"{guest.PagingLevels}-level"));
            Assert.That(oracle.CommandLine, Is.EqualTo(facts["cmdline"]));
            Assert.That(oracle.Version, Does.StartWith($"Linux version {facts["release"]} "));
            Assert.That(variables["__pgtable_l5_enabled"], Is.EqualTo(guest.PagingLevels == 5 ? 1UL : 0UL));
            // _text physical = _text - __START_KERNEL_map + phys_base, and /proc/iomem's "Kernel code" starts there.
            Assert.That(unchecked(text - 0xffffffff80000000 + variables["phys_base"]), Is.EqualTo(Convert.ToUInt64(facts["kernel-code"], 16)));
            if (guest.Kaslr)
                Assert.That(text != KernelLinkAddress || variables["page_offset_base"] != DefaultPageOffset, "KASLR moved the kernel or the direct map");
            else
            {
                Assert.That(text, Is.EqualTo(KernelLinkAddress));
                Assert.That(variables["page_offset_base"], Is.EqualTo(DefaultPageOffset));
            }
            if (guest.HighRamBytes > 0)
                Assert.That(oracle.Lines("iomem"), Does.Contain($"{FixtureGuest.HighRamBase:x}-{FixtureGuest.HighRamBase + guest.HighRamBytes - 1:x} : System RAM"));
        });
    }

    [TestCaseSource(nameof(Guests))]
    public void The_ground_truth_has_processes_of_every_kind(FixtureGuest guest)
    {
        var oracle = guest.Oracle;
        var processes = oracle.Processes.ToDictionary(p => p.Pid);
        var roles = oracle.Roles;
        var children = oracle.Processes.ToLookup(p => p.ParentPid);
        var threads = oracle.Threads.ToLookup(t => t.Pid);
        Assert.Multiple(() =>
        {
            Assert.That(processes, Has.Count.GreaterThanOrEqualTo(50), "dozens of processes");
            Assert.That(processes.Values.Count(p => p.KernelThread), Is.GreaterThanOrEqualTo(20));
            Assert.That(processes.Values.Count(p => !p.KernelThread), Is.GreaterThanOrEqualTo(25));
            Assert.That(processes[roles["zombie"]].State, Is.EqualTo('Z'));
            Assert.That(processes[roles["zombie"]].ParentPid, Is.EqualTo(roles["zombie-parent"]));
            Assert.That(processes[roles["stopped"]].State, Is.EqualTo('T'));
            Assert.That(processes[roles["memtest-delta"]].State, Is.EqualTo('T'));
            var tree = children[roles["tree-root"]].ToList();
            Assert.That(tree.Select(p => p.Name), Is.EqualTo(new[] { "memtest-tree", "memtest-tree" }), "the tree's children");
            Assert.That(tree.SelectMany(p => children[p.Pid]).Select(p => p.Name), Is.EqualTo(Enumerable.Repeat("sleep", 4)), "the tree's grandchildren");
            Assert.That(processes.Values.Select(p => p.Uid).Distinct().Count(), Is.GreaterThanOrEqualTo(4), "processes of several users");

            var reports = oracle.Memtests;
            Assert.That(reports.Select(r => r.Name), Is.EqualTo(new[] { "alpha", "beta", "gamma", "delta", "epsilon" }));
            Assert.That(reports.Select(r => r.Comm).Distinct().Count(), Is.EqualTo(reports.Count), "distinct comms");
            foreach (var report in reports)
            {
                var process = processes[report.Pid];
                Assert.That(roles[$"memtest-{report.Name}"], Is.EqualTo(report.Pid));
                Assert.That(process.Name, Is.EqualTo(report.Comm));
                Assert.That(process.Uid, Is.EqualTo(report.Uid));
                Assert.That(process.Threads, Is.EqualTo(report.Threads));
                Assert.That(threads[report.Pid].Count(), Is.EqualTo(report.Threads > 1 ? report.Threads : 0), $"threads of {report.Name}");
                Assert.That(oracle.Environment(report.Pid), Does.Contain($"MEMTEST_ENV_MARKER=MEMTEST_ENV_{report.Name.ToUpperInvariant()}"));
            }
            Assert.That(processes[roles["memtest-epsilon"]].CommandLine, Has.Length.GreaterThan(4096), "a command line over two pages");
            if (guest.RamBytes >= 1024UL * 1024 * 1024)
                Assert.That(reports.Any(r => r.HugePage), "transparent huge pages back a huge buffer");
        });
    }

    [TestCaseSource(nameof(Guests))]
    public void Every_memtest_buffer_lies_in_a_mapping_of_its_kind_and_holds_the_documented_pattern(FixtureGuest guest)
    {
        var oracle = guest.Oracle;
        Assert.Multiple(() =>
        {
            foreach (var report in oracle.Memtests)
            {
                var maps = oracle.Maps(report.Pid);
                foreach (var buffer in report.Buffers)
                {
                    string what = $"{report.Name}'s {buffer.Kind} buffer";
                    var mapping = maps.SingleOrDefault(m => unchecked(buffer.Address - m.Start) < m.End - m.Start);
                    Assert.That(mapping, Is.Not.Null, $"{what} at 0x{buffer.Address:x} is in no mapping");
                    if (mapping is null)
                        continue;
                    Assert.That(buffer.Address + (ulong)buffer.Length, Is.LessThanOrEqualTo(mapping.End), what);
                    var (permissions, path) = buffer.Kind switch
                    {
                        "heap" => ("rw-p", "[heap]"),
                        "stack" => ("rw-p", "[stack]"),
                        "ro" => ("r--p", ""),
                        "file" => ("r--s", report.FilePath),
                        _ => ("rw-p", ""),
                    };
                    Assert.That(mapping.Permissions, Is.EqualTo(permissions), what);
                    Assert.That(mapping.Path, Is.EqualTo(path), what);
                    if (buffer.Kind == "file")
                        Assert.That((mapping.Start, mapping.Offset), Is.EqualTo((buffer.Address, report.FileOffset)), what);
                    if (buffer.Kind == "huge")
                        Assert.That(buffer.Address % (2 * 1024 * 1024), Is.Zero, what);
                    var contents = report.ExpectedContents(buffer.Kind);
                    Assert.That(contents.AsSpan(0, 64).ToArray(), Is.EqualTo(buffer.First64), $"{what}: first 64 bytes");
                    Assert.That(MemtestPattern.Fnv1a64(contents), Is.EqualTo(buffer.Fnv1a64), $"{what}: FNV-1a of all its bytes");
                }
            }
        });
    }

    // Without translating virtual addresses: a buffer's first page must be some RAM page, at the buffer's offset in its page.
    [TestCaseSource(nameof(Guests))]
    public void Every_memtest_buffers_first_page_is_in_the_guests_ram(FixtureGuest guest)
    {
        var wanted = guest.Oracle.Memtests.SelectMany(r => r.Buffers.Select(b =>
        {
            int offset = (int)(b.Address % Support.PageSize);
            var bytes = r.ExpectedContents(b.Kind).AsSpan(0, Math.Min(b.Length, Support.PageSize - offset)).ToArray();
            return (Name: $"{r.Name}'s {b.Kind} buffer", Offset: offset, Bytes: bytes);
        })).ToList();
        var found = new bool[wanted.Count];
        var images = new List<string> { guest.Raw };
        if (guest.HighRamBytes > 0)
            images.Add(guest.HighRaw);
        var chunk = new byte[1 << 20];
        foreach (string image in images)
        {
            using SafeFileHandle handle = File.OpenHandle(image);
            long length = RandomAccess.GetLength(handle);
            for (long position = 0; position < length; position += chunk.Length)
            {
                int read = RandomAccess.Read(handle, chunk, position);
                for (int page = 0; page + Support.PageSize <= read; page += Support.PageSize)
                {
                    for (int i = 0; i < wanted.Count; i++)
                    {
                        if (!found[i] && chunk.AsSpan(page + wanted[i].Offset, wanted[i].Bytes.Length).SequenceEqual(wanted[i].Bytes))
                            found[i] = true;
                    }
                }
            }
        }
        Assert.That(wanted.Where((w, i) => !found[i]).Select(w => w.Name), Is.Empty, "buffers whose first page is in no RAM page");
    }

    private static bool IsRam(FixtureGuest guest, ulong address) =>
        address < guest.LowRamBytes || unchecked(address - FixtureGuest.HighRamBase) < guest.HighRamBytes;

    private static Dictionary<string, string> KernelFacts(FixtureGuest guest) =>
        File.ReadLines(guest.KernelFacts).Select(l => l.Split(' ', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
}

/// <summary>The ground truth's reader refuses what is not a whole oracle, naming the line, and reads what is.</summary>
public class GuestOracleTests
{
    private const string Processes = "#pid\tppid\tstate\tuid\tthreads\tkernel\tstart\texe\tcomm\targs";

    private static GuestOracle Parse(params string[] lines) => GuestOracle.Parse(lines, "test-oracle.txt");

    private static string[] Whole(params string[] sections) => ["kernel log", "=== ORACLE BEGIN", .. sections, "=== ORACLE END", "FIXTURE-READY"];

    [Test]
    public void A_whole_oracle_reads_back_its_sections()
    {
        var oracle = Parse(Whole(
            "--- BEGIN version", "Linux version 6.1.0-56-amd64 (x)", "--- END version",
            "--- BEGIN kallsyms", "ffffffff81000000 T _text", "ffffffff82a1aa40 D init_task", "--- END kallsyms",
            "--- BEGIN processes", Processes,
            "1\t0\tS\t0\t1\t0\t81\t/bin/busybox\tinit\t/bin/busybox sh /init",
            "108\t98\tZ\t0\t1\t0\t429\t\tmemtest-zombie-\t", "--- END processes",
            "--- BEGIN maps 92",
            "7f33d8ddb000-7f33d8dde000 r--s 00001000 00:15 7                          /tmp/a file.dat",
            "7f33d8dde000-7f33d8e1e000 rw-p 00000000 00:00 0 ", "--- END maps 92"));
        Assert.Multiple(() =>
        {
            Assert.That(oracle.Titles, Is.EqualTo(new[] { "version", "kallsyms", "processes", "maps 92" }));
            Assert.That(oracle.Version, Is.EqualTo("Linux version 6.1.0-56-amd64 (x)"));
            Assert.That(oracle.Symbols["init_task"], Is.EqualTo(0xffffffff82a1aa40));
            Assert.That(oracle.Processes, Is.EqualTo(new[]
            {
                new OracleProcess(1, 0, 'S', 0, 1, false, 81, "/bin/busybox", "init", "/bin/busybox sh /init"),
                new OracleProcess(108, 98, 'Z', 0, 1, false, 429, "", "memtest-zombie-", ""),
            }));
            Assert.That(oracle.Maps(92), Is.EqualTo(new[]
            {
                new OracleMapping(0x7f33d8ddb000, 0x7f33d8dde000, "r--s", 0x1000, "00:15", 7, "/tmp/a file.dat"),
                new OracleMapping(0x7f33d8dde000, 0x7f33d8e1e000, "rw-p", 0, "00:00", 0, ""),
            }));
        });
    }

    [TestCase(new[] { "kernel log only" }, "no '=== ORACLE BEGIN' line")]
    [TestCase(new[] { "=== ORACLE BEGIN", "--- BEGIN version", "Linux version" }, "section 'version' (line 2) has no END line")]
    [TestCase(new[] { "=== ORACLE BEGIN", "--- BEGIN version", "Linux version", "--- END version" }, "no '=== ORACLE END' line")]
    [TestCase(new[] { "=== ORACLE BEGIN", "--- BEGIN a", "--- BEGIN b" }, "line 3: a section begun inside section 'a'")]
    [TestCase(new[] { "=== ORACLE BEGIN", "--- BEGIN a", "--- END b" }, "line 3: '--- END b' inside section 'a'")]
    [TestCase(new[] { "=== ORACLE BEGIN", "--- BEGIN a", "--- END a", "--- BEGIN a" }, "line 4: a second section 'a'")]
    [TestCase(new[] { "=== ORACLE BEGIN", "stray", "=== ORACLE END" }, "line 2: 'stray' outside any section")]
    [TestCase(new[] { "=== ORACLE BEGIN", "--- BEGIN ", "=== ORACLE END" }, "line 2: a section without a title")]
    public void A_broken_oracle_is_refused_naming_the_line(string[] lines, string message)
    {
        Assert.That(() => Parse(lines), Throws.TypeOf<InvalidDataException>().With.Message.StartWith("test-oracle.txt").And.Message.Contains(message));
    }

    [Test]
    public void Bad_rows_and_missing_sections_are_refused_naming_the_line_or_the_title()
    {
        var oracle = Parse(Whole(
            "--- BEGIN processes", Processes, "1\t0\tS\t0\t1", "--- END processes",
            "--- BEGIN threads", "#pid\ttid\tstate\tcomm", "93\t124\tSS\tmt-beta-1", "--- END threads",
            "--- BEGIN kernel-vars", "page_offset_base 0xnothex", "--- END kernel-vars",
            "--- BEGIN roles", "zombie 99999999999", "--- END roles",
            "--- BEGIN memtest 92", "pid 92", "name alpha", "buffer heap 0x1000 4096 0123 00", "--- END memtest 92",
            "--- BEGIN memtest 93", "pid 94", "name beta", "huge-page no", "--- END memtest 93"));
        Assert.Multiple(() =>
        {
            Assert.That(() => oracle.Processes, Throws.TypeOf<InvalidDataException>().With.Message.Contains("line 5: in section 'processes'").And.Message.Contains("expected 10 tab-separated fields, found 5"));
            Assert.That(() => oracle.Threads, Throws.TypeOf<InvalidDataException>().With.Message.Contains("line 9: in section 'threads'").And.Message.Contains("not a state letter"));
            Assert.That(() => oracle.KernelVariables, Throws.TypeOf<InvalidDataException>().With.Message.Contains("line 12: in section 'kernel-vars'"));
            Assert.That(() => oracle.Roles, Throws.TypeOf<InvalidDataException>().With.Message.Contains("line 15: in section 'roles'"));
            Assert.That(() => oracle.Memtests, Throws.TypeOf<InvalidDataException>().With.Message.Contains("line 20: in section 'memtest 92'"));
            Assert.That(() => oracle.Maps(92), Throws.TypeOf<InvalidDataException>().With.Message.Contains("no section 'maps 92'"));
            Assert.That(() => oracle.Version, Throws.TypeOf<InvalidDataException>().With.Message.Contains("no section 'version'"));
        });
        var mismatched = Parse(Whole("--- BEGIN memtest 93", "pid 94", "name beta", "huge-page no",
            "buffer heap 0x1000 8 0123456789abcdef " + new string('0', 128), "--- END memtest 93"));
        Assert.That(() => mismatched.Memtests, Throws.TypeOf<InvalidDataException>().With.Message.Contains("section 'memtest 93' (line 4) lacks its pid (matching the title)"));
    }

    [Test]
    public void The_pattern_is_what_memtest_itself_wrote()
    {
        // The first 64 bytes of the heap buffer memtest reported as pid 92, name alpha, seed 0x0123456789abcdef
        // (tests/fixtures/src/memtest.c, run in a fixture guest).
        var bytes = MemtestPattern.Generate("heap", 92, 0x0123456789abcdef, "alpha", 64);
        Assert.That(Convert.ToHexStringLower(bytes), Is.EqualTo(
            "4d454d544553542f686561702f39322f616c706861000000000000000000000003" +
            "91114d2321126ca64743b814323539640d9e184515d003f75dcccda89241e4"));
        Assert.That(MemtestPattern.Generate("heap", 92, 0x0123456789abcdef, "alpha", 20), Is.EqualTo(bytes.AsSpan(0, 20).ToArray()), "a short buffer: the header cut");
        Assert.That(MemtestPattern.Fnv1a64("a"u8), Is.EqualTo(0xaf63dc4c8601ec8cUL), "FNV-1a 64 of \"a\"");
        Assert.That(() => MemtestPattern.Generate("bss", 1, 0, "x", 64), Throws.ArgumentException);
    }
}
