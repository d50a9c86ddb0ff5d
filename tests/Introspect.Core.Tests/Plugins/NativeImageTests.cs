using System.Buffers.Binary;
using System.Text;
using Introspect.Core.Plugins;
using Introspect.Core.Plugins.Native;
using Introspect.Tests.Plugins;

namespace Introspect.Core.Tests.Plugins;

/// <summary>Reading native plugins' export tables without loading them: real ELF files from gcc, crafted PE files, and broken copies of both.</summary>
public class NativeImageTests
{
    private string _scratch = null!;

    [SetUp]
    public void CreateScratch() => _scratch = SamplePlugins.Scratch("image");

    private string Write(string name, byte[] bytes)
    {
        var path = Path.Combine(_scratch, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static byte[] Sample => File.ReadAllBytes(SamplePlugins.NativeLibrary);

    [Test]
    public void The_sample_library_exports_both_descriptors_read_from_the_file_alone()
    {
        var image = NativeImage.Read(SamplePlugins.NativeLibrary)!;

        Assert.That(image.Format, Is.EqualTo(NativeImageFormat.Elf));
        Assert.That(image.Machine, Is.EqualTo("x64"));
        Assert.That(image.Incompatibility, Is.Null);
        var plugins = NativePluginReader.Read(image);
        Assert.That(plugins.Select(p => (p.Name, p.Kind)), Is.EquivalentTo(new[] { ("native-sample", Abi.PluginKind.Connector), ("native-sample-os", Abi.PluginKind.OperatingSystem) }));
        var connector = plugins.Single(p => p.Name == "native-sample");
        Assert.That(connector.Version, Is.EqualTo(new Version(1, 0, 0)));
        Assert.That(connector.AbiVersion, Is.EqualTo(Abi.IntrospectAbi.Version));
        Assert.That(connector.Format, Is.EqualTo(PluginFormat.Native));
        Assert.That(connector.EntryPoint, Is.EqualTo("introspect_plugin_native_sample"));
        Assert.That(connector.ConnectorInputs, Is.EqualTo((true, true)));
        Assert.That(connector.Help, Does.Contain("serves the file 'path' as physical memory"));
        Assert.That(connector.DeclaredParameters!.Select(p => p.Name), Is.EqualTo(new[] { "path", "map", "write", "pid", "batch" }));
        Assert.That(connector.DeclaredParameters![0].IsDefaultArgument);
        Assert.That(connector.DeclaredParameters![2].DefaultValue, Is.EqualTo("off"));
        Assert.That(connector.DeclaredParameters![3].Type, Is.EqualTo(Abi.PluginParameterType.Number));
    }

    [Test]
    public void Without_section_headers_the_dynamic_segment_and_its_gnu_hash_table_find_the_descriptors()
    {
        var bytes = Sample;
        StripSectionHeaders(bytes);

        var image = NativeImage.Read(Write("stripped.so", bytes))!;

        Assert.That(NativePluginReader.Read(image).Select(p => p.Name), Is.EquivalentTo(new[] { "native-sample", "native-sample-os" }));
    }

    [Test]
    public void Without_section_headers_a_sysv_hash_table_gives_the_symbol_count()
    {
        var bytes = File.ReadAllBytes(SamplePlugins.BuildNative("sysv-hash", extraLdflags: "-Wl,--hash-style=sysv"));
        Assert.That(ElfSection(bytes, ".gnu.hash"), Is.Null, "built with a SysV hash table only");
        StripSectionHeaders(bytes);

        var image = NativeImage.Read(Write("sysv.so", bytes))!;

        Assert.That(NativePluginReader.Read(image).Select(p => p.Name), Is.EquivalentTo(new[] { "native-sample", "native-sample-os" }));
    }

    [Test]
    public void A_gnu_hash_chain_that_runs_past_its_table_is_an_error_not_a_hang()
    {
        var bytes = Sample;
        var (offset, _) = ElfSection(bytes, ".gnu.hash")!.Value;
        uint bloom = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan((int)offset + 8));
        // The first bucket now names a symbol far past the end of the chains.
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan((int)(offset + 16 + bloom * 8L)), 0x3f_0000);
        StripSectionHeaders(bytes);

        var error = Assert.Throws<InvalidDataException>(() => NativeImage.Read(Write("endless.so", bytes)));

        Assert.That(error!.Message, Does.Contain("endless.so").And.Contain("GNU hash chain").And.Contain("without an end"));
    }

