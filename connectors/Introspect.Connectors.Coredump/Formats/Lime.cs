using System.Buffers.Binary;
using System.Globalization;
using Introspect.Abi;
using Introspect.Connectors.Coredump.IO;

namespace Introspect.Connectors.Coredump.Formats;

/// <summary>LiME dumps: ranges back to back, each after a 32-byte header (magic, version 1, first and last address, 8 reserved bytes).</summary>
internal static class Lime
{
    private const int HeaderSize = 32;

    public static FileBackedMemory Open(MappedFile file, OpenContext context) =>
        new(file, Parse(file, context), new ConnectorHints { Format = "lime" });

    public static MemoryMap Parse(MappedFile file, OpenContext context)
    {
        string name = file.Name;
        var ranges = new List<MemoryRange>();
        Span<byte> header = stackalloc byte[HeaderSize];
        ulong position = 0;
        while (position < file.Length)
        {
            file.ReadExact(position, header, string.Create(CultureInfo.InvariantCulture, $"the LiME range header #{ranges.Count}"));
            uint magic = BinaryPrimitives.ReadUInt32LittleEndian(header);
            uint version = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
            ulong first = BinaryPrimitives.ReadUInt64LittleEndian(header[8..]);
            ulong last = BinaryPrimitives.ReadUInt64LittleEndian(header[16..]);
            string where = string.Create(CultureInfo.InvariantCulture, $"LiME range header #{ranges.Count} at offset 0x{position:x}");
            if (magic != FormatDetector.LimeMagic)
                ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture, $"{where}: magic is 0x{magic:x8}; expected 0x{FormatDetector.LimeMagic:x8}."));
            if (version != 1)
                ThrowHelper.ThrowInvalid(name, $"{where}: version is {version}; expected 1.");
            if (last < first || last - first == ulong.MaxValue)
                ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture, $"{where}: the range 0x{first:x}-0x{last:x} is empty or spans the whole address space; expected start <= end."));
            ulong size = last - first + 1;
            ulong data = position + HeaderSize;
            if (!file.Contains(data, size))
            {
                if (!context.AllowTruncated)
                {
                    ThrowHelper.ThrowInvalid(name, string.Create(CultureInfo.InvariantCulture,
                        $"{where}: the range 0x{first:x}-0x{last:x} needs 0x{size:x} bytes at offset 0x{data:x}, past the end of the file (0x{file.Length:x} bytes); the file is truncated (allow-truncated=on serves what it holds)."));
                }
                ulong held = file.Length - data;
                context.Log(PluginLogLevel.Warning, string.Create(CultureInfo.InvariantCulture,
                    $"{where}: only 0x{held:x} of 0x{size:x} bytes are in the file; the rest fails to read."));
                if (held > 0)
                    ranges.Add(new MemoryRange(first, held, data));
                break;
            }
            ranges.Add(new MemoryRange(first, size, data));
            position = data + size;
        }
        try
        {
            return new MemoryMap(ranges);
        }
        catch (ArgumentException e)
        {
            return ThrowHelper.ThrowInvalid<MemoryMap>(name, $"the LiME ranges are inconsistent: {e.Message}");
        }
    }
}
