using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Introspect.Abi;

namespace Introspect.Core.Plugins.Native;

/// <summary>A managed <see cref="IOperatingSystem"/> exposed as an <c>ip_os</c>, so a native connector can take it as its input.</summary>
/// <remarks>
/// Processes are named by pid; each process's memory is opened once and kept.
/// </remarks>
internal sealed unsafe class ExportedOperatingSystem : ExportedInstance<IpOs>
{
    private static readonly IpOsVtable* s_vtable = CreateVtable();

    private readonly IOperatingSystem _os;
    private readonly ConcurrentDictionary<ulong, IVirtualMemory> _memories = new();

    public ExportedOperatingSystem(IOperatingSystem os)
        : base(self => new IpOs
        {
            Size = (uint)sizeof(IpOs),
            Version = NativeAbi.OsVersion,
            Self = (void*)self,
            Vtable = s_vtable,
        })
    {
        _os = os;
    }

    private static IpOsVtable* CreateVtable()
    {
        var vtable = (IpOsVtable*)NativeMemory.AllocZeroed((nuint)sizeof(IpOsVtable));
        vtable->Size = (uint)sizeof(IpOsVtable);
        vtable->Version = NativeAbi.OsVtableVersion;
        vtable->Info = &Info;
        vtable->ProcessList = &ProcessList;
        vtable->ProcessInfo = &ProcessDetails;
        vtable->ProcessRead = &ProcessRead;
        vtable->ProcessWrite = &ProcessWrite;
        vtable->ProcessTranslate = &ProcessTranslate;
        vtable->MemoryAreas = &MemoryAreas;
        vtable->ModuleList = &ModuleList;
        vtable->LastError = &LastError;
        vtable->Destroy = &Destroy;
        return vtable;
    }

    private static ExportedOperatingSystem? From(void* self) => From<ExportedOperatingSystem>(self);

    private ProcessInfo? Find(ulong pid) => _os.GetProcess(pid);

    private IVirtualMemory? MemoryOf(ulong pid)
    {
        if (_memories.TryGetValue(pid, out var memory))
            return memory;
        var process = Find(pid);
        return process is null ? null : _memories.GetOrAdd(pid, _ => _os.OpenProcessMemory(process));
    }

    [UnmanagedCallersOnly]
    private static int Info(void* self, IpOsInfo* output)
    {
        var exported = From(self);
        if (exported is null)
            return (int)NativeResult.Internal;
        try
        {
            if (output == null || output->Version != NativeAbi.OsInfoVersion || output->Size < sizeof(IpOsInfo))
                return exported.Fail(NativeResult.Version, "info: unknown ip_os_info size or version");
            var info = exported._os.Info;
            NativeAbi.WriteText(new Span<byte>(output->Name, 32), info.Name);
            NativeAbi.WriteText(new Span<byte>(output->VersionText, 256), info.Version);
            output->Architecture = (uint)info.Architecture;
            output->Flags = info.KernelSlide is null ? 0 : IpOsInfo.HasKernelSlide;
            output->KernelBase = info.KernelBase;
            output->KernelSlide = info.KernelSlide ?? 0;
            output->DirectoryTableBase = info.DirectoryTableBase;
            return 0;
        }
        catch (Exception e)
        {
            return exported.Fail(e);
        }
    }

    private static void Fill(ref IpProcess target, ProcessInfo p)
    {
        target.Pid = p.Pid;
        target.ParentPid = p.ParentPid;
        target.DirectoryTableBase = p.DirectoryTableBase;
        target.UserDirectoryTableBase = p.UserDirectoryTableBase ?? 0;
        target.KernelObject = p.KernelObject;
        target.State = (uint)p.State;
        target.Flags = (p.IsKernelThread ? IpProcess.KernelThread : 0) | (p.Uid is null ? 0 : IpProcess.HasUid)
            | (p.UserDirectoryTableBase is null ? 0 : IpProcess.HasUserDirectoryTableBase) | (p.IsHidden ? IpProcess.Hidden : 0);
        target.Uid = p.Uid ?? 0;
        target.ThreadCount = (uint)Math.Max(0, p.ThreadCount);
        target.Architecture = (uint)p.Architecture;
        target.Reserved = 0;
        fixed (byte* name = target.Name)
            NativeAbi.WriteText(new Span<byte>(name, 64), p.Name);
        fixed (byte* state = target.StateText)
            NativeAbi.WriteText(new Span<byte>(state, 8), p.StateText);
    }

