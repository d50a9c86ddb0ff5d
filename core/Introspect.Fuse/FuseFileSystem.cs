using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Introspect.Core.Vfs;

namespace Introspect.Fuse;

/// <summary>The FUSE operations over a <see cref="VirtualFileSystem"/>: libfuse calls these on its own threads.</summary>
/// <remarks>
/// Every callback catches everything and answers with a negative errno: an exception must never unwind into libfuse.
/// Files opened get a handle number in <c>fh</c>, so reads do not look their path up again. Memory files are served
/// with <c>direct_io</c> (every read comes here, as live memory must, and reads need not stop at the size), text and
/// core files through the kernel's page cache (so that <c>mmap</c> works on them).
/// </remarks>
internal sealed class FuseFileSystem
{
    private readonly VirtualFileSystem _vfs;
    private readonly bool _readOnly;
    private readonly bool _cacheMemory;
    private readonly ConcurrentDictionary<ulong, VfsFile> _open = new();
    private readonly uint _uid = FuseNative.geteuid();
    private readonly uint _gid = FuseNative.getegid();
    private readonly long _mountTime = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    private long _nextHandle;

    public FuseFileSystem(VirtualFileSystem vfs, bool readOnly, bool cacheMemory)
    {
        _vfs = vfs;
        _readOnly = readOnly;
        _cacheMemory = cacheMemory;
    }

    /// <summary>How many files are open now (for tests: every open is released).</summary>
    public int OpenFiles => _open.Count;

    private static FuseFileSystem Current()
    {
        var context = FuseNative.fuse_get_context();
        return (FuseFileSystem)GCHandle.FromIntPtr(Marshal.ReadIntPtr(context, FuseNative.ContextPrivateData)).Target!;
    }

