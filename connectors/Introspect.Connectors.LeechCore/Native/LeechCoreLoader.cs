using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;
using Introspect.Abi;

namespace Introspect.Connectors.LeechCore.Native;

/// <summary>Finds and loads LeechCore: a chain's <c>library</c> argument, <c>LEECHCORE_PATH</c>, beside the plugin, the system's search.</summary>
/// <remarks>
/// A place the user named (the argument, the variable) is the only place looked at: if it holds no loadable
/// LeechCore that is the error, rather than quietly loading another build from elsewhere. Without one, the folder
/// of the plugin comes first, then the system's library search (<c>LD_LIBRARY_PATH</c> and the linker's
/// folders on Linux, the DLL search order on Windows). The file is <c>leechcore.so</c> on Linux (LeechCore's
/// makefile builds it without a <c>lib</c> prefix), <c>leechcore.dll</c> on Windows.
/// </remarks>
internal static class LeechCoreLoader
{
    public const string PathVariable = "LEECHCORE_PATH";

    public const string HowToGet =
        "Get LeechCore from https://github.com/ufrisk/LeechCore: take leechcore.so (Linux) or leechcore.dll (Windows) from a release " +
        "(PCILeech and MemProcFS releases carry it too), or build it on Linux with 'apt-get install gcc make pkg-config libusb-1.0-0-dev' " +
        "and 'make -C leechcore' (the library lands in files/). Then put it beside this plugin, point LEECHCORE_PATH at the file or its folder, " +
        "or name it in the chain with library=PATH.";

    private static readonly ConcurrentDictionary<string, LeechCoreLibrary> Loaded = new(StringComparer.Ordinal);
    private static readonly Lock LoadLock = new();

    /// <summary>The library's file name on this platform.</summary>
    public static string FileName =>
        OperatingSystem.IsWindows() ? "leechcore.dll" : OperatingSystem.IsMacOS() ? "leechcore.dylib" : "leechcore.so";

    /// <summary>The folder the plugin's assembly was loaded from.</summary>
    public static string PluginFolder => System.IO.Path.GetDirectoryName(typeof(LeechCoreLoader).Assembly.Location) ?? AppContext.BaseDirectory;

    /// <summary>Loads LeechCore from where the arguments and the environment say.</summary>
    /// <exception cref="PluginArgumentException">The <c>library</c> argument names no file, or a file that is not a loadable LeechCore.</exception>
    /// <exception cref="DllNotFoundException">No LeechCore was found; the message lists where it was looked for and how to get it.</exception>
    /// <exception cref="EntryPointNotFoundException">The library found is not LeechCore 2.x.</exception>
    public static LeechCoreLibrary Load(string plugin, string? libraryArgument) =>
        Load(plugin, libraryArgument, Environment.GetEnvironmentVariable(PathVariable), PluginFolder);

    /// <summary>The same, with the environment variable's value and the plugin's folder given (for tests).</summary>
    internal static LeechCoreLibrary Load(string plugin, string? libraryArgument, string? pathVariable, string pluginFolder)
    {
        if (!string.IsNullOrEmpty(libraryArgument))
        {
            string path = Resolve(libraryArgument);
            if (!File.Exists(path))
                throw new PluginArgumentException($"{plugin}: library={libraryArgument} names no file{(path != libraryArgument ? $" ({path})" : "")}. {HowToGet}");
            return LoadFile(path, reason => new PluginArgumentException($"{plugin}: library={libraryArgument}: {reason}"));
        }
        if (!string.IsNullOrEmpty(pathVariable))
        {
            string path = Resolve(pathVariable);
            if (!File.Exists(path))
                throw new DllNotFoundException($"{plugin}: {PathVariable}={pathVariable} names no file{(path != pathVariable ? $" ({path})" : "")}. {HowToGet}");
            return LoadFile(path, reason => new DllNotFoundException($"{plugin}: {PathVariable}={pathVariable}: {reason}"));
        }

        var looked = new StringBuilder();
        string beside = System.IO.Path.Combine(pluginFolder, FileName);
        if (File.Exists(beside))
            return LoadFile(beside, reason => new DllNotFoundException($"{plugin}: {reason}"));
        looked.Append(System.Globalization.CultureInfo.InvariantCulture, $"beside the plugin ({beside}: no such file)");

        string systemKey = "system:" + FileName;
        if (Loaded.TryGetValue(systemKey, out var cached))
            return cached;
        lock (LoadLock)
        {
            if (Loaded.TryGetValue(systemKey, out cached))
                return cached;
            if (NativeLibrary.TryLoad(FileName, out var module))
                return Loaded[systemKey] = new LeechCoreLibrary(FileName, module);
        }
        looked.Append(OperatingSystem.IsWindows()
            ? "; in the DLL search path (not found)"
            : $"; in the system's library search path (LD_LIBRARY_PATH{(Environment.GetEnvironmentVariable("LD_LIBRARY_PATH") is { Length: > 0 } ld ? "=" + ld : " unset")}, the ld.so cache: not found)");
        looked.Append(System.Globalization.CultureInfo.InvariantCulture, $"; {PathVariable} is unset and no library= argument was given");
        throw new DllNotFoundException($"{plugin}: LeechCore ({FileName}) was not found. Looked {looked}. {HowToGet}");
    }

    /// <summary>A folder stands for the library file inside it.</summary>
    private static string Resolve(string path) =>
        Directory.Exists(path) ? System.IO.Path.Combine(path, FileName) : path;

    private static LeechCoreLibrary LoadFile(string path, Func<string, Exception> fail)
    {
        string full = System.IO.Path.GetFullPath(path);
        if (Loaded.TryGetValue(full, out var cached))
            return cached;
        lock (LoadLock)
        {
            if (Loaded.TryGetValue(full, out cached))
                return cached;
            nint module;
            try
            {
                module = NativeLibrary.Load(full);
            }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                // The loader's own words name the cause: a missing dependency (libusb), another architecture.
                throw fail($"{full} cannot be loaded: {e.Message}");
            }
            try
            {
                return Loaded[full] = new LeechCoreLibrary(full, module);
            }
            catch (EntryPointNotFoundException e)
            {
                throw fail(e.Message);
            }
        }
    }
}
