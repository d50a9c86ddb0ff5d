using System.Buffers;
using System.Runtime.InteropServices;
using Introspect.Abi;

namespace Introspect.Core.Plugins.Native;

/// <summary>A native OS layer instance as <see cref="IOperatingSystem"/>.</summary>
/// <remarks>
/// Lists come through the contract's caller-buffer protocol (<see cref="NativeLists"/>), every element's size and
/// version set by the host first; text fields are decoded up to their first NUL and never past their end.
/// </remarks>
internal sealed unsafe class NativeOperatingSystem : IOperatingSystem
{
    private readonly NativeInstance _instance;
    private readonly PluginDescriptor _plugin;
    private readonly IpOsVtable _vtable;

    public NativeOperatingSystem(NativeInstance instance, PluginDescriptor plugin, IPhysicalMemory input)
    {
        _instance = instance;
        _plugin = plugin;
        PhysicalMemory = input;
        // A copy: the plugin cannot change the function pointers after they were checked.
        _vtable = *((IpOs*)instance.Instance)->Vtable;
        Info = ReadInfo();
    }

    /// <summary>The instance struct native connectors can be handed directly.</summary>
    public IpOs* Native => (IpOs*)_instance.Instance;

    public OsInfo Info { get; }

    public IPhysicalMemory PhysicalMemory { get; }

    private string LastError() => NativeErrors.LastError(_instance.Self, _vtable.LastError);

    private OsInfo ReadInfo()
    {
        using var call = new Call(_instance);
        var info = new IpOsInfo { Size = (uint)sizeof(IpOsInfo), Version = NativeAbi.OsInfoVersion };
        int result = _vtable.Info(_instance.Self, &info);
        if (result != (int)NativeResult.Ok)
            throw NativeErrors.ToException((NativeResult)result, _plugin, "describe its OS", LastError());
        return new OsInfo
        {
            Name = NativeAbi.ReadText(new ReadOnlySpan<byte>(info.Name, 32)),
            Version = NativeAbi.ReadText(new ReadOnlySpan<byte>(info.VersionText, 256)),
            Architecture = Architecture(info.Architecture),
            KernelBase = info.KernelBase,
            KernelSlide = (info.Flags & IpOsInfo.HasKernelSlide) != 0 ? info.KernelSlide : null,
            DirectoryTableBase = info.DirectoryTableBase,
        };
    }

    public IReadOnlyList<ProcessInfo> GetProcesses()
    {
        using var call = new Call(_instance);
        var processes = NativeLists.Fetch<IpProcess>(_plugin, "process list",
            (buffer, capacity, count) => _vtable.ProcessList(_instance.Self, buffer, capacity, (nuint)sizeof(IpProcess), count),
            static (ref IpProcess p) => { p.Size = (uint)sizeof(IpProcess); p.Version = NativeAbi.ProcessVersion; },
            LastError);
        var list = new List<ProcessInfo>(processes.Length);
        foreach (var p in processes)
            list.Add(ToProcess(p, path: null, commandLine: null));
        return list;
    }

    public ProcessInfo? GetProcess(ulong pid)
    {
        using var call = new Call(_instance);
        var details = (IpProcessDetails*)NativeMemory.AllocZeroed((nuint)sizeof(IpProcessDetails));
        try
        {
            details->Size = (uint)sizeof(IpProcessDetails);
            details->Version = NativeAbi.ProcessDetailsVersion;
            details->Process.Size = (uint)sizeof(IpProcess);
            details->Process.Version = NativeAbi.ProcessVersion;
            int result = _vtable.ProcessInfo(_instance.Self, pid, details);
            if (result == (int)NativeResult.NotFound)
                return null;
            if (result != (int)NativeResult.Ok)
                throw NativeErrors.ToException((NativeResult)result, _plugin, $"describe process {pid}", LastError());
            string path = NativeAbi.ReadText(new ReadOnlySpan<byte>(details->Path, 1024));
            string commandLine = NativeAbi.ReadText(new ReadOnlySpan<byte>(details->CommandLine, 4096));
            return ToProcess(details->Process, path.Length > 0 ? path : null, commandLine.Length > 0 ? commandLine : null);
        }
        finally
        {
            NativeMemory.Free(details);
        }
    }

    public IVirtualMemory OpenProcessMemory(ProcessInfo process)
    {
        ArgumentNullException.ThrowIfNull(process);
        return new ProcessMemory(this, process.Pid);
    }

    public IReadOnlyList<MemoryArea> GetMemoryAreas(ProcessInfo process)
    {
        ArgumentNullException.ThrowIfNull(process);
        using var call = new Call(_instance);
        var areas = NativeLists.Fetch<IpMemoryArea>(_plugin, "memory areas",
            (buffer, capacity, count) => _vtable.MemoryAreas(_instance.Self, process.Pid, buffer, capacity, (nuint)sizeof(IpMemoryArea), count),
            static (ref IpMemoryArea a) => { a.Size = (uint)sizeof(IpMemoryArea); a.Version = NativeAbi.MemoryAreaVersion; },
            LastError);
        var list = new List<MemoryArea>(areas.Length);
        foreach (var a in areas)
        {
            string path = NativeAbi.ReadText(new ReadOnlySpan<byte>(a.Path, 1024));
            list.Add(new MemoryArea(a.Start, a.End, (MemoryProtection)(a.Protection & 0xf), a.Offset, path.Length > 0 ? path : null));
        }
        return list;
    }

    public IReadOnlyList<ModuleInfo> GetModules(ProcessInfo process)
    {
        ArgumentNullException.ThrowIfNull(process);
        return Modules(process.Pid);
    }

    public IReadOnlyList<ModuleInfo> GetKernelModules() => Modules(NativeAbi.KernelPid);

