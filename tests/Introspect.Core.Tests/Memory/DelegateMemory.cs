using Introspect.Abi;

namespace Introspect.Core.Tests.Memory;

/// <summary>An <see cref="IMemory"/> whose reads a test writes as a delegate (mocking libraries cannot take span parameters).</summary>
internal sealed class DelegateMemory(DelegateMemory.ReadHandler read) : IMemory
{
    public delegate void ReadHandler(Span<MemoryRequest> batch, MemoryFlags flags);

    public int ReadCalls { get; private set; }

    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        ReadCalls++;
        read(batch, flags);
    }

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) =>
        throw new NotSupportedException("Read-only test memory.");
}
