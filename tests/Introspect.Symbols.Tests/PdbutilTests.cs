using System.Globalization;
using System.Text.RegularExpressions;
using Introspect.Symbols.Pdb;
using Introspect.TestSupport;

namespace Introspect.Symbols.Tests;

/// <summary>Every PDB of the shared test data against what LLVM's <c>llvm-pdbutil dump</c> prints about it.</summary>
public partial class PdbutilTests
{
    public static IEnumerable<TestCaseData> Pdbs()
    {
        foreach (var path in new[]
        {
            "HelloWorld.pdb", "breakpad/dump_syms_regtest.pdb", "breakpad/dump_syms_regtest64.pdb", "breakpad/omap_reorder_bbs.pdb",
            "breakpad/omap_stretched_filled.pdb", "symbolic/CrashWithException.pdb", "symbolic/crash.pdb",
        })
        {
            yield return new TestCaseData(path).SetArgDisplayNames(Path.GetFileName(path));
        }
    }

    private static readonly Dictionary<string, (PdbFile, PdbutilOracle)> Cache = [];

    private static (PdbFile Pdb, PdbutilOracle Oracle) Open(string relative)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(relative, out var pair))
            {
                var path = TestInputs.TestData(["pdb", .. relative.Split('/')]);
                Cache[relative] = pair = (PdbFile.Open(path), PdbutilOracle.Of(path));
            }
            return pair;
        }
    }

    [TestCaseSource(nameof(Pdbs))]
    public void Identity_and_streams_match(string relative)
    {
        var (pdb, oracle) = Open(relative);

        Assert.That(pdb.Guid.ToString("B").ToUpperInvariant(), Is.EqualTo(oracle.Summary["GUID"]));
        Assert.That(pdb.Age.ToString(CultureInfo.InvariantCulture), Is.EqualTo(oracle.Summary["Age"]));
        Assert.That(pdb.Signature.ToString(CultureInfo.InvariantCulture), Is.EqualTo(oracle.Summary["Signature"]));
        Assert.That(pdb.BlockSize.ToString(CultureInfo.InvariantCulture), Is.EqualTo(oracle.Summary["Block Size"]));
        Assert.That(pdb.StreamCount.ToString(CultureInfo.InvariantCulture), Is.EqualTo(oracle.Summary["Number of streams"]));
        Assert.That(oracle.StreamSizes, Is.Not.Empty);
        foreach (var (stream, size) in oracle.StreamSizes)
            Assert.That(pdb.StreamSize(stream), Is.EqualTo(size), $"stream {stream}");
    }

    [TestCaseSource(nameof(Pdbs))]
    public void Modules_and_section_headers_match(string relative)
    {
        var (pdb, oracle) = Open(relative);

        Assert.That(pdb.Modules.Select(m => (m.Name, m.ObjectFile, m.SymbolStream)), Is.EqualTo(oracle.Modules));
        Assert.That(pdb.Sections.Select(s => (s.Name, s.VirtualSize, s.VirtualAddress)), Is.EqualTo(oracle.Sections));
    }

    [TestCaseSource(nameof(Pdbs))]
    public void Public_symbols_match(string relative)
    {
        var (pdb, oracle) = Open(relative);

        Assert.That(pdb.Publics.Select(p => (p.Name, p.Section, p.Offset)), Is.EquivalentTo(oracle.Publics));
    }

    [TestCaseSource(nameof(Pdbs))]
    public void Global_symbols_match(string relative)
    {
        var (pdb, oracle) = Open(relative);

        var kinds = new Dictionary<ushort, string>
        {
            [0x110d] = "S_GDATA32", [0x110c] = "S_LDATA32", [0x1113] = "S_GTHREAD32", [0x1112] = "S_LTHREAD32",
            [0x1125] = "S_PROCREF", [0x1127] = "S_LPROCREF", [0x1126] = "S_DATAREF", [0x1108] = "S_UDT", [0x1107] = "S_CONSTANT",
        };
        Assert.That(pdb.Globals, Has.Count.EqualTo(oracle.Globals.Count));
        var ours = pdb.Globals.Where(g => kinds.ContainsKey(g.RecordKind)).Select(g => (kinds[g.RecordKind], g.Name, Detail(g))).ToList();
        var expected = oracle.Globals.Where(g => kinds.ContainsValue(g.Kind)).Select(g => (g.Kind, g.Name, OracleDetail(g.Kind, g.Detail))).ToList();
        Assert.That(ours, Is.EquivalentTo(expected));
    }

    private static string Detail(PdbGlobalSymbol symbol) => symbol.RecordKind switch
    {
        0x110d or 0x110c or 0x1113 or 0x1112 => $"{symbol.TypeIndex:X4} {symbol.Section:D4}:{symbol.Offset:D4}",
        0x1125 or 0x1127 or 0x1126 => $"{symbol.Module + 1} {symbol.Offset}",
        0x1108 => $"{symbol.TypeIndex:X4}",
        _ => $"{symbol.TypeIndex:X4} {unchecked((long)symbol.Value)}",
    };

    private static string OracleDetail(string kind, string detail)
    {
        string type = TypeText().Match(detail) is { Success: true } t ? t.Groups[1].Value : "";
        return kind switch
        {
            "S_GDATA32" or "S_LDATA32" or "S_GTHREAD32" or "S_LTHREAD32" => $"{type} {AddressText().Match(detail).Groups[1].Value}",
            "S_PROCREF" or "S_LPROCREF" or "S_DATAREF" => $"{ModuleText().Match(detail).Groups[1].Value} {ModuleText().Match(detail).Groups[2].Value}",
            "S_UDT" => type,
            _ => $"{type} {long.Parse(ValueText().Match(detail).Groups[1].Value, CultureInfo.InvariantCulture)}",
        };
    }

    [TestCaseSource(nameof(Pdbs))]
    public void User_defined_types_forward_references_and_sizes_match(string relative)
    {
        var (pdb, oracle) = Open(relative);

        int checkedTypes = 0;
        foreach (var (index, record) in oracle.Types)
        {
            if (record.Kind is not ("LF_STRUCTURE" or "LF_CLASS" or "LF_UNION" or "LF_INTERFACE" or "LF_ENUM"))
                continue;
            var type = pdb.GetType(index);
            Assert.That(type.Name, Is.EqualTo(record.Name), $"type {index:X}");
            bool forward = record.Body.Contains("forward ref", StringComparison.Ordinal);
            Assert.That(type.IsForwardReference, Is.EqualTo(forward), $"type {index:X}");
            if (ForwardTarget().Match(record.Body) is { Success: true } target)
                Assert.That(type.Definition.TypeIndex, Is.EqualTo(PdbutilOracle.Hex(target.Groups[1].Value)), $"forward reference {index:X} {record.Name}");
            else if (!forward && SizeofText().Match(record.Body) is { Success: true } size)
                Assert.That(type.Size, Is.EqualTo(ulong.Parse(size.Groups[1].Value, CultureInfo.InvariantCulture)), $"size of {index:X} {record.Name}");
            checkedTypes++;
        }
        Assert.That(checkedTypes, Is.EqualTo(oracle.Types.Values.Count(t => t.Kind is "LF_STRUCTURE" or "LF_CLASS" or "LF_UNION" or "LF_INTERFACE" or "LF_ENUM")));
        Assert.That(pdb.TypeCount, Is.EqualTo(oracle.Types.Count));
    }

    [TestCaseSource(nameof(Pdbs))]
    public void Members_offsets_bit_fields_enumerators_arrays_and_pointers_match(string relative)
    {
        var (pdb, oracle) = Open(relative);

        int members = 0;
        foreach (var (index, record) in oracle.Types)
        {
            switch (record.Kind)
            {
                case "LF_STRUCTURE" or "LF_CLASS" or "LF_UNION" or "LF_INTERFACE" when !record.Body.Contains("forward ref", StringComparison.Ordinal):
                {
                    var list = FieldListText().Match(record.Body);
                    if (!list.Success)
                        break;
                    var fields = oracle.Types[PdbutilOracle.Hex(list.Groups[1].Value)].Members;
                    if (fields.Any(f => f.Kind == "LF_INDEX"))
                        break;
                    var expected = fields.Where(f => f.Kind is "LF_MEMBER" or "LF_BCLASS" or "LF_STMEMBER" or "LF_VBCLASS" or "LF_IVBCLASS" or "LF_VFUNCTAB")
                        .Select(f => (f.Kind == "LF_MEMBER" || f.Kind == "LF_STMEMBER" ? f.Name : "", f.Kind is "LF_MEMBER" or "LF_BCLASS" ? f.Offset : 0)).ToList();
                    var ours = pdb.GetType(index).Fields
                        .Select(f => (f.Kind is PdbFieldKind.Member or PdbFieldKind.StaticMember ? f.Name : "", f.Kind is PdbFieldKind.Member or PdbFieldKind.BaseClass ? f.Offset : 0)).ToList();
                    Assert.That(ours, Is.EqualTo(expected), $"members of {index:X} {record.Name}");
                    members += ours.Count;
                    break;
                }
                case "LF_ENUM" when !record.Body.Contains("forward ref", StringComparison.Ordinal):
                {
                    var fields = oracle.Types[PdbutilOracle.Hex(FieldListText().Match(record.Body).Groups[1].Value)].Members;
                    var expected = fields.Select(f => EnumeratorText().Match(f.Text)).Select(m => (m.Groups[1].Value, m.Groups[2].Value)).ToList();
                    var ours = pdb.GetType(index).Enumerators.Select(e => (e.Name, unchecked((long)e.Value).ToString(CultureInfo.InvariantCulture))).ToList();
                    Assert.That(ours, Is.EqualTo(expected), $"enumerators of {index:X} {record.Name}");
                    break;
                }
                case "LF_BITFIELD":
                {
                    var m = BitfieldText().Match(record.Body);
                    var type = pdb.GetType(index);
                    Assert.That((type.Kind, type.BitPosition, type.BitLength), Is.EqualTo((PdbTypeKind.Bitfield, int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture))), $"bit field {index:X}");
                    break;
                }
                case "LF_ARRAY":
                {
                    var m = ArrayText().Match(record.Body);
                    var type = pdb.GetType(index);
                    Assert.That(type.Size, Is.EqualTo(ulong.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)), $"array {index:X}");
                    Assert.That(type.ElementType!.TypeIndex, Is.EqualTo(PdbutilOracle.Hex(m.Groups[2].Value)), $"array {index:X}");
                    break;
                }
                case "LF_POINTER":
                {
                    var m = PointerText().Match(record.Body);
                    var type = pdb.GetType(index);
                    Assert.That(type.ElementType!.TypeIndex, Is.EqualTo(PdbutilOracle.Hex(m.Groups[1].Value)), $"pointer {index:X}");
                    if (m.Groups[2].Value is "ptr64" or "ptr32")
                        Assert.That(type.Size, Is.EqualTo(m.Groups[2].Value == "ptr64" ? 8UL : 4UL), $"pointer {index:X}");
                    break;
                }
            }
        }
        if (oracle.Types.Values.Any(t => t.Members.Any(m => m.Kind == "LF_MEMBER")))
            Assert.That(members, Is.GreaterThan(0));
    }

    [GeneratedRegex(@"type = 0x([0-9A-F]+)")]
    private static partial Regex TypeText();

    [GeneratedRegex(@"addr = (\d+:\d+)")]
    private static partial Regex AddressText();

    [GeneratedRegex(@"module = (\d+), sum name = \d+, offset = (\d+)")]
    private static partial Regex ModuleText();

    [GeneratedRegex(@"value = (-?\d+)")]
    private static partial Regex ValueText();

    [GeneratedRegex(@"forward ref \(-> 0x([0-9A-F]+)\)")]
    private static partial Regex ForwardTarget();

    [GeneratedRegex(@"sizeof (\d+)")]
    private static partial Regex SizeofText();

    [GeneratedRegex(@"field list: (0x[0-9A-F]+)")]
    private static partial Regex FieldListText();

    [GeneratedRegex(@"LF_ENUMERATE \[(.*) = (-?\d+)\]")]
    private static partial Regex EnumeratorText();

    [GeneratedRegex(@"bit offset = (\d+), # bits = (\d+)")]
    private static partial Regex BitfieldText();

    [GeneratedRegex(@"size: (\d+), index type: .*, element type: 0x([0-9A-F]+)")]
    private static partial Regex ArrayText();

    [GeneratedRegex(@"referent = 0x([0-9A-F]+).* kind = (\w+)")]
    private static partial Regex PointerText();
}
