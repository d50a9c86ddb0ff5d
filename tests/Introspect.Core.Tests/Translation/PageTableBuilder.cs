using System.Buffers.Binary;
using Introspect.Core.Tests.Memory;
using Introspect.Core.Translation;

namespace Introspect.Core.Tests.Translation;

/// <summary>Writes real page tables of an architecture into a test memory, from a table arena upwards.</summary>
/// <remarks>
/// Entries are written the way the hardware reads them: x86 tables carry present, writable and user (PAE's PDPT
/// entries only present), x86 leaves carry present, the given bits and PS for large pages; AArch64 tables are
/// 0b11 descriptors, blocks 0b01, pages 0b11, all with the access flag.
/// </remarks>
internal sealed class PageTableBuilder
{
    public const ulong X86Writable = 1UL << 1;
    public const ulong X86User = 1UL << 2;
    public const ulong X86NoExecute = 1UL << 63;
    public const ulong ArmReadOnly = 1UL << 7;    // AP[2]
    public const ulong ArmUser = 1UL << 6;        // AP[1]
    public const ulong ArmUxn = 1UL << 54;
    public const ulong ArmPxn = 1UL << 53;
    public const ulong ArmApTableNoUser = 1UL << 61;
    public const ulong ArmApTableReadOnly = 1UL << 62;
    public const ulong ArmUxnTable = 1UL << 60;
    private const ulong ArmAccessFlag = 1UL << 10;

    private readonly ArrayPhysicalMemory _memory;
    private readonly PagingArchitecture _architecture;
    private ulong _next;

    public PageTableBuilder(ArrayPhysicalMemory memory, PagingArchitecture architecture, ulong arena)
    {
        _memory = memory;
        _architecture = architecture;
        _next = arena;
    }

    private bool IsArm => _architecture == PagingArchitecture.AArch64;

    /// <summary>A new, empty top-level table (for PAE, 32 bytes into a fresh page, to prove only 32-byte alignment is assumed).</summary>
    public ulong NewRoot() => _architecture == PagingArchitecture.X86Pae ? NewTable() + 0x20 : NewTable();

    public ulong NewTable()
    {
        ulong table = _next;
        _next += 0x1000;
        _memory.Bytes.AsSpan((int)table, 0x1000).Clear();
        return table;
    }

    /// <summary>Maps <paramref name="pageSize"/> bytes at <paramref name="virtualAddress"/> to <paramref name="physicalAddress"/>.</summary>
    /// <param name="leafBits">Permission bits of the leaf (x86: writable, user, NX; AArch64: AP, UXN, PXN).</param>
    /// <param name="tableBits">Extra bits of the table entries created or passed on the way down.</param>
    public void Map(ulong root, ulong virtualAddress, ulong physicalAddress, ulong pageSize, ulong leafBits = 0, ulong tableBits = 0)
    {
        var levels = _architecture.Levels;
        ulong table = root;
        for (int level = 0; level < levels.Count; level++)
        {
            var info = levels[level];
            ulong entryAddress = table + ((virtualAddress >> info.Shift) & ((1UL << info.IndexBits) - 1)) * (ulong)_architecture.EntrySize;
            bool last = level == levels.Count - 1;
            if (info.EntrySpan == pageSize)
            {
                WriteEntry(entryAddress, LeafEntry(physicalAddress, large: !last, leafBits));
                return;
            }
            if (last)
                throw new ArgumentException($"No level maps pages of 0x{pageSize:x} bytes.");
            ulong entry = ReadEntry(entryAddress);
            if ((entry & 1) == 0)
            {
                ulong next = NewTable();
                entry = TableEntry(next, info.CarriesPermissions, tableBits);
                WriteEntry(entryAddress, entry);
            }
            else if (tableBits != 0)
            {
                WriteEntry(entryAddress, entry | tableBits);
            }
            table = entry & _architecture.AddressMask;
        }
    }

    /// <summary>The address of the entry at <paramref name="index"/> of a table.</summary>
    public ulong EntryAddress(ulong table, int index) => table + (ulong)(index * _architecture.EntrySize);

    public ulong ReadEntry(ulong address) => _architecture.EntrySize == 8
        ? BinaryPrimitives.ReadUInt64LittleEndian(_memory.Bytes.AsSpan((int)address))
        : BinaryPrimitives.ReadUInt32LittleEndian(_memory.Bytes.AsSpan((int)address));

    public void WriteEntry(ulong address, ulong entry)
    {
        if (_architecture.EntrySize == 8)
            BinaryPrimitives.WriteUInt64LittleEndian(_memory.Bytes.AsSpan((int)address), entry);
        else
            BinaryPrimitives.WriteUInt32LittleEndian(_memory.Bytes.AsSpan((int)address), checked((uint)entry));
    }

    public ulong TableEntry(ulong table, bool carriesPermissions, ulong extraBits = 0) => IsArm
        ? table | 0b11 | extraBits
        : table | 1 | (carriesPermissions ? X86Writable | X86User : 0) | extraBits;

    public ulong LeafEntry(ulong physicalAddress, bool large, ulong bits) => IsArm
        ? physicalAddress | (large ? 0b01UL : 0b11UL) | ArmAccessFlag | bits
        : physicalAddress | 1 | (large ? 1UL << 7 : 0) | bits;
}
