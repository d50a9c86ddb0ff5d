using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Introspect.Abi;
using Introspect.Core.Chains;

namespace Introspect.Cli.Commands;

/// <summary>
/// The figures of <c>introspect bench</c> for a live chain: reads through the chain beside <c>process_vm_readv</c> of the
/// same bytes from the VM's process (the fastest a reader of another process's memory can be), and one process-list refresh.
/// </summary>
internal static partial class LiveBench
{
    private const int PageSize = 4096;
    private const int ScatterReads = 8192;
    private const int SequentialChunk = 1 << 20;
    private const ulong SequentialBytes = 64UL << 20;

    /// <summary>The target of one process-list refresh: 10 ms per 100 processes.</summary>
    private const double RefreshAimMilliseconds = 10;

    public static IEnumerable<BenchFigure> Figures(OpenedChain chain, int rounds)
    {
        var hints = chain.Hints;
        if (hints.HostProcessId is { } pid && pid <= int.MaxValue)
        {
            if (Scatter(chain.PhysicalMemory, (int)pid, rounds) is { } scatter)
                yield return scatter;
            if (Sequential(chain.PhysicalMemory, (int)pid, rounds) is { } sequential)
                yield return sequential;
        }
        if ((hints.Live || hints.HostProcessId is not null) && chain.OperatingSystem is { } system)
            yield return Refresh(system, rounds);
    }

    private static BenchFigure? Scatter(IPhysicalMemory memory, int pid, int rounds)
    {
        var map = memory.MemoryMap;
        var pages = new List<ulong>();
        foreach (var range in map)
        {
            for (ulong offset = (PageSize - range.Base % PageSize) % PageSize; offset + PageSize <= range.Size; offset += PageSize)
                pages.Add(range.Base + offset);
        }
        if (pages.Count == 0)
            return null;
        var random = new Random(1234);
        var addresses = new ulong[ScatterReads];
        var hostAddresses = new ulong[ScatterReads];
        for (int i = 0; i < ScatterReads; i++)
        {
            addresses[i] = pages[random.Next(pages.Count)];
            map.TryTranslate(addresses[i], out hostAddresses[i], out _);
        }
        int batchSize = Math.Clamp(memory.Metadata.IdealBatchSize, 1, 1024);
        var buffers = new byte[batchSize * PageSize];
        var batch = new MemoryRequest[batchSize];
        long oursTicks = 0, baselineTicks = 0;
        // Odd rounds measure the baseline first, so that neither side always reads pages the other just brought in.
        for (int round = 0; round <= rounds; round++)
        {
            for (int side = 0; side < 2; side++)
            {
                bool oursNow = (side == 0) == (round % 2 == 0);
                var watch = Stopwatch.StartNew();
                for (int start = 0; start < ScatterReads; start += batchSize)
                {
                    int n = Math.Min(batchSize, ScatterReads - start);
                    if (oursNow)
                    {
                        for (int i = 0; i < n; i++)
                            batch[i] = new MemoryRequest(addresses[start + i], buffers.AsMemory(i * PageSize, PageSize));
                        memory.Read(batch.AsSpan(0, n));
                    }
                    else
                    {
                        ReadProcess(pid, hostAddresses.AsSpan(start, n), buffers, PageSize);
                    }
                }
                if (round > 0)
                {
                    if (oursNow)
                        oursTicks += watch.ElapsedTicks;
                    else
                        baselineTicks += watch.ElapsedTicks;
                }
            }
        }
        double reads = (double)ScatterReads * rounds;
        double ours = reads / Seconds(oursTicks), baseline = reads / Seconds(baselineTicks);
        return new BenchFigure(string.Create(CultureInfo.InvariantCulture, $"live: random 4 KiB reads (batches of {batchSize}; baseline: process_vm_readv of the same pages from QEMU pid {pid})"),
            ours, "reads/s", baseline, ours / baseline);
    }

