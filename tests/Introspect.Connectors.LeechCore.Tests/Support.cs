using Introspect.Abi;
using Introspect.TestSupport;
using Moq;

namespace Introspect.Connectors.LeechCore.Tests;

/// <summary>A test that talks to the test library: it starts from a clean library and must leave no broken rule,
/// nothing the library allocated unfreed, and no device open.</summary>
public abstract class LeechCoreTest
{
    private int _allocationsBefore;
    private int _devicesBefore;

    [SetUp]
    public void ResetLibrary()
    {
        FakeLeechCore.Reset();
        _allocationsBefore = FakeLeechCore.OutstandingAllocations;
        _devicesBefore = FakeLeechCore.OpenDevices;
    }

    [TearDown]
    public void LibraryRulesWereKept()
    {
        // A failed test may leave a memory undisposed; its own failure says more than these would.
        if (TestContext.CurrentContext.Result.Outcome.Status == NUnit.Framework.Interfaces.TestStatus.Failed)
            return;
        Assert.Multiple(() =>
        {
            Assert.That(FakeLeechCore.Violations, Is.Zero, () => "the connector broke LeechCore's ABI rules:\n" + FakeLeechCore.Log);
            Assert.That(FakeLeechCore.OutstandingAllocations, Is.EqualTo(_allocationsBefore), () => "memory LeechCore allocated was not given back with LcMemFree:\n" + FakeLeechCore.Log);
            Assert.That(FakeLeechCore.OpenDevices, Is.EqualTo(_devicesBefore), "a LeechCore handle was left open");
        });
    }
}

/// <summary>Opening the connectors through their own entry points against the test library, and reading back.</summary>
internal static class Support
{
    public const int PageSize = 4096;

    private static readonly Lazy<byte[]> RawImageBytes = new(() => File.ReadAllBytes(TestInputs.LinuxRawImage));

    /// <summary>The shared Debian guest's 128 MiB of RAM (physical address = index).</summary>
    public static byte[] RawImage => RawImageBytes.Value;

    /// <summary>The raw image as LeechCore's file device names it.</summary>
    public static string RawDevice => "file://file=" + TestInputs.LinuxRawImage;

    public static IPhysicalMemory OpenLeechCore(string device, params (string Key, string Value)[] more) =>
        OpenLeechCore(device, Mock.Of<IPluginContext>(), more);

    public static IPhysicalMemory OpenLeechCore(string device, IPluginContext context, params (string Key, string Value)[] more)
    {
        var values = new Dictionary<string, string> { ["device"] = device, ["library"] = FakeLeechCore.LibraryPath };
        foreach (var (key, value) in more)
            values[key] = value;
        return new LeechCoreConnectorFactory().Create(new PluginArguments("leechcore", values), context);
    }

    public static ConnectorHints HintsOf(IPhysicalMemory memory)
    {
        Assert.That(memory, Is.InstanceOf<IConnectorHints>());
        return ((IConnectorHints)memory).Hints;
    }

    /// <summary>Reads one range; null when the read failed.</summary>
    public static byte[]? Read(IMemory memory, ulong address, int length, MemoryFlags flags = MemoryFlags.None)
    {
        var buffer = new byte[length];
        var batch = new[] { new MemoryRequest(address, buffer) };
        memory.Read(batch, flags);
        return batch[0].Succeeded ? buffer : null;
    }

    public static byte[] Expected(ulong address, int length) => RawImage.AsSpan(checked((int)address), length).ToArray();
}

/// <summary>A folder for files a test writes, removed afterwards.</summary>
internal sealed class TempFolder : IDisposable
{
    public TempFolder() => Path = Directory.CreateTempSubdirectory("introspect-leechcore-tests-").FullName;

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public string Write(string name, byte[] bytes)
    {
        string path = File(name);
        System.IO.File.WriteAllBytes(path, bytes);
        return path;
    }

    public string WriteText(string name, string text)
    {
        string path = File(name);
        System.IO.File.WriteAllText(path, text);
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
