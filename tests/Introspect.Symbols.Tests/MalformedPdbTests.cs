using System.Buffers.Binary;
using Introspect.Symbols.Pdb;
using Introspect.TestSupport;
using static Introspect.Symbols.Tests.TypeRecords;

namespace Introspect.Symbols.Tests;

/// <summary>Bad PDBs give an <see cref="InvalidDataException"/> that names the file, the field, the value and the
/// limit; never a hang, a crash or a huge allocation.</summary>
[CancelAfter(30_000)]
public class MalformedPdbTests
{
    private static PdbFile Load(byte[] bytes) => PdbFile.Load(bytes, "bad.pdb");

    private static void AssertBad(Action action, params string[] mentions)
    {
        var error = Assert.Throws<InvalidDataException>(() => action());
        Assert.That(error!.Message, Does.Contain("bad.pdb"));
        foreach (var mention in mentions)
            Assert.That(error.Message, Does.Contain(mention), error.Message);
    }

    [Test]
    public void A_minimal_pdb_of_our_builder_opens()
    {
        var pdb = Load(MsfBuilder.Pdb().Build());

        Assert.That(pdb.Age, Is.EqualTo(1));
        Assert.That(pdb.TypeCount, Is.Zero);
        Assert.That(pdb.Symbols, Is.Empty);
    }

    [Test]
    public void A_file_that_is_not_an_msf_pdb_is_refused() =>
        AssertBad(() => Load(new byte[4096]), "signature", "MSF 7.00");

    [Test]
    public void A_file_cut_inside_the_superblock_is_refused() =>
        AssertBad(() => Load(MsfBuilder.Pdb().Build()[..40]), "superblock", "truncated");

    [TestCase(0.25)]
    [TestCase(0.5)]
    [TestCase(0.9)]
    public void A_real_pdb_cut_short_is_refused_with_what_lies_past_the_end(double keep)
    {
        var bytes = File.ReadAllBytes(TestInputs.TestData("pdb", "breakpad", "dump_syms_regtest64.pdb"));

        AssertBad(() => Load(bytes[..(int)(bytes.Length * keep)]).FindType("google_breakpad::C"));
    }

    [Test]
    public void A_stream_count_of_two_to_the_31_is_refused_before_anything_is_allocated()
    {
        var builder = MsfBuilder.Pdb();
        builder.StreamCountOverride = 0x80000000;

        AssertBad(() => Load(builder.Build()), "NumStreams", "2147483648", "at most");
    }

    [Test]
    public void A_stream_block_past_the_last_block_is_refused()
    {
        var builder = MsfBuilder.Pdb();
        builder.FirstBlockOverride = 1_000_000;

        AssertBad(() => Load(builder.Build()), "block", "1000000", "NumBlocks");
    }

    [Test]
    public void A_block_count_larger_than_the_file_is_refused()
    {
        var bytes = MsfBuilder.Pdb().Build();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(40), 0x7fffffff);

        AssertBad(() => Load(bytes), "NumBlocks", "2147483647");
    }

    [Test]
    public void An_absurd_type_count_is_refused_against_the_bytes_that_would_hold_it()
    {
        var tpi = MsfBuilder.TpiStream([(Modifier, [.. U32(0x74), .. U16(1)])], endOverride: 0xffffffff);

        AssertBad(() => _ = Load(MsfBuilder.Pdb(tpi).Build()).TypeCount, "TPI", "type count", "at most");
    }

    [Test]
    public void A_type_record_running_past_the_stream_is_refused()
    {
        var tpi = MsfBuilder.TpiStream([(Modifier, [.. U32(0x74), .. U16(1)])]);
        BinaryPrimitives.WriteUInt16LittleEndian(tpi.AsSpan(56), 0x7ff0);

        AssertBad(() => _ = Load(MsfBuilder.Pdb(tpi).Build()).TypeCount, "length of type 0x1000");
    }

    [Test]
    public void A_field_list_that_continues_into_itself_is_a_cycle_not_a_hang()
    {
        var tpi = MsfBuilder.TpiStream([
            (FieldList, [.. Member(0x74, 0, "a"), .. Continue(0x1000)]),
            (Structure, Struct(0x1000, 4, "Loop")),
        ]);
        var pdb = Load(MsfBuilder.Pdb(tpi).Build());

        AssertBad(() => _ = pdb.FindType("Loop")!.Fields, "field list", "0x1000", "cycle");
        AssertBad(() => pdb.TryGetFieldOffset("Loop", "a", out _), "cycle");
        AssertBad(() => pdb.DumpType("Loop"), "cycle");
    }

    [Test]
    public void Field_lists_continuing_into_each_other_are_a_cycle()
    {
        var tpi = MsfBuilder.TpiStream([
            (FieldList, [.. Member(0x74, 0, "a"), .. Continue(0x1001)]),
            (FieldList, [.. Member(0x74, 4, "b"), .. Continue(0x1000)]),
            (Structure, Struct(0x1000, 8, "PingPong", 2)),
        ]);

        AssertBad(() => _ = Load(MsfBuilder.Pdb(tpi).Build()).FindType("PingPong")!.Fields, "cycle");
    }

    [Test]
    public void A_modifier_of_itself_is_a_cycle_when_sized_or_named()
    {
        var tpi = MsfBuilder.TpiStream([
            (Modifier, [.. U32(0x1000), .. U16(1)]),
            (FieldList, Member(0x1000, 0, "self")),
            (Structure, Struct(0x1001, 4, "HoldsCycle")),
        ]);
        var pdb = Load(MsfBuilder.Pdb(tpi).Build());

        AssertBad(() => _ = pdb.GetType(0x1000).Size, "type 0x1000", "cycle");
        AssertBad(() => _ = pdb.GetType(0x1000).ToString(), "cycle");
        AssertBad(() => pdb.TryGetFieldOffset("HoldsCycle", "self.deeper", out _), "cycle");
    }

    [Test]
    public void A_structure_that_is_its_own_base_class_is_a_cycle()
    {
        var tpi = MsfBuilder.TpiStream([
            (FieldList, BaseClass(0x1001)),
            (Structure, Struct(0x1000, 4, "Ouroboros")),
        ]);

        AssertBad(() => Load(MsfBuilder.Pdb(tpi).Build()).TryGetFieldOffset("Ouroboros", "missing", out _), "cycle");
    }

    [Test]
    public void A_reference_past_the_last_type_is_refused()
    {
        var tpi = MsfBuilder.TpiStream([
            (FieldList, Member(0x9999, 0, "dangling")),
            (Structure, Struct(0x1000, 4, "Dangling")),
        ]);

        AssertBad(() => _ = Load(MsfBuilder.Pdb(tpi).Build()).FindType("Dangling")!.Fields, "0x9999", "past the last type");
    }

    [Test]
    public void Absurd_dbi_substream_sizes_are_refused()
    {
        var dbi = new byte[64];
        BinaryPrimitives.WriteInt32LittleEndian(dbi, -1);
        BinaryPrimitives.WriteUInt32LittleEndian(dbi.AsSpan(4), 19990903);
        BinaryPrimitives.WriteInt32LittleEndian(dbi.AsSpan(24), 0x7fffffff); // ModInfoSize

        AssertBad(() => Load(MsfBuilder.Pdb(dbi: dbi).Build()), "DBI", "ModInfoSize", "2147483647");
    }
}
