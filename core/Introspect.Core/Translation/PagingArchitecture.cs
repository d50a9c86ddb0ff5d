using Introspect.Abi;

namespace Introspect.Core.Translation;

/// <summary>How a paging architecture lays out its page tables: a table of levels and the bits of an entry.</summary>
/// <remarks>
/// Architectures are data, walked by one walker (<see cref="AddressSpace"/>): the levels from the root down (index
/// shift and width, whether a leaf may stop there), the entry size, which bits make an entry valid, a leaf or a
/// table, where the next address sits in an entry, and which bits grant or deny permissions.
/// </remarks>
public sealed class PagingArchitecture
{
    /// <summary>The size of the smallest page of every architecture here, and the unit of translation.</summary>
    public const int PageSize = 4096;

    private const ulong X64AddressMask = 0x000F_FFFF_FFFF_F000; // bits 51:12, the architectural maximum
    private const ulong ArmAddressMask = 0x0000_FFFF_FFFF_F000; // bits 47:12
    private const ulong X86Present = 1;
    private const ulong X86PageSize = 1UL << 7;

    // Declared before the architectures below: static initializers run in textual order.
    private static readonly FlagRule[] X86Rules =
    [
        new(1UL << 1, PageFlags.Writable, WhenSet: true),
        new(1UL << 2, PageFlags.User, WhenSet: true),
    ];

    private static readonly FlagRule[] X86RulesWithNx =
    [
        .. X86Rules,
        new(1UL << 63, PageFlags.NoExecute, WhenSet: true),
        new(1UL << 63, PageFlags.PrivilegedNoExecute, WhenSet: true),
    ];

    private readonly PagingLevel[] _levels;

    private PagingArchitecture(
        string name,
        MachineArchitecture machine,
        PagingLevel[] levels,
        int entrySize,
        int virtualAddressBits,
        VirtualAddressForm addressForm,
        ulong rootAddressMask,
        ulong addressMask,
        ulong validMask,
        ulong largeLeafMask,
        ulong largeLeafValue,
        ulong pageLeafMask,
        ulong pageLeafValue,
        FlagRule[] tableRules,
        FlagRule[] leafRules)
    {
        Name = name;
        Machine = machine;
        _levels = levels;
        EntrySize = entrySize;
        VirtualAddressBits = virtualAddressBits;
        AddressForm = addressForm;
        RootAddressMask = rootAddressMask;
        AddressMask = addressMask;
        ValidMask = validMask;
        LargeLeafMask = largeLeafMask;
        LargeLeafValue = largeLeafValue;
        PageLeafMask = pageLeafMask;
        PageLeafValue = pageLeafValue;
        TableRules = tableRules;
        LeafRules = leafRules;
    }

    /// <summary>x86-64 with 4-level paging: 48-bit addresses, 2 MiB and 1 GiB pages.</summary>
    public static PagingArchitecture X64 { get; } = new(
        "x64", MachineArchitecture.X64,
        [new(39, 9, false, true), new(30, 9, true, true), new(21, 9, true, true), new(12, 9, false, true)],
        entrySize: 8, virtualAddressBits: 48, VirtualAddressForm.SignExtended,
        rootAddressMask: X64AddressMask, addressMask: X64AddressMask,
        validMask: X86Present, largeLeafMask: X86PageSize, largeLeafValue: X86PageSize,
        pageLeafMask: X86Present, pageLeafValue: X86Present,
        tableRules: X86RulesWithNx, leafRules: X86RulesWithNx);

    /// <summary>x86-64 with 5-level paging (LA57): 57-bit addresses, 2 MiB and 1 GiB pages.</summary>
    public static PagingArchitecture X64FiveLevel { get; } = new(
        "x64-la57", MachineArchitecture.X64,
        [new(48, 9, false, true), new(39, 9, false, true), new(30, 9, true, true), new(21, 9, true, true), new(12, 9, false, true)],
        entrySize: 8, virtualAddressBits: 57, VirtualAddressForm.SignExtended,
        rootAddressMask: X64AddressMask, addressMask: X64AddressMask,
        validMask: X86Present, largeLeafMask: X86PageSize, largeLeafValue: X86PageSize,
        pageLeafMask: X86Present, pageLeafValue: X86Present,
        tableRules: X86RulesWithNx, leafRules: X86RulesWithNx);

    /// <summary>32-bit x86 with PAE: a 4-entry page-directory-pointer table, 8-byte entries, 2 MiB pages, NX.</summary>
    /// <remarks>The root (CR3) is 32-byte aligned; the PDPT's entries carry no permission bits.</remarks>
    public static PagingArchitecture X86Pae { get; } = new(
        "x86-pae", MachineArchitecture.X86Pae,
        [new(30, 2, false, false), new(21, 9, true, true), new(12, 9, false, true)],
        entrySize: 8, virtualAddressBits: 32, VirtualAddressForm.ZeroExtended,
        rootAddressMask: 0xFFFF_FFE0, addressMask: X64AddressMask,
        validMask: X86Present, largeLeafMask: X86PageSize, largeLeafValue: X86PageSize,
        pageLeafMask: X86Present, pageLeafValue: X86Present,
        tableRules: X86RulesWithNx, leafRules: X86RulesWithNx);

