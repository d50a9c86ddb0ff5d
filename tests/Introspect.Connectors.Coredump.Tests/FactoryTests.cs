using System.Reflection;
using Introspect.Abi;
using Introspect.TestSupport;
using Moq;

namespace Introspect.Connectors.Coredump.Tests;

public class FactoryTests
{
    [Test]
    public void The_assembly_declares_the_coredump_connector()
    {
        var declaration = typeof(CoredumpConnectorFactory).Assembly.GetCustomAttribute<IntrospectPluginAttribute>();
        Assert.That(declaration, Is.Not.Null);
        Assert.Multiple(() =>
        {
            Assert.That(declaration!.Kind, Is.EqualTo(PluginKind.Connector));
            Assert.That(declaration.Name, Is.EqualTo("coredump"));
            Assert.That(declaration.AbiVersion, Is.EqualTo(IntrospectAbi.Version));
            Assert.That(declaration.Factory, Is.EqualTo(typeof(CoredumpConnectorFactory)));
            Assert.That(declaration.Description, Does.Contain("kdump"));
        });
    }

    [Test]
    public void The_parameters_name_path_format_and_truncation()
    {
        var parameters = new CoredumpConnectorFactory().Parameters;
        Assert.That(parameters.Select(p => p.Name), Is.EqualTo(new[] { "path", "format", "allow-truncated" }));
        Assert.That(parameters[0].Required, Is.True);
        Assert.That(parameters[0].Type, Is.EqualTo(PluginParameterType.Path));
        Assert.That(parameters[1].Choices, Is.EqualTo(new[] { "auto", "raw", "elf", "lime", "crashdump", "kdump" }));
        Assert.That(parameters[1].DefaultValue, Is.EqualTo("auto"));
    }

    [Test]
    public void Bad_arguments_are_refused_by_name()
    {
        var factory = new CoredumpConnectorFactory();
        var context = Mock.Of<IPluginContext>();
        Assert.That(() => factory.Create(PluginArguments.Empty("coredump"), context),
            Throws.TypeOf<PluginArgumentException>().With.Message.Contains("'path'"));
        Assert.That(() => Support.Open("/nonexistent/dump.raw"),
            Throws.TypeOf<PluginArgumentException>().With.Message.Contains("/nonexistent/dump.raw"));
        Assert.That(() => Support.Open(TestInputs.LinuxRawImage, format: "vmware"),
            Throws.TypeOf<PluginArgumentException>().With.Message.Contains("format=vmware"));
        var unknown = new PluginArguments("coredump", [new("path", TestInputs.LinuxRawImage), new("pth", "x")]);
        Assert.That(() => factory.Create(unknown, context), Throws.TypeOf<PluginArgumentException>().With.Message.Contains("'pth'"));
    }

    [Test]
    public void A_forced_format_must_match_the_magic()
    {
        Assert.That(() => Support.Open(TestInputs.LinuxRawImage, format: "elf"),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains("format=elf").And.Message.Contains(TestInputs.LinuxRawImage));
        // raw can always be forced: the kdump file's bytes, as they are.
        using var memory = Support.Open(TestInputs.LinuxFlattenedKdump, format: "raw");
        Assert.That(Support.HintsOf(memory).Format, Is.EqualTo("raw"));
        Assert.That(memory.Metadata.RealSize, Is.EqualTo((ulong)new FileInfo(TestInputs.LinuxFlattenedKdump).Length));
        Assert.That(Support.Read(memory, 0, 12), Is.EqualTo("makedumpfile"u8.ToArray()));
    }

    [Test]
    public void An_empty_file_is_refused()
    {
        using var folder = new TempFolder();
        string path = folder.Write("empty.raw", []);
        Assert.That(() => Support.Open(path), Throws.TypeOf<InvalidDataException>().With.Message.Contains("empty.raw").And.Message.Contains("empty"));
    }

    [Test]
    public void A_file_without_known_magic_opens_as_raw()
    {
        using var folder = new TempFolder();
        string path = folder.Write("small.bin", [1, 2, 3]);
        using var memory = Support.Open(path);
        Assert.That(Support.HintsOf(memory).Format, Is.EqualTo("raw"));
        Assert.That(Support.Read(memory, 0, 3), Is.EqualTo(new byte[] { 1, 2, 3 }));
        Assert.That(Support.Read(memory, 1, 3), Is.Null);
    }

    [TestCase("elf-magic-only.bin", new byte[] { 0x7F, (byte)'E', (byte)'L', (byte)'F' })]
    [TestCase("kdump-magic-only.bin", new byte[] { (byte)'K', (byte)'D', (byte)'U', (byte)'M', (byte)'P', 32, 32, 32 })]
    [TestCase("flattened-magic-only.bin", new byte[] { (byte)'m', (byte)'a', (byte)'k', (byte)'e', (byte)'d', (byte)'u', (byte)'m', (byte)'p', (byte)'f', (byte)'i', (byte)'l', (byte)'e' })]
    [TestCase("pagedump-magic-only.bin", new byte[] { (byte)'P', (byte)'A', (byte)'G', (byte)'E', (byte)'D', (byte)'U', (byte)'6', (byte)'4' })]
    [TestCase("lime-magic-only.bin", new byte[] { 0x45, 0x4D, 0x69, 0x4C })]
    public void A_file_with_only_a_magic_is_refused_as_truncated(string name, byte[] content)
    {
        using var folder = new TempFolder();
        string path = folder.Write(name, content);
        Assert.That(() => Support.Open(path), Throws.TypeOf<InvalidDataException>().With.Message.Contains(name).And.Message.Contains("truncated"));
    }
}
