using System.Globalization;
using Introspect.Abi;
using Introspect.Connectors.Coredump;
using Introspect.TestSupport;
using Moq;

namespace Introspect.Os.Linux.Tests;

/// <summary>Opening dumps and the Linux layer over them the way a chain does, with the layer's log kept for checks.</summary>
internal static class LinuxSupport
{
    public static IPhysicalMemory OpenDump(string path) =>
        new CoredumpConnectorFactory().Create(new PluginArguments("coredump", new Dictionary<string, string> { ["path"] = path }), Mock.Of<IPluginContext>());

    /// <summary>Opens the layer over <paramref name="memory"/>; <paramref name="log"/> receives every message it logs.</summary>
    public static IOperatingSystem OpenLinux(IPhysicalMemory memory, out List<string> log, params (string Key, string Value)[] arguments)
    {
        var context = new RecordingPluginContext();
        log = context.Messages;
        var values = arguments.ToDictionary(a => a.Key, a => a.Value);
        return new LinuxOsFactory().Create(memory, new PluginArguments("linux", values), context);
    }

    public static IOperatingSystem OpenLinux(IPhysicalMemory memory) => OpenLinux(memory, out _);

    public static string Hex(ulong value) => value.ToString("x", CultureInfo.InvariantCulture);

    public static ulong ParseHex(string text) => ulong.Parse(text.StartsWith("0x", StringComparison.Ordinal) ? text[2..] : text, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);

    /// <summary>The line <c>/proc/PID/maps</c> would print for an area, without the device and inode columns.</summary>
    public static string MapsLine(MemoryArea area) =>
        $"{area.Start:x8}-{area.End:x8} {area.Permissions} {area.Offset:x8} {area.Path}".TrimEnd();

    /// <summary>A <c>/proc/PID/maps</c> line without the device and inode columns, as <see cref="MapsLine"/> writes it.</summary>
    public static string MapsLineWithoutDevice(string line)
    {
        var parts = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
        var path = parts.Length > 5 ? parts[5].Trim() : "";
        return $"{parts[0]} {parts[1]} {parts[2]} {path}".TrimEnd();
    }

    /// <summary>The args column of busybox <c>ps</c>: <c>[comm]</c> without a command line, <c>{comm} args</c> when argv[0]'s
    /// base name does not start with comm, else the arguments.</summary>
    public static string BusyboxArgs(ProcessInfo process)
    {
        string comm = BusyboxComm(process.Name);
        if (process.Arguments is not { Count: > 0 } arguments)
            return $"[{comm}]";
        string line = string.Join(' ', arguments);
        string first = arguments[0];
        string baseName = first[(first.LastIndexOf('/') + 1)..];
        return baseName.StartsWith(comm, StringComparison.Ordinal) ? line : $"{{{comm}}} {line}";
    }

    /// <summary>busybox prints at most 15 characters of a name (its <c>comm</c> buffer).</summary>
    public static string BusyboxComm(string name) => name.Length > 15 ? name[..15] : name;

    /// <summary>A workqueue worker's name without the description it takes from the work it ran last, which
    /// changes from one moment to the next (the guest printed its ps a moment before the dump).</summary>
    public static string StableName(string name)
    {
        if (!name.StartsWith("kworker/", StringComparison.Ordinal))
            return name;
        int cut = name.IndexOfAny(['+', '-'], "kworker/".Length);
        return cut < 0 ? name : name[..cut];
    }

    public static string SharedData(params string[] path) => TestInputs.TestData(["linux", .. path]);
}