    [UnmanagedCallersOnly]
    private static int ProcessList(void* self, IpProcess* processes, nuint capacity, nuint processSize, nuint* count)
    {
        var exported = From(self);
        if (exported is null)
            return (int)NativeResult.Internal;
        try
        {
            if (processSize != (nuint)sizeof(IpProcess) || count == null)
                return exported.Fail(NativeResult.Version, "process_list: unknown ip_process size");
            var list = exported._os.GetProcesses();
            *count = (nuint)list.Count;
            if ((nuint)list.Count > capacity)
                return (int)NativeResult.NeedMore;
            for (int i = 0; i < list.Count; i++)
            {
                if (processes[i].Version != NativeAbi.ProcessVersion || processes[i].Size < sizeof(IpProcess))
                    return exported.Fail(NativeResult.Version, "process_list: unknown ip_process version");
                Fill(ref processes[i], list[i]);
            }
            return 0;
        }
        catch (Exception e)
        {
            return exported.Fail(e);
        }
    }

    [UnmanagedCallersOnly]
    private static int ProcessDetails(void* self, ulong pid, IpProcessDetails* output)
    {
        var exported = From(self);
        if (exported is null)
            return (int)NativeResult.Internal;
        try
        {
            if (output == null || output->Version != NativeAbi.ProcessDetailsVersion || output->Size < sizeof(IpProcessDetails)
                || output->Process.Version != NativeAbi.ProcessVersion || output->Process.Size < sizeof(IpProcess))
                return exported.Fail(NativeResult.Version, "process_info: unknown ip_process_details size or version");
            var process = exported.Find(pid);
            if (process is null)
                return exported.Fail(NativeResult.NotFound, $"no process {pid}");
            Fill(ref output->Process, process);
            NativeAbi.WriteText(new Span<byte>(output->Path, 1024), process.Path);
            NativeAbi.WriteText(new Span<byte>(output->CommandLine, 4096), process.CommandLine);
            return 0;
        }
        catch (Exception e)
        {
            return exported.Fail(e);
        }
    }

    [UnmanagedCallersOnly]
    private static int ProcessRead(void* self, ulong pid, IpMemoryRequest* requests, nuint count, nuint requestSize, uint flags) =>
        Transfer(self, pid, requests, count, requestSize, flags, write: false);

    [UnmanagedCallersOnly]
    private static int ProcessWrite(void* self, ulong pid, IpMemoryRequest* requests, nuint count, nuint requestSize, uint flags) =>
        Transfer(self, pid, requests, count, requestSize, flags, write: true);

    private static int Transfer(void* self, ulong pid, IpMemoryRequest* requests, nuint count, nuint requestSize, uint flags, bool write)
    {
        var exported = From(self);
        if (exported is null)
            return (int)NativeResult.Internal;
        try
        {
            if (requestSize != (nuint)sizeof(IpMemoryRequest))
                return exported.Fail(NativeResult.Version, $"process_read: ip_memory_request of {requestSize} bytes; this host knows {sizeof(IpMemoryRequest)}");
            if (count > int.MaxValue)
                return exported.Fail(NativeResult.Argument, $"process_read: a batch of {count} entries");
            var memory = exported.MemoryOf(pid);
            if (memory is null)
                return exported.Fail(NativeResult.NotFound, $"no process {pid}");
            return NativeBatch.Run(memory, requests, (int)count, (MemoryFlags)flags, write);
        }
        catch (Exception e)
        {
            return exported.Fail(e);
        }
    }

