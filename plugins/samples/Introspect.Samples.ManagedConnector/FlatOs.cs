using Introspect.Abi;

namespace Introspect.Samples.ManagedConnector;

/// <summary>The <c>managed-sample-os</c> OS layer: one process whose virtual memory is the input's physical memory.</summary>
public sealed class FlatOsFactory : IOsLayerFactory
{
    /// <inheritdoc />
    public IReadOnlyList<PluginParameter> Parameters { get; } =
    [
        new("pid", PluginParameterType.Number, "The process's id.") { DefaultValue = "1" },
        new("name", PluginParameterType.String, "The process's name.") { DefaultValue = "memory" },
    ];

    /// <inheritdoc />
    public IOperatingSystem Create(IPhysicalMemory input, PluginArguments arguments, IPluginContext context)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(arguments);
        ArgumentNullException.ThrowIfNull(context);
        if (context is ITranslationCacheSettings tlb)
            context.Log(PluginLogLevel.Debug, $"managed-sample-os: a TLB would hold {(tlb.Enabled ? tlb.Entries : 0)} entries, max age {tlb.MaxAge?.ToString() ?? "forever"}");
        var process = new ProcessInfo
        {
            Pid = arguments.GetNumber("pid") ?? 1,
            Name = arguments.GetString("name") ?? "memory",
            Path = "[physical memory]",
            State = ProcessState.Running,
            StateText = "R",
        };
        return new FlatOs(input, process);
    }

    private sealed class FlatOs(IPhysicalMemory input, ProcessInfo process) : IOperatingSystem
    {
        public OsInfo Info { get; } = new() { Name = "flat", Version = "managed-sample-os 1.0.0: one process, virtual = physical" };

        public IPhysicalMemory PhysicalMemory => input;

        public IReadOnlyList<ProcessInfo> GetProcesses() => [process];

        public ProcessInfo? GetProcess(ulong pid) => pid == process.Pid ? process : null;

        public IVirtualMemory OpenProcessMemory(ProcessInfo process) => new Identity(input);

        public IReadOnlyList<MemoryArea> GetMemoryAreas(ProcessInfo process) =>
            [.. input.MemoryMap.Select(r => new MemoryArea(r.Base, r.Base + r.Size, MemoryProtection.Read | MemoryProtection.Write, r.Base, "[physical]"))];

        public IReadOnlyList<ModuleInfo> GetModules(ProcessInfo process) => [];

        public IReadOnlyList<ModuleInfo> GetKernelModules() => [];

        public void Dispose()
        {
            // The input belongs to the chain.
        }
    }

    private sealed class Identity(IPhysicalMemory input) : IVirtualMemory
    {
        public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => input.Read(batch, flags);

        public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => input.Write(batch, flags);

        public bool TryTranslate(ulong virtualAddress, out ulong physicalAddress)
        {
            physicalAddress = virtualAddress;
            return input.MemoryMap.IndexOf(virtualAddress) >= 0;
        }
    }
}
