using System.CommandLine;
using System.Diagnostics;
using System.IO.MemoryMappedFiles;
using System.Text.Json;
using Introspect.Abi;
using Introspect.Core;
using Introspect.Core.Chains;
using Introspect.Core.Plugins;
using Introspect.Fuse;
using Introspect.Yara;
using Microsoft.Extensions.DependencyInjection;
using Spectre.Console;

namespace Introspect.Cli.Commands;

/// <summary>One figure of <c>introspect bench</c>, beside the baseline measured in the same run.</summary>
/// <param name="Name">What was measured.</param>
/// <param name="Value">Our figure.</param>
/// <param name="Unit">The unit of both figures.</param>
/// <param name="Baseline">The same work done by a plain memory copy from a memory-mapped copy of the same bytes.</param>
/// <param name="Ratio">Value / Baseline: 1 is as fast as copying memory.</param>
internal sealed record BenchFigure(string Name, double Value, string Unit, double Baseline, double Ratio);

/// <summary><c>introspect bench</c>: how fast a chain's physical memory reads, against copying the same bytes from memory.</summary>
/// <remarks>
/// The baseline is the fastest a reader could possibly be: the bytes already sit in a memory mapping of ours and are
/// copied with a plain memory copy. Both sides copy the same addresses into the same buffers, alternating rounds so
/// that neither profits from a warmer cache or a quieter machine.
/// </remarks>
internal static class BenchCommand
{
    private const int SequentialChunk = 1 << 20;
    private const int PageSize = 4096;

