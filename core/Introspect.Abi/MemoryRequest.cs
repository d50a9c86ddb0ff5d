namespace Introspect.Abi;

/// <summary>One entry of a batched read or write: an address, a buffer, and whether it succeeded.</summary>
/// <remarks>
/// A batch is a span of these. The memory fills <see cref="Buffer"/> (or writes it) and sets
/// <see cref="Succeeded"/> per entry; an entry that cannot be served fails on its own and never
/// fails the batch. A failed read entry's buffer content is unspecified.
/// </remarks>
public struct MemoryRequest
{
    public ulong Address;
    public Memory<byte> Buffer;
    public bool Succeeded;

    public MemoryRequest(ulong address, Memory<byte> buffer)
    {
        Address = address;
        Buffer = buffer;
        Succeeded = false;
    }
}

/// <summary>Modifiers of a read or write, after MemProcFS's <c>VMMDLL_FLAG_*</c>.</summary>
[Flags]
public enum MemoryFlags
{
    None = 0,
    /// <summary>Bypass every cache on the way down and do not fill it on the way back.</summary>
    NoCache = 1,
    /// <summary>Fill what could not be read with zeros and report it as read.</summary>
    ZeroPadOnFail = 2,
    /// <summary>Answer from caches only; what no cache holds fails.</summary>
    ForceCache = 8,
}
