using System.Buffers.Binary;
using System.Text;
using Introspect.Abi;
using Introspect.Core;

namespace Introspect.Facade.Tests;

/// <summary>The virtual file system's shape and files over test doubles: what is listed, what files hold, what they take.</summary>
public class VfsTests
{
    private static (Machine Machine, FakeOs Os) Open()
    {
        var physical = new SparseMemory(0x7fffff).Set(0x1000, "physical page"u8);
        var os = new FakeOs(physical);
        os.AddProcess(1, "init", parent: 0, commandLine: "/sbin/init splash", uid: 0);
        os.Processes[^1] = os.Processes[^1] with { Path = "/sbin/init", Environment = ["HOME=/", "TERM=linux"] };
        os.AddProcess(2, "kworker/0:1", parent: 0);
        os.Processes[^1] = os.Processes[^1] with { IsKernelThread = true, DirectoryTableBase = 0, StateText = "I", State = ProcessState.Idle };
        os.AddProcess(42, "app", commandLine: "app --flag", uid: 1000);
        os.ProcessMemory[42].Set(0x400000, Enumerable.Range(0, 0x2000).Select(i => unchecked((byte)i)).ToArray()).Set(0x7ffff000, "stack top"u8);
        os.Areas[42] =
        [
            new MemoryArea(0x400000, 0x402000, MemoryProtection.Read | MemoryProtection.Execute, 0, "/opt/app/bin/app"),
            new MemoryArea(0x402000, 0x404000, MemoryProtection.None, 0x2000, "/opt/app/bin/app"),
            new MemoryArea(0x10000000, 0x10003000, MemoryProtection.Read | MemoryProtection.Write, 0, null),
            new MemoryArea(0x7fff0000, 0x80000000, MemoryProtection.Read | MemoryProtection.Write, 0, "[stack]"),
            new MemoryArea(0x7fff80000000, 0x7fff80001000, MemoryProtection.Read | MemoryProtection.Shared, 0x1000,
                "/a/very/long/path/that/makes/the/line/longer/than/the/name/column/of/proc/maps.dat"),
        ];
        os.Modules[42] = [new ModuleInfo("app", "/opt/app/bin/app", 0x400000, 0x4000), new ModuleInfo("libc.so.6", "/lib/libc.so.6", 0x7f0000000000, 0x1000), new ModuleInfo("app", "/other/app", 0x500000, 0x1000)];
        os.KernelModules.Add(new ModuleInfo("e1000", null, 0xffffffffc0000000, 0x20000));
        os.Symbols["init_task"] = 0xffffffff82000000;
        return (Machine.Open(physical, os), os);
    }

    [Test]
    public void The_root_and_a_process_folder_have_memprocfs_shape_and_kernel_threads_have_no_memory_files()
    {
        var (machine, _) = Open();
        using var _ = machine;
        var vfs = machine.Vfs;

        Assert.That(vfs.List("/").Select(e => (e.Name, e.IsDirectory)), Is.EqualTo(new[]
        {
            ("memory.pmem", false), ("pid", true), ("name", true), ("sys", true), ("conf", true), ("vm", true),
        }));
        Assert.That(vfs.List("/pid").Select(e => e.Name), Is.EqualTo(new[] { "1", "2", "42" }));
        Assert.That(vfs.List("/name").Select(e => e.Name), Is.EqualTo(new[] { "init-1", "kworker_0:1-2", "app-42" }));
        Assert.That(vfs.List("/pid/42").Select(e => e.Name), Is.EquivalentTo(new[]
        {
            "name.txt", "pid.txt", "ppid.txt", "state.txt", "cmdline.txt", "dtb.txt", "uid.txt", "maps.txt", "memory.vmem", "core.elf", "modules",
        }));
        Assert.That(vfs.List("/pid/2").Select(e => e.Name), Has.None.AnyOf("memory.vmem", "core.elf", "maps.txt", "modules"));
        Assert.That(vfs.List("/pid/1").Select(e => e.Name), Does.Contain("environ.txt").And.Contain("path.txt"));
        Assert.That(vfs.List("/sys").Select(e => e.Name), Is.EquivalentTo(new[] { "memory", "version.txt", "kernel.txt", "proc", "modules", "net", "users", "symbols" }));
        Assert.That(vfs.GetEntry("/memory.pmem")!.Value.Size, Is.EqualTo(0x800000UL));
        Assert.That(vfs.GetEntry("/pid/42/memory.vmem")!.Value.Size, Is.EqualTo(1UL << 47));
    }

