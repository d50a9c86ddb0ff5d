namespace Introspect.Os.Windows.Offsets;

/// <summary>How a VAD tree is shaped: Windows 8.1 and later use an RTL_AVL_TREE of RTL_BALANCED_NODEs whose root is
/// <c>VadRoot.Root</c>; Windows 7 an MM_AVL_TABLE whose real root is <c>BalancedRoot.RightChild</c>.</summary>
internal enum VadTreeKind
{
    BalancedNodes,
    AddressNodes,
}

/// <summary>The structure offsets the layer reads, wherever they came from (a PDB, a built-in layout, the heuristic).</summary>
/// <remarks>An offset of -1 is a field this layout does not have (or the source could not say).</remarks>
internal sealed record WindowsOffsets
{
    /// <summary>Where the offsets came from, for the account.</summary>
    public required string Source { get; init; }

    public required int PointerSize { get; init; }

    // _EPROCESS (with _KPROCESS at its start)
    public int DirectoryTableBase { get; init; } = -1;
    public int UserDirectoryTableBase { get; init; } = -1;
    public int UniqueProcessId { get; init; } = -1;
    public int ActiveProcessLinks { get; init; } = -1;
    public int InheritedFromUniqueProcessId { get; init; } = -1;
    public int CreateTime { get; init; } = -1;
    public int ExitTime { get; init; } = -1;
    public int ExitStatus { get; init; } = -1;
    public int ImageFileName { get; init; } = -1;
    public int Peb { get; init; } = -1;
    public int WoW64Process { get; init; } = -1;
    public int SeAuditProcessCreationInfo { get; init; } = -1;
    public int VadRoot { get; init; } = -1;
    public int EprocessSize { get; init; } = -1;

    // VAD nodes (_MMVAD_SHORT / _MMVAD, _MMADDRESS_NODE on Windows 7)
    public VadTreeKind VadTree { get; init; } = VadTreeKind.BalancedNodes;
    public int VadLeft { get; init; } = -1;
    public int VadRight { get; init; } = -1;
    public int VadStartingVpn { get; init; } = -1;
    public int VadEndingVpn { get; init; } = -1;
    public int VadStartingVpnHigh { get; init; } = -1;
    public int VadEndingVpnHigh { get; init; } = -1;
    /// <summary>The width of StartingVpn/EndingVpn: 4 (ULONG, Windows 8.1+) or the pointer size (Windows 7).</summary>
    public int VadVpnSize { get; init; } = 4;
    public int VadFlags { get; init; } = -1;
    public int VadFlagsSize { get; init; } = 4;
    public int VadProtectionShift { get; init; } = -1;
    public int VadProtectionBits { get; init; } = 5;
    public int VadPrivateMemoryShift { get; init; } = -1;
    public int VadSubsection { get; init; } = -1;
    public int SubsectionControlArea { get; init; }
    public int ControlAreaFilePointer { get; init; } = -1;
    public int FileObjectFileName { get; init; } = -1;

    // User-mode structures: the same since Windows XP, so they follow from the pointer size.
    public int PebLdr => PointerSize == 8 ? 0x18 : 0x0C;
    public int PebProcessParameters => PointerSize == 8 ? 0x20 : 0x10;
    public int LdrInLoadOrderModuleList => PointerSize == 8 ? 0x10 : 0x0C;
    public int LdrEntryDllBase => PointerSize == 8 ? 0x30 : 0x18;
    public int LdrEntrySizeOfImage => PointerSize == 8 ? 0x40 : 0x20;
    public int LdrEntryFullDllName => PointerSize == 8 ? 0x48 : 0x24;
    public int LdrEntryBaseDllName => PointerSize == 8 ? 0x58 : 0x2C;
    public int ParametersImagePathName => PointerSize == 8 ? 0x60 : 0x38;
    public int ParametersCommandLine => PointerSize == 8 ? 0x70 : 0x40;

    /// <summary>The 32-bit views a WoW64 process keeps beside its 64-bit ones.</summary>
    public static class Wow64
    {
        public const int PebLdr = 0x0C;
        public const int PebProcessParameters = 0x10;
        public const int LdrInLoadOrderModuleList = 0x0C;
        public const int LdrEntryDllBase = 0x18;
        public const int LdrEntrySizeOfImage = 0x20;
        public const int LdrEntryFullDllName = 0x24;
        public const int LdrEntryBaseDllName = 0x2C;
    }

    /// <summary>The fields without which there is no process list at all.</summary>
    public IEnumerable<string> MissingEssentials()
    {
        if (DirectoryTableBase < 0) yield return "KPROCESS.DirectoryTableBase";
        if (UniqueProcessId < 0) yield return "EPROCESS.UniqueProcessId";
        if (ActiveProcessLinks < 0) yield return "EPROCESS.ActiveProcessLinks";
        if (ImageFileName < 0) yield return "EPROCESS.ImageFileName";
    }

    /// <summary>How many bytes of an EPROCESS the walker reads: up to the last field it uses.</summary>
    public int EprocessReadSize
    {
        get
        {
            int last = new[] { DirectoryTableBase, UserDirectoryTableBase, UniqueProcessId, ActiveProcessLinks, InheritedFromUniqueProcessId,
                CreateTime, ExitTime, ExitStatus, ImageFileName + 16, Peb, WoW64Process, SeAuditProcessCreationInfo, VadRoot + 0x30 }.Max();
            return last + 16;
        }
    }
}
