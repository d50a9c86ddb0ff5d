using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Introspect.Core.Plugins.Native;

/// <summary>The container format of a native library.</summary>
internal enum NativeImageFormat
{
    Elf,
    Pe,
}

/// <summary>One exported symbol whose name has the descriptor prefix, with the file bytes at its address.</summary>
/// <param name="Symbol">The symbol's name.</param>
/// <param name="Data">The bytes the file holds from the symbol's address on (at most <see cref="NativeAbi.MaxDescriptorSize"/>).</param>
/// <param name="DeclaredSize">The symbol's size where the format records one (ELF <c>st_size</c>), else null.</param>
/// <param name="Problem">Why the symbol cannot be a descriptor (a function, or not backed by file data), else null.</param>
internal sealed record NativeExport(string Symbol, byte[] Data, ulong? DeclaredSize, string? Problem);

/// <summary>What a native library's file says about itself, read without loading it: machine, format and descriptor exports.</summary>
/// <param name="Path">The file.</param>
/// <param name="Format">ELF or PE.</param>
/// <param name="PointerSize">4 or 8: the size of a pointer in the library's descriptors.</param>
/// <param name="Machine">The instruction set, as users name it (<c>x64</c>, <c>x86</c>, <c>arm64</c>, ...).</param>
/// <param name="Incompatibility">Why this host cannot load the file (another machine, another OS's format), or null.</param>
/// <param name="Exports">The exports whose names start with <see cref="NativeAbi.SymbolPrefix"/>.</param>
internal sealed record NativeImage(string Path, NativeImageFormat Format, int PointerSize, string Machine, string? Incompatibility, IReadOnlyList<NativeExport> Exports)
{
    /// <summary>The platform this host loads native plugins for, as <c>linux-x64</c>.</summary>
    public static string HostPlatform =>
        $"{(OperatingSystem.IsWindows() ? "windows" : OperatingSystem.IsLinux() ? "linux" : OperatingSystem.IsMacOS() ? "macos" : "unknown")}-{RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant()}";

    /// <summary>Whether the first bytes of a file are those of an ELF or PE image.</summary>
    public static bool LooksNative(ReadOnlySpan<byte> head) =>
        head.StartsWith("\u007fELF"u8) || head.StartsWith("MZ"u8);

    /// <summary>Reads the file's headers and export table.</summary>
    /// <returns>Null for a file that is neither ELF nor PE.</returns>
    /// <exception cref="InvalidDataException">The file is ELF or PE but malformed; the message names the file, the field and the value.</exception>
    public static NativeImage? Read(string path)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        long length = RandomAccess.GetLength(handle);
        var file = new FileWindow(path, handle, length);
        Span<byte> head = stackalloc byte[4];
        if (length < 4)
            return null;
        file.Read(0, head);
        if (head.SequenceEqual("\u007fELF"u8))
            return ElfReader.Read(file);
        if (head[..2].SequenceEqual("MZ"u8))
            return PeReader.Read(file);
        return null;
    }

    internal static string? HostMismatch(NativeImageFormat format, string machine, int pointerSize)
    {
        bool rightFormat = format switch
        {
            NativeImageFormat.Elf => OperatingSystem.IsLinux() || OperatingSystem.IsFreeBSD(),
            _ => OperatingSystem.IsWindows(),
        };
        if (!rightFormat)
        {
            string what = format == NativeImageFormat.Elf ? "an ELF shared library (Linux)" : "a PE DLL (Windows)";
            string wanted = OperatingSystem.IsWindows() ? ".dll" : ".so";
            return $"it is {what} for {machine}; this host runs {HostPlatform} and loads {wanted} plugins";
        }
        string hostMachine = RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant();
        if (machine != hostMachine || pointerSize != IntPtr.Size)
            return $"it is built for {machine} ({pointerSize * 8}-bit {(format == NativeImageFormat.Elf ? "ELF" : "PE")}); this host runs {HostPlatform}";
        return null;
    }
}

