using System.Diagnostics;
using System.Runtime.InteropServices;
using Introspect.Core.Vfs;

namespace Introspect.Fuse;

/// <summary>FUSE cannot be used here: the library, the device or the mount is missing; the message says which and how to fix it.</summary>
public sealed class FuseUnavailableException : IOException
{
    public FuseUnavailableException(string message) : base(message) { }

    public FuseUnavailableException(string message, Exception inner) : base(message, inner) { }

    public FuseUnavailableException() : this("FUSE is unavailable.") { }
}

/// <summary>How a virtual file system is mounted.</summary>
public sealed record FuseMountOptions
{
    /// <summary>Mount read-only (the default): every write and every open for writing is refused with <c>EROFS</c>.</summary>
    public bool ReadOnly { get; init; } = true;

    /// <summary>Let other users than the one mounting see the files (needs <c>user_allow_other</c> in /etc/fuse.conf unless root).</summary>
    public bool AllowOther { get; init; }

    /// <summary>The name <c>mount</c> and <c>df</c> show.</summary>
    public string FileSystemName { get; init; } = "introspect";

    /// <summary>
    /// Let the kernel keep what was read in its page cache, memory files too, from one open to the next: right for a dump,
    /// whose bytes never change (a second read of memory.pmem costs what reading a cached file costs); wrong for a live
    /// machine, whose memory files are then read afresh only when the kernel drops its pages. Off by default.
    /// </summary>
    public bool KernelCache { get; init; }

    /// <summary>The FUSE device, which must be readable and writable.</summary>
    public string Device { get; init; } = "/dev/fuse";
}

/// <summary>A <see cref="VirtualFileSystem"/> mounted through the kernel with libfuse3: <c>ls</c>, <c>cat</c> and any tool read the machine as files.</summary>
/// <remarks>
/// <see cref="Mount"/> mounts; <see cref="Run"/> serves requests (on libfuse's threads) until <see cref="Stop"/> is
/// called or the file system is unmounted from outside (<c>fusermount3 -u</c>); <see cref="Dispose"/> unmounts and
/// frees everything. Stop is safe from a signal handler's thread: it asks the loop to end and detaches the mount,
/// which wakes the loop.
/// </remarks>
public sealed class FuseMount : IDisposable
{
    private readonly FuseFileSystem _fileSystem;
    private readonly GCHandle _self;
    private readonly nint _operations;
    private readonly Lock _gate = new();
    private readonly ManualResetEventSlim _idle = new(initialState: true);
    private nint _fuse;
    private bool _mounted;
    private int _stopped;
    private int _disposed;
    private bool _detached;

    private FuseMount(string mountPoint, FuseFileSystem fileSystem, FuseMountOptions options)
    {
        MountPoint = mountPoint;
        Options = options;
        _fileSystem = fileSystem;
        _self = GCHandle.Alloc(fileSystem);
        var table = FuseNative.OperationPointers();
        _operations = Marshal.AllocHGlobal(table.Length * IntPtr.Size);
        Marshal.Copy(table, 0, _operations, table.Length);
    }

    /// <summary>The folder the files appear in (its full path).</summary>
    public string MountPoint { get; }

    public FuseMountOptions Options { get; }

    /// <summary>How many files are open through the mount now.</summary>
    public int OpenFiles => _fileSystem.OpenFiles;

    /// <summary>Mounts <paramref name="vfs"/> at <paramref name="mountPoint"/>; call <see cref="Run"/> to serve it.</summary>
    /// <exception cref="FuseUnavailableException">libfuse3 is not installed, the FUSE device cannot be opened, or the mount failed; the message says why.</exception>
    /// <exception cref="DirectoryNotFoundException">The mount point is not a folder.</exception>
    public static FuseMount Mount(VirtualFileSystem vfs, string mountPoint, FuseMountOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(vfs);
        ArgumentNullException.ThrowIfNull(mountPoint);
        options ??= new FuseMountOptions();
        var fullPath = Path.GetFullPath(mountPoint);
        if (!Directory.Exists(fullPath))
            throw new DirectoryNotFoundException($"The mount point {fullPath} is not a folder; create it first.");
        CheckAvailable(options.Device);
        var mount = new FuseMount(fullPath, new FuseFileSystem(vfs, options.ReadOnly, options.KernelCache), options);
        try
        {
            mount.Start();
            return mount;
        }
        catch
        {
            mount.Dispose();
            throw;
        }
    }

    /// <summary>Checks what a mount needs: libfuse3 loads, the device opens for reading and writing, and <c>fusermount3</c> is there for users other than root.</summary>
    /// <exception cref="FuseUnavailableException">Something is missing; the message says what and how to get it.</exception>
    public static void CheckAvailable(string device = "/dev/fuse")
    {
        if (!OperatingSystem.IsLinux())
            throw new FuseUnavailableException("Mounting needs Linux's FUSE; this is another operating system.");
        if (!NativeLibrary.TryLoad(FuseNative.Library, typeof(FuseMount).Assembly, null, out var library))
            throw new FuseUnavailableException($"FUSE is unavailable: {FuseNative.Library} is not installed (Debian: apt install libfuse3-3 fuse3).");
        NativeLibrary.Free(library);
        if (!File.Exists(device))
            throw new FuseUnavailableException($"FUSE is unavailable: {device} does not exist (load the module with 'modprobe fuse'; in a container, pass --device /dev/fuse --cap-add SYS_ADMIN).");
        try
        {
            using var handle = File.OpenHandle(device, FileMode.Open, FileAccess.ReadWrite);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new FuseUnavailableException($"FUSE is unavailable: {device} cannot be opened for reading and writing ({e.Message}); add the user to the 'fuse' group or run as root.", e);
        }
        if (FuseNative.geteuid() != 0 && !File.Exists("/usr/bin/fusermount3") && !File.Exists("/bin/fusermount3"))
            throw new FuseUnavailableException("FUSE is unavailable: users other than root mount through fusermount3, which is not installed (Debian: apt install fuse3).");
    }

