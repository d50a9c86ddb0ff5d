namespace Introspect.Abi;

/// <summary>Any memory that serves batches: physical memory, a process's virtual memory, a view.</summary>
public interface IMemory
{
    /// <summary>Reads every entry of <paramref name="batch"/>, setting each entry's success.</summary>
    /// <remarks>Never throws for memory that cannot be read; that entry fails and the rest go on.</remarks>
    void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None);

    /// <summary>Writes every entry of <paramref name="batch"/>, setting each entry's success.</summary>
    /// <exception cref="NotSupportedException">The memory is read-only.</exception>
    void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None);
}
