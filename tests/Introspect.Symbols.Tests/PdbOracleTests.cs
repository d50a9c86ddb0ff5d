using Introspect.Symbols.Pdb;
using Introspect.TestSupport;

namespace Introspect.Symbols.Tests;

/// <summary>Every PDB of the shared test data against the Breakpad symbol file made from it by <c>dump_syms</c> (DIA).</summary>
public class PdbOracleTests
{
    public static IEnumerable<TestCaseData> Oracles()
    {
        foreach (var (pdb, sym) in new[]
        {
            ("breakpad/dump_syms_regtest.pdb", "breakpad/dump_syms_regtest.sym"),
            ("breakpad/dump_syms_regtest64.pdb", "breakpad/dump_syms_regtest64.sym"),
            ("breakpad/omap_reorder_bbs.pdb", "breakpad/omap_reorder_bbs.sym"),
            ("breakpad/omap_reorder_funcs.pdb", "breakpad/omap_reorder_funcs.sym"),
            ("breakpad/omap_stretched.pdb", "breakpad/omap_stretched.sym"),
            ("breakpad/omap_stretched_filled.pdb", "breakpad/omap_stretched_filled.sym"),
            ("symbolic/CrashWithException.pdb", "symbolic/CrashWithException.pdb.sym"),
            ("symbolic/crash.pdb", "symbolic/crash.sym"),
        })
        {
            yield return new TestCaseData(pdb, sym).SetArgDisplayNames(Path.GetFileName(pdb));
        }
    }

    private static (PdbFile Pdb, BreakpadSymbols Oracle) Open(string pdb, string sym)
    {
        var parts = pdb.Split('/');
        var oracleParts = sym.Split('/');
        return (PdbFile.Open(TestInputs.TestData(["pdb", .. parts])), BreakpadSymbols.Read(TestInputs.TestData(["pdb", .. oracleParts])));
    }

    [TestCaseSource(nameof(Oracles))]
    public void The_module_id_is_the_pdb_guid_and_age(string pdbPath, string symPath)
    {
        var (pdb, oracle) = Open(pdbPath, symPath);

        Assert.That(pdb.SymbolStoreId, Is.EqualTo(oracle.ModuleId));
        Assert.That(pdb.Machine, Is.EqualTo(oracle.Architecture == "x86_64" ? 0x8664 : 0x14c));
    }

    [TestCaseSource(nameof(Oracles))]
    public void Every_func_and_public_is_found_by_name_at_its_address(string pdbPath, string symPath)
    {
        var (pdb, oracle) = Open(pdbPath, symPath);
        Assert.That(oracle.Records, Has.Count.GreaterThan(50), "the oracle has records");

        var missing = new List<string>();
        foreach (var record in oracle.Records)
        {
            var found = pdb.FindSymbols(record.Name);
            bool at = record.IsPublic
                ? found.Any(s => s.Rva == record.Address)
                : found.Any(s => s.Rva == record.Address && s.Length == record.Size && s.Kind == PdbSymbolKind.Function);
            if (!at)
                missing.Add($"{record} -> [{string.Join(", ", found.Select(s => $"{s.Kind} {s.Name} {s.Rva:x}+{s.Length:x}"))}]");
        }
        Assert.That(missing, Is.Empty, $"{missing.Count} of {oracle.Records.Count} records not found by name at their address");
    }

    [TestCaseSource(nameof(Oracles))]
    public void The_address_of_every_func_and_public_gives_its_name_back(string pdbPath, string symPath)
    {
        var (pdb, oracle) = Open(pdbPath, symPath);

        var wrong = new List<string>();
        foreach (var record in oracle.Records)
        {
            var nearest = pdb.FindNearestSymbol(record.Address);
            // Where identical code was folded ("m"), several names share the address: any of them is right.
            bool right = nearest is { Displacement: 0 } match &&
                (NameMatches(match.Symbol, record.Name) || (record.Multiple && pdb.SymbolsAt(record.Address).Any(s => NameMatches(s, record.Name))));
            if (!right)
                wrong.Add($"{record} -> {nearest}");
            if (!record.IsPublic && record.Size > 1)
            {
                uint inside = record.Address + record.Size - 1;
                var last = pdb.FindNearestSymbol(inside);
                if (last is not { } within || within.Symbol.Rva < record.Address || within.Symbol.Rva + within.Displacement != inside)
                    wrong.Add($"{record}: its last byte {inside:x} -> {last}");
            }
        }
        Assert.That(wrong, Is.Empty, $"{wrong.Count} of {oracle.Records.Count} addresses gave another name");
    }

    /// <summary>Whether a symbol is the one a Breakpad name means: DIA prints names undecorated (one leading underscore
    /// off) and functions with their signature.</summary>
    private static bool NameMatches(PdbSymbol symbol, string oracleName)
    {
        string wanted = SymbolNames.StripSignature(oracleName) ?? oracleName;
        return symbol.Name == oracleName || symbol.Name == wanted || symbol.UndecoratedName == wanted || symbol.UndecoratedName == SymbolNames.Undecorate(wanted);
    }
}