/// <summary>Bounded reads at offsets of a file: every read is checked against the file's length first.</summary>
internal readonly struct FileWindow(string path, SafeFileHandle handle, long length)
{
    public string Path { get; } = path;

    public long Length { get; } = length;

    public bool Contains(ulong offset, ulong size) => offset <= (ulong)Length && size <= (ulong)Length - offset;

    public void Read(ulong offset, Span<byte> destination)
    {
        if (!Contains(offset, (ulong)destination.Length))
            Fail($"{destination.Length} bytes at offset 0x{offset:x}", $"within the file's 0x{Length:x} bytes");
        int read = RandomAccess.Read(handle, destination, (long)offset);
        if (read != destination.Length)
            Fail($"{destination.Length} bytes at offset 0x{offset:x}", "a file that does not shrink while read");
    }

    /// <summary>Reads <paramref name="size"/> bytes of a table whose size came from the file, refusing more than <paramref name="cap"/>.</summary>
    public byte[] ReadTable(string what, ulong offset, ulong size, ulong cap)
    {
        if (size > cap)
            Fail($"{what} of 0x{size:x} bytes", $"at most 0x{cap:x}");
        if (!Contains(offset, size))
            Fail($"{what} at 0x{offset:x}+0x{size:x}", $"within the file's 0x{Length:x} bytes");
        var bytes = new byte[size];
        Read(offset, bytes);
        return bytes;
    }

    [DoesNotReturn]
    public void Fail(string found, string expected) =>
        throw new InvalidDataException($"{Path}: {found}; expected {expected}.");
}

/// <summary>ELF exports: <c>.dynsym</c> through the section headers, or <c>PT_DYNAMIC</c> when a file has none.</summary>
internal static class ElfReader
{
    private const int ElfClass32 = 1;
    private const int ElfClass64 = 2;
    private const ushort TypeShared = 3;
    private const uint PtLoad = 1;
    private const uint PtDynamic = 2;
    private const uint ShtDynsym = 11;
    private const long DtNull = 0, DtHash = 4, DtStrtab = 5, DtSymtab = 6, DtStrsz = 10, DtSyment = 11;
    private const long DtGnuHash = 0x6ffffef5;
    private const byte SttObject = 1;
    private const byte SttFunc = 2;
    private const ulong TableCap = 32UL << 20;
    private const int MaxSymbols = 1 << 22;

