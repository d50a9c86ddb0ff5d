using System.Globalization;
using Introspect.Abi;
using Introspect.Core.Caching;
using Introspect.Core.Memory;
using Introspect.Core.Translation;
using Introspect.Os.Linux.Kernel;
using Introspect.Os.Linux.Types;

namespace Introspect.Os.Linux.Processes;

/// <summary>What every walk shares: the kernel's image, memory, structure offsets, and a few values read once.</summary>
internal sealed class LinuxContext
{
    private const ulong VsyscallPage = 0xffff_ffff_ff60_0000;

    private readonly IPluginContext _plugin;

    public LinuxContext(IPhysicalMemory physical, KernelImage image, IKernelTypeSource types, LinuxStructures structures,
        TranslationCache? tlb, IPluginContext plugin)
    {
        Physical = physical;
        Image = image;
        Types = types;
        Structures = structures;
        Tlb = tlb;
        _plugin = plugin;
        Kernel = new KernelMemory(physical, image, tlb);
        Reader = new KernelReader(Kernel);
        Paths = new PathResolver(Reader, structures);

        SpecialMappingOps = image.Symbols.TryGetAddress("special_mapping_vmops", out ulong ops) ? ops : null;
        AnonNameOffset = FieldWithin(types, "vm_area_struct", "anon_name", structures.VmaSize, 8);
        AnonNameText = FieldWithin(types, "anon_vma_name", "name", int.MaxValue, 0);
        MmContextFlags = FieldWithin(types, "mm_struct", "context.flags", structures.MmSize, 4);
        if (image.Symbols.TryGetAddress("vsyscall_mode", out ulong mode) && Kernel.TryRead(mode, out int modeValue))
            VsyscallMode = modeValue;
        GateVma = ReadGateVma();
        (BootWallClock, WallClock) = ReadClocks();
    }

    public IPhysicalMemory Physical { get; }

    public KernelImage Image { get; }

    public IKernelTypeSource Types { get; }

    public LinuxStructures Structures { get; }

    /// <summary>The translation cache every address space shares, or null when the host turned it off.</summary>
    public TranslationCache? Tlb { get; }

    public KernelMemory Kernel { get; }

    public KernelReader Reader { get; }

    public PathResolver Paths { get; }

    /// <summary><c>special_mapping_vmops</c>: the <c>vm_ops</c> of areas such as <c>[vdso]</c>.</summary>
    public ulong? SpecialMappingOps { get; }

    /// <summary><c>vm_area_struct.anon_name</c> and <c>anon_vma_name.name</c>, -1 without <c>CONFIG_ANON_VMA_NAME</c>.</summary>
    public int AnonNameOffset { get; }

    public int AnonNameText { get; }

    /// <summary><c>mm_struct.context.flags</c> (x86's <c>MM_CONTEXT_HAS_VSYSCALL</c> lives there), -1 when unknown.</summary>
    public int MmContextFlags { get; }

    /// <summary>The kernel's <c>vsyscall_mode</c> (emulate, xonly, none), when readable.</summary>
    public int? VsyscallMode { get; }

    /// <summary>The vsyscall page as <c>gate_vma</c> describes it, or null when the kernel has none.</summary>
    public MemoryArea? GateVma { get; }

    /// <summary>The wall-clock time of boot: task start times (nanoseconds since boot) are added to it.</summary>
    public DateTimeOffset? BootWallClock { get; }

    /// <summary>The wall-clock time the memory was captured at (the timekeeper's last update), when known: no process started later.</summary>
    public DateTimeOffset? WallClock { get; }

    public void Warn(string message) => _plugin.Log(PluginLogLevel.Warning, "linux: " + message);

    /// <summary>A process's address space under the kernel's paging mode.</summary>
    public AddressSpace UserSpace(ulong directoryTableBase) => new(Physical, Image.Paging, directoryTableBase, tlb: Tlb);

    /// <summary>An optional field's offset, or -1 when the type lacks it or it would not fit in a structure of <paramref name="size"/> bytes.</summary>
    private static int FieldWithin(IKernelTypeSource types, string type, string path, int size, int width) =>
        types.TryGetField(type, path, out var field) && field.Offset <= (ulong)(size - width) ? (int)field.Offset : -1;

    private MemoryArea? ReadGateVma()
    {
        if (!Image.Symbols.TryGetAddress("gate_vma", out ulong gate))
            return null;
        var vma = new byte[Structures.VmaSize];
        if (!Reader.TryReadAll(gate, vma))
            return null;
        var s = Structures;
        ulong start = KernelReader.U64(vma, s.VmaStart), end = KernelReader.U64(vma, s.VmaEnd);
        if (start != VsyscallPage || end <= start)
            return null;
        ulong flags = KernelReader.U64(vma, s.VmaFlags);
        var protection = MemoryProtection.None;
        if ((flags & 1) != 0)
            protection |= MemoryProtection.Read;
        if ((flags & 2) != 0)
            protection |= MemoryProtection.Write;
        if ((flags & 4) != 0)
            protection |= MemoryProtection.Execute;
        return new MemoryArea(start, end, protection, 0, "[vsyscall]");
    }

    /// <summary>Boot time on the wall clock (<c>tk_core.timekeeper.offs_real</c> is realtime minus monotonic; less
    /// <c>offs_boot</c> when start times count boot time, as the kernel's own <c>btime</c> is), and the time of capture
    /// (<c>xtime_sec</c>).</summary>
    /// <remarks><c>tk_core</c> is an unnamed structure of a sequence counter and the timekeeper, aligned to 8 bytes.</remarks>
    private (DateTimeOffset? Boot, DateTimeOffset? Now) ReadClocks()
    {
        if (!Image.Symbols.TryGetAddress("tk_core", out ulong core)
            || !Types.TryGetField("timekeeper", "offs_real", out var offsReal)
            || !Types.TryGetTypeSize("seqcount_raw_spinlock_t", out ulong sequenceSize)
            || sequenceSize > 64 || offsReal.Offset > int.MaxValue)
            return (null, null);
        ulong timekeeper = KernelReader.Field(core, (int)((sequenceSize + 7) & ~7UL));
        if (!Kernel.TryRead(KernelReader.Field(timekeeper, (int)offsReal.Offset), out long offset) || offset <= 0)
            return (null, null);
        if (Structures.TaskStartTimeIsBootTime)
        {
            if (!Types.TryGetField("timekeeper", "offs_boot", out var offsBoot) || offsBoot.Offset > int.MaxValue
                || !Kernel.TryRead(KernelReader.Field(timekeeper, (int)offsBoot.Offset), out long sleep) || sleep < 0 || sleep > offset)
                return (null, null);
            offset -= sleep;
        }
        var boot = DateTimeOffset.UnixEpoch.AddTicks(offset / 100);
        // A clock that was never set reads 1970; one past 2200 is garbage. Neither is a boot time worth showing.
        if (boot.Year < 1990 || boot.Year > 2200)
        {
            Warn(string.Create(CultureInfo.InvariantCulture, $"the boot time the timekeeper gives, {boot:u}, is implausible; start times are left out."));
            return (null, null);
        }
        DateTimeOffset? now = null;
        if (Types.TryGetField("timekeeper", "xtime_sec", out var xtime) && xtime.Offset <= int.MaxValue
            && Kernel.TryRead(KernelReader.Field(timekeeper, (int)xtime.Offset), out long seconds)
            && seconds >= boot.ToUnixTimeSeconds() && seconds < 253_402_300_799)
            now = DateTimeOffset.FromUnixTimeSeconds(seconds);
        return (boot, now);
    }
}