    [UnmanagedCallersOnly]
    private static int ProcessTranslate(void* self, ulong pid, ulong virtualAddress, ulong* physicalAddress)
    {
        var exported = From(self);
        if (exported is null)
            return (int)NativeResult.Internal;
        try
        {
            var memory = exported.MemoryOf(pid);
            if (memory is null)
                return exported.Fail(NativeResult.NotFound, $"no process {pid}");
            if (!memory.TryTranslate(virtualAddress, out var physical))
                return (int)NativeResult.NotFound;
            if (physicalAddress != null)
                *physicalAddress = physical;
            return 0;
        }
        catch (Exception e)
        {
            return exported.Fail(e);
        }
    }

    [UnmanagedCallersOnly]
    private static int MemoryAreas(void* self, ulong pid, IpMemoryArea* areas, nuint capacity, nuint areaSize, nuint* count)
    {
        var exported = From(self);
        if (exported is null)
            return (int)NativeResult.Internal;
        try
        {
            if (areaSize != (nuint)sizeof(IpMemoryArea) || count == null)
                return exported.Fail(NativeResult.Version, "memory_areas: unknown ip_memory_area size");
            var process = exported.Find(pid);
            if (process is null)
                return exported.Fail(NativeResult.NotFound, $"no process {pid}");
            var list = exported._os.GetMemoryAreas(process);
            *count = (nuint)list.Count;
            if ((nuint)list.Count > capacity)
                return (int)NativeResult.NeedMore;
            for (int i = 0; i < list.Count; i++)
            {
                if (areas[i].Version != NativeAbi.MemoryAreaVersion || areas[i].Size < sizeof(IpMemoryArea))
                    return exported.Fail(NativeResult.Version, "memory_areas: unknown ip_memory_area version");
                var a = list[i];
                areas[i].Start = a.Start;
                areas[i].End = a.End;
                areas[i].Offset = a.Offset;
                areas[i].Protection = (uint)a.Protection;
                areas[i].Reserved = 0;
                NativeAbi.WriteText(new Span<byte>(areas[i].Path, 1024), a.Path);
            }
            return 0;
        }
        catch (Exception e)
        {
            return exported.Fail(e);
        }
    }

    [UnmanagedCallersOnly]
    private static int ModuleList(void* self, ulong pid, IpModule* modules, nuint capacity, nuint moduleSize, nuint* count)
    {
        var exported = From(self);
        if (exported is null)
            return (int)NativeResult.Internal;
        try
        {
            if (moduleSize != (nuint)sizeof(IpModule) || count == null)
                return exported.Fail(NativeResult.Version, "module_list: unknown ip_module size");
            IReadOnlyList<ModuleInfo> list;
            if (pid == NativeAbi.KernelPid)
            {
                list = exported._os.GetKernelModules();
            }
            else
            {
                var process = exported.Find(pid);
                if (process is null)
                    return exported.Fail(NativeResult.NotFound, $"no process {pid}");
                list = exported._os.GetModules(process);
            }
            *count = (nuint)list.Count;
            if ((nuint)list.Count > capacity)
                return (int)NativeResult.NeedMore;
            for (int i = 0; i < list.Count; i++)
            {
                if (modules[i].Version != NativeAbi.ModuleVersion || modules[i].Size < sizeof(IpModule))
                    return exported.Fail(NativeResult.Version, "module_list: unknown ip_module version");
                modules[i].Base = list[i].Base;
                modules[i].ImageSize = list[i].Size;
                NativeAbi.WriteText(new Span<byte>(modules[i].Name, 256), list[i].Name);
                NativeAbi.WriteText(new Span<byte>(modules[i].Path, 1024), list[i].Path);
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
        // The host owns the managed OS and releases the export itself.
    }
}