    [Test]
    public void Process_text_files_hold_what_the_os_layer_found()
    {
        var (machine, _) = Open();
        using var _ = machine;
        var vfs = machine.Vfs;

        Assert.That(vfs.ReadText("/pid/42/cmdline.txt"), Is.EqualTo("app --flag\n"));
        Assert.That(vfs.ReadText("/name/app-42/name.txt"), Is.EqualTo("app\n"));
        Assert.That(vfs.ReadText("/pid/42/ppid.txt"), Is.EqualTo("1\n"));
        Assert.That(vfs.ReadText("/pid/42/uid.txt"), Is.EqualTo("1000\n"));
        Assert.That(vfs.ReadText("/pid/42/state.txt"), Is.EqualTo("S (sleeping)\n"));
        Assert.That(vfs.ReadText("/pid/2/state.txt"), Is.EqualTo("I (idle)\n"));
        Assert.That(vfs.ReadText("/pid/1/environ.txt"), Is.EqualTo("HOME=/\nTERM=linux\n"));
        Assert.That(vfs.ReadText("/pid/42/dtb.txt"), Is.EqualTo("0x12a000\n"));
        Assert.That(vfs.ReadText("/sys/version.txt"), Is.EqualTo("Fake 1.0 (test)\n"));
        Assert.That(vfs.ReadText("/sys/proc/proc.txt"), Does.Contain("    42      1 S 1000  -app"));
        Assert.That(vfs.ReadText("/sys/modules/modules.txt"), Is.EqualTo("ffffffffc0000000      20000 e1000\n"));
        Assert.That(vfs.ReadText("/sys/symbols/init_task.txt"), Is.EqualTo("0xffffffff82000000 init_task\n"));
        Assert.That(vfs.GetEntry("/sys/symbols/no_such_symbol.txt"), Is.Null);
        Assert.That(vfs.ReadText("/sys/memory/physmemmap.txt"), Is.EqualTo("0000  0000000000000000 - 00000000007fffff\n"));
    }

    [Test]
    public void Maps_follow_linux_columns_padding_and_the_double_space_of_long_lines()
    {
        var (machine, _) = Open();
        using var _ = machine;

        var lines = machine.Vfs.ReadText("/pid/42/maps.txt").Split('\n');

        Assert.That(lines[0], Is.EqualTo("00400000-00402000 r-xp 00000000 00:00 0" + new string(' ', 34) + "/opt/app/bin/app"));
        Assert.That(lines[1], Does.StartWith("00402000-00404000 ---p 00002000 00:00 0 "));
        Assert.That(lines[2], Is.EqualTo("10000000-10003000 rw-p 00000000 00:00 0 "), "an anonymous area keeps the trailing space");
        Assert.That(lines[3].IndexOf("[stack]", StringComparison.Ordinal), Is.EqualTo(73));
        Assert.That(lines[4], Is.EqualTo("7fff80000000-7fff80001000 r--s 00001000 00:00 0" + new string(' ', 26) + "/a/very/long/path/that/makes/the/line/longer/than/the/name/column/of/proc/maps.dat"));
        Assert.That(lines[5], Is.Empty, "the text ends with a newline");
    }

    [Test]
    public void Memory_files_read_through_with_holes_as_zeros_and_stop_at_their_end()
    {
        var (machine, _) = Open();
        using var _ = machine;
        var vfs = machine.Vfs;

        var bytes = vfs.Read("/pid/42/memory.vmem", 0x401ff0, 0x20);
        Assert.That(bytes.AsSpan(0, 16).ToArray(), Is.EqualTo(Enumerable.Range(0x1ff0, 16).Select(i => unchecked((byte)i)).ToArray()));
        Assert.That(bytes.AsSpan(16).ContainsAnyExcept((byte)0), Is.False, "the page after is not mapped");
        Assert.That(vfs.Read("/memory.pmem", 0x1000, 13), Is.EqualTo("physical page"u8.ToArray()));
        Assert.That(vfs.Read("/memory.pmem", 0x7ffffe, 16), Has.Length.EqualTo(2), "cut at the end of the file");
        Assert.That(vfs.Read("/memory.pmem", 0x900000, 16), Is.Empty);
        var tooLarge = Assert.Throws<ArgumentOutOfRangeException>(() => vfs.Read("/pid/42/memory.vmem"))!;
        Assert.That(tooLarge.Message, Does.Contain("give a length"));
        Assert.That(vfs.Read("/pid/42/modules/app/image.bin", 0, 4), Is.EqualTo(new byte[] { 0, 1, 2, 3 }));
    }

