using System.Diagnostics.CodeAnalysis;

namespace Introspect.Os.Windows;

/// <summary>The exceptions for memory this layer cannot use, kept out of the methods that find them.</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    public static void ThrowInvalid(string message) => throw new InvalidDataException(message);

    [DoesNotReturn]
    public static T ThrowInvalid<T>(string message) => throw new InvalidDataException(message);
}

/// <summary>Caps on every count read from guest memory, so a damaged or hostile image ends a walk instead of hanging it.</summary>
internal static class WindowsLimits
{
    /// <summary>Entries of <c>ActiveProcessLinks</c> followed (Windows' own handle table caps processes far below this).</summary>
    public const int MaxProcesses = 1 << 16;

    /// <summary>Entries of a loader list (PEB or <c>PsLoadedModuleList</c>).</summary>
    public const int MaxModules = 1 << 14;

    /// <summary>Nodes of one VAD tree.</summary>
    public const int MaxVads = 1 << 18;

    /// <summary>Depth of a VAD tree; a balanced tree of <see cref="MaxVads"/> nodes is far shallower.</summary>
    public const int MaxVadDepth = 64;

    /// <summary>Bytes of one UNICODE_STRING (its Length field is 16 bits).</summary>
    public const int MaxUnicodeBytes = 0xFFFF;

    /// <summary>Bytes of kernel virtual memory the pool scan reads.</summary>
    public const ulong MaxPoolScanBytes = 4UL << 30;

    /// <summary>Physical bytes searched for a self-referencing page directory.</summary>
    public const ulong MaxDtbScanBytes = 64UL << 30;

    /// <summary>Bytes below the low stub's kernel entry searched for the kernel's headers.</summary>
    public const ulong MaxEntryToBase = 64UL << 20;
}
