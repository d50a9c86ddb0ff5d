using Introspect.Abi;
using Introspect.Core.Memory;

namespace Introspect.Core;

/// <summary>Memory of a <see cref="Machine"/>: its physical memory, a process's virtual memory or the kernel's (MemProcFS's <c>vmm.memory</c> and <c>process.memory</c>).</summary>
/// <remarks>
/// Reads are short, never throwing for memory that cannot be read (ClrMD's rule): <see cref="Read(ulong, Span{byte}, MemoryFlags)"/>
/// returns how many bytes were read, <see cref="TryRead{T}"/> says whether the value was whole. <see cref="MemoryFlags"/> are
/// MemProcFS's read flags: <see cref="MemoryFlags.NoCache"/>, <see cref="MemoryFlags.ZeroPadOnFail"/>, <see cref="MemoryFlags.ForceCache"/>.
/// Writes go through only when the chain's memory takes them; otherwise they throw <see cref="NotSupportedException"/>.
/// Safe to use from several threads.
/// </remarks>
public abstract class MachineMemory
{
    private protected MachineMemory(IMemory memory) => Inner = memory;

    /// <summary>The memory underneath, for the library's other tools (<see cref="MemorySearch"/>, <see cref="ScatterRead"/>, dump writers).</summary>
    public IMemory Inner { get; }

    /// <summary>Whether writes are refused (the chain's physical memory is read-only).</summary>
    public abstract bool IsReadOnly { get; }

    /// <summary>Reads <paramref name="destination"/>'s length from <paramref name="address"/>.</summary>
    /// <returns>How many bytes were read contiguously from <paramref name="address"/>; the whole length with <see cref="MemoryFlags.ZeroPadOnFail"/>.</returns>
    public int Read(ulong address, Span<byte> destination, MemoryFlags flags = MemoryFlags.None) => Inner.Read(address, destination, flags);

    /// <summary>Reads up to <paramref name="length"/> bytes from <paramref name="address"/> (MemProcFS's <c>memory.read</c>).</summary>
    /// <returns>The bytes read contiguously from <paramref name="address"/>: shorter than asked where memory could not be read.</returns>
    public byte[] Read(ulong address, int length, MemoryFlags flags = MemoryFlags.None)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        var buffer = GC.AllocateUninitializedArray<byte>(length);
        int read = Inner.Read(address, buffer, flags);
        return read == length ? buffer : buffer[..read];
    }

    /// <summary>Reads a value of an unmanaged type, little-endian as memory holds it (MemProcFS's <c>read_type</c>).</summary>
    /// <returns>False when not all of its bytes could be read; <paramref name="value"/> is then default.</returns>
    public bool TryRead<T>(ulong address, out T value, MemoryFlags flags = MemoryFlags.None) where T : unmanaged =>
        Inner.TryRead(address, out value, flags);

    /// <summary>Reads a NUL-terminated UTF-8 string of at most <paramref name="maxBytes"/> bytes; null when nothing there is readable.</summary>
    public string? ReadString(ulong address, int maxBytes = 4096, MemoryFlags flags = MemoryFlags.None) =>
        Inner.ReadUtf8String(address, maxBytes, flags);

    /// <summary>Reads a batch of requests at once, each marked succeeded or not (MemProcFS's <c>read_scatter</c>, without the page rounding).</summary>
    /// <remarks>A physical memory gets the batch in pieces of its ideal batch size.</remarks>
    public void ReadBatch(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => PhysicalBatch.Read(Inner, batch, flags);

    /// <summary>A scatter read over this memory: prepare, execute, read, clear (MemProcFS's <c>scatter_initialize</c> and <c>VmmScatterMemory</c>).</summary>
    public ScatterRead CreateScatter(MemoryFlags flags = MemoryFlags.None) => new(Inner, flags);

    /// <summary>Writes <paramref name="data"/> at <paramref name="address"/> (MemProcFS's <c>memory.write</c>).</summary>
    /// <returns>How many bytes were written contiguously from <paramref name="address"/>.</returns>
    /// <exception cref="NotSupportedException">The chain's memory is read-only.</exception>
    public int Write(ulong address, ReadOnlySpan<byte> data, MemoryFlags flags = MemoryFlags.None)
    {
        if (IsReadOnly)
            throw new NotSupportedException("The machine's memory is read-only: its connector does not take writes.");
        return MemoryWrites.Write(Inner, address, data, flags);
    }

    /// <summary>Writes a value of an unmanaged type.</summary>
    /// <returns>False when not all of its bytes could be written.</returns>
    /// <exception cref="NotSupportedException">The chain's memory is read-only.</exception>
    public bool TryWrite<T>(ulong address, T value, MemoryFlags flags = MemoryFlags.None) where T : unmanaged
    {
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value));
        return Write(address, bytes, flags) == bytes.Length;
    }

    /// <summary>Finds <paramref name="pattern"/> (bytes with <c>??</c> wildcards) between <paramref name="start"/> and <paramref name="end"/> (exclusive).</summary>
    /// <remarks>
    /// Only where memory is known to be is searched: the memory map for physical memory, the memory areas for a
    /// process. Unreadable pages are skipped. <see cref="MemoryFlags.NoCache"/> keeps a large search from flushing caches.
    /// </remarks>
    /// <returns>The addresses of the matches, ascending, at most <paramref name="maxHits"/>.</returns>
    /// <exception cref="ArgumentException">This memory knows no ranges of its own (the kernel's) and no range was given.</exception>
    public IReadOnlyList<ulong> Search(BytePattern pattern, ulong start = 0, ulong end = ulong.MaxValue, int maxHits = MemorySearch.DefaultMaxHits,
        MemoryFlags flags = MemoryFlags.None, IProgress<SearchProgress>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        return MemorySearch.Search(Inner, pattern, Ranges(start, end), maxHits, progress, cancel, flags);
    }

    /// <summary>The ranges to search or scan between <paramref name="start"/> and <paramref name="end"/> (exclusive): this memory's own, cut to the window.</summary>
    /// <exception cref="ArgumentException">This memory knows no ranges of its own and the window is the whole address space.</exception>
    public IReadOnlyList<(ulong Start, ulong End)> Ranges(ulong start = 0, ulong end = ulong.MaxValue)
    {
        var known = KnownRanges();
        if (known is null)
        {
            if (start == 0 && end == ulong.MaxValue)
                throw new ArgumentException("This memory has no list of where it is mapped (no memory areas); give a start and an end.");
            return end > start ? [(start, end)] : [];
        }
        var cut = new List<(ulong, ulong)>();
        foreach (var (first, stop) in known)
        {
            ulong from = Math.Max(first, start), to = Math.Min(stop, end);
            if (to > from)
                cut.Add((from, to));
        }
        return cut;
    }

    /// <summary>Reads <paramref name="length"/> bytes from <paramref name="address"/> (unreadable ones as zeros) and formats them as MemProcFS's hex dump.</summary>
    public string Hex(ulong address, int length, MemoryFlags flags = MemoryFlags.None)
    {
        var bytes = new byte[length];
        Inner.Read(address, bytes, flags | MemoryFlags.ZeroPadOnFail);
        return HexDump.Format(bytes, address);
    }

    /// <summary>Where this memory is known to be (start inclusive, end exclusive, ascending), or null when it keeps no such list.</summary>
    private protected abstract IEnumerable<(ulong Start, ulong End)>? KnownRanges();
}

