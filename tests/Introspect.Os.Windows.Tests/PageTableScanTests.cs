using System.Buffers.Binary;
using Introspect.Core.Translation;
using Introspect.Os.Windows.Bootstrap;

namespace Introspect.Os.Windows.Tests;

/// <summary>The 32-bit self-map scans on table sets laid out as Windows lays them out (no 32-bit fixture image is at hand):
/// x86 PAE's fourth page directory mapping the four directories, x86's directory mapping itself at 0xC0000000.</summary>
public sealed class PageTableScanTests
{
    private static void Entry64(byte[] memory, ulong at, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(memory.AsSpan((int)at), value);

    private static void Entry32(byte[] memory, ulong at, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(memory.AsSpan((int)at), value);

    [Test]
    public void The_pae_scan_finds_the_pdpt_that_points_at_the_self_mapped_directories()
    {
        var bytes = new byte[1 << 20];
        ulong[] directories = [0x9000, 0x3000, 0x7000, 0x5000];
        // The page directory for 0xC0000000 maps the four directories at 0xC0600000 (its entries 0..3), itself the fourth.
        for (int i = 0; i < 4; i++)
            Entry64(bytes, directories[3] + (ulong)i * 8, directories[i] | 0x63);
        // The PDPT: 32 bytes, 32-byte aligned, four present entries and nothing else.
        for (int i = 0; i < 4; i++)
            Entry64(bytes, 0xB020 + (ulong)i * 8, directories[i] | 1);
        // A directory mapping a page: the table set works through the walker.
        Entry64(bytes, directories[2] + 8 * 5, 0xC000 | 0x63); // PDE for 0x80A00000 -> page table 0xC000
        Entry64(bytes, 0xC000 + 8 * 1, 0xD000 | 0x63); // PTE for 0x80A01000 -> page 0xD000
        bytes[0xD010] = 0x5A;
        using var memory = new ByteMemory(bytes);
        var candidate = DtbLocator.ScanPae(memory, (ulong)bytes.Length).Single();
        Assert.That(candidate.Dtb, Is.EqualTo(0xB020UL));
        Assert.That(candidate.Paging, Is.SameAs(PagingArchitecture.X86Pae));
        var space = new AddressSpace(memory, candidate.Paging, candidate.Dtb);
        Assert.That(space.TryTranslate(0x80A01010, out PageTranslation translation), Is.True);
        Assert.That(translation.PhysicalAddress, Is.EqualTo(0xD010UL));
        Assert.That(space.TryTranslate(0xC0603000, out translation), Is.True, "the self-map shows the fourth directory");
        Assert.That(translation.PhysicalAddress, Is.EqualTo(directories[3]));
    }

    [Test]
    public void The_x86_scan_finds_the_directory_that_maps_itself_at_0xC0000000()
    {
        var bytes = new byte[1 << 20];
        Entry32(bytes, 0x6000 + 0x300 * 4, 0x6000 | 0x63);
        Entry32(bytes, 0x6000 + 0x200 * 4, 0x8000 | 0x63);
        // A page with the same entry elsewhere is not a directory mapping itself.
        Entry32(bytes, 0x4000 + 0x300 * 4, 0x6000 | 0x63);
        using var memory = new ByteMemory(bytes);
        var candidate = DtbLocator.ScanX86(memory, (ulong)bytes.Length).Single();
        Assert.That(candidate.Dtb, Is.EqualTo(0x6000UL));
        Assert.That(candidate.SelfMapIndex, Is.EqualTo(0x300));
    }

    [Test]
    public void The_x64_scan_wants_a_kernel_half_self_reference()
    {
        var bytes = new byte[1 << 20];
        Entry64(bytes, 0x3000 + 0x1ED * 8, 0x8000_0000_0000_3063);
        Entry64(bytes, 0x3000 + 0x1F0 * 8, 0x0000_0000_0000_5063);
        // A user-half self reference is not Windows' self-map.
        Entry64(bytes, 0x7000 + 0x010 * 8, 0x0000_0000_0000_7067);
        Entry64(bytes, 0x7000 + 0x1F0 * 8, 0x0000_0000_0000_5063);
        using var memory = new ByteMemory(bytes);
        var candidate = DtbLocator.ScanX64(memory, (ulong)bytes.Length).Single();
        Assert.That((candidate.Dtb, candidate.SelfMapIndex), Is.EqualTo((0x3000UL, (int?)0x1ED)));
    }

    [Test]
    public void The_low_stub_check_refuses_a_page_that_only_looks_like_one()
    {
        var bytes = new byte[1 << 20];
        Entry64(bytes, 0x2000, 0x0000_0001_0006_00E9);
        Entry64(bytes, 0x2070, 0xFFFF_F800_1234_5000);
        Entry64(bytes, 0x20A0, 0x1AB000);
        Entry64(bytes, 0x5000, 0x0000_0001_0006_00E9);
        Entry64(bytes, 0x5070, 0x0000_7FF8_1234_5000); // not a kernel entry
        Entry64(bytes, 0x50A0, 0x1AB000);
        using var memory = new ByteMemory(bytes);
        var stub = DtbLocator.FindLowStub(memory, null);
        Assert.That(stub, Is.Not.Null);
        Assert.That((stub!.Dtb, stub.KernelEntry), Is.EqualTo((0x1AB000UL, (ulong?)0xFFFF_F800_1234_5000)));
        Entry64(bytes, 0x20A0, 0x1AB001); // CR3 with low bits set
        Assert.That(DtbLocator.FindLowStub(memory, null), Is.Null);
    }
}
