using System.Buffers.Binary;
using System.Text;
using Introspect.Abi;
using Introspect.Core.Memory;
using Introspect.Os.Linux.Types;
using Introspect.TestSupport;

namespace Introspect.Os.Linux.Tests;

/// <summary>The BTF reader on the shared guest's own BTF blob, whole and damaged, and on small blobs built for one case each.</summary>
public sealed class BtfTests
{
    private byte[] _blob = null!;

    [OneTimeSetUp]
    public void ReadBlob()
    {
        using var memory = LinuxSupport.OpenDump(TestInputs.LinuxRawImage);
        using var os = LinuxSupport.OpenLinux(memory);
        var symbols = (IKernelSymbols)os;
        Assert.That(symbols.TryGetSymbolAddress("__start_BTF", out ulong start), Is.True);
        Assert.That(symbols.TryGetSymbolAddress("__stop_BTF", out ulong stop), Is.True);
        _blob = new byte[stop - start];
        Assert.That(((LinuxOperatingSystem)os).KernelMemory.Read(start, _blob), Is.EqualTo(_blob.Length));
    }

    [Test]
    public void The_kernels_blob_parses_whole()
    {
        var btf = BtfTypes.Parse(_blob, "test");
        Assert.That(btf.TypeCount, Is.GreaterThan(100_000));
        Assert.That(btf.TryGetField("task_struct", "comm", out var comm), Is.True);
        Assert.That((comm.Offset, comm.Size, comm.ElementCount), Is.EqualTo((0xba0UL, 16UL, (ulong?)16)));
        // Members of anonymous unions and structures are found by their own names, through any depth.
        Assert.That(btf.TryGetField("dentry", "d_name.len", out var length), Is.True);
        Assert.That(btf.TryGetField("dentry", "d_name.name", out var name), Is.True);
        Assert.That(name.Offset - length.Offset, Is.EqualTo(4UL), "qstr: hash and len share a u64, the name pointer follows");
        Assert.That(btf.TryGetField("maple_range_64", "slot", out var slots) && slots.ElementCount == 16, Is.True);
        Assert.That(btf.TryGetField("maple_arange_64", "slot", out var aslots) && aslots.ElementCount == 10, Is.True);
        Assert.That(btf.TryGetTypeSize("maple_node", out ulong node) && node == 256, Is.True);
        Assert.That(btf.TryGetTypeSize("union maple_tree_no_such", out _), Is.False);
    }

    [Test]
    public void Bit_fields_report_their_bits()
    {
        var btf = BtfTypes.Parse(_blob, "test");
        // task_struct's sched_reset_on_fork is a one-bit field (include/linux/sched.h).
        Assert.That(btf.TryGetField("task_struct", "sched_reset_on_fork", out var bit), Is.True);
        Assert.That(bit.BitSize, Is.EqualTo(1));
        Assert.That(bit.BitOffset, Is.InRange(0, 7));
    }

    [TestCase(0)]
    [TestCase(23)]
    [TestCase(24)]
    [TestCase(1000)]
    [TestCase(-1)]
    public void A_truncated_blob_is_refused(int keep)
    {
        var cut = _blob.AsSpan(0, keep >= 0 ? keep : _blob.Length + keep).ToArray();
        var error = Assert.Throws<InvalidDataException>(() => BtfTypes.Parse(cut, "cut BTF"));
        Assert.That(error!.Message, Does.StartWith("cut BTF: "));
    }

    [TestCase(0, 0x1234u, 2, "magic is 0x1234")]
    [TestCase(2, 2u, 1, "version is 2")]
    [TestCase(4, 0x7fff_ffffu, 4, "header length is 2147483647")]
    [TestCase(8, 0xffff_0000u, 4, "type section (offset 4294901760")]
    [TestCase(20, 0xffff_fff0u, 4, "string section")]
    public void A_damaged_header_is_refused(int offset, uint value, int width, string expected)
    {
        var damaged = (byte[])_blob.Clone();
        if (width == 2)
            BinaryPrimitives.WriteUInt16LittleEndian(damaged.AsSpan(offset), (ushort)value);
        else if (width == 1)
            damaged[offset] = (byte)value;
        else
            BinaryPrimitives.WriteUInt32LittleEndian(damaged.AsSpan(offset), value);
        var error = Assert.Throws<InvalidDataException>(() => BtfTypes.Parse(damaged, "BTF"));
        Assert.That(error!.Message, Does.Contain(expected));
    }

    [Test]
    public void An_unknown_kind_is_refused_with_its_type_number()
    {
        var damaged = (byte[])_blob.Clone();
        int types = 24 + (int)BinaryPrimitives.ReadUInt32LittleEndian(damaged.AsSpan(8));
        damaged[types + 7] = 0x1f; // type #1's kind byte
        var error = Assert.Throws<InvalidDataException>(() => BtfTypes.Parse(damaged, "BTF"));
        Assert.That(error!.Message, Does.Contain("type #1").And.Contain("kind 31"));
    }

