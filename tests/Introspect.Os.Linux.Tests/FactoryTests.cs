using System.Reflection;
using Introspect.Abi;
using Introspect.TestSupport;
using Moq;

namespace Introspect.Os.Linux.Tests;

/// <summary>The plugin's declaration, its arguments, and the translation cache the host asks it to keep.</summary>
public sealed class FactoryTests
{
    [Test]
    public void The_assembly_declares_the_linux_os_layer()
    {
        var declaration = typeof(LinuxOsFactory).Assembly.GetCustomAttributes<IntrospectPluginAttribute>().Single();
        Assert.That((declaration.Kind, declaration.Name, declaration.AbiVersion, declaration.Factory),
            Is.EqualTo((PluginKind.OperatingSystem, "linux", IntrospectAbi.Version, typeof(LinuxOsFactory))));
        Assert.That(declaration.Description, Is.Not.Empty);
    }

    [Test]
    public void The_arguments_are_two_optional_files()
    {
        var parameters = new LinuxOsFactory().Parameters;
        Assert.That(parameters.Select(p => (p.Name, p.Type, p.Required)),
            Is.EqualTo(new[] { ("systemmap", PluginParameterType.Path, false), ("isf", PluginParameterType.Path, false) }));
    }

    [TestCase(false, 0)]
    [TestCase(true, 16)]
    [TestCase(true, 100_000)]
    public void The_hosts_tlb_settings_change_nothing_that_is_read(bool enabled, int entries)
    {
        var guest = TestInputs.LinuxLa57Pc;
        var report = guest.Oracle.Memtests[0];
        using var memory = LinuxSupport.OpenDump(guest.Elf);
        var context = new Mock<IPluginContext>();
        var settings = context.As<ITranslationCacheSettings>();
        settings.SetupGet(s => s.Enabled).Returns(enabled);
        settings.SetupGet(s => s.Entries).Returns(entries);
        settings.SetupGet(s => s.MaxAge).Returns(TimeSpan.FromMinutes(1));
        using var os = new LinuxOsFactory().Create(memory, PluginArguments.Empty("linux"), context.Object);
        Assert.That(os.GetProcesses().Select(p => p.Pid), Does.Contain((ulong)report.Pid));
        var process = os.GetProcess((ulong)report.Pid)!;
        var virtualMemory = os.OpenProcessMemory(process);
        foreach (var buffer in report.Buffers)
        {
            var bytes = new byte[buffer.Length];
            Assert.That(Introspect.Core.Memory.MemoryReads.Read(virtualMemory, buffer.Address, bytes), Is.EqualTo(bytes.Length), buffer.Kind);
            Assert.That(MemtestPattern.Fnv1a64(bytes), Is.EqualTo(buffer.Fnv1a64), buffer.Kind);
        }
    }

    [Test]
    public void Memory_with_no_kernel_is_refused_with_what_was_tried()
    {
        // The shared PE test data holds no Linux: a raw image of it is memory without a kernel.
        using var memory = LinuxSupport.OpenDump(TestInputs.TestData("pe", "ntoskrnl.exe"));
        var error = Assert.Throws<InvalidDataException>(() => LinuxSupport.OpenLinux(memory));
        Assert.That(error!.Message, Does.StartWith("linux: no Linux kernel found in this memory").And.Contain("VMCOREINFO"));
    }
}