    /// <summary>32-bit x86 with 2-level paging: 4-byte entries, 4 MiB pages through PS (CR4.PSE), no NX.</summary>
    /// <remarks>PSE-36's physical address bits above 4 GiB in 4 MiB entries are not honoured.</remarks>
    public static PagingArchitecture X86 { get; } = new(
        "x86", MachineArchitecture.X86,
        [new(22, 10, true, true), new(12, 10, false, true)],
        entrySize: 4, virtualAddressBits: 32, VirtualAddressForm.ZeroExtended,
        rootAddressMask: 0xFFFF_F000, addressMask: 0xFFFF_F000,
        validMask: X86Present, largeLeafMask: X86PageSize, largeLeafValue: X86PageSize,
        pageLeafMask: X86Present, pageLeafValue: X86Present,
        tableRules: X86Rules, leafRules: X86Rules);

    /// <summary>AArch64 with the 4 KiB granule and 48-bit addresses: TTBR0 for the low half, TTBR1 for the high half.</summary>
    /// <remarks>
    /// Level 1 and 2 descriptors with bit 1 clear are blocks (1 GiB, 2 MiB); level 3 needs bits 1:0 = 0b11.
    /// Table descriptors' APTable, UXNTable and PXNTable bits restrict everything below them.
    /// </remarks>
    public static PagingArchitecture AArch64 { get; } = new(
        "aarch64", MachineArchitecture.Arm64,
        [new(39, 9, false, true), new(30, 9, true, true), new(21, 9, true, true), new(12, 9, false, true)],
        entrySize: 8, virtualAddressBits: 48, VirtualAddressForm.SplitHalves,
        rootAddressMask: ArmAddressMask, addressMask: ArmAddressMask,
        validMask: 0b01, largeLeafMask: 0b10, largeLeafValue: 0b00,
        pageLeafMask: 0b11, pageLeafValue: 0b11,
        tableRules:
        [
            new(1UL << 62, PageFlags.Writable, WhenSet: false), // APTable[1]: no writes below
            new(1UL << 61, PageFlags.User, WhenSet: false),     // APTable[0]: no EL0 access below
            new(1UL << 60, PageFlags.NoExecute, WhenSet: true), // UXNTable
            new(1UL << 59, PageFlags.PrivilegedNoExecute, WhenSet: true), // PXNTable
        ],
        leafRules:
        [
            new(1UL << 7, PageFlags.Writable, WhenSet: false),  // AP[2]: read-only
            new(1UL << 6, PageFlags.User, WhenSet: true),       // AP[1]: EL0 access
            new(1UL << 54, PageFlags.NoExecute, WhenSet: true), // UXN
            new(1UL << 53, PageFlags.PrivilegedNoExecute, WhenSet: true), // PXN
        ]);

    /// <summary>The name used in messages and on the command line (<c>x64</c>, <c>x64-la57</c>, <c>x86-pae</c>, <c>x86</c>, <c>aarch64</c>).</summary>
    public string Name { get; }

    /// <summary>The machine this paging belongs to.</summary>
    public MachineArchitecture Machine { get; }

    /// <summary>The levels from the root down; the last one maps 4 KiB pages.</summary>
    public IReadOnlyList<PagingLevel> Levels => _levels;

    internal ReadOnlySpan<PagingLevel> LevelTable => _levels;

    /// <summary>Bytes per table entry (4 or 8).</summary>
    public int EntrySize { get; }

    /// <summary>How many bits of a virtual address the tables translate.</summary>
    public int VirtualAddressBits { get; }

    /// <summary>Which 64-bit values are addresses at all, and (for <see cref="VirtualAddressForm.SplitHalves"/>) which root serves them.</summary>
    public VirtualAddressForm AddressForm { get; }

    /// <summary>The bits of the root register (CR3, TTBR) that hold the top table's physical address.</summary>
    public ulong RootAddressMask { get; }

    /// <summary>The bits of an entry that hold the next table's or the page's physical address (a large page's
    /// address is this masked further to the page's alignment).</summary>
    public ulong AddressMask { get; }

    /// <summary>An entry is valid (present) when any of these bits is set.</summary>
    public ulong ValidMask { get; }

    /// <summary>Above the last level, an entry is a leaf when <c>(entry &amp; LargeLeafMask) == LargeLeafValue</c>
    /// (x86's PS bit set; AArch64's bit 1 clear). At a level that allows no large leaf, such an entry is invalid.</summary>
    public ulong LargeLeafMask { get; }

    /// <inheritdoc cref="LargeLeafMask"/>
    public ulong LargeLeafValue { get; }

    /// <summary>At the last level, an entry maps a page when <c>(entry &amp; PageLeafMask) == PageLeafValue</c>.</summary>
    public ulong PageLeafMask { get; }

    /// <inheritdoc cref="PageLeafMask"/>
    public ulong PageLeafValue { get; }