    [Test]
    public void A_member_count_past_the_section_is_refused()
    {
        var blob = new BtfBuilder();
        int u32 = blob.Int("u32", 4);
        blob.Struct("huge", 8, [("a", u32, 0)]);
        var bytes = blob.Build();
        // The struct is the last type; give it 65535 members, which the section cannot hold.
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(24 + 16 + 4), 0xffff);
        var error = Assert.Throws<InvalidDataException>(() => BtfTypes.Parse(bytes, "BTF"));
        Assert.That(error!.Message, Does.Contain("type #2").And.Contain("65535 entries"));
    }

    [Test]
    public void Typedefs_that_loop_answer_nothing_and_do_not_hang()
    {
        var blob = new BtfBuilder();
        int first = blob.Typedef("first", 2);
        blob.Typedef("second", first);
        blob.Struct("holder", 8, [("field", first, 0)]);
        var btf = BtfTypes.Parse(blob.Build(), "BTF");
        Assert.That(btf.TryGetTypeSize("first", out _), Is.False);
        Assert.That(btf.TryGetField("holder", "field", out var field), Is.True);
        Assert.That(field.Size, Is.Zero, "a looping type has no size");
        Assert.That(btf.TryGetField("holder", "field.inner", out _), Is.False);
    }

    [Test]
    public void References_out_of_range_answer_nothing()
    {
        var blob = new BtfBuilder();
        blob.Struct("holder", 8, [("field", 999, 0)]);
        blob.Typedef("dangling", 12345);
        var bytes = blob.Build();
        var btf = BtfTypes.Parse(bytes, "BTF");
        Assert.That(btf.TryGetField("holder", "field", out var field) && field.Size == 0, Is.True);
        Assert.That(btf.TryGetTypeSize("dangling", out _), Is.False);
        // A name offset past the strings makes the type nameless rather than failing the parse.
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(24), 0x7fff_0000);
        Assert.That(BtfTypes.Parse(bytes, "BTF").TryGetTypeSize("holder", out _), Is.False);
    }

    [Test]
    public void Anonymous_members_nest_and_bit_fields_carry_their_offsets()
    {
        var blob = new BtfBuilder();
        int u32 = blob.Int("u32", 4);
        int u64 = blob.Int("u64", 8);
        int inner = blob.Struct(null, 8, [("hash", u32, 0), ("len", u32, 32)]);
        int union = blob.Union(null, 8, [("", inner, 0), ("hash_len", u64, 0)]);
        int qstr = blob.Struct("qstr", 16, [("", union, 0), ("name", u64, 64)]);
        blob.Struct("outer", 48, [("pad", u64, 0), ("q", qstr, 128)]);
        blob.BitfieldStruct("flags", 4, [("low", u32, 0, 3), ("high", u32, 13, 5)]);
        var btf = BtfTypes.Parse(blob.Build(), "BTF");
        Assert.That(btf.TryGetField("outer", "q.len", out var len) && len.Offset == 20 && len.Size == 4, Is.True);
        Assert.That(btf.TryGetField("outer", "q.hash_len", out var hashLen) && hashLen.Offset == 16 && hashLen.Size == 8, Is.True);
        Assert.That(btf.TryGetField("flags", "high", out var high), Is.True);
        Assert.That((high.Offset, high.BitOffset, high.BitSize), Is.EqualTo((1UL, 5, 5)));
        Assert.That(btf.TryGetField("flags", "high.x", out _), Is.False, "a bit field has no members");
    }

    /// <summary>Builds small BTF blobs: a header, types and strings, each type as include/uapi/linux/btf.h lays it out.</summary>
    private sealed class BtfBuilder
    {
        private readonly MemoryStream _types = new();
        private readonly MemoryStream _strings = new();
        private int _next = 1;

        public BtfBuilder() => _strings.WriteByte(0); // offset 0 is the empty name

        private uint Name(string? name)
        {
            if (string.IsNullOrEmpty(name))
                return 0;
            uint offset = (uint)_strings.Position;
            _strings.Write(Encoding.ASCII.GetBytes(name + "\0"));
            return offset;
        }

        private void U32(uint value)
        {
            Span<byte> bytes = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
            _types.Write(bytes);
        }

        private int Type(string? name, int kind, int vlen, uint sizeOrType, bool kindFlag = false)
        {
            U32(Name(name));
            U32((uint)vlen | ((uint)kind << 24) | (kindFlag ? 1u << 31 : 0));
            U32(sizeOrType);
            return _next++;
        }

        public int Int(string name, uint size)
        {
            int id = Type(name, 1, 0, size);
            U32(size * 8);
            return id;
        }

        public int Typedef(string name, int target) => Type(name, 8, 0, (uint)target);

        public int Struct(string? name, uint size, (string Name, int Type, uint BitOffset)[] members) => Aggregate(4, name, size, members);

        public int Union(string? name, uint size, (string Name, int Type, uint BitOffset)[] members) => Aggregate(5, name, size, members);

        private int Aggregate(int kind, string? name, uint size, (string Name, int Type, uint BitOffset)[] members)
        {
            int id = Type(name, kind, members.Length, size);
            foreach (var (member, type, bits) in members)
            {
                U32(Name(member));
                U32((uint)type);
                U32(bits);
            }
            return id;
        }

        public int BitfieldStruct(string name, uint size, (string Name, int Type, uint BitOffset, uint Width)[] members)
        {
            int id = Type(name, 4, members.Length, size, kindFlag: true);
            foreach (var (member, type, bits, width) in members)
            {
                U32(Name(member));
                U32((uint)type);
                U32(bits | (width << 24));
            }
            return id;
        }

        public byte[] Build()
        {
            var types = _types.ToArray();
            var strings = _strings.ToArray();
            var blob = new byte[24 + types.Length + strings.Length];
            BinaryPrimitives.WriteUInt16LittleEndian(blob, 0xEB9F);
            blob[2] = 1;
            BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(4), 24);
            BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(8), 0);
            BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(12), (uint)types.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(16), (uint)types.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(20), (uint)strings.Length);
            types.CopyTo(blob, 24);
            strings.CopyTo(blob, 24 + types.Length);
            return blob;
        }
    }
}
