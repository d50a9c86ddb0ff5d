using System.Runtime.InteropServices;
using System.Text;

namespace Introspect.Core.Plugins.Native;

// The managed mirror of plugins/abi/introspect_plugin.h, which is the source of truth: field for field, in the same
// order, so that sizeof and every offset agree (a test compiles the header and compares them).

/// <summary>Constants of the native contract.</summary>
internal static class NativeAbi
{
    public const string SymbolPrefix = "introspect_plugin_";

    public const uint DescriptorVersion = 1;
    public const uint HostVersion = 1;
    public const uint CreateArgsVersion = 1;
    public const uint ConnectorVersion = 1;
    public const uint ConnectorVtableVersion = 1;
    public const uint MetadataVersion = 1;
    public const uint HintsVersion = 1;
    public const uint CpuVersion = 1;
    public const uint OsVersion = 1;
    public const uint OsVtableVersion = 1;
    public const uint OsInfoVersion = 1;
    public const uint ProcessVersion = 1;
    public const uint ProcessDetailsVersion = 1;
    public const uint MemoryAreaVersion = 1;
    public const uint ModuleVersion = 1;

    public const uint KindConnector = 1;
    public const uint KindOs = 2;

    public const uint InputNone = 0x1;
    public const uint InputOs = 0x2;
    public const uint InputConnector = 0x4;

    public const uint ParamRequired = 0x1;
    public const uint ParamDefaultArgument = 0x2;

    public const ulong KernelPid = ulong.MaxValue;

    public const int NameMax = 64;
    public const int VersionMax = 32;
    public const int DescriptionMax = 256;
    public const int HelpMax = 2048;
    public const int ParametersMax = 16;
    public const int ParameterNameMax = 32;
    public const int ParameterDefaultMax = 64;
    public const int ParameterChoicesMax = 128;
    public const int ParameterDescriptionMax = 192;

    /// <summary>sizeof(ip_parameter): name, type, flags, default, choices, description.</summary>
    public const int ParameterSize = ParameterNameMax + 4 + 4 + ParameterDefaultMax + ParameterChoicesMax + ParameterDescriptionMax;

    // Offsets in ip_plugin_descriptor, the same for 32- and 64-bit builds: everything before `create` is 4-byte
    // fields and char arrays whose sizes are multiples of 8.
    public const int DescriptorMagicOffset = 8;
    public const int DescriptorAbiOffset = 16;
    public const int DescriptorKindOffset = 20;
    public const int DescriptorInputsOffset = 24;
    public const int DescriptorParameterCountOffset = 28;
    public const int DescriptorNameOffset = 32;
    public const int DescriptorVersionOffset = DescriptorNameOffset + NameMax;
    public const int DescriptorDescriptionOffset = DescriptorVersionOffset + VersionMax;
    public const int DescriptorHelpOffset = DescriptorDescriptionOffset + DescriptionMax;
    public const int DescriptorParametersOffset = DescriptorHelpOffset + HelpMax;
    public const int DescriptorCreateOffset = DescriptorParametersOffset + ParametersMax * ParameterSize;

    /// <summary>sizeof(ip_plugin_descriptor) for a build whose pointers have <paramref name="pointerSize"/> bytes.</summary>
    public static int DescriptorSize(int pointerSize) => DescriptorCreateOffset + pointerSize;

    /// <summary>The most bytes a descriptor may claim; anything larger is refused before it is read.</summary>
    public const int MaxDescriptorSize = 64 * 1024;

    public static ReadOnlySpan<byte> Magic => "IPLUGIN\0"u8;

    /// <summary>Decodes a fixed-size, NUL-terminated UTF-8 field without trusting that it holds a NUL.</summary>
    public static string ReadText(ReadOnlySpan<byte> field)
    {
        int end = field.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? field : field[..end]);
    }

    /// <summary>Encodes <paramref name="text"/> into a fixed field, truncated at a character boundary and NUL-terminated.</summary>
    public static void WriteText(Span<byte> field, string? text)
    {
        field.Clear();
        if (string.IsNullOrEmpty(text) || field.Length == 0)
            return;
        var encoder = Encoding.UTF8.GetEncoder();
        encoder.Convert(text.AsSpan(), field[..^1], flush: true, out _, out _, out _);
    }
}

