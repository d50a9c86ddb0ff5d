using System.Buffers;
using System.Runtime.InteropServices;
using Introspect.Abi;

namespace Introspect.Core.Plugins.Native;

/// <summary>A native connector instance as <see cref="IPhysicalMemory"/>: batches go down as one <c>read</c> call each.</summary>
/// <remarks>
/// <para>
/// The vtable was checked when the instance was created and its function pointers are copied here, so the plugin
/// cannot change them under the host. Every call holds a reference on the instance handle, so disposing it waits
/// for calls in flight on other threads.
/// </para>
/// <para>
/// A batch's buffers are pinned for the call: entries that share one array (the usual case: a caller slices one
/// big buffer) pin it once. A batch-level error from the plugin fails every entry and is logged; entries never
/// throw. The memory map is read once at open and again after <see cref="SetMemoryMap"/>.
/// </para>
/// </remarks>
internal sealed unsafe class NativeConnector : IPhysicalMemory, IConnectorHints
{
    private const int StackEntries = 64;

    private readonly NativeInstance _instance;
    private readonly PluginDescriptor _plugin;
    private readonly IPluginContext _context;
    private readonly delegate* unmanaged<void*, IpConnectorMetadata*, int> _metadata;
    private readonly delegate* unmanaged<void*, IpMemoryRequest*, nuint, nuint, uint, int> _read;
    private readonly delegate* unmanaged<void*, IpMemoryRequest*, nuint, nuint, uint, int> _write;
    private readonly delegate* unmanaged<void*, IpMemoryRange*, nuint, nuint, nuint*, int> _memoryMap;
    private readonly delegate* unmanaged<void*, IpMemoryRange*, nuint, nuint, int> _setMemoryMap;
    private readonly delegate* unmanaged<void*, byte*, nuint, nuint> _lastError;
    private volatile State _state;
    private int _loggedBatchError;

    public NativeConnector(NativeInstance instance, PluginDescriptor plugin, IPluginContext context)
    {
        _instance = instance;
        _plugin = plugin;
        _context = context;
        var vtable = ((IpConnector*)instance.Instance)->Vtable;
        _metadata = vtable->Metadata;
        _read = vtable->Read;
        _write = vtable->Write;
        _memoryMap = vtable->MemoryMap;
        _setMemoryMap = vtable->SetMemoryMap;
        _lastError = vtable->LastError;
        Hints = ReadHints(vtable);
        _state = ReadState();
    }

    /// <summary>The instance struct native OS layers can be handed directly, without a managed hop.</summary>
    public IpConnector* Native => (IpConnector*)_instance.Instance;

    public PhysicalMemoryMetadata Metadata => _state.Metadata;

    public MemoryMap MemoryMap => _state.Map;

