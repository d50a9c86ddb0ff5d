using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace Introspect.Fuse;

/// <summary>libfuse3's high-level API (<c>libfuse3.so.3</c>, FUSE 3.2 or later), the libc calls around it, and the C layouts they share.</summary>
/// <remarks>
/// Symbols are bound by their versioned names (<c>fuse_new_31</c>, <c>fuse_loop_mt_31</c>) so that the meaning of
/// each argument is fixed whatever the library's default version is. Layouts are Linux's on x86-64 and AArch64.
/// </remarks>
internal static partial class FuseNative
{
    public const string Library = "libfuse3.so.3";
    private const string LibC = "libc.so.6";

    // struct fuse_operations: 42 function pointers, in this order.
    public const int OperationCount = 42;
    public const int OpGetattr = 0, OpTruncate = 11, OpOpen = 12, OpRead = 13, OpWrite = 14, OpStatfs = 15, OpRelease = 17,
        OpOpendir = 23, OpReaddir = 24, OpReleasedir = 25, OpInit = 27, OpAccess = 29;

    // struct fuse_file_info: int flags; a word of bit fields (writepage, direct_io, keep_cache, ...); then uint64 fh at 16.
    public const int FileInfoFlags = 0;
    public const int FileInfoBits = 4;
    public const uint FileInfoDirectIo = 1u << 1;
    public const uint FileInfoKeepCache = 1u << 2;
    public const int FileInfoHandle = 16;

    // struct fuse_conn_info: max_write at 8, max_read at 12, max_readahead at 16.
    public const int ConnMaxWrite = 8;
    public const int ConnMaxReadahead = 16;

    // struct fuse_config: doubles entry_timeout at 24, negative_timeout at 32, attr_timeout at 40.
    public const int ConfigEntryTimeout = 24;
    public const int ConfigNegativeTimeout = 32;
    public const int ConfigAttrTimeout = 40;

    // struct fuse_context: private_data at 24.
    public const int ContextPrivateData = 24;

    public const int ENOENT = 2, EIO = 5, EBADF = 9, EACCES = 13, EEXIST = 17, ENOTDIR = 20, EISDIR = 21, EINVAL = 22, EROFS = 30, ENOSYS = 38;
    public const int O_ACCMODE = 3, O_RDONLY = 0;
    public const int MNT_DETACH = 2;

    [LibraryImport(Library, EntryPoint = "fuse_new_31")]
    public static partial nint fuse_new(nint args, nint operations, nuint operationsSize, nint privateData);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int fuse_mount(nint fuse, string mountPoint);

    [LibraryImport(Library)]
    public static partial void fuse_unmount(nint fuse);

    [LibraryImport(Library)]
    public static partial void fuse_destroy(nint fuse);

    [LibraryImport(Library, EntryPoint = "fuse_loop_mt_31")]
    public static partial int fuse_loop_mt(nint fuse, int cloneFd);

    [LibraryImport(Library)]
    public static partial void fuse_exit(nint fuse);

    [LibraryImport(Library)]
    public static partial nint fuse_get_context();

    [LibraryImport(Library)]
    public static partial void fuse_opt_free_args(nint args);

    [LibraryImport(Library)]
    public static partial void fuse_set_log_func(nint logFunction);

