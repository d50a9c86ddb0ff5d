using Introspect.Abi;
using Introspect.TestSupport;

namespace Introspect.Os.Windows.Tests;

/// <summary>The real Windows 10 x64 and Windows 7 x86 crash-dump headers (page data stripped): their hints are taken
/// and named, and since no page behind them holds Windows, the layer says so clearly.</summary>
public sealed class CrashDumpHeaderTests
{
    private string _folder = null!;

    [OneTimeSetUp]
    public void MakeFolder()
    {
        _folder = Path.Combine(Path.GetTempPath(), "introspect-windows-headers-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_folder);
    }

    [OneTimeTearDown]
    public void RemoveFolder() => Directory.Delete(_folder, recursive: true);

    /// <summary>The real header followed by 0x100 zero pages: a dump whose first pages exist, served with truncation allowed.</summary>
    private IPhysicalMemory Open(string header, int headerSize)
    {
        var bytes = File.ReadAllBytes(TestInputs.TestData("crashdump", header));
        var file = new byte[headerSize + 0x100 * 4096];
        bytes.AsSpan(0, headerSize).CopyTo(file);
        string path = Path.Combine(_folder, header + ".dmp");
        File.WriteAllBytes(path, file);
        return WindowsSupport.OpenFile(path, ("allow-truncated", "on"));
    }

    [Test]
    public void The_windows_10_header_gives_its_dtb_which_is_tried_first()
    {
        using var memory = Open("coredump_win10_64bit_stripped.raw", 0x2000);
        Assert.That(((IConnectorHints)memory).Hints.DirectoryTableBase, Is.EqualTo(0x3e6b1a000UL));
        Assert.That(() => WindowsSupport.OpenWindows(memory, out _, ("offline", "on")), Throws.TypeOf<InvalidDataException>()
            .With.Message.Contains("no Windows kernel found")
            .And.Message.Contains("the crashdump-full header gives DirectoryTableBase 0x3e6b1a000 (x64)")
            .And.Message.Contains("nothing is mapped"));
    }

    [Test]
    public void The_windows_7_header_gives_a_pae_dtb_which_is_tried_first()
    {
        using var memory = Open("coredump_win7_32bit_stripped.raw", 0x1000);
        Assert.That(((IConnectorHints)memory).Hints.Architecture, Is.EqualTo(MachineArchitecture.X86Pae));
        Assert.That(() => WindowsSupport.OpenWindows(memory, out _, ("offline", "on")), Throws.TypeOf<InvalidDataException>()
            .With.Message.Contains("no Windows kernel found")
            .And.Message.Contains("the crashdump-full header gives DirectoryTableBase 0xbf62f2e0 (x86-pae)"));
    }
}
