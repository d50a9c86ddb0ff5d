using System.Buffers.Binary;
using System.Globalization;
using Introspect.Abi;
using Introspect.Connectors.Coredump.IO;

namespace Introspect.Connectors.Coredump.Formats;

/// <summary>ELF core files as QEMU's <c>dump-guest-memory</c> and the kernel's <c>/proc/vmcore</c> write them.</summary>
/// <remarks>
/// <para>Each PT_LOAD with file data maps <c>p_paddr</c>..+<c>p_filesz</c> to file offset
/// <c>p_offset</c>. Where <c>p_memsz</c> exceeds <c>p_filesz</c> the rest is left out of the map
/// and fails to read: makedumpfile writes ELF dumps that way for pages it filtered out, which
/// held data that is not in the file, so zeros would be a lie. QEMU writes <c>p_filesz ==
/// p_memsz</c>.</para>
/// <para>Segments may overlap where they agree: QEMU's <c>paging=true</c> dumps list one physical
/// page under each virtual mapping, all at the same file offset, and kexec's <c>/proc/vmcore</c>
/// adds a kernel-text segment over RAM that holds the same bytes elsewhere in the file. Segments
/// whose overlapping bytes differ are refused.</para>
/// </remarks>
internal static class ElfCore
{
    private const ushort CoreFileType = 4;
    private const uint LoadSegment = 1;
    private const uint NoteSegment = 4;
    private const ushort ExtendedNumbering = 0xFFFF;
    private const long MaxOverlapChecks = 1 << 22;

    public static FileBackedMemory Open(MappedFile file, OpenContext context)
    {
        var (map, hints) = Parse(file, context);
        return new FileBackedMemory(file, map, hints);
    }

