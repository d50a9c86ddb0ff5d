using System.Globalization;
using Introspect.Abi;
using Introspect.Core.Memory;
using Introspect.Os.Windows.Offsets;

namespace Introspect.Os.Windows.Processes;

/// <summary>Walks loader lists: a process's PEB_LDR_DATA (64-bit and, for WoW64, 32-bit) and the kernel's PsLoadedModuleList.</summary>
internal sealed class ModuleWalker(WindowsKernel kernel)
{
    /// <summary>The modules on the PEB's load-order list (the main image first, as the loader puts it).</summary>
    public List<ModuleInfo> ProcessModules(WindowsProcess process)
    {
        var o = kernel.Offsets;
        if (process.Peb == 0 || process.Info.DirectoryTableBase == 0)
            return [];
        var space = kernel.ProcessSpace(process.Info.DirectoryTableBase);
        var reader = kernel.Reader;
        if (!reader.TryPointer(space, unchecked(process.Peb + (ulong)o.PebLdr), out ulong ldr) || ldr == 0)
            return [];
        return Walk(space, reader, unchecked(ldr + (ulong)o.LdrInLoadOrderModuleList), o.LdrEntryDllBase, o.LdrEntrySizeOfImage, o.LdrEntryFullDllName, o.LdrEntryBaseDllName,
            $"the loader list of process {process.Info.Pid}");
    }

    /// <summary>The 32-bit modules of a WoW64 process, from its 32-bit PEB.</summary>
    public List<ModuleInfo> ProcessModules32(WindowsProcess process)
    {
        if (process.Peb32 == 0 || process.Info.DirectoryTableBase == 0)
            return [];
        var space = kernel.ProcessSpace(process.Info.DirectoryTableBase);
        var reader = new GuestReader(4);
        if (!reader.TryPointer(space, unchecked(process.Peb32 + WindowsOffsets.Wow64.PebLdr), out ulong ldr) || ldr == 0)
            return [];
        return Walk(space, reader, unchecked(ldr + WindowsOffsets.Wow64.LdrInLoadOrderModuleList), WindowsOffsets.Wow64.LdrEntryDllBase,
            WindowsOffsets.Wow64.LdrEntrySizeOfImage, WindowsOffsets.Wow64.LdrEntryFullDllName, WindowsOffsets.Wow64.LdrEntryBaseDllName,
            $"the 32-bit loader list of process {process.Info.Pid}");
    }

    /// <summary>The kernel's modules from PsLoadedModuleList (KLDR_DATA_TABLE_ENTRY shares the loader entry's layout).</summary>
    public List<ModuleInfo> KernelModules()
    {
        if (kernel.PsLoadedModuleList == 0)
            return [];
        var o = kernel.Offsets;
        return Walk(kernel.Kernel, kernel.Reader, kernel.PsLoadedModuleList, o.LdrEntryDllBase, o.LdrEntrySizeOfImage, o.LdrEntryFullDllName,
            o.LdrEntryBaseDllName, "PsLoadedModuleList");
    }

    private List<ModuleInfo> Walk(IMemory memory, GuestReader reader, ulong head, int dllBase, int sizeOfImage, int fullName, int baseName, string what)
    {
        var modules = new List<ModuleInfo>();
        var seen = new HashSet<ulong> { head };
        int entrySize = baseName + reader.UnicodeStringSize;
        var bytes = new byte[entrySize];
        if (!reader.TryPointer(memory, head, out ulong entry))
        {
            kernel.Warn(string.Create(CultureInfo.InvariantCulture, $"{what}: the head 0x{head:x} cannot be read"));
            return modules;
        }
        while (entry != head)
        {
            if (entry == 0 || !seen.Add(entry))
            {
                kernel.Warn(string.Create(CultureInfo.InvariantCulture, $"{what} loops or breaks at 0x{entry:x} after {modules.Count} entries; the walk stops there"));
                break;
            }
            if (modules.Count >= WindowsLimits.MaxModules)
            {
                kernel.Warn($"{what} holds more than {WindowsLimits.MaxModules} entries; the rest are left out");
                break;
            }
            if (memory.Read(entry, bytes) != bytes.Length)
            {
                kernel.Warn(string.Create(CultureInfo.InvariantCulture, $"{what} is torn after {modules.Count} entries: 0x{entry:x} cannot be read"));
                break;
            }
            ulong start = reader.Pointer(bytes, dllBase);
            ulong size = GuestReader.U32(bytes, sizeOfImage);
            string? path = reader.UnicodeString(memory, bytes, fullName);
            string? name = reader.UnicodeString(memory, bytes, baseName);
            if (string.IsNullOrEmpty(name) && path is not null)
                name = path[(path.LastIndexOfAny(['\\', '/']) + 1)..];
            modules.Add(new ModuleInfo(name ?? "", string.IsNullOrEmpty(path) ? null : path, start, size));
            entry = reader.Pointer(bytes, 0);
        }
        return modules;
    }
}
