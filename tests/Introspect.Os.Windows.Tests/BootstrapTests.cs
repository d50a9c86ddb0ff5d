using System.Buffers.Binary;
using Introspect.Abi;
using Introspect.Core.Memory;
using Introspect.TestSupport;

namespace Introspect.Os.Windows.Tests;

/// <summary>Every bootstrap step with its fallbacks: the DTB from a crash-dump hint, the low stub or the self-map scan;
/// the kernel from the stub's entry or a scan; the account names what worked.</summary>
[TestFixtureSource(typeof(WindowsSupport), nameof(WindowsSupport.Names))]
public sealed class BootstrapTests(string name)
{
    private WindowsTruth _truth = null!;

    [OneTimeSetUp]
    public void Load() => _truth = WindowsSupport.Truth(name);

    private List<(ulong, ulong, string)> Expected() => _truth.Processes.Select(p => (p.Pid, p.ParentPid, p.Name)).OrderBy(p => p.Item1).ToList();

    private static List<(ulong, ulong, string)> Listed(IOperatingSystem windows) =>
        windows.GetProcesses().Select(p => (p.Pid, p.ParentPid, p.Name)).OrderBy(p => p.Item1).ToList();

    /// <summary>How a raw image (no hints) is entered: x64 through the low stub, 32-bit through its self-mapped directories.</summary>
    private string RawDtbMethod => _truth.Architecture switch
    {
        "x64" => "low stub",
        "x86pae" => "self-mapped x86 PAE page directory scan",
        _ => "self-mapped x86 page directory scan",
    };

    [Test]
    public void A_raw_image_is_entered_without_hints()
    {
        using var memory = WindowsSupport.Open(new FixtureForm(name, "raw"));
        using var windows = WindowsSupport.OpenWithPdb(memory, out _);
        Assert.Multiple(() =>
        {
            Assert.That(windows.Info.Properties["dtb_method"], Is.EqualTo(RawDtbMethod));
            Assert.That(windows.Info.Properties["kernel_method"], _truth.Architecture == "x64" ? Does.Contain("low stub's kernel entry") : Does.StartWith("a scan of the kernel range"));
            Assert.That(windows.Info.Properties["bootstrap"], Does.Contain("no DirectoryTableBase hint from the connector"));
            Assert.That(windows.Info.KernelBase, Is.EqualTo(_truth.KernelBase));
            Assert.That(Listed(windows), Is.EqualTo(Expected()));
        });
    }

    [Test]
    public void A_crash_dump_is_entered_through_its_header_hint()
    {
        using var memory = WindowsSupport.Open(new FixtureForm(name, "dump"));
        using var windows = WindowsSupport.OpenWithPdb(memory, out _);
        Assert.Multiple(() =>
        {
            Assert.That(windows.Info.Properties["dtb_method"], Does.StartWith("connector hint"));
            Assert.That(windows.Info.Properties["bootstrap"], Does.Contain("crashdump-full header gives DirectoryTableBase"));
            Assert.That(Listed(windows), Is.EqualTo(Expected()));
        });
    }

    [Test]
    public void A_wrong_dtb_hint_is_tried_and_left_for_the_next_method()
    {
        using var raw = WindowsSupport.Open(new FixtureForm(name, "raw"));
        var memory = new PatchedMemory(raw) { Hints = new ConnectorHints { Format = "test", Architecture = MachineArchitecture.X64, DirectoryTableBase = 0x7000 } };
        using var windows = WindowsSupport.OpenWithPdb(memory, out _);
        Assert.Multiple(() =>
        {
            Assert.That(windows.Info.Properties["bootstrap"], Does.Contain("the test header gives DirectoryTableBase 0x7000"));
            Assert.That(windows.Info.Properties["dtb_method"], Is.EqualTo(RawDtbMethod));
            Assert.That(Listed(windows), Is.EqualTo(Expected()));
        });
    }

