using Introspect.Abi;
using Introspect.TestSupport;
using Moq;

namespace Introspect.Connectors.Coredump.Tests;

/// <summary>Opening dumps through the plugin's own entry point, and reading them back.</summary>
internal static class Support
{
    public const int PageSize = 4096;

    private static readonly Lazy<byte[]> RawImageBytes = new(() => File.ReadAllBytes(TestInputs.LinuxRawImage));

    /// <summary>The shared Debian guest's 128 MiB of RAM (physical address = index).</summary>
    public static byte[] RawImage => RawImageBytes.Value;

    public static ReadOnlySpan<byte> RawPage(ulong pfn) => RawImage.AsSpan(checked((int)(pfn * PageSize)), PageSize);

    public static bool IsZero(ReadOnlySpan<byte> bytes) => bytes.IndexOfAnyExcept((byte)0) < 0;

    public static IPhysicalMemory Open(string path, string? format = null, bool? allowTruncated = null, IPluginContext? context = null)
    {
        var values = new Dictionary<string, string> { ["path"] = path };
        if (format is not null)
            values["format"] = format;
        if (allowTruncated is not null)
            values["allow-truncated"] = allowTruncated.Value ? "on" : "off";
        return new CoredumpConnectorFactory().Create(new PluginArguments("coredump", values), context ?? Mock.Of<IPluginContext>());
    }

    public static ConnectorHints HintsOf(IPhysicalMemory memory)
    {
        Assert.That(memory, Is.InstanceOf<IConnectorHints>());
        return ((IConnectorHints)memory).Hints;
    }

    /// <summary>Reads one range; null when the read failed.</summary>
    public static byte[]? Read(IPhysicalMemory memory, ulong address, int length, MemoryFlags flags = MemoryFlags.None)
    {
        var buffer = new byte[length];
        var batch = new[] { new MemoryRequest(address, buffer) };
        memory.Read(batch, flags);
        return batch[0].Succeeded ? buffer : null;
    }

    /// <summary>Every page of <paramref name="memory"/>'s map, in batches; calls <paramref name="check"/> with (address, bytes) or null for a failed page. The buffers are reused: copy what is kept.</summary>
    public static void ForEachMappedPage(IPhysicalMemory memory, Action<ulong, byte[]?> check, MemoryFlags flags = MemoryFlags.None, int batchSize = 256)
    {
        var addresses = new List<ulong>();
        foreach (var range in memory.MemoryMap)
        {
            for (ulong offset = 0; offset < range.Size; offset += PageSize)
                addresses.Add(range.Base + offset);
        }
        ForEachPage(memory, addresses, check, flags, batchSize);
    }

    public static void ForEachPage(IPhysicalMemory memory, IReadOnlyList<ulong> addresses, Action<ulong, byte[]?> check, MemoryFlags flags = MemoryFlags.None, int batchSize = 256)
    {
        var buffers = new byte[batchSize][];
        for (int i = 0; i < batchSize; i++)
            buffers[i] = new byte[PageSize];
        var batch = new MemoryRequest[batchSize];
        for (int start = 0; start < addresses.Count; start += batchSize)
        {
            int count = Math.Min(batchSize, addresses.Count - start);
            for (int i = 0; i < count; i++)
                batch[i] = new MemoryRequest(addresses[start + i], buffers[i]);
            memory.Read(batch.AsSpan(0, count), flags);
            for (int i = 0; i < count; i++)
                check(batch[i].Address, batch[i].Succeeded ? buffers[i] : null);
        }
    }

    /// <summary>The pages of the raw image that are not all zeros, below <paramref name="limitPfn"/>.</summary>
    public static IEnumerable<ulong> NonZeroPages(ulong firstPfn, ulong limitPfn)
    {
        for (ulong pfn = firstPfn; pfn < limitPfn; pfn++)
        {
            if (!IsZero(RawPage(pfn)))
                yield return pfn;
        }
    }
}

/// <summary>A folder for the dumps a test builds, removed afterwards.</summary>
internal sealed class TempFolder : IDisposable
{
    public TempFolder()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "introspect-coredump-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public string Write(string name, byte[] bytes)
    {
        string path = File(name);
        System.IO.File.WriteAllBytes(path, bytes);
        return path;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // A mapping still open elsewhere keeps a file busy on some systems; the folder is in the temp area.
        }
    }
}

/// <summary>Reads QEMU's <c>info registers</c> text: <c>NAME=hex</c> pairs, and segment lines whose base becomes the segment's value.</summary>
internal static partial class Registers
{
    public static Dictionary<string, ulong> Parse(string text)
    {
        var values = new Dictionary<string, ulong>();
        foreach (System.Text.RegularExpressions.Match match in Pair().Matches(text))
            values.TryAdd(match.Groups[1].Value, ulong.Parse(match.Groups[2].Value, System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture));
        foreach (System.Text.RegularExpressions.Match match in Segment().Matches(text))
            values.TryAdd(match.Groups[1].Value, ulong.Parse(match.Groups[2].Value, System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture));
        return values;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"\b(R[A-Z0-9]+|CR[0-4]|EFER)=([0-9a-fA-F]+)")]
    private static partial System.Text.RegularExpressions.Regex Pair();

    // "GS =0000 ffff8d33c7800000 00000000 00000000": selector, then base.
    [System.Text.RegularExpressions.GeneratedRegex(@"^([CDEFGS]S) =[0-9a-fA-F]{4} ([0-9a-fA-F]+)", System.Text.RegularExpressions.RegexOptions.Multiline)]
    private static partial System.Text.RegularExpressions.Regex Segment();
}
