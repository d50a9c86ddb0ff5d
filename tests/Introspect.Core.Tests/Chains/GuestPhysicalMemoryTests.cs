using Introspect.Abi;
using Introspect.Core.Chains;
using Introspect.Core.Tests.Memory;
using Introspect.Core.Tests.Translation;
using Introspect.Core.Translation;
using static Introspect.Core.Tests.Translation.PageTableBuilder;

namespace Introspect.Core.Tests.Chains;

/// <summary>
/// A host process's virtual memory as a guest's physical memory, over the core's own page tables: the host maps a
/// "RAM block" at <see cref="RamBlock"/> page by page onto scattered physical pages, and the guest's physical map puts
/// two pieces of that block at guest-physical 0 and 1 MiB (as QEMU does with RAM below and above a hole).
/// </summary>
public sealed class GuestPhysicalMemoryTests
{
    private const ulong RamBlock = 0x7f12_3400_0000;
    private const int Pages = 32;
    private const ulong HostFrames = 0x20_0000;

    private ArrayPhysicalMemory _host = null!;
    private AddressSpace _process = null!;
    private MemoryMap _guestMap = null!;

    [TearDown]
    public void TearDown() => _host.Dispose();

    [SetUp]
    public void SetUp()
    {
        _host = new ArrayPhysicalMemory(8 << 20);
        var tables = new PageTableBuilder(_host, PagingArchitecture.X64, 0x10_0000);
        ulong root = tables.NewRoot();
        // Page i of the block lives in frame Pages-1-i: neighbours in the block are never neighbours in host RAM.
        for (int i = 0; i < Pages; i++)
        {
            if (i == 20)
                continue; // a page the host never mapped
            ulong frame = HostFrames + (ulong)(Pages - 1 - i) * 0x1000;
            tables.Map(root, RamBlock + (ulong)i * 0x1000, frame, 0x1000, X86Writable | X86User);
            for (int b = 0; b < 0x1000; b += 8)
                BitConverter.TryWriteBytes(_host.Bytes.AsSpan((int)frame + b), Guest(i, b));
        }
        _process = new AddressSpace(_host, PagingArchitecture.X64, root);
        _guestMap = new MemoryMap([
            new MemoryRange(0, 16 * 0x1000, RamBlock),
            new MemoryRange(0x10_0000, 16 * 0x1000, RamBlock + 16 * 0x1000),
        ]);
    }

    /// <summary>The 8 bytes at offset <paramref name="offset"/> of block page <paramref name="page"/>: they say where they are.</summary>
    private static ulong Guest(int page, int offset) => 0xfeed_0000_0000_0000UL | ((ulong)page << 16) | (uint)offset;

    private static ulong GuestPhysical(int page) => page < 16 ? (ulong)page * 0x1000 : 0x10_0000 + (ulong)(page - 16) * 0x1000;

    private static ulong At(byte[] buffer, int offset) => BitConverter.ToUInt64(buffer, offset);

    [Test]
    public void The_map_gives_the_metadata()
    {
        var guest = new GuestPhysicalMemory(_process, _guestMap);

        Assert.That(guest.Metadata, Is.EqualTo(new PhysicalMemoryMetadata(0x10_ffff, 32 * 0x1000, ReadOnly: true, IdealBatchSize: 1024)));
        Assert.That(guest.MemoryMap, Is.SameAs(_guestMap));
    }

    [Test]
    public void Reads_across_pages_that_are_scattered_in_host_ram_come_back_in_guest_order()
    {
        var guest = new GuestPhysicalMemory(_process, _guestMap);
        var buffer = new byte[0x2010];

        Span<MemoryRequest> batch = [new MemoryRequest(0x1ff8, buffer)];
        guest.Read(batch);

        Assert.That(batch[0].Succeeded);
        Assert.That(At(buffer, 0), Is.EqualTo(Guest(1, 0xff8)));
        Assert.That(At(buffer, 8), Is.EqualTo(Guest(2, 0)));
        Assert.That(At(buffer, 0x1008), Is.EqualTo(Guest(3, 0)));
        Assert.That(At(buffer, 0x2008), Is.EqualTo(Guest(4, 0)));
    }

