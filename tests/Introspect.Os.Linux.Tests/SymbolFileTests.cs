using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Introspect.Abi;
using Introspect.Core.Memory;
using Introspect.Os.Linux.Kernel;
using Introspect.Os.Linux.Processes;
using Introspect.Os.Linux.Types;
using Introspect.TestSupport;

namespace Introspect.Os.Linux.Tests;

/// <summary>Kernels without kallsyms or without BTF, made from the fixture guest by erasing them from its memory,
/// read with a System.map or an ISF file of the same kernel.</summary>
/// <remarks>
/// The files are written from what the undamaged guest's own kallsyms and BTF say (link-time addresses: the run-time
/// ones less the KASLR slide), in the formats the kernel build and dwarf2json write, so the files are as true as the
/// guest; what is tested is that the layer finds the kernel, the slide and every structure through them alone.
/// </remarks>
[NonParallelizable]
public sealed class SymbolFileTests
{
    private string _folder = null!;
    private List<ProcessInfo> _reference = null!;
    private long _slide;
    private string _systemMap = null!;
    private string _isf = null!;

    [OneTimeSetUp]
    public void WriteFiles()
    {
        _folder = Directory.CreateTempSubdirectory("linux-symbols-").FullName;
        using var memory = LinuxSupport.OpenDump(TestInputs.Fixture("guest.raw"));
        using var os = LinuxSupport.OpenLinux(memory);
        var linux = (LinuxOperatingSystem)os;
        _reference = [.. os.GetProcesses()];
        _slide = os.Info.KernelSlide!.Value;

        var symbols = linux.Image.Symbols.Symbols;
        _systemMap = Path.Combine(_folder, "System.map");
        File.WriteAllLines(_systemMap, symbols.Select(s => $"{LinuxSupport.Hex(Unslide(s.Address)).PadLeft(16, '0')} {s.Type} {s.Name}"));

        _isf = Path.Combine(_folder, "kernel.json");
        File.WriteAllText(_isf, IsfWriter.Write(linux, Unslide, memory));
    }

    [OneTimeTearDown]
    public void Remove() => Directory.Delete(_folder, recursive: true);

    private ulong Unslide(ulong address) => address >= 0xff00_0000_0000_0000 ? unchecked(address - (ulong)_slide) : address;

    /// <summary>The guest with every place that looks like kallsyms' token table overwritten.</summary>
    private static PatchedMemory WithoutKallsyms()
    {
        var memory = new PatchedMemory(LinuxSupport.OpenDump(TestInputs.Fixture("guest.raw")));
        foreach (ulong hit in MemorySearch.Search(memory, BytePattern.FromBytes(Kallsyms.DigitPattern)))
            memory.Patch(hit, "x"u8);
        return memory;
    }

    /// <summary>The guest with its BTF blob's magic overwritten.</summary>
    private static PatchedMemory WithoutBtf()
    {
        var memory = new PatchedMemory(LinuxSupport.OpenDump(TestInputs.Fixture("guest.raw")));
        using var os = LinuxSupport.OpenLinux(memory);
        ((IKernelSymbols)os).TryGetSymbolAddress("__start_BTF", out ulong btf);
        Assert.That(((LinuxOperatingSystem)os).KernelMemory.TryTranslate(btf, out ulong physical), Is.True);
        memory.Patch(physical, [0, 0]);
        return memory;
    }

    [Test]
    public void A_system_map_places_a_kernel_without_kallsyms()
    {
        using var memory = WithoutKallsyms();
        using var os = LinuxSupport.OpenLinux(memory, out _, ("systemmap", _systemMap));
        Assert.That(os.Info.Properties["symbol_source"], Does.Contain("System.map"));
        Assert.That(os.Info.KernelSlide, Is.EqualTo(_slide));
        Assert.That(os.GetProcesses().Select(p => (p.Pid, p.Name, p.CommandLine)), Is.EqualTo(_reference.Select(p => (p.Pid, p.Name, p.CommandLine))));
    }

    [Test]
    public void An_isf_file_places_a_kernel_without_kallsyms()
    {
        using var memory = WithoutKallsyms();
        using var os = LinuxSupport.OpenLinux(memory, out _, ("isf", _isf));
        Assert.That(os.Info.KernelSlide, Is.EqualTo(_slide));
        Assert.That(os.GetProcesses().Select(p => p.Pid), Is.EqualTo(_reference.Select(p => p.Pid)));
    }

