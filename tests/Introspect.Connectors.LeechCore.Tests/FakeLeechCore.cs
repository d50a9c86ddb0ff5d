using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Introspect.Connectors.LeechCore.Tests;

/// <summary>Builds the test library before the first test of this namespace, and removes its folder after the last.</summary>
[SetUpFixture]
public sealed class FakeLeechCoreLifetime
{
    [OneTimeSetUp]
    public void BuildLibrary() => _ = FakeLeechCore.LibraryPath;

    // The process keeps the loaded library mapped; on Linux its file can go.
    [OneTimeTearDown]
    public void RemoveLibrary() => FakeLeechCore.RemoveFolder();
}

/// <summary>
/// The test library: <c>native/fakeleechcore.c</c>, compiled with gcc once per test run into a temporary folder as
/// <c>leechcore.so</c>, and the <c>fakelc_*</c> exports the tests set it up and inspect it with.
/// </summary>
/// <remarks>
/// The connector loads the same file by path, so it and the tests share the library's state. The library counts
/// every broken ABI rule as a violation; <see cref="LeechCoreTest"/> requires none after each test.
/// </remarks>
internal static unsafe class FakeLeechCore
{
    private static readonly Lazy<string> BuiltPath = new(Build, LazyThreadSafetyMode.ExecutionAndPublication);
    private static nint s_module;

    /// <summary>The built <c>leechcore.so</c>.</summary>
    public static string LibraryPath => BuiltPath.Value;

    /// <summary>The folder holding it (and nothing else).</summary>
    public static string Folder => Path.GetDirectoryName(LibraryPath)!;

    private static string Build()
    {
        string source = Path.Combine(AppContext.BaseDirectory, "native", "fakeleechcore.c");
        Assert.That(File.Exists(source), Is.True, $"the test library's source {source} was not copied beside the tests");
        string folder = Directory.CreateTempSubdirectory("introspect-fakeleechcore-").FullName;
        string output = Path.Combine(folder, "leechcore.so");
        var gcc = new ProcessStartInfo("gcc", ["-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o", output, source, "-lpthread"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        Process process;
        try
        {
            process = Process.Start(gcc)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            Assert.Fail($"gcc is needed to build the test library ({e.Message}): apt-get install gcc");
            throw;
        }
        using (process)
        {
            string errors = process.StandardError.ReadToEnd();
            process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            Assert.That(process.ExitCode, Is.Zero, $"gcc failed to build the test library:\n{errors}");
        }
        s_module = NativeLibrary.Load(output);
        return output;
    }

    public static void RemoveFolder()
    {
        if (BuiltPath.IsValueCreated)
            Directory.Delete(Folder, recursive: true);
    }

    private static nint Module
    {
        get
        {
            _ = LibraryPath;
            return s_module;
        }
    }

    private static nint Export(string name) => NativeLibrary.GetExport(Module, name);

    public static void Reset() => ((delegate* unmanaged<void>)Export("fakelc_reset"))();

    public static int Violations => (int)((delegate* unmanaged<uint>)Export("fakelc_violations"))();

    public static string Log
    {
        get
        {
            var log = (delegate* unmanaged<byte*, nuint, nuint>)Export("fakelc_log");
            var buffer = new byte[1 << 16];
            fixed (byte* b = buffer)
                log(b, (nuint)buffer.Length);
            int end = Array.IndexOf(buffer, (byte)0);
            return Encoding.UTF8.GetString(buffer, 0, end < 0 ? buffer.Length : end);
        }
    }

    public static int OutstandingAllocations => ((delegate* unmanaged<int>)Export("fakelc_outstanding_allocations"))();

    public static int OpenDevices => ((delegate* unmanaged<int>)Export("fakelc_open_devices"))();

    public static Stats GetStats()
    {
        var values = new ulong[9];
        fixed (ulong* v = values)
            ((delegate* unmanaged<ulong*, int, void>)Export("fakelc_stats"))(v, values.Length);
        return new Stats(values[0], values[1], values[2], values[3], values[4], values[5], values[6], values[7], values[8]);
    }

    /// <summary>What the last <c>LcCreateEx</c> was given.</summary>
    public static LastCreate GetLastCreate()
    {
        var device = new byte[260];
        var remote = new byte[260];
        uint verbosity;
        ulong paMax;
        fixed (byte* d = device)
        fixed (byte* r = remote)
            ((delegate* unmanaged<byte*, byte*, uint*, ulong*, void>)Export("fakelc_last_create"))(d, r, &verbosity, &paMax);
        return new LastCreate(CString(device), CString(remote), verbosity, paMax);
    }

    /// <summary>The memory map the next device opens with, in LeechCore's text form.</summary>
    public static void SetMemoryMap(string text) => CallWithString("fakelc_set_memmap", text);

    /// <summary>What the next device answers for an <c>LcGetOption</c> option.</summary>
    public static void SetOption(ulong option, ulong value) => ((delegate* unmanaged<ulong, ulong, void>)Export("fakelc_set_option"))(option, value);

    /// <summary>Reads and writes of the page holding <paramref name="address"/> fail.</summary>
    public static void FailPage(ulong address) => ((delegate* unmanaged<ulong, void>)Export("fakelc_fail_page"))(address);

    /// <summary>The running VMs <c>hvmm://listvm</c> lists, one name a line.</summary>
    public static void SetVmList(string names) => CallWithString("fakelc_set_vm_list", names);

    /// <summary>Serves the exact device string <paramref name="device"/> from <paramref name="file"/>.</summary>
    public static void Alias(string device, string file)
    {
        var d = Encoding.UTF8.GetBytes(device + "\0");
        var f = Encoding.UTF8.GetBytes(file + "\0");
        fixed (byte* dp = d)
        fixed (byte* fp = f)
            ((delegate* unmanaged<byte*, byte*, void>)Export("fakelc_alias"))(dp, fp);
    }

    private static void CallWithString(string export, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text + "\0");
        fixed (byte* b = bytes)
            ((delegate* unmanaged<byte*, void>)Export(export))(b);
    }

    private static string CString(byte[] bytes)
    {
        int end = Array.IndexOf(bytes, (byte)0);
        return Encoding.UTF8.GetString(bytes, 0, end < 0 ? bytes.Length : end);
    }

    /// <param name="ReadScatterCalls">LcReadScatter calls.</param>
    /// <param name="LargestRead">The most entries one LcReadScatter was given.</param>
    /// <param name="EntriesRead">Entries given to LcReadScatter in all.</param>
    /// <param name="WriteScatterCalls">LcWriteScatter calls.</param>
    /// <param name="LargestWrite">The most entries one LcWriteScatter was given.</param>
    /// <param name="ReadCalls">LcRead calls.</param>
    /// <param name="WriteCalls">LcWrite calls.</param>
    /// <param name="CreateCalls">LcCreateEx calls.</param>
    /// <param name="CommandCalls">LcCommand calls.</param>
    public readonly record struct Stats(ulong ReadScatterCalls, ulong LargestRead, ulong EntriesRead, ulong WriteScatterCalls, ulong LargestWrite,
        ulong ReadCalls, ulong WriteCalls, ulong CreateCalls, ulong CommandCalls);

    public readonly record struct LastCreate(string Device, string Remote, uint Verbosity, ulong PaMax);
}