    public static NativeImage Read(FileWindow file)
    {
        Span<byte> ident = stackalloc byte[16];
        if (file.Length < 52)
            file.Fail($"an ELF file of {file.Length} bytes", "at least an ELF header (52 bytes)");
        file.Read(0, ident);
        int elfClass = ident[4];
        if (elfClass is not (ElfClass32 or ElfClass64))
            file.Fail($"ELF class {elfClass} (e_ident[EI_CLASS])", "1 (32-bit) or 2 (64-bit)");
        bool is64 = elfClass == ElfClass64;
        int pointerSize = is64 ? 8 : 4;
        var header = new byte[is64 ? 64 : 52];
        file.Read(0, header);
        ushort machineCode = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(18));
        if (ident[5] != 1)
        {
            // A big-endian library cannot be this host's (no supported host is big-endian); its exports are not read.
            return new NativeImage(file.Path, NativeImageFormat.Elf, pointerSize, $"big-endian machine {BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(18))}",
                $"it is a big-endian ELF file; this host runs {NativeImage.HostPlatform}", []);
        }
        string machine = machineCode switch
        {
            62 => "x64",
            183 => "arm64",
            3 => "x86",
            40 => "arm",
            243 => "riscv64",
            _ => $"ELF machine {machineCode}",
        };
        ushort type = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(16));
        string? incompatibility = NativeImage.HostMismatch(NativeImageFormat.Elf, machine, pointerSize);
        if (type != TypeShared)
        {
            return new NativeImage(file.Path, NativeImageFormat.Elf, pointerSize, machine,
                incompatibility ?? $"it is an ELF file of type {type}, not a shared library (ET_DYN = 3)", []);
        }
        var exports = new Layout(file, is64, header).ReadExports();
        return new NativeImage(file.Path, NativeImageFormat.Elf, pointerSize, machine, incompatibility, exports);
    }

    private sealed class Layout
    {
        private readonly FileWindow _file;
        private readonly bool _is64;
        private readonly List<(ulong VirtualAddress, ulong Offset, ulong FileSize)> _loads = [];
        private readonly List<(ulong Offset, ulong Size)> _dynamic = [];
        private readonly ulong _sectionOffset;
        private readonly int _sectionCount;
        private readonly int _sectionEntrySize;

        public Layout(FileWindow file, bool is64, byte[] header)
        {
            _file = file;
            _is64 = is64;
            var h = header.AsSpan();
            ulong phoff = is64 ? BinaryPrimitives.ReadUInt64LittleEndian(h[32..]) : BinaryPrimitives.ReadUInt32LittleEndian(h[28..]);
            _sectionOffset = is64 ? BinaryPrimitives.ReadUInt64LittleEndian(h[40..]) : BinaryPrimitives.ReadUInt32LittleEndian(h[32..]);
            int phentsize = BinaryPrimitives.ReadUInt16LittleEndian(h[(is64 ? 54 : 42)..]);
            int phnum = BinaryPrimitives.ReadUInt16LittleEndian(h[(is64 ? 56 : 44)..]);
            _sectionEntrySize = BinaryPrimitives.ReadUInt16LittleEndian(h[(is64 ? 58 : 46)..]);
            _sectionCount = BinaryPrimitives.ReadUInt16LittleEndian(h[(is64 ? 60 : 48)..]);

            int minimumPhent = is64 ? 56 : 32;
            if (phnum == 0)
                file.Fail("no program headers (e_phnum 0)", "a shared library's PT_LOAD segments");
            if (phentsize < minimumPhent)
                file.Fail($"e_phentsize {phentsize}", $"at least {minimumPhent}");
            var table = file.ReadTable("the program header table", phoff, (ulong)phnum * (ulong)phentsize, TableCap);
            for (int i = 0; i < phnum; i++)
            {
                var entry = table.AsSpan(i * phentsize, phentsize);
                uint ptype = BinaryPrimitives.ReadUInt32LittleEndian(entry);
                ulong offset = is64 ? BinaryPrimitives.ReadUInt64LittleEndian(entry[8..]) : BinaryPrimitives.ReadUInt32LittleEndian(entry[4..]);
                ulong vaddr = is64 ? BinaryPrimitives.ReadUInt64LittleEndian(entry[16..]) : BinaryPrimitives.ReadUInt32LittleEndian(entry[8..]);
                ulong filesz = is64 ? BinaryPrimitives.ReadUInt64LittleEndian(entry[32..]) : BinaryPrimitives.ReadUInt32LittleEndian(entry[16..]);
                if (ptype == PtLoad)
                {
                    // Only what the file really holds can be read; a segment claiming more is cut to the file.
                    ulong held = offset < (ulong)file.Length ? Math.Min(filesz, (ulong)file.Length - offset) : 0;
                    _loads.Add((vaddr, offset, held));
                }
                else if (ptype == PtDynamic)
                {
                    _dynamic.Add((offset, filesz));
                }
            }
        }

        public List<NativeExport> ReadExports()
        {
            var symbols = FindDynamicSymbols();
            if (symbols is null)
                return [];
            var (symtab, strtab, entrySize, count) = symbols.Value;
            var exports = new List<NativeExport>();
            var prefix = System.Text.Encoding.ASCII.GetBytes(NativeAbi.SymbolPrefix);
            for (int i = 1; i < count; i++)
            {
                var entry = symtab.AsSpan(i * entrySize, entrySize);
                uint nameOffset = BinaryPrimitives.ReadUInt32LittleEndian(entry);
                byte info = entry[_is64 ? 4 : 12];
                ushort sectionIndex = BinaryPrimitives.ReadUInt16LittleEndian(entry[(_is64 ? 6 : 14)..]);
                ulong value = _is64 ? BinaryPrimitives.ReadUInt64LittleEndian(entry[8..]) : BinaryPrimitives.ReadUInt32LittleEndian(entry[4..]);
                ulong size = _is64 ? BinaryPrimitives.ReadUInt64LittleEndian(entry[16..]) : BinaryPrimitives.ReadUInt32LittleEndian(entry[8..]);
                int binding = info >> 4;
                if (sectionIndex == 0 || binding is not (1 or 2))
                    continue; // undefined, or local: not an export
                if (nameOffset >= (uint)strtab.Length)
                    _file.Fail($"symbol {i}'s name at string offset {nameOffset}", $"an offset inside the {strtab.Length}-byte dynamic string table");
                var nameBytes = strtab.AsSpan((int)nameOffset);
                int end = nameBytes.IndexOf((byte)0);
                if (end < 0)
                    _file.Fail($"symbol {i}'s name without a terminating NUL", "NUL-terminated names in the dynamic string table");
                nameBytes = nameBytes[..end];
                if (!nameBytes.StartsWith(prefix))
                    continue;
                string name = System.Text.Encoding.UTF8.GetString(nameBytes);
                int symbolType = info & 0xf;
                if (symbolType != SttObject)
                {
                    string kind = symbolType == SttFunc ? "a function" : $"a symbol of type {symbolType}";
                    exports.Add(new NativeExport(name, [], size, $"{name} is {kind}; a descriptor is a data object (const ip_plugin_descriptor)"));
                    continue;
                }
                if (!TryMap(value, out ulong offset, out ulong available))
                {
                    exports.Add(new NativeExport(name, [], size, $"{name} at 0x{value:x} has no bytes in the file (not in a PT_LOAD segment's file data)"));
                    continue;
                }
                ulong take = Math.Min(available, NativeAbi.MaxDescriptorSize);
                var data = new byte[take];
                _file.Read(offset, data);
                exports.Add(new NativeExport(name, data, size, null));
            }
            return exports;
        }

        /// <summary>The dynamic symbol table, its string table, entry size and symbol count; null when the file has none.</summary>
        private (byte[] Symbols, byte[] Strings, int EntrySize, int Count)? FindDynamicSymbols()
        {
            int minimumEntry = _is64 ? 24 : 16;
            if (_sectionOffset != 0 && _sectionCount != 0)
            {
                int minimumSection = _is64 ? 64 : 40;
                if (_sectionEntrySize < minimumSection)
                    _file.Fail($"e_shentsize {_sectionEntrySize}", $"at least {minimumSection}");
                var sections = _file.ReadTable("the section header table", _sectionOffset, (ulong)_sectionCount * (ulong)_sectionEntrySize, TableCap);
                for (int i = 0; i < _sectionCount; i++)
                {
                    var section = sections.AsSpan(i * _sectionEntrySize, _sectionEntrySize);
                    if (BinaryPrimitives.ReadUInt32LittleEndian(section[4..]) != ShtDynsym)
                        continue;
                    var (offset, size, link, entrySize) = SectionFields(section);
                    if (link >= (uint)_sectionCount)
                        _file.Fail($"the .dynsym section's sh_link {link}", $"a section index below {_sectionCount}");
                    var (strOffset, strSize, _, _) = SectionFields(sections.AsSpan((int)link * _sectionEntrySize, _sectionEntrySize));
                    if (entrySize < (ulong)minimumEntry || entrySize > 1024)
                        _file.Fail($"the .dynsym entry size {entrySize}", $"{minimumEntry} to 1024");
                    var symbols = _file.ReadTable("the .dynsym section", offset, size, TableCap);
                    var strings = _file.ReadTable("the .dynstr section", strOffset, strSize, TableCap);
                    return (symbols, strings, (int)entrySize, (int)Math.Min(size / entrySize, (ulong)MaxSymbols));
                }
            }
            return FromDynamicSegment(minimumEntry);
        }

        private (ulong Offset, ulong Size, uint Link, ulong EntrySize) SectionFields(ReadOnlySpan<byte> section) => _is64
            ? (BinaryPrimitives.ReadUInt64LittleEndian(section[24..]), BinaryPrimitives.ReadUInt64LittleEndian(section[32..]),
               BinaryPrimitives.ReadUInt32LittleEndian(section[40..]), BinaryPrimitives.ReadUInt64LittleEndian(section[56..]))
            : (BinaryPrimitives.ReadUInt32LittleEndian(section[16..]), BinaryPrimitives.ReadUInt32LittleEndian(section[20..]),
               BinaryPrimitives.ReadUInt32LittleEndian(section[24..]), BinaryPrimitives.ReadUInt32LittleEndian(section[36..]));

        /// <summary>The symbol table as the dynamic loader finds it: DT_SYMTAB, DT_STRTAB, and a hash table for the count.</summary>
        private (byte[] Symbols, byte[] Strings, int EntrySize, int Count)? FromDynamicSegment(int minimumEntry)
        {
            if (_dynamic.Count == 0)
                return null;
            var (dynOffset, dynSize) = _dynamic[0];
            int dynEntry = _is64 ? 16 : 8;
            var dynamic = _file.ReadTable("the PT_DYNAMIC segment", dynOffset, dynSize - dynSize % (ulong)dynEntry, TableCap);
            ulong symtab = 0, strtab = 0, strsz = 0, syment = (ulong)minimumEntry, hash = 0, gnuHash = 0;
            for (int i = 0; i + dynEntry <= dynamic.Length; i += dynEntry)
            {
                long tag = _is64 ? BinaryPrimitives.ReadInt64LittleEndian(dynamic.AsSpan(i)) : BinaryPrimitives.ReadInt32LittleEndian(dynamic.AsSpan(i));
                ulong value = _is64 ? BinaryPrimitives.ReadUInt64LittleEndian(dynamic.AsSpan(i + 8)) : BinaryPrimitives.ReadUInt32LittleEndian(dynamic.AsSpan(i + 4));
                if (tag == DtNull)
                    break;
                switch (tag)
                {
                    case DtSymtab: symtab = value; break;
                    case DtStrtab: strtab = value; break;
                    case DtStrsz: strsz = value; break;
                    case DtSyment: syment = value; break;
                    case DtHash: hash = value; break;
                    case DtGnuHash: gnuHash = value; break;
                }
            }
            if (symtab == 0 || strtab == 0)
                return null;
            if (syment < (ulong)minimumEntry || syment > 1024)
                _file.Fail($"DT_SYMENT {syment}", $"{minimumEntry} to 1024");
            ulong count = hash != 0 ? CountFromHash(hash) : gnuHash != 0 ? CountFromGnuHash(gnuHash) : 0;
            if (count == 0)
                return null;
            if (count > MaxSymbols)
                _file.Fail($"{count} dynamic symbols", $"at most {MaxSymbols}");
            bool mapped = TryMap(symtab, out ulong symOffset, out _);
            mapped &= TryMap(strtab, out ulong strOffset, out _);
            if (!mapped)
                _file.Fail($"DT_SYMTAB 0x{symtab:x} or DT_STRTAB 0x{strtab:x}", "addresses inside a PT_LOAD segment");
            var symbols = _file.ReadTable("the dynamic symbol table", symOffset, count * syment, TableCap);
            var strings = _file.ReadTable("the dynamic string table", strOffset, strsz, TableCap);
            return (symbols, strings, (int)syment, (int)count);
        }

        private ulong CountFromHash(ulong address)
        {
            Span<byte> words = stackalloc byte[8];
            if (!TryMap(address, out ulong offset, out _))
                _file.Fail($"DT_HASH 0x{address:x}", "an address inside a PT_LOAD segment");
            _file.Read(offset, words);
            return BinaryPrimitives.ReadUInt32LittleEndian(words[4..]); // nchain: one chain entry per symbol
        }

        /// <summary>GNU hash tables do not store the count: it is one past the last symbol of the longest-reaching chain.</summary>
        private ulong CountFromGnuHash(ulong address)
        {
            Span<byte> header = stackalloc byte[16];
            if (!TryMap(address, out ulong offset, out ulong available))
                _file.Fail($"DT_GNU_HASH 0x{address:x}", "an address inside a PT_LOAD segment");
            _file.Read(offset, header);
            uint buckets = BinaryPrimitives.ReadUInt32LittleEndian(header);
            uint symbolOffset = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
            uint bloomWords = BinaryPrimitives.ReadUInt32LittleEndian(header[8..]);
            if (buckets == 0 || buckets > MaxSymbols || bloomWords > MaxSymbols)
                _file.Fail($"a GNU hash table of {buckets} buckets and {bloomWords} bloom words", $"1 to {MaxSymbols} of each");
            ulong bucketsAt = 16 + (ulong)bloomWords * (ulong)(_is64 ? 8 : 4);
            var bucketBytes = _file.ReadTable("the GNU hash buckets", offset + bucketsAt, (ulong)buckets * 4, TableCap);
            uint last = 0;
            for (int i = 0; i < bucketBytes.Length; i += 4)
                last = Math.Max(last, BinaryPrimitives.ReadUInt32LittleEndian(bucketBytes.AsSpan(i)));
            if (last == 0)
                return symbolOffset;
            if (last < symbolOffset)
                _file.Fail($"a GNU hash bucket naming symbol {last}", $"symbols from {symbolOffset} on");
            ulong chainsAt = offset + bucketsAt + (ulong)buckets * 4;
            Span<byte> word = stackalloc byte[4];
            // Walk the last chain to its end (bit 0 set); bounded by the symbol cap and by the mapped segment.
            for (ulong index = last; index < MaxSymbols; index++)
            {
                ulong at = chainsAt + (index - symbolOffset) * 4;
                if (at - offset + 4 > available)
                    break;
                _file.Read(at, word);
                if ((BinaryPrimitives.ReadUInt32LittleEndian(word) & 1) != 0)
                    return index + 1;
            }
            _file.Fail($"a GNU hash chain from symbol {last} without an end", "a chain ending within the table");
            return 0;
        }

        /// <summary>The file offset of a virtual address, and how many file bytes follow it in its segment.</summary>
        private bool TryMap(ulong address, out ulong offset, out ulong available)
        {
            foreach (var (vaddr, fileOffset, fileSize) in _loads)
            {
                ulong delta = address - vaddr; // wraps for an address below the segment: then it is >= fileSize
                if (address >= vaddr && delta < fileSize)
                {
                    offset = fileOffset + delta;
                    available = fileSize - delta;
                    return true;
                }
            }
            offset = 0;
            available = 0;
            return false;
        }
    }
}

