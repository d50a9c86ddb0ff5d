using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Introspect.Abi;

namespace Introspect.Connectors.Coredump.Formats;

/// <summary>The ELF notes of a core dump that matter here: per-CPU registers and the kernel's VMCOREINFO.</summary>
/// <remarks>
/// The same notes appear in an ELF core's PT_NOTE segments and in a kdump file's note area.
/// CPUs are matched by order: the n-th <c>CORE</c>/<c>NT_PRSTATUS</c> note and the n-th
/// <c>QEMU</c> note describe CPU n.
/// </remarks>
internal sealed class CoreNotes
{
    /// <summary>The largest note area read; a 1024-CPU guest's notes take well under 2 MiB.</summary>
    public const int MaxNoteAreaSize = 64 << 20;

    public const ushort MachineX86 = 3;
    public const ushort MachineX64 = 62;
    public const ushort MachineArm64 = 183;

    private const uint NtPrStatus = 1;

    // QEMU's QEMUCPUState (target/i386/arch_dump.c): version, size, rax..r15, rip, rflags, ten
    // 24-byte segments (cs ds es fs gs ss ldt tr gdt idt), cr[5], kernel_gs_base.
    private const int QemuRsp = 8 + 6 * 8;
    private const int QemuRip = 8 + 16 * 8;
    private const int QemuGsBase = 152 + 4 * 24 + 16;
    private const int QemuCr0 = 152 + 10 * 24;
    private const int QemuCr3 = QemuCr0 + 3 * 8;
    private const int QemuCr4 = QemuCr0 + 4 * 8;
    private const int QemuKernelGsBase = QemuCr0 + 5 * 8;
    private const int QemuSizeWithoutKernelGsBase = QemuKernelGsBase;
    private const int QemuSize = QemuKernelGsBase + 8;

    // elf_prstatus: pr_reg starts at 112 on x86-64 and AArch64, 72 on i386.
    private const int PrStatusX64Size = 336;
    private const int PrStatusX86Size = 144;
    private const int PrStatusArm64Size = 392;

    private readonly List<byte[]> _prStatus = [];
    private readonly List<byte[]> _qemu = [];

    public string? VmcoreInfo { get; set; }

    public int PrStatusCount => _prStatus.Count;

    public int QemuCount => _qemu.Count;

    /// <summary>Reads every note of <paramref name="area"/>, which sits at <paramref name="fileOffset"/> of <paramref name="file"/>.</summary>
    /// <exception cref="InvalidDataException">A note's sizes run past the area.</exception>
    public void Parse(ReadOnlySpan<byte> area, string file, ulong fileOffset)
    {
        int position = 0;
        while (area.Length - position >= 12)
        {
            uint nameSize = BinaryPrimitives.ReadUInt32LittleEndian(area[position..]);
            uint descSize = BinaryPrimitives.ReadUInt32LittleEndian(area[(position + 4)..]);
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(area[(position + 8)..]);
            ulong nameStart = (ulong)position + 12;
            ulong descStart = nameStart + Align4(nameSize);
            ulong end = descStart + Align4(descSize);
            if (end > (ulong)area.Length)
            {
                ThrowHelper.ThrowInvalid(file, string.Create(CultureInfo.InvariantCulture,
                    $"the ELF note at file offset 0x{fileOffset + (ulong)position:x} has n_namesz {nameSize} and n_descsz {descSize}, which run past the end of its note area (0x{area.Length:x} bytes at 0x{fileOffset:x})."));
            }
            var name = area.Slice((int)nameStart, (int)nameSize).TrimEnd((byte)0);
            var desc = area.Slice((int)descStart, (int)descSize);
            if (name.SequenceEqual("CORE"u8) && type == NtPrStatus)
                _prStatus.Add(desc.ToArray());
            else if (name.SequenceEqual("QEMU"u8))
                _qemu.Add(desc.ToArray());
            else if (name.SequenceEqual("VMCOREINFO"u8))
                VmcoreInfo = DecodeText(desc);
            position = (int)end;
        }
    }

    public static string DecodeText(ReadOnlySpan<byte> bytes) => Encoding.UTF8.GetString(bytes.TrimEnd((byte)0));

    private static ulong Align4(uint size) => ((ulong)size + 3) & ~3UL;

    /// <summary>The machine the notes were written for, where the dump's header does not say.</summary>
    public ushort GuessMachine()
    {
        if (_prStatus.Count == 0)
            return _qemu.Count > 0 ? MachineX64 : (ushort)0;
        return _prStatus[0].Length switch
        {
            PrStatusX64Size => MachineX64,
            PrStatusX86Size => MachineX86,
            PrStatusArm64Size => MachineArm64,
            _ => (ushort)0,
        };
    }