    [Test]
    public void An_isf_file_gives_the_types_of_a_kernel_without_btf()
    {
        using var memory = WithoutBtf();
        using var os = LinuxSupport.OpenLinux(memory, out var log, ("isf", _isf));
        Assert.That(os.Info.Properties["type_source"], Does.Contain("ISF"));
        Assert.That(log, Has.Some.Contains("BTF magic"));
        var processes = os.GetProcesses();
        Assert.That(processes.Select(p => (p.Pid, p.ParentPid, p.Name, p.CommandLine, p.Path, p.StateText)),
            Is.EqualTo(_reference.Select(p => (p.Pid, p.ParentPid, p.Name, p.CommandLine, p.Path, p.StateText))));
        var worker = processes.First(p => p.Name == "memtest-worker");
        using var clean = LinuxSupport.OpenLinux(LinuxSupport.OpenDump(TestInputs.Fixture("guest.raw")));
        Assert.That(os.GetMemoryAreas(worker).Select(LinuxSupport.MapsLine), Is.EqualTo(clean.GetMemoryAreas(clean.GetProcess(worker.Pid)!).Select(LinuxSupport.MapsLine)));
        Assert.That(((IKernelTypes)os).TryGetFieldOffset("dentry", "d_name.len", out ulong length), Is.True);
        Assert.That(((IKernelTypes)clean).TryGetFieldOffset("dentry", "d_name.len", out ulong expected) && length == expected, Is.True);
    }

    [Test]
    public void A_gzip_compressed_isf_file_reads_the_same()
    {
        var compressed = Path.Combine(_folder, "kernel.json.gz");
        using (var file = File.Create(compressed))
        using (var gzip = new System.IO.Compression.GZipStream(file, System.IO.Compression.CompressionLevel.Fastest))
            gzip.Write(File.ReadAllBytes(_isf));
        var (plainSymbols, plainTypes) = SymbolFiles.ReadIsf(_isf);
        var (gzipSymbols, gzipTypes) = SymbolFiles.ReadIsf(compressed);
        using (plainTypes)
        using (gzipTypes)
        {
            Assert.That(gzipSymbols.Symbols.Count, Is.EqualTo(plainSymbols.Symbols.Count).And.GreaterThan(50_000));
            Assert.That(gzipSymbols.BannerText, Does.StartWith("Linux version "));
            Assert.That(gzipTypes.TryGetField("task_struct", "tasks", out var tasks) && plainTypes.TryGetField("task_struct", "tasks", out var expected)
                && tasks == expected, Is.True);
            Assert.That(gzipTypes.TryGetField("dentry", "d_name.len", out var length) && length.Size == 4, Is.True, "through the anonymous member");
        }
        File.WriteAllBytes(compressed, [0x1f, 0x8b, 8, 0, 0, 0]);
        var error = Assert.Throws<InvalidDataException>(() => SymbolFiles.ReadIsf(compressed));
        Assert.That(error!.Message, Does.StartWith("kernel.json.gz: "));
    }

    [Test]
    public void An_isf_that_puts_a_field_outside_its_structure_is_refused()
    {
        var document = JsonNode.Parse(File.ReadAllText(_isf))!;
        document["user_types"]!["task_struct"]!["fields"]!["pid"]!["offset"] = 99_999_999;
        var damaged = Path.Combine(_folder, "damaged.json");
        File.WriteAllText(damaged, document.ToJsonString());
        using var memory = WithoutBtf();
        var error = Assert.Throws<InvalidDataException>(() => LinuxSupport.OpenLinux(memory, out _, ("isf", damaged)));
        Assert.That(error!.Message, Does.Contain("task_struct.pid at offset 99999999"));
    }

    [Test]
    public void Without_btf_or_isf_the_error_names_the_way_out()
    {
        using var memory = WithoutBtf();
        var error = Assert.Throws<InvalidDataException>(() => LinuxSupport.OpenLinux(memory));
        Assert.That(error!.Message, Does.Contain("no type information").And.Contain("isf=FILE"));
    }