    public static Command Create(CliConsole console)
    {
        var chain = CommonOptions.Chain();
        var json = CommonOptions.JsonOutput();
        var limit = new Option<ulong>("--size") { Description = "How many bytes of memory to measure over (from the start of the memory map)", DefaultValueFactory = _ => 256UL << 20 };
        var rounds = new Option<int>("--rounds") { Description = "How many alternating rounds of each measurement", DefaultValueFactory = _ => 5 };
        var pluginPath = CommonOptions.PluginPath();
        var verbose = CommonOptions.Verbose();
        var command = new Command("bench", "Measure sequential and 4 KiB scatter read speed against a plain memory copy");
        var mount = new Option<string>("--mount") { Description = "Also measure reading memory.pmem through a FUSE mount at this empty folder, beside the same reads through the API" };
        var yara = new Option<string>("--yara") { Description = "Also measure a YARA scan of the measured memory with these rules, beside the yara tool on a raw copy of it" };
        CommonOptions.AddTo(command, chain, json, limit, rounds, pluginPath, verbose);
        CommonOptions.AddTo(command, mount, yara);
        command.SetAction(parseResult =>
        {
            if (parseResult.GetValue(rounds) is < 1 or > 1000)
                throw new CliUsageException("--rounds must be between 1 and 1000.");
            using var opened = CommonOptions.OpenChain(parseResult, chain, pluginPath, verbose);
            var region = SelectRegion(opened.Memory.MemoryMap, parseResult.GetValue(limit));
            if (region.Count == 0)
                throw new CliUsageException("the chain's memory map is empty: nothing to measure.");

            using var baseline = BaselineCopy.Create(opened.Memory, region);
            var figures = new List<BenchFigure>
            {
                Sequential(opened.Memory, baseline, parseResult.GetValue(rounds)),
                Scatter(opened.Memory, baseline, parseResult.GetValue(rounds)),
            };
            if (opened.Chain.OperatingSystem is { } system)
            {
                using var services = CommonOptions.BuildServices(parseResult, pluginPath, verbose);
                figures.Add(ProcessList(services.GetRequiredService<PluginHost>(), opened.Spec, baseline, parseResult.GetValue(rounds)));
                figures.AddRange(VirtualReads(system, opened.Memory, parseResult.GetValue(rounds)));
                if (ProcessTranslations(system, opened.Memory, parseResult.GetValue(rounds)) is { } perProcess)
                    figures.Add(perProcess);
            }
            figures.AddRange(LiveBench.Figures(opened.Chain, parseResult.GetValue(rounds)));
            if (parseResult.GetValue(mount) is { } mountPoint)
                figures.Add(MountReads(opened.Chain, baseline, mountPoint, parseResult.GetValue(rounds)));
            if (parseResult.GetValue(yara) is { } rulesFile)
                figures.Add(YaraScan(opened.Chain, baseline, rulesFile, parseResult.GetValue(rounds)));
            if (parseResult.GetValue(json))
            {
                console.Output.WriteLine(JsonSerializer.Serialize(figures, CommonOptions.Json));
                return 0;
            }
            var table = new Table().AddColumns("measure", "introspect", "baseline (memcpy)", "unit", "ratio");
            foreach (var f in figures)
                table.AddRow(f.Name, f.Value.ToString("N0", System.Globalization.CultureInfo.InvariantCulture), f.Baseline.ToString("N0", System.Globalization.CultureInfo.InvariantCulture), f.Unit, f.Ratio.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture));
            console.Ansi.Write(table);
            console.Output.WriteLine($"measured over {CommonOptions.Hex(baseline.Size)} bytes in {region.Count} ranges, batch size {opened.Memory.Metadata.IdealBatchSize}");
            return 0;
        });
        return command;
    }

    /// <summary>The start of the memory map, cut to <paramref name="limit"/> bytes and to whole pages.</summary>
    private static List<MemoryRange> SelectRegion(MemoryMap map, ulong limit)
    {
        var region = new List<MemoryRange>();
        ulong total = 0;
        foreach (var range in map)
        {
            ulong start = (range.Base + PageSize - 1) & ~(ulong)(PageSize - 1);
            if (start - range.Base >= range.Size)
                continue;
            ulong size = (range.Size - (start - range.Base)) & ~(ulong)(PageSize - 1);
            size = Math.Min(size, limit - total);
            if (size == 0)
                continue;
            region.Add(new MemoryRange(start, size));
            total += size;
            if (total >= limit)
                break;
        }
        return region;
    }

    private static BenchFigure Sequential(IPhysicalMemory memory, BaselineCopy baseline, int rounds)
    {
        var buffer = new byte[SequentialChunk];
        var request = new MemoryRequest[1];
        long oursTicks = 0, baselineTicks = 0;
        ulong bytes = 0;
        for (int round = 0; round <= rounds; round++)
        {
            // Round 0 warms both sides (page cache, mappings) and is not counted.
            var watch = Stopwatch.StartNew();
            ulong roundBytes = 0;
            foreach (var range in baseline.Ranges)
            {
                for (ulong done = 0; done < range.Size; done += SequentialChunk)
                {
                    int length = (int)Math.Min(SequentialChunk, range.Size - done);
                    request[0] = new MemoryRequest(range.Base + done, buffer.AsMemory(0, length));
                    memory.Read(request);
                    roundBytes += (ulong)length;
                }
            }
            long ours = watch.ElapsedTicks;
            watch.Restart();
            foreach (var range in baseline.Ranges)
            {
                for (ulong done = 0; done < range.Size; done += SequentialChunk)
                {
                    int length = (int)Math.Min(SequentialChunk, range.Size - done);
                    baseline.Copy(range.Base + done, buffer.AsSpan(0, length));
                }
            }
            if (round == 0)
                continue;
            oursTicks += ours;
            baselineTicks += watch.ElapsedTicks;
            bytes += roundBytes;
        }
        double megabytes = bytes / (1024.0 * 1024.0);
        double oursRate = megabytes / Seconds(oursTicks);
        double baselineRate = megabytes / Seconds(baselineTicks);
        return new BenchFigure("sequential read (1 MiB reads)", oursRate, "MiB/s", baselineRate, oursRate / baselineRate);
    }

    private static BenchFigure Scatter(IPhysicalMemory memory, BaselineCopy baseline, int rounds)
    {
        const int Reads = 1 << 16;
        int batchSize = Math.Clamp(memory.Metadata.IdealBatchSize, 1, 4096);
        var random = new Random(0x1f7a);
        var addresses = new ulong[Reads];
        for (int i = 0; i < Reads; i++)
            addresses[i] = baseline.PageAt((ulong)random.NextInt64((long)(baseline.Size / PageSize)));

        var buffers = new byte[batchSize * PageSize];
        var batch = new MemoryRequest[batchSize];
        long oursTicks = 0, baselineTicks = 0;
        long reads = 0;
        for (int round = 0; round <= rounds; round++)
        {
            var watch = Stopwatch.StartNew();
            for (int start = 0; start < Reads; start += batchSize)
            {
                int count = Math.Min(batchSize, Reads - start);
                for (int i = 0; i < count; i++)
                    batch[i] = new MemoryRequest(addresses[start + i], buffers.AsMemory(i * PageSize, PageSize));
                memory.Read(batch.AsSpan(0, count));
            }
            long ours = watch.ElapsedTicks;
            watch.Restart();
            for (int start = 0; start < Reads; start += batchSize)
            {
                int count = Math.Min(batchSize, Reads - start);
                for (int i = 0; i < count; i++)
                    baseline.Copy(addresses[start + i], buffers.AsSpan(i * PageSize, PageSize));
            }
            if (round == 0)
                continue;
            oursTicks += ours;
            baselineTicks += watch.ElapsedTicks;
            reads += Reads;
        }
        double oursRate = reads / Seconds(oursTicks);
        double baselineRate = reads / Seconds(baselineTicks);
        return new BenchFigure($"random 4 KiB scatter reads (batches of {batchSize})", oursRate, "reads/s", baselineRate, oursRate / baselineRate);
    }

    /// <summary>
    /// Opening the chain and listing every process, against copying the measured RAM once: a ratio above 1 means a
    /// full process list costs less than one pass over the guest's memory.
    /// </summary>
    private static BenchFigure ProcessList(PluginHost host, ChainSpec spec, BaselineCopy baseline, int rounds)
    {
        var buffer = new byte[SequentialChunk];
        long oursTicks = 0, baselineTicks = 0;
        int processes = 0;
        for (int round = 0; round <= rounds; round++)
        {
            var watch = Stopwatch.StartNew();
            using (var chain = host.Open(spec))
                processes = chain.RequireOperatingSystem().GetProcesses().Count;
            long ours = watch.ElapsedTicks;
            watch.Restart();
            foreach (var range in baseline.Ranges)
            {
                for (ulong done = 0; done < range.Size; done += SequentialChunk)
                    baseline.Copy(range.Base + done, buffer.AsSpan(0, (int)Math.Min(SequentialChunk, range.Size - done)));
            }
            if (round == 0)
                continue;
            oursTicks += ours;
            baselineTicks += watch.ElapsedTicks;
        }
        double oursRate = rounds / Seconds(oursTicks);
        double baselineRate = rounds / Seconds(baselineTicks);
        return new BenchFigure($"open + full process list ({processes} processes; baseline: one copy of the RAM)", oursRate, "per s", baselineRate, oursRate / baselineRate);
    }

    /// <summary>
    /// Random 8-byte reads in the largest user process, with the translation cache warm and with every cache bypassed,
    /// against 8-byte reads of the same physical addresses: what translation costs per read.
    /// </summary>
    private static IEnumerable<BenchFigure> VirtualReads(IOperatingSystem system, IPhysicalMemory physical, int rounds)
    {
        var process = system.GetProcesses().Where(p => !p.IsKernelThread)
            .Select(p => (Process: p, Areas: system.GetMemoryAreas(p)))
            .OrderByDescending(p => p.Areas.Aggregate(0UL, (sum, area) => sum + (area.End - area.Start)))
            .FirstOrDefault();
        if (process.Process is null)
            yield break;
        var memory = system.OpenProcessMemory(process.Process);
        var random = new Random(0x51ab);
        var virtualPages = new List<ulong>();
        var physicalPages = new List<ulong>();
        var pages = process.Areas.SelectMany(a => Enumerable.Range(0, (int)Math.Min((a.End - a.Start) / PageSize, 1 << 16)).Select(i => a.Start + (ulong)i * PageSize)).ToList();
        foreach (var page in pages.OrderBy(_ => random.Next()).Take(1 << 14))
        {
            if (memory.TryTranslate(page, out var physicalPage))
            {
                virtualPages.Add(page);
                physicalPages.Add(physicalPage);
            }
        }
        if (virtualPages.Count < 16)
            yield break;

        const int Reads = 1 << 15;
        var picks = Enumerable.Range(0, Reads).Select(_ => random.Next(virtualPages.Count)).ToArray();
        var offsets = Enumerable.Range(0, Reads).Select(_ => (ulong)random.Next(PageSize / 8) * 8).ToArray();
        var virtualAddresses = picks.Select((pick, i) => virtualPages[pick] + offsets[i]).ToArray();
        var physicalAddresses = picks.Select((pick, i) => physicalPages[pick] + offsets[i]).ToArray();
        string name = $"random 8-byte reads in pid {process.Process.Pid} ({virtualPages.Count} pages; baseline: the same physical reads)";
        foreach (var (label, flags) in new[] { ("TLB on", MemoryFlags.None), ("TLB off", MemoryFlags.NoCache) })
        {
            var (ours, baselineRate) = ReadRates(memory, virtualAddresses, physical, physicalAddresses, flags, rounds);
            yield return new BenchFigure($"{name}, {label}", ours, "reads/s", baselineRate, ours / baselineRate);
        }
    }

    /// <summary>
    /// One address in each of many processes, translated through that process's own page tables with no cache (a fresh
    /// address space per process, as a process list followed by one read in each costs), against 8-byte reads of the
    /// physical addresses they give.
    /// </summary>
    private static BenchFigure? ProcessTranslations(IOperatingSystem system, IPhysicalMemory physical, int rounds)
    {
        var targets = new List<(ProcessInfo Process, ulong Address)>();
        var translated = new List<ulong>();
        foreach (var process in system.GetProcesses().Where(p => !p.IsKernelThread && p.DirectoryTableBase != 0))
        {
            var memory = system.OpenProcessMemory(process);
            foreach (var area in system.GetMemoryAreas(process).Take(16))
            {
                if (memory.TryTranslate(area.Start, out ulong physicalAddress))
                {
                    targets.Add((process, area.Start));
                    translated.Add(physicalAddress);
                }
            }
        }
        if (targets.Count == 0)
            return null;
        var physicalAddresses = translated.ToArray();
        var buffer = new byte[8];
        long oursTicks = 0, baselineTicks = 0;
        for (int round = 0; round <= rounds; round++)
        {
            var watch = Stopwatch.StartNew();
            for (int i = 0; i < targets.Count; i++)
            {
                var memory = system.OpenProcessMemory(targets[i].Process);
                var request = new MemoryRequest(targets[i].Address, buffer);
                memory.Read(new Span<MemoryRequest>(ref request), MemoryFlags.NoCache);
            }
            long ours = watch.ElapsedTicks;
            watch.Restart();
            for (int i = 0; i < targets.Count; i++)
            {
                var request = new MemoryRequest(physicalAddresses[i], buffer);
                physical.Read(new Span<MemoryRequest>(ref request), MemoryFlags.None);
            }
            if (round == 0)
                continue;
            oursTicks += ours;
            baselineTicks += watch.ElapsedTicks;
        }
        double reads = (double)targets.Count * rounds;
        double oursRate = reads / Seconds(oursTicks), baselineRate = reads / Seconds(baselineTicks);
        int processes = targets.Select(t => t.Process.Pid).Distinct().Count();
        return new BenchFigure($"per-process translation: one uncached read in each of {targets.Count} areas of {processes} processes (baseline: the same physical reads)",
            oursRate, "reads/s", baselineRate, oursRate / baselineRate);
    }

    private static (double Ours, double Baseline) ReadRates(IMemory memory, ulong[] addresses, IPhysicalMemory physical, ulong[] physicalAddresses, MemoryFlags flags, int rounds)
    {
        const int Batch = 256;
        var buffer = new byte[Batch * 8];
        var batch = new MemoryRequest[Batch];
        long oursTicks = 0, baselineTicks = 0;
        void Run(IMemory target, ulong[] at, MemoryFlags readFlags)
        {
            for (int start = 0; start < at.Length; start += Batch)
            {
                int count = Math.Min(Batch, at.Length - start);
                for (int i = 0; i < count; i++)
                    batch[i] = new MemoryRequest(at[start + i], buffer.AsMemory(i * 8, 8));
                target.Read(batch.AsSpan(0, count), readFlags);
            }
        }
        for (int round = 0; round <= rounds; round++)
        {
            var watch = Stopwatch.StartNew();
            Run(memory, addresses, flags);
            long ours = watch.ElapsedTicks;
            watch.Restart();
            Run(physical, physicalAddresses, MemoryFlags.None);
            if (round == 0)
                continue;
            oursTicks += ours;
            baselineTicks += watch.ElapsedTicks;
        }
        double reads = (double)addresses.Length * rounds;
        return (reads / Seconds(oursTicks), reads / Seconds(baselineTicks));
    }

    private static double Seconds(long ticks) => Math.Max(ticks, 1) / (double)Stopwatch.Frequency;

    /// <summary>
    /// Sequential 1 MiB reads of <c>memory.pmem</c> through a FUSE mount of the machine (through the kernel, back into
    /// this process), against the same reads through the machine's API: what serving memory as a file costs.
    /// </summary>
    private static BenchFigure MountReads(OpenedChain chain, BaselineCopy region, string mountPoint, int rounds)
    {
        FuseMount.CheckAvailable();
        using var machine = Machine.Open(chain, new MachineOptions { LeaveOpen = true });
        using var mounted = FuseMount.Mount(machine.Vfs, mountPoint);
        var loop = mounted.RunInBackground();
        try
        {
            using var file = File.OpenHandle(Path.Combine(mounted.MountPoint, "memory.pmem"));
            var buffer = new byte[SequentialChunk];
            long oursTicks = 0, baselineTicks = 0;
            ulong bytes = 0;
            for (int round = 0; round <= rounds; round++)
            {
                var watch = Stopwatch.StartNew();
                ulong roundBytes = 0;
                foreach (var range in region.Ranges)
                {
                    for (ulong done = 0; done < range.Size; done += SequentialChunk)
                    {
                        int length = (int)Math.Min(SequentialChunk, range.Size - done);
                        roundBytes += (ulong)RandomAccess.Read(file, buffer.AsSpan(0, length), (long)(range.Base + done));
                    }
                }
                long ours = watch.ElapsedTicks;
                watch.Restart();
                foreach (var range in region.Ranges)
                {
                    for (ulong done = 0; done < range.Size; done += SequentialChunk)
                        machine.Memory.Read(range.Base + done, buffer.AsSpan(0, (int)Math.Min(SequentialChunk, range.Size - done)));
                }
                if (round == 0)
                    continue;
                oursTicks += ours;
                baselineTicks += watch.ElapsedTicks;
                bytes += roundBytes;
            }
            double megabytes = bytes / (1024.0 * 1024.0);
            double oursRate = megabytes / Seconds(oursTicks);
            double baselineRate = megabytes / Seconds(baselineTicks);
            return new BenchFigure("read memory.pmem through the FUSE mount (1 MiB reads; baseline: the same reads through the API)", oursRate, "MiB/s", baselineRate, oursRate / baselineRate);
        }
        finally
        {
            mounted.Stop();
            loop.Wait(TimeSpan.FromSeconds(10));
        }
    }

    /// <summary>
    /// Compiling the rules and scanning the measured memory with YARA through the machine, against the <c>yara</c> tool
    /// compiling them and scanning a raw file of the same bytes (kept in the page cache by one read before the rounds).
    /// </summary>
    private static BenchFigure YaraScan(OpenedChain chain, BaselineCopy region, string rulesFile, int rounds)
    {
        using var check = YaraRules.CompileFile(rulesFile);
        var raw = Path.Combine(Path.GetTempPath(), $"introspect-bench-{Environment.ProcessId}.raw");
        try
        {
            using (var output = new FileStream(raw, FileMode.Create, FileAccess.Write))
            {
                var chunk = new byte[SequentialChunk];
                foreach (var range in region.Ranges)
                {
                    for (ulong done = 0; done < range.Size; done += SequentialChunk)
                    {
                        int length = (int)Math.Min(SequentialChunk, range.Size - done);
                        region.Copy(range.Base + done, chunk.AsSpan(0, length));
                        output.Write(chunk, 0, length);
                    }
                }
            }
            using var machine = Machine.Open(chain, new MachineOptions { LeaveOpen = true });
            long oursTicks = 0, baselineTicks = 0;
            int ourMatches = 0;
            for (int round = 0; round <= rounds; round++)
            {
                var watch = Stopwatch.StartNew();
                using (var rules = YaraRules.CompileFile(rulesFile))
                {
                    ourMatches = 0;
                    foreach (var range in region.Ranges)
                        ourMatches += machine.SearchYara(rules, new YaraScanOptions { Start = range.Base, End = range.Base + range.Size }).Count;
                }
                long ours = watch.ElapsedTicks;
                watch.Restart();
                RunYaraTool(rulesFile, raw);
                if (round == 0)
                    continue;
                oursTicks += ours;
                baselineTicks += watch.ElapsedTicks;
            }
            double megabytes = region.Size / (1024.0 * 1024.0) * rounds;
            double oursRate = megabytes / Seconds(oursTicks);
            double baselineRate = megabytes / Seconds(baselineTicks);
            return new BenchFigure($"YARA scan, rules compiled each round ({ourMatches} matches; baseline: the yara tool on a raw file of the same bytes)", oursRate, "MiB/s", baselineRate, oursRate / baselineRate);
        }
        finally
        {
            File.Delete(raw);
        }
    }

    private static void RunYaraTool(string rules, string file)
    {
        Process process;
        try
        {
            process = Process.Start(new ProcessStartInfo("yara", [rules, file]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new CliUsageException($"--yara compares with the yara tool, which is not installed (Debian: apt install yara): {e.Message}");
        }
        using (process)
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            process.WaitForExit();
            output.Wait();
            if (process.ExitCode != 0)
                throw new CliUsageException($"the yara tool failed on {file}: {error.Result.Trim()}");
        }
    }

    /// <summary>The measured region's bytes, copied once through the chain into an anonymous memory mapping.</summary>
    private sealed unsafe class BaselineCopy : IDisposable
    {
        private readonly MemoryMappedFile _file;
        private readonly MemoryMappedViewAccessor _view;
        private readonly byte* _pointer;
        private readonly ulong[] _offsets;

        private BaselineCopy(List<MemoryRange> ranges, ulong size)
        {
            Ranges = ranges;
            Size = size;
            _file = MemoryMappedFile.CreateNew(null, (long)size);
            _view = _file.CreateViewAccessor(0, (long)size);
            // The one place that touches the mapping's pointer: acquired here, released in Dispose.
            byte* pointer = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            _pointer = pointer + _view.PointerOffset;
            _offsets = new ulong[ranges.Count];
            ulong offset = 0;
            for (int i = 0; i < ranges.Count; i++)
            {
                _offsets[i] = offset;
                offset += ranges[i].Size;
            }
        }

        public List<MemoryRange> Ranges { get; }

        public ulong Size { get; }

        public static BaselineCopy Create(IPhysicalMemory memory, List<MemoryRange> ranges)
        {
            ulong size = 0;
            foreach (var range in ranges)
                size += range.Size;
            var copy = new BaselineCopy(ranges, size);
            var request = new MemoryRequest[1];
            var chunk = new byte[SequentialChunk];
            foreach (var range in ranges)
            {
                for (ulong done = 0; done < range.Size; done += SequentialChunk)
                {
                    int length = (int)Math.Min(SequentialChunk, range.Size - done);
                    request[0] = new MemoryRequest(range.Base + done, chunk.AsMemory(0, length));
                    memory.Read(request);
                    if (!request[0].Succeeded)
                        chunk.AsSpan(0, length).Clear();
                    chunk.AsSpan(0, length).CopyTo(copy.Slice(range.Base + done, length));
                }
            }
            return copy;
        }

        /// <summary>The physical address of the <paramref name="index"/>th page of the region.</summary>
        public ulong PageAt(ulong index)
        {
            ulong offset = index * PageSize;
            for (int i = 0; i < Ranges.Count; i++)
            {
                if (offset - _offsets[i] < Ranges[i].Size)
                    return Ranges[i].Base + (offset - _offsets[i]);
            }
            throw new ArgumentOutOfRangeException(nameof(index));
        }

        public void Copy(ulong address, Span<byte> destination) => Slice(address, destination.Length).CopyTo(destination);

        private Span<byte> Slice(ulong address, int length)
        {
            for (int i = 0; i < Ranges.Count; i++)
            {
                if (Ranges[i].Contains(address))
                    return new Span<byte>(_pointer + _offsets[i] + (address - Ranges[i].Base), length);
            }
            throw new ArgumentOutOfRangeException(nameof(address));
        }

        public void Dispose()
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
            _file.Dispose();
        }
    }
}
