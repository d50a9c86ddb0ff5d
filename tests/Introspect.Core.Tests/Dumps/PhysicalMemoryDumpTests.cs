using System.Buffers.Binary;
using System.Text;
using Introspect.Abi;
using Introspect.Core.Dumps;

namespace Introspect.Core.Tests.Dumps;

public class PhysicalMemoryDumpTests
{
    private string _scratch = null!;

    [SetUp]
    public void CreateScratch() => _scratch = Directory.CreateTempSubdirectory("introspect-dump-").FullName;

    [TearDown]
    public void DeleteScratch() => Directory.Delete(_scratch, recursive: true);

    [Test]
    public void A_raw_dump_puts_each_byte_at_its_address_and_zeros_what_failed_page_by_page()
    {
        // Two ranges with a hole between them, and one unreadable page in the middle of the second.
        var memory = new PatternMemory([new MemoryRange(0, 0x3000), new MemoryRange(0x200000, 0x180000)], badPage: 0x280000);
        var path = Path.Combine(_scratch, "out.raw");

        var result = PhysicalMemoryDump.WriteRaw(memory, path);

        var bytes = File.ReadAllBytes(path);
        Assert.That(result.FileSize, Is.EqualTo(0x380000UL));
        Assert.That(bytes, Has.Length.EqualTo(0x380000));
        Assert.That(result.BytesCovered, Is.EqualTo(0x183000UL));
        Assert.That(result.UnreadableBytes, Is.EqualTo(0x1000UL));
        Assert.That(bytes.AsSpan(0x1234, 8).ToArray(), Is.EqualTo(PatternMemory.At(0x1234, 8)));
        Assert.That(bytes.AsSpan(0x3000, 0x200000 - 0x3000).IndexOfAnyExcept((byte)0), Is.EqualTo(-1), "the hole reads as zeros");
        Assert.That(bytes.AsSpan(0x27fff8, 8).ToArray(), Is.EqualTo(PatternMemory.At(0x27fff8, 8)), "the page before the bad one");
        Assert.That(bytes.AsSpan(0x280000, 0x1000).IndexOfAnyExcept((byte)0), Is.EqualTo(-1), "the bad page alone is zeroed");
        Assert.That(bytes.AsSpan(0x281000, 8).ToArray(), Is.EqualTo(PatternMemory.At(0x281000, 8)), "the page after the bad one");
    }

    [Test]
    public void An_elf_dump_has_one_load_segment_per_range_and_the_vmcoreinfo_note()
    {
        var memory = new PatternMemory([new MemoryRange(0, 0x3000), new MemoryRange(0x200000, 0x2000)], badPage: null);
        var path = Path.Combine(_scratch, "out.elf");

        PhysicalMemoryDump.WriteElf(memory, path, new ConnectorHints { VmcoreInfo = "OSRELEASE=6.1.0\n", Architecture = MachineArchitecture.X64 });

        var file = File.ReadAllBytes(path);
        Assert.That(file.AsSpan(0, 4).ToArray(), Is.EqualTo("\u007fELF"u8.ToArray()));
        Assert.That(BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(16)), Is.EqualTo(4), "ET_CORE");
        Assert.That(BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(18)), Is.EqualTo(62), "EM_X86_64");
        Assert.That(BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(56)), Is.EqualTo(3));
        var note = ProgramHeader(file, 0);
        Assert.That(note.Type, Is.EqualTo(4u));
        Assert.That(Encoding.ASCII.GetString(file, (int)note.Offset + 12, 10), Is.EqualTo("VMCOREINFO"));
        Assert.That(Encoding.ASCII.GetString(file, (int)note.Offset + 24, 16), Is.EqualTo("OSRELEASE=6.1.0\n"));
        var second = ProgramHeader(file, 2);
        Assert.That((second.Type, second.Physical, second.Size), Is.EqualTo((1u, 0x200000UL, 0x2000UL)));
        Assert.That(second.Offset % 4096, Is.Zero);
        Assert.That(file.AsSpan((int)second.Offset + 0x10, 8).ToArray(), Is.EqualTo(PatternMemory.At(0x200010, 8)));
    }

    private static (uint Type, ulong Offset, ulong Physical, ulong Size) ProgramHeader(byte[] file, int index)
    {
        var header = file.AsSpan(64 + index * 56);
        return (BinaryPrimitives.ReadUInt32LittleEndian(header), BinaryPrimitives.ReadUInt64LittleEndian(header[8..]),
            BinaryPrimitives.ReadUInt64LittleEndian(header[24..]), BinaryPrimitives.ReadUInt64LittleEndian(header[32..]));
    }

    /// <summary>Memory whose every byte is derived from its address, with one page that never reads.</summary>
    private sealed class PatternMemory(IEnumerable<MemoryRange> ranges, ulong? badPage) : IPhysicalMemory
    {
        public static byte[] At(ulong address, int length) => Enumerable.Range(0, length).Select(i => Byte(address + (ulong)i)).ToArray();

        private static byte Byte(ulong address) => unchecked((byte)((address >> 12) * 31 + address * 7 + 1));

        public PhysicalMemoryMetadata Metadata => new(MemoryMap.MaxAddress, MemoryMap.TotalSize, true, 64);

        public MemoryMap MemoryMap { get; private set; } = new(ranges);

        public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
        {
            foreach (ref var request in batch)
            {
                ulong last = request.Address + (ulong)request.Buffer.Length - 1;
                int range = MemoryMap.IndexOf(request.Address);
                bool touchesBadPage = badPage is { } bad && request.Address <= bad + 0xfff && last >= bad;
                request.Succeeded = range >= 0 && MemoryMap[range].Contains(last) && !touchesBadPage;
                if (request.Succeeded)
                    At(request.Address, request.Buffer.Length).CopyTo(request.Buffer.Span);
            }
        }

        public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => throw new NotSupportedException();

        public void SetMemoryMap(MemoryMap map) => MemoryMap = map;

        public void Dispose() { }
    }
}