    /// <summary>Whether the architecture has a second root for the high half (AArch64's TTBR1).</summary>
    public bool HasHighRoot => AddressForm == VirtualAddressForm.SplitHalves;

    internal FlagRule[] TableRules { get; }

    internal FlagRule[] LeafRules { get; }

    /// <summary>The paging of a machine architecture as a connector reports it (x64 means 4-level), or null when unknown.</summary>
    public static PagingArchitecture? For(MachineArchitecture machine) => machine switch
    {
        MachineArchitecture.X64 => X64,
        MachineArchitecture.X86Pae => X86Pae,
        MachineArchitecture.X86 => X86,
        MachineArchitecture.Arm64 => AArch64,
        _ => null,
    };

    /// <summary>Whether <paramref name="virtualAddress"/> is an address this architecture can translate at all.</summary>
    /// <remarks>
    /// x64: bits 63 down to <see cref="VirtualAddressBits"/>-1 all equal (sign extension); AArch64: bits 63:48 all
    /// zeros (TTBR0) or all ones (TTBR1); x86: below 4 GiB.
    /// </remarks>
    public bool IsCanonical(ulong virtualAddress)
    {
        switch (AddressForm)
        {
            case VirtualAddressForm.SignExtended:
                long top = unchecked((long)virtualAddress) >> (VirtualAddressBits - 1);
                return top is 0 or -1;
            case VirtualAddressForm.SplitHalves:
                ulong high = virtualAddress >> VirtualAddressBits;
                return high == 0 || high == ulong.MaxValue >> VirtualAddressBits;
            default:
                return virtualAddress >> VirtualAddressBits == 0;
        }
    }

    /// <summary>Whether a canonical address belongs to the high half, which the high root translates (AArch64 only).</summary>
    public bool IsHighHalf(ulong virtualAddress) => HasHighRoot && (virtualAddress >> 63) != 0;

    /// <summary>Turns the bits a walk composes (index by index) into the canonical address.</summary>
    internal ulong Canonicalize(ulong virtualAddress) => AddressForm == VirtualAddressForm.SignExtended
        ? unchecked((ulong)((long)(virtualAddress << (64 - VirtualAddressBits)) >> (64 - VirtualAddressBits)))
        : virtualAddress;

    /// <summary>The flags an entry sets by <paramref name="rules"/>.</summary>
    internal static PageFlags FlagsOf(ulong entry, FlagRule[] rules)
    {
        var flags = PageFlags.None;
        foreach (var rule in rules)
        {
            if (((entry & rule.Mask) != 0) == rule.WhenSet)
                flags |= rule.Flag;
        }
        return flags;
    }

    /// <summary>The permissions after one more level: grants must hold at every level, denials at any.</summary>
    internal static PageFlags Combine(PageFlags sofar, PageFlags entry)
    {
        const PageFlags Grants = PageFlags.Writable | PageFlags.User;
        const PageFlags Denials = PageFlags.NoExecute | PageFlags.PrivilegedNoExecute;
        return (sofar & entry & Grants) | ((sofar | entry) & Denials);
    }

    /// <summary>The permissions a walk starts with, before any level has spoken.</summary>
    internal const PageFlags InitialFlags = PageFlags.Writable | PageFlags.User;

    public override string ToString() => Name;
}

/// <summary>One level of page tables.</summary>
/// <param name="Shift">The lowest virtual address bit this level's index takes.</param>
/// <param name="IndexBits">How many bits the index has (the table holds 2^IndexBits entries).</param>
/// <param name="AllowsLargeLeaf">Whether an entry here may map a large page (a leaf above the last level).</param>
/// <param name="CarriesPermissions">Whether entries here hold permission bits (x86 PAE's PDPT entries do not).</param>
public readonly record struct PagingLevel(int Shift, int IndexBits, bool AllowsLargeLeaf, bool CarriesPermissions)
{
    /// <summary>How many bytes of address space one entry of this level covers.</summary>
    public ulong EntrySpan => 1UL << Shift;

    /// <summary>How many entries a table of this level has.</summary>
    public int EntryCount => 1 << IndexBits;

    internal ulong IndexOf(ulong virtualAddress) => (virtualAddress >> Shift) & ((1UL << IndexBits) - 1);
}

/// <summary>Which 64-bit values are virtual addresses.</summary>
public enum VirtualAddressForm
{
    /// <summary>Only addresses below 2^<see cref="PagingArchitecture.VirtualAddressBits"/> (32-bit x86).</summary>
    ZeroExtended,
    /// <summary>The top bits repeat the highest translated bit (x64's canonical form).</summary>
    SignExtended,
    /// <summary>The top bits are all zeros (low half, first root) or all ones (high half, second root): AArch64.</summary>
    SplitHalves,
}

/// <summary>One permission bit of an entry: <paramref name="Flag"/> holds when the bit is <paramref name="WhenSet"/>.</summary>
internal readonly record struct FlagRule(ulong Mask, PageFlags Flag, bool WhenSet);