    private List<ModuleInfo> Modules(ulong pid)
    {
        using var call = new Call(_instance);
        var modules = NativeLists.Fetch<IpModule>(_plugin, "module list",
            (buffer, capacity, count) => _vtable.ModuleList(_instance.Self, pid, buffer, capacity, (nuint)sizeof(IpModule), count),
            static (ref IpModule m) => { m.Size = (uint)sizeof(IpModule); m.Version = NativeAbi.ModuleVersion; },
            LastError);
        var list = new List<ModuleInfo>(modules.Length);
        foreach (var m in modules)
        {
            string path = NativeAbi.ReadText(new ReadOnlySpan<byte>(m.Path, 1024));
            list.Add(new ModuleInfo(NativeAbi.ReadText(new ReadOnlySpan<byte>(m.Name, 256)), path.Length > 0 ? path : null, m.Base, m.ImageSize));
        }
        return list;
    }

    private static ProcessInfo ToProcess(in IpProcess p, string? path, string? commandLine)
    {
        fixed (byte* name = p.Name)
        fixed (byte* state = p.StateText)
        {
            return new ProcessInfo
            {
                Pid = p.Pid,
                ParentPid = p.ParentPid,
                Name = NativeAbi.ReadText(new ReadOnlySpan<byte>(name, 64)),
                Path = path,
                CommandLine = commandLine,
                State = Enum.IsDefined((ProcessState)p.State) ? (ProcessState)p.State : ProcessState.Unknown,
                StateText = NativeAbi.ReadText(new ReadOnlySpan<byte>(state, 8)) is { Length: > 0 } text ? text : null,
                Uid = (p.Flags & IpProcess.HasUid) != 0 ? p.Uid : null,
                ThreadCount = (int)Math.Min(p.ThreadCount, int.MaxValue),
                IsKernelThread = (p.Flags & IpProcess.KernelThread) != 0,
                IsHidden = (p.Flags & IpProcess.Hidden) != 0,
                DirectoryTableBase = p.DirectoryTableBase,
                UserDirectoryTableBase = (p.Flags & IpProcess.HasUserDirectoryTableBase) != 0 ? p.UserDirectoryTableBase : null,
                KernelObject = p.KernelObject,
                Architecture = Architecture(p.Architecture),
            };
        }
    }

    private static MachineArchitecture Architecture(uint value) =>
        Enum.IsDefined((MachineArchitecture)value) ? (MachineArchitecture)value : MachineArchitecture.Unknown;

    public void Dispose() => _instance.Dispose();

    /// <summary>Holds a reference on the instance for the length of one call.</summary>
    private readonly ref struct Call
    {
        private readonly NativeInstance _instance;
        private readonly bool _added;

        public Call(NativeInstance instance)
        {
            _instance = instance;
            instance.DangerousAddRef(ref _added);
        }

        public void Dispose()
        {
            if (_added)
                _instance.DangerousRelease();
        }
    }

    /// <summary>One process's virtual memory through <c>process_read</c>, <c>process_write</c> and <c>process_translate</c>.</summary>
    private sealed class ProcessMemory(NativeOperatingSystem os, ulong pid) : IVirtualMemory
    {
        private const int StackEntries = 64;

        public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => Transfer(batch, flags, write: false);

        public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
        {
            if (os._vtable.ProcessWrite == null)
                throw new NotSupportedException($"{os._plugin.Name}: this OS layer cannot write process memory.");
            Transfer(batch, flags, write: true);
        }

        private void Transfer(Span<MemoryRequest> batch, MemoryFlags flags, bool write)
        {
            if (batch.IsEmpty)
                return;
            IpMemoryRequest[]? rented = null;
            Span<IpMemoryRequest> requests = batch.Length <= StackEntries
                ? stackalloc IpMemoryRequest[StackEntries]
                : (rented = ArrayPool<IpMemoryRequest>.Shared.Rent(batch.Length));
            requests = requests[..batch.Length];
            var handles = new MemoryHandle[batch.Length];
            try
            {
                for (int i = 0; i < batch.Length; i++)
                {
                    handles[i] = batch[i].Buffer.Pin();
                    requests[i] = new IpMemoryRequest { Address = batch[i].Address, Buffer = (byte*)handles[i].Pointer, Length = (ulong)batch[i].Buffer.Length };
                }
                using var call = new Call(os._instance);
                int result;
                fixed (IpMemoryRequest* pointer = requests)
                {
                    result = write
                        ? os._vtable.ProcessWrite(os._instance.Self, pid, pointer, (nuint)batch.Length, (nuint)sizeof(IpMemoryRequest), (uint)flags)
                        : os._vtable.ProcessRead(os._instance.Self, pid, pointer, (nuint)batch.Length, (nuint)sizeof(IpMemoryRequest), (uint)flags);
                }
                if (write && result == (int)NativeResult.Unsupported)
                    throw new NotSupportedException($"{os._plugin.Name}: {os.LastError()}");
                for (int i = 0; i < batch.Length; i++)
                    batch[i].Succeeded = result == (int)NativeResult.Ok && requests[i].Ok != 0;
            }
            finally
            {
                foreach (var handle in handles)
                    handle.Dispose();
                if (rented is not null)
                    ArrayPool<IpMemoryRequest>.Shared.Return(rented);
            }
        }

        public bool TryTranslate(ulong virtualAddress, out ulong physicalAddress)
        {
            using var call = new Call(os._instance);
            ulong result = 0;
            bool ok = os._vtable.ProcessTranslate(os._instance.Self, pid, virtualAddress, &result) == (int)NativeResult.Ok;
            physicalAddress = ok ? result : 0;
            return ok;
        }
    }
}
