using System.Runtime.InteropServices;
using Introspect.Abi;

namespace Introspect.Os.Native;

/// <summary>The machine Introspect runs on, as an OS layer: its processes from <c>/proc</c>, their memory through <c>process_vm_readv</c>.</summary>
internal sealed class NativeOperatingSystem : IOperatingSystem
{
    private static readonly byte[] ElfMagic = [0x7f, (byte)'E', (byte)'L', (byte)'F'];

    private readonly ProcFs _proc;
    private readonly bool _writable;

    public NativeOperatingSystem(ProcFs proc, bool writable)
    {
        _proc = proc;
        _writable = writable;
        var version = proc.TryReadText(Path.Combine(proc.Root, "version"))?.Trim() ?? RuntimeInformation.OSDescription;
        Info = new OsInfo
        {
            Name = "native",
            Version = version,
            Architecture = RuntimeInformation.OSArchitecture switch
            {
                Architecture.X64 => MachineArchitecture.X64,
                Architecture.X86 => MachineArchitecture.X86,
                Architecture.Arm64 => MachineArchitecture.Arm64,
                _ => MachineArchitecture.Unknown,
            },
            Properties = new Dictionary<string, string>
            {
                ["proc"] = proc.Root,
                ["write"] = writable ? "on" : "off",
            },
        };
    }

    public OsInfo Info { get; }

    /// <summary>The host's physical memory is not offered (it would need root and <c>/dev/mem</c>): a memory that reads nothing.</summary>
    public IPhysicalMemory PhysicalMemory { get; } = new NoPhysicalMemory();

    public IReadOnlyList<ProcessInfo> GetProcesses()
    {
        var boot = _proc.BootTime();
        var processes = new List<ProcessInfo>();
        foreach (int pid in _proc.ProcessIds())
        {
            if (_proc.Process(pid, boot) is { } process)
                processes.Add(process);
        }
        return processes;
    }

    public ProcessInfo? GetProcess(ulong pid) =>
        pid is 0 or > int.MaxValue ? null : _proc.Process((int)pid, _proc.BootTime());

    public IVirtualMemory OpenProcessMemory(ProcessInfo process)
    {
        ArgumentNullException.ThrowIfNull(process);
        if (process.Pid is 0 or > int.MaxValue)
            throw new ArgumentException($"Process id {process.Pid} is not a Linux process id.", nameof(process));
        return new ProcessVmMemory((int)process.Pid, _writable);
    }

    public IReadOnlyList<MemoryArea> GetMemoryAreas(ProcessInfo process)
    {
        ArgumentNullException.ThrowIfNull(process);
        return process.Pid is 0 or > int.MaxValue ? [] : _proc.MemoryAreas((int)process.Pid);
    }

    /// <summary>The ELF files mapped into the process: each file whose mapping at offset 0 starts with the ELF magic, the executable first.</summary>
    public IReadOnlyList<ModuleInfo> GetModules(ProcessInfo process)
    {
        var areas = GetMemoryAreas(process);
        if (areas.Count == 0)
            return [];
        var memory = OpenProcessMemory(process);
        var modules = new List<ModuleInfo>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var magic = new byte[4];
        foreach (var area in areas)
        {
            if (area.Offset != 0 || area.Path is not { Length: > 0 } path || path[0] != '/' || seen.Contains(path))
                continue;
            Span<MemoryRequest> request = [new MemoryRequest(area.Start, magic)];
            memory.Read(request);
            if (!request[0].Succeeded || !magic.AsSpan().SequenceEqual(ElfMagic))
                continue;
            seen.Add(path);
            ulong end = area.End;
            foreach (var other in areas)
            {
                if (other.Path == path && other.Start >= area.Start && other.End > end)
                    end = other.End;
            }
            modules.Add(new ModuleInfo(Path.GetFileName(path), path, area.Start, end - area.Start));
        }
        int main = process.Path is null ? -1 : modules.FindIndex(m => m.Path == process.Path);
        if (main > 0)
        {
            var first = modules[main];
            modules.RemoveAt(main);
            modules.Insert(0, first);
        }
        return modules;
    }

    /// <summary>The kernel's modules from <c>/proc/modules</c> (addresses read as zero without privileges).</summary>
    public IReadOnlyList<ModuleInfo> GetKernelModules()
    {
        var text = _proc.TryReadText(Path.Combine(_proc.Root, "modules"));
        if (text is null)
            return [];
        var modules = new List<ModuleInfo>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 2 || !ulong.TryParse(fields[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out ulong size))
                continue;
            ulong address = 0;
            if (fields.Length >= 6 && fields[5].StartsWith("0x", StringComparison.Ordinal))
                _ = ulong.TryParse(fields[5].AsSpan(2), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out address);
            modules.Add(new ModuleInfo(fields[0], null, address, size));
        }
        return modules;
    }

    public void Dispose()
    {
    }
}

/// <summary>A physical memory with nothing in it, for an OS layer that has no physical memory to offer.</summary>
internal sealed class NoPhysicalMemory : IPhysicalMemory
{
    public PhysicalMemoryMetadata Metadata { get; } = new(0, 0, true, 1);

    public MemoryMap MemoryMap => MemoryMap.Empty;

    public void SetMemoryMap(MemoryMap map) => throw new NotSupportedException("The native OS layer has no physical memory whose map could be set.");

    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        bool pad = (flags & MemoryFlags.ZeroPadOnFail) != 0;
        foreach (ref var entry in batch)
        {
            if (pad)
                entry.Buffer.Span.Clear();
            entry.Succeeded = pad || entry.Buffer.IsEmpty;
        }
    }

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) =>
        throw new NotSupportedException("The native OS layer has no physical memory to write.");

    public void Dispose()
    {
    }
}
