using System.Globalization;
using Introspect.Abi;
using Introspect.Core.Memory;
using Introspect.Core.Translation;
using Introspect.Os.Windows.Bootstrap;

namespace Introspect.Os.Windows.Offsets;

/// <summary>Derives the EPROCESS offsets from the System process itself, for a kernel whose PDB cannot be had and whose
/// build no built-in layout covers (MemProcFS's fallback, in spirit).</summary>
/// <remarks>
/// System's EPROCESS holds pid 4 right before its ActiveProcessLinks, whose neighbours are other EPROCESSes (or the list
/// head inside the kernel image) pointing back; "System" as its ImageFileName; and the kernel's page-table root in its
/// KPROCESS. Walking the list with those three gives every process, across which the parent pid (always another
/// process's pid or 0), the PEB (a user address whose loader pointer reads through the process's own tables, 0 for
/// System) and the create time (a plausible FILETIME in every process) stand out. Fields those cannot pin (VADs, exit
/// time, WoW64) come from a built-in layout of the same architecture whose core offsets agree, if one does.
/// </remarks>
internal static class HeuristicOffsets
{
    private const int ReadSize = 0x1000;

    public static WindowsOffsets? Locate(IMemory kernel, IPhysicalMemory physical, PagingArchitecture paging, GuestReader reader,
        ulong systemProcess, ulong kernelDtb, ulong imageBase, ulong imageSize, uint build, BootstrapAccount account)
    {
        int ps = reader.PointerSize;
        var system = new byte[ReadSize];
        if (kernel.Read(systemProcess, system, MemoryFlags.ZeroPadOnFail) != ReadSize)
        {
            account.Note("offsets", "heuristic: System's EPROCESS cannot be read");
            return null;
        }

        int pid = -1;
        for (int o = 0; o + 3 * ps <= ReadSize; o += ps)
        {
            if (reader.Pointer(system, o) != 4)
                continue;
            ulong flink = reader.Pointer(system, o + ps);
            ulong blink = reader.Pointer(system, o + 2 * ps);
            if (!reader.IsKernelAddress(flink) || !reader.IsKernelAddress(blink))
                continue;
            // The neighbour must point back at System's links.
            if (!reader.TryPointer(kernel, unchecked(flink + (ulong)ps), out ulong back) || back != systemProcess + (ulong)(o + ps))
                continue;
            pid = o;
            break;
        }
        if (pid < 0)
        {
            account.Note("offsets", "heuristic: no pid 4 followed by consistent list links in System's EPROCESS");
            return null;
        }
        int links = pid + ps;
        int name = system.AsSpan(links).IndexOf("System\0"u8);
        if (name < 0)
        {
            account.Note("offsets", "heuristic: no \"System\" image name after the list links in System's EPROCESS");
            return null;
        }
        name += links;

        int dtb = -1;
        ulong rootMask = paging.RootAddressMask;
        for (int o = 0; o + 8 <= Math.Min(links, 0x100); o += ps)
        {
            ulong value = ps == 8 ? GuestReader.U64(system, o) : GuestReader.U32(system, o);
            if (value != 0 && (value & rootMask) == (kernelDtb & rootMask))
            {
                dtb = o;
                break;
            }
        }
        if (dtb < 0 && paging == PagingArchitecture.X86)
            dtb = SystemDirectory(kernel, physical, paging, system, systemProcess, Math.Min(links, 0x100), account);
        if (dtb < 0)
        {
            account.Note("offsets", string.Create(CultureInfo.InvariantCulture, $"heuristic: System's KPROCESS does not hold the kernel's DTB 0x{kernelDtb:x}"));
            return null;
        }

        // Walk the list with what is known, to find the rest across processes.
        var processes = new List<(ulong Address, byte[] Bytes)> { (systemProcess, system) };
        var seen = new HashSet<ulong> { systemProcess };
        ulong entry = reader.Pointer(system, links);
        for (int i = 0; i < 4096 && reader.IsKernelAddress(entry); i++)
        {
            ulong eprocess = unchecked(entry - (ulong)links);
            if (unchecked(entry - imageBase) < imageSize)
            {
                // The list head, inside the kernel image: step over it.
                entry = reader.Pointer(kernel, entry);
                continue;
            }
            if (!seen.Add(eprocess))
                break;
            var bytes = new byte[ReadSize];
            if (kernel.Read(eprocess, bytes, MemoryFlags.ZeroPadOnFail) != ReadSize)
                break;
            processes.Add((eprocess, bytes));
            entry = reader.Pointer(bytes, links);
        }
        var pids = processes.Select(p => reader.Pointer(p.Bytes, pid)).ToHashSet();
        var others = processes.Skip(1).ToList();

        int parent = -1;
        for (int o = links + 2 * ps; o + ps <= ReadSize && others.Count > 0; o += ps)
        {
            if (o >= name && o < name + 16)
                continue;
            // Most parents are on the list; one that exited and was freed, or hid, is not.
            int inSet = 0, outside = 0;
            foreach (var (_, bytes) in others)
            {
                ulong value = reader.Pointer(bytes, o);
                if (value == 0)
                    continue;
                if (pids.Contains(value) && value != reader.Pointer(bytes, pid))
                    inSet++;
                else if ((value & 3) == 0 && value < 0x100_0000)
                    outside++;
                else
                    outside += others.Count; // not a pid at all
            }
            if (inSet * 2 >= others.Count && inSet > 0 && outside * 5 <= inSet)
            {
                parent = o;
                break;
            }
        }

        int peb = -1;
        for (int o = links + 2 * ps; o + ps <= ReadSize && others.Count > 0; o += ps)
        {
            if (reader.Pointer(system, o) != 0)
                continue;
            int valid = 0;
            bool bad = false;
            foreach (var (_, bytes) in others)
            {
                ulong value = reader.Pointer(bytes, o);
                if (value == 0)
                    continue;
                if (!reader.IsUserAddress(value) || (value & 0xFFF) != 0)
                {
                    bad = true;
                    break;
                }
                ulong root = (ps == 8 ? GuestReader.U64(bytes, dtb) : GuestReader.U32(bytes, dtb)) & rootMask;
                var space = new AddressSpace(physical, paging, root);
                if (reader.TryPointer(space, unchecked(value + (ulong)(ps == 8 ? 0x18 : 0x0C)), out ulong ldr) && reader.IsUserAddress(ldr))
                    valid++;
            }
            if (!bad && valid * 2 >= others.Count && valid > 0)
            {
                peb = o;
                break;
            }
        }

        long earliest = new DateTime(1990, 1, 1, 0, 0, 0, DateTimeKind.Utc).ToFileTimeUtc();
        long latest = new DateTime(2200, 1, 1, 0, 0, 0, DateTimeKind.Utc).ToFileTimeUtc();
        int createTime = -1;
        for (int o = 0; o + 8 <= ReadSize; o += 8)
        {
            if (processes.All(p => unchecked((long)GuestReader.U64(p.Bytes, o)) is var t && t >= earliest && t < latest))
            {
                createTime = o;
                break;
            }
        }

        var found = new WindowsOffsets
        {
            Source = "heuristic locator (from System's EPROCESS)",
            PointerSize = ps,
            DirectoryTableBase = dtb,
            UniqueProcessId = pid,
            ActiveProcessLinks = links,
            ImageFileName = name,
            InheritedFromUniqueProcessId = parent,
            Peb = peb,
            CreateTime = createTime,
        };
        account.Note("offsets", string.Create(CultureInfo.InvariantCulture,
            $"heuristic: UniqueProcessId 0x{pid:x}, ActiveProcessLinks 0x{links:x}, ImageFileName 0x{name:x}, DirectoryTableBase 0x{dtb:x}, InheritedFromUniqueProcessId {Hex(parent)}, Peb {Hex(peb)}, CreateTime {Hex(createTime)} ({processes.Count} processes seen)"));

        // Of the layouts that agree, the one nearest the build: fields the heuristic cannot see (VAD flag bits) move
        // between builds that share the core offsets.
        var agreeing = BuiltInLayouts.Layouts.OrderBy(l => build < l.MinBuild ? l.MinBuild - build : build > l.MaxBuild ? build - l.MaxBuild : 0)
            .FirstOrDefault(l => (l.Is64 ? 8 : 4) == ps && l.Offsets.UniqueProcessId == pid
            && l.Offsets.ActiveProcessLinks == links && l.Offsets.ImageFileName == name && l.Offsets.DirectoryTableBase == dtb
            && (parent < 0 || l.Offsets.InheritedFromUniqueProcessId == parent) && (peb < 0 || l.Offsets.Peb == peb));
        if (agreeing is null)
        {
            account.Note("offsets", "heuristic: no built-in layout agrees with these offsets; VADs, exit times and WoW64 are not read");
            return found;
        }
        account.Note("offsets", $"heuristic: the other fields come from the built-in layout \"{agreeing.Name}\", whose core offsets agree");
        return agreeing.Offsets with
        {
            Source = found.Source + $" + fields of \"{agreeing.Name}\"",
            CreateTime = createTime >= 0 ? createTime : agreeing.Offsets.CreateTime,
        };
    }