    [Test]
    public void Paths_that_do_not_exist_or_are_the_wrong_kind_fail_clearly()
    {
        var (machine, _) = Open();
        using var _ = machine;
        var vfs = machine.Vfs;

        Assert.That(vfs.GetEntry("/pid/999"), Is.Null);
        Assert.That(vfs.GetEntry("/pid/42/./name.txt")!.Value.Size, Is.EqualTo(4UL));
        Assert.That(vfs.GetEntry("")!.Value.IsDirectory);
        Assert.That(Assert.Throws<DirectoryNotFoundException>(() => vfs.List("/pid/42/name.txt"))!.Message, Does.Contain("/pid/42/name.txt"));
        Assert.That(Assert.Throws<FileNotFoundException>(() => vfs.Read("/pid"))!.Message, Does.Contain("/pid"));
        Assert.That(vfs.TryOpen("/nothing/here"), Is.Null);
        Assert.Throws<UnauthorizedAccessException>(() => vfs.Write("/pid/42/name.txt", "x"u8));
    }

    [Test]
    public void Modules_of_one_name_get_a_suffix_rather_than_hide_each_other()
    {
        var (machine, _) = Open();
        using var _ = machine;

        Assert.That(machine.Vfs.List("/pid/42/modules").Select(e => e.Name), Is.EqualTo(new[] { "modules.txt", "app", "libc.so.6", "app~2" }));
        Assert.That(machine.Vfs.ReadText("/pid/42/modules/app~2/path.txt"), Is.EqualTo("/other/app\n"));
        Assert.That(machine.Vfs.ReadText("/pid/42/modules/libc.so.6/base.txt"), Is.EqualTo("0x7f0000000000\n"));
    }

    [Test]
    public void Configuration_files_are_read_and_written_whole_and_refuse_bad_values()
    {
        var (machine, os) = Open();
        using var _ = machine;
        var vfs = machine.Vfs;

        Assert.That(vfs.ReadText("/conf/refresh_period_ms.txt"), Is.EqualTo("5000\n"));
        Assert.That(vfs.Write("/conf/refresh_period_ms.txt", "250\n"u8), Is.EqualTo(4));
        Assert.That(machine.Config.Get(MachineConfig.RefreshPeriodKey), Is.EqualTo(250UL));
        Assert.That(Assert.Throws<ArgumentException>(() => vfs.Write("/conf/verbosity.txt", "very\n"u8))!.Message, Does.Contain("very"));
        Assert.Throws<ArgumentException>(() => vfs.Write("/conf/verbosity.txt", "2"u8, offset: 3));
        Assert.Throws<UnauthorizedAccessException>(() => vfs.Write("/conf/memory_max_address.txt", "1"u8));
        Assert.That(vfs.GetEntry("/conf/memory_max_address.txt")!.Value.IsWritable, Is.False);

        machine.Config.Set(MachineConfig.RefreshPeriodKey, 0);
        Assert.That(vfs.List("/pid"), Has.Count.EqualTo(3));
        os.AddProcess(77, "newcomer");
        Assert.That(vfs.GetEntry("/pid/77"), Is.Null, "the snapshot holds until a refresh");
        vfs.Write("/conf/refresh.txt", "1"u8);
        Assert.That(vfs.GetEntry("/pid/77"), Is.Not.Null);
        Assert.That(vfs.ReadText("/conf/refresh.txt"), Is.EqualTo("1\n"));
    }

