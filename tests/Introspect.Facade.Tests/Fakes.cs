using System.Buffers.Binary;
using Introspect.Abi;

namespace Introspect.Facade.Tests;

/// <summary>Memory of 4 KiB pages at any 64-bit address, present only where written: physical, or virtual with a translation.</summary>
internal sealed class SparseMemory : IPhysicalMemory, IVirtualMemory
{
    private readonly Dictionary<ulong, byte[]> _pages = [];

    public SparseMemory(ulong maxAddress = 0xffff_ffff, bool readOnly = true)
    {
        MaxAddress = maxAddress;
        ReadOnly = readOnly;
        MemoryMap = MemoryMap.Linear(maxAddress + 1);
    }

    public ulong MaxAddress { get; }

    public bool ReadOnly { get; set; }

    public bool Disposed { get; private set; }

    public int ReadCalls { get; private set; }

    /// <summary>Virtual to physical, for <see cref="TryTranslate"/>; identity when null.</summary>
    public Func<ulong, ulong?>? Translation { get; init; }

    public PhysicalMemoryMetadata Metadata => new(MaxAddress, (ulong)_pages.Count * 4096, ReadOnly, 256);

    public MemoryMap MemoryMap { get; private set; }

    public void SetMemoryMap(MemoryMap map) => MemoryMap = map;

    public SparseMemory Set(ulong address, ReadOnlySpan<byte> data)
    {
        for (int done = 0; done < data.Length;)
        {
            ulong at = address + (ulong)done;
            if (!_pages.TryGetValue(at & ~0xfffUL, out var page))
                _pages[at & ~0xfffUL] = page = new byte[4096];
            int offset = (int)(at & 0xfff);
            int length = Math.Min(4096 - offset, data.Length - done);
            data.Slice(done, length).CopyTo(page.AsSpan(offset));
            done += length;
        }
        return this;
    }

    public SparseMemory Set64(ulong address, ulong value)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        return Set(address, bytes);
    }

    public SparseMemory Set32(ulong address, uint value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        return Set(address, bytes);
    }

    public SparseMemory Set16(ulong address, ushort value)
    {
        Span<byte> bytes = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(bytes, value);
        return Set(address, bytes);
    }

    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        ReadCalls++;
        foreach (ref var request in batch)
            request.Succeeded = Copy(request.Address, request.Buffer.Span, write: false);
    }

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        if (ReadOnly)
            throw new NotSupportedException("This test memory is read-only.");
        foreach (ref var request in batch)
            request.Succeeded = Copy(request.Address, request.Buffer.Span, write: true);
    }

    public bool TryTranslate(ulong virtualAddress, out ulong physicalAddress)
    {
        physicalAddress = 0;
        if (!_pages.ContainsKey(virtualAddress & ~0xfffUL))
            return false;
        var translated = Translation is null ? virtualAddress : Translation(virtualAddress);
        physicalAddress = translated ?? 0;
        return translated is not null;
    }

    public void Dispose() => Disposed = true;

    private bool Copy(ulong address, Span<byte> buffer, bool write)
    {
        for (int done = 0; done < buffer.Length;)
        {
            ulong at = address + (ulong)done;
            if (!_pages.ContainsKey(at & ~0xfffUL))
                return false;
            done += 4096 - (int)(at & 0xfff);
        }
        for (int done = 0; done < buffer.Length;)
        {
            ulong at = address + (ulong)done;
            var page = _pages[at & ~0xfffUL];
            int offset = (int)(at & 0xfff);
            int length = Math.Min(4096 - offset, buffer.Length - done);
            if (write)
                buffer.Slice(done, length).CopyTo(page.AsSpan(offset));
            else
                page.AsSpan(offset, length).CopyTo(buffer.Slice(done, length));
            done += length;
        }
        return true;
    }
}