    public ConnectorHints Hints { get; }

    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => Transfer(batch, flags, write: false);

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        if (_write == null || _state.Metadata.ReadOnly)
            throw new NotSupportedException($"{_plugin.Name}: the memory is read-only.");
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
        var pins = new Pins();
        bool added = false;
        try
        {
            for (int i = 0; i < batch.Length; i++)
            {
                ref var entry = ref batch[i];
                requests[i] = new IpMemoryRequest
                {
                    Address = entry.Address,
                    Buffer = pins.Pointer(entry.Buffer),
                    Length = (ulong)entry.Buffer.Length,
                };
            }
            _instance.DangerousAddRef(ref added);
            int result;
            fixed (IpMemoryRequest* pointer = requests)
            {
                result = write
                    ? _write(_instance.Self, pointer, (nuint)batch.Length, (nuint)sizeof(IpMemoryRequest), (uint)flags)
                    : _read(_instance.Self, pointer, (nuint)batch.Length, (nuint)sizeof(IpMemoryRequest), (uint)flags);
            }
            if (result == (int)NativeResult.Ok)
            {
                for (int i = 0; i < batch.Length; i++)
                    batch[i].Succeeded = requests[i].Ok != 0;
                return;
            }
            string message = NativeErrors.LastError(_instance.Self, _lastError);
            if (write && result == (int)NativeResult.Unsupported)
                throw new NotSupportedException($"{_plugin.Name}: {message}");
            for (int i = 0; i < batch.Length; i++)
                batch[i].Succeeded = false;
            // The contract lets no read throw for memory; a refused batch is a plugin problem worth one warning.
            if (Interlocked.Exchange(ref _loggedBatchError, 1) == 0)
                _context.Log(PluginLogLevel.Error, $"{_plugin.Name} refused a batch of {batch.Length} ({NativeErrors.ResultName((NativeResult)result)}): {message}");
        }
        finally
        {
            if (added)
                _instance.DangerousRelease();
            pins.Dispose();
            if (rented is not null)
                ArrayPool<IpMemoryRequest>.Shared.Return(rented);
        }
    }

    public void SetMemoryMap(MemoryMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        if (_setMemoryMap == null)
            throw new NotSupportedException($"{_plugin.Name}: this connector cannot replace its memory map.");
        var ranges = new IpMemoryRange[Math.Max(1, map.Count)];
        for (int i = 0; i < map.Count; i++)
            ranges[i] = new IpMemoryRange { Base = map[i].Base, Size = map[i].Size, Backing = map[i].BackingBase };
        int result;
        bool added = false;
        try
        {
            _instance.DangerousAddRef(ref added);
            fixed (IpMemoryRange* pointer = ranges)
                result = _setMemoryMap(_instance.Self, pointer, (nuint)map.Count, (nuint)sizeof(IpMemoryRange));
            if (result != (int)NativeResult.Ok)
                throw NativeErrors.ToException((NativeResult)result, _plugin, "replace its memory map", NativeErrors.LastError(_instance.Self, _lastError));
        }
        finally
        {
            if (added)
                _instance.DangerousRelease();
        }
        _state = ReadState();
    }

    private State ReadState()
    {
        bool added = false;
        try
        {
            _instance.DangerousAddRef(ref added);
            var metadata = new IpConnectorMetadata { Size = (uint)sizeof(IpConnectorMetadata), Version = NativeAbi.MetadataVersion };
            int result = _metadata(_instance.Self, &metadata);
            if (result != (int)NativeResult.Ok)
                throw NativeErrors.ToException((NativeResult)result, _plugin, "describe its memory", NativeErrors.LastError(_instance.Self, _lastError));
            var ranges = NativeLists.Fetch<IpMemoryRange>(_plugin, "memory map", (buffer, capacity, count) =>
                _memoryMap(_instance.Self, buffer, capacity, (nuint)sizeof(IpMemoryRange), count), null, () => NativeErrors.LastError(_instance.Self, _lastError));
            MemoryMap map;
            try
            {
                map = new MemoryMap(ranges.Select(r => new MemoryRange(r.Base, r.Size, r.Backing)));
            }
            catch (ArgumentException e)
            {
                throw new PluginException($"connector '{_plugin.Name}' returned a memory map this host cannot use: {e.Message}", e);
            }
            int batch = metadata.IdealBatchSize is 0 or > int.MaxValue ? 1024 : (int)metadata.IdealBatchSize;
            return new State(new PhysicalMemoryMetadata(metadata.MaxAddress, metadata.RealSize, metadata.ReadOnly != 0 || _write == null, batch), map);
        }
        finally
        {
            if (added)
                _instance.DangerousRelease();
        }
    }

    private ConnectorHints ReadHints(IpConnectorVtable* vtable)
    {
        var hintsFunction = vtable->Hints;
        var vmcoreFunction = vtable->VmcoreInfo;
        var cpusFunction = vtable->Cpus;
        bool added = false;
        try
        {
            _instance.DangerousAddRef(ref added);
            void* self = _instance.Self;
            var hints = ConnectorHints.None;
            if (hintsFunction != null)
            {
                var native = new IpConnectorHints { Size = (uint)sizeof(IpConnectorHints), Version = NativeAbi.HintsVersion };
                if (hintsFunction(self, &native) == (int)NativeResult.Ok)
                {
                    uint present = native.Present;
                    hints = new ConnectorHints
                    {
                        Format = NativeAbi.ReadText(new ReadOnlySpan<byte>(native.Format, 32)) is { Length: > 0 } format ? format : null,
                        Architecture = Enum.IsDefined((MachineArchitecture)native.Architecture) ? (MachineArchitecture)native.Architecture : MachineArchitecture.Unknown,
                        DirectoryTableBase = (present & IpConnectorHints.DirectoryTableBase) != 0 ? native.DirectoryTableBaseValue : null,
                        PfnDatabase = (present & IpConnectorHints.PfnDatabase) != 0 ? native.PfnDatabaseValue : null,
                        PsLoadedModuleList = (present & IpConnectorHints.PsLoadedModuleList) != 0 ? native.PsLoadedModuleListValue : null,
                        PsActiveProcessHead = (present & IpConnectorHints.PsActiveProcessHead) != 0 ? native.PsActiveProcessHeadValue : null,
                        KdDebuggerDataBlock = (present & IpConnectorHints.KdDebuggerDataBlock) != 0 ? native.KdDebuggerDataBlockValue : null,
                        PaeEnabled = (present & IpConnectorHints.Pae) != 0 ? native.PaeEnabled != 0 : null,
                    };
                }
            }
            if (vmcoreFunction != null)
            {
                nuint length = 0;
                int result = vmcoreFunction(self, null, 0, &length);
                if ((result == (int)NativeResult.Ok || result == (int)NativeResult.NeedMore) && length is > 0 and < 16 << 20)
                {
                    var buffer = new byte[(int)length + 1];
                    fixed (byte* pointer = buffer)
                        result = vmcoreFunction(self, pointer, (nuint)buffer.Length, &length);
                    if (result == (int)NativeResult.Ok)
                        hints = hints with { VmcoreInfo = NativeAbi.ReadText(buffer) };
                }
            }
            if (cpusFunction != null)
            {
                var cpus = NativeLists.Fetch<IpCpuRegisters>(_plugin, "CPU list", (buffer, capacity, count) =>
                    cpusFunction(self, buffer, capacity, (nuint)sizeof(IpCpuRegisters), count),
                    static (ref IpCpuRegisters c) => { c.Size = (uint)sizeof(IpCpuRegisters); c.Version = NativeAbi.CpuVersion; },
                    () => NativeErrors.LastError(self, _lastError));
                hints = hints with
                {
                    Cpus = cpus.Select(c => new CpuRegisters
                    {
                        Index = (int)c.Index, InstructionPointer = c.InstructionPointer, StackPointer = c.StackPointer,
                        Cr0 = c.Cr0, Cr3 = c.Cr3, Cr4 = c.Cr4, GsBase = c.GsBase, KernelGsBase = c.KernelGsBase,
                    }).ToList(),
                };
            }
            return hints;
        }
        finally
        {
            if (added)
                _instance.DangerousRelease();
        }
    }

    public void Dispose() => _instance.Dispose();

    private sealed record State(PhysicalMemoryMetadata Metadata, MemoryMap Map);

    /// <summary>The pins of one batch: each distinct array once, anything else through its own handle.</summary>
    private struct Pins : IDisposable
    {
        private object? _lastArray;
        private byte* _lastBase;
        private List<GCHandle>? _handles;
        private List<MemoryHandle>? _others;

        public byte* Pointer(Memory<byte> memory)
        {
            if (memory.IsEmpty)
                return null;
            if (MemoryMarshal.TryGetArray<byte>(memory, out var segment) && segment.Array is { } array)
            {
                if (!ReferenceEquals(array, _lastArray))
                {
                    var handle = GCHandle.Alloc(array, GCHandleType.Pinned);
                    (_handles ??= []).Add(handle);
                    _lastArray = array;
                    _lastBase = (byte*)handle.AddrOfPinnedObject();
                }
                return _lastBase + segment.Offset;
            }
            var pinned = memory.Pin();
            (_others ??= []).Add(pinned);
            return (byte*)pinned.Pointer;
        }

        public void Dispose()
        {
            if (_handles is not null)
            {
                foreach (var handle in _handles)
                    handle.Free();
            }
            if (_others is not null)
            {
                foreach (var handle in _others)
                    handle.Dispose();
            }
        }
    }
}

