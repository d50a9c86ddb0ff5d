using Introspect.Abi;

namespace Introspect.Connectors.Qemu;

/// <summary>A QEMU guest's RAM as the <c>qemu</c> connector serves it; resumes the guest on disposal when it paused it.</summary>
internal sealed class QemuGuestMemory : IPhysicalMemory, IConnectorHints
{
    private readonly IPhysicalMemory _inner;
    private readonly string? _resumeSocket;
    private readonly bool _resume;
    private readonly IPluginContext _context;
    private int _disposed;

    public QemuGuestMemory(IPhysicalMemory inner, string description, ulong pid, ulong? hostProcess, string? resumeSocket, bool resume, bool live, IPluginContext context)
    {
        _inner = inner;
        Description = description;
        Pid = pid;
        _resumeSocket = resumeSocket;
        _resume = resume;
        _context = context;
        Hints = new ConnectorHints { Format = "qemu", Live = live, HostProcessId = hostProcess, Architecture = MachineArchitecture.X64 };
    }

    /// <summary>What was found and used: the process, the layout's source, where RAM was read.</summary>
    public string Description { get; }

    /// <summary>The QEMU process.</summary>
    public ulong Pid { get; }

    public ConnectorHints Hints { get; }

    public PhysicalMemoryMetadata Metadata => _inner.Metadata;

    public MemoryMap MemoryMap => _inner.MemoryMap;

    public void SetMemoryMap(MemoryMap map) => _inner.SetMemoryMap(map);

    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => _inner.Read(batch, flags);

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => _inner.Write(batch, flags);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _inner.Dispose();
        if (_resumeSocket is null || !_resume)
            return;
        using var qmp = QmpClient.TryConnect(_resumeSocket, out var problem);
        try
        {
            if (qmp is null)
                _context.Log(PluginLogLevel.Warning, $"qemu: could not resume the guest of process {Pid}: {problem}.");
            else
                qmp.Execute("cont");
        }
        catch (Exception e) when (e is IOException or QmpException or System.Text.Json.JsonException)
        {
            _context.Log(PluginLogLevel.Warning, $"qemu: could not resume the guest of process {Pid}: {e.Message}.");
        }
    }
}