/// <summary>An OS layer that answers from lists the test fills, with symbols and types, counting what it is asked.</summary>
internal sealed class FakeOs : IOperatingSystem, IKernelSymbols, IKernelTypes
{
    public FakeOs(SparseMemory physical, string name = "linux")
    {
        PhysicalMemory = physical;
        Info = new OsInfo
        {
            Name = name,
            Version = "Fake 1.0 (test)",
            Architecture = MachineArchitecture.X64,
            KernelBase = 0xffffffff81000000,
            DirectoryTableBase = 0x1000,
        };
    }

    public OsInfo Info { get; set; }

    public IPhysicalMemory PhysicalMemory { get; }

    public List<ProcessInfo> Processes { get; } = [];

    public Dictionary<ulong, List<MemoryArea>> Areas { get; } = [];

    public Dictionary<ulong, List<ModuleInfo>> Modules { get; } = [];

    public List<ModuleInfo> KernelModules { get; } = [];

    public Dictionary<ulong, SparseMemory> ProcessMemory { get; } = [];

    public SparseMemory KernelMemory { get; } = new(ulong.MaxValue - 1);

    public Dictionary<string, ulong> Symbols { get; } = new(StringComparer.Ordinal);

    public Dictionary<(string Type, string Field), ulong> Fields { get; } = [];

    public Dictionary<string, ulong> Sizes { get; } = new(StringComparer.Ordinal);

    public int GetProcessesCalls { get; private set; }

    public bool Disposed { get; private set; }

    public IReadOnlyList<ProcessInfo> GetProcesses()
    {
        GetProcessesCalls++;
        return [.. Processes];
    }

    public ProcessInfo? GetProcess(ulong pid) => Processes.FirstOrDefault(p => p.Pid == pid);

    public IVirtualMemory OpenProcessMemory(ProcessInfo process) =>
        process.DirectoryTableBase == 0 || process.DirectoryTableBase == Info.DirectoryTableBase
            ? KernelMemory
            : ProcessMemory.TryGetValue(process.Pid, out var memory) ? memory : new SparseMemory(ulong.MaxValue - 1);

    public IReadOnlyList<MemoryArea> GetMemoryAreas(ProcessInfo process) => Areas.TryGetValue(process.Pid, out var areas) ? areas : [];

    public IReadOnlyList<ModuleInfo> GetModules(ProcessInfo process) => Modules.TryGetValue(process.Pid, out var modules) ? modules : [];

    public IReadOnlyList<ModuleInfo> GetKernelModules() => KernelModules;

    public int SymbolCount => Symbols.Count;

    public bool TryGetSymbolAddress(string name, out ulong address) => Symbols.TryGetValue(name, out address);

    public bool TryGetSymbolName(ulong address, out string name, out ulong displacement)
    {
        var best = Symbols.Where(s => s.Value <= address).OrderByDescending(s => s.Value).FirstOrDefault();
        name = best.Key ?? "";
        displacement = best.Key is null ? 0 : address - best.Value;
        return best.Key is not null;
    }

    public bool TryGetTypeSize(string typeName, out ulong size) => Sizes.TryGetValue(typeName, out size);

    public bool TryGetFieldOffset(string typeName, string fieldPath, out ulong offset) => Fields.TryGetValue((typeName, fieldPath), out offset);

    public void Dispose() => Disposed = true;

    /// <summary>A user process with its own memory, areas and modules.</summary>
    public ProcessInfo AddProcess(ulong pid, string name, ulong parent = 1, string? commandLine = null, uint? uid = 0, ulong task = 0)
    {
        var info = new ProcessInfo
        {
            Pid = pid,
            ParentPid = parent,
            Name = name,
            CommandLine = commandLine,
            Arguments = commandLine?.Split(' '),
            Uid = uid,
            State = ProcessState.Sleeping,
            StateText = "S",
            DirectoryTableBase = 0x100000 + pid * 0x1000,
            KernelObject = task,
        };
        Processes.Add(info);
        ProcessMemory[pid] = new SparseMemory(ulong.MaxValue - 1) { Translation = address => 0x4000_0000 + (address & 0xfff_ffff) };
        return info;
    }
}