    [TestCase(40, "at least an ELF header")]
    [TestCase(4096, "within the file")]
    public void A_truncated_library_is_refused_naming_what_is_missing(int length, string expected)
    {
        var path = Write("truncated.so", Sample[..length]);

        var error = Assert.Throws<InvalidDataException>(() => NativeImage.Read(path));

        Assert.That(error!.Message, Does.StartWith(path).And.Contain(expected));
    }

    [Test]
    public void Header_fields_out_of_range_are_refused_with_the_field_and_its_value()
    {
        var cases = new (string Name, Action<byte[]> Patch, string Expected)[]
        {
            ("class", b => b[4] = 7, "ELF class 7"),
            ("phoff", b => BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(32), 0x7fff_ffff_0000), "the program header table"),
            ("phentsize", b => BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(54), 8), "e_phentsize 8; expected at least 56"),
            ("shentsize", b => BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(58), 10), "e_shentsize 10; expected at least 64"),
            ("dynsym-link", b => PatchDynsym(b, 40, 4, 999), "sh_link 999"),
            ("dynsym-size", b => PatchDynsym(b, 32, 8, 0x7fff_ffff_ffff), "at most"),
            ("dynsym-entsize", b => PatchDynsym(b, 56, 8, 3), "entry size 3"),
        };
        foreach (var (name, patch, expected) in cases)
        {
            var bytes = Sample;
            patch(bytes);
            var path = Write(name + ".so", bytes);

            var error = Assert.Throws<InvalidDataException>(() => NativeImage.Read(path), name);

            Assert.That(error!.Message, Does.Contain(expected), name);
        }
    }

    [Test]
    public void A_symbol_name_outside_the_string_table_is_refused()
    {
        var bytes = Sample;
        var (symtab, size) = ElfSection(bytes, ".dynsym")!.Value;
        for (long at = symtab + 24; at < symtab + size; at += 24)
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan((int)at), 0x00ff_ffff);

        var error = Assert.Throws<InvalidDataException>(() => NativeImage.Read(Write("names.so", bytes)));

        Assert.That(error!.Message, Does.Contain("string offset").And.Contain("dynamic string table"));
    }

    [Test]
    public void A_32_bit_build_is_read_and_marked_as_another_machine()
    {
        var path = SamplePlugins.CompileC("m32", MinimalDescriptor("thirty-two"), "-m32", "-ffreestanding", "-nostdlib", "-shared", "-fPIC");

        var image = NativeImage.Read(path)!;

        Assert.That(image.PointerSize, Is.EqualTo(4));
        Assert.That(image.Machine, Is.EqualTo("x86"));
        Assert.That(image.Incompatibility, Is.EqualTo($"it is built for x86 (32-bit ELF); this host runs {NativeImage.HostPlatform}"));
        var plugin = NativePluginReader.Read(image).Single();
        Assert.That(plugin.Name, Is.EqualTo("thirty-two"));
        Assert.That(plugin.IsCompatible, Is.False);
        Assert.That(plugin.Incompatibility, Does.Contain("x86"));
    }

    [Test]
    public void A_library_for_another_machine_keeps_its_descriptors_but_says_it_cannot_load()
    {
        var bytes = Sample;
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(18), 183); // EM_AARCH64

        var image = NativeImage.Read(Write("arm64.so", bytes))!;

        Assert.That(image.Incompatibility, Is.EqualTo($"it is built for arm64 (64-bit ELF); this host runs {NativeImage.HostPlatform}"));
        Assert.That(NativePluginReader.Read(image).All(p => !p.IsCompatible && p.PlatformProblem == image.Incompatibility));
    }

    [Test]
    public void A_descriptor_symbol_that_is_a_function_is_reported()
    {
        var path = SamplePlugins.CompileC("function-export", "#include \"introspect_plugin.h\"\nIP_EXPORT int introspect_plugin_oops(void) { return 1; }\n", "-shared", "-fPIC");

        var image = NativeImage.Read(path)!;

        Assert.That(image.Exports.Single().Problem, Does.Contain("introspect_plugin_oops is a function; a descriptor is a data object"));
        Assert.That(() => NativePluginReader.Read(image), Throws.TypeOf<InvalidDataException>().With.Message.Contains("is a function"));
    }

    [Test]
    public void Files_that_are_not_executables_give_no_image()
    {
        Assert.That(NativeImage.Read(Write("text.so", Encoding.ASCII.GetBytes("just some text, long enough"))), Is.Null);
        Assert.That(NativeImage.Read(Write("tiny.so", [0x7f])), Is.Null);
    }

    [Test]
    public void A_pe_dll_exporting_a_descriptor_is_read_from_its_export_directory()
    {
        var descriptor = NativeImage.Read(SamplePlugins.NativeLibrary)!.Exports.Single(e => e.Symbol == "introspect_plugin_native_sample").Data;
        var path = Write("sample.dll", PeBuilder.Dll(0x8664, "introspect_plugin_pe_sample", descriptor[..NativeAbi.DescriptorSize(8)]));

        var image = NativeImage.Read(path)!;

        Assert.That(image.Format, Is.EqualTo(NativeImageFormat.Pe));
        Assert.That(image.Machine, Is.EqualTo("x64"));
        var plugin = NativePluginReader.Read(image).Single();
        Assert.That(plugin.Name, Is.EqualTo("native-sample"));
        Assert.That(plugin.EntryPoint, Is.EqualTo("introspect_plugin_pe_sample"));
        if (OperatingSystem.IsLinux())
        {
            Assert.That(plugin.IsCompatible, Is.False);
            Assert.That(plugin.PlatformProblem, Is.EqualTo($"it is a PE DLL (Windows) for x64; this host runs {NativeImage.HostPlatform} and loads .so plugins"));
        }
    }

    [Test]
    public void Malformed_pe_files_are_refused_with_the_field()
    {
        var descriptor = new byte[NativeAbi.DescriptorSize(8)];
        var good = PeBuilder.Dll(0x8664, "introspect_plugin_x", descriptor);
        var cases = new (string Name, Action<byte[]> Patch, string Expected)[]
        {
            ("lfanew", b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(0x3c), 0x7fff_fff0), "e_lfanew"),
            ("signature", b => b[0x40] = (byte)'X', "no PE signature"),
            ("magic", b => BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(0x58), 0x999), "optional header magic 0x999"),
            ("names", b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(PeBuilder.ExportDirectoryOffset + 24), 0x7fff_ffff), "export directory of"),
            ("export-rva", b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(PeBuilder.ExportDataDirectoryOffset), 0x9999_0000), "the export directory at RVA"),
            ("ordinal", b => BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(PeBuilder.OrdinalsOffset), 7), "ordinal index 7"),
        };
        foreach (var (name, patch, expected) in cases)
        {
            var bytes = (byte[])good.Clone();
            patch(bytes);
            var path = Write(name + ".dll", bytes);

            var error = Assert.Throws<InvalidDataException>(() => NativeImage.Read(path), name);

            Assert.That(error!.Message, Does.StartWith(path).And.Contain(expected), name);
        }
    }

    /// <summary>A descriptor alone, in C: what a minimal plugin declaration looks like.</summary>
    internal static string MinimalDescriptor(string name, string abi = "INTROSPECT_ABI_VERSION", string kind = "IP_KIND_CONNECTOR", string version = "1.0.0") => $$"""
        #include "introspect_plugin.h"
        IP_EXPORT const ip_plugin_descriptor introspect_plugin_minimal = {
            .size = sizeof(ip_plugin_descriptor), .version = IP_DESCRIPTOR_VERSION, .magic = IP_DESCRIPTOR_MAGIC,
            .abi_version = {{abi}}, .kind = {{kind}}, .inputs = IP_INPUT_NONE | IP_INPUT_CONNECTOR,
            .name = "{{name}}", .plugin_version = "{{version}}", .description = "a descriptor without code",
        };
        """;

    private static void StripSectionHeaders(byte[] elf)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(elf.AsSpan(40), 0); // e_shoff
        BinaryPrimitives.WriteUInt16LittleEndian(elf.AsSpan(60), 0); // e_shnum
        BinaryPrimitives.WriteUInt16LittleEndian(elf.AsSpan(62), 0); // e_shstrndx
    }

    private static void PatchDynsym(byte[] elf, int field, int width, ulong value)
    {
        long header = SectionHeader(elf, ".dynsym")!.Value;
        if (width == 4)
            BinaryPrimitives.WriteUInt32LittleEndian(elf.AsSpan((int)header + field), (uint)value);
        else
            BinaryPrimitives.WriteUInt64LittleEndian(elf.AsSpan((int)header + field), value);
    }

    /// <summary>A section's (file offset, size), found the plain way: through e_shstrndx's names.</summary>
    internal static (long Offset, long Size)? ElfSection(byte[] elf, string name)
    {
        long? header = SectionHeader(elf, name);
        return header is null ? null : ((long)BinaryPrimitives.ReadUInt64LittleEndian(elf.AsSpan((int)header + 24)), (long)BinaryPrimitives.ReadUInt64LittleEndian(elf.AsSpan((int)header + 32)));
    }

    private static long? SectionHeader(byte[] elf, string name)
    {
        long shoff = (long)BinaryPrimitives.ReadUInt64LittleEndian(elf.AsSpan(40));
        int count = BinaryPrimitives.ReadUInt16LittleEndian(elf.AsSpan(60));
        int names = BinaryPrimitives.ReadUInt16LittleEndian(elf.AsSpan(62));
        long namesOffset = (long)BinaryPrimitives.ReadUInt64LittleEndian(elf.AsSpan((int)(shoff + names * 64 + 24)));
        for (int i = 0; i < count; i++)
        {
            long header = shoff + i * 64;
            int nameOffset = (int)BinaryPrimitives.ReadUInt32LittleEndian(elf.AsSpan((int)header));
            var text = elf.AsSpan((int)(namesOffset + nameOffset));
            if (Encoding.ASCII.GetString(text[..text.IndexOf((byte)0)]) == name)
                return header;
        }
        return null;
    }
}

