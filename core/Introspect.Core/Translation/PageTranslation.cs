namespace Introspect.Core.Translation;

/// <summary>What a page-table walk found for one virtual address.</summary>
/// <param name="VirtualAddress">The address that was translated.</param>
/// <param name="PhysicalAddress">Where it is in physical memory.</param>
/// <param name="PageSize">The size of the page that maps it (4 KiB, 2 MiB, 1 GiB, 4 MiB on x86); the page starts at
/// <c>VirtualAddress &amp; ~(PageSize - 1)</c>.</param>
/// <param name="Flags">The page's effective permissions, combined over every level of the walk.</param>
public readonly record struct PageTranslation(ulong VirtualAddress, ulong PhysicalAddress, ulong PageSize, PageFlags Flags);

/// <summary>The effective permissions of a mapped page, as the hardware would apply them.</summary>
/// <remarks>
/// <see cref="Writable"/> and <see cref="User"/> hold only if every level of the walk grants them;
/// <see cref="NoExecute"/> and <see cref="PrivilegedNoExecute"/> hold if any level sets them (x86's NX sets both;
/// AArch64's UXN and PXN, and their table-level forms, set one each).
/// </remarks>
[Flags]
public enum PageFlags
{
    None = 0,
    /// <summary>Writes are allowed (x86 R/W at every level; AArch64 AP[2] clear and no APTable[1]).</summary>
    Writable = 1,
    /// <summary>Unprivileged code may access it (x86 U/S at every level; AArch64 AP[1] set and no APTable[0]).</summary>
    User = 2,
    /// <summary>Unprivileged code may not execute it (x86 XD; AArch64 UXN/XN or UXNTable).</summary>
    NoExecute = 4,
    /// <summary>Privileged code may not execute it (x86 XD; AArch64 PXN or PXNTable).</summary>
    PrivilegedNoExecute = 8,
    /// <summary>The page is a large page (a leaf above the last level: 2 MiB, 1 GiB, 4 MiB, AArch64 blocks).</summary>
    Large = 16,
}

/// <summary>A range of an address space mapped with the same permissions.</summary>
/// <param name="VirtualAddress">The first address of the range.</param>
/// <param name="Size">The range's size in bytes, a whole number of pages.</param>
/// <param name="Flags">The permissions every page of the range has (never <see cref="PageFlags.Large"/>: runs merge across page sizes).</param>
public readonly record struct PageRun(ulong VirtualAddress, ulong Size, PageFlags Flags)
{
    /// <summary>The last address of the range (inclusive), which cannot overflow as an end could.</summary>
    public ulong Last => VirtualAddress + (Size - 1);

    /// <summary>Whether <paramref name="address"/> falls in the run; written so it cannot overflow.</summary>
    public bool Contains(ulong address) => unchecked(address - VirtualAddress) < Size;
}