/// <summary>PE exports: the export directory's names, ordinals and addresses.</summary>
internal static class PeReader
{
    private const ulong TableCap = 16UL << 20;
    private const uint MaxNames = 1 << 20;

    public static NativeImage Read(FileWindow file)
    {
        Span<byte> dos = stackalloc byte[64];
        if (file.Length < 64)
            file.Fail($"a PE file of {file.Length} bytes", "at least the 64-byte DOS header");
        file.Read(0, dos);
        uint peOffset = BinaryPrimitives.ReadUInt32LittleEndian(dos[0x3c..]);
        Span<byte> coff = stackalloc byte[24];
        if (!file.Contains(peOffset, 24))
            file.Fail($"e_lfanew 0x{peOffset:x}", "the offset of the PE signature inside the file");
        file.Read(peOffset, coff);
        if (!coff[..4].SequenceEqual("PE\0\0"u8))
            file.Fail($"no PE signature at e_lfanew 0x{peOffset:x}", "'PE\\0\\0'");
        ushort machineCode = BinaryPrimitives.ReadUInt16LittleEndian(coff[4..]);
        int sectionCount = BinaryPrimitives.ReadUInt16LittleEndian(coff[6..]);
        int optionalSize = BinaryPrimitives.ReadUInt16LittleEndian(coff[20..]);
        if (optionalSize < 2)
            file.Fail($"SizeOfOptionalHeader {optionalSize}", "an optional header (a DLL has one)");
        var optional = file.ReadTable("the optional header", peOffset + 24UL, (ulong)optionalSize, 4096);
        ushort magic = BinaryPrimitives.ReadUInt16LittleEndian(optional);
        if (magic is not (0x10b or 0x20b))
            file.Fail($"optional header magic 0x{magic:x}", "0x10b (PE32) or 0x20b (PE32+)");
        bool plus = magic == 0x20b;
        int pointerSize = plus ? 8 : 4;
        string machine = machineCode switch
        {
            0x8664 => "x64",
            0xaa64 => "arm64",
            0x14c => "x86",
            0x1c4 => "arm",
            _ => $"PE machine 0x{machineCode:x}",
        };
        string? incompatibility = NativeImage.HostMismatch(NativeImageFormat.Pe, machine, pointerSize);

        int directoryCountAt = plus ? 108 : 92;
        int directoriesAt = directoryCountAt + 4;
        uint directoryCount = optional.Length >= directoriesAt ? BinaryPrimitives.ReadUInt32LittleEndian(optional.AsSpan(directoryCountAt)) : 0;
        if (directoryCount == 0 || optional.Length < directoriesAt + 8)
            return new NativeImage(file.Path, NativeImageFormat.Pe, pointerSize, machine, incompatibility, []);
        uint exportRva = BinaryPrimitives.ReadUInt32LittleEndian(optional.AsSpan(directoriesAt));
        uint exportSize = BinaryPrimitives.ReadUInt32LittleEndian(optional.AsSpan(directoriesAt + 4));

        var sectionTable = file.ReadTable("the section table", peOffset + 24UL + (ulong)optionalSize, (ulong)sectionCount * 40, TableCap);
        var sections = new List<(uint VirtualAddress, uint RawSize, uint RawOffset)>(sectionCount);
        for (int i = 0; i < sectionCount; i++)
        {
            var s = sectionTable.AsSpan(i * 40, 40);
            sections.Add((BinaryPrimitives.ReadUInt32LittleEndian(s[12..]), BinaryPrimitives.ReadUInt32LittleEndian(s[16..]), BinaryPrimitives.ReadUInt32LittleEndian(s[20..])));
        }
        if (exportRva == 0)
            return new NativeImage(file.Path, NativeImageFormat.Pe, pointerSize, machine, incompatibility, []);

        bool Map(uint rva, out ulong offset, out ulong available)
        {
            foreach (var (va, rawSize, rawOffset) in sections)
            {
                uint delta = rva - va; // wraps below the section
                if (rva >= va && delta < rawSize)
                {
                    offset = (ulong)rawOffset + delta;
                    available = Math.Min(rawSize - delta, file.Length > (long)offset ? (ulong)file.Length - offset : 0);
                    return true;
                }
            }
            offset = available = 0;
            return false;
        }

        if (!Map(exportRva, out ulong directoryOffset, out _))
            file.Fail($"the export directory at RVA 0x{exportRva:x}", "an RVA inside a section's file data");
        Span<byte> directory = stackalloc byte[40];
        file.Read(directoryOffset, directory);
        uint functionCount = BinaryPrimitives.ReadUInt32LittleEndian(directory[20..]);
        uint nameCount = BinaryPrimitives.ReadUInt32LittleEndian(directory[24..]);
        uint functionsRva = BinaryPrimitives.ReadUInt32LittleEndian(directory[28..]);
        uint namesRva = BinaryPrimitives.ReadUInt32LittleEndian(directory[32..]);
        uint ordinalsRva = BinaryPrimitives.ReadUInt32LittleEndian(directory[36..]);
        if (nameCount > MaxNames || functionCount > MaxNames)
            file.Fail($"an export directory of {functionCount} functions and {nameCount} names", $"at most {MaxNames} of each");
        if (nameCount == 0)
            return new NativeImage(file.Path, NativeImageFormat.Pe, pointerSize, machine, incompatibility, []);
        bool mapped = Map(namesRva, out ulong namesOffset, out _);
        mapped &= Map(ordinalsRva, out ulong ordinalsOffset, out _);
        mapped &= Map(functionsRva, out ulong functionsOffset, out _);
        if (!mapped)
            file.Fail("the export name, ordinal or address table", "RVAs inside a section's file data");
        var names = file.ReadTable("the export name table", namesOffset, (ulong)nameCount * 4, TableCap);
        var ordinals = file.ReadTable("the export ordinal table", ordinalsOffset, (ulong)nameCount * 2, TableCap);
        var functions = file.ReadTable("the export address table", functionsOffset, (ulong)functionCount * 4, TableCap);

        var exports = new List<NativeExport>();
        var prefix = System.Text.Encoding.ASCII.GetBytes(NativeAbi.SymbolPrefix);
        Span<byte> nameBuffer = stackalloc byte[256];
        for (int i = 0; i < nameCount; i++)
        {
            uint nameRva = BinaryPrimitives.ReadUInt32LittleEndian(names.AsSpan(i * 4));
            if (!Map(nameRva, out ulong nameOffset, out ulong nameAvailable))
                file.Fail($"export name {i} at RVA 0x{nameRva:x}", "an RVA inside a section's file data");
            var name = nameBuffer[..(int)Math.Min((ulong)nameBuffer.Length, nameAvailable)];
            file.Read(nameOffset, name);
            int end = name.IndexOf((byte)0);
            if (end < 0)
                continue; // longer than any descriptor name: not ours
            name = name[..end];
            if (!name.StartsWith(prefix))
                continue;
            string symbol = System.Text.Encoding.UTF8.GetString(name);
            ushort ordinal = BinaryPrimitives.ReadUInt16LittleEndian(ordinals.AsSpan(i * 2));
            if (ordinal >= functionCount)
                file.Fail($"export '{symbol}' with ordinal index {ordinal}", $"an index below NumberOfFunctions {functionCount}");
            uint rva = BinaryPrimitives.ReadUInt32LittleEndian(functions.AsSpan(ordinal * 4));
            if (rva - exportRva < exportSize)
            {
                exports.Add(new NativeExport(symbol, [], null, $"{symbol} is forwarded to another DLL; a descriptor must be defined in the plugin itself"));
                continue;
            }
            if (!Map(rva, out ulong dataOffset, out ulong available))
            {
                exports.Add(new NativeExport(symbol, [], null, $"{symbol} at RVA 0x{rva:x} has no bytes in the file"));
                continue;
            }
            var data = new byte[Math.Min(available, NativeAbi.MaxDescriptorSize)];
            file.Read(dataOffset, data);
            exports.Add(new NativeExport(symbol, data, null, null));
        }
        return new NativeImage(file.Path, NativeImageFormat.Pe, pointerSize, machine, incompatibility, exports);
    }
}