    [LibraryImport(LibC, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int umount2(string target, int flags);

    [LibraryImport(LibC)]
    public static partial uint geteuid();

    [LibraryImport(LibC)]
    public static partial uint getegid();

    [LibraryImport(LibC)]
    private static partial int vsnprintf(nint buffer, nuint size, nint format, nint arguments);

    /// <summary>
    /// The function pointers of the operations table, and the calls through pointers libfuse hands us: the one place of
    /// this library that needs <c>unsafe</c>, for taking method addresses and calling native function pointers.
    /// </summary>
    public static unsafe nint[] OperationPointers()
    {
        var table = new nint[OperationCount];
        table[OpGetattr] = (nint)(delegate* unmanaged[Cdecl]<nint, nint, nint, int>)&FuseFileSystem.GetAttr;
        table[OpTruncate] = (nint)(delegate* unmanaged[Cdecl]<nint, long, nint, int>)&FuseFileSystem.Truncate;
        table[OpOpen] = (nint)(delegate* unmanaged[Cdecl]<nint, nint, int>)&FuseFileSystem.Open;
        table[OpRead] = (nint)(delegate* unmanaged[Cdecl]<nint, nint, nuint, long, nint, int>)&FuseFileSystem.Read;
        table[OpWrite] = (nint)(delegate* unmanaged[Cdecl]<nint, nint, nuint, long, nint, int>)&FuseFileSystem.Write;
        table[OpStatfs] = (nint)(delegate* unmanaged[Cdecl]<nint, nint, int>)&FuseFileSystem.StatFs;
        table[OpRelease] = (nint)(delegate* unmanaged[Cdecl]<nint, nint, int>)&FuseFileSystem.Release;
        table[OpOpendir] = (nint)(delegate* unmanaged[Cdecl]<nint, nint, int>)&FuseFileSystem.OpenDir;
        table[OpReaddir] = (nint)(delegate* unmanaged[Cdecl]<nint, nint, nint, long, nint, int, int>)&FuseFileSystem.ReadDir;
        table[OpReleasedir] = (nint)(delegate* unmanaged[Cdecl]<nint, nint, int>)&FuseFileSystem.ReleaseDir;
        table[OpInit] = (nint)(delegate* unmanaged[Cdecl]<nint, nint, nint>)&FuseFileSystem.Init;
        table[OpAccess] = (nint)(delegate* unmanaged[Cdecl]<nint, int, int>)&FuseFileSystem.Access;
        return table;
    }

    public static unsafe nint LogFunction => (nint)(delegate* unmanaged[Cdecl]<int, nint, nint, void>)&OnLog;

    /// <summary>Calls readdir's filler for one name: <c>filler(buf, name, NULL, 0, 0)</c>.</summary>
    /// <returns>True when the buffer took the name (libfuse's filler returns 1 when full).</returns>
    public static unsafe bool Fill(nint filler, nint buffer, string name)
    {
        int length = Encoding.UTF8.GetByteCount(name);
        Span<byte> bytes = length < 512 ? stackalloc byte[length + 1] : new byte[length + 1];
        Encoding.UTF8.GetBytes(name, bytes);
        bytes[length] = 0;
        fixed (byte* text = bytes)
            return ((delegate* unmanaged[Cdecl]<nint, byte*, nint, long, int, int>)filler)(buffer, text, 0, 0, 0) == 0;
    }

    /// <summary>A native buffer libfuse hands a callback, as a span for the length of the call.</summary>
    public static unsafe Span<byte> Span(nint pointer, int length) => new((void*)pointer, length);

    /// <summary>libfuse's messages (why a mount failed, mostly), kept for the error that reports the failure.</summary>
    public static ConcurrentMessages Messages { get; } = new();

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnLog(int level, nint format, nint arguments)
    {
        try
        {
            var buffer = Marshal.AllocHGlobal(1024);
            try
            {
                int written = vsnprintf(buffer, 1024, format, arguments);
                if (written > 0)
                    Messages.Add(Marshal.PtrToStringUTF8(buffer)?.TrimEnd() ?? "");
            }
            finally
            {
                Marshal.FreeHGlobal(buffer);
            }
        }
        catch (OutOfMemoryException)
        {
            // A message lost is better than an exception thrown into libfuse.
        }
    }
}

/// <summary>The last messages libfuse logged, newest last.</summary>
internal sealed class ConcurrentMessages
{
    private readonly Queue<string> _messages = new();
    private readonly Lock _gate = new();

    public void Add(string message)
    {
        lock (_gate)
        {
            _messages.Enqueue(message);
            while (_messages.Count > 16)
                _messages.Dequeue();
        }
    }

    /// <summary>Takes every message logged so far.</summary>
    public string[] Drain()
    {
        lock (_gate)
        {
            var all = _messages.ToArray();
            _messages.Clear();
            return all;
        }
    }
}