    /// <summary>The registers of every CPU the notes describe.</summary>
    public IReadOnlyList<CpuRegisters> BuildCpus(ushort machine)
    {
        int count = Math.Max(_prStatus.Count, _qemu.Count);
        var cpus = new CpuRegisters[count];
        for (int i = 0; i < count; i++)
        {
            var cpu = new CpuRegisters { Index = i };
            if (i < _prStatus.Count)
                cpu = FromPrStatus(cpu, machine, _prStatus[i]);
            if (i < _qemu.Count && machine is MachineX64 or MachineX86)
                cpu = FromQemu(cpu, _qemu[i]);
            cpus[i] = cpu;
        }
        return cpus;
    }

    private static CpuRegisters FromPrStatus(CpuRegisters cpu, ushort machine, byte[] desc)
    {
        switch (machine)
        {
            case MachineX64 when desc.Length >= PrStatusX64Size:
                // user_regs_struct: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base
                return cpu with
                {
                    InstructionPointer = U64(desc, 112 + 16 * 8),
                    StackPointer = U64(desc, 112 + 19 * 8),
                    GsBase = U64(desc, 112 + 22 * 8),
                };
            case MachineX86 when desc.Length >= PrStatusX86Size:
                // user_regs_struct (i386): ebx ecx edx esi edi ebp eax ds es fs gs orig_eax eip cs eflags esp ss
                return cpu with
                {
                    InstructionPointer = BinaryPrimitives.ReadUInt32LittleEndian(desc.AsSpan(72 + 12 * 4)),
                    StackPointer = BinaryPrimitives.ReadUInt32LittleEndian(desc.AsSpan(72 + 15 * 4)),
                };
            case MachineArm64 when desc.Length >= PrStatusArm64Size:
                // user_pt_regs: x0..x30, sp, pc, pstate
                return cpu with
                {
                    StackPointer = U64(desc, 112 + 31 * 8),
                    InstructionPointer = U64(desc, 112 + 32 * 8),
                };
            default:
                return cpu;
        }
    }

    private static CpuRegisters FromQemu(CpuRegisters cpu, byte[] desc)
    {
        if (desc.Length < QemuSizeWithoutKernelGsBase)
            return cpu;
        uint declaredSize = BinaryPrimitives.ReadUInt32LittleEndian(desc.AsSpan(4));
        return cpu with
        {
            InstructionPointer = U64(desc, QemuRip),
            StackPointer = U64(desc, QemuRsp),
            GsBase = U64(desc, QemuGsBase),
            Cr0 = U64(desc, QemuCr0),
            Cr3 = U64(desc, QemuCr3),
            Cr4 = U64(desc, QemuCr4),
            KernelGsBase = declaredSize >= QemuSize && desc.Length >= QemuSize ? U64(desc, QemuKernelGsBase) : 0,
        };
    }

    private static ulong U64(byte[] bytes, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(offset));

    /// <summary>Fills the architecture and the page-table root from the machine and CPU 0's control registers.</summary>
    public ConnectorHints ToHints(string format, ushort machine)
    {
        var cpus = BuildCpus(machine);
        bool haveControlRegisters = _qemu.Count > 0 && _qemu[0].Length >= QemuSizeWithoutKernelGsBase;
        var first = cpus.Count > 0 ? cpus[0] : null;
        bool paging = haveControlRegisters && first is not null && (first.Cr0 & (1UL << 31)) != 0;
        bool pae = first is not null && (first.Cr4 & (1UL << 5)) != 0;
        var architecture = machine switch
        {
            MachineX64 => MachineArchitecture.X64,
            MachineX86 => pae ? MachineArchitecture.X86Pae : MachineArchitecture.X86,
            MachineArm64 => MachineArchitecture.Arm64,
            _ => MachineArchitecture.Unknown,
        };
        ulong? directoryTableBase = null;
        if (paging)
        {
            // CR3 carries flags (PCID, no-flush) below and above the table's address.
            directoryTableBase = architecture switch
            {
                MachineArchitecture.X64 => first!.Cr3 & 0x000F_FFFF_FFFF_F000UL,
                MachineArchitecture.X86Pae => first!.Cr3 & 0xFFFF_FFE0UL,
                MachineArchitecture.X86 => first!.Cr3 & 0xFFFF_F000UL,
                _ => null,
            };
        }
        return new ConnectorHints
        {
            Format = format,
            Architecture = architecture,
            DirectoryTableBase = directoryTableBase,
            PaeEnabled = (architecture is MachineArchitecture.X86 or MachineArchitecture.X86Pae) && haveControlRegisters ? pae : null,
            VmcoreInfo = VmcoreInfo,
            Cpus = cpus,
        };
    }
}
