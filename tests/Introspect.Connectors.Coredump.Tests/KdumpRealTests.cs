using Introspect.Abi;
using Introspect.TestSupport;

namespace Introspect.Connectors.Coredump.Tests;

/// <summary>The shared Debian guest's kdump-zlib dump (flattened, as QEMU wrote it, and plain, as makedumpfile -R makes it), against its raw image.</summary>
public class KdumpRealTests
{
    private const ulong RamPages = 32768;

    private IPhysicalMemory _flattened = null!;

    [OneTimeSetUp]
    public void OpenDump() => _flattened = Support.Open(TestInputs.LinuxFlattenedKdump);

    [OneTimeTearDown]
    public void CloseDump() => _flattened.Dispose();

    [Test]
    public void The_map_is_the_dumpable_bitmap_with_ram_video_ram_and_bios()
    {
        Assert.That(_flattened.MemoryMap.ToString(), Is.EqualTo(
            "0x0 0x9ffff\n" +
            "0xc0000 0x7ffffff\n" +
            "0xfd000000 0xfdffffff\n" +
            "0xfffc0000 0xffffffff\n"));
        Assert.That(_flattened.Metadata.MaxAddress, Is.EqualTo(0xFFFF_FFFFUL));
        Assert.That(_flattened.Metadata.RealSize, Is.EqualTo((32736UL + 4096 + 64) * Support.PageSize));
        Assert.That(_flattened.Metadata.ReadOnly, Is.True);
    }

    [Test]
    public void Every_dumped_ram_page_equals_the_raw_image_and_the_rest_are_zero_pages_that_fail()
    {
        int equal = 0, missing = 0;
        var addresses = Enumerable.Range(0, (int)RamPages).Select(p => (ulong)p * Support.PageSize).ToList();
        Support.ForEachPage(_flattened, addresses, (address, bytes) =>
        {
            var raw = Support.RawPage(address / Support.PageSize);
            if (bytes is null)
            {
                missing++;
                if (!Support.IsZero(raw))
                    Assert.Fail($"page 0x{address:x} is not in the dump but is not a zero page in the raw image");
            }
            else if (bytes.AsSpan().SequenceEqual(raw))
            {
                equal++;
            }
            else
            {
                Assert.Fail($"page 0x{address:x} differs from the raw image");
            }
        });
        Assert.That(equal, Is.EqualTo(32736));
        Assert.That(missing, Is.EqualTo(32));
    }

    [Test]
    public void The_hints_carry_the_cpu_registers_qemu_recorded()
    {
        var oracle = RegisterOracle();
        var hints = Support.HintsOf(_flattened);
        Assert.Multiple(() =>
        {
            Assert.That(hints.Format, Is.EqualTo("kdump-flattened-zlib"));
            Assert.That(hints.Architecture, Is.EqualTo(MachineArchitecture.X64));
            Assert.That(hints.Cpus, Has.Count.EqualTo(1));
            Assert.That(hints.Cpus[0].Cr3, Is.EqualTo(oracle["CR3"]));
            Assert.That(hints.Cpus[0].Cr0, Is.EqualTo(oracle["CR0"]));
            Assert.That(hints.Cpus[0].Cr4, Is.EqualTo(oracle["CR4"]));
            Assert.That(hints.Cpus[0].InstructionPointer, Is.EqualTo(oracle["RIP"]));
            Assert.That(hints.Cpus[0].StackPointer, Is.EqualTo(oracle["RSP"]));
            Assert.That(hints.DirectoryTableBase, Is.EqualTo(oracle["CR3"] & ~0xFFFUL));
            Assert.That(hints.VmcoreInfo, Is.Null, "QEMU ran this guest without a vmcoreinfo device");
        });
    }

