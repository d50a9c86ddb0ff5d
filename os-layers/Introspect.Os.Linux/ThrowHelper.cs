using System.Diagnostics.CodeAnalysis;

namespace Introspect.Os.Linux;

/// <summary>The exceptions for memory or symbol files this layer cannot use, kept out of the methods that find them.</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    public static void ThrowInvalid(string message) => throw new InvalidDataException(message);

    [DoesNotReturn]
    public static T ThrowInvalid<T>(string message) => throw new InvalidDataException(message);
}

/// <summary>Caps on every count read from guest memory or a symbol file, so a damaged or hostile input ends a walk instead of hanging it.</summary>
internal static class LinuxLimits
{
    /// <summary>Processes (thread-group leaders) on the task list.</summary>
    public const int MaxProcesses = 1 << 20;

    /// <summary>Threads counted in one process.</summary>
    public const int MaxThreadsPerProcess = 1 << 17;

    /// <summary>Memory areas of one process (the kernel's own default limit, <c>vm.max_map_count</c>, is 65530).</summary>
    public const int MaxMemoryAreas = 1 << 18;

    /// <summary>Nodes one maple-tree walk visits.</summary>
    public const int MaxMapleNodes = 1 << 19;

    /// <summary>Levels of a maple tree (the kernel's own <c>MAPLE_HEIGHT_MAX</c> is 31).</summary>
    public const int MaxMapleDepth = 31;

    /// <summary>Components of one path, walking dentries and mounts towards the root.</summary>
    public const int MaxPathComponents = 1024;

    /// <summary>Bytes of one path (the kernel's <c>PATH_MAX</c>).</summary>
    public const int MaxPathBytes = 4096;

    /// <summary>Bytes of a command line or an environment read from a process.</summary>
    public const int MaxArgumentBytes = 256 * 1024;

    /// <summary>Kernel modules on the <c>modules</c> list.</summary>
    public const int MaxModules = 1 << 14;

    /// <summary>Symbols in kallsyms or a System.map file.</summary>
    public const int MaxSymbols = 1 << 23;

    /// <summary>Bytes of kallsyms' compressed names (the real ones are a few MiB).</summary>
    public const int MaxKallsymsNameBytes = 64 << 20;

    /// <summary>Bytes of a BTF blob (a distribution kernel's is about 5 MiB).</summary>
    public const int MaxBtfBytes = 128 << 20;

    /// <summary>Steps through typedefs, qualifiers and nested anonymous members in one type query.</summary>
    public const int MaxTypeDepth = 64;

    /// <summary>Bytes of a symbol file (System.map or ISF JSON) read into memory.</summary>
    public const long MaxSymbolFileBytes = 1L << 30;
}
