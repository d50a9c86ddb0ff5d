using System.Diagnostics;
using Introspect.Abi;
using Introspect.Core.Caching;
using Introspect.Core.Chains;
using Introspect.Core.Memory;
using Introspect.Core.Plugins;
using Introspect.Core.Vfs;

namespace Introspect.Core;

/// <summary>One machine, opened from a chain: its physical memory, its processes, its kernel, its maps and the whole of it as files.</summary>
/// <remarks>
/// <para>
/// The .NET face of MemProcFS's <c>Vmm</c>: <see cref="GetProcess(string)"/> is <c>vmm.process('bash')</c>,
/// <see cref="Memory"/> is <c>vmm.memory</c>, <see cref="Kernel"/> is <c>vmm.kernel</c> (with its symbols as
/// <c>vmm.kernel.pdb</c> gives them), <see cref="Maps"/> is <c>vmm.maps</c>, <see cref="Vfs"/> is <c>vmm.vfs</c>,
/// <see cref="Config"/> is <c>get_config</c>/<c>set_config</c>.
/// </para>
/// <para>
/// Lists (processes, their areas and modules) are snapshots kept for <c>refresh_period_ms</c> (see <see cref="Config"/>)
/// or until <see cref="Refresh"/>. The OS layer is called by one thread at a time; memory reads run in parallel.
/// Programmer errors throw (<see cref="ObjectDisposedException"/>, <see cref="InvalidOperationException"/> when a chain
/// without an OS layer is asked for processes); unreadable memory never does.
/// </para>
/// </remarks>
public sealed class Machine : IDisposable
{
    private readonly IPhysicalMemory _physical;
    private readonly IOperatingSystem? _system;
    private readonly List<IDisposable> _owned;
    private readonly Lock _osGate = new();
    private readonly Lazy<MachineKernel> _kernel;
    private readonly Lazy<VirtualFileSystem> _vfs;
    private MachinePhysicalMemory _memory;
    private PageCache? _cache;
    private ProcessSnapshot? _snapshot;
    private int _disposed;

    private Machine(OpenedChain? chain, IPhysicalMemory physical, IOperatingSystem? system, List<IDisposable> owned, MachineLogging logging)
    {
        Chain = chain;
        _physical = physical;
        _system = system;
        _owned = owned;
        Logging = logging;
        Config = new MachineConfig(this);
        Maps = new MachineMaps(this);
        _memory = new MachinePhysicalMemory(physical, physical);
        _kernel = new Lazy<MachineKernel>(() => new MachineKernel(this, RequireSystem()));
        _vfs = new Lazy<VirtualFileSystem>(() => MachineVfs.Build(this));
    }

    /// <summary>Opens the machine a chain describes: <c>coredump:path=guest.raw -> linux</c>, or <c>@name</c> for a chain named in <c>plugins.json</c>.</summary>
    /// <param name="chain">The chain, in the syntax every part of Introspect reads.</param>
    /// <param name="options">Where plugins and the configuration are found, and where logs go.</param>
    /// <exception cref="ChainSyntaxException">The chain is malformed.</exception>
    /// <exception cref="PluginException">A step names no installed plugin, the steps are in an order no chain can have, or no chain has the name.</exception>
    /// <exception cref="PluginArgumentException">An argument is unknown or its value has the wrong form.</exception>
    /// <exception cref="InvalidDataException">The source is malformed, the OS layer cannot find its OS, or <c>plugins.json</c> is invalid.</exception>
    public static Machine Open(string chain, MachineOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(chain);
        options ??= new MachineOptions();
        var configuration = options.Configuration ?? PluginConfiguration.Load(options.ConfigurationFile);
        return Open(configuration.ResolveChain(chain), options with { Configuration = configuration });
    }

    /// <summary>Opens the machine a parsed chain describes.</summary>
    /// <inheritdoc cref="Open(string, MachineOptions?)"/>
    public static Machine Open(ChainSpec chain, MachineOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(chain);
        options ??= new MachineOptions();
        var logging = new MachineLogging(options.LoggerFactory);
        var owned = new List<IDisposable>();
        var host = options.Host;
        if (host is null)
        {
            var configuration = options.Configuration ?? PluginConfiguration.Load(options.ConfigurationFile);
            host = new PluginHost(
                PluginCatalog.Scan([.. options.PluginPaths, .. configuration.PluginPaths, .. PluginHost.DefaultSearchPaths()]),
                logging,
                new PluginHostOptions { Middleware = configuration.Middleware });
            owned.Add(host);
        }
        try
        {
            var opened = host.Open(chain);
            // The chain closes before the host that loaded its plugins.
            owned.Insert(0, opened);
            return Create(opened, opened.PhysicalMemory, opened.OperatingSystem, owned, logging);
        }
        catch
        {
            foreach (var disposable in owned)
                disposable.Dispose();
            throw;
        }
    }