    [Test]
    public void The_plain_file_reads_the_same_as_the_flattened_one_everywhere()
    {
        using var plain = Support.Open(TestInputs.Fixture("linux-6.1-x64-128M.kdump-plain"));
        Assert.That(Support.HintsOf(plain).Format, Is.EqualTo("kdump-zlib"));
        Assert.That(plain.MemoryMap.ToString(), Is.EqualTo(_flattened.MemoryMap.ToString()));
        var addresses = plain.MemoryMap.SelectMany(r => Enumerable.Range(0, (int)(r.Size / Support.PageSize)).Select(i => r.Base + (ulong)i * Support.PageSize)).ToList();
        var expected = new Dictionary<ulong, byte[]>();
        Support.ForEachPage(_flattened, addresses, (address, bytes) => expected[address] = (byte[]?)bytes?.Clone() ?? throw new AssertionException($"flattened page 0x{address:x} failed"));
        int pages = 0;
        Support.ForEachPage(plain, addresses, (address, bytes) =>
        {
            if (bytes is null || !bytes.AsSpan().SequenceEqual(expected[address]))
                Assert.Fail($"plain page 0x{address:x} differs");
            pages++;
        });
        Assert.That(pages, Is.EqualTo(32736 + 4096 + 64));
        Assert.That(Support.HintsOf(plain).Cpus[0].Cr3, Is.EqualTo(Support.HintsOf(_flattened).Cpus[0].Cr3));
    }

    [Test]
    public void Reads_across_pages_and_without_the_cache_equal_the_raw_image()
    {
        var random = new Random(7);
        foreach (var flags in new[] { MemoryFlags.None, MemoryFlags.NoCache })
        {
            for (int i = 0; i < 2000; i++)
            {
                ulong address = 0x100000 + (ulong)random.NextInt64(0, (120L << 20));
                int length = random.Next(1, 3 * Support.PageSize);
                var bytes = Support.Read(_flattened, address, length, flags);
                if (bytes is null || !bytes.AsSpan().SequenceEqual(Support.RawImage.AsSpan((int)address, length)))
                    Assert.Fail($"{flags}: 0x{address:x}+{length}");
            }
        }
    }

    [Test]
    public void A_read_spanning_the_vga_hole_fails_or_pads()
    {
        Assert.That(Support.Read(_flattened, 0x9F000, 0x2000), Is.Null);
        var padded = Support.Read(_flattened, 0x9F000, 0x2000, MemoryFlags.ZeroPadOnFail);
        Assert.That(padded.AsSpan(0, 0x1000).SequenceEqual(Support.RawPage(0x9F)), Is.True);
        Assert.That(padded.AsSpan(0x1000).ToArray(), Is.All.Zero);
    }

    [Test]
    public void Reads_from_many_threads_agree_with_the_raw_image()
    {
        Parallel.For(0, 6, thread =>
        {
            var random = new Random(100 + thread);
            var batch = new MemoryRequest[64];
            for (int round = 0; round < 40; round++)
            {
                for (int i = 0; i < batch.Length; i++)
                    batch[i] = new MemoryRequest(0x100000 + (ulong)random.NextInt64(0, 100L << 20), new byte[random.Next(1, 6000)]);
                _flattened.Read(batch, round % 3 == 0 ? MemoryFlags.NoCache : MemoryFlags.None);
                foreach (var entry in batch)
                {
                    if (!entry.Succeeded || !entry.Buffer.Span.SequenceEqual(Support.RawImage.AsSpan((int)entry.Address, entry.Buffer.Length)))
                        Assert.Fail($"thread {thread}: 0x{entry.Address:x}+{entry.Buffer.Length}");
                }
            }
        });
    }

    [Test]
    public void A_replaced_map_is_backed_by_the_dumps_physical_addresses()
    {
        using var memory = Support.Open(TestInputs.LinuxFlattenedKdump);
        memory.SetMemoryMap(new MemoryMap([new MemoryRange(0x40_0000_0000, 0x2000, 0x100_0000), new MemoryRange(0x50_0000_0000, 0x1000, 0xA0000)]));
        Assert.That(Support.Read(memory, 0x40_0000_0000, 0x2000), Is.EqualTo(Support.RawImage.AsSpan(0x100_0000, 0x2000).ToArray()));
        Assert.That(Support.Read(memory, 0x50_0000_0000, 8), Is.Null, "the VGA hole is not in the dump");
        Assert.That(Support.Read(memory, 0x100_0000, 8), Is.Null, "no longer mapped");
    }

    private static Dictionary<string, ulong> RegisterOracle()
    {
        var values = Registers.Parse(File.ReadAllText(TestInputs.TestData("linux", "registers-at-dump.txt")));
        Assert.That(values.Keys, Is.SupersetOf(new[] { "CR0", "CR3", "CR4", "RIP", "RSP" }));
        return values;
    }
}
