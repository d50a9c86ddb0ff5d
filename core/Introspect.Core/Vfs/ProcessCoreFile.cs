using System.Buffers.Binary;
using System.Text;
using Introspect.Abi;
using Introspect.Core.Memory;

namespace Introspect.Core.Vfs;

/// <summary>A process as an ELF core file, laid out when first asked and read from the process's memory on demand.</summary>
/// <remarks>
/// <para>
/// The layout is the one Linux writes for a crashed process: an ELF64 header, a <c>PT_NOTE</c> holding
/// <c>NT_PRSTATUS</c> (x86-64), <c>NT_PRPSINFO</c> and <c>NT_FILE</c> (which file each mapping comes from), then one
/// <c>PT_LOAD</c> per memory area at its virtual address. Areas that cannot be read (no <c>r</c> permission) get no
/// bytes in the file, as the kernel's own core dumps do; pages that are not present read as zeros.
/// </para>
/// <para>
/// Registers are left out (a paused guest's user registers sit at the top of each task's kernel stack, which this
/// file does not read yet), so <c>NT_PRSTATUS</c> carries the pid with zero registers: enough for <c>gdb</c> to open
/// the core and read its memory.
/// </para>
/// </remarks>
internal sealed class ProcessCoreFile(string name, MachineProcess process) : VfsFileNode(name)
{
    private const int ElfHeaderSize = 64;
    private const int ProgramHeaderSize = 56;
    private const ulong PageSize = 4096;
    private const uint NtPrstatus = 1, NtPrpsinfo = 3, NtFile = 0x46494c45;

    /// <summary>How many areas become segments at most: ELF's 16-bit program header count, less the note.</summary>
    private const int MaxSegments = 0xfffe;

    private readonly Lazy<Layout> _layout = new(() => Build(process));

    public override ulong Size => _layout.Value.Size;

    public override bool IsLive => true;

    public override int Read(ulong offset, Span<byte> destination)
    {
        var layout = _layout.Value;
        int length = Clamp(offset, destination.Length, layout.Size);
        destination = destination[..length];
        int done = 0;
        while (done < length)
        {
            ulong at = offset + (ulong)done;
            var rest = destination[done..];
            if (at < (ulong)layout.Headers.Length)
            {
                int take = Math.Min(rest.Length, layout.Headers.Length - (int)at);
                layout.Headers.AsSpan((int)at, take).CopyTo(rest);
                done += take;
                continue;
            }
            int index = layout.SegmentAt(at, out ulong nextStart);
            if (index < 0)
            {
                // Alignment padding between segments (or after the last one).
                int gap = (int)Math.Min((ulong)rest.Length, nextStart - at);
                rest[..gap].Clear();
                done += gap;
                continue;
            }
            var segment = layout.Segments[index];
            ulong within = at - segment.FileOffset;
            int chunk = (int)Math.Min((ulong)rest.Length, segment.Size - within);
            process.Memory.Inner.Read(segment.Address + within, rest[..chunk], MemoryFlags.ZeroPadOnFail);
            done += chunk;
        }
        return length;
    }

    private static Layout Build(MachineProcess process)
    {
        var areas = process.GetMemoryAreas();
        if (areas.Count > MaxSegments)
            areas = areas.Take(MaxSegments).ToList();
        var machine = process.Machine.HasOperatingSystem ? process.Machine.Kernel.Architecture : MachineArchitecture.X64;
        var notes = new List<byte[]>();
        if (machine == MachineArchitecture.X64)
            notes.Add(Note("CORE", NtPrstatus, PrStatus(process.Info)));
        notes.Add(Note("CORE", NtPrpsinfo, PrPsInfo(process.Info)));
        var fileNote = FileNote(areas);
        if (fileNote is not null)
            notes.Add(Note("CORE", NtFile, fileNote));
        int noteSize = notes.Sum(n => n.Length);

        int headerCount = 1 + areas.Count;
        ulong noteOffset = ElfHeaderSize + (ulong)headerCount * ProgramHeaderSize;
        ulong dataOffset = AlignUp(noteOffset + (ulong)noteSize, PageSize);
        var segments = new Segment[areas.Count];
        for (int i = 0; i < areas.Count; i++)
        {
            var area = areas[i];
            ulong bytes = (area.Protection & MemoryProtection.Read) != 0 && area.End > area.Start ? area.End - area.Start : 0;
            segments[i] = new Segment(area.Start, bytes, dataOffset);
            dataOffset = AlignUp(dataOffset + bytes, PageSize);
        }

        var headers = new byte[checked((int)(noteOffset + (ulong)noteSize))];
        WriteElfHeader(headers, MachineOf(machine), (ushort)headerCount);
        var at = headers.AsSpan(ElfHeaderSize);
        WriteProgramHeader(at, type: 4, flags: 0, offset: noteOffset, address: 0, fileSize: (ulong)noteSize, memorySize: 0, align: 4);
        for (int i = 0; i < areas.Count; i++)
        {
            var area = areas[i];
            uint flags = ((area.Protection & MemoryProtection.Read) != 0 ? 4u : 0) | ((area.Protection & MemoryProtection.Write) != 0 ? 2u : 0) | ((area.Protection & MemoryProtection.Execute) != 0 ? 1u : 0);
            WriteProgramHeader(at[((i + 1) * ProgramHeaderSize)..], type: 1, flags, segments[i].FileOffset, area.Start, segments[i].Size, area.End - area.Start, PageSize);
        }
        int noteAt = (int)noteOffset;
        foreach (var note in notes)
        {
            note.CopyTo(headers, noteAt);
            noteAt += note.Length;
        }
        // The file ends where the last segment's bytes end; trailing alignment would only be padding.
        ulong size = segments.Length == 0 ? (ulong)headers.Length : Math.Max((ulong)headers.Length, segments[^1].FileOffset + segments[^1].Size);
        return new Layout(headers, segments, size);
    }

