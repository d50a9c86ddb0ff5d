using System.Globalization;
using Introspect.Abi;
using Introspect.Connectors.LeechCore.Native;

namespace Introspect.Connectors.LeechCore;

/// <summary>Physical memory served by an open LeechCore device.</summary>
/// <remarks>
/// <para>Reads and writes go through <see cref="ScatterBatch"/>: pages split, calls cut to
/// <see cref="PhysicalMemoryMetadata.IdealBatchSize"/> entries. Any number of threads may read at once: each call
/// rents its own native entries, and the device handle is referenced for the call's duration, so disposing while
/// a read runs closes the device after it.</para>
/// <para>The memory map is LeechCore's (<c>LC_CMD_MEMMAP_GET</c>); a range's backing address is where LeechCore
/// finds it in the device (a dump file's offset; the address itself for live memory). Parts of a request outside
/// the map fail without troubling the device. <see cref="SetMemoryMap"/> hands the new map to LeechCore
/// (<c>LC_CMD_MEMMAP_SET</c>), under a lock no read holds, because LeechCore rebuilds its map in place.</para>
/// </remarks>
internal sealed class LeechCoreMemory : IPhysicalMemory, IConnectorHints
{
    /// <summary>Pages per scatter call for DMA hardware and remote devices, where each call is a round trip.</summary>
    public const int HardwareBatchSize = 256;

    /// <summary>Pages per scatter call for devices that read from the host itself (files, drivers, hypervisors).</summary>
    public const int LocalBatchSize = 1024;

    /// <summary><c>LcMemMap_GetMaxAddress</c>'s answer when a device has no map at all.</summary>
    private const ulong NoMapTop = 0x0000ffffffffffff;

    private readonly LeechCoreDevice _device;
    private readonly IPluginContext _context;
    private readonly string _label;
    private readonly int _idealBatchSize;
    private readonly ReaderWriterLockSlim _mapLock = new(LockRecursionPolicy.NoRecursion);
    private readonly ScatterBatch?[] _pool = new ScatterBatch?[Math.Max(2, Environment.ProcessorCount)];
    private volatile State _state;
    private volatile bool _disposed;

    private LeechCoreMemory(LeechCoreDevice device, string label, MemoryMap map, ConnectorHints hints, int idealBatchSize, IPluginContext context)
    {
        _device = device;
        _label = label;
        _idealBatchSize = idealBatchSize;
        _context = context;
        Hints = hints;
        _state = new State(map, new PhysicalMemoryMetadata(map.Count == 0 ? 0 : map.MaxAddress, map.TotalSize, !device.IsWritable, idealBatchSize));
    }

    /// <summary>Opens a device and reads its memory map and memory information.</summary>
    /// <param name="library">The LeechCore to open it with.</param>
    /// <param name="request">The device, remote and configuration.</param>
    /// <param name="plugin">The plugin's name, for messages and the hints' format.</param>
    /// <param name="batchSize">Entries per scatter call, or null for the device's default.</param>
    /// <param name="context">Where to log.</param>
    /// <exception cref="IOException">LeechCore could not open the device; the message carries LeechCore's own reason.</exception>
    /// <exception cref="InvalidDataException">LeechCore's memory map is malformed.</exception>
    public static LeechCoreMemory Open(LeechCoreLibrary library, DeviceRequest request, string plugin, int? batchSize, IPluginContext context)
    {
        var device = LeechCoreDevice.TryOpen(library, request, out var failure)
            ?? throw new IOException(OpenFailure(plugin, library, request, failure));
        try
        {
            string label = $"{plugin} device '{request.Device}'";
            var map = ReadMap(device, label, context);
            var hints = ReadHints(device, plugin);
            int ideal = batchSize ?? (device.IsRemote || device.DeviceName is "fpga" or "usb3380" ? HardwareBatchSize : LocalBatchSize);
            context.Log(PluginLogLevel.Debug, string.Create(CultureInfo.InvariantCulture,
                $"{label}: LeechCore ({library.Path}) opened it as '{device.DeviceName}'{(device.IsVolatile ? ", volatile" : "")}{(device.IsWritable ? ", writable" : "")}; {map.Count} ranges, {map.TotalSize} bytes, {ideal} pages per scatter call."));
            return new LeechCoreMemory(device, label, map, hints, ideal, context);
        }
        catch
        {
            device.Dispose();
            throw;
        }
    }