    [Test]
    public void A_system_map_of_another_build_is_refused()
    {
        using var memory = WithoutKallsyms();
        var other = Path.Combine(_folder, "other.map");
        // Another build lays its image out differently: here linux_banner sits 4 KiB further on.
        File.WriteAllLines(other, File.ReadLines(_systemMap).Select(line =>
        {
            var parts = line.Split(' ');
            return parts[2] == "linux_banner" ? $"{LinuxSupport.Hex(LinuxSupport.ParseHex(parts[0]) + 0x1000).PadLeft(16, '0')} {parts[1]} {parts[2]}" : line;
        }));
        var error = Assert.Throws<InvalidDataException>(() => LinuxSupport.OpenLinux(memory, out _, ("systemmap", other)));
        Assert.That(error!.Message, Does.Contain("other.map").And.Contain("linux_banner"));
    }

    [TestCase("", "no line of the form")]
    [TestCase("this is not\na system map\n", "no line of the form")]
    public void A_file_that_is_no_system_map_is_refused(string text, string expected)
    {
        var path = Path.Combine(_folder, "bad.map");
        File.WriteAllText(path, text);
        var error = Assert.Throws<InvalidDataException>(() => SymbolFiles.ReadSystemMap(path));
        Assert.That(error!.Message, Does.StartWith("bad.map: ").And.Contain(expected));
    }

    [TestCase("{", "not valid JSON")]
    [TestCase("[1, 2]", "no 'symbols' and 'user_types'")]
    [TestCase("{\"symbols\": {}}", "no 'symbols' and 'user_types'")]
    public void A_file_that_is_no_isf_is_refused(string text, string expected)
    {
        var path = Path.Combine(_folder, "bad.json");
        File.WriteAllText(path, text);
        var error = Assert.Throws<InvalidDataException>(() => SymbolFiles.ReadIsf(path));
        Assert.That(error!.Message, Does.StartWith("bad.json: ").And.Contain(expected));
    }

    [Test]
    public void A_missing_file_is_an_argument_error()
    {
        using var memory = LinuxSupport.OpenDump(TestInputs.Fixture("guest.raw"));
        var error = Assert.Throws<PluginArgumentException>(() => LinuxSupport.OpenLinux(memory, out _, ("systemmap", Path.Combine(_folder, "absent.map"))));
        Assert.That(error!.Message, Does.Contain("systemmap=").And.Contain("names no file"));
        var unknown = Assert.Throws<PluginArgumentException>(() => LinuxSupport.OpenLinux(memory, out _, ("btf", "x")));
        Assert.That(unknown!.Message, Does.Contain("unknown argument 'btf'"));
    }

