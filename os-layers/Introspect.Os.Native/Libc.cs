using System.Runtime.InteropServices;

namespace Introspect.Os.Native;

/// <summary>The C library calls the layer makes.</summary>
internal static partial class Libc
{
    /// <summary><c>sysconf</c>'s name for clock ticks per second on Linux.</summary>
    private const int ScClkTck = 2;

    public static nint ProcessVmReadv(int pid, ReadOnlySpan<IoVector> local, ReadOnlySpan<IoVector> remote) =>
        process_vm_readv(pid, local, (nuint)local.Length, remote, (nuint)remote.Length, 0);

    public static nint ProcessVmWritev(int pid, ReadOnlySpan<IoVector> local, ReadOnlySpan<IoVector> remote) =>
        process_vm_writev(pid, local, (nuint)local.Length, remote, (nuint)remote.Length, 0);

    /// <summary>Clock ticks per second, the unit of <c>/proc/PID/stat</c>'s times.</summary>
    public static long ClockTicksPerSecond()
    {
        long ticks = sysconf(ScClkTck);
        return ticks > 0 ? ticks : 100;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint process_vm_readv(int pid, ReadOnlySpan<IoVector> localIov, nuint localCount, ReadOnlySpan<IoVector> remoteIov, nuint remoteCount, nuint flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint process_vm_writev(int pid, ReadOnlySpan<IoVector> localIov, nuint localCount, ReadOnlySpan<IoVector> remoteIov, nuint remoteCount, nuint flags);

    [LibraryImport("libc")]
    private static partial nint sysconf(int name);
}
