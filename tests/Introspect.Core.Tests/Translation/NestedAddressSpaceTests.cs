using Introspect.Abi;
using Introspect.Core.Caching;
using Introspect.Core.Memory;
using Introspect.Core.Tests.Memory;
using Introspect.Core.Translation;
using static Introspect.Core.Tests.Translation.PageTableBuilder;

namespace Introspect.Core.Tests.Translation;

/// <summary>A guest's address space read through its host's: the guest's RAM is a host process's virtual memory.</summary>
public sealed class NestedAddressSpaceTests
{
    private const ulong GuestRamInHost = 0x7f00_0000_0000;
    private const int GuestRamSize = 4 << 20;

    [Test]
    public void A_guest_address_space_over_a_hosts_virtual_memory_translates_through_both()
    {
        // The guest's physical memory, built first on its own: tables and one page of data.
        using var guestImage = new ArrayPhysicalMemory(GuestRamSize);
        var guestTables = new PageTableBuilder(guestImage, PagingArchitecture.X64, 0x10_0000);
        ulong guestRoot = guestTables.NewRoot();
        guestTables.Map(guestRoot, 0xffff_8000_0000_0000, 0x5000, 0x1000, X86Writable);
        guestTables.Map(guestRoot, 0xffff_8000_0000_1000, 0x9000, 0x1000, X86Writable);
        Random.Shared.NextBytes(guestImage.Bytes.AsSpan(0x5000, 0x1000));
        Random.Shared.NextBytes(guestImage.Bytes.AsSpan(0x9000, 0x1000));

        // The host maps the guest's RAM page by page, scattered over its own physical memory.
        using var host = new ArrayPhysicalMemory(16 << 20);
        var hostTables = new PageTableBuilder(host, PagingArchitecture.X64, 0xc0_0000);
        ulong hostRoot = hostTables.NewRoot();
        for (int page = 0; page < GuestRamSize / 0x1000; page++)
        {
            ulong hostFrame = 0x40_0000 + (ulong)(page * 7 % 1024) * 0x1000;
            hostTables.Map(hostRoot, GuestRamInHost + (ulong)page * 0x1000, hostFrame, 0x1000, X86Writable | X86User);
            guestImage.Bytes.AsSpan(page * 0x1000, 0x1000).CopyTo(host.Bytes.AsSpan((int)hostFrame));
        }
        var hostProcess = new AddressSpace(host, PagingArchitecture.X64, hostRoot, tlb: new TranslationCache(256, CacheValidity.Forever));
        using var guestPhysical = new VirtualRangeAsPhysical(hostProcess, GuestRamInHost, GuestRamSize);
        var guest = new AddressSpace(guestPhysical, PagingArchitecture.X64, guestRoot);

        Span<byte> small = stackalloc byte[8];
        Assert.That(guest.Read(0xffff_8000_0000_0010, small), Is.EqualTo(8));
        Assert.That(small.SequenceEqual(guestImage.Bytes.AsSpan(0x5010, 8)), Is.True);
        var crossing = new byte[0x20];
        Assert.That(guest.Read(0xffff_8000_0000_0ff0, crossing), Is.EqualTo(0x20));
        Assert.That(crossing.AsSpan(0, 0x10).SequenceEqual(guestImage.Bytes.AsSpan(0x5ff0, 0x10)), Is.True);
        Assert.That(crossing.AsSpan(0x10).SequenceEqual(guestImage.Bytes.AsSpan(0x9000, 0x10)), Is.True);
        Assert.That(guest.TryTranslate(0xffff_8000_0000_1008, out var t), Is.True);
        Assert.That(t.PhysicalAddress, Is.EqualTo(0x9008UL), "a guest physical address");
    }

    /// <summary>A range of virtual memory served as physical memory from 0: a guest's RAM inside its host's process.</summary>
    private sealed class VirtualRangeAsPhysical(IMemory virtualMemory, ulong start, ulong size) : IPhysicalMemory
    {
        public PhysicalMemoryMetadata Metadata => new(size - 1, size, true, 1024);

        public MemoryMap MemoryMap { get; private set; } = MemoryMap.Linear(size);

        public void SetMemoryMap(MemoryMap map) => MemoryMap = map;

        public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
        {
            var moved = new MemoryRequest[batch.Length];
            for (int i = 0; i < batch.Length; i++)
            {
                bool inside = batch[i].Address < size && (ulong)batch[i].Buffer.Length <= size - batch[i].Address;
                moved[i] = new MemoryRequest(inside ? start + batch[i].Address : ulong.MaxValue, inside ? batch[i].Buffer : Memory<byte>.Empty);
            }
            virtualMemory.Read(moved, flags);
            for (int i = 0; i < batch.Length; i++)
                batch[i].Succeeded = moved[i].Succeeded && moved[i].Address != ulong.MaxValue;
        }

        public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => throw new NotSupportedException();

        public void Dispose() { }
    }
}