    /// <summary>The message for a device LeechCore would not open.</summary>
    internal static string OpenFailure(string plugin, LeechCoreLibrary library, DeviceRequest request, CreateFailure? failure)
    {
        string through = request.Remote is { Length: > 0 } remote ? $" through '{remote}'" : "";
        string reason = failure?.UserText is { Length: > 0 } text
            ? text.Replace("\n", " | ", StringComparison.Ordinal)
            : request.PrintfVerbosity == 0 ? "LeechCore gave no reason" : "LeechCore gave no reason beyond what it printed";
        string hint = request.PrintfVerbosity == 0 ? " Add verbosity=errors to the chain to see LeechCore's own messages." : "";
        return $"{plugin}: LeechCore ({library.Path}) could not open device '{request.Device}'{through}: {reason}.{hint}";
    }

    public ConnectorHints Hints { get; }

    /// <summary>LeechCore's name for the device type (<c>file</c>, <c>fpga</c>, ...).</summary>
    public string DeviceName => _device.DeviceName;

    public bool IsVolatile => _device.IsVolatile;

    public PhysicalMemoryMetadata Metadata => _state.Metadata;

    public MemoryMap MemoryMap => _state.Map;

    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (batch.IsEmpty)
            return;
        Transfer(batch, write: false, (flags & MemoryFlags.ZeroPadOnFail) != 0);
    }

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_device.IsWritable)
        {
            throw new NotSupportedException($"{_label}: the device is read-only (LeechCore's LC_CONFIG.fWritable is FALSE)" +
                (_device.DeviceName == "file" ? "; LeechCore's file device writes when asked to, with device=\"file://file=PATH,write=1\"." : "."));
        }
        if (batch.IsEmpty)
            return;
        Transfer(batch, write: true, zeroPad: false);
    }

    private void Transfer(Span<MemoryRequest> batch, bool write, bool zeroPad)
    {
        var scatter = Rent();
        bool referenced = false;
        _mapLock.EnterReadLock();
        try
        {
            _device.Handle.DangerousAddRef(ref referenced);
            nint handle = _device.Handle.DangerousGetHandle();
            if (write)
                scatter.Write(_device.Library, handle, _state.Map, batch);
            else
                scatter.Read(_device.Library, handle, _state.Map, batch, zeroPad);
        }
        finally
        {
            if (referenced)
                _device.Handle.DangerousRelease();
            _mapLock.ExitReadLock();
            Return(scatter);
        }
    }

    /// <summary>Replaces LeechCore's memory map, and with it what reads may reach.</summary>
    /// <exception cref="ArgumentException">The map holds a range LeechCore cannot (not page-aligned, remapped to 0).</exception>
    /// <exception cref="IOException">LeechCore refused the map.</exception>
    public void SetMemoryMap(MemoryMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        ObjectDisposedException.ThrowIf(_disposed, this);
        string text = MemoryMapText.Format(map);
        _mapLock.EnterWriteLock();
        try
        {
            var kept = map;
            // LeechCore takes no empty map; with ours empty, no read reaches it anyway.
            if (map.Count > 0)
            {
                if (!_device.SetMemoryMapText(text))
                    throw new IOException($"{_label}: LeechCore refused the memory map (LC_CMD_MEMMAP_SET returned FALSE).");
                // What LeechCore kept is what its reads will see.
                string? back = _device.GetMemoryMapText($"{_label}: LeechCore's memory map (LC_CMD_MEMMAP_GET)");
                if (back is not null)
                {
                    kept = MemoryMapText.Parse(back, $"{_label}: LeechCore's memory map (LC_CMD_MEMMAP_GET)");
                    if (!kept.SequenceEqual(map))
                        _context.Log(PluginLogLevel.Warning, $"{_label}: LeechCore kept {kept.Count} of the {map.Count} ranges given; reads follow LeechCore's map.");
                }
            }
            _state = new State(kept, new PhysicalMemoryMetadata(kept.Count == 0 ? 0 : kept.MaxAddress, kept.TotalSize, !_device.IsWritable, _idealBatchSize));
        }
        finally
        {
            _mapLock.ExitWriteLock();
        }
    }

    private static MemoryMap ReadMap(LeechCoreDevice device, string label, IPluginContext context)
    {
        string source = $"{label}: LeechCore's memory map (LC_CMD_MEMMAP_GET)";
        if (device.GetMemoryMapText(source) is { } text)
        {
            var map = MemoryMapText.Parse(text, source);
            if (map.Count > 0)
                return map;
        }
        // No map: one range up to the top LeechCore reports, as it reads then.
        ulong top = device.TryGetOption(LeechCoreAbi.OptionCoreAddressMax, out var value) ? value : device.PaMax;
        if (top == 0 || top >= NoMapTop)
        {
            context.Log(PluginLogLevel.Warning, $"{label}: LeechCore gives neither a memory map nor a highest address; nothing will be read. Give max-address or memmap.");
            return MemoryMap.Empty;
        }
        context.Log(PluginLogLevel.Information, string.Create(CultureInfo.InvariantCulture, $"{label}: LeechCore gives no memory map; reading 0-0x{top - 1:x}."));
        return MemoryMap.Linear(top);
    }

    /// <summary>The memory-information options, as LeechCore's devices answer them: architecture and page-table root
    /// when known; the Windows kernel's pointers only when <c>LC_OPT_MEMORYINFO_VALID</c> says the device knows them.</summary>
    private static ConnectorHints ReadHints(LeechCoreDevice device, string plugin)
    {
        bool valid = device.TryGetOption(LeechCoreAbi.OptionMemoryInfoValid, out var validValue) && validValue != 0;
        bool? is32Bit = valid && device.TryGetOption(LeechCoreAbi.OptionMemoryInfo32Bit, out var flag32) ? flag32 != 0 : null;
        bool? pae = is32Bit == true && device.TryGetOption(LeechCoreAbi.OptionMemoryInfoPae, out var flagPae) ? flagPae != 0 : null;

        var architecture = MachineArchitecture.Unknown;
        if (device.TryGetOption(LeechCoreAbi.OptionMemoryInfoArchitecture, out var arch))
        {
            architecture = arch switch
            {
                LeechCoreAbi.ArchitectureX86 => MachineArchitecture.X86,
                LeechCoreAbi.ArchitectureX86Pae => MachineArchitecture.X86Pae,
                LeechCoreAbi.ArchitectureX64 => MachineArchitecture.X64,
                LeechCoreAbi.ArchitectureArm64 => MachineArchitecture.Arm64,
                _ => MachineArchitecture.Unknown,
            };
        }
        if (architecture == MachineArchitecture.Unknown && valid && device.TryGetOption(LeechCoreAbi.OptionMemoryInfoMachineImageType, out var machine))
        {
            architecture = machine switch
            {
                LeechCoreAbi.MachineAmd64 => MachineArchitecture.X64,
                LeechCoreAbi.MachineArm64 => MachineArchitecture.Arm64,
                LeechCoreAbi.MachineI386 => pae == true ? MachineArchitecture.X86Pae : MachineArchitecture.X86,
                _ => MachineArchitecture.Unknown,
            };
        }
        if (architecture == MachineArchitecture.Unknown && is32Bit == true)
            architecture = pae == true ? MachineArchitecture.X86Pae : MachineArchitecture.X86;

        return new ConnectorHints
        {
            Format = $"{plugin}/{device.DeviceName}",
            Architecture = architecture,
            DirectoryTableBase = Pointer(device, LeechCoreAbi.OptionMemoryInfoDirectoryTableBase, always: true, valid),
            PfnDatabase = Pointer(device, LeechCoreAbi.OptionMemoryInfoPfnDatabase, always: false, valid),
            PsLoadedModuleList = Pointer(device, LeechCoreAbi.OptionMemoryInfoPsLoadedModuleList, always: false, valid),
            PsActiveProcessHead = Pointer(device, LeechCoreAbi.OptionMemoryInfoPsActiveProcessHead, always: false, valid),
            KdDebuggerDataBlock = Pointer(device, LeechCoreAbi.OptionMemoryInfoKdDebuggerDataBlock, always: false, valid),
            PaeEnabled = is32Bit == true ? pae : null,
        };
    }

    private static ulong? Pointer(LeechCoreDevice device, ulong option, bool always, bool valid) =>
        (always || valid) && device.TryGetOption(option, out var value) && value != 0 ? value : null;

    private ScatterBatch Rent()
    {
        for (int i = 0; i < _pool.Length; i++)
        {
            var pooled = Interlocked.Exchange(ref _pool[i], null);
            if (pooled is not null)
                return pooled;
        }
        return new ScatterBatch(_idealBatchSize);
    }

    private void Return(ScatterBatch scatter)
    {
        if (!_disposed)
        {
            for (int i = 0; i < _pool.Length; i++)
            {
                if (Interlocked.CompareExchange(ref _pool[i], scatter, null) is null)
                {
                    // A dispose that ran meanwhile may have missed it.
                    if (_disposed)
                        DrainPool();
                    return;
                }
            }
        }
        scatter.Dispose();
    }

    private void DrainPool()
    {
        for (int i = 0; i < _pool.Length; i++)
            Interlocked.Exchange(ref _pool[i], null)?.Dispose();
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        _device.Dispose();
        DrainPool();
    }

    public override string ToString() => _label;

    private sealed record State(MemoryMap Map, PhysicalMemoryMetadata Metadata);
}