    /// <summary>Serves requests until the file system is stopped or unmounted; returns then.</summary>
    /// <returns>libfuse's result: 0 for a clean end.</returns>
    public int Run()
    {
        nint fuse;
        lock (_gate)
            fuse = _fuse;
        ObjectDisposedException.ThrowIf(fuse == 0, this);
        if (Volatile.Read(ref _stopped) != 0)
            return 0;
        _idle.Reset();
        try
        {
            // clone_fd 0: one device descriptor shared by libfuse's worker threads.
            return FuseNative.fuse_loop_mt(fuse, 0);
        }
        finally
        {
            _idle.Set();
        }
    }

    /// <summary>Serves requests on a thread of its own; the task ends when the loop does.</summary>
    public Task RunInBackground()
    {
        var done = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                done.SetResult(Run());
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        })
        {
            IsBackground = true,
            Name = "introspect-fuse",
        };
        thread.Start();
        return done.Task;
    }

    /// <summary>Ends <see cref="Run"/>: asks libfuse's loop to stop and detaches the mount so that the kernel wakes it.</summary>
    /// <remarks>Safe from any thread, several times; what a detach leaves behind (open files) goes when they are closed.</remarks>
    public void Stop()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
            return;
        lock (_gate)
        {
            if (_fuse != 0)
                FuseNative.fuse_exit(_fuse);
        }
        bool detached = Detach(MountPoint);
        lock (_gate)
            _detached = detached;
    }

    /// <summary>Stops serving, unmounts and frees the file system.</summary>
    /// <remarks>Waits for a running loop to end first (10 s at most: if it does not, libfuse's state is left alive rather than freed under it).</remarks>
    public void Dispose()
    {
        if (Volatile.Read(ref _disposed) != 0)
            return;
        Stop();
        if (!_idle.Wait(TimeSpan.FromSeconds(10)))
            return;
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        lock (_gate)
        {
            if (_fuse != 0)
            {
                // After our own detach, libfuse's unmount would try again and complain; it is needed when the
                // mount went another way (fusermount3 -u), to close the device.
                if (_mounted && !_detached)
                    FuseNative.fuse_unmount(_fuse);
                FuseNative.fuse_destroy(_fuse);
                _fuse = 0;
                _mounted = false;
            }
        }
        if (_self.IsAllocated)
            _self.Free();
        Marshal.FreeHGlobal(_operations);
        _idle.Dispose();
    }

    private void Start()
    {
        FuseNative.Messages.Drain();
        FuseNative.fuse_set_log_func(FuseNative.LogFunction);
        var options = $"fsname={Escape(Options.FileSystemName)},subtype=introspect,default_permissions{(Options.ReadOnly ? ",ro" : "")}{(Options.AllowOther ? ",allow_other" : "")}";
        string[] argv = ["introspect", "-o", options];
        var strings = argv.Select(Marshal.StringToCoTaskMemUTF8).ToArray();
        var vector = Marshal.AllocHGlobal((strings.Length + 1) * IntPtr.Size);
        // struct fuse_args { int argc; char **argv; int allocated; }
        var args = Marshal.AllocHGlobal(24);
        try
        {
            Marshal.Copy(strings, 0, vector, strings.Length);
            Marshal.WriteIntPtr(vector, strings.Length * IntPtr.Size, 0);
            Marshal.WriteInt32(args, 0, strings.Length);
            Marshal.WriteIntPtr(args, 8, vector);
            Marshal.WriteInt32(args, 16, 0);
            nint fuse = FuseNative.fuse_new(args, _operations, (nuint)(FuseNative.OperationCount * IntPtr.Size), GCHandle.ToIntPtr(_self));
            // libfuse may have copied the vector to change it; that copy is its to free.
            FuseNative.fuse_opt_free_args(args);
            if (fuse == 0)
                throw new FuseUnavailableException($"libfuse refused to set up the file system{Because()}.");
            lock (_gate)
                _fuse = fuse;
            if (FuseNative.fuse_mount(fuse, MountPoint) != 0)
                throw new FuseUnavailableException($"Mounting at {MountPoint} failed{Because()}.");
            lock (_gate)
                _mounted = true;
        }
        finally
        {
            Marshal.FreeHGlobal(args);
            Marshal.FreeHGlobal(vector);
            foreach (var text in strings)
                Marshal.FreeCoTaskMem(text);
        }
    }

    private static string Because()
    {
        var messages = FuseNative.Messages.Drain();
        return messages.Length == 0 ? "" : ": " + string.Join("; ", messages);
    }

    /// <summary>Commas and backslashes separate mount options; libfuse takes them escaped with a backslash.</summary>
    private static string Escape(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace(",", "\\,", StringComparison.Ordinal);

    /// <summary>Detaches the mount: the kernel drops it at once and ends the FUSE connection, which wakes libfuse's loop.</summary>
    /// <returns>Whether the mount was there to detach.</returns>
    private static bool Detach(string mountPoint)
    {
        if (FuseNative.geteuid() == 0)
            return FuseNative.umount2(mountPoint, FuseNative.MNT_DETACH) == 0;
        try
        {
            using var unmount = Process.Start(new ProcessStartInfo("fusermount3", ["-u", "-z", "-q", mountPoint])
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
            });
            if (unmount is null || !unmount.WaitForExit(10_000))
                return false;
            return unmount.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // No fusermount3: the loop ends at the next request instead.
            return false;
        }
    }
}
