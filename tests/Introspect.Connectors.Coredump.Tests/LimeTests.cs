using Introspect.Abi;
using Introspect.Connectors.Coredump.Tests.Builders;
using Moq;

namespace Introspect.Connectors.Coredump.Tests;

/// <summary>LiME dumps built from the raw image's ranges, and broken ones.</summary>
public class LimeTests
{
    private TempFolder _folder = null!;

    [OneTimeSetUp]
    public void MakeFolder() => _folder = new TempFolder();

    [OneTimeTearDown]
    public void RemoveFolder() => _folder.Dispose();

    private static (ulong Start, byte[] Data) RawRange(ulong start, int size) => (start, Support.RawImage.AsSpan((int)start, size).ToArray());

    [Test]
    public void A_lime_dump_reads_back_the_raw_image()
    {
        string path = _folder.Write("guest.lime", LimeBuilder.Build([RawRange(0, 0x9F000), RawRange(0x100000, 0x1F00000), RawRange(0x4000000, 0x123)]));
        using var memory = Support.Open(path);
        Assert.That(Support.HintsOf(memory).Format, Is.EqualTo("lime"));
        Assert.That(memory.MemoryMap.Select(r => (r.Base, r.Size)), Is.EqualTo(new[] { (0UL, 0x9F000UL), (0x100000UL, 0x1F00000UL), (0x4000000UL, 0x123UL) }));
        Assert.That(memory.MemoryMap[0].BackingBase, Is.EqualTo(32UL));
        int pages = 0;
        Support.ForEachMappedPage(memory, (address, bytes) =>
        {
            if (address == 0x4000000)
            {
                Assert.That(bytes, Is.Null, "only 0x123 bytes of that page are in the dump");
                return;
            }
            if (bytes is null || !bytes.AsSpan().SequenceEqual(Support.RawPage(address / Support.PageSize)))
                Assert.Fail($"page 0x{address:x}");
            pages++;
        });
        Assert.That(pages, Is.EqualTo(0x9F + 0x1F00));
        Assert.That(Support.Read(memory, 0x4000000, 0x123), Is.EqualTo(Support.RawImage.AsSpan(0x4000000, 0x123).ToArray()));
    }

    private static IEnumerable<TestCaseData> BrokenFiles()
    {
        var good = RawRange(0x1000, 0x2000);
        yield return new TestCaseData(LimeBuilder.Build([good]).Concat(LimeBuilder.Header(0x10000, 0x10fff, magic: 0x12345678)).Concat(new byte[0x1000]).ToArray(), "magic is 0x12345678");
        yield return new TestCaseData(LimeBuilder.Header(0x1000, 0x1fff, version: 2).Concat(new byte[0x1000]).ToArray(), "version is 2");
        yield return new TestCaseData(LimeBuilder.Header(0x2000, 0x1000).Concat(new byte[0x1000]).ToArray(), "0x2000-0x1000 is empty");
        yield return new TestCaseData(LimeBuilder.Header(0, ulong.MaxValue).Concat(new byte[0x1000]).ToArray(), "spans the whole address space");
        yield return new TestCaseData(LimeBuilder.Header(0x1000, 0xFFFF_FFFF_FFFF).Concat(new byte[0x1000]).ToArray(), "past the end of the file");
        yield return new TestCaseData(LimeBuilder.Build([good, RawRange(0x2000, 0x1000)]), "overlap");
        yield return new TestCaseData(LimeBuilder.Build([good]).Concat(new byte[10]).ToArray(), "LiME range header #1");
    }

    [TestCaseSource(nameof(BrokenFiles))]
    public void A_broken_lime_dump_is_refused_by_field(byte[] file, string expected)
    {
        string path = _folder.Write($"broken-{Guid.NewGuid():N}.lime", file);
        Assert.That(() => Support.Open(path), Throws.TypeOf<InvalidDataException>().With.Message.Contains(expected).And.Message.Contains(path));
    }

    [Test]
    public void A_truncated_lime_dump_serves_what_it_holds_when_allowed()
    {
        var file = LimeBuilder.Build([RawRange(0, 0x10000), RawRange(0x100000, 0x10000)]);
        string path = _folder.Write("truncated.lime", file[..^0x4000]);
        Assert.That(() => Support.Open(path), Throws.TypeOf<InvalidDataException>().With.Message.Contains("truncated"));
        var context = new Mock<IPluginContext>();
        using var memory = Support.Open(path, allowTruncated: true, context: context.Object);
        Assert.That(memory.MemoryMap.TotalSize, Is.EqualTo(0x1C000UL));
        Assert.That(Support.Read(memory, 0x10B000, 4096), Is.EqualTo(Support.RawPage(0x10B).ToArray()));
        Assert.That(Support.Read(memory, 0x10C000, 8), Is.Null);
        context.Verify(c => c.Log(PluginLogLevel.Warning, It.Is<string>(m => m.Contains("LiME range header #1"))), Times.Once);
    }
}
