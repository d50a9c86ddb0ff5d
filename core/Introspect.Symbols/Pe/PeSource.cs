using System.Text;
using Introspect.Abi;
using Introspect.Core.Memory;

namespace Introspect.Symbols.Pe;

/// <summary>Where a PE image's bytes come from, addressed by RVA: a file (through its section table) or memory (base + RVA).</summary>
/// <remarks>
/// A file's bytes are all there: a read that leaves the file is bad input and throws. Memory may miss pages: a read
/// that meets one returns false and the parser notes what it could not read.
/// </remarks>
internal abstract class PeSource
{
    protected const int PageSize = 4096;

    protected PeSource(string name) => Name = name;

    public string Name { get; }

    /// <summary>True for memory, where unreadable pages are expected; false for a file, where they are bad input.</summary>
    public abstract bool MayMissPages { get; }

    /// <summary>The section table, once the headers are parsed; a file needs it to turn RVAs into offsets.</summary>
    public IReadOnlyList<PeSection> Sections { get; set; } = [];

    public uint SizeOfHeaders { get; set; }

    /// <summary>Reads the header bytes from offset 0 (file) or the image base (memory); returns how many were read.</summary>
    public abstract int ReadHeaders(Span<byte> destination);

    /// <summary>Reads all of <paramref name="destination"/> at <paramref name="rva"/>.</summary>
    /// <returns>False when memory misses a page of it; a file throws instead, naming <paramref name="what"/>.</returns>
    public abstract bool TryRead(uint rva, Span<byte> destination, string what);

    /// <summary>Reads a table that may span pages; in memory, pages that cannot be read are zero and listed as missing.</summary>
    public TableRead ReadTable(uint rva, int length, string what)
    {
        var data = new byte[length];
        if (TryRead(rva, data, what))
            return new TableRead(data, rva, null);
        // Some page is missing: read page by page to learn which.
        var missing = new List<(uint Start, uint End)>();
        int done = 0;
        while (done < length)
        {
            uint at = unchecked(rva + (uint)done); // callers keep tables below SizeOfImage
            int step = (int)Math.Min(length - done, PageSize - (at % PageSize));
            if (!TryRead(at, data.AsSpan(done, step), what))
            {
                data.AsSpan(done, step).Clear();
                missing.Add((at, unchecked(at + (uint)step)));
            }
            done += step;
        }
        return new TableRead(data, rva, missing);
    }

    /// <summary>Reads a NUL-terminated ASCII/UTF-8 string of at most <paramref name="maxLength"/> bytes.</summary>
    /// <returns>Null when memory misses a page before the NUL; a file throws instead.</returns>
    public string? ReadString(uint rva, int maxLength, string what)
    {
        Span<byte> chunk = stackalloc byte[256];
        var text = new List<byte>();
        uint at = rva;
        while (text.Count < maxLength)
        {
            // Steps end at page boundaries so that a missing page costs only the step that meets it.
            int step = (int)Math.Min((uint)Math.Min(chunk.Length, maxLength - text.Count), PageSize - (at % PageSize));
            var piece = chunk[..step];
            if (!TryReadString(at, ref piece, what))
                return null;
            int nul = piece.IndexOf((byte)0);
            if (nul >= 0)
            {
                foreach (var b in piece[..nul])
                    text.Add(b);
                return Encoding.UTF8.GetString(text.ToArray());
            }
            foreach (var b in piece)
                text.Add(b);
            if (piece.Length < step)
                break; // a file's data ended: the string runs out with it
            at = unchecked(at + (uint)step);
            if (at == 0)
                break; // wrapped past 4 GiB
        }
        if (MayMissPages)
            return Encoding.UTF8.GetString(text.ToArray());
        return Malformed.Throw<string>(Name, what, $"a string at RVA {Malformed.Hex(rva)} of more than {maxLength} bytes", $"a NUL within {maxLength} bytes");
    }

    /// <summary>Reads up to <paramref name="piece"/>'s length; a file may shorten it where its data ends.</summary>
    protected virtual bool TryReadString(uint rva, ref Span<byte> piece, string what) => TryRead(rva, piece, what);
}