    /// <summary>A machine over a chain already opened; disposing the machine closes it unless <see cref="MachineOptions.LeaveOpen"/>.</summary>
    public static Machine Open(OpenedChain chain, MachineOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(chain);
        options ??= new MachineOptions();
        return Create(chain, chain.PhysicalMemory, chain.OperatingSystem, options.LeaveOpen ? [] : [chain], new MachineLogging(options.LoggerFactory));
    }

    /// <summary>A machine over layers built by the caller: a physical memory and, optionally, the OS found in it.</summary>
    /// <remarks>Disposing the machine disposes both (the OS first) unless <see cref="MachineOptions.LeaveOpen"/>.</remarks>
    public static Machine Open(IPhysicalMemory memory, IOperatingSystem? system = null, MachineOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        options ??= new MachineOptions();
        var owned = new List<IDisposable>();
        if (!options.LeaveOpen)
        {
            if (system is not null)
                owned.Add(system);
            owned.Add(memory);
        }
        return Create(null, memory, system, owned, new MachineLogging(options.LoggerFactory));
    }

    private static Machine Create(OpenedChain? chain, IPhysicalMemory memory, IOperatingSystem? system, List<IDisposable> owned, MachineLogging logging) =>
        new(chain, memory, system, owned, logging);

    /// <summary>The chain the machine was opened from, when it was opened from one.</summary>
    public OpenedChain? Chain { get; }

    /// <summary>The OS layer at the end of the chain, or null for a chain that ends in a connector.</summary>
    public IOperatingSystem? OperatingSystem => _system;

    public bool HasOperatingSystem => _system is not null;

    /// <summary>Physical memory (MemProcFS's <c>vmm.memory</c>), through the machine's page cache when <c>cache_pages</c> is set.</summary>
    public MachinePhysicalMemory Memory
    {
        get
        {
            ThrowIfDisposed();
            return Volatile.Read(ref _memory);
        }
    }

    /// <summary>The kernel: its process, memory, symbols and modules (MemProcFS's <c>vmm.kernel</c>).</summary>
    /// <exception cref="InvalidOperationException">The chain ends in a connector, without an OS layer.</exception>
    public MachineKernel Kernel
    {
        get
        {
            ThrowIfDisposed();
            return _kernel.Value;
        }
    }

    /// <summary>What the machine can list beyond processes: the memory map, VMs, users, sockets, kernel modules (MemProcFS's <c>vmm.maps</c>).</summary>
    public MachineMaps Maps { get; }

    /// <summary>Values that tune the machine: refresh period, cache size, verbosity (MemProcFS's <c>get_config</c>/<c>set_config</c>).</summary>
    public MachineConfig Config { get; }

    /// <summary>The machine as files (MemProcFS's <c>vmm.vfs</c>); <c>introspect mount</c> serves this tree.</summary>
    public VirtualFileSystem Vfs
    {
        get
        {
            ThrowIfDisposed();
            return _vfs.Value;
        }
    }

    /// <summary>How many times the machine's snapshots were dropped by <see cref="Refresh"/>.</summary>
    public long RefreshCount => Interlocked.Read(ref _refreshCount);

    private long _refreshCount;

    internal MachineLogging Logging { get; }

    /// <summary>Where the machine and the plugins it opened log: the caller's factory (or standard error), filtered by the <c>verbosity</c> configuration value.</summary>
    public Microsoft.Extensions.Logging.ILoggerFactory LoggerFactory => Logging;

    internal IPhysicalMemory PhysicalLayer => _physical;

    /// <summary>Every process, kernel threads included (MemProcFS's <c>process_list</c>).</summary>
    /// <exception cref="InvalidOperationException">The chain ends in a connector, without an OS layer.</exception>
    public IReadOnlyList<MachineProcess> GetProcesses() => Snapshot().Processes;

    /// <summary>The process with id <paramref name="pid"/>, or null when there is none.</summary>
    public MachineProcess? GetProcess(ulong pid) => Snapshot().ByPid.GetValueOrDefault(pid);

    /// <summary>The first process called <paramref name="name"/> (MemProcFS's <c>vmm.process('name')</c>), or null.</summary>
    /// <remarks>
    /// A process's name is its short name (Linux's <c>comm</c>, cut to 15 characters); a longer name also finds a process
    /// whose executable has that file name, or whose short name is its first 15 characters.
    /// </remarks>
    public MachineProcess? GetProcess(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var processes = GetProcesses();
        return processes.FirstOrDefault(p => p.Name == name)
            ?? processes.FirstOrDefault(p => p.Info.Path is { } path && System.IO.Path.GetFileName(path) == name)
            ?? processes.FirstOrDefault(p => p.Name.Length == 15 && name.StartsWith(p.Name, StringComparison.Ordinal));
    }