/// <summary>The machine's physical memory, as the chain's last connector serves it.</summary>
public sealed class MachinePhysicalMemory : MachineMemory
{
    private readonly IPhysicalMemory _physical;

    internal MachinePhysicalMemory(IMemory reader, IPhysicalMemory physical) : base(reader) => _physical = physical;

    public PhysicalMemoryMetadata Metadata => _physical.Metadata;

    /// <summary>Where RAM is (MemProcFS's <c>maps.memmap</c>).</summary>
    public MemoryMap Map => _physical.MemoryMap;

    /// <summary>The address after the last byte that may be readable.</summary>
    public ulong Size => _physical.Metadata.MaxAddress == ulong.MaxValue ? ulong.MaxValue : _physical.Metadata.MaxAddress + 1;

    public override bool IsReadOnly => _physical.Metadata.ReadOnly;

    private protected override IEnumerable<(ulong Start, ulong End)> KnownRanges()
    {
        var map = _physical.MemoryMap;
        if (map.Count == 0)
            return [(0, Size)];
        // A range ending at 2^64 is cut by one byte, which no search can miss in practice and which keeps ends exclusive.
        return map.Select(range => (range.Base, range.Last == ulong.MaxValue ? ulong.MaxValue : range.Last + 1));
    }
}

/// <summary>A virtual address space: a process's memory, or the kernel's.</summary>
public sealed class MachineVirtualMemory : MachineMemory
{
    private readonly IVirtualMemory _virtual;
    private readonly IPhysicalMemory _physical;
    private readonly Func<IReadOnlyList<MemoryArea>>? _areas;

    internal MachineVirtualMemory(IVirtualMemory memory, IPhysicalMemory physical, Func<IReadOnlyList<MemoryArea>>? areas) : base(memory)
    {
        _virtual = memory;
        _physical = physical;
        _areas = areas;
    }

    public override bool IsReadOnly => _physical.Metadata.ReadOnly;

    /// <summary>The physical address <paramref name="virtualAddress"/> maps to (MemProcFS's <c>virt2phys</c>).</summary>
    /// <returns>False when the address is not mapped (or its page is swapped out).</returns>
    public bool TryVirtualToPhysical(ulong virtualAddress, out ulong physicalAddress) => _virtual.TryTranslate(virtualAddress, out physicalAddress);

    /// <summary>The physical address <paramref name="virtualAddress"/> maps to, or null when it is not mapped.</summary>
    public ulong? VirtualToPhysical(ulong virtualAddress) => _virtual.TryTranslate(virtualAddress, out var physical) ? physical : null;

    private protected override IEnumerable<(ulong Start, ulong End)>? KnownRanges() =>
        _areas?.Invoke().Where(area => area.End > area.Start).Select(area => (area.Start, area.End));
}