    [Test]
    public void A_batch_goes_down_as_one_translated_batch_whatever_its_size()
    {
        var guest = new GuestPhysicalMemory(_process, _guestMap);
        var requests = new MemoryRequest[24];
        var buffers = new byte[24][];
        int[] pages = [.. Enumerable.Range(0, 32).Where(p => p != 20).Take(24)];
        for (int i = 0; i < requests.Length; i++)
            requests[i] = new MemoryRequest(GuestPhysical(pages[i]) + 0x10, buffers[i] = new byte[16]);
        _host.ResetCounters();

        guest.Read(requests);

        Assert.That(requests.All(r => r.Succeeded));
        for (int i = 0; i < requests.Length; i++)
            Assert.That(At(buffers[i], 0), Is.EqualTo(Guest(pages[i], 0x10)), $"page {pages[i]}");
        Assert.That(_host.ReadCalls, Is.LessThanOrEqualTo(5), "four table levels and the data, breadth-first");
    }

    [Test]
    public void What_the_map_or_the_host_does_not_map_fails_on_its_own_or_reads_as_zeros_when_asked()
    {
        var guest = new GuestPhysicalMemory(_process, _guestMap);
        var edge = new byte[16];
        var hole = new byte[8];
        var unmappedByHost = new byte[8];
        var good = new byte[8];
        var requests = new[]
        {
            new MemoryRequest(0xfff8, edge),                           // the last 8 bytes of the low range, then 8 outside it
            new MemoryRequest(0x8_0000, hole),                         // between the ranges
            new MemoryRequest(GuestPhysical(20), unmappedByHost),      // in the map, but the host has no page there
            new MemoryRequest(GuestPhysical(21) + 8, good),
            new MemoryRequest(ulong.MaxValue - 3, new byte[8]),        // would wrap past 2^64
        };

        guest.Read(requests);

        Assert.That(requests.Select(r => r.Succeeded), Is.EqualTo(new[] { false, false, false, true, false }));
        Assert.That(At(good, 0), Is.EqualTo(Guest(21, 8)));

        edge.AsSpan().Fill(0xcc);
        guest.Read(requests.AsSpan(0, 2), MemoryFlags.ZeroPadOnFail);

        Assert.That(requests[0].Succeeded && requests[1].Succeeded);
        Assert.That(At(edge, 0), Is.EqualTo(Guest(15, 0xff8)));
        Assert.That(At(edge, 8), Is.Zero);
        Assert.That(hole, Is.All.Zero);
    }

    [Test]
    public void Writes_reach_the_host_frames_and_a_read_only_view_refuses_them()
    {
        var writable = new GuestPhysicalMemory(_process, _guestMap, readOnly: false);
        var payload = BitConverter.GetBytes(0x1122_3344_5566_7788UL);

        Span<MemoryRequest> batch = [new MemoryRequest(GuestPhysical(17) + 0x40, payload)];
        writable.Write(batch);

        Assert.That(batch[0].Succeeded);
        Assert.That(BitConverter.ToUInt64(_host.Bytes, (int)(HostFrames + (Pages - 1 - 17) * 0x1000UL + 0x40)), Is.EqualTo(0x1122_3344_5566_7788UL));
        Assert.That(() => new GuestPhysicalMemory(_process, _guestMap).Write([new MemoryRequest(0, payload)]), Throws.TypeOf<NotSupportedException>());
    }

    [Test]
    public void A_new_map_replaces_the_remapping_whole()
    {
        var guest = new GuestPhysicalMemory(_process, _guestMap);

        guest.SetMemoryMap(new MemoryMap([new MemoryRange(0x4000_0000, 0x1000, RamBlock + 5 * 0x1000)]));

        var buffer = new byte[8];
        Span<MemoryRequest> batch = [new MemoryRequest(0x4000_0010, buffer)];
        guest.Read(batch);
        Assert.That(batch[0].Succeeded);
        Assert.That(At(buffer, 0), Is.EqualTo(Guest(5, 0x10)));
        Assert.That(guest.Metadata.MaxAddress, Is.EqualTo(0x4000_0fffUL));
        batch[0] = new MemoryRequest(0x10, buffer);
        guest.Read(batch);
        Assert.That(batch[0].Succeeded, Is.False);
    }

    [Test]
    public void Disposing_the_view_leaves_the_process_memory_to_its_owner()
    {
        var guest = new GuestPhysicalMemory(_process, _guestMap);

        guest.Dispose();

        Assert.That(_host.Disposed, Is.False);
        Assert.That(_process.Physical, Is.SameAs(_host));
        var buffer = new byte[8];
        Span<MemoryRequest> batch = [new MemoryRequest(RamBlock, buffer)];
        _process.Read(batch);
        Assert.That(batch[0].Succeeded);
    }
}