    public static (MemoryMap Map, ConnectorHints Hints) Parse(MappedFile file, OpenContext context)
    {
        string name = file.Name;
        Span<byte> ident = stackalloc byte[64];
        int headerLength = file.Length < 64 ? (int)file.Length : 64;
        if (headerLength < 52)
            ThrowHelper.ThrowTruncated(name, "the ELF header", 0, 52, file.Length);
        file.ReadExact(0, ident[..headerLength], "the ELF header");
        if (!ident.StartsWith(FormatDetector.ElfMagic))
            ThrowHelper.ThrowInvalid(name, "e_ident does not start with 0x7f 'ELF'; expected an ELF core file.");
        byte elfClass = ident[4];
        if (elfClass is not (1 or 2))
            ThrowHelper.ThrowInvalid(name, $"e_ident[EI_CLASS] is {elfClass}; expected 1 (ELF32) or 2 (ELF64).");
        if (ident[5] != 1)
            ThrowHelper.ThrowInvalid(name, $"e_ident[EI_DATA] is {ident[5]}; expected 1 (little-endian), the only byte order read here.");
        bool is64 = elfClass == 2;
        if (is64 && headerLength < 64)
            ThrowHelper.ThrowTruncated(name, "the ELF64 header", 0, 64, file.Length);
        var header = ident[..(is64 ? 64 : 52)];

        ushort type = U16(header, 16);
        if (type != CoreFileType)
            ThrowHelper.ThrowInvalid(name, $"e_type is {type}; expected {CoreFileType} (ET_CORE), a core file.");
        ushort machine = U16(header, 18);
        ulong phOffset = is64 ? U64(header, 32) : U32(header, 28);
        ulong shOffset = is64 ? U64(header, 40) : U32(header, 32);
        ushort phEntrySize = U16(header, is64 ? 54 : 42);
        ulong phCount = U16(header, is64 ? 56 : 44);
        ushort shEntrySize = U16(header, is64 ? 58 : 46);
        int minimumEntry = is64 ? 56 : 32;
        if (phEntrySize < minimumEntry)
            ThrowHelper.ThrowInvalid(name, $"e_phentsize is {phEntrySize}; expected at least {minimumEntry}.");

        if (phCount == ExtendedNumbering)
        {
            // More than 0xfffe segments: the real count is section header 0's sh_info.
            int shMinimum = is64 ? 64 : 40;
            if (shEntrySize < shMinimum)
                ThrowHelper.ThrowInvalid(name, $"e_phnum is PN_XNUM (0xffff) but e_shentsize is {shEntrySize}; expected at least {shMinimum} to read the real count from section 0.");
            var section = file.ReadExact(shOffset, shMinimum, "section header 0 (holding the program header count)");
            phCount = U32(section, is64 ? 44 : 28);
        }

        // The table must fit in the file, which caps the count before anything is allocated.
        if (phCount > (file.Length / phEntrySize) || !file.Contains(phOffset, phCount * phEntrySize))
        {
            ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture,
                $"e_phnum {phCount} program headers of e_phentsize {phEntrySize} bytes at e_phoff 0x{phOffset:x} run past the end of the file (0x{file.Length:x} bytes)."));
        }

        var loads = new List<Segment>();
        var notes = new CoreNotes();
        Span<byte> entry = stackalloc byte[56];
        for (ulong i = 0; i < phCount; i++)
        {
            ulong at = phOffset + i * phEntrySize;
            file.ReadExact(at, entry[..minimumEntry], "a program header");
            uint segmentType = U32(entry, 0);
            ulong offset = is64 ? U64(entry, 8) : U32(entry, 4);
            ulong physical = is64 ? U64(entry, 24) : U32(entry, 12);
            ulong fileSize = is64 ? U64(entry, 32) : U32(entry, 16);
            if (segmentType == LoadSegment)
            {
                if (fileSize == 0)
                    continue;
                fileSize = CheckInFile(file, context, $"PT_LOAD {i} (p_paddr 0x{physical:x})", offset, fileSize);
                if (fileSize == 0)
                    continue;
                if (physical + (fileSize - 1) < physical)
                {
                    ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture,
                        $"PT_LOAD {i}: p_paddr 0x{physical:x} + p_filesz 0x{fileSize:x} wraps past 2^64."));
                }
                loads.Add(new Segment(physical, fileSize, offset, i));
            }
            else if (segmentType == NoteSegment && fileSize > 0)
            {
                if (fileSize > CoreNotes.MaxNoteAreaSize)
                {
                    ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture,
                        $"PT_NOTE {i}: p_filesz 0x{fileSize:x} exceeds the limit of 0x{CoreNotes.MaxNoteAreaSize:x} bytes for notes."));
                }
                var area = file.ReadExact(offset, (int)fileSize, $"PT_NOTE {i}");
                notes.Parse(area, name, offset);
            }
        }
        if (loads.Count == 0)
            ThrowHelper.ThrowInvalid(name, "the ELF core has no PT_LOAD segment with file data; it holds no memory.");

        var map = BuildMap(file, loads);
        return (map, notes.ToHints(is64 ? "elf" : "elf32", machine));
    }

    /// <summary>How much of a segment the file holds, or an error when it runs past the end.</summary>
    private static ulong CheckInFile(MappedFile file, OpenContext context, string what, ulong offset, ulong size)
    {
        if (file.Contains(offset, size))
            return size;
        if (!context.AllowTruncated)
        {
            ThrowHelper.ThrowInvalid(file.Name, string.Create(CultureInfo.InvariantCulture,
                $"{what}: p_offset 0x{offset:x} + p_filesz 0x{size:x} runs past the end of the file (0x{file.Length:x} bytes); the file is truncated or the header is corrupt (allow-truncated=on serves what the file holds)."));
        }
        ulong held = offset < file.Length ? file.Length - offset : 0;
        context.Log(PluginLogLevel.Warning, string.Create(CultureInfo.InvariantCulture,
            $"{what}: only 0x{held:x} of 0x{size:x} bytes are in the file; the rest fails to read."));
        return held;
    }

    /// <summary>The segments' union, each physical byte taken from the first segment (by address) that holds it.</summary>
    /// <remarks>
    /// Where segments overlap they must agree: at the same file offset (QEMU's paging dumps), or
    /// at different offsets holding the same bytes (the kernel-text segment kexec adds over the
    /// RAM segment in <c>/proc/vmcore</c>). Disagreement is refused.
    /// </remarks>
    private static MemoryMap BuildMap(MappedFile file, List<Segment> loads)
    {
        loads.Sort(static (a, b) => a.Physical != b.Physical ? a.Physical.CompareTo(b.Physical) : b.Size.CompareTo(a.Size));
        var ranges = new List<Emitted>(loads.Count);
        ulong coveredLast = 0;
        long comparisons = 0;
        ulong comparedBytes = 0;
        foreach (var segment in loads)
        {
            ulong last = segment.Physical + (segment.Size - 1);
            ulong start = segment.Physical;
            // Segments come in address order, so [segment.Physical, coveredLast] is all covered.
            if (ranges.Count > 0 && segment.Physical <= coveredLast)
            {
                ulong overlapLast = Math.Min(last, coveredLast);
                CheckAgreement(file, ranges, segment, overlapLast, ref comparisons, ref comparedBytes);
                if (last <= coveredLast)
                    continue;
                start = coveredLast + 1;
            }
            var range = new MemoryRange(start, last - start + 1, segment.Offset + (start - segment.Physical));
            // A range that continues the previous one at the same file distance extends it, so
            // consistent overlaps (paging dumps) keep the list short.
            if (ranges.Count > 0 && ranges[^1].Range is var previous && previous.Last + 1 == start
                && unchecked(previous.BackingBase - previous.Base) == unchecked(range.BackingBase - range.Base))
                ranges[^1] = ranges[^1] with { Range = previous with { Size = previous.Size + range.Size } };
            else
                ranges.Add(new Emitted(range, segment.Index));
            coveredLast = last;
        }
        return new MemoryMap(ranges.Select(static r => r.Range));
    }

    /// <summary>Checks that <paramref name="segment"/> holds the same bytes as the ranges already taken, from its start to <paramref name="overlapLast"/>.</summary>
    private static void CheckAgreement(MappedFile file, List<Emitted> ranges, Segment segment, ulong overlapLast, ref long comparisons, ref ulong comparedBytes)
    {
        // The first range taken that ends at or after the segment's start.
        int lo = 0, hi = ranges.Count - 1;
        while (lo < hi)
        {
            int mid = (int)((uint)(lo + hi) >> 1);
            if (ranges[mid].Range.Last < segment.Physical)
                lo = mid + 1;
            else
                hi = mid;
        }
        ulong delta = unchecked(segment.Offset - segment.Physical);
        for (int i = lo; i < ranges.Count && ranges[i].Range.Base <= overlapLast; i++)
        {
            // Each overlap costs a step; a crafted table of nested segments must not take quadratic time.
            if (++comparisons > MaxOverlapChecks)
                ThrowHelper.ThrowInvalid(file.Name, $"the PT_LOAD segments overlap more than {MaxOverlapChecks} times; expected a core file's segments to overlap rarely.");
            var (range, index) = ranges[i];
            if (unchecked(range.BackingBase - range.Base) == delta)
                continue;
            ulong first = Math.Max(range.Base, segment.Physical);
            ulong lastShared = Math.Min(range.Last, overlapLast);
            ulong count = lastShared - first + 1;
            // A sane dump holds each duplicated byte once, so comparing more than the file's length means crafted overlaps.
            comparedBytes += count;
            if (comparedBytes > file.Length)
                ThrowHelper.ThrowInvalid(file.Name, string.Create(CultureInfo.InvariantCulture, $"the PT_LOAD segments overlap at different file offsets over more than the file's length (0x{file.Length:x} bytes); expected a core file's segments to overlap rarely."));
            ulong ours = segment.Offset + (first - segment.Physical);
            ulong theirs = range.BackingBase + (first - range.Base);
            for (ulong done = 0; done < count;)
            {
                int chunk = (int)Math.Min(count - done, 1UL << 20);
                // Both segments were checked to lie in the file; & (not &&) assigns both spans.
                if (!(file.TryGetSpan(ours + done, chunk, out var a) & file.TryGetSpan(theirs + done, chunk, out var b)))
                    ThrowHelper.ThrowInvalid(file.Name, $"PT_LOAD {segment.Index} lies outside the file.");
                int differ = a.CommonPrefixLength(b);
                if (differ < chunk)
                {
                    ThrowHelper.ThrowInvalid(file.Name, string.Create(CultureInfo.InvariantCulture,
                        $"PT_LOAD {index} and PT_LOAD {segment.Index} overlap but disagree at physical 0x{first + done + (ulong)differ:x} (file offsets 0x{theirs + done + (ulong)differ:x} and 0x{ours + done + (ulong)differ:x})."));
                }
                done += (ulong)chunk;
            }
        }
    }

    private readonly record struct Emitted(MemoryRange Range, ulong Index);

    private static ushort U16(ReadOnlySpan<byte> bytes, int offset) => BinaryPrimitives.ReadUInt16LittleEndian(bytes[offset..]);

    private static uint U32(ReadOnlySpan<byte> bytes, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(bytes[offset..]);

    private static ulong U64(ReadOnlySpan<byte> bytes, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(bytes[offset..]);

    private readonly record struct Segment(ulong Physical, ulong Size, ulong Offset, ulong Index);
}
