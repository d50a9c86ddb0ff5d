using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Introspect.Abi;

namespace Introspect.Core.Memory;

/// <summary>Collects many small reads and performs them as one batch (MemProcFS's <c>VmmScatterMemory</c>).</summary>
/// <remarks>
/// <see cref="Prepare"/> what will be needed, <see cref="Execute"/> once, then take the values with
/// <see cref="TryRead(ulong, Span{byte})"/>. Prepared ranges are kept as whole 4 KiB pages, each page once however
/// often it was prepared. <see cref="Execute"/> may be called again to read the same pages afresh. Not thread-safe.
/// </remarks>
public sealed class ScatterRead
{
    private const int PageSize = PhysicalBatch.PageSize;
    private const ulong PageMask = PhysicalBatch.PageMask;

    /// <summary>The most pages one scatter read holds (just under 2 GiB, what one array can hold).</summary>
    public const int MaxPages = int.MaxValue / PageSize;

    private readonly IMemory _memory;
    private readonly MemoryFlags _flags;
    private readonly Dictionary<ulong, int> _pageIndex = [];
    private readonly List<ulong> _pages = [];
    private byte[] _data = [];
    private bool[] _read = [];
    private MemoryRequest[] _requests = [];
    private int _executedPages;

    /// <param name="memory">The memory to read from.</param>
    /// <param name="flags">The flags every read of <see cref="Execute"/> uses.</param>
    public ScatterRead(IMemory memory, MemoryFlags flags = MemoryFlags.None)
    {
        ArgumentNullException.ThrowIfNull(memory);
        _memory = memory;
        _flags = flags;
    }

    /// <summary>How many distinct pages are prepared.</summary>
    public int PageCount => _pages.Count;

    /// <summary>Notes that <paramref name="length"/> bytes from <paramref name="address"/> will be read (cut at 2^64).</summary>
    /// <exception cref="InvalidOperationException">More than <see cref="MaxPages"/> pages would be prepared.</exception>
    public void Prepare(ulong address, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (length == 0)
            return;
        ulong last = PhysicalBatch.FitsInAddressSpace(address, length) ? address + (ulong)(length - 1) : ulong.MaxValue;
        for (ulong page = address & ~PageMask; ; page += PageSize)
        {
            if (!_pageIndex.ContainsKey(page))
            {
                if (_pages.Count == MaxPages)
                    throw new InvalidOperationException($"A scatter read holds at most {MaxPages} pages; execute and clear it before preparing more.");
                _pageIndex.Add(page, _pages.Count);
                _pages.Add(page);
            }
            if (page == (last & ~PageMask))
                break;
        }
    }

    /// <summary>Notes that a value of type <typeparamref name="T"/> at <paramref name="address"/> will be read.</summary>
    public void Prepare<T>(ulong address) where T : unmanaged => Prepare(address, Unsafe.SizeOf<T>());

    /// <summary>Reads every prepared page in one batch (cut into chunks of a physical memory's ideal batch size).</summary>
    public void Execute()
    {
        int count = _pages.Count;
        if (_data.Length < count * (long)PageSize)
            _data = GC.AllocateUninitializedArray<byte>(count * PageSize);
        if (_read.Length < count)
            _read = new bool[count];
        if (_requests.Length < count)
            _requests = new MemoryRequest[count];
        var requests = _requests.AsSpan(0, count);
        for (int i = 0; i < count; i++)
            requests[i] = new MemoryRequest(_pages[i], _data.AsMemory(i * PageSize, PageSize));
        PhysicalBatch.Read(_memory, requests, _flags);
        bool zeroPad = (_flags & MemoryFlags.ZeroPadOnFail) != 0;
        for (int i = 0; i < count; i++)
        {
            if (!requests[i].Succeeded && zeroPad)
                requests[i].Buffer.Span.Clear();
            _read[i] = requests[i].Succeeded || zeroPad;
        }
        _executedPages = count;
    }

    /// <summary>Copies prepared, executed bytes into <paramref name="destination"/>.</summary>
    /// <returns>False when any of the bytes was not prepared, not executed yet, or could not be read.</returns>
    public bool TryRead(ulong address, Span<byte> destination)
    {
        if (destination.IsEmpty)
            return true;
        if (!PhysicalBatch.FitsInAddressSpace(address, destination.Length))
            return false;
        ulong at = address;
        for (int done = 0; done < destination.Length;)
        {
            int offset = (int)(at & PageMask);
            int length = Math.Min(destination.Length - done, PageSize - offset);
            if (!_pageIndex.TryGetValue(at & ~PageMask, out int index) || index >= _executedPages || !_read[index])
                return false;
            _data.AsSpan(index * PageSize + offset, length).CopyTo(destination.Slice(done, length));
            done += length;
            at = unchecked(at + (ulong)length); // the last piece may end exactly at 2^64
        }
        return true;
    }

    /// <summary>The prepared, executed bytes, or null when any of them is missing.</summary>
    public byte[]? Read(ulong address, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        var bytes = new byte[length];
        return TryRead(address, bytes) ? bytes : null;
    }

    /// <summary>A prepared, executed value of an unmanaged type.</summary>
    public bool TryRead<T>(ulong address, out T value) where T : unmanaged
    {
        value = default;
        if (TryRead(address, MemoryMarshal.AsBytes(new Span<T>(ref value))))
            return true;
        value = default;
        return false;
    }

    /// <summary>Forgets every prepared range and what was read.</summary>
    public void Clear()
    {
        _pageIndex.Clear();
        _pages.Clear();
        _executedPages = 0;
    }
}