/// <summary>Result codes (<c>ip_result</c>).</summary>
internal enum NativeResult
{
    Ok = 0,
    Argument = -1,
    InvalidData = -2,
    IO = -3,
    Unsupported = -4,
    NeedMore = -5,
    NotFound = -6,
    Version = -7,
    Internal = -8,
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IpMemoryRequest
{
    public ulong Address;
    public byte* Buffer;
    public ulong Length;
    public uint Ok;
    public uint Reserved;
}

[StructLayout(LayoutKind.Sequential)]
internal struct IpMemoryRange
{
    public ulong Base;
    public ulong Size;
    public ulong Backing;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IpHost
{
    public uint Size;
    public uint Version;
    public void* Context;
    public delegate* unmanaged<void*, int, byte*, void> Log;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IpArgument
{
    public byte* Key;
    public byte* Value;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IpCreateArgs
{
    public uint Size;
    public uint Version;
    public uint AbiVersion;
    public uint ArgumentCount;
    public IpArgument* Arguments;
    public IpHost* Host;
    public IpConnector* InputConnector;
    public IpOs* InputOs;
    public uint TlbEntries;
    public uint Reserved;
    public ulong TlbMaxAgeNs;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IpConnectorMetadata
{
    public uint Size;
    public uint Version;
    public ulong MaxAddress;
    public ulong RealSize;
    public uint ReadOnly;
    public uint IdealBatchSize;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IpConnectorHints
{
    public const uint DirectoryTableBase = 0x01;
    public const uint PfnDatabase = 0x02;
    public const uint PsLoadedModuleList = 0x04;
    public const uint PsActiveProcessHead = 0x08;
    public const uint KdDebuggerDataBlock = 0x10;
    public const uint Pae = 0x20;

    public uint Size;
    public uint Version;
    public fixed byte Format[32];
    public uint Architecture;
    public uint Present;
    public ulong DirectoryTableBaseValue;
    public ulong PfnDatabaseValue;
    public ulong PsLoadedModuleListValue;
    public ulong PsActiveProcessHeadValue;
    public ulong KdDebuggerDataBlockValue;
    public uint PaeEnabled;
    public uint Reserved;
}

[StructLayout(LayoutKind.Sequential)]
internal struct IpCpuRegisters
{
    public uint Size;
    public uint Version;
    public uint Index;
    public uint Reserved;
    public ulong InstructionPointer;
    public ulong StackPointer;
    public ulong Cr0;
    public ulong Cr3;
    public ulong Cr4;
    public ulong GsBase;
    public ulong KernelGsBase;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IpConnectorVtable
{
    public uint Size;
    public uint Version;
    public delegate* unmanaged<void*, IpConnectorMetadata*, int> Metadata;
    public delegate* unmanaged<void*, IpMemoryRequest*, nuint, nuint, uint, int> Read;
    public delegate* unmanaged<void*, IpMemoryRequest*, nuint, nuint, uint, int> Write;
    public delegate* unmanaged<void*, IpMemoryRange*, nuint, nuint, nuint*, int> MemoryMap;
    public delegate* unmanaged<void*, IpMemoryRange*, nuint, nuint, int> SetMemoryMap;
    public delegate* unmanaged<void*, IpConnectorHints*, int> Hints;
    public delegate* unmanaged<void*, byte*, nuint, nuint*, int> VmcoreInfo;
    public delegate* unmanaged<void*, IpCpuRegisters*, nuint, nuint, nuint*, int> Cpus;
    public delegate* unmanaged<void*, byte*, nuint, nuint> LastError;
    public delegate* unmanaged<void*, void> Destroy;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IpConnector
{
    public uint Size;
    public uint Version;
    public void* Self;
    public IpConnectorVtable* Vtable;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IpOsInfo
{
    public const uint HasKernelSlide = 0x1;

    public uint Size;
    public uint Version;
    public fixed byte Name[32];
    public fixed byte VersionText[256];
    public uint Architecture;
    public uint Flags;
    public ulong KernelBase;
    public long KernelSlide;
    public ulong DirectoryTableBase;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IpProcess
{
    public const uint KernelThread = 0x1;
    public const uint HasUid = 0x2;
    public const uint HasUserDirectoryTableBase = 0x4;
    public const uint Hidden = 0x8;

    public uint Size;
    public uint Version;
    public ulong Pid;
    public ulong ParentPid;
    public ulong DirectoryTableBase;
    public ulong UserDirectoryTableBase;
    public ulong KernelObject;
    public uint State;
    public uint Flags;
    public uint Uid;
    public uint ThreadCount;
    public uint Architecture;
    public uint Reserved;
    public fixed byte Name[64];
    public fixed byte StateText[8];
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IpProcessDetails
{
    public uint Size;
    public uint Version;
    public IpProcess Process;
    public fixed byte Path[1024];
    public fixed byte CommandLine[4096];
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IpMemoryArea
{
    public uint Size;
    public uint Version;
    public ulong Start;
    public ulong End;
    public ulong Offset;
    public uint Protection;
    public uint Reserved;
    public fixed byte Path[1024];
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IpModule
{
    public uint Size;
    public uint Version;
    public ulong Base;
    public ulong ImageSize;
    public fixed byte Name[256];
    public fixed byte Path[1024];
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IpOsVtable
{
    public uint Size;
    public uint Version;
    public delegate* unmanaged<void*, IpOsInfo*, int> Info;
    public delegate* unmanaged<void*, IpProcess*, nuint, nuint, nuint*, int> ProcessList;
    public delegate* unmanaged<void*, ulong, IpProcessDetails*, int> ProcessInfo;
    public delegate* unmanaged<void*, ulong, IpMemoryRequest*, nuint, nuint, uint, int> ProcessRead;
    public delegate* unmanaged<void*, ulong, IpMemoryRequest*, nuint, nuint, uint, int> ProcessWrite;
    public delegate* unmanaged<void*, ulong, ulong, ulong*, int> ProcessTranslate;
    public delegate* unmanaged<void*, ulong, IpMemoryArea*, nuint, nuint, nuint*, int> MemoryAreas;
    public delegate* unmanaged<void*, ulong, IpModule*, nuint, nuint, nuint*, int> ModuleList;
    public delegate* unmanaged<void*, byte*, nuint, nuint> LastError;
    public delegate* unmanaged<void*, void> Destroy;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IpOs
{
    public uint Size;
    public uint Version;
    public void* Self;
    public IpOsVtable* Vtable;
}
