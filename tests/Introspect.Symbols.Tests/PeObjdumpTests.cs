using System.Globalization;
using Introspect.Symbols.Pe;
using Introspect.TestSupport;

namespace Introspect.Symbols.Tests;

/// <summary>Every real PE image of the shared test data against what binutils' <c>objdump</c> prints about it.</summary>
public class PeObjdumpTests
{
    public static IEnumerable<TestCaseData> Images()
    {
        foreach (var path in new[]
        {
            "pe/ntoskrnl.exe", "pe/hal.dll", "pe/ntdll.dll", "pe/pe_only_symbol_test.dll",
            "pdb/breakpad/dump_syms_regtest64.exe", "pdb/symbolic/CrashWithException.exe", "pdb/symbolic/crash.exe",
        })
        {
            yield return new TestCaseData(path).SetArgDisplayNames(Path.GetFileName(path));
        }
    }

    private static string PathOf(string relative) => TestInputs.TestData(relative.Split('/'));

    [TestCaseSource(nameof(Images))]
    public void Headers_and_data_directories_match_objdump(string relative)
    {
        var image = PeImage.Open(PathOf(relative));
        var oracle = ObjdumpOracle.Of(PathOf(relative));

        Assert.That(image.Magic.ToString("x4", CultureInfo.InvariantCulture), Is.EqualTo(oracle.Header["Magic"]));
        Assert.That(image.Is64Bit, Is.EqualTo(oracle.Header["Magic"] == "020b"));
        Assert.That(image.ImageBase, Is.EqualTo(ulong.Parse(oracle.Header["ImageBase"], NumberStyles.HexNumber, CultureInfo.InvariantCulture)));
        Assert.That(image.SizeOfImage, Is.EqualTo(uint.Parse(oracle.Header["SizeOfImage"], NumberStyles.HexNumber, CultureInfo.InvariantCulture)));
        Assert.That(image.SizeOfHeaders, Is.EqualTo(uint.Parse(oracle.Header["SizeOfHeaders"], NumberStyles.HexNumber, CultureInfo.InvariantCulture)));
        Assert.That((ulong)image.AddressOfEntryPoint, Is.EqualTo(ulong.Parse(oracle.Header["AddressOfEntryPoint"], NumberStyles.HexNumber, CultureInfo.InvariantCulture)));
        Assert.That(image.CheckSum, Is.EqualTo(uint.Parse(oracle.Header["CheckSum"], NumberStyles.HexNumber, CultureInfo.InvariantCulture)));
        Assert.That(image.Characteristics, Is.EqualTo(Convert.ToUInt16(oracle.Header["Characteristics"], 16)));
        Assert.That(image.DataDirectories.Select(d => (d.VirtualAddress, d.Size)), Is.EqualTo(oracle.Directories));
        Assert.That(image.IsComplete, image.Notes.FirstOrDefault());
    }

    [TestCaseSource(nameof(Images))]
    public void Every_section_matches_objdump(string relative)
    {
        var image = PeImage.Open(PathOf(relative));
        var oracle = ObjdumpOracle.Of(PathOf(relative));

        // BFD's size of an image section: its virtual size when that is smaller than its file data, or when it has no
        // file data (uninitialized data); else the size of its file data.
        var ours = image.Sections.Select(s => (
            s.Name,
            (ulong)(s.VirtualSize != 0 && (s.VirtualSize < s.SizeOfRawData || s.SizeOfRawData == 0) ? s.VirtualSize : s.SizeOfRawData),
            image.ImageBase + s.VirtualAddress,
            (ulong)s.PointerToRawData)).ToList();
        Assert.That(oracle.Sections, Has.Count.GreaterThan(3));
        Assert.That(ours, Is.EqualTo(oracle.Sections));
    }