    /// <summary>Writes an ISF file as dwarf2json would for what the layer asks of a kernel's types, with the answers the
    /// kernel's own BTF gives. Nested fields become nested types; <c>d_name</c>'s length sits in an anonymous member,
    /// as qstr has it.</summary>
    private static class IsfWriter
    {
        public static string Write(LinuxOperatingSystem os, Func<ulong, ulong> unslide, IPhysicalMemory memory)
        {
            var recorder = new RecordingTypes(os.Context.Types);
            LinuxStructures.Resolve(recorder);
            _ = new LinuxContext(memory, os.Image, recorder, os.Context.Structures, os.Context.Tlb, new NullContext());

            var userTypes = new JsonObject();
            var baseTypes = new JsonObject
            {
                ["pointer"] = new JsonObject { ["size"] = 8, ["signed"] = false, ["kind"] = "int", ["endian"] = "little" },
                ["unsigned char"] = new JsonObject { ["size"] = 1, ["signed"] = false, ["kind"] = "char", ["endian"] = "little" },
            };
            foreach (var type in recorder.Sizes)
            {
                if (os.Context.Types.TryGetTypeSize(type, out ulong size))
                    Aggregate(userTypes, type, size);
            }
            foreach (var (type, path) in recorder.Fields)
            {
                if (!os.Context.Types.TryGetField(type, path, out var field))
                    continue;
                os.Context.Types.TryGetTypeSize(type, out ulong typeSize);
                var parts = path.Split('.');
                string owner = type;
                ulong ownerOffset = 0;
                Aggregate(userTypes, owner, typeSize);
                for (int i = 0; i < parts.Length; i++)
                {
                    string prefix = string.Join('.', parts[..(i + 1)]);
                    os.Context.Types.TryGetField(type, prefix, out var step);
                    var fields = (JsonObject)userTypes[owner]!["fields"]!;
                    bool last = i == parts.Length - 1;
                    if (owner == "dentry.d_name" && parts[i] == "len")
                    {
                        // As in qstr: the length lives in an anonymous structure at the start.
                        fields["unnamed_field_0"] = new JsonObject
                        {
                            ["offset"] = 0, ["anonymous"] = true,
                            ["type"] = new JsonObject { ["kind"] = "struct", ["name"] = "dentry.d_name.hash_len" },
                        };
                        Aggregate(userTypes, "dentry.d_name.hash_len", 8);
                        ((JsonObject)userTypes["dentry.d_name.hash_len"]!["fields"]!)["len"] = Leaf(step.Offset - ownerOffset, step);
                        break;
                    }
                    if (last)
                        fields[parts[i]] = Leaf(step.Offset - ownerOffset, step);
                    else if (!fields.ContainsKey(parts[i]))
                    {
                        string nested = $"{type}.{prefix}";
                        fields[parts[i]] = new JsonObject { ["offset"] = step.Offset - ownerOffset, ["type"] = new JsonObject { ["kind"] = "struct", ["name"] = nested } };
                        Aggregate(userTypes, nested, step.Size);
                    }
                    owner = $"{type}.{prefix}";
                    ownerOffset = step.Offset;
                }
            }
            var symbols = new JsonObject();
            foreach (var symbol in os.Image.Symbols.Symbols)
                symbols[symbol.Name] ??= new JsonObject { ["address"] = unslide(symbol.Address) };
            var banner = Encoding.UTF8.GetBytes(os.Info.Version + "\n");
            ((JsonObject)symbols["linux_banner"]!)["constant_data"] = Convert.ToBase64String(banner);
            var document = new JsonObject
            {
                ["metadata"] = new JsonObject { ["format"] = "6.2.0", ["producer"] = new JsonObject { ["name"] = "introspect-tests" } },
                ["base_types"] = baseTypes,
                ["user_types"] = userTypes,
                ["enums"] = new JsonObject(),
                ["symbols"] = symbols,
            };
            return document.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
        }

        private static void Aggregate(JsonObject userTypes, string name, ulong size)
        {
            if (!userTypes.ContainsKey(name))
                userTypes[name] = new JsonObject { ["size"] = size, ["fields"] = new JsonObject(), ["kind"] = "struct" };
        }

        /// <summary>A field whose size the type gives: a byte array of that size, or an array of 8-byte slots when the BTF says it is an array of pointers.</summary>
        private static JsonObject Leaf(ulong offset, FieldLayout field)
        {
            JsonObject type = field.ElementCount is { } count && count > 0
                ? new JsonObject { ["kind"] = "array", ["count"] = count, ["subtype"] = Bytes(field.Size / count) }
                : Bytes(field.Size);
            return new JsonObject { ["offset"] = offset, ["type"] = type };
        }

        private static JsonObject Bytes(ulong size) => size == 8
            ? new JsonObject { ["kind"] = "pointer", ["subtype"] = new JsonObject { ["kind"] = "base", ["name"] = "void" } }
            : new JsonObject { ["kind"] = "array", ["count"] = size, ["subtype"] = new JsonObject { ["kind"] = "base", ["name"] = "unsigned char" } };
    }

    /// <summary>Passes queries through and remembers them.</summary>
    private sealed class RecordingTypes(IKernelTypeSource inner) : IKernelTypeSource
    {
        public HashSet<string> Sizes { get; } = [];

        public HashSet<(string Type, string Path)> Fields { get; } = [];

        public string Description => inner.Description;

        public bool TryGetTypeSize(string typeName, out ulong size)
        {
            Sizes.Add(typeName);
            return inner.TryGetTypeSize(typeName, out size);
        }

        public bool TryGetField(string typeName, string fieldPath, out FieldLayout field)
        {
            Fields.Add((typeName, fieldPath));
            return inner.TryGetField(typeName, fieldPath, out field);
        }
    }

    private sealed class NullContext : IPluginContext
    {
        public void Log(PluginLogLevel level, string message) { }
    }
}
