using System.Buffers;
using System.Runtime.InteropServices;
using Introspect.Abi;

namespace Introspect.Core.Plugins.Native;

/// <summary>A managed <see cref="IPhysicalMemory"/> exposed as an <c>ip_connector</c>, so a native OS layer can read it.</summary>
/// <remarks>
/// <para>
/// Native buffers reach the managed memory as <see cref="Memory{T}"/> through pooled <see cref="MemoryManager{T}"/>s
/// over their pointers, which are valid for the call only, as the contract says.
/// </para>
/// </remarks>
internal sealed unsafe class ExportedConnector : ExportedInstance<IpConnector>
{
    private static readonly IpConnectorVtable* s_vtable = CreateVtable();

    private readonly IPhysicalMemory _memory;

    public ExportedConnector(IPhysicalMemory memory)
        : base(self => new IpConnector
        {
            Size = (uint)sizeof(IpConnector),
            Version = NativeAbi.ConnectorVersion,
            Self = (void*)self,
            Vtable = s_vtable,
        })
    {
        _memory = memory;
    }

    private static IpConnectorVtable* CreateVtable()
    {
        // One table for every exported connector, alive as long as the process.
        var vtable = (IpConnectorVtable*)NativeMemory.AllocZeroed((nuint)sizeof(IpConnectorVtable));
        vtable->Size = (uint)sizeof(IpConnectorVtable);
        vtable->Version = NativeAbi.ConnectorVtableVersion;
        vtable->Metadata = &Metadata;
        vtable->Read = &Read;
        vtable->Write = &Write;
        vtable->MemoryMap = &GetMemoryMap;
        vtable->SetMemoryMap = &SetMemoryMap;
        vtable->Hints = &Hints;
        vtable->VmcoreInfo = &VmcoreInfo;
        vtable->Cpus = &Cpus;
        vtable->LastError = &LastError;
        vtable->Destroy = &Destroy;
        return vtable;
    }

    private static ExportedConnector? From(void* self) => From<ExportedConnector>(self);

    [UnmanagedCallersOnly]
    private static int Metadata(void* self, IpConnectorMetadata* output)
    {
        var exported = From(self);
        if (exported is null)
            return (int)NativeResult.Internal;
        try
        {
            if (output == null || output->Version != NativeAbi.MetadataVersion || output->Size < sizeof(IpConnectorMetadata))
                return exported.Fail(NativeResult.Version, "metadata: unknown ip_connector_metadata size or version");
            var metadata = exported._memory.Metadata;
            output->MaxAddress = metadata.MaxAddress;
            output->RealSize = metadata.RealSize;
            output->ReadOnly = metadata.ReadOnly ? 1u : 0u;
            output->IdealBatchSize = (uint)Math.Max(1, metadata.IdealBatchSize);
            return 0;
        }
        catch (Exception e)
        {
            return exported.Fail(e);
        }
    }

    [UnmanagedCallersOnly]
    private static int Read(void* self, IpMemoryRequest* requests, nuint count, nuint requestSize, uint flags) =>
        Transfer(self, requests, count, requestSize, flags, write: false);

    [UnmanagedCallersOnly]
    private static int Write(void* self, IpMemoryRequest* requests, nuint count, nuint requestSize, uint flags) =>
        Transfer(self, requests, count, requestSize, flags, write: true);

    private static int Transfer(void* self, IpMemoryRequest* requests, nuint count, nuint requestSize, uint flags, bool write)
    {
        var exported = From(self);
        if (exported is null)
            return (int)NativeResult.Internal;
        try
        {
            if (requestSize != (nuint)sizeof(IpMemoryRequest))
                return exported.Fail(NativeResult.Version, $"read: ip_memory_request of {requestSize} bytes; this host knows {sizeof(IpMemoryRequest)}");
            if (count > int.MaxValue)
                return exported.Fail(NativeResult.Argument, $"read: a batch of {count} entries");
            if (write && exported._memory.Metadata.ReadOnly)
                return exported.Fail(NativeResult.Unsupported, "the memory is read-only");
            return NativeBatch.Run(exported._memory, requests, (int)count, (MemoryFlags)flags, write);
        }
        catch (Exception e)
        {
            return exported.Fail(e);
        }
    }