    [Test]
    public void The_core_file_is_an_elf_core_with_notes_and_one_load_segment_per_area()
    {
        var (machine, _) = Open();
        using var _ = machine;
        var vfs = machine.Vfs;
        var size = vfs.GetEntry("/pid/42/core.elf")!.Value.Size;
        var core = vfs.Read("/pid/42/core.elf");
        Assert.That((ulong)core.Length, Is.EqualTo(size));

        Assert.That(core.AsSpan(0, 4).ToArray(), Is.EqualTo("\u007fELF"u8.ToArray()));
        Assert.That(BinaryPrimitives.ReadUInt16LittleEndian(core.AsSpan(16)), Is.EqualTo(4), "ET_CORE");
        Assert.That(BinaryPrimitives.ReadUInt16LittleEndian(core.AsSpan(18)), Is.EqualTo(62), "EM_X86_64");
        var headers = ElfHeaders(core);
        Assert.That(headers, Has.Count.EqualTo(6));
        Assert.That(headers[0].Type, Is.EqualTo(4u), "PT_NOTE first");
        var loads = headers.Skip(1).ToList();
        Assert.That(loads.Select(h => (h.Type, h.VirtualAddress, h.MemorySize)), Is.EqualTo(new (uint, ulong, ulong)[]
        {
            (1, 0x400000, 0x2000), (1, 0x402000, 0x2000), (1, 0x10000000, 0x3000), (1, 0x7fff0000, 0x10000), (1, 0x7fff80000000, 0x1000),
        }));
        Assert.That(loads[1].FileSize, Is.Zero, "an area without read permission has no bytes in the file");
        Assert.That(loads[0].Flags, Is.EqualTo(5u), "r-x");
        Assert.That(core.AsSpan((int)loads[0].Offset, 0x2000).ToArray(), Is.EqualTo(Enumerable.Range(0, 0x2000).Select(i => unchecked((byte)i)).ToArray()));
        Assert.That(Encoding.ASCII.GetString(core, (int)loads[3].Offset + 0xf000, 9), Is.EqualTo("stack top"));
        Assert.That(core.AsSpan((int)loads[2].Offset, 0x3000).ContainsAnyExcept((byte)0), Is.False, "pages not present are zeros");

        var notes = Notes(core.AsSpan((int)headers[0].Offset, (int)headers[0].FileSize));
        Assert.That(notes.Select(n => (n.Owner, n.Type)), Is.EqualTo(new[] { ("CORE", 1u), ("CORE", 3u), ("CORE", 0x46494c45u) }));
        Assert.That(BinaryPrimitives.ReadInt32LittleEndian(notes[0].Data.AsSpan(32)), Is.EqualTo(42), "pr_pid");
        Assert.That(Encoding.ASCII.GetString(notes[1].Data, 40, 3), Is.EqualTo("app"), "pr_fname");
        Assert.That(Encoding.ASCII.GetString(notes[1].Data, 56, 10), Is.EqualTo("app --flag"), "pr_psargs");
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(notes[2].Data), Is.EqualTo(3UL), "three file-backed areas");
        Assert.That(Encoding.ASCII.GetString(notes[2].Data), Does.Contain("/opt/app/bin/app\0/opt/app/bin/app\0/a/very/long"));
    }

    [Test]
    public void The_core_file_reads_the_same_in_any_chunking()
    {
        var (machine, _) = Open();
        using var _ = machine;
        var file = machine.Vfs.Open("/pid/42/core.elf");
        var whole = machine.Vfs.Read("/pid/42/core.elf");

        foreach (int chunk in new[] { 1, 7, 4095, 4097, 65536 })
        {
            var pieces = new MemoryStream();
            var buffer = new byte[chunk];
            for (ulong offset = 0; ; )
            {
                int read = file.Read(buffer, offset);
                if (read == 0)
                    break;
                pieces.Write(buffer, 0, read);
                offset += (ulong)read;
            }
            Assert.That(pieces.ToArray(), Is.EqualTo(whole), $"chunks of {chunk}");
        }
        var stream = new MemoryStream();
        machine.Process(42).WriteCoreFile(stream);
        Assert.That(stream.ToArray(), Is.EqualTo(whole));
    }

    internal sealed record ProgramHeader(uint Type, uint Flags, ulong Offset, ulong VirtualAddress, ulong FileSize, ulong MemorySize);

    internal static List<ProgramHeader> ElfHeaders(ReadOnlySpan<byte> elf)
    {
        ulong phoff = BinaryPrimitives.ReadUInt64LittleEndian(elf[32..]);
        int count = BinaryPrimitives.ReadUInt16LittleEndian(elf[56..]);
        var headers = new List<ProgramHeader>();
        for (int i = 0; i < count; i++)
        {
            var h = elf[(int)(phoff + (ulong)i * 56)..];
            headers.Add(new ProgramHeader(BinaryPrimitives.ReadUInt32LittleEndian(h), BinaryPrimitives.ReadUInt32LittleEndian(h[4..]),
                BinaryPrimitives.ReadUInt64LittleEndian(h[8..]), BinaryPrimitives.ReadUInt64LittleEndian(h[16..]),
                BinaryPrimitives.ReadUInt64LittleEndian(h[32..]), BinaryPrimitives.ReadUInt64LittleEndian(h[40..])));
        }
        return headers;
    }

    internal static List<(string Owner, uint Type, byte[] Data)> Notes(ReadOnlySpan<byte> notes)
    {
        var list = new List<(string, uint, byte[])>();
        for (int at = 0; at + 12 <= notes.Length;)
        {
            int nameSize = BinaryPrimitives.ReadInt32LittleEndian(notes[at..]);
            int dataSize = BinaryPrimitives.ReadInt32LittleEndian(notes[(at + 4)..]);
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(notes[(at + 8)..]);
            var owner = Encoding.ASCII.GetString(notes.Slice(at + 12, nameSize - 1));
            int data = at + 12 + (nameSize + 3) / 4 * 4;
            list.Add((owner, type, notes.Slice(data, dataSize).ToArray()));
            at = data + (dataSize + 3) / 4 * 4;
        }
        return list;
    }
}
