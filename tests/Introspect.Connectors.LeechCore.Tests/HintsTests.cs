using Introspect.Abi;
using Introspect.Connectors.LeechCore.Native;

namespace Introspect.Connectors.LeechCore.Tests;

/// <summary>LeechCore's memory-information options become the hints OS layers start from.</summary>
public class HintsTests : LeechCoreTest
{
    [Test]
    public void A_crash_dumps_kernel_pointers_are_passed_on()
    {
        // As LeechCore's file device answers for a 64-bit Windows crash dump.
        FakeLeechCore.SetOption(LeechCoreAbi.OptionMemoryInfoValid, 1);
        FakeLeechCore.SetOption(LeechCoreAbi.OptionMemoryInfo32Bit, 0);
        FakeLeechCore.SetOption(LeechCoreAbi.OptionMemoryInfoMachineImageType, 0x8664);
        FakeLeechCore.SetOption(LeechCoreAbi.OptionMemoryInfoDirectoryTableBase, 0x1aa000);
        FakeLeechCore.SetOption(LeechCoreAbi.OptionMemoryInfoPfnDatabase, 0xfffffa8000000000);
        FakeLeechCore.SetOption(LeechCoreAbi.OptionMemoryInfoPsLoadedModuleList, 0xfffff80002a4de90);
        FakeLeechCore.SetOption(LeechCoreAbi.OptionMemoryInfoPsActiveProcessHead, 0xfffff80002a2fb30);
        FakeLeechCore.SetOption(LeechCoreAbi.OptionMemoryInfoKdDebuggerDataBlock, 0xfffff800029f10a0);
        using var memory = Support.OpenLeechCore(Support.RawDevice);
        Assert.That(Support.HintsOf(memory), Is.EqualTo(new ConnectorHints
        {
            Format = "leechcore/file",
            Architecture = MachineArchitecture.X64,
            DirectoryTableBase = 0x1aa000,
            PfnDatabase = 0xfffffa8000000000,
            PsLoadedModuleList = 0xfffff80002a4de90,
            PsActiveProcessHead = 0xfffff80002a2fb30,
            KdDebuggerDataBlock = 0xfffff800029f10a0,
        }).Using<ConnectorHints>(Same));
    }

    [Test]
    public void Architecture_and_page_table_root_come_without_a_kernel()
    {
        // As LeechCore's file device answers for a QEMU ELF core: LC_ARCH_X64 and the CR3 it found, VALID 0.
        FakeLeechCore.SetOption(LeechCoreAbi.OptionMemoryInfoArchitecture, LeechCoreAbi.ArchitectureX64);
        FakeLeechCore.SetOption(LeechCoreAbi.OptionMemoryInfoDirectoryTableBase, 0x2c0e000);
        FakeLeechCore.SetOption(LeechCoreAbi.OptionMemoryInfoKdDebuggerDataBlock, 0x1234);
        using var memory = Support.OpenLeechCore(Support.RawDevice);
        var hints = Support.HintsOf(memory);
        Assert.Multiple(() =>
        {
            Assert.That(hints.Architecture, Is.EqualTo(MachineArchitecture.X64));
            Assert.That(hints.DirectoryTableBase, Is.EqualTo(0x2c0e000UL));
            Assert.That(hints.KdDebuggerDataBlock, Is.Null, "kernel pointers count only when LC_OPT_MEMORYINFO_VALID says so");
        });
    }

    [TestCase(1UL, MachineArchitecture.X86)]
    [TestCase(2UL, MachineArchitecture.X86Pae)]
    [TestCase(3UL, MachineArchitecture.X64)]
    [TestCase(4UL, MachineArchitecture.Arm64)]
    [TestCase(9UL, MachineArchitecture.Unknown)]
    public void LC_ARCH_values_map_to_architectures(ulong value, MachineArchitecture expected)
    {
        FakeLeechCore.SetOption(LeechCoreAbi.OptionMemoryInfoArchitecture, value);
        using var memory = Support.OpenLeechCore(Support.RawDevice);
        Assert.That(Support.HintsOf(memory).Architecture, Is.EqualTo(expected));
    }

    [Test]
    public void A_32_bit_PAE_kernel_is_told_apart()
    {
        FakeLeechCore.SetOption(LeechCoreAbi.OptionMemoryInfoValid, 1);
        FakeLeechCore.SetOption(LeechCoreAbi.OptionMemoryInfo32Bit, 1);
        FakeLeechCore.SetOption(LeechCoreAbi.OptionMemoryInfoPae, 1);
        FakeLeechCore.SetOption(LeechCoreAbi.OptionMemoryInfoMachineImageType, 0x14c);
        using var memory = Support.OpenLeechCore(Support.RawDevice);
        Assert.That(Support.HintsOf(memory).Architecture, Is.EqualTo(MachineArchitecture.X86Pae));
        Assert.That(Support.HintsOf(memory).PaeEnabled, Is.True);
    }

    private static bool Same(ConnectorHints a, ConnectorHints b) =>
        a with { Cpus = [] } == b with { Cpus = [] };
}
