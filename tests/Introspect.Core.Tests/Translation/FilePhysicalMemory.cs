using Introspect.Abi;
using Microsoft.Win32.SafeHandles;

namespace Introspect.Core.Tests.Translation;

/// <summary>A raw memory image as physical memory for tests: physical address N is file offset N.</summary>
internal sealed class FilePhysicalMemory : IPhysicalMemory
{
    private readonly SafeFileHandle _file;
    private readonly long _length;
    private long _readCalls;

    public FilePhysicalMemory(string path)
    {
        _file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        _length = RandomAccess.GetLength(_file);
        MemoryMap = MemoryMap.Linear((ulong)_length);
    }

    public long ReadCalls => Interlocked.Read(ref _readCalls);

    public PhysicalMemoryMetadata Metadata => new((ulong)_length - 1, (ulong)_length, true, 4096);

    public MemoryMap MemoryMap { get; private set; }

    public void SetMemoryMap(MemoryMap map) => MemoryMap = map;

    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        Interlocked.Increment(ref _readCalls);
        foreach (ref var request in batch)
        {
            var buffer = request.Buffer.Span;
            request.Succeeded = request.Address < (ulong)_length
                && (ulong)buffer.Length <= (ulong)_length - request.Address
                && RandomAccess.Read(_file, buffer, (long)request.Address) == buffer.Length;
        }
    }

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) =>
        throw new NotSupportedException("A memory image opened for reading.");

    public void Dispose() => _file.Dispose();
}
