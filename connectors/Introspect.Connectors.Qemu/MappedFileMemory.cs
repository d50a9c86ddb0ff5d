using System.IO.MemoryMappedFiles;
using Introspect.Abi;

namespace Introspect.Connectors.Qemu;

/// <summary>Guest RAM read straight from the file of a <c>memory-backend-file</c>, mapped into this process.</summary>
/// <remarks>The map's backing addresses are file offsets. With <c>share=on</c> the file's pages are the guest's RAM, so reads see the guest live.</remarks>
internal sealed class MappedFileMemory : IPhysicalMemory
{
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly nint _base;
    private readonly ulong _length;
    private readonly bool _readOnly;
    private volatile MemoryMap _map;
    private int _disposed;

    public MappedFileMemory(string path, ulong length, MemoryMap map, bool readOnly)
    {
        _readOnly = readOnly;
        _length = length;
        _map = map;
        var access = readOnly ? MemoryMappedFileAccess.Read : MemoryMappedFileAccess.ReadWrite;
        using var stream = new FileStream(path, FileMode.Open, readOnly ? FileAccess.Read : FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        _file = MemoryMappedFile.CreateFromFile(stream, null, 0, access, HandleInheritability.None, leaveOpen: false);
        try
        {
            _view = _file.CreateViewAccessor(0, (long)length, access);
            _base = Acquire(_view);
        }
        catch
        {
            _file.Dispose();
            throw;
        }
    }

    public PhysicalMemoryMetadata Metadata => new(_map.MaxAddress, _map.TotalSize, _readOnly, 1024);

    public MemoryMap MemoryMap => _map;

    public void SetMemoryMap(MemoryMap map) => _map = map ?? throw new ArgumentNullException(nameof(map));

    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        bool pad = (flags & MemoryFlags.ZeroPadOnFail) != 0;
        var map = _map;
        foreach (ref var entry in batch)
            entry.Succeeded = Copy(map, entry.Address, entry.Buffer.Span, pad, write: false);
    }

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        if (_readOnly)
            throw new NotSupportedException("The guest's RAM file is mapped read-only; open the qemu step with write=on to write.");
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var map = _map;
        foreach (ref var entry in batch)
            entry.Succeeded = Copy(map, entry.Address, entry.Buffer.Span, pad: false, write: true);
    }

    private bool Copy(MemoryMap map, ulong address, Span<byte> buffer, bool pad, bool write)
    {
        if (buffer.Length > 0 && (ulong)(buffer.Length - 1) > ulong.MaxValue - address)
            return false;
        while (!buffer.IsEmpty)
        {
            int chunk;
            if (map.TryTranslate(address, out ulong offset, out ulong contiguous)
                && offset < _length)
            {
                ulong available = Math.Min(contiguous, _length - offset);
                chunk = available < (ulong)buffer.Length ? (int)available : buffer.Length;
                var source = View(offset, chunk);
                if (write)
                    buffer[..chunk].CopyTo(source);
                else
                    source.CopyTo(buffer);
            }
            else
            {
                if (!pad)
                    return false;
                chunk = Math.Min(buffer.Length, 4096 - (int)(address & 4095));
                buffer[..chunk].Clear();
            }
            buffer = buffer[chunk..];
            if (!buffer.IsEmpty)
                address += (ulong)chunk;
        }
        return true;
    }

    /// <summary>The one unsafe spot: a span over the mapped view, inside its length (callers checked offset and count).</summary>
    private unsafe Span<byte> View(ulong offset, int count) => new((void*)(_base + (nint)offset), count);

    private static unsafe nint Acquire(MemoryMappedViewAccessor view)
    {
        byte* pointer = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        return (nint)(pointer + view.PointerOffset);
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
    }
}
