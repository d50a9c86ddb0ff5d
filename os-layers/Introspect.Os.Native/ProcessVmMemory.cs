using System.Buffers;
using System.Runtime.InteropServices;
using Introspect.Abi;

namespace Introspect.Os.Native;

/// <summary>A local process's virtual memory through <c>process_vm_readv</c>/<c>process_vm_writev</c>: one system call per batch of up to <see cref="MaxVectors"/> entries.</summary>
/// <remarks>
/// The kernel stops a transfer at the first entry it cannot complete and reports how many bytes moved; the entries
/// before it succeeded, that one failed, and the call goes on from the entry after it. A process that is gone fails
/// what remains of the batch. Host addresses have no physical address to give: <see cref="TryTranslate"/> says no.
/// </remarks>
internal sealed class ProcessVmMemory : IVirtualMemory
{
    /// <summary>The kernel's <c>UIO_MAXIOV</c>: the most vectors one call takes.</summary>
    internal const int MaxVectors = 1024;

    private const int PageSize = 4096;
    private const int Esrch = 3;
    private const int Eperm = 1;

    private readonly int _pid;
    private readonly bool _writable;

    public ProcessVmMemory(int pid, bool writable)
    {
        _pid = pid;
        _writable = writable;
    }

    public int Pid => _pid;