    [UnmanagedCallersOnly]
    private static int GetMemoryMap(void* self, IpMemoryRange* ranges, nuint capacity, nuint rangeSize, nuint* count)
    {
        var exported = From(self);
        if (exported is null)
            return (int)NativeResult.Internal;
        try
        {
            if (rangeSize != (nuint)sizeof(IpMemoryRange) || count == null)
                return exported.Fail(NativeResult.Version, "memory_map: unknown ip_memory_range size");
            var map = exported._memory.MemoryMap;
            *count = (nuint)map.Count;
            if ((nuint)map.Count > capacity)
                return (int)NativeResult.NeedMore;
            for (int i = 0; i < map.Count; i++)
                ranges[i] = new IpMemoryRange { Base = map[i].Base, Size = map[i].Size, Backing = map[i].BackingBase };
            return 0;
        }
        catch (Exception e)
        {
            return exported.Fail(e);
        }
    }

    [UnmanagedCallersOnly]
    private static int SetMemoryMap(void* self, IpMemoryRange* ranges, nuint count, nuint rangeSize)
    {
        var exported = From(self);
        if (exported is null)
            return (int)NativeResult.Internal;
        try
        {
            if (rangeSize != (nuint)sizeof(IpMemoryRange))
                return exported.Fail(NativeResult.Version, "set_memory_map: unknown ip_memory_range size");
            if (count > NativeLists.MaxEntries)
                return exported.Fail(NativeResult.Argument, $"set_memory_map: {count} ranges; at most {NativeLists.MaxEntries}");
            var list = new List<MemoryRange>((int)count);
            for (nuint i = 0; i < count; i++)
                list.Add(new MemoryRange(ranges[i].Base, ranges[i].Size, ranges[i].Backing));
            exported._memory.SetMemoryMap(new MemoryMap(list));
            return 0;
        }
        catch (Exception e)
        {
            return exported.Fail(e);
        }
    }

    [UnmanagedCallersOnly]
    private static int Hints(void* self, IpConnectorHints* output)
    {
        var exported = From(self);
        if (exported is null)
            return (int)NativeResult.Internal;
        try
        {
            if (output == null || output->Version != NativeAbi.HintsVersion || output->Size < sizeof(IpConnectorHints))
                return exported.Fail(NativeResult.Version, "hints: unknown ip_connector_hints size or version");
            var hints = exported._memory is IConnectorHints withHints ? withHints.Hints : ConnectorHints.None;
            NativeAbi.WriteText(new Span<byte>(output->Format, 32), hints.Format);
            output->Architecture = (uint)hints.Architecture;
            uint present = 0;
            if (hints.DirectoryTableBase is { } dtb) { output->DirectoryTableBaseValue = dtb; present |= IpConnectorHints.DirectoryTableBase; }
            if (hints.PfnDatabase is { } pfn) { output->PfnDatabaseValue = pfn; present |= IpConnectorHints.PfnDatabase; }
            if (hints.PsLoadedModuleList is { } modules) { output->PsLoadedModuleListValue = modules; present |= IpConnectorHints.PsLoadedModuleList; }
            if (hints.PsActiveProcessHead is { } head) { output->PsActiveProcessHeadValue = head; present |= IpConnectorHints.PsActiveProcessHead; }
            if (hints.KdDebuggerDataBlock is { } kdbg) { output->KdDebuggerDataBlockValue = kdbg; present |= IpConnectorHints.KdDebuggerDataBlock; }
            if (hints.PaeEnabled is { } pae) { output->PaeEnabled = pae ? 1u : 0u; present |= IpConnectorHints.Pae; }
            output->Present = present;
            return 0;
        }
        catch (Exception e)
        {
            return exported.Fail(e);
        }
    }

    [UnmanagedCallersOnly]
    private static int VmcoreInfo(void* self, byte* buffer, nuint capacity, nuint* length)
    {
        var exported = From(self);
        if (exported is null)
            return (int)NativeResult.Internal;
        try
        {
            var text = exported._memory is IConnectorHints withHints ? withHints.Hints.VmcoreInfo : null;
            nuint needed = text is null ? 0 : (nuint)System.Text.Encoding.UTF8.GetByteCount(text);
            if (length != null)
                *length = needed;
            if (needed == 0)
                return 0;
            if (buffer == null || capacity <= needed)
                return (int)NativeResult.NeedMore;
            NativeErrors.CopyMessage(text, buffer, capacity);
            return 0;
        }
        catch (Exception e)
        {
            return exported.Fail(e);
        }
    }