    private static string PathOf(nint path) => Marshal.PtrToStringUTF8(path) ?? "/";

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    internal static nint Init(nint connection, nint config)
    {
        try
        {
            // Large requests: up to 1 MiB per read and write (the kernel's max_pages follows max_write), 1 MiB read-ahead.
            Marshal.WriteInt32(connection, FuseNative.ConnMaxWrite, 1 << 20);
            Marshal.WriteInt32(connection, FuseNative.ConnMaxReadahead, 1 << 20);
            // Entries and attributes change only on refresh: the kernel may keep them for a second; misses are not kept.
            Marshal.WriteInt64(config, FuseNative.ConfigEntryTimeout, BitConverter.DoubleToInt64Bits(1.0));
            Marshal.WriteInt64(config, FuseNative.ConfigAttrTimeout, BitConverter.DoubleToInt64Bits(1.0));
            Marshal.WriteInt64(config, FuseNative.ConfigNegativeTimeout, BitConverter.DoubleToInt64Bits(0.0));
        }
        catch (Exception)
        {
            // Defaults are only slower.
        }
        // init's return value becomes the context's private data: keep ours.
        return Marshal.ReadIntPtr(FuseNative.fuse_get_context(), FuseNative.ContextPrivateData);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    internal static int GetAttr(nint path, nint stat, nint fileInfo)
    {
        try
        {
            var self = Current();
            var entry = self._vfs.GetEntry(PathOf(path));
            if (entry is null)
                return -FuseNative.ENOENT;
            self.WriteStat(stat, entry.Value);
            return 0;
        }
        catch (Exception)
        {
            return -FuseNative.EIO;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    internal static int Access(nint path, int mode)
    {
        try
        {
            var self = Current();
            var entry = self._vfs.GetEntry(PathOf(path));
            if (entry is null)
                return -FuseNative.ENOENT;
            const int W_OK = 2;
            if ((mode & W_OK) != 0 && (self._readOnly || !entry.Value.IsWritable))
                return self._readOnly ? -FuseNative.EROFS : -FuseNative.EACCES;
            return 0;
        }
        catch (Exception)
        {
            return -FuseNative.EIO;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    internal static int Open(nint path, nint fileInfo)
    {
        try
        {
            var self = Current();
            var name = PathOf(path);
            var file = self._vfs.TryOpen(name);
            if (file is null)
                return self._vfs.GetEntry(name) is null ? -FuseNative.ENOENT : -FuseNative.EISDIR;
            int flags = Marshal.ReadInt32(fileInfo, FuseNative.FileInfoFlags);
            if ((flags & FuseNative.O_ACCMODE) != FuseNative.O_RDONLY)
            {
                if (self._readOnly)
                    return -FuseNative.EROFS;
                if (!file.IsWritable)
                    return -FuseNative.EACCES;
            }
            ulong handle = (ulong)Interlocked.Increment(ref self._nextHandle);
            self._open[handle] = file;
            Marshal.WriteInt64(fileInfo, FuseNative.FileInfoHandle, (long)handle);
            uint bits = (uint)Marshal.ReadInt32(fileInfo, FuseNative.FileInfoBits);
            bits &= ~(FuseNative.FileInfoDirectIo | FuseNative.FileInfoKeepCache);
            if (file.IsLive && !self._cacheMemory)
                bits |= FuseNative.FileInfoDirectIo;
            else if (self._cacheMemory)
                bits |= FuseNative.FileInfoKeepCache;
            Marshal.WriteInt32(fileInfo, FuseNative.FileInfoBits, (int)bits);
            return 0;
        }
        catch (Exception)
        {
            return -FuseNative.EIO;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    internal static int Read(nint path, nint buffer, nuint size, long offset, nint fileInfo)
    {
        try
        {
            var self = Current();
            if (!self._open.TryGetValue((ulong)Marshal.ReadInt64(fileInfo, FuseNative.FileInfoHandle), out var file))
                return -FuseNative.EBADF;
            if (offset < 0)
                return -FuseNative.EINVAL;
            int length = (int)Math.Min(size, int.MaxValue);
            return file.Read(FuseNative.Span(buffer, length), (ulong)offset);
        }
        catch (Exception)
        {
            return -FuseNative.EIO;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    internal static int Write(nint path, nint buffer, nuint size, long offset, nint fileInfo)
    {
        try
        {
            var self = Current();
            if (self._readOnly)
                return -FuseNative.EROFS;
            if (!self._open.TryGetValue((ulong)Marshal.ReadInt64(fileInfo, FuseNative.FileInfoHandle), out var file))
                return -FuseNative.EBADF;
            if (offset < 0)
                return -FuseNative.EINVAL;
            int length = (int)Math.Min(size, int.MaxValue);
            return file.Write(FuseNative.Span(buffer, length), (ulong)offset);
        }
        catch (UnauthorizedAccessException)
        {
            return -FuseNative.EACCES;
        }
        catch (NotSupportedException)
        {
            return -FuseNative.EROFS;
        }
        catch (ArgumentException)
        {
            return -FuseNative.EINVAL;
        }
        catch (Exception)
        {
            return -FuseNative.EIO;
        }
    }

    /// <summary>Truncation comes before a write that replaces a value (<c>echo 1 &gt; conf/refresh.txt</c>): accepted for writable files, as values are written whole.</summary>
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    internal static int Truncate(nint path, long size, nint fileInfo)
    {
        try
        {
            var self = Current();
            if (self._readOnly)
                return -FuseNative.EROFS;
            var entry = self._vfs.GetEntry(PathOf(path));
            if (entry is null)
                return -FuseNative.ENOENT;
            return entry.Value.IsWritable ? 0 : -FuseNative.EACCES;
        }
        catch (Exception)
        {
            return -FuseNative.EIO;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    internal static int Release(nint path, nint fileInfo)
    {
        try
        {
            Current()._open.TryRemove((ulong)Marshal.ReadInt64(fileInfo, FuseNative.FileInfoHandle), out _);
            return 0;
        }
        catch (Exception)
        {
            return -FuseNative.EIO;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    internal static int OpenDir(nint path, nint fileInfo)
    {
        try
        {
            var entry = Current()._vfs.GetEntry(PathOf(path));
            return entry is null ? -FuseNative.ENOENT : entry.Value.IsDirectory ? 0 : -FuseNative.ENOTDIR;
        }
        catch (Exception)
        {
            return -FuseNative.EIO;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    internal static int ReleaseDir(nint path, nint fileInfo) => 0;

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    internal static int ReadDir(nint path, nint buffer, nint filler, long offset, nint fileInfo, int flags)
    {
        try
        {
            var self = Current();
            var name = PathOf(path);
            var entry = self._vfs.GetEntry(name);
            if (entry is null)
                return -FuseNative.ENOENT;
            if (!entry.Value.IsDirectory)
                return -FuseNative.ENOTDIR;
            // Offset 0 everywhere: libfuse buffers the whole listing and pages it itself.
            FuseNative.Fill(filler, buffer, ".");
            FuseNative.Fill(filler, buffer, "..");
            foreach (var child in self._vfs.List(name))
            {
                if (!FuseNative.Fill(filler, buffer, child.Name))
                    break;
            }
            return 0;
        }
        catch (Exception)
        {
            return -FuseNative.EIO;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    internal static int StatFs(nint path, nint statvfs)
    {
        // libfuse hands a zeroed struct statvfs: a file system of no blocks, which is what it is.
        return 0;
    }

    /// <summary>Fills a <c>struct stat</c> (Linux's layout of the running architecture).</summary>
    private void WriteStat(nint stat, VfsEntry entry)
    {
        uint mode = entry.IsDirectory
            ? 0x4000u | 0x16d // S_IFDIR 0555
            : 0x8000u | (entry.IsWritable && !_readOnly ? 0x1a4u : 0x124u); // S_IFREG 0644 or 0444
        ulong size = Math.Min(entry.Size, long.MaxValue);
        var span = FuseNative.Span(stat, StatSize);
        span.Clear();
        bool x64 = RuntimeInformation.ProcessArchitecture == Architecture.X64;
        if (x64)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(span[16..], entry.IsDirectory ? 2UL : 1UL); // st_nlink
            BinaryPrimitives.WriteUInt32LittleEndian(span[24..], mode);
            BinaryPrimitives.WriteUInt32LittleEndian(span[28..], _uid);
            BinaryPrimitives.WriteUInt32LittleEndian(span[32..], _gid);
            BinaryPrimitives.WriteInt64LittleEndian(span[56..], 4096); // st_blksize
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(span[16..], mode);
            BinaryPrimitives.WriteUInt32LittleEndian(span[20..], entry.IsDirectory ? 2u : 1u);
            BinaryPrimitives.WriteUInt32LittleEndian(span[24..], _uid);
            BinaryPrimitives.WriteUInt32LittleEndian(span[28..], _gid);
            BinaryPrimitives.WriteInt32LittleEndian(span[56..], 4096);
        }
        BinaryPrimitives.WriteUInt64LittleEndian(span[48..], size); // st_size
        BinaryPrimitives.WriteUInt64LittleEndian(span[64..], (size + 511) / 512); // st_blocks
        BinaryPrimitives.WriteInt64LittleEndian(span[72..], _mountTime); // st_atim
        BinaryPrimitives.WriteInt64LittleEndian(span[88..], _mountTime); // st_mtim
        BinaryPrimitives.WriteInt64LittleEndian(span[104..], _mountTime); // st_ctim
    }

    /// <summary>sizeof(struct stat): 144 on x86-64, 128 on AArch64 (the generic layout).</summary>
    private static int StatSize => RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 144 : 128;
}
