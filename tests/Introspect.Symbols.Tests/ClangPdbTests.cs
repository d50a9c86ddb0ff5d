using Introspect.Symbols.Pdb;
using Introspect.Symbols.Pe;

namespace Introspect.Symbols.Tests;

/// <summary>PDBs made from our own C sources with clang-cl and lld-link, against clang's record layouts of the same
/// structures: sizes, field offsets (nested with dots), bit fields, unions and anonymous members.</summary>
[TestFixture("x86_64-pc-windows-msvc")]
[TestFixture("i686-pc-windows-msvc")]
public class ClangPdbTests(string target)
{
    private static readonly string[] Records = ["Inner", "Flags", "Value", "Outer", "Packed", "Aligned", "Nested3", "_LIST_ENTRY", "Kernelish"];

    private string _folder = null!;
    private PdbFile _pdb = null!;
    private PeImage _image = null!;
    private Dictionary<string, ClangRecord> _layouts = null!;

    [OneTimeSetUp]
    public void Build()
    {
        _folder = Directory.CreateTempSubdirectory("introspect-clang-").FullName;
        var source = Path.Combine(TestContext.CurrentContext.TestDirectory, "Sources", "layouts.c");
        // "--" ends the options: clang-cl would read an absolute path as a /switch.
        Tools.RunIn(_folder, "clang-cl", $"--target={target}", "/c", "/Z7", "/Folayouts.obj", "--", source);
        Tools.RunIn(_folder, "lld-link", "/debug", "/pdb:layouts.pdb", "/nodefaultlib", "/entry:entry", "/subsystem:console", "/out:layouts.exe", "layouts.obj");
        _layouts = ClangRecord.Parse(Tools.Run("clang", $"--target={target}", "-Xclang", "-fdump-record-layouts", "-fsyntax-only", source));
        _pdb = PdbFile.Open(Path.Combine(_folder, "layouts.pdb"));
        _image = PeImage.Open(Path.Combine(_folder, "layouts.exe"));
    }

    [OneTimeTearDown]
    public void Clean() => Directory.Delete(_folder, recursive: true);

    [TestCaseSource(nameof(Records))]
    public void Type_sizes_equal_clangs(string record)
    {
        Assert.That(_layouts, Does.ContainKey(record), "clang laid the record out");
        Assert.That(_pdb.TryGetTypeSize(record, out ulong size), Is.True, record);
        Assert.That(size, Is.EqualTo(_layouts[record].Size), record);
    }

    [TestCaseSource(nameof(Records))]
    public void Every_field_offset_and_bit_field_equals_clangs(string record)
    {
        var layout = _layouts[record];
        Assert.That(layout.Fields, Is.Not.Empty);
        foreach (var field in layout.Fields)
        {
            Assert.That(_pdb.TryGetFieldOffset(record, field.Path, out var location), Is.True, $"{record}.{field.Path}");
            if (field.IsBitfield)
            {
                Assert.That(location.IsBitfield, Is.True, $"{record}.{field.Path} is a bit field");
                Assert.That(location.Offset * 8 + (ulong)location.BitPosition, Is.EqualTo(field.AbsoluteBit), $"first bit of {record}.{field.Path}");
                Assert.That(location.BitLength, Is.EqualTo(field.Width), $"width of {record}.{field.Path}");
            }
            else
            {
                Assert.That(location.IsBitfield, Is.False, $"{record}.{field.Path}");
                Assert.That(location.Offset, Is.EqualTo(field.Offset), $"offset of {record}.{field.Path}");
            }
        }
    }

