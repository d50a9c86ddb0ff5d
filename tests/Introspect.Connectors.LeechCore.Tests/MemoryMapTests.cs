using Introspect.Abi;
using Moq;

namespace Introspect.Connectors.LeechCore.Tests;

/// <summary>The memory map: read from LeechCore (LC_CMD_MEMMAP_GET), replaced through it (LC_CMD_MEMMAP_SET).</summary>
public class MemoryMapTests : LeechCoreTest
{
    // Guest RAM below 1 MiB without the legacy hole, and the rest moved above 4 GiB, as a remapping device reports it.
    private const string RemappedMap =
        "0 9ffff\n" +
        "100000 3ffffff\n" +
        "100000000 103ffffff 4000000\n";

    [Test]
    public void The_map_and_its_remapping_come_from_LeechCore()
    {
        FakeLeechCore.SetMemoryMap(RemappedMap);
        using var memory = Support.OpenLeechCore(Support.RawDevice);
        Assert.Multiple(() =>
        {
            Assert.That(memory.MemoryMap, Is.EqualTo(new[]
            {
                new MemoryRange(0, 0xa0000),
                new MemoryRange(0x100000, 0x3f00000),
                new MemoryRange(0x100000000, 0x4000000, 0x4000000),
            }));
            Assert.That(memory.Metadata.MaxAddress, Is.EqualTo(0x103ffffffUL));
            Assert.That(memory.Metadata.RealSize, Is.EqualTo(0xa0000UL + 0x3f00000 + 0x4000000));
            Assert.That(Support.Read(memory, 0x100000123, 300), Is.EqualTo(Support.Expected(0x4000123, 300)), "LeechCore remaps");
            Assert.That(Support.Read(memory, 0xa0000, 8), Is.Null, "the legacy hole is not in the map");
            Assert.That(Support.Read(memory, 0x4000000, 8), Is.Null, "nor is what lies between 64 MiB and 4 GiB");
        });
    }

    [Test]
    public void A_new_map_goes_to_LeechCore_and_bounds_the_reads()
    {
        using var memory = Support.OpenLeechCore(Support.RawDevice);
        // The last range lies at an unaligned backing address, as an ELF core's segments do in the file.
        var map = new MemoryMap([new MemoryRange(0, 0x1000000), new MemoryRange(0x20000000, 0x1000, 0x2000000), new MemoryRange(0x30000000, 0x2000, 0x11f0)]);
        memory.SetMemoryMap(map);
        Assert.Multiple(() =>
        {
            Assert.That(memory.MemoryMap, Is.EqualTo(map));
            Assert.That(memory.Metadata.MaxAddress, Is.EqualTo(0x30001fffUL));
            Assert.That(memory.Metadata.RealSize, Is.EqualTo(0x1003000UL));
            Assert.That(Support.Read(memory, 0xfff000, 0x1000), Is.EqualTo(Support.Expected(0xfff000, 0x1000)));
            Assert.That(Support.Read(memory, 0x1000000, 8), Is.Null);
            Assert.That(Support.Read(memory, 0x20000010, 16), Is.EqualTo(Support.Expected(0x2000010, 16)), "LeechCore applies the remap it was given");
            Assert.That(Support.Read(memory, 0x30000ffc, 8), Is.EqualTo(Support.Expected(0x21ec, 8)));
            Assert.That(FakeLeechCore.Log, Does.Contain("LC_CMD_MEMMAP_SET): 3 ranges"));
        });
    }

    [Test]
    public void An_empty_map_fails_every_read_without_troubling_LeechCore()
    {
        using var memory = Support.OpenLeechCore(Support.RawDevice);
        memory.SetMemoryMap(MemoryMap.Empty);
        Assert.That(Support.Read(memory, 0, 8), Is.Null);
        Assert.That(memory.Metadata.RealSize, Is.Zero);
        Assert.That(FakeLeechCore.GetStats().ReadScatterCalls, Is.Zero);
    }

    [Test]
    public void Maps_LeechCore_cannot_hold_are_refused_before_it_sees_them()
    {
        using var memory = Support.OpenLeechCore(Support.RawDevice);
        Assert.Multiple(() =>
        {
            Assert.That(() => memory.SetMemoryMap(new MemoryMap([new MemoryRange(0, 0x1800)])),
                Throws.ArgumentException.With.Message.Contains("whole pages"));
            Assert.That(() => memory.SetMemoryMap(new MemoryMap([new MemoryRange(0x1000, 0x1000, 0)])),
                Throws.ArgumentException.With.Message.Contains("cannot be remapped to 0"));
            Assert.That(() => memory.SetMemoryMap(new MemoryMap([new MemoryRange(0x1000, 0x1000, 0x8000000000000000)])),
                Throws.ArgumentException.With.Message.Contains("top bit"));
        });
        Assert.That(memory.MemoryMap.ToString(), Is.EqualTo("0x0 0x7ffffff\n"), "the old map stays");
    }

