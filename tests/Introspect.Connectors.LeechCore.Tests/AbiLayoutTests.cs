using System.Runtime.InteropServices;
using Introspect.Connectors.LeechCore.Native;

namespace Introspect.Connectors.LeechCore.Tests;

/// <summary>The structs and numbers of leechcore.h (version 2.23), as the connector lays them out.</summary>
/// <remarks>The test library pins the same layout with C static assertions, so both sides are checked against the header.</remarks>
public unsafe class AbiLayoutTests
{
    [Test]
    public void LC_CONFIG_is_824_bytes_with_the_headers_offsets()
    {
        Assert.Multiple(() =>
        {
            Assert.That(sizeof(LcConfig), Is.EqualTo(824));
            Assert.That(Offset<LcConfig>(nameof(LcConfig.Version)), Is.EqualTo(0));
            Assert.That(Offset<LcConfig>(nameof(LcConfig.PrintfVerbosity)), Is.EqualTo(4));
            Assert.That(Offset<LcConfig>(nameof(LcConfig.Device)), Is.EqualTo(8));
            Assert.That(Offset<LcConfig>(nameof(LcConfig.RemoteName)), Is.EqualTo(268));
            Assert.That(Offset<LcConfig>(nameof(LcConfig.PrintfCallback)), Is.EqualTo(528));
            Assert.That(Offset<LcConfig>(nameof(LcConfig.PaMax)), Is.EqualTo(536));
            Assert.That(Offset<LcConfig>(nameof(LcConfig.Volatile)), Is.EqualTo(544));
            Assert.That(Offset<LcConfig>(nameof(LcConfig.Writable)), Is.EqualTo(548));
            Assert.That(Offset<LcConfig>(nameof(LcConfig.IsRemote)), Is.EqualTo(552));
            Assert.That(Offset<LcConfig>(nameof(LcConfig.RemoteDisableCompress)), Is.EqualTo(556));
            Assert.That(Offset<LcConfig>(nameof(LcConfig.DeviceName)), Is.EqualTo(560));
        });
    }

    [Test]
    public void MEM_SCATTER_is_128_bytes_with_the_headers_offsets()
    {
        Assert.Multiple(() =>
        {
            Assert.That(sizeof(MemScatter), Is.EqualTo(128));
            Assert.That(Offset<MemScatter>(nameof(MemScatter.Version)), Is.EqualTo(0));
            Assert.That(Offset<MemScatter>(nameof(MemScatter.Succeeded)), Is.EqualTo(4));
            Assert.That(Offset<MemScatter>(nameof(MemScatter.Address)), Is.EqualTo(8));
            Assert.That(Offset<MemScatter>(nameof(MemScatter.Buffer)), Is.EqualTo(16));
            Assert.That(Offset<MemScatter>(nameof(MemScatter.Size)), Is.EqualTo(24));
            Assert.That(Offset<MemScatter>(nameof(MemScatter.StackIndex)), Is.EqualTo(28));
            Assert.That(Offset<MemScatter>(nameof(MemScatter.Stack)), Is.EqualTo(32));
        });
    }

    [Test]
    public void LC_CONFIG_ERRORINFO_text_follows_an_80_byte_header()
    {
        Assert.Multiple(() =>
        {
            Assert.That(sizeof(LcConfigErrorInfo), Is.EqualTo(80));
            Assert.That(Offset<LcConfigErrorInfo>(nameof(LcConfigErrorInfo.UserInputRequest)), Is.EqualTo(72));
            Assert.That(Offset<LcConfigErrorInfo>(nameof(LcConfigErrorInfo.UserTextLength)), Is.EqualTo(76));
        });
    }

    [Test]
    public void The_numbers_are_the_headers()
    {
        Assert.Multiple(() =>
        {
            Assert.That(LeechCoreAbi.ConfigVersion, Is.EqualTo(0xc0fd0002u));
            Assert.That(LeechCoreAbi.ConfigErrorInfoVersion, Is.EqualTo(0xc0fe0002u));
            Assert.That(LeechCoreAbi.MemScatterVersion, Is.EqualTo(0xc0fe0002u));
            Assert.That(LeechCoreAbi.OptionCoreAddressMax, Is.EqualTo(0x1000000800000000UL));
            Assert.That(LeechCoreAbi.OptionMemoryInfoValid, Is.EqualTo(0x0200000100000000UL));
            Assert.That(LeechCoreAbi.OptionMemoryInfoArchitecture, Is.EqualTo(0x0200001200000000UL));
            Assert.That(LeechCoreAbi.OptionMemoryInfoDirectoryTableBase, Is.EqualTo(0x0200000700000000UL));
            Assert.That(LeechCoreAbi.OptionMemoryInfoKdDebuggerDataBlock, Is.EqualTo(0x0200001100000000UL));
            Assert.That(LeechCoreAbi.OptionMemoryInfoMachineImageType, Is.EqualTo(0x0200000b00000000UL));
            Assert.That(LeechCoreAbi.CommandMemoryMapGet, Is.EqualTo(0x4000020000000000UL));
            Assert.That(LeechCoreAbi.CommandMemoryMapSet, Is.EqualTo(0x4000030000000000UL));
            Assert.That(LeechCoreAbi.ArchitectureX64, Is.EqualTo(3UL));
            Assert.That(LeechCoreAbi.ArchitectureArm64, Is.EqualTo(4UL));
        });
    }

    private static int Offset<T>(string field) => (int)Marshal.OffsetOf<T>(field);
}
