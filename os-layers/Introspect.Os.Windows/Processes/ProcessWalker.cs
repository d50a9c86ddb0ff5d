using System.Globalization;
using Introspect.Abi;
using Introspect.Core.Memory;

namespace Introspect.Os.Windows.Processes;

/// <summary>One EPROCESS as read, with what the other walkers need beside the <see cref="ProcessInfo"/>.</summary>
internal sealed record WindowsProcess(ProcessInfo Info, ulong Peb, ulong Peb32);

/// <summary>Walks <c>ActiveProcessLinks</c> and describes each EPROCESS.</summary>
internal sealed class ProcessWalker(WindowsKernel kernel)
{
    private readonly GuestReader _reader = kernel.Reader;

    /// <summary>The EPROCESS addresses on the process list, bounded and cycle-safe; a torn list ends the walk with a warning.</summary>
    public List<ulong> WalkList()
    {
        var offsets = kernel.Offsets;
        var memory = kernel.Kernel;
        var found = new List<ulong>();
        var seen = new HashSet<ulong>();
        ulong head = kernel.PsActiveProcessHead;
        ulong start = head != 0 ? head : kernel.SystemProcess + (ulong)offsets.ActiveProcessLinks;
        if (head == 0 && kernel.SystemProcess == 0)
            return found;
        if (head == 0)
            found.Add(kernel.SystemProcess); // walking from System's own links: it is not reached again
        seen.Add(start);
        if (!_reader.TryPointer(memory, start, out ulong entry))
        {
            kernel.Warn(string.Create(CultureInfo.InvariantCulture, $"the process list head 0x{start:x} cannot be read"));
            return found;
        }
        while (entry != start)
        {
            if (!_reader.IsKernelAddress(entry))
            {
                kernel.Warn(string.Create(CultureInfo.InvariantCulture, $"the process list is torn after {found.Count} entries: Flink 0x{entry:x} is not a kernel address"));
                break;
            }
            if (kernel.InKernelImage(entry))
            {
                // Walking from System: this is the list head; step over it.
                if (!seen.Add(entry) || !_reader.TryPointer(memory, entry, out entry))
                    break;
                continue;
            }
            if (!seen.Add(entry))
            {
                kernel.Warn(string.Create(CultureInfo.InvariantCulture, $"the process list loops back to 0x{entry:x} after {found.Count} entries; the walk stops there"));
                break;
            }
            if (found.Count >= WindowsLimits.MaxProcesses)
            {
                kernel.Warn($"the process list holds more than {WindowsLimits.MaxProcesses} entries; the rest are left out");
                break;
            }
            found.Add(unchecked(entry - (ulong)offsets.ActiveProcessLinks));
            if (!_reader.TryPointer(memory, entry, out ulong next))
            {
                kernel.Warn(string.Create(CultureInfo.InvariantCulture, $"the process list is torn after {found.Count} entries: 0x{entry:x} cannot be read"));
                break;
            }
            entry = next;
        }
        return found;
    }

    /// <summary>Reads one EPROCESS; null when it cannot be read.</summary>
    public WindowsProcess? Describe(ulong eprocess, bool hidden)
    {
        var o = kernel.Offsets;
        var bytes = new byte[o.EprocessReadSize];
        if (kernel.Kernel.Read(eprocess, bytes, MemoryFlags.ZeroPadOnFail) != bytes.Length
            || kernel.Kernel.Read(eprocess, bytes.AsSpan(0, 8)) != 8)
            return null;
        ReadOnlySpan<byte> b = bytes;
        ulong pid = _reader.Pointer(b, o.UniqueProcessId);
        ulong parent = o.InheritedFromUniqueProcessId >= 0 ? _reader.Pointer(b, o.InheritedFromUniqueProcessId) : 0;
        string name = GuestReader.AsciiName(b.Slice(o.ImageFileName, 15));
        ulong dtb = (_reader.Is64 ? GuestReader.U64(b, o.DirectoryTableBase) : GuestReader.U32(b, o.DirectoryTableBase)) & kernel.RootMask;
        ulong? userDtb = null;
        if (o.UserDirectoryTableBase >= 0 && GuestReader.U64(b, o.UserDirectoryTableBase) is var user && user > 1)
            userDtb = user & kernel.RootMask;
        long createTime = o.CreateTime >= 0 ? unchecked((long)GuestReader.U64(b, o.CreateTime)) : 0;
        long exitTime = o.ExitTime >= 0 ? unchecked((long)GuestReader.U64(b, o.ExitTime)) : 0;
        int? exitStatus = o.ExitStatus >= 0 && exitTime != 0 ? unchecked((int)GuestReader.U32(b, o.ExitStatus)) : null;
        ulong peb = o.Peb >= 0 ? _reader.Pointer(b, o.Peb) : 0;
        ulong wow64 = o.WoW64Process >= 0 ? _reader.Pointer(b, o.WoW64Process) : 0;
        ulong peb32 = 0;
        if (wow64 != 0 && _reader.Is64)
            peb32 = _reader.Pointer(kernel.Kernel, wow64) & 0xFFFF_FFFF;

        string? path = null, commandLine = null;
        if (peb != 0 && _reader.IsUserAddress(peb) && dtb != 0)
        {
            var space = kernel.ProcessSpace(dtb);
            if (_reader.TryPointer(space, unchecked(peb + (ulong)o.PebProcessParameters), out ulong parameters) && parameters != 0)
            {
                path = _reader.UnicodeString(space, unchecked(parameters + (ulong)o.ParametersImagePathName));
                commandLine = _reader.UnicodeString(space, unchecked(parameters + (ulong)o.ParametersCommandLine));
            }
        }
        string? devicePath = null;
        if (o.SeAuditProcessCreationInfo >= 0 && _reader.Pointer(b, o.SeAuditProcessCreationInfo) is var nameInfo and not 0)
            devicePath = _reader.UnicodeString(kernel.Kernel, nameInfo);

        bool exited = exitTime != 0;
        var info = new ProcessInfo
        {
            Pid = pid,
            ParentPid = parent,
            Name = name,
            Path = string.IsNullOrEmpty(path) ? (string.IsNullOrEmpty(devicePath) ? null : devicePath) : path,
            CommandLine = string.IsNullOrEmpty(commandLine) ? null : commandLine,
            State = exited ? ProcessState.Exited : ProcessState.Running,
            StateText = (exited ? "exited" : "running") + (hidden ? ", hidden" : ""),
            IsKernelThread = peb == 0,
            DirectoryTableBase = dtb,
            UserDirectoryTableBase = userDtb,
            KernelObject = eprocess,
            StartTime = ToTime(createTime),
            ExitTime = exited ? ToTime(exitTime) : null,
            ExitStatus = exitStatus,
            Architecture = peb32 != 0 ? MachineArchitecture.X86 : MachineArchitecture.Unknown,
            IsHidden = hidden,
        };
        return new WindowsProcess(info, peb, peb32);
    }

    private static DateTimeOffset? ToTime(long fileTime)
    {
        if (fileTime <= 0 || fileTime > DateTime.MaxValue.ToFileTimeUtc())
            return null;
        return new DateTimeOffset(DateTime.FromFileTimeUtc(fileTime));
    }
}
