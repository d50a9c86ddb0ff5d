using System.Runtime.InteropServices;

namespace Introspect.Connectors.LeechCore.Native;

/// <summary>The numbers of LeechCore's public header (<c>leechcore.h</c>, version 2.2x) that this connector uses.</summary>
/// <remarks>
/// On Linux and Windows alike <c>DWORD</c> and <c>BOOL</c> are 32 bits, <c>QWORD</c> 64, <c>HANDLE</c> a pointer,
/// and every export uses the platform's C calling convention.
/// </remarks>
internal static class LeechCoreAbi
{
    public const uint ConfigVersion = 0xc0fd0002;
    public const uint ConfigErrorInfoVersion = 0xc0fe0002;
    public const uint MemScatterVersion = 0xc0fe0002;

    /// <summary><c>MAX_PATH</c>: the size of <c>LC_CONFIG</c>'s strings, terminating NUL included.</summary>
    public const int MaxPath = 260;

    public const int MemScatterStackSize = 12;

    /// <summary>A scatter entry reads at most one page and never crosses a page boundary.</summary>
    public const int PageSize = 0x1000;

    /// <summary>A scatter entry reads at least two DWORDs.</summary>
    public const int MinimumScatterSize = 8;

    public const uint PrintfEnabled = 0x01;
    public const uint PrintfVerbose = 0x02;
    public const uint PrintfVeryVerbose = 0x04;
    public const uint PrintfTlp = 0x08;

    public const ulong OptionCoreAddressMax = 0x1000000800000000;
    public const ulong OptionCoreVersionMajor = 0x4000000500000000;
    public const ulong OptionCoreVersionMinor = 0x4000000600000000;
    public const ulong OptionCoreVersionRevision = 0x4000000700000000;
    public const ulong OptionCoreVolatile = 0x1000000b00000000;
    public const ulong OptionCoreReadOnly = 0x1000000c00000000;

    public const ulong OptionMemoryInfoValid = 0x0200000100000000;
    public const ulong OptionMemoryInfo32Bit = 0x0200000300000000;
    public const ulong OptionMemoryInfoPae = 0x0200000400000000;
    public const ulong OptionMemoryInfoArchitecture = 0x0200001200000000;
    public const ulong OptionMemoryInfoDirectoryTableBase = 0x0200000700000000;
    public const ulong OptionMemoryInfoPfnDatabase = 0x0200000800000000;
    public const ulong OptionMemoryInfoPsLoadedModuleList = 0x0200000900000000;
    public const ulong OptionMemoryInfoPsActiveProcessHead = 0x0200000a00000000;
    public const ulong OptionMemoryInfoMachineImageType = 0x0200000b00000000;
    public const ulong OptionMemoryInfoKdDebuggerDataBlock = 0x0200001100000000;

    public const ulong CommandMemoryMapGet = 0x4000020000000000;
    public const ulong CommandMemoryMapSet = 0x4000030000000000;

    /// <summary><c>LC_ARCH_TP</c>: the values of <see cref="OptionMemoryInfoArchitecture"/>.</summary>
    public const ulong ArchitectureX86 = 1;
    public const ulong ArchitectureX86Pae = 2;
    public const ulong ArchitectureX64 = 3;
    public const ulong ArchitectureArm64 = 4;

    /// <summary>PE machine types, the values of <see cref="OptionMemoryInfoMachineImageType"/>.</summary>
    public const ulong MachineI386 = 0x014c;
    public const ulong MachineAmd64 = 0x8664;
    public const ulong MachineArm64 = 0xaa64;

    /// <summary>The most memory map entries LeechCore keeps (<c>cMemMap</c> is capped at 0x00100000).</summary>
    public const int MaxMemoryMapEntries = 0x00100000;
}

/// <summary><c>LC_CONFIG</c>: 824 bytes on 64-bit hosts; the caller sets the first five fields, LeechCore the rest.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct LcConfig
{
    public uint Version;
    public uint PrintfVerbosity;
    public fixed byte Device[LeechCoreAbi.MaxPath];
    public fixed byte RemoteName[LeechCoreAbi.MaxPath];
    /// <summary>A variadic <c>printf</c> replacement; always null here, since managed code cannot be called variadically.</summary>
    public nint PrintfCallback;
    /// <summary>In: the highest address to use (0 = detect). Out: the top of the memory map.</summary>
    public ulong PaMax;
    public int Volatile;
    public int Writable;
    public int IsRemote;
    public int RemoteDisableCompress;
    public fixed byte DeviceName[LeechCoreAbi.MaxPath];
}

/// <summary>The fixed part of <c>LC_CONFIG_ERRORINFO</c> (80 bytes); <c>cwszUserText</c> UTF-16 units follow it.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct LcConfigErrorInfo
{
    public uint Version;
    public uint StructSize;
    public fixed uint FutureUse[16];
    public int UserInputRequest;
    public uint UserTextLength;
}

/// <summary><c>MEM_SCATTER</c>: 128 bytes, one entry of a scatter read or write.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct MemScatter
{
    public uint Version;
    /// <summary>TRUE once the entry was served; must be FALSE when the entry goes in.</summary>
    public int Succeeded;
    public ulong Address;
    public byte* Buffer;
    public uint Size;
    /// <summary>LeechCore's own stack pointer into <see cref="Stack"/>; callers start it at 0.</summary>
    public uint StackIndex;
    public fixed ulong Stack[LeechCoreAbi.MemScatterStackSize];
}