    [Test]
    public void A_build_no_layout_covers_is_read_with_the_heuristic_locator()
    {
        using var raw = WindowsSupport.Open(new FixtureForm(name, "raw"));
        ulong buildAddress, sharedBuild = _truth.Architecture == "x64" ? 0xFFFF_F780_0000_0260 : 0xFFDF_0260;
        bool hasShared;
        using (var probe = WindowsSupport.OpenWithPdb(raw, out _))
        {
            buildAddress = probe.Info.KernelBase + probe.Kernel.Image.FindExport("NtBuildNumber")!.Rva;
            Assert.That(probe.KernelMemory.TryTranslate(buildAddress, out buildAddress), Is.True);
            hasShared = probe.KernelMemory.TryTranslate(sharedBuild, out sharedBuild);
        }
        var memory = new PatchedMemory(raw);
        memory.Patch(buildAddress, BitConverter.GetBytes(0xF000_1234u));
        if (hasShared)
            memory.Patch(sharedBuild, BitConverter.GetBytes(0x1234u));
        using var windows = WindowsSupport.OpenWindows(memory, out _, ("symbols", "/nonexistent-symbol-folder"), ("offline", "on"));
        Assert.Multiple(() =>
        {
            Assert.That(windows.Info.Properties["build"], Is.EqualTo("4660"));
            Assert.That(windows.Info.Properties["bootstrap"], Does.Contain($"no built-in layout for build 4660 ({(_truth.Architecture == "x64" ? "x64" : "x86")})"));
            Assert.That(windows.Info.Properties["offsets_source"], Does.StartWith("heuristic locator"));
            Assert.That(Listed(windows), Is.EqualTo(Expected()));
        });
    }

    [Test]
    public void Memory_without_windows_is_refused_with_what_was_tried()
    {
        using var memory = new ByteMemory(new byte[16 << 20]);
        Assert.That(() => WindowsSupport.OpenWindows(memory, out _, ("offline", "on")), Throws.TypeOf<InvalidDataException>()
            .With.Message.Contains("no Windows kernel found").And.Message.Contains("no low stub")
            .And.Message.Contains("no self-referencing x64 PML4").And.Message.Contains("no self-mapped x86 page directory"));
    }
}

/// <summary>The x64-only way in: without the low stub, the self-referencing PML4 scan and the kernel range scan.</summary>
[TestFixtureSource(typeof(WindowsSupport), nameof(WindowsSupport.Names64))]
public sealed class X64BootstrapTests(string name)
{
    private WindowsTruth _truth = null!;

    [OneTimeSetUp]
    public void Load() => _truth = WindowsSupport.Truth(name);

    private List<(ulong, ulong, string)> Expected() => _truth.Processes.Select(p => (p.Pid, p.ParentPid, p.Name)).OrderBy(p => p.Item1).ToList();

    private static List<(ulong, ulong, string)> Listed(IOperatingSystem windows) =>
        windows.GetProcesses().Select(p => (p.Pid, p.ParentPid, p.Name)).OrderBy(p => p.Item1).ToList();

    /// <summary>The page of the first megabyte that holds the low stub (its jump and its CR3 at +0xA0), as the test finds it.</summary>
    private static ulong FindLowStub(IPhysicalMemory memory, ulong dtb)
    {
        var page = new byte[4096];
        for (ulong at = 0x1000; at < 0x100000; at += 4096)
        {
            if (memory.Read(at, page) == page.Length && page[0] == 0xE9 && BinaryPrimitives.ReadUInt64LittleEndian(page.AsSpan(0xA0)) == dtb)
                return at;
        }
        Assert.Fail("the fixture has no low stub");
        return 0;
    }

    [Test]
    public void Without_the_low_stub_the_self_referencing_pml4_scan_and_the_kernel_scan_find_the_way()
    {
        using var raw = WindowsSupport.Open(new FixtureForm(name, "raw"));
        var memory = new PatchedMemory(raw);
        memory.MakeUnreadable(FindLowStub(raw, _truth.Dtb & ~0xFFFUL));
        using var windows = WindowsSupport.OpenWindows(memory, out _, ("symbols", WindowsSupport.SymbolStore), ("offline", "on"));
        Assert.Multiple(() =>
        {
            Assert.That(windows.Info.Properties["dtb_method"], Is.EqualTo("self-referencing PML4 scan"));
            Assert.That(windows.Info.Properties["kernel_method"], Does.StartWith("a scan of the kernel range"));
            Assert.That(windows.Info.Properties["bootstrap"], Does.Contain("no low stub (PROCESSOR_START_BLOCK) in the first megabyte"));
            Assert.That(windows.Info.KernelBase, Is.EqualTo(_truth.KernelBase));
            Assert.That(windows.Info.DirectoryTableBase, Is.EqualTo(_truth.Dtb & ~0xFFFUL), "System's own DTB, whichever table set the scan met first");
            Assert.That(Listed(windows), Is.EqualTo(Expected()));
        });
    }
}