/// <summary>A table read from a PE image, with the byte ranges (as RVAs) that memory could not supply.</summary>
internal readonly struct TableRead(byte[] data, uint rva, List<(uint Start, uint End)>? missing)
{
    public byte[] Data { get; } = data;

    public bool Complete => missing is null;

    /// <summary>Whether the <paramref name="length"/> bytes at <paramref name="offset"/> of the table were read.</summary>
    public bool Has(int offset, int length)
    {
        if (missing is null)
            return true;
        ulong start = (ulong)rva + (uint)offset, end = start + (uint)length;
        foreach (var (s, e) in missing)
        {
            if (start < e && s < end)
                return false;
        }
        return true;
    }
}

/// <summary>A PE file's bytes, held whole: RVAs go through the section table to file offsets.</summary>
internal sealed class PeFileSource(string name, ReadOnlyMemory<byte> bytes) : PeSource(name)
{
    public override bool MayMissPages => false;

    public ReadOnlyMemory<byte> Bytes { get; } = bytes;

    public override int ReadHeaders(Span<byte> destination)
    {
        int count = Math.Min(destination.Length, Bytes.Length);
        Bytes.Span[..count].CopyTo(destination);
        return count;
    }

    public override bool TryRead(uint rva, Span<byte> destination, string what)
    {
        int done = 0;
        while (done < destination.Length)
        {
            uint at = unchecked(rva + (uint)done);
            if (at < rva)
                Malformed.Throw(Name, what, $"RVA {Malformed.Hex(rva)} + {destination.Length} bytes", "a range below 4 GiB");
            int copied = CopyAt(at, destination[done..], what, allowShort: false);
            done += copied;
        }
        return true;
    }

    protected override bool TryReadString(uint rva, ref Span<byte> piece, string what)
    {
        int copied = CopyAt(rva, piece, what, allowShort: true);
        piece = piece[..copied];
        return true;
    }

    /// <summary>Copies from one place (the headers or one section) and returns how much it copied (at least one byte
    /// unless <paramref name="allowShort"/> and the file ends).</summary>
    private int CopyAt(uint rva, Span<byte> destination, string what, bool allowShort)
    {
        var file = Bytes.Span;
        foreach (var section in Sections)
        {
            if (!section.Contains(rva))
                continue;
            uint intoSection = unchecked(rva - section.VirtualAddress); // as Contains measured it (a section may wrap past 4 GiB)
            int wanted = (int)Math.Min((uint)destination.Length, section.MappedSize - intoSection);
            if (intoSection >= section.SizeOfRawData)
            {
                // Past the section's file data: the loader maps zeros there.
                destination[..wanted].Clear();
                return wanted;
            }
            wanted = (int)Math.Min((uint)wanted, section.SizeOfRawData - intoSection);
            ulong offset = (ulong)section.PointerToRawData + intoSection;
            if (offset >= (ulong)file.Length)
            {
                if (allowShort)
                    return 0;
                Malformed.Throw(Name, what, $"at RVA {Malformed.Hex(rva)} in section {section.Name}, file offset {Malformed.Hex(offset)}",
                    $"data inside the file, which ends at {Malformed.Hex((ulong)file.Length)} (truncated?)");
            }
            int available = (int)Math.Min((ulong)wanted, (ulong)file.Length - offset);
            if (available < wanted && !allowShort)
                Malformed.Truncated(Name, $"{what} (section {section.Name})", (long)offset, wanted, file.Length);
            file.Slice((int)offset, available).CopyTo(destination);
            return available;
        }
        if (rva < SizeOfHeaders || Sections.Count == 0)
        {
            uint limit = Sections.Count == 0 ? (uint)file.Length : SizeOfHeaders;
            if (rva < limit && rva < (uint)file.Length)
            {
                int available = (int)Math.Min(Math.Min((uint)destination.Length, limit - rva), (uint)file.Length - rva);
                file.Slice((int)rva, available).CopyTo(destination);
                return available;
            }
            if (allowShort)
                return 0;
        }
        return Malformed.Throw<int>(Name, what, $"RVA {Malformed.Hex(rva)}", "an address inside the headers or a section");
    }
}

/// <summary>An image as mapped in memory, read through any <see cref="IMemory"/> at base + RVA.</summary>
internal sealed class PeMemorySource(string name, IMemory memory, ulong imageBase) : PeSource(name)
{
    public override bool MayMissPages => true;

    public ulong ImageBase { get; } = imageBase;

    public override int ReadHeaders(Span<byte> destination) => memory.Read(ImageBase, destination);

    public override bool TryRead(uint rva, Span<byte> destination, string what) =>
        memory.Read(unchecked(ImageBase + rva), destination) == destination.Length; // MemoryReads cuts a range at 2^64
}