    [Test]
    public void A_memmap_file_replaces_the_devices_map()
    {
        using var folder = new TempFolder();
        string path = folder.WriteText("guest.memmap", "# RAM as the guest's iomem shows it\n0x1000 0x9efff\n0x100000 0x7fdffff\n");
        using var memory = Support.OpenLeechCore(Support.RawDevice, ("memmap", path));
        Assert.That(memory.MemoryMap, Is.EqualTo(new[] { new MemoryRange(0x1000, 0x9e000), new MemoryRange(0x100000, 0x7ee0000) }));
        Assert.That(Support.Read(memory, 0, 8), Is.Null);
    }

    [Test]
    public void A_bad_memmap_file_is_refused_and_the_device_closed()
    {
        using var folder = new TempFolder();
        string path = folder.WriteText("bad.memmap", "0x1000 0x1fff\nthis is not a range\n");
        Assert.That(() => Support.OpenLeechCore(Support.RawDevice, ("memmap", path)),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains("bad.memmap").And.Message.Contains("line 2"));
        string unaligned = folder.WriteText("unaligned.memmap", "0x1000 0x17ff\n");
        Assert.That(() => Support.OpenLeechCore(Support.RawDevice, ("memmap", unaligned)),
            Throws.TypeOf<PluginArgumentException>().With.Message.Contains("memmap=").And.Message.Contains("whole pages"));
        Assert.That(() => Support.OpenLeechCore(Support.RawDevice, ("memmap", folder.File("missing.memmap"))),
            Throws.TypeOf<PluginArgumentException>().With.Message.Contains("missing.memmap"));
    }

    [Test]
    public void Reads_racing_a_map_change_see_the_old_map_or_the_new_one()
    {
        using var memory = Support.OpenLeechCore(Support.RawDevice);
        var small = new MemoryMap([new MemoryRange(0, 0x4000000)]);
        var full = new MemoryMap([new MemoryRange(0, 0x8000000)]);
        using var stop = new CancellationTokenSource();
        var readers = Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            var random = new Random();
            int wrong = 0;
            while (!stop.IsCancellationRequested)
            {
                ulong address = (ulong)random.Next(0, 0x4000000 / 8) * 8;
                var bytes = Support.Read(memory, address, 8);
                if (bytes is null || !bytes.AsSpan().SequenceEqual(Support.RawImage.AsSpan((int)address, 8)))
                    wrong++;
            }
            return wrong;
        })).ToArray();
        for (int i = 0; i < 200; i++)
            memory.SetMemoryMap(i % 2 == 0 ? small : full);
        stop.Cancel();
        Assert.That(Task.WhenAll(readers).Result.Sum(), Is.Zero, "addresses in both maps always read");
    }
}

/// <summary>LeechCore's own text form of a memory map, and the form LC_CMD_MEMMAP_SET reads.</summary>
public class MemoryMapTextTests
{
    [Test]
    public void LeechCores_GET_form_is_read_with_its_remapping()
    {
        // As LcMemMap_GetRangesAsText writes it (%04x %16llx - %16llx -> %16llx), NUL-padded.
        string text =
            "0000                0 -            9ffff ->                0\n" +
            "0001           100000 -         7ffeffff ->           100000\n" +
            "0002        100000000 -        27fffffff ->         7fff0000\n";
        var map = MemoryMapText.Parse(text, "test");
        Assert.That(map, Is.EqualTo(new[]
        {
            new MemoryRange(0, 0xa0000),
            new MemoryRange(0x100000, 0x7fef0000),
            new MemoryRange(0x100000000, 0x180000000, 0x7fff0000),
        }));
    }

    [Test]
    public void The_SET_form_round_trips()
    {
        var map = new MemoryMap([new MemoryRange(0, 0xa0000), new MemoryRange(0x100000000, 0x1000, 0x7fff0000)]);
        string text = MemoryMapText.Format(map);
        Assert.That(text, Is.EqualTo("0x0 0x9ffff 0x0\n0x100000000 0x100000fff 0x7fff0000\n"));
        Assert.That(MemoryMapText.Parse(text, "test"), Is.EqualTo(map));
    }

    [TestCase("1000\n", "line 1")]
    [TestCase("1000 2fff\nzz 3000\n", "line 2")]
    [TestCase("2000 1fff\n", "below the base")]
    [TestCase("0 ffffffffffffffff\n", "whole 64-bit")]
    [TestCase("1000 1fff ffffffffffffffff\n", "wraps")]
    [TestCase("1000 2fff\n2000 3fff\n", "overlap")]
    [TestCase("1 2 3 4\n", "line 1")]
    public void Malformed_maps_are_refused_naming_the_source_and_line(string text, string expected)
    {
        Assert.That(() => MemoryMapText.Parse(text, "device 'x': LeechCore's memory map"),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains("device 'x'").And.Message.Contains(expected));
    }

    [Test]
    public void More_ranges_than_LeechCore_holds_are_refused()
    {
        var text = new System.Text.StringBuilder();
        for (int i = 0; i <= 100; i++)
            text.Append(System.Globalization.CultureInfo.InvariantCulture, $"{(ulong)i * 0x2000:x} {(ulong)i * 0x2000 + 0xfff:x}\n");
        Assert.That(MemoryMapText.Parse(text.ToString(), "big", 101), Has.Count.EqualTo(101));
        Assert.That(() => MemoryMapText.Parse(text.ToString(), "big", 100),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains("line 101").And.Message.Contains("more than 100 ranges"));
    }
}