    private static BenchFigure? Sequential(IPhysicalMemory memory, int pid, int rounds)
    {
        var map = memory.MemoryMap;
        var chunks = new List<(ulong Guest, ulong Host)>();
        foreach (var range in map)
        {
            for (ulong offset = 0; offset + SequentialChunk <= range.Size && (ulong)chunks.Count * SequentialChunk < SequentialBytes; offset += SequentialChunk)
                chunks.Add((range.Base + offset, range.BackingBase + offset));
        }
        if (chunks.Count == 0)
            return null;
        var buffer = new byte[SequentialChunk];
        var request = new MemoryRequest[1];
        var host = new ulong[1];
        long oursTicks = 0, baselineTicks = 0;
        for (int round = 0; round <= rounds; round++)
        {
            var watch = Stopwatch.StartNew();
            foreach (var (guest, _) in chunks)
            {
                request[0] = new MemoryRequest(guest, buffer);
                memory.Read(request);
            }
            if (round > 0)
                oursTicks += watch.ElapsedTicks;
            watch.Restart();
            foreach (var (_, hostAddress) in chunks)
            {
                host[0] = hostAddress;
                ReadProcess(pid, host, buffer, SequentialChunk);
            }
            if (round > 0)
                baselineTicks += watch.ElapsedTicks;
        }
        double megabytes = (double)chunks.Count * rounds * SequentialChunk / (1 << 20);
        double ours = megabytes / Seconds(oursTicks), baseline = megabytes / Seconds(baselineTicks);
        return new BenchFigure("live: sequential 1 MiB reads (baseline: process_vm_readv of the same bytes)", ours, "MiB/s", baseline, ours / baseline);
    }

    /// <summary>One full process list of the live OS, in milliseconds per 100 processes, against the 10 ms aim (ratio above 1: faster than the aim).</summary>
    private static BenchFigure Refresh(IOperatingSystem system, int rounds)
    {
        int count = system.GetProcesses().Count; // warms the layer's caches of types and symbols
        long ticks = 0;
        for (int round = 0; round < rounds; round++)
        {
            var watch = Stopwatch.StartNew();
            count = system.GetProcesses().Count;
            ticks += watch.ElapsedTicks;
        }
        double milliseconds = Seconds(ticks) * 1000 / rounds;
        double per100 = milliseconds * 100 / Math.Max(1, count);
        return new BenchFigure(string.Create(CultureInfo.InvariantCulture, $"live: one process-list refresh ({count} processes, {milliseconds:0.00} ms; per 100 processes; baseline: the 10 ms aim)"),
            per100, "ms", RefreshAimMilliseconds, RefreshAimMilliseconds / Math.Max(per100, 1e-9));
    }

    /// <summary>Reads <paramref name="length"/> bytes at each host address into consecutive slices of <paramref name="buffer"/>, one system call per 1024.</summary>
    private static unsafe void ReadProcess(int pid, ReadOnlySpan<ulong> addresses, byte[] buffer, int length)
    {
        var local = ArrayPool<IoVec>.Shared.Rent(addresses.Length);
        var remote = ArrayPool<IoVec>.Shared.Rent(addresses.Length);
        try
        {
            // The one unsafe spot: the buffer stays pinned for the calls.
            fixed (byte* pointer = buffer)
            {
                for (int i = 0; i < addresses.Length; i++)
                {
                    int slot = length == buffer.Length ? 0 : i * length;
                    local[i] = new IoVec((nint)(pointer + slot), (nuint)length);
                    remote[i] = new IoVec((nint)addresses[i], (nuint)length);
                }
                for (int start = 0; start < addresses.Length; start += 1024)
                {
                    int n = Math.Min(1024, addresses.Length - start);
                    process_vm_readv(pid, local.AsSpan(start, n), (nuint)n, remote.AsSpan(start, n), (nuint)n, 0);
                }
            }
        }
        finally
        {
            ArrayPool<IoVec>.Shared.Return(local);
            ArrayPool<IoVec>.Shared.Return(remote);
        }
    }

    private static double Seconds(long ticks) => Math.Max(ticks, 1) / (double)Stopwatch.Frequency;

    [StructLayout(LayoutKind.Sequential)]
    private readonly struct IoVec(nint address, nuint length)
    {
        public readonly nint Address = address;
        public readonly nuint Length = length;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint process_vm_readv(int pid, ReadOnlySpan<IoVec> localIov, nuint localCount, ReadOnlySpan<IoVec> remoteIov, nuint remoteCount, nuint flags);
}