    [TestCaseSource(nameof(Images))]
    public void Every_export_matches_objdump_and_is_found_by_name(string relative)
    {
        var image = PeImage.Open(PathOf(relative));
        var oracle = ObjdumpOracle.Of(PathOf(relative));

        Assert.That(image.ExportName, Is.EqualTo(oracle.ExportName));
        var addresses = oracle.ExportAddresses.ToDictionary(e => e.Index);
        var expected = new List<(string?, uint, uint, string?)>();
        var named = new HashSet<int>();
        foreach (var (index, name) in oracle.ExportNames)
        {
            var (_, rva, forwarder) = addresses[index];
            expected.Add((name, oracle.OrdinalBase + (uint)index, rva, forwarder));
            named.Add(index);
        }
        foreach (var (index, rva, forwarder) in oracle.ExportAddresses)
        {
            if (!named.Contains(index))
                expected.Add((null, oracle.OrdinalBase + (uint)index, rva, forwarder));
        }
        var ours = image.Exports.Select(e => (e.Name, e.Ordinal, e.Rva, e.Forwarder)).ToList();
        Assert.That(ours, Is.EquivalentTo(expected));

        foreach (var (index, name) in oracle.ExportNames)
        {
            var export = image.FindExport(name);
            Assert.That(export, Is.Not.Null, name);
            Assert.That(export!.Rva, Is.EqualTo(addresses[index].Rva), name);
            Assert.That(image.FindExport(export.Ordinal)?.Rva, Is.EqualTo(export.Rva), name);
        }
    }

    [Test]
    public void Ntoskrnl_exports_what_the_windows_layer_needs_and_forwards_to_ntdll()
    {
        var image = PeImage.Open(PathOf("pe/ntoskrnl.exe"));

        Assert.That(image.Exports, Has.Count.GreaterThan(1600));
        foreach (var name in new[] { "PsInitialSystemProcess", "NtBuildNumber", "KeServiceDescriptorTable" })
            Assert.That(image.FindExport(name), Is.Not.Null.And.Property("IsForwarded").False, name);
        Assert.That(image.FindExport("NlsAnsiCodePage")?.Forwarder, Is.EqualTo("ntdll.NlsAnsiCodePage"));
    }

    [TestCaseSource(nameof(Images))]
    public void Every_import_matches_objdump(string relative)
    {
        var image = PeImage.Open(PathOf(relative));
        var oracle = ObjdumpOracle.Of(PathOf(relative));

        var ours = image.Imports.Select(m => (m.Name, m.LookupTableRva, m.NameRva, m.AddressTableRva, m.Functions.Select(f => (f.Hint, f.Name ?? "<none>")).ToList())).ToList();
        var expected = oracle.Imports.Select(m => (m.Dll, m.LookupTable, m.NameRva, m.FirstThunk, m.Functions)).ToList();
        Assert.That(ours.Select(m => m.Name), Is.EqualTo(expected.Select(m => m.Dll)));
        for (int i = 0; i < ours.Count; i++)
        {
            Assert.That((ours[i].LookupTableRva, ours[i].NameRva, ours[i].AddressTableRva), Is.EqualTo((expected[i].LookupTable, expected[i].NameRva, expected[i].FirstThunk)), ours[i].Name);
            Assert.That(ours[i].Item5, Is.EqualTo(expected[i].Functions), ours[i].Name);
        }
    }

    [TestCaseSource(nameof(Images))]
    public void The_codeview_record_matches_objdump(string relative)
    {
        var image = PeImage.Open(PathOf(relative));
        var oracle = ObjdumpOracle.Of(PathOf(relative));

        if (oracle.CodeView is not { } expected)
        {
            Assert.That(image.CodeView, Is.Null);
            return;
        }
        Assert.That(image.CodeView, Is.Not.Null);
        Assert.That(image.CodeView!.Format, Is.EqualTo("RSDS"));
        Assert.That(image.CodeView.Guid.ToString("N"), Is.EqualTo(expected.Guid));
        Assert.That(image.CodeView.Age, Is.EqualTo(expected.Age));
        Assert.That(image.CodeView.PdbPath, Is.EqualTo(expected.Pdb));
    }

    [TestCase("pdb/breakpad/dump_syms_regtest64.exe", "pdb/breakpad/dump_syms_regtest64.pdb")]
    [TestCase("pdb/symbolic/CrashWithException.exe", "pdb/symbolic/CrashWithException.pdb")]
    [TestCase("pdb/symbolic/crash.exe", "pdb/symbolic/crash.pdb")]
    public void The_codeview_record_names_the_pdb_beside_the_image(string exe, string pdb)
    {
        var image = PeImage.Open(PathOf(exe));
        var symbols = Pdb.PdbFile.Open(PathOf(pdb));

        Assert.That(image.CodeView!.Guid, Is.EqualTo(symbols.Guid));
        Assert.That(image.CodeView.Age, Is.EqualTo(symbols.DbiAge));
        Assert.That(image.CodeView.SymbolStoreId, Is.EqualTo(symbols.SymbolStoreId));
        Assert.That(image.CodeView.PdbFileName, Is.EqualTo(Path.GetFileName(pdb)).IgnoreCase);
    }
}