    [UnmanagedCallersOnly]
    private static int Cpus(void* self, IpCpuRegisters* cpus, nuint capacity, nuint cpuSize, nuint* count)
    {
        var exported = From(self);
        if (exported is null)
            return (int)NativeResult.Internal;
        try
        {
            if (cpuSize != (nuint)sizeof(IpCpuRegisters) || count == null)
                return exported.Fail(NativeResult.Version, "cpus: unknown ip_cpu_registers size");
            var list = exported._memory is IConnectorHints withHints ? withHints.Hints.Cpus : [];
            *count = (nuint)list.Count;
            if ((nuint)list.Count > capacity)
                return (int)NativeResult.NeedMore;
            for (int i = 0; i < list.Count; i++)
            {
                if (cpus[i].Version != NativeAbi.CpuVersion || cpus[i].Size < sizeof(IpCpuRegisters))
                    return exported.Fail(NativeResult.Version, "cpus: unknown ip_cpu_registers version");
                var c = list[i];
                cpus[i].Index = (uint)c.Index;
                cpus[i].InstructionPointer = c.InstructionPointer;
                cpus[i].StackPointer = c.StackPointer;
                cpus[i].Cr0 = c.Cr0;
                cpus[i].Cr3 = c.Cr3;
                cpus[i].Cr4 = c.Cr4;
                cpus[i].GsBase = c.GsBase;
                cpus[i].KernelGsBase = c.KernelGsBase;
            }
            return 0;
        }
        catch (Exception e)
        {
            return exported.Fail(e);
        }
    }

    [UnmanagedCallersOnly]
    private static nuint LastError(void* self, byte* buffer, nuint capacity) => CopyLastError(self, buffer, capacity);

    [UnmanagedCallersOnly]
    private static void Destroy(void* self)
    {
        // The host owns the managed memory and frees the export itself; a native layer's destroy call changes nothing.
    }
}

/// <summary>Runs a native batch of <c>ip_memory_request</c>s against a managed memory.</summary>
internal static unsafe class NativeBatch
{
    [ThreadStatic]
    private static Scratch? t_scratch;

    /// <summary>Reads or writes every request, setting each <c>ok</c>; returns <see cref="NativeResult.Ok"/>.</summary>
    public static int Run(IMemory memory, IpMemoryRequest* requests, int count, MemoryFlags flags, bool write)
    {
        if (count == 0)
            return 0;
        // A nested call on this thread (a layer reading through another exported memory) takes its own scratch.
        var scratch = t_scratch ?? new Scratch();
        t_scratch = null;
        try
        {
            scratch.Ensure(count);
            var batch = scratch.Requests.AsSpan(0, count);
            for (int i = 0; i < count; i++)
            {
                ref var request = ref requests[i];
                request.Ok = 0;
                // Requests larger than a managed buffer can hold fail on their own.
                int length = request.Length <= int.MaxValue ? (int)request.Length : 0;
                var manager = scratch.Managers[i];
                manager.Set(length == 0 ? null : request.Buffer, length);
                batch[i] = new MemoryRequest(request.Address, manager.Memory);
            }
            if (write)
                memory.Write(batch, flags);
            else
                memory.Read(batch, flags);
            for (int i = 0; i < count; i++)
            {
                bool tooLarge = requests[i].Length > int.MaxValue;
                requests[i].Ok = batch[i].Succeeded && !tooLarge ? 1u : 0u;
            }
            return 0;
        }
        finally
        {
            for (int i = 0; i < count && i < scratch.Managers.Length; i++)
                scratch.Managers[i].Set(null, 0);
            t_scratch = scratch;
        }
    }

    private sealed class Scratch
    {
        public MemoryRequest[] Requests = [];
        public PointerMemory[] Managers = [];

        public void Ensure(int count)
        {
            if (Requests.Length >= count)
                return;
            int size = Math.Max(count, Requests.Length * 2);
            Requests = new MemoryRequest[size];
            var managers = new PointerMemory[size];
            Managers.CopyTo(managers, 0);
            for (int i = Managers.Length; i < size; i++)
                managers[i] = new PointerMemory();
            Managers = managers;
        }
    }

    /// <summary>A re-pointable <see cref="MemoryManager{T}"/> over native memory that is valid for one call.</summary>
    private sealed class PointerMemory : MemoryManager<byte>
    {
        private byte* _pointer;
        private int _length;

        public void Set(byte* pointer, int length)
        {
            _pointer = pointer;
            _length = length;
        }

        public override Span<byte> GetSpan() => new(_pointer, _length);

        public override MemoryHandle Pin(int elementIndex = 0)
        {
            ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)elementIndex, (uint)_length, nameof(elementIndex));
            return new MemoryHandle(_pointer + elementIndex);
        }

        public override void Unpin() { }

        protected override void Dispose(bool disposing) { }
    }
}