    /// <summary>Every process called <paramref name="name"/>, matched as <see cref="GetProcess(string)"/> does.</summary>
    public IReadOnlyList<MachineProcess> GetProcesses(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return GetProcesses().Where(p => p.Name == name
            || (p.Info.Path is { } path && System.IO.Path.GetFileName(path) == name)
            || (p.Name.Length == 15 && name.StartsWith(p.Name, StringComparison.Ordinal))).ToList();
    }

    /// <summary>The process with id <paramref name="pid"/>.</summary>
    /// <exception cref="KeyNotFoundException">There is none.</exception>
    public MachineProcess Process(ulong pid) =>
        GetProcess(pid) ?? throw new KeyNotFoundException($"The machine has no process with pid {pid}.");

    /// <summary>The first process called <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">There is none.</exception>
    public MachineProcess Process(string name) =>
        GetProcess(name) ?? throw new KeyNotFoundException($"The machine has no process named '{name}'.");

    /// <summary>Drops every snapshot (processes, areas, modules, cached pages) so that the next question reads the machine afresh.</summary>
    public void Refresh()
    {
        ThrowIfDisposed();
        lock (_osGate)
        {
            _snapshot = null;
            Interlocked.Increment(ref _refreshCount);
        }
        RebuildCache();
    }

    /// <summary>Formats bytes in MemProcFS's hex dump layout (MemProcFS's <c>vmm.hex</c>).</summary>
    public static string Hex(ReadOnlySpan<byte> data, ulong address = 0) => HexDump.Format(data, address);

    /// <summary>Closes the machine: its chain (or the layers it was given), unless opened to leave them open.</summary>
    public void Close() => Dispose();

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        lock (_osGate)
        {
            _snapshot = null;
            // In order: what was opened last comes first in the list (the OS before its memory, a chain before its host).
            foreach (var owned in _owned)
                owned.Dispose();
            _owned.Clear();
        }
    }

    /// <summary>The current snapshot of processes, read again when the refresh period has passed.</summary>
    internal ProcessSnapshot Snapshot()
    {
        ThrowIfDisposed();
        var system = RequireSystem();
        var snapshot = Volatile.Read(ref _snapshot);
        if (snapshot is not null && snapshot.IsFresh(Config.RefreshPeriod))
            return snapshot;
        lock (_osGate)
        {
            if (_snapshot is not null && _snapshot.IsFresh(Config.RefreshPeriod))
                return _snapshot;
            var processes = system.GetProcesses();
            var fresh = new ProcessSnapshot(this, processes);
            Volatile.Write(ref _snapshot, fresh);
            return fresh;
        }
    }

    /// <summary>Runs a call into the OS layer, one at a time: the contract does not promise that a layer is thread-safe.</summary>
    internal T CallSystem<T>(Func<IOperatingSystem, T> call)
    {
        ThrowIfDisposed();
        var system = RequireSystem();
        lock (_osGate)
            return call(system);
    }

    internal IOperatingSystem RequireSystem() =>
        _system ?? throw new InvalidOperationException(
            $"The machine's chain{(Chain is null ? "" : $" '{Chain.Spec}'")} ends in a connector; processes, the kernel and their maps need an OS layer at its end (for example '... -> linux').");

    /// <summary>Puts the machine's page cache in front of its physical memory, or takes it away, as the configuration says.</summary>
    internal void RebuildCache()
    {
        int pages = (int)Math.Min(Config.CachePages, int.MaxValue);
        var ttl = Config.CacheTimeToLive;
        // The cache is never disposed: disposing it would dispose the chain's memory, which the chain owns.
        _cache = pages == 0 ? null : new PageCache(_physical, pages, ttl == TimeSpan.Zero ? CacheValidity.Forever : CacheValidity.ForTime(ttl));
        Volatile.Write(ref _memory, new MachinePhysicalMemory(_cache is null ? _physical : _cache, _physical));
    }

    internal PageCache? Cache => _cache;

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
}

/// <summary>One reading of the process list, with the facade objects made from it.</summary>
internal sealed class ProcessSnapshot
{
    private readonly long _taken = Stopwatch.GetTimestamp();

    public ProcessSnapshot(Machine machine, IReadOnlyList<ProcessInfo> processes)
    {
        var list = new List<MachineProcess>(processes.Count);
        var byPid = new Dictionary<ulong, MachineProcess>(processes.Count);
        foreach (var info in processes)
        {
            var process = new MachineProcess(machine, info, this);
            // A torn list can name one pid twice; the first one found stands.
            if (byPid.TryAdd(info.Pid, process))
                list.Add(process);
        }
        Processes = list;
        ByPid = byPid;
    }

    public IReadOnlyList<MachineProcess> Processes { get; }

    public Dictionary<ulong, MachineProcess> ByPid { get; }

    /// <summary>Whether the snapshot is younger than <paramref name="period"/>; a zero period keeps it until a refresh.</summary>
    public bool IsFresh(TimeSpan period) => period == TimeSpan.Zero || Stopwatch.GetElapsedTime(_taken) < period;
}