    public bool TryTranslate(ulong virtualAddress, out ulong physicalAddress)
    {
        physicalAddress = 0;
        return false;
    }

    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        Transfer(batch, write: false);
        if ((flags & MemoryFlags.ZeroPadOnFail) != 0)
        {
            for (int i = 0; i < batch.Length; i++)
            {
                if (!batch[i].Succeeded)
                    ReadPadded(ref batch[i]);
            }
        }
    }

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        if (!_writable)
            throw new NotSupportedException($"The memory of process {_pid} is read-only: writing needs 'native:write=on' (and the right to ptrace the process).");
        Transfer(batch, write: true);
    }

    /// <summary>Reads a failed entry page by page, zeroing the pages that cannot be read.</summary>
    private void ReadPadded(ref MemoryRequest entry)
    {
        var buffer = entry.Buffer;
        ulong address = entry.Address;
        if (buffer.Length > 0 && (ulong)(buffer.Length - 1) > ulong.MaxValue - address)
        {
            buffer.Span.Clear();
            entry.Succeeded = true;
            return;
        }
        int pages = 0;
        for (int offset = 0; offset < buffer.Length; pages++)
            offset += Math.Min(buffer.Length - offset, PageSize - (int)((address + (ulong)offset) % PageSize));
        var pieces = ArrayPool<MemoryRequest>.Shared.Rent(Math.Max(1, pages));
        try
        {
            int n = 0;
            for (int offset = 0; offset < buffer.Length;)
            {
                int chunk = Math.Min(buffer.Length - offset, PageSize - (int)((address + (ulong)offset) % PageSize));
                pieces[n++] = new MemoryRequest(address + (ulong)offset, buffer.Slice(offset, chunk));
                offset += chunk;
            }
            var span = pieces.AsSpan(0, n);
            Transfer(span, write: false);
            foreach (ref var piece in span)
            {
                if (!piece.Succeeded)
                    piece.Buffer.Span.Clear();
            }
            entry.Succeeded = true;
        }
        finally
        {
            pieces.AsSpan(0, Math.Max(1, pages)).Clear();
            ArrayPool<MemoryRequest>.Shared.Return(pieces);
        }
    }

    private void Transfer(Span<MemoryRequest> batch, bool write)
    {
        int count = Math.Min(batch.Length, MaxVectors);
        var local = ArrayPool<IoVector>.Shared.Rent(Math.Max(1, count));
        var remote = ArrayPool<IoVector>.Shared.Rent(Math.Max(1, count));
        var indices = ArrayPool<int>.Shared.Rent(Math.Max(1, count));
        var pins = ArrayPool<MemoryHandle>.Shared.Rent(Math.Max(1, count));
        var handles = ArrayPool<GCHandle>.Shared.Rent(Math.Max(1, count));
        int pinCount = 0, handleCount = 0;
        byte[]? pinned = null;
        nint pinnedBase = 0;
        try
        {
            int next = 0;
            while (next < batch.Length)
            {
                // Gather the next run of entries; empty and wrapping ones are settled here.
                int n = 0;
                while (next < batch.Length && n < MaxVectors)
                {
                    ref var entry = ref batch[next];
                    int length = entry.Buffer.Length;
                    if (length == 0)
                    {
                        entry.Succeeded = true;
                        next++;
                        continue;
                    }
                    if ((ulong)(length - 1) > ulong.MaxValue - entry.Address)
                    {
                        entry.Succeeded = false; // wraps past 2^64: names no memory
                        next++;
                        continue;
                    }
                    local[n] = new IoVector(Pin(entry.Buffer, ref pinned, ref pinnedBase, handles, ref handleCount, pins, ref pinCount), (nuint)length);
                    remote[n] = new IoVector((nint)entry.Address, (nuint)length);
                    indices[n] = next;
                    entry.Succeeded = false;
                    n++;
                    next++;
                }
                if (n == 0)
                    break;
                try
                {
                    // Pinned until the calls below are done (the finally frees them).
                    int done = 0;
                    while (done < n)
                    {
                        nint moved = write
                            ? Libc.ProcessVmWritev(_pid, local.AsSpan(done, n - done), remote.AsSpan(done, n - done))
                            : Libc.ProcessVmReadv(_pid, local.AsSpan(done, n - done), remote.AsSpan(done, n - done));
                        if (moved < 0)
                        {
                            int error = Marshal.GetLastPInvokeError();
                            if (error is Esrch or Eperm)
                                return; // the process is gone or closed to us: nothing more will succeed
                            done++; // the first entry's remote range is bad: it fails, the rest are tried
                            continue;
                        }
                        ulong left = (ulong)moved;
                        while (done < n && left >= remote[done].LengthBytes)
                        {
                            left -= remote[done].LengthBytes;
                            batch[indices[done]].Succeeded = true;
                            done++;
                        }
                        done++; // the entry the kernel stopped in failed (partly or wholly)
                    }
                }
                finally
                {
                    for (int k = 0; k < pinCount; k++)
                        pins[k].Dispose();
                    for (int k = 0; k < handleCount; k++)
                        handles[k].Free();
                    pinCount = handleCount = 0;
                    pinned = null;
                }
            }
        }
        finally
        {
            ArrayPool<IoVector>.Shared.Return(local);
            ArrayPool<IoVector>.Shared.Return(remote);
            ArrayPool<int>.Shared.Return(indices);
            pins.AsSpan(0, Math.Max(1, count)).Clear();
            ArrayPool<MemoryHandle>.Shared.Return(pins);
            ArrayPool<GCHandle>.Shared.Return(handles, clearArray: true);
        }
    }

    /// <summary>
    /// A buffer's address, pinned until the batch's call is done. A batch's buffers are usually slices of one array
    /// (a scatter read, or the pieces of one request), so an array pinned for the previous entry is reused: one handle
    /// for the lot instead of one per entry.
    /// </summary>
    private static nint Pin(Memory<byte> buffer, ref byte[]? pinned, ref nint pinnedBase, GCHandle[] handles, ref int handleCount, MemoryHandle[] pins, ref int pinCount)
    {
        if (MemoryMarshal.TryGetArray((ReadOnlyMemory<byte>)buffer, out var segment) && segment.Array is { } array)
        {
            if (!ReferenceEquals(array, pinned))
            {
                handles[handleCount] = GCHandle.Alloc(array, GCHandleType.Pinned);
                pinnedBase = handles[handleCount++].AddrOfPinnedObject();
                pinned = array;
            }
            return pinnedBase + segment.Offset;
        }
        pins[pinCount] = buffer.Pin();
        return Pointer(pins[pinCount++]);
    }

    /// <summary>The one unsafe spot: a pinned buffer's address, valid while its handle lives.</summary>
    private static unsafe nint Pointer(MemoryHandle handle) => (nint)handle.Pointer;
}

/// <summary>The kernel's <c>struct iovec</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly struct IoVector(nint address, nuint length)
{
    public readonly nint Address = address;
    public readonly nuint Length = length;

    public ulong LengthBytes => Length;
}