/// <summary>The contract's list protocol: ask with a capacity, grow to what the callee says it needs, bounded.</summary>
internal static unsafe class NativeLists
{
    /// <summary>No list a plugin returns may hold more entries than this.</summary>
    public const int MaxEntries = 1 << 20;

    public delegate int FetchCall<T>(T* buffer, nuint capacity, nuint* count) where T : unmanaged;

    public delegate void Prepare<T>(ref T element) where T : unmanaged;

    public static T[] Fetch<T>(PluginDescriptor plugin, string what, FetchCall<T> call, Prepare<T>? prepare, Func<string> lastError) where T : unmanaged
    {
        int capacity = 64;
        for (int attempt = 0; attempt < 8; attempt++)
        {
            var buffer = new T[capacity];
            if (prepare is not null)
            {
                for (int i = 0; i < buffer.Length; i++)
                    prepare(ref buffer[i]);
            }
            nuint count = 0;
            int result;
            fixed (T* pointer = buffer)
                result = call(pointer, (nuint)capacity, &count);
            if (count > MaxEntries)
                throw new PluginException($"{plugin.KindText} '{plugin.Name}' returned a {what} of {count} entries; this host accepts at most {MaxEntries}.");
            if (result == (int)NativeResult.Ok)
            {
                if (count > (nuint)capacity)
                    throw new PluginException($"{plugin.KindText} '{plugin.Name}' reported {count} {what} entries in an array of {capacity}.");
                return buffer[..(int)count];
            }
            if (result != (int)NativeResult.NeedMore)
                throw NativeErrors.ToException((NativeResult)result, plugin, $"list its {what}", lastError());
            capacity = Math.Max(capacity * 2, (int)count);
        }
        throw new PluginException($"{plugin.KindText} '{plugin.Name}' kept asking for a larger array for its {what}.");
    }
}
