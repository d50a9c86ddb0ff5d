using System.Buffers.Binary;
using System.Globalization;
using Introspect.Connectors.Coredump.IO;

namespace Introspect.Connectors.Coredump.Kdump;

/// <summary>The file a flattened makedumpfile stream describes, read in place through an index of its records.</summary>
/// <remarks>
/// <para>The flattened form (what <c>makedumpfile -F</c> and QEMU before 8.2 write) is a 4096-byte
/// header starting <c>makedumpfile</c>, then records of big-endian <c>{int64 offset, int64
/// size}</c> each followed by <c>size</c> bytes that belong at <c>offset</c> of the real file,
/// ended by an offset of -1. <c>makedumpfile -R</c> would write the bytes out in order; here the
/// records are indexed by their target offset and read where they lie.</para>
/// <para>Where records overlap, the later one wins, as it would when written out in order;
/// bytes no record covers read as zeros, as a hole in the written file would.</para>
/// </remarks>
internal sealed class FlattenedFile : DataSource
{
    /// <summary>The first record follows a header of this size.</summary>
    public const int HeaderSize = 4096;

    /// <summary>No record may reach past this offset of the real file (256 TiB); a larger one is corruption, not a dump.</summary>
    public const ulong MaxTargetOffset = 1UL << 48;

    private readonly MappedFile _file;
    private readonly ulong[] _targets;
    private readonly ulong[] _sizes;
    private readonly ulong[] _sources;
    private readonly ulong _length;

    private FlattenedFile(MappedFile file, ulong[] targets, ulong[] sizes, ulong[] sources)
    {
        _file = file;
        _targets = targets;
        _sizes = sizes;
        _sources = sources;
        _length = targets.Length == 0 ? 0 : targets[^1] + sizes[^1];
    }

    public override string Name => _file.Name;

    /// <summary>The length of the real file: the end of the last record.</summary>
    public override ulong Length => _length;

    /// <summary>How many pieces the real file is made of, once overlaps are resolved.</summary>
    public int SegmentCount => _targets.Length;