    /// <summary>Linux's <c>struct elf_prstatus</c> for x86-64 (336 bytes): signal info, ids, times, then 27 registers left zero.</summary>
    private static byte[] PrStatus(ProcessInfo info)
    {
        var status = new byte[336];
        BinaryPrimitives.WriteInt32LittleEndian(status.AsSpan(32), (int)info.Pid);
        BinaryPrimitives.WriteInt32LittleEndian(status.AsSpan(36), (int)info.ParentPid);
        BinaryPrimitives.WriteInt32LittleEndian(status.AsSpan(40), (int)info.Pid);
        BinaryPrimitives.WriteInt32LittleEndian(status.AsSpan(44), (int)info.Pid);
        return status;
    }

    /// <summary>Linux's <c>struct elf_prpsinfo</c> for 64-bit machines (136 bytes): state, ids, <c>comm</c> and the start of the command line.</summary>
    private static byte[] PrPsInfo(ProcessInfo info)
    {
        var psinfo = new byte[136];
        char letter = info.StateText is { Length: > 0 } text ? text[0] : info.State switch
        {
            ProcessState.Running => 'R',
            ProcessState.Sleeping => 'S',
            ProcessState.DiskSleep => 'D',
            ProcessState.Stopped => 'T',
            ProcessState.Traced => 't',
            ProcessState.Zombie => 'Z',
            ProcessState.Dead => 'X',
            ProcessState.Idle => 'I',
            _ => '?',
        };
        psinfo[0] = (byte)Math.Max(0, "RSDTtZXI".IndexOf(letter, StringComparison.Ordinal));
        psinfo[1] = (byte)letter;
        psinfo[2] = (byte)(letter == 'Z' ? 1 : 0);
        BinaryPrimitives.WriteUInt32LittleEndian(psinfo.AsSpan(16), info.Uid ?? 0);
        BinaryPrimitives.WriteInt32LittleEndian(psinfo.AsSpan(24), (int)info.Pid);
        BinaryPrimitives.WriteInt32LittleEndian(psinfo.AsSpan(28), (int)info.ParentPid);
        BinaryPrimitives.WriteInt32LittleEndian(psinfo.AsSpan(32), (int)info.Pid);
        BinaryPrimitives.WriteInt32LittleEndian(psinfo.AsSpan(36), (int)info.Pid);
        CopyCut(info.Name, psinfo.AsSpan(40, 16));
        CopyCut(info.CommandLine ?? info.Name, psinfo.AsSpan(56, 80));
        return psinfo;
    }

    /// <summary>Linux's <c>NT_FILE</c>: the count, the page size, (start, end, page offset) per file-backed area, then their names.</summary>
    private static byte[]? FileNote(IReadOnlyList<MemoryArea> areas)
    {
        var mapped = areas.Where(a => a.Path is { Length: > 0 } path && path[0] == '/').ToList();
        if (mapped.Count == 0)
            return null;
        var names = mapped.Select(a => Encoding.UTF8.GetBytes(a.Path!)).ToList();
        var note = new byte[16 + mapped.Count * 24 + names.Sum(n => n.Length + 1)];
        BinaryPrimitives.WriteUInt64LittleEndian(note, (ulong)mapped.Count);
        BinaryPrimitives.WriteUInt64LittleEndian(note.AsSpan(8), PageSize);
        for (int i = 0; i < mapped.Count; i++)
        {
            var entry = note.AsSpan(16 + i * 24);
            BinaryPrimitives.WriteUInt64LittleEndian(entry, mapped[i].Start);
            BinaryPrimitives.WriteUInt64LittleEndian(entry[8..], mapped[i].End);
            BinaryPrimitives.WriteUInt64LittleEndian(entry[16..], mapped[i].Offset / PageSize);
        }
        int at = 16 + mapped.Count * 24;
        foreach (var name in names)
        {
            name.CopyTo(note, at);
            at += name.Length + 1;
        }
        return note;
    }

