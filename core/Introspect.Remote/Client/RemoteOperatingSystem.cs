using System.Buffers.Binary;
using System.Text;
using Introspect.Abi;
using Introspect.Remote.Protocol;

namespace Introspect.Remote.Client;

/// <summary>The OS a server's chain ends in, as the server's OS layer sees it: process list, process memory by pid, areas and modules.</summary>
/// <remarks>
/// Nothing is interpreted here: the server's OS layer walks the kernel's lists, and each call here is one request.
/// Kernel symbols and types are offered (as <see cref="IKernelSymbols"/> and <see cref="IKernelTypes"/>) exactly
/// when the server's layer offers them. This layer does not own the memory it was given.
/// </remarks>
internal class RemoteOperatingSystem : IOperatingSystem
{
    private readonly RemotePhysicalMemory _memory;

    protected RemoteOperatingSystem(RemotePhysicalMemory memory, OsInfo info)
    {
        _memory = memory;
        Info = info;
    }

    /// <summary>The OS behind <paramref name="memory"/>'s server, with the capabilities its layer has.</summary>
    /// <exception cref="InvalidDataException">The server's chain ends in a connector.</exception>
    public static RemoteOperatingSystem Open(RemotePhysicalMemory memory)
    {
        var link = memory.Link;
        var info = link.Description.OperatingSystem;
        var features = link.Welcome.Features;
        if (info is null || (features & ServerFeatures.OperatingSystem) == 0)
            throw new InvalidDataException($"{link.Peer} serves '{link.Description.Chain}', which ends in a connector; start the server with a chain that ends in an OS layer (e.g. '... -> linux'), or put an OS layer after remote here (remote:... -> linux).");
        bool symbols = (features & ServerFeatures.KernelSymbols) != 0;
        bool types = (features & ServerFeatures.KernelTypes) != 0;
        return (symbols, types) switch
        {
            (true, true) => new WithSymbolsAndTypes(memory, info),
            (true, false) => new WithSymbols(memory, info),
            (false, true) => new WithTypes(memory, info),
            _ => new RemoteOperatingSystem(memory, info),
        };
    }

    protected RemoteLink Link => _memory.Link;

    public OsInfo Info { get; }

    public IPhysicalMemory PhysicalMemory => _memory;

    public IReadOnlyList<ProcessInfo> GetProcesses() =>
        Json<List<ProcessInfo>>(MessageType.ListProcesses, BytesBody.Empty, "process list") ?? [];

    public ProcessInfo? GetProcess(ulong pid) =>
        Json<ProcessInfo>(MessageType.GetProcess, new BytesBody(RemoteLink.PidPayload(pid)), "process");

    public IVirtualMemory OpenProcessMemory(ProcessInfo process)
    {
        ArgumentNullException.ThrowIfNull(process);
        return new RemoteProcessMemory(Link, process.Pid, _memory.Metadata.ReadOnly);
    }

    public IReadOnlyList<MemoryArea> GetMemoryAreas(ProcessInfo process)
    {
        ArgumentNullException.ThrowIfNull(process);
        return ProcessList<MemoryArea>(MessageType.MemoryAreas, process.Pid, "memory area list");
    }

    public IReadOnlyList<ModuleInfo> GetModules(ProcessInfo process)
    {
        ArgumentNullException.ThrowIfNull(process);
        return ProcessList<ModuleInfo>(MessageType.Modules, process.Pid, "module list");
    }

    public IReadOnlyList<ModuleInfo> GetKernelModules() =>
        Json<List<ModuleInfo>>(MessageType.KernelModules, BytesBody.Empty, "kernel module list") ?? [];

    /// <summary>A per-process list; a process that is gone has none.</summary>
    private List<T> ProcessList<T>(MessageType type, ulong pid, string what)
    {
        try
        {
            return Json<List<T>>(type, new BytesBody(RemoteLink.PidPayload(pid)), what) ?? [];
        }
        catch (RemoteRequestException e) when (e.Code == RemoteErrorCode.NoSuchProcess)
        {
            return [];
        }
    }

    private T? Json<T>(MessageType type, IRequestBody body, string what) =>
        JsonPayload.Decode<T>(Link.Call(type, body, MessageType.JsonReply), Link.Peer, what);

    /// <summary>One symbol or type query: found u8, value u64, name.</summary>
    protected (bool Found, ulong Value, string Name) Query(MessageType type, byte[] payload)
    {
        var reply = Link.Call(type, new BytesBody(payload), MessageType.SymbolReply);
        var reader = new PayloadReader(reply, "SymbolReply");
        bool found = reader.ReadByte("found") != 0;
        ulong value = reader.ReadUInt64("value");
        string name = reader.ReadString("name", RemoteProtocol.MaxNameBytes * 4);
        reader.ExpectEnd();
        return (found, value, name);
    }