    /// <summary>Indexes the records of <paramref name="file"/>.</summary>
    /// <exception cref="InvalidDataException">The header or a record is malformed, or the stream ends without its end record.</exception>
    public static FlattenedFile Open(MappedFile file)
    {
        string name = file.Name;
        Span<byte> header = stackalloc byte[32];
        file.ReadExact(0, header, "the flattened dump header");
        if (!header.StartsWith(FormatDetector.FlattenedMagic) || header[FormatDetector.FlattenedMagic.Length..16].IndexOfAnyExcept((byte)0) >= 0)
            ThrowHelper.ThrowInvalid(name, "the signature is not 'makedumpfile'; expected a flattened makedumpfile dump.");
        long type = BinaryPrimitives.ReadInt64BigEndian(header[16..]);
        long version = BinaryPrimitives.ReadInt64BigEndian(header[24..]);
        if (type != 1)
            ThrowHelper.ThrowInvalid(name, $"the flattened header's type is {type}; expected 1 (TYPE_FLAT_HEADER).");
        if (version != 1)
            ThrowHelper.ThrowInvalid(name, $"the flattened header's version is {version}; expected 1.");

        var records = new List<Record>();
        ulong position = HeaderSize;
        Span<byte> head = stackalloc byte[16];
        while (true)
        {
            if (!file.TryRead(position, head))
            {
                ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture,
                    $"the flattened stream ends at offset 0x{file.Length:x} without its end record (offset -1); the file is truncated (record #{records.Count} would start at 0x{position:x})."));
            }
            long offset = BinaryPrimitives.ReadInt64BigEndian(head);
            long size = BinaryPrimitives.ReadInt64BigEndian(head[8..]);
            if (offset == -1)
                break;
            string where = string.Create(CultureInfo.InvariantCulture, $"flattened record #{records.Count} at offset 0x{position:x}");
            if (offset < 0)
                ThrowHelper.ThrowInvalid(name, $"{where}: its target offset is {offset}; expected 0 or more, or -1 to end the stream.");
            if (size < 0)
                ThrowHelper.ThrowInvalid(name, $"{where}: its size is {size}; expected 0 or more.");
            if ((ulong)offset > MaxTargetOffset || (ulong)size > MaxTargetOffset - (ulong)offset)
            {
                ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture,
                    $"{where}: offset 0x{offset:x} + size 0x{size:x} reaches past the limit of 0x{MaxTargetOffset:x} (256 TiB) for the real file."));
            }
            ulong data = position + 16;
            if (!file.Contains(data, (ulong)size))
            {
                ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture,
                    $"{where}: its 0x{size:x} bytes of data run past the end of the file (0x{file.Length:x} bytes); the file is truncated."));
            }
            if (size > 0)
                records.Add(new Record((ulong)offset, (ulong)size, data, records.Count));
            position = data + (ulong)size;
        }
        return Build(file, records);
    }

    private static FlattenedFile Build(MappedFile file, List<Record> records)
    {
        records.Sort(static (a, b) => a.Target != b.Target ? a.Target.CompareTo(b.Target) : a.Sequence.CompareTo(b.Sequence));
        bool overlapping = false;
        for (int i = 1; i < records.Count && !overlapping; i++)
            overlapping = records[i].Target < records[i - 1].Target + records[i - 1].Size;
        var segments = overlapping ? ResolveOverlaps(records) : records;
        var targets = new ulong[segments.Count];
        var sizes = new ulong[segments.Count];
        var sources = new ulong[segments.Count];
        for (int i = 0; i < segments.Count; i++)
        {
            targets[i] = segments[i].Target;
            sizes[i] = segments[i].Size;
            sources[i] = segments[i].Source;
        }
        return new FlattenedFile(file, targets, sizes, sources);
    }

    /// <summary>Cuts overlapping records into disjoint pieces, each taken from the last record written over it.</summary>
    private static List<Record> ResolveOverlaps(List<Record> sorted)
    {
        var boundaries = new List<ulong>(sorted.Count * 2);
        foreach (var record in sorted)
        {
            boundaries.Add(record.Target);
            boundaries.Add(record.Target + record.Size);
        }
        boundaries.Sort();
        // The live records, latest first.
        var live = new PriorityQueue<int, int>(Comparer<int>.Create(static (a, b) => b.CompareTo(a)));
        var pieces = new List<Record>(sorted.Count);
        int next = 0;
        for (int k = 0; k + 1 < boundaries.Count; k++)
        {
            ulong start = boundaries[k];
            ulong end = boundaries[k + 1];
            while (next < sorted.Count && sorted[next].Target <= start)
            {
                live.Enqueue(next, sorted[next].Sequence);
                next++;
            }
            while (live.TryPeek(out int top, out _) && sorted[top].Target + sorted[top].Size <= start)
                live.Dequeue();
            if (end == start || !live.TryPeek(out int owner, out _))
                continue;
            var record = sorted[owner];
            ulong source = record.Source + (start - record.Target);
            if (pieces.Count > 0 && pieces[^1] is var last && last.Sequence == record.Sequence && last.Target + last.Size == start)
                pieces[^1] = last with { Size = last.Size + (end - start) };
            else
                pieces.Add(new Record(start, end - start, source, record.Sequence));
        }
        return pieces;
    }

    public override bool TryRead(ulong offset, Span<byte> destination)
    {
        if (!Contains(offset, (ulong)destination.Length))
            return false;
        int index = SegmentAtOrBefore(offset);
        while (!destination.IsEmpty)
        {
            int count;
            if (index >= 0 && offset - _targets[index] < _sizes[index])
            {
                ulong available = _sizes[index] - (offset - _targets[index]);
                count = available < (ulong)destination.Length ? (int)available : destination.Length;
                if (!_file.TryRead(_sources[index] + (offset - _targets[index]), destination[..count]))
                    return false;
            }
            else
            {
                // A hole before the next segment.
                ulong gap = index + 1 < _targets.Length ? _targets[index + 1] - offset : (ulong)destination.Length;
                count = gap < (ulong)destination.Length ? (int)gap : destination.Length;
                destination[..count].Clear();
            }
            destination = destination[count..];
            offset += (ulong)count;
            if (index + 1 < _targets.Length && offset >= _targets[index + 1])
                index++;
        }
        return true;
    }

    public override bool TryGetSpan(ulong offset, int length, out ReadOnlySpan<byte> span)
    {
        int index = SegmentAtOrBefore(offset);
        if (length >= 0 && index >= 0 && offset - _targets[index] < _sizes[index] && (ulong)length <= _sizes[index] - (offset - _targets[index]))
            return _file.TryGetSpan(_sources[index] + (offset - _targets[index]), length, out span);
        span = default;
        return false;
    }

    /// <summary>The last segment starting at or before <paramref name="offset"/>, or -1.</summary>
    private int SegmentAtOrBefore(ulong offset)
    {
        int lo = 0, hi = _targets.Length - 1, found = -1;
        while (lo <= hi)
        {
            int mid = (int)((uint)(lo + hi) >> 1);
            if (_targets[mid] <= offset)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }
        return found;
    }

    private readonly record struct Record(ulong Target, ulong Size, ulong Source, int Sequence);
}
