using System.IO.MemoryMappedFiles;
using Microsoft.Win32.SafeHandles;

namespace Introspect.Connectors.Coredump.IO;

/// <summary>A dump file mapped read-only into the address space; reads are bounds checks and copies.</summary>
/// <remarks>
/// The view stays mapped for the object's life. Readers that run concurrently with
/// <see cref="Dispose"/> hold a reference on the view's handle for the length of a batch
/// (<see cref="Enter"/>/<see cref="Exit"/>), so the mapping is removed only after the last batch
/// leaves; a batch started after disposal gets <see cref="ObjectDisposedException"/>.
/// </remarks>
internal sealed class MappedFile : DataSource, IDisposable
{
    private readonly string _path;
    private readonly ulong _length;
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly SafeMemoryMappedViewHandle _handle;
    private readonly nint _base;
    private int _disposed;

    private MappedFile(string path, ulong length, MemoryMappedFile file, MemoryMappedViewAccessor view, nint @base)
    {
        _path = path;
        _length = length;
        _file = file;
        _view = view;
        _handle = view.SafeMemoryMappedViewHandle;
        _base = @base;
    }

    public override string Name => _path;

    public override ulong Length => _length;

    /// <summary>Maps <paramref name="path"/> read-only.</summary>
    /// <exception cref="InvalidDataException">The file is empty.</exception>
    public static MappedFile Open(string path)
    {
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1, FileOptions.RandomAccess);
        MemoryMappedFile? file = null;
        MemoryMappedViewAccessor? view = null;
        try
        {
            long length = stream.Length;
            if (length == 0)
                throw new InvalidDataException($"{path}: the file is empty; expected a memory dump.");
            file = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            view = file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            nint @base = AcquireBase(view);
            return new MappedFile(path, (ulong)length, file, view, @base);
        }
        catch
        {
            view?.Dispose();
            if (file is not null)
                file.Dispose();
            else
                stream.Dispose();
            throw;
        }
    }

    // The unsafe chokepoint of this type is this pair of methods. AcquireBase takes the view's
    // address once, with a reference on the handle that Dispose releases (ReleasePointer).
    private static unsafe nint AcquireBase(MemoryMappedViewAccessor view)
    {
        byte* pointer = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        return (nint)(pointer + view.PointerOffset);
    }

    // Slice turns that address into spans. Every caller has checked offset + length against
    // _length with Contains, and holds a reference on the view (Enter) or runs before the object is
    // shared, so the bytes are mapped for as long as the span is used.
    private unsafe ReadOnlySpan<byte> Slice(ulong offset, int length) => new((byte*)_base + offset, length);

    public override bool TryRead(ulong offset, Span<byte> destination)
    {
        if (!Contains(offset, (ulong)destination.Length))
            return false;
        Slice(offset, destination.Length).CopyTo(destination);
        return true;
    }

    public override bool TryGetSpan(ulong offset, int length, out ReadOnlySpan<byte> span)
    {
        if (length < 0 || !Contains(offset, (ulong)length))
        {
            span = default;
            return false;
        }
        span = Slice(offset, length);
        return true;
    }

    /// <summary>Keeps the mapping alive until the matching <see cref="Exit"/>.</summary>
    /// <exception cref="ObjectDisposedException">The file was disposed.</exception>
    public void Enter()
    {
        bool added = false;
        _handle.DangerousAddRef(ref added);
        if (!added)
            throw new ObjectDisposedException(_path);
    }

    public void Exit() => _handle.DangerousRelease();

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _handle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
    }
}
