using Introspect.Symbols.Pe;
using Introspect.TestSupport;

namespace Introspect.Symbols.Tests;

/// <summary>Images read from memory as the loader mapped them, whole and with pages missing.</summary>
public class PeMemoryTests
{
    private const ulong KernelBase = 0xfffff80012400000;

    private static MappedImage Map(string relative) => new(TestInputs.TestData(relative.Split('/')), KernelBase);

    [TestCase("pe/ntoskrnl.exe")]
    [TestCase("pe/hal.dll")]
    [TestCase("pe/ntdll.dll")]
    [TestCase("pdb/breakpad/dump_syms_regtest64.exe")]
    [TestCase("pdb/symbolic/crash.exe")]
    public void A_whole_mapped_image_reads_as_its_file_does(string relative)
    {
        var memory = Map(relative);

        var image = PeImage.FromMemory(memory, KernelBase, Path.GetFileName(relative));

        Assert.That(image.Notes, Is.Empty);
        Assert.That(image.LoadedAt, Is.EqualTo(KernelBase));
        Assert.That(image.Is64Bit, Is.EqualTo(memory.File.Is64Bit));
        Assert.That(image.Sections.Select(s => (s.VirtualAddress, s.VirtualSize)), Is.EqualTo(memory.File.Sections.Select(s => (s.VirtualAddress, s.VirtualSize))));
        Assert.That(image.Exports, Is.EqualTo(memory.File.Exports));
        Assert.That(image.ExportName, Is.EqualTo(memory.File.ExportName));
        Assert.That(image.Imports.Select(m => (m.Name, m.Functions.Count)), Is.EqualTo(memory.File.Imports.Select(m => (m.Name, m.Functions.Count))));
        Assert.That(image.Imports.SelectMany(m => m.Functions), Is.EqualTo(memory.File.Imports.SelectMany(m => m.Functions)));
        Assert.That(image.CodeView, Is.EqualTo(memory.File.CodeView));
    }

    [Test]
    public void Missing_pages_of_export_names_leave_those_exports_out_with_a_note()
    {
        var memory = Map("pe/ntoskrnl.exe");
        var byName = memory.File.FindExport("PsInitialSystemProcess")!;
        // Remove the page holding one export name string.
        uint nameRva = FindNameRva(memory, "PsInitialSystemProcess");
        memory.Remove(nameRva);

        var image = PeImage.FromMemory(memory, KernelBase);

        Assert.That(image.Notes, Has.Some.Contains("export names"));
        Assert.That(image.FindExport("PsInitialSystemProcess"), Is.Null);
        Assert.That(image.Exports.Count, Is.LessThan(memory.File.Exports.Count).And.GreaterThan(memory.File.Exports.Count / 2));
        // What lies on other pages is all there.
        foreach (var export in memory.File.Exports.Where(e => e.Name is not null && image.FindExport(e.Name) is not null))
            Assert.That(image.FindExport(export.Name!)!.Rva, Is.EqualTo(export.Rva));
        Assert.That(byName.IsForwarded, Is.False);
    }

    [Test]
    public void A_missing_export_address_table_page_leaves_its_exports_out_with_a_note()
    {
        var memory = Map("pe/ntoskrnl.exe");
        uint table = ExportDirectoryField(memory, 28); // AddressOfFunctions, 6.6 KB: its second page holds no other table
        memory.Remove((table & ~0xfffu) + 0x1000);

        var image = PeImage.FromMemory(memory, KernelBase);

        Assert.That(image.Notes, Has.Some.Contains("export addresses"));
        Assert.That(image.Exports.Count, Is.LessThan(memory.File.Exports.Count));
    }

    [Test]
    public void A_missing_export_directory_gives_no_exports_and_a_note_but_the_rest_of_the_image()
    {
        var memory = Map("pe/hal.dll");
        memory.Remove(memory.File.Directory(PeDirectory.Export).VirtualAddress);

        var image = PeImage.FromMemory(memory, KernelBase);

        Assert.That(image.Exports, Is.Empty);
        Assert.That(image.Notes, Has.Some.Contains("export directory"));
        Assert.That(image.Imports.Select(m => m.Name), Is.EqualTo(memory.File.Imports.Select(m => m.Name)));
    }

    [Test]
    public void A_missing_import_page_gives_a_note_and_the_other_imports()
    {
        var memory = Map("pe/ntoskrnl.exe");
        var first = memory.File.Imports[0];
        memory.Remove(first.Functions[0].HintNameRva);

        var image = PeImage.FromMemory(memory, KernelBase);

        Assert.That(image.Notes, Has.Some.Contains("imports"));
        Assert.That(image.Imports.Select(m => m.Name), Is.EqualTo(memory.File.Imports.Select(m => m.Name)));
        Assert.That(image.Imports.Sum(m => m.Functions.Count), Is.LessThan(memory.File.Imports.Sum(m => m.Functions.Count)));
    }

    [Test]
    public void A_missing_codeview_page_gives_no_codeview_and_a_note()
    {
        var memory = Map("pdb/breakpad/dump_syms_regtest64.exe");
        memory.Remove(memory.File.DebugEntries.Single(e => e.Type == PeDebugEntry.CodeViewType).AddressOfRawData);

        var image = PeImage.FromMemory(memory, KernelBase);

        Assert.That(image.CodeView, Is.Null);
        Assert.That(image.Notes, Has.Some.Contains("CodeView"));
        Assert.That(image.Exports, Is.EqualTo(memory.File.Exports));
    }

    [Test]
    public void Unreadable_headers_give_an_empty_image_and_a_note_never_an_exception()
    {
        var memory = Map("pe/hal.dll");
        memory.Remove(0);

        var image = PeImage.FromMemory(memory, KernelBase);

        Assert.That(image.HeadersRead, Is.False);
        Assert.That(image.Sections, Is.Empty);
        Assert.That(image.Notes.Single(), Does.Contain("headers"));
    }

    [Test]
    public void Memory_that_is_not_a_pe_image_is_bad_input()
    {
        var memory = Map("pe/hal.dll");

        var error = Assert.Throws<InvalidDataException>(() => PeImage.FromMemory(memory, KernelBase + 0x1000, "not an image"));
        Assert.That(error!.Message, Does.Contain("not an image").And.Contain("e_magic"));
    }

    private static uint ExportDirectoryField(MappedImage memory, int offset)
    {
        var field = new byte[4];
        memory.Read(KernelBase + memory.File.Directory(PeDirectory.Export).VirtualAddress + (uint)offset, field);
        return BitConverter.ToUInt32(field);
    }

    private static uint FindNameRva(MappedImage memory, string name)
    {
        uint names = ExportDirectoryField(memory, 32);
        uint count = ExportDirectoryField(memory, 24);
        var pointer = new byte[4];
        var text = new byte[name.Length + 1];
        for (uint i = 0; i < count; i++)
        {
            memory.Read(KernelBase + names + 4 * i, pointer);
            uint rva = BitConverter.ToUInt32(pointer);
            memory.Read(KernelBase + rva, text);
            if (System.Text.Encoding.ASCII.GetString(text) == name + "\0")
                return rva;
        }
        throw new InvalidOperationException(name);
    }
}

internal static class MemoryExtensions
{
    public static void Read(this MappedImage memory, ulong address, byte[] buffer) =>
        Introspect.Core.Memory.MemoryReads.Read(memory, address, buffer);
}