    private static string Hex(int offset) => offset < 0 ? "not found" : string.Create(CultureInfo.InvariantCulture, $"0x{offset:x}");

    /// <summary>Without PAE, every process's page directory maps itself at entry 0x300 and carries the system half, so a
    /// scan of a raw image stops at whichever comes first in physical memory, which need not be System's. System's
    /// KPROCESS then holds another page directory: the field whose value, used as a root, finds System's EPROCESS on the
    /// same physical page as the root in use. Returns its offset, or -1.</summary>
    private static int SystemDirectory(IMemory kernel, IPhysicalMemory physical, PagingArchitecture paging, byte[] system,
        ulong systemProcess, int end, BootstrapAccount account)
    {
        if (kernel is not AddressSpace used || !used.TryTranslate(systemProcess, out var expected))
            return -1;
        for (int o = 0; o + 4 <= end; o += 4)
        {
            ulong value = GuestReader.U32(system, o);
            if (value == 0 || (value & ~paging.RootAddressMask) != 0 || value == used.DirectoryTableBase)
                continue;
            var candidate = new AddressSpace(physical, paging, value);
            if (candidate.TryTranslate(systemProcess, out var found) && found.PhysicalAddress == expected.PhysicalAddress)
            {
                account.Note("offsets", string.Create(CultureInfo.InvariantCulture,
                    $"heuristic: System's KPROCESS holds page directory 0x{value:x}, which maps System's EPROCESS as 0x{used.DirectoryTableBase:x} does"));
                return o;
            }
        }
        return -1;
    }
}