    private static void CopyCut(string text, Span<byte> destination)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        bytes.AsSpan(0, Math.Min(bytes.Length, destination.Length - 1)).CopyTo(destination);
    }

    private static byte[] Note(string owner, uint type, byte[] description)
    {
        int nameSize = owner.Length + 1;
        var note = new byte[12 + (int)AlignUp((ulong)nameSize, 4) + (int)AlignUp((ulong)description.Length, 4)];
        BinaryPrimitives.WriteUInt32LittleEndian(note, (uint)nameSize);
        BinaryPrimitives.WriteUInt32LittleEndian(note.AsSpan(4), (uint)description.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(note.AsSpan(8), type);
        Encoding.ASCII.GetBytes(owner, note.AsSpan(12));
        description.CopyTo(note.AsSpan(12 + (int)AlignUp((ulong)nameSize, 4)));
        return note;
    }

    private static ushort MachineOf(MachineArchitecture architecture) => architecture switch
    {
        MachineArchitecture.X86 or MachineArchitecture.X86Pae => 3,
        MachineArchitecture.Arm64 => 183,
        _ => 62,
    };

    private static void WriteElfHeader(Span<byte> header, ushort machine, ushort programHeaderCount)
    {
        "\u007fELF"u8.CopyTo(header);
        header[4] = 2; // ELFCLASS64
        header[5] = 1; // little-endian
        header[6] = 1; // EV_CURRENT
        BinaryPrimitives.WriteUInt16LittleEndian(header[16..], 4); // ET_CORE
        BinaryPrimitives.WriteUInt16LittleEndian(header[18..], machine);
        BinaryPrimitives.WriteUInt32LittleEndian(header[20..], 1);
        BinaryPrimitives.WriteUInt64LittleEndian(header[32..], ElfHeaderSize); // e_phoff: right after this header
        BinaryPrimitives.WriteUInt16LittleEndian(header[52..], ElfHeaderSize);
        BinaryPrimitives.WriteUInt16LittleEndian(header[54..], ProgramHeaderSize);
        BinaryPrimitives.WriteUInt16LittleEndian(header[56..], programHeaderCount);
        BinaryPrimitives.WriteUInt16LittleEndian(header[58..], 64); // e_shentsize, though there are no sections
    }

    private static void WriteProgramHeader(Span<byte> header, uint type, uint flags, ulong offset, ulong address, ulong fileSize, ulong memorySize, ulong align)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(header, type);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], flags);
        BinaryPrimitives.WriteUInt64LittleEndian(header[8..], offset);
        BinaryPrimitives.WriteUInt64LittleEndian(header[16..], address);
        BinaryPrimitives.WriteUInt64LittleEndian(header[24..], 0); // p_paddr: a process's core knows no physical addresses
        BinaryPrimitives.WriteUInt64LittleEndian(header[32..], fileSize);
        BinaryPrimitives.WriteUInt64LittleEndian(header[40..], memorySize);
        BinaryPrimitives.WriteUInt64LittleEndian(header[48..], align);
    }

    private static ulong AlignUp(ulong value, ulong alignment) => (value + alignment - 1) & ~(alignment - 1);

    private readonly record struct Segment(ulong Address, ulong Size, ulong FileOffset);

    private sealed record Layout(byte[] Headers, Segment[] Segments, ulong Size)
    {
        /// <summary>The segment holding file offset <paramref name="offset"/>, or -1 with the offset where the next data starts.</summary>
        /// <remarks>
        /// Segments are in file order and do not overlap, so "ends at or before the offset" holds for a prefix of them;
        /// an empty segment shares its offset with the next one. When no segment holds the offset, the first one after
        /// that prefix starts strictly after it, so every gap is at least one byte long.
        /// </remarks>
        public int SegmentAt(ulong offset, out ulong nextStart)
        {
            int lo = 0, hi = Segments.Length - 1;
            while (lo <= hi)
            {
                int mid = (lo + hi) >>> 1;
                var segment = Segments[mid];
                if (offset < segment.FileOffset)
                    hi = mid - 1;
                else if (offset - segment.FileOffset >= segment.Size)
                    lo = mid + 1;
                else
                {
                    nextStart = segment.FileOffset;
                    return mid;
                }
            }
            nextStart = lo < Segments.Length ? Segments[lo].FileOffset : Size;
            return -1;
        }
    }
}
