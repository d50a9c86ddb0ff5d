using Introspect.Abi;
using Introspect.Connectors.Coredump.Formats;
using Introspect.Connectors.Coredump.IO;
using Introspect.Connectors.Coredump.Kdump;

namespace Introspect.Connectors.Coredump;

/// <summary>Opens a dump file in the format its magic names, or the format the caller forces.</summary>
internal static class DumpOpener
{
    /// <exception cref="InvalidDataException">The file is malformed for its format, or does not carry the forced format's magic.</exception>
    /// <exception cref="NotSupportedException">The dump needs a decompression library this machine lacks.</exception>
    public static DumpMemory Open(string path, DumpFormat format, OpenContext context)
    {
        var file = MappedFile.Open(path);
        try
        {
            var detected = FormatDetector.Detect(file);
            if (format == DumpFormat.Auto)
                format = detected;
            else if (format != DumpFormat.Raw && format != detected)
                ThrowHelper.ThrowInvalid(path, $"format={FormatDetector.Name(format)} was asked for, but the file's first bytes are not that format's magic (they look like {FormatDetector.Name(detected)}).");
            context.Log(PluginLogLevel.Debug, $"reading as {FormatDetector.Name(format)}");
            return format switch
            {
                DumpFormat.Elf => ElfCore.Open(file, context),
                DumpFormat.Lime => Lime.Open(file, context),
                DumpFormat.CrashDump => CrashDump.Open(file, context),
                DumpFormat.Kdump => KdumpMemory.Open(file, context),
                _ => new FileBackedMemory(file, MemoryMap.Linear(file.Length), new ConnectorHints { Format = "raw" }),
            };
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }
}
