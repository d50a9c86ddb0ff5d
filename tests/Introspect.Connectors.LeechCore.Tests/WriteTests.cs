using Introspect.Abi;
using Introspect.TestSupport;

namespace Introspect.Connectors.LeechCore.Tests;

/// <summary>Writes, to a copy of part of the guest's image that LeechCore's file device opens writable.</summary>
public class WriteTests : LeechCoreTest
{
    private TempFolder _folder = null!;
    private string _copy = null!;

    [SetUp]
    public void Copy()
    {
        _folder = new TempFolder();
        _copy = _folder.Write("guest-part.raw", Support.RawImage.AsSpan(0, 1 << 20).ToArray());
    }

    [TearDown]
    public void Remove() => _folder.Dispose();

    [Test]
    public void Aligned_and_unaligned_writes_land_byte_exact()
    {
        using (var memory = Support.OpenLeechCore($"file://file={_copy},write=1"))
        {
            Assert.That(memory.Metadata.ReadOnly, Is.False);
            var requests = new[]
            {
                new MemoryRequest(0x3000, Enumerable.Repeat((byte)0xAA, 0x1000).ToArray()),
                new MemoryRequest(0x5003, new byte[] { 1, 2, 3 }),
                new MemoryRequest(0x6ffc, new byte[] { 4, 5, 6, 7, 8, 9, 10, 11 }),
                new MemoryRequest(0x8000, Enumerable.Repeat((byte)0x55, 0x2000).ToArray()),
            };
            memory.Write(requests);
            Assert.That(requests.All(r => r.Succeeded), Is.True);
            Assert.That(Support.Read(memory, 0x5000, 8), Is.EqualTo(Support.RawImage[0x5000..0x5003].Concat(new byte[] { 1, 2, 3 }).Concat(Support.RawImage[0x5006..0x5008])));
        }
        var file = File.ReadAllBytes(_copy);
        var expected = Support.RawImage.AsSpan(0, 1 << 20).ToArray();
        expected.AsSpan(0x3000, 0x1000).Fill(0xAA);
        new byte[] { 1, 2, 3 }.CopyTo(expected, 0x5003);
        new byte[] { 4, 5, 6, 7, 8, 9, 10, 11 }.CopyTo(expected, 0x6ffc);
        expected.AsSpan(0x8000, 0x2000).Fill(0x55);
        Assert.That(file.AsSpan().SequenceEqual(expected), Is.True, "every other byte is as it was");
        var stats = FakeLeechCore.GetStats();
        Assert.That(stats.WriteScatterCalls, Is.GreaterThan(0UL));
        Assert.That(stats.WriteCalls, Is.EqualTo(3UL), "the 3-byte write and the two halves of the misaligned one go through LcWrite");
    }

    [Test]
    public void A_write_outside_the_map_or_to_a_failing_page_fails_alone()
    {
        FakeLeechCore.FailPage(0x7000);
        using var memory = Support.OpenLeechCore($"file://file={_copy},write=1");
        var requests = new[]
        {
            new MemoryRequest(1 << 20, new byte[8]),
            new MemoryRequest(0x7000, new byte[8]),
            new MemoryRequest(0x7ffe, new byte[4]),
            new MemoryRequest(0x9000, new byte[8]),
        };
        memory.Write(requests);
        Assert.That(requests.Select(r => r.Succeeded), Is.EqualTo(new[] { false, false, false, true }));
    }

    [Test]
    public void A_read_only_device_refuses_writes_and_says_how_to_open_it_writable()
    {
        using var memory = Support.OpenLeechCore($"file://file={_copy}");
        Assert.That(() => memory.Write(new[] { new MemoryRequest(0, new byte[8]) }),
            Throws.TypeOf<NotSupportedException>().With.Message.Contains("read-only").And.Message.Contains("write=1"));
        Assert.That(File.ReadAllBytes(_copy).AsSpan().SequenceEqual(Support.RawImage.AsSpan(0, 1 << 20)), Is.True);
    }
}