/// <summary>Builds the smallest PE32+ DLL that exports one data symbol: headers, one section with the export directory and the data.</summary>
internal static class PeBuilder
{
    private const int PeOffset = 0x40;
    private const int OptionalSize = 240;
    private const int SectionTable = PeOffset + 24 + OptionalSize;
    private const int RawOffset = 0x200;
    private const uint SectionRva = 0x1000;

    public const int ExportDataDirectoryOffset = PeOffset + 24 + 112;
    public const int ExportDirectoryOffset = RawOffset;
    public const int OrdinalsOffset = RawOffset + 0x30;

    public static byte[] Dll(ushort machine, string symbol, byte[] data)
    {
        const int nameAt = 0x40, dataAt = 0x100;
        int rawSize = (dataAt + data.Length + 0x1ff) & ~0x1ff;
        var bytes = new byte[RawOffset + rawSize];
        var span = bytes.AsSpan();
        span[0] = (byte)'M';
        span[1] = (byte)'Z';
        BinaryPrimitives.WriteUInt32LittleEndian(span[0x3c..], PeOffset);
        "PE\0\0"u8.CopyTo(span[PeOffset..]);
        BinaryPrimitives.WriteUInt16LittleEndian(span[(PeOffset + 4)..], machine);
        BinaryPrimitives.WriteUInt16LittleEndian(span[(PeOffset + 6)..], 1);
        BinaryPrimitives.WriteUInt16LittleEndian(span[(PeOffset + 20)..], OptionalSize);
        BinaryPrimitives.WriteUInt16LittleEndian(span[(PeOffset + 22)..], 0x2022); // executable, large-address aware, DLL
        int optional = PeOffset + 24;
        BinaryPrimitives.WriteUInt16LittleEndian(span[optional..], 0x20b);
        BinaryPrimitives.WriteUInt32LittleEndian(span[(optional + 108)..], 16);
        BinaryPrimitives.WriteUInt32LittleEndian(span[ExportDataDirectoryOffset..], SectionRva);
        BinaryPrimitives.WriteUInt32LittleEndian(span[(ExportDataDirectoryOffset + 4)..], 0x40);
        ".rdata\0\0"u8.CopyTo(span[SectionTable..]);
        BinaryPrimitives.WriteUInt32LittleEndian(span[(SectionTable + 8)..], (uint)rawSize);
        BinaryPrimitives.WriteUInt32LittleEndian(span[(SectionTable + 12)..], SectionRva);
        BinaryPrimitives.WriteUInt32LittleEndian(span[(SectionTable + 16)..], (uint)rawSize);
        BinaryPrimitives.WriteUInt32LittleEndian(span[(SectionTable + 20)..], RawOffset);

        var directory = span[RawOffset..];
        BinaryPrimitives.WriteUInt32LittleEndian(directory[20..], 1);                   // NumberOfFunctions
        BinaryPrimitives.WriteUInt32LittleEndian(directory[24..], 1);                   // NumberOfNames
        BinaryPrimitives.WriteUInt32LittleEndian(directory[28..], SectionRva + 0x28);   // AddressOfFunctions
        BinaryPrimitives.WriteUInt32LittleEndian(directory[32..], SectionRva + 0x2c);   // AddressOfNames
        BinaryPrimitives.WriteUInt32LittleEndian(directory[36..], SectionRva + 0x30);   // AddressOfNameOrdinals
        BinaryPrimitives.WriteUInt32LittleEndian(directory[0x28..], SectionRva + dataAt);
        BinaryPrimitives.WriteUInt32LittleEndian(directory[0x2c..], SectionRva + nameAt);
        BinaryPrimitives.WriteUInt16LittleEndian(directory[0x30..], 0);
        Encoding.ASCII.GetBytes(symbol).CopyTo(directory[nameAt..]);
        data.CopyTo(directory[dataAt..]);
        return bytes;
    }
}
