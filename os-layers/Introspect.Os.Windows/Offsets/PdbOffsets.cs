using Introspect.Symbols.Pdb;

namespace Introspect.Os.Windows.Offsets;

/// <summary>The layer's offsets read from the kernel's own PDB.</summary>
internal static class PdbOffsets
{
    public static WindowsOffsets From(PdbFile pdb, int pointerSize)
    {
        int Field(string type, params string[] paths)
        {
            foreach (var path in paths)
            {
                if (pdb.TryGetFieldOffset(type, path, out var location))
                    return (int)location.Offset;
            }
            return -1;
        }

        PdbFieldLocation? Location(string type, params string[] paths)
        {
            foreach (var path in paths)
            {
                if (pdb.TryGetFieldOffset(type, path, out var location))
                    return location;
            }
            return null;
        }

        bool balanced = Location("_MMVAD_SHORT", "VadNode") is not null;
        var start = Location("_MMVAD_SHORT", "StartingVpn");
        var protection = Location("_MMVAD_SHORT", "u.VadFlags.Protection", "u.Protection", "VadFlags.Protection");
        var privateMemory = Location("_MMVAD_SHORT", "u.VadFlags.PrivateMemory", "u.PrivateMemory", "VadFlags.PrivateMemory");
        int flagsSize = protection is { } p && p.Type.Size is 4 or 8 ? (int)p.Type.Size : pointerSize == 8 && !balanced ? 8 : 4;
        return new WindowsOffsets
        {
            Source = $"PDB {pdb.Name}",
            PointerSize = pointerSize,
            DirectoryTableBase = Field("_EPROCESS", "Pcb.DirectoryTableBase"),
            UserDirectoryTableBase = Field("_EPROCESS", "Pcb.UserDirectoryTableBase"),
            UniqueProcessId = Field("_EPROCESS", "UniqueProcessId"),
            ActiveProcessLinks = Field("_EPROCESS", "ActiveProcessLinks"),
            InheritedFromUniqueProcessId = Field("_EPROCESS", "InheritedFromUniqueProcessId"),
            CreateTime = Field("_EPROCESS", "CreateTime"),
            ExitTime = Field("_EPROCESS", "ExitTime"),
            ExitStatus = Field("_EPROCESS", "ExitStatus"),
            ImageFileName = Field("_EPROCESS", "ImageFileName"),
            Peb = Field("_EPROCESS", "Peb"),
            WoW64Process = Field("_EPROCESS", "WoW64Process", "Wow64Process"),
            SeAuditProcessCreationInfo = Field("_EPROCESS", "SeAuditProcessCreationInfo"),
            VadRoot = Field("_EPROCESS", "VadRoot"),
            EprocessSize = pdb.TryGetTypeSize("_EPROCESS", out ulong size) ? (int)Math.Min(size, 0x10000) : -1,
            VadTree = balanced ? VadTreeKind.BalancedNodes : VadTreeKind.AddressNodes,
            VadLeft = balanced ? Field("_MMVAD_SHORT", "VadNode.Left") : Field("_MMVAD_SHORT", "LeftChild", "u1.LeftChild"),
            VadRight = balanced ? Field("_MMVAD_SHORT", "VadNode.Right") : Field("_MMVAD_SHORT", "RightChild"),
            VadStartingVpn = start is { } s ? (int)s.Offset : -1,
            VadEndingVpn = Field("_MMVAD_SHORT", "EndingVpn"),
            VadStartingVpnHigh = Field("_MMVAD_SHORT", "StartingVpnHigh"),
            VadEndingVpnHigh = Field("_MMVAD_SHORT", "EndingVpnHigh"),
            VadVpnSize = start is { } vpn && vpn.Type.Underlying.Size is 4 or 8 ? (int)vpn.Type.Underlying.Size : 4,
            VadFlags = protection is { } pr ? (int)pr.Offset : -1,
            VadFlagsSize = flagsSize,
            VadProtectionShift = protection?.BitPosition ?? -1,
            VadProtectionBits = protection is { BitLength: > 0 } withLength ? withLength.BitLength : 5,
            VadPrivateMemoryShift = privateMemory is { } pm && pm.Offset == protection?.Offset ? pm.BitPosition : -1,
            VadSubsection = Field("_MMVAD", "Subsection"),
            SubsectionControlArea = Math.Max(0, Field("_SUBSECTION", "ControlArea")),
            ControlAreaFilePointer = Field("_CONTROL_AREA", "FilePointer"),
            FileObjectFileName = Field("_FILE_OBJECT", "FileName"),
        };
    }
}