    protected static byte[] Strings(params string[] texts)
    {
        var writer = new System.Buffers.ArrayBufferWriter<byte>();
        foreach (var text in texts)
        {
            if (Encoding.UTF8.GetByteCount(text) > RemoteProtocol.MaxNameBytes * 4)
                throw new ArgumentException($"'{text[..32]}...' is longer than a symbol name can be ({RemoteProtocol.MaxNameBytes * 4} bytes).");
            FrameWriter.WriteString(writer, text);
        }
        return writer.WrittenSpan.ToArray();
    }

    public void Dispose()
    {
        GC.SuppressFinalize(this);
    }

    // The capability interfaces are found with 'is', so each combination the server may have is a type of its own.

    private sealed class WithSymbols(RemotePhysicalMemory memory, OsInfo info) : RemoteOperatingSystem(memory, info), IKernelSymbols
    {
        public int SymbolCount => Link.Description.SymbolCount;

        public bool TryGetSymbolAddress(string name, out ulong address) => SymbolAddress(this, name, out address);

        public bool TryGetSymbolName(ulong address, out string name, out ulong displacement) => SymbolName(this, address, out name, out displacement);
    }

    private sealed class WithTypes(RemotePhysicalMemory memory, OsInfo info) : RemoteOperatingSystem(memory, info), IKernelTypes
    {
        public bool TryGetTypeSize(string typeName, out ulong size) => TypeSize(this, typeName, out size);

        public bool TryGetFieldOffset(string typeName, string fieldPath, out ulong offset) => FieldOffset(this, typeName, fieldPath, out offset);
    }

    private sealed class WithSymbolsAndTypes(RemotePhysicalMemory memory, OsInfo info) : RemoteOperatingSystem(memory, info), IKernelSymbols, IKernelTypes
    {
        public int SymbolCount => Link.Description.SymbolCount;

        public bool TryGetSymbolAddress(string name, out ulong address) => SymbolAddress(this, name, out address);

        public bool TryGetSymbolName(ulong address, out string name, out ulong displacement) => SymbolName(this, address, out name, out displacement);

        public bool TryGetTypeSize(string typeName, out ulong size) => TypeSize(this, typeName, out size);

        public bool TryGetFieldOffset(string typeName, string fieldPath, out ulong offset) => FieldOffset(this, typeName, fieldPath, out offset);
    }

    private static bool SymbolAddress(RemoteOperatingSystem system, string name, out ulong address)
    {
        (bool found, address, _) = system.Query(MessageType.SymbolAddress, Strings(name));
        return found;
    }

    private static bool SymbolName(RemoteOperatingSystem system, ulong address, out string name, out ulong displacement)
    {
        (bool found, displacement, name) = system.Query(MessageType.SymbolName, RemoteLink.PidPayload(address));
        return found;
    }

    private static bool TypeSize(RemoteOperatingSystem system, string typeName, out ulong size)
    {
        (bool found, size, _) = system.Query(MessageType.TypeSize, Strings(typeName));
        return found;
    }

    private static bool FieldOffset(RemoteOperatingSystem system, string typeName, string fieldPath, out ulong offset)
    {
        (bool found, offset, _) = system.Query(MessageType.FieldOffset, Strings(typeName, fieldPath));
        return found;
    }
}

/// <summary>A process's virtual memory on the server: batches by virtual address, translated by the server's OS layer.</summary>
internal sealed class RemoteProcessMemory(RemoteLink link, ulong pid, bool readOnly) : IVirtualMemory
{
    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) =>
        link.Transfer(batch, flags, pid, remap: null, write: false);

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        if (readOnly)
            throw new NotSupportedException($"{link.Peer} is read-only: the server writes only when started with --allow-write.");
        link.Transfer(batch, flags, pid, remap: null, write: true);
    }

    public bool TryTranslate(ulong virtualAddress, out ulong physicalAddress)
    {
        var payload = new byte[BatchLayout.TranslateFixed + 8];
        BinaryPrimitives.WriteUInt64LittleEndian(payload, pid);
        BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(8), 1);
        BinaryPrimitives.WriteUInt64LittleEndian(payload.AsSpan(BatchLayout.TranslateFixed), virtualAddress);
        byte[] reply;
        try
        {
            reply = link.Call(MessageType.Translate, new BytesBody(payload), MessageType.TranslateReply);
        }
        catch (RemoteRequestException e) when (e.Code == RemoteErrorCode.NoSuchProcess)
        {
            physicalAddress = 0;
            return false;
        }
        var reader = new PayloadReader(reply, "TranslateReply");
        if (reader.ReadUInt32("count") != 1)
            reader.Throw("count", "not 1", "1, the number of addresses asked");
        bool found = (reader.ReadByte("bitmap") & 1) != 0;
        physicalAddress = reader.ReadUInt64("address");
        reader.ExpectEnd();
        return found;
    }
}