    [Test]
    public void A_typedef_names_its_structure_and_forward_references_resolve()
    {
        Assert.That(_pdb.FindType("LIST_ENTRY")?.Size, Is.EqualTo(_layouts["_LIST_ENTRY"].Size));
        var flink = _pdb.FindType("_LIST_ENTRY")!.Fields.Single(f => f.Name == "Flink").Type;
        Assert.That(flink.Kind, Is.EqualTo(PdbTypeKind.Pointer));
        Assert.That(flink.ElementType!.IsForwardReference, Is.True, "a self-reference goes through a forward declaration");
        Assert.That(flink.ElementType.Definition.Size, Is.EqualTo(_layouts["_LIST_ENTRY"].Size));
        Assert.That(flink.ToString(), Is.EqualTo("struct _LIST_ENTRY *"));
        Assert.That(_pdb.TryGetFieldOffset("Kernelish", "Links.Blink", out var blink) && blink.Offset == (target.StartsWith("x86_64", StringComparison.Ordinal) ? 8UL : 4UL));
    }

    [Test]
    public void Enums_arrays_and_modifiers_are_described()
    {
        var color = _pdb.FindType("Color")!;
        Assert.That(color.Enumerators.Select(e => (e.Name, e.Value)), Is.EqualTo(new[] { ("Red", 0UL), ("Green", 5UL), ("Blue", 6UL) }));
        Assert.That(color.Size, Is.EqualTo(4));

        var outer = _pdb.FindType("Outer")!;
        var matrix = outer.Fields.Single(f => f.Name == "matrix").Type;
        Assert.That(matrix.ToString(), Is.EqualTo("int[3][4]"));
        Assert.That((matrix.Size, matrix.ElementCount), Is.EqualTo((48UL, 3UL)));
        var lockType = _pdb.FindType("Kernelish")!.Fields.Single(f => f.Name == "Lock").Type;
        Assert.That((lockType.Kind, lockType.IsVolatile, lockType.ToString()), Is.EqualTo((PdbTypeKind.Modifier, true, "volatile long")));
    }

    [Test]
    public void The_type_dump_lists_every_member_with_offset_and_type()
    {
        var dump = _pdb.DumpType("Flags")!;

        Assert.That(dump, Does.StartWith($"struct Flags (0x{_layouts["Flags"].Size:x} bytes)"));
        Assert.That(dump, Does.Contain("mode").And.Contain("Pos 1, 3 Bits (unsigned int)"));
        Assert.That(dump.Split('\n', StringSplitOptions.RemoveEmptyEntries), Has.Length.EqualTo(1 + _pdb.FindType("Flags")!.Fields.Count));
        Assert.That(_pdb.DumpType("Color"), Does.Contain("Green = 0x5"));
        Assert.That(_pdb.DumpType("NoSuchType"), Is.Null);
    }

    [Test]
    public void Unknown_types_and_fields_are_not_found()
    {
        Assert.That(_pdb.TryGetTypeSize("NoSuchType", out _), Is.False);
        Assert.That(_pdb.TryGetFieldOffset("Outer", "no_such_field", out _), Is.False);
        Assert.That(_pdb.TryGetFieldOffset("Outer", "flags.mode.deeper", out _), Is.False, "a bit field has no members");
        Assert.That(_pdb.TryGetFieldOffset("Outer", "in..a", out _), Is.False);
    }

    [Test]
    public void The_entry_point_symbol_is_at_the_images_entry_point_and_the_static_function_is_found()
    {
        Assert.That(_pdb.TryGetSymbolAddress("entry", out uint entry), Is.True);
        Assert.That(entry, Is.EqualTo(_image.AddressOfEntryPoint));
        Assert.That(_pdb.FindNearestSymbol(entry + 1), Is.EqualTo(new PdbSymbolMatch(_pdb.FindSymbols("entry")[0], 1)));
        Assert.That(_pdb.FindSymbols("helper").Single(s => s.Kind == PdbSymbolKind.Function).Length, Is.GreaterThan(0));
        Assert.That(_pdb.TryGetSymbolAddress("g_outer", out uint data), Is.True);
        Assert.That(_image.SectionOf(data)?.Name, Is.EqualTo(".bss").Or.EqualTo(".data"));
        Assert.That(_image.CodeView!.Guid, Is.EqualTo(_pdb.Guid));
    }
}
