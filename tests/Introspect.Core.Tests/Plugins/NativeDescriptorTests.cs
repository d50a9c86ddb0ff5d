using System.Buffers.Binary;
using System.Text;
using Introspect.Abi;
using Introspect.Core.Plugins.Native;
using Introspect.Tests.Plugins;

namespace Introspect.Core.Tests.Plugins;

/// <summary>Descriptors field by field: the real sample's bytes, and copies of them with one field broken.</summary>
public class NativeDescriptorTests
{
    private const string Symbol = "introspect_plugin_native_sample";

    private static byte[] Descriptor() =>
        NativeImage.Read(SamplePlugins.NativeLibrary)!.Exports.Single(e => e.Symbol == Symbol).Data[..NativeAbi.DescriptorSize(8)];

    private static Core.Plugins.PluginDescriptor Parse(byte[] bytes, ulong? declaredSize = null) =>
        NativePluginReader.Parse("/lib/x.so", Symbol, bytes, declaredSize, 8, null);

    private static void U32(byte[] bytes, int offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(offset), value);

    private static void Text(byte[] bytes, int offset, int length, string text)
    {
        bytes.AsSpan(offset, length).Clear();
        Encoding.UTF8.GetBytes(text).CopyTo(bytes, offset);
    }

    private static int Parameter(int index) => NativeAbi.DescriptorParametersOffset + index * NativeAbi.ParameterSize;

    [Test]
    public void The_sample_descriptor_parses()
    {
        var plugin = Parse(Descriptor());

        Assert.That(plugin.Name, Is.EqualTo("native-sample"));
        Assert.That(plugin.IsCompatible);
    }

    public static IEnumerable<TestCaseData> BrokenFields()
    {
        yield return new TestCaseData(new Action<byte[]>(b => U32(b, 4, 2)), "has descriptor version 2; this host reads version 1").SetName("version");
        yield return new TestCaseData(new Action<byte[]>(b => U32(b, 0, 100)), "has size 100; expected at least 9224").SetName("size too small");
        yield return new TestCaseData(new Action<byte[]>(b => U32(b, 0, 1 << 20)), "and at most 65536").SetName("size huge");
        yield return new TestCaseData(new Action<byte[]>(b => U32(b, 0, 9300)), "has size 9300, but the file holds 9224 bytes").SetName("size past the data");
        yield return new TestCaseData(new Action<byte[]>(b => b[8] = (byte)'X'), "has magic 'XPLUGIN'; expected \"IPLUGIN\"").SetName("magic");
        yield return new TestCaseData(new Action<byte[]>(b => U32(b, NativeAbi.DescriptorKindOffset, 7)), "has kind 7; expected 1 (IP_KIND_CONNECTOR) or 2 (IP_KIND_OS)").SetName("kind");
        yield return new TestCaseData(new Action<byte[]>(b => Text(b, NativeAbi.DescriptorNameOffset, NativeAbi.NameMax, "Bad Name")), "has name 'Bad Name'").SetName("name");
        yield return new TestCaseData(new Action<byte[]>(b => Text(b, NativeAbi.DescriptorVersionOffset, NativeAbi.VersionMax, "one")), "has version 'one'; expected major.minor[.patch]").SetName("plugin version");
        yield return new TestCaseData(new Action<byte[]>(b => U32(b, NativeAbi.DescriptorParameterCountOffset, 17)), "has parameter_count 17; expected at most 16").SetName("parameter count");
        yield return new TestCaseData(new Action<byte[]>(b => U32(b, NativeAbi.DescriptorInputsOffset, 0)), "has inputs 0x0").SetName("inputs");
        yield return new TestCaseData(new Action<byte[]>(b => U32(b, Parameter(1) + 32, 9)), "parameter 'map' has type 9").SetName("parameter type");
        yield return new TestCaseData(new Action<byte[]>(b => U32(b, Parameter(1) + 36, 2)), "marks path and map as the default argument").SetName("two default arguments");
        yield return new TestCaseData(new Action<byte[]>(b => Text(b, Parameter(1), 32, "path")), "declares parameter 'path' twice").SetName("duplicate parameter");
        yield return new TestCaseData(new Action<byte[]>(b => Text(b, Parameter(1), 32, "Map Name")), "parameter 1 is named 'Map Name'").SetName("parameter name");
    }

    [TestCaseSource(nameof(BrokenFields))]
    public void A_broken_field_is_refused_naming_the_file_the_symbol_and_the_value(Action<byte[]> breakIt, string expected)
    {
        var bytes = Descriptor();
        breakIt(bytes);

        var error = Assert.Throws<InvalidDataException>(() => Parse(bytes));

        Assert.That(error!.Message, Does.StartWith("/lib/x.so: descriptor 'introspect_plugin_native_sample'").And.Contain(expected));
    }

    [Test]
    public void Too_few_bytes_and_a_symbol_smaller_than_its_size_are_refused()
    {
        Assert.That(() => Parse(Descriptor()[..7]), Throws.TypeOf<InvalidDataException>().With.Message.Contains("has 7 bytes in the file"));
        Assert.That(() => Parse(Descriptor(), declaredSize: 64), Throws.TypeOf<InvalidDataException>().With.Message.Contains("the file holds 64 bytes"));
    }

    [Test]
    public void Another_abi_version_is_listed_with_its_name_and_refused_with_both_versions()
    {
        var bytes = Descriptor();
        U32(bytes, NativeAbi.DescriptorAbiOffset, 99);
        U32(bytes, NativeAbi.DescriptorParameterCountOffset, 1000); // read no further than the name: another ABI may lay out the rest differently

        var plugin = Parse(bytes);

        Assert.That(plugin.Name, Is.EqualTo("native-sample"));
        Assert.That(plugin.AbiVersion, Is.EqualTo(99));
        Assert.That(plugin.IsCompatible, Is.False);
        Assert.That(plugin.Incompatibility, Is.EqualTo($"it was built for plugin ABI 99; this host speaks ABI {IntrospectAbi.Version}"));
    }

    [Test]
    public void Text_fields_without_a_terminating_nul_stop_at_their_end()
    {
        var bytes = Descriptor();
        bytes.AsSpan(NativeAbi.DescriptorNameOffset, NativeAbi.NameMax).Fill((byte)'a');
        bytes.AsSpan(NativeAbi.DescriptorDescriptionOffset, NativeAbi.DescriptionMax).Fill((byte)'d');

        var plugin = Parse(bytes);

        Assert.That(plugin.Name, Is.EqualTo(new string('a', 64)));
        Assert.That(plugin.Version, Is.EqualTo(new Version(1, 0, 0)), "the version field is not read into the name");
        Assert.That(plugin.Description, Is.EqualTo(new string('d', 256)));
    }
}
