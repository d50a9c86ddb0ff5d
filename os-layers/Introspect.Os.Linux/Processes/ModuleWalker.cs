using System.Globalization;
using Introspect.Abi;
using Introspect.Core.Memory;
using Introspect.Os.Linux.Types;

namespace Introspect.Os.Linux.Processes;

/// <summary>The kernel's loaded modules, from the <c>modules</c> list, as <c>/proc/modules</c> shows them.</summary>
/// <remarks>
/// Up to 6.3 a module's core sits in <c>core_layout</c> (base, size); from 6.4 in <c>mem[]</c>, whose first entry
/// is the text and whose first four (text, data, read-only data, read-only after init) make the core's size.
/// </remarks>
internal sealed class ModuleWalker(LinuxContext linux)
{
    private const int CoreMemoryTypes = 4;

    private readonly LinuxStructures _s = linux.Structures;
    private readonly KernelReader _reader = linux.Reader;

    public IReadOnlyList<ModuleInfo> GetModules()
    {
        var modules = new List<ModuleInfo>();
        if (!linux.Image.Symbols.TryGetAddress("modules", out ulong head))
        {
            linux.Warn("the kernel has no 'modules' symbol; no kernel modules listed.");
            return modules;
        }
        var seen = new HashSet<ulong> { head };
        if (!_reader.TryReadPointer(head, out ulong next))
            return modules;
        var name = new byte[_s.ModuleNameSize];
        while (next != head)
        {
            if (!seen.Add(next) || modules.Count >= LinuxLimits.MaxModules)
            {
                linux.Warn(Invariant($"the module list loops or exceeds {LinuxLimits.MaxModules} entries; {modules.Count} modules listed."));
                break;
            }
            ulong module = KernelReader.Container(next, _s.ModuleList);
            if (!KernelReader.IsKernelPointer(next) || !_reader.TryReadAll(KernelReader.Field(module, _s.ModuleName), name))
            {
                linux.Warn(Invariant($"the module list leads to 0x{next:x}, which cannot be read; {modules.Count} modules listed."));
                break;
            }
            var (baseAddress, size) = CoreOf(module);
            modules.Add(new ModuleInfo(KernelReader.FixedString(name), null, baseAddress, size));
            if (!_reader.TryReadPointer(next, out next))
                break;
        }
        return modules;
    }

    private (ulong Base, ulong Size) CoreOf(ulong module)
    {
        if (_s.ModuleCoreBase >= 0)
        {
            ulong coreBase = _reader.ReadPointerOrZero(KernelReader.Field(module, _s.ModuleCoreBase));
            uint coreSize = _reader.Memory.TryRead(KernelReader.Field(module, _s.ModuleCoreSize), out uint size) ? size : 0;
            return (coreBase, coreSize);
        }
        if (_s.ModuleMem >= 0 && _s.ModuleMemCount > 0)
        {
            ulong first = KernelReader.Field(module, _s.ModuleMem);
            ulong textBase = _reader.ReadPointerOrZero(KernelReader.Field(first, _s.ModuleMemBase));
            ulong total = 0;
            for (int type = 0; type < Math.Min(CoreMemoryTypes, _s.ModuleMemCount); type++)
            {
                ulong entry = KernelReader.Field(first, type * _s.ModuleMemStride);
                if (_reader.Memory.TryRead(KernelReader.Field(entry, _s.ModuleMemSize), out uint size))
                    total += size;
            }
            return (textBase, total);
        }
        return (0, 0);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
