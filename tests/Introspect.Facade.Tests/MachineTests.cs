using System.Net;
using System.Text;
using Introspect.Abi;
using Introspect.Core;
using Introspect.Core.Memory;
using Microsoft.Extensions.Logging;

namespace Introspect.Facade.Tests;

/// <summary>The facade over test doubles: what it does with what a layer answers, and its errors.</summary>
public class MachineTests
{
    [Test]
    public void A_chain_without_an_os_offers_memory_but_says_processes_need_an_os_layer()
    {
        var memory = new SparseMemory().Set(0x1000, "hello"u8);
        using var machine = Machine.Open(memory);

        Assert.That(machine.HasOperatingSystem, Is.False);
        Assert.That(machine.Memory.Read(0x1000, 5), Is.EqualTo("hello"u8.ToArray()));
        var error = Assert.Throws<InvalidOperationException>(() => machine.GetProcesses())!;
        Assert.That(error.Message, Does.Contain("needs an OS layer").Or.Contain("need an OS layer"));
        Assert.Throws<InvalidOperationException>(() => _ = machine.Kernel);
        var sockets = machine.Maps.GetSockets();
        Assert.That(sockets.IsAvailable, Is.False);
        Assert.That(sockets.UnavailableReason, Does.Contain("OS layer"));
        Assert.That(machine.Vfs.List("/").Select(e => e.Name), Is.EqualTo(new[] { "memory.pmem", "sys", "conf" }));
    }

    [Test]
    public void Disposing_the_machine_disposes_the_layers_it_was_given_unless_told_to_leave_them_open()
    {
        var memory = new SparseMemory();
        var os = new FakeOs(memory);
        Machine.Open(memory, os).Dispose();
        Assert.That(memory.Disposed && os.Disposed);

        var kept = new SparseMemory();
        var keptOs = new FakeOs(kept);
        var machine = Machine.Open(kept, keptOs, new MachineOptions { LeaveOpen = true });
        machine.Dispose();
        Assert.That(kept.Disposed || keptOs.Disposed, Is.False);
        Assert.Throws<ObjectDisposedException>(() => _ = machine.Memory);
    }

    [Test]
    public void Processes_are_found_by_pid_by_short_name_by_long_name_and_by_executable()
    {
        var os = new FakeOs(new SparseMemory());
        os.AddProcess(1, "init");
        os.AddProcess(40, "memtest-with-a-", commandLine: "memtest-with-a-very-long-name --name gamma");
        os.Processes.Add(os.Processes[^1] with { Pid = 41, Name = "worker", Path = "/usr/bin/real-binary" });
        using var machine = Machine.Open(new SparseMemory(), os);

        Assert.That(machine.GetProcess(1)!.Name, Is.EqualTo("init"));
        Assert.That(machine.GetProcess("memtest-with-a-very-long-name")!.Pid, Is.EqualTo(40UL));
        Assert.That(machine.GetProcess("real-binary")!.Pid, Is.EqualTo(41UL));
        Assert.That(machine.GetProcess(999), Is.Null);
        Assert.That(machine.GetProcess("nothing"), Is.Null);
        Assert.That(Assert.Throws<KeyNotFoundException>(() => machine.Process(999))!.Message, Does.Contain("999"));
        Assert.That(Assert.Throws<KeyNotFoundException>(() => machine.Process("nothing"))!.Message, Does.Contain("nothing"));
        Assert.That(machine.Process(40).Parent!.Pid, Is.EqualTo(1UL));
        Assert.That(machine.Process(1).Children.Select(c => c.Pid), Is.EquivalentTo(new[] { 40UL, 41UL }));
    }

    [Test]
    public void The_process_list_is_kept_for_the_refresh_period_and_read_again_after_a_refresh()
    {
        var os = new FakeOs(new SparseMemory());
        os.AddProcess(1, "init");
        using var machine = Machine.Open(new SparseMemory(), os);
        machine.Config.Set(MachineConfig.RefreshPeriodKey, 0); // until a refresh

        var first = machine.GetProcesses();
        os.AddProcess(2, "later");
        Assert.That(machine.GetProcesses(), Is.SameAs(first));
        Assert.That(os.GetProcessesCalls, Is.EqualTo(1));

        machine.Refresh();
        Assert.That(machine.GetProcesses().Select(p => p.Pid), Is.EqualTo(new[] { 1UL, 2UL }));
        Assert.That(os.GetProcessesCalls, Is.EqualTo(2));
        Assert.That(machine.Config.Get(MachineConfig.RefreshKey), Is.EqualTo(1UL));

        machine.Config.Set(MachineConfig.RefreshPeriodKey, 1);
        Thread.Sleep(20);
        machine.GetProcesses();
        Assert.That(os.GetProcessesCalls, Is.EqualTo(3), "a period of 1 ms has passed");
    }

    [Test]
    public void Configuration_values_are_listed_checked_and_refused_with_reasons()
    {
        using var machine = Machine.Open(new SparseMemory(0xfffff));

        Assert.That(MachineConfig.Keys.Select(k => k.Name), Does.Contain(MachineConfig.CachePagesKey).And.Contain(MachineConfig.VerbosityKey));
        Assert.That(machine.Config.Get(MachineConfig.MaxAddressKey), Is.EqualTo(0xfffffUL));
        Assert.That(machine.Config.Get(MachineConfig.ReadOnlyKey), Is.EqualTo(1UL));
        var unknown = Assert.Throws<KeyNotFoundException>(() => machine.Config.Get("nope"))!;
        Assert.That(unknown.Message, Does.Contain("nope").And.Contain(MachineConfig.RefreshPeriodKey));
        var readOnly = Assert.Throws<ArgumentException>(() => machine.Config.Set(MachineConfig.MaxAddressKey, 1))!;
        Assert.That(readOnly.Message, Does.Contain("read-only"));
        var range = Assert.Throws<ArgumentException>(() => machine.Config.Set(MachineConfig.VerbosityKey, 9))!;
        Assert.That(range.Message, Does.Contain("at most 4").And.Contain("9"));
        var text = Assert.Throws<ArgumentException>(() => machine.Config.Set(MachineConfig.VerbosityKey, "loud"))!;
        Assert.That(text.Message, Does.Contain("loud"));
        machine.Config.Set(MachineConfig.VerbosityKey, "0x3");
        Assert.That(machine.Config.Get(MachineConfig.VerbosityKey), Is.EqualTo(3UL));
    }

    [Test]
    public void The_page_cache_answers_force_cache_reads_and_no_cache_reads_pass_it_by()
    {
        var memory = new SparseMemory(0xffffff).Set(0x2000, new byte[0x2000]).Set(0x2000, "cached"u8);
        using var machine = Machine.Open(memory);
        var buffer = new byte[6];

        // Without a cache of its own the machine hands the flags to the chain, whose middleware decides.
        machine.Config.Set(MachineConfig.CachePagesKey, 64);
        machine.Config.Set(MachineConfig.CacheTimeToLiveKey, 0);
        Assert.That(machine.Memory.Read(0x2000, buffer), Is.EqualTo(6));
        int calls = memory.ReadCalls;
        Assert.That(machine.Memory.Read(0x2000, buffer, MemoryFlags.ForceCache), Is.EqualTo(6));
        Assert.That(memory.ReadCalls, Is.EqualTo(calls), "answered from the cache");
        Assert.That(machine.Memory.Read(0x3000, buffer, MemoryFlags.ForceCache), Is.Zero, "a page never read is not in the cache");
        Assert.That(machine.Config.Get(MachineConfig.CacheHitsKey), Is.GreaterThan(0UL));
        machine.Memory.Read(0x2000, buffer, MemoryFlags.NoCache);
        Assert.That(memory.ReadCalls, Is.GreaterThan(calls), "no-cache goes down");
    }

    [Test]
    public void Reads_are_short_where_memory_ends_and_zero_padded_when_asked()
    {
        var memory = new SparseMemory().Set(0x1000, Enumerable.Repeat((byte)0xab, 4096).ToArray());
        using var machine = Machine.Open(memory);
        var buffer = new byte[8192];

        Assert.That(machine.Memory.Read(0x1000, buffer), Is.EqualTo(4096));
        Assert.That(machine.Memory.Read(0x1000, 8192), Has.Length.EqualTo(4096));
        Assert.That(machine.Memory.Read(0x1000, buffer, MemoryFlags.ZeroPadOnFail), Is.EqualTo(8192));
        Assert.That(buffer.AsSpan(4096).ContainsAnyExcept((byte)0), Is.False);
        Assert.That(machine.Memory.TryRead<ulong>(0x1ffc, out _), Is.False, "crosses into the missing page");
        Assert.That(machine.Memory.TryRead<uint>(0x1ffc, out var value) && value == 0xabababab);
    }

    [Test]
    public void Writes_go_through_where_the_memory_takes_them_and_are_refused_where_it_is_read_only()
    {
        var writable = new SparseMemory(readOnly: false).Set(0x1000, new byte[16]);
        using (var machine = Machine.Open(writable))
        {
            Assert.That(machine.Memory.Write(0x1004, "abc"u8), Is.EqualTo(3));
            Assert.That(machine.Memory.TryWrite(0x1008, 0x1122334455667788UL));
            Assert.That(machine.Memory.Read(0x1004, 3), Is.EqualTo("abc"u8.ToArray()));
            Assert.That(machine.Memory.TryRead<ulong>(0x1008, out var value) && value == 0x1122334455667788UL);
            Assert.That(machine.Memory.Write(0x1ffe, "xyz!"u8), Is.EqualTo(2), "the page after is missing");
        }

        using var readOnly = Machine.Open(new SparseMemory().Set(0x1000, new byte[16]));
        var error = Assert.Throws<NotSupportedException>(() => readOnly.Memory.Write(0x1000, "x"u8))!;
        Assert.That(error.Message, Does.Contain("read-only"));
    }

    [Test]
    public void Scatter_batch_search_and_hex_work_on_process_memory_with_virtual_to_physical()
    {
        var os = new FakeOs(new SparseMemory());
        os.AddProcess(7, "target");
        os.ProcessMemory[7].Set(0x400000, "....needle...."u8).Set(0x401000, "needle"u8);
        os.Areas[7] = [new MemoryArea(0x400000, 0x402000, MemoryProtection.Read, 0, "/bin/target")];
        using var machine = Machine.Open(new SparseMemory(), os);
        var memory = machine.Process(7).Memory;

        var scatter = memory.CreateScatter();
        scatter.Prepare(0x400004, 6);
        scatter.Prepare(0x401000, 6);
        scatter.Prepare(0x900000, 6);
        scatter.Execute();
        Assert.That(scatter.Read(0x400004, 6), Is.EqualTo("needle"u8.ToArray()));
        Assert.That(scatter.Read(0x900000, 6), Is.Null);

        var batch = new MemoryRequest[] { new(0x401000, new byte[6]), new(0x900000, new byte[6]) };
        memory.ReadBatch(batch);
        Assert.That(batch.Select(b => b.Succeeded), Is.EqualTo(new[] { true, false }));

        Assert.That(machine.Process(7).Search(BytePattern.Parse("6e 65 65 ?? 6c 65")), Is.EqualTo(new[] { 0x400004UL, 0x401000UL }));
        Assert.That(memory.Search(BytePattern.FromText("needle"), start: 0x400800), Is.EqualTo(new[] { 0x401000UL }));
        Assert.That(memory.VirtualToPhysical(0x401000), Is.EqualTo(0x40401000UL));
        Assert.That(memory.VirtualToPhysical(0x900000), Is.Null);
        var hex = memory.Hex(0x400000, 32);
        Assert.That(hex, Is.EqualTo(HexDump.Format(memory.Read(0x400000, 32, MemoryFlags.ZeroPadOnFail), 0x400000)));
        Assert.That(hex, Does.StartWith("00400000    2e 2e 2e 2e 6e 65 65 64  6c 65 2e 2e 2e 2e 00 00   ....needle......\n"));
        Assert.That(Machine.Hex("AB"u8, 0x10), Is.EqualTo(HexDump.Format("AB"u8, 0x10)).And.StartWith("0010    41 42 "));
    }

    [Test]
    public void Kernel_memory_has_no_area_list_so_a_search_needs_a_range()
    {
        var os = new FakeOs(new SparseMemory());
        os.KernelMemory.Set(0xffffffff81000000, "kernel text"u8);
        using var machine = Machine.Open(new SparseMemory(), os);

        var error = Assert.Throws<ArgumentException>(() => machine.Kernel.Memory.Search(BytePattern.FromText("text")))!;
        Assert.That(error.Message, Does.Contain("start and an end"));
        Assert.That(machine.Kernel.Memory.Search(BytePattern.FromText("text"), 0xffffffff81000000, 0xffffffff81001000), Is.EqualTo(new[] { 0xffffffff81000007UL }));
    }

    [Test]
    public void Kernel_symbols_and_types_pass_through_and_an_os_without_them_answers_false()
    {
        var os = new FakeOs(new SparseMemory());
        os.Symbols["init_task"] = 0xffffffff82000000;
        os.Fields[("task_struct", "pid")] = 0x5a0;
        os.Sizes["task_struct"] = 0x2a00;
        using var machine = Machine.Open(new SparseMemory(), os);
        var symbols = machine.Kernel.Symbols;

        Assert.That(symbols.TryGetSymbolAddress("init_task", out var address) && address == 0xffffffff82000000);
        Assert.That(symbols.TryGetSymbolName(0xffffffff82000010, out var name, out var displacement) && name == "init_task" && displacement == 0x10);
        Assert.That(symbols.Describe(0xffffffff82000010), Is.EqualTo("init_task+0x10"));
        Assert.That(symbols.TryGetTypeSize("task_struct", out var size) && size == 0x2a00);
        Assert.That(symbols.TryGetFieldOffset("task_struct", "pid", out var offset) && offset == 0x5a0);
        Assert.That(symbols.TryGetSymbolAddress("missing", out _), Is.False);

        using var bare = Machine.Open(new SparseMemory(), new BareOs(new SparseMemory()));
        Assert.That(bare.Kernel.Symbols.HasSymbols || bare.Kernel.Symbols.HasTypes, Is.False);
        Assert.That(bare.Kernel.Symbols.TryGetSymbolAddress("init_task", out _), Is.False);
        Assert.That(bare.Vfs.ReadText("/sys/symbols/symbols.txt"), Does.StartWith("unavailable"));
    }

    [Test]
    public void Qemu_processes_are_reported_as_virtual_machines_with_name_and_memory()
    {
        var os = new FakeOs(new SparseMemory());
        os.AddProcess(100, "qemu-system-x86", commandLine: "qemu-system-x86_64 -name guest=web1,debug-threads=on -m 4G -machine q35");
        os.AddProcess(101, "qemu-system-aar", commandLine: "/usr/bin/qemu-system-aarch64 -m size=2048,slots=4,maxmem=8G -name plain");
        os.AddProcess(102, "qemu-system-x86", commandLine: "qemu-system-x86_64 -hda disk.img");
        os.AddProcess(103, "bash", commandLine: "bash -c qemu-system-x86_64");
        using var machine = Machine.Open(new SparseMemory(), os);

        var vms = machine.Maps.GetVirtualMachines();

        Assert.That(vms.Select(v => (v.Pid, v.Name, v.MemorySize)), Is.EqualTo(new (ulong, string, ulong?)[]
        {
            (100, "web1", 4UL << 30),
            (101, "plain", 2048UL << 20),
            (102, "qemu-system-x86", 128UL << 20),
        }));
        Assert.That(machine.Vfs.List("/vm").Select(e => e.Name), Is.EqualTo(new[] { "vms.txt", "web1-100", "plain-101", "qemu-system-x86-102" }));
        Assert.That(machine.Vfs.ReadText("/vm/web1-100/info.txt"), Does.Contain("memory 0x100000000"));
    }

    [Test]
    public void Users_group_processes_by_uid_and_an_os_without_uids_says_so()
    {
        var os = new FakeOs(new SparseMemory());
        os.AddProcess(1, "init", uid: 0);
        os.AddProcess(5, "a", uid: 1000);
        os.AddProcess(3, "b", uid: 1000);
        using var machine = Machine.Open(new SparseMemory(), os);

        Assert.That(machine.Maps.GetUsers().Select(u => (u.Uid, string.Join(",", u.Pids))), Is.EqualTo(new[] { (0u, "1"), (1000u, "3,5") }));

        var noUids = new FakeOs(new SparseMemory());
        noUids.AddProcess(1, "init", uid: null);
        using var other = Machine.Open(new SparseMemory(), noUids);
        Assert.That(other.Maps.GetUsers().IsAvailable, Is.False);
        Assert.That(other.Vfs.ReadText("/sys/users/users.txt"), Does.StartWith("unavailable:"));
    }

    [Test]
    public void Verbosity_filters_what_the_machine_and_its_plugins_log_at_once()
    {
        var recorded = new List<(LogLevel, string)>();
        using var factory = LoggerFactory.Create(builder => builder.SetMinimumLevel(LogLevel.Trace).AddProvider(new RecordingProvider(recorded)));
        using var machine = Machine.Open(new SparseMemory(), options: new MachineOptions { LoggerFactory = factory });
        var logger = machine.LoggerFactory.CreateLogger("plugin.test");

        logger.LogDebug("hidden");
        logger.LogWarning("shown");
        machine.Config.Set(MachineConfig.VerbosityKey, 3);
        logger.LogDebug("now shown");
        machine.Config.Set(MachineConfig.VerbosityKey, 0);
        logger.LogWarning("hidden again");

        Assert.That(recorded.Select(r => r.Item2), Is.EqualTo(new[] { "shown", "now shown" }));
    }

    [Test]
    public void Sockets_are_read_from_each_process_file_table_through_the_kernel_types()
    {
        var os = LinuxSocketWorld.Build(out var expectedSocks);
        using var machine = Machine.Open(new SparseMemory(), os);

        var sockets = machine.Maps.GetSockets();

        Assert.That(sockets.IsAvailable, sockets.UnavailableReason);
        Assert.That(sockets.Select(s => (s.Pid, s.Fd, s.Family, s.Type, s.Protocol, s.State, s.Local?.ToString(), s.Remote?.ToString())), Is.EqualTo(new (ulong, int, string, string, string?, string, string?, string?)[]
        {
            (10, 3, "inet", "stream", "tcp", "LISTEN", "0.0.0.0:8080", "0.0.0.0:0"),
            (10, 5, "inet", "stream", "tcp", "ESTABLISHED", "10.0.2.15:8080", "10.0.2.2:51000"),
            (10, 6, "unix", "dgram", null, "7", null, null),
        }));
        Assert.That(sockets.Select(s => s.KernelObject), Is.EqualTo(expectedSocks));
        Assert.That(machine.Vfs.ReadText("/sys/net/netstat.txt"), Does.Contain("10.0.2.15:8080").And.Contain("LISTEN"));
    }

    [Test]
    public void A_socket_walk_over_torn_tables_stops_quietly_and_caps_absurd_counts()
    {
        var os = LinuxSocketWorld.Build(out _);
        // Process 11 shares nothing and has a table claiming 4 billion descriptors over unmapped memory.
        os.AddProcess(11, "torn", task: 0xffff888000200000);
        os.KernelMemory.Set64(0xffff888000200000 + LinuxSocketWorld.TaskFiles, 0xffff888000210000)
            .Set64(0xffff888000210000 + LinuxSocketWorld.FilesFdt, 0xffff888000220000)
            .Set32(0xffff888000220000 + LinuxSocketWorld.FdtMaxFds, uint.MaxValue)
            .Set64(0xffff888000220000 + LinuxSocketWorld.FdtFd, 0xffff888000ff0000);
        using var machine = Machine.Open(new SparseMemory(), os);

        var sockets = machine.Maps.GetSockets();

        Assert.That(sockets.IsAvailable);
        Assert.That(sockets.Select(s => s.Pid).Distinct(), Is.EqualTo(new[] { 10UL }));
    }

    [Test]
    public void Sockets_are_unavailable_with_the_missing_types_named_or_for_another_os()
    {
        var os = LinuxSocketWorld.Build(out _);
        os.Fields.Remove(("fdtable", "max_fds"));
        using var machine = Machine.Open(new SparseMemory(), os);
        var result = machine.Maps.GetSockets();
        Assert.That(result.IsAvailable, Is.False);
        Assert.That(result.UnavailableReason, Does.Contain("fdtable.max_fds"));

        using var windows = Machine.Open(new SparseMemory(), new FakeOs(new SparseMemory(), "windows"));
        Assert.That(windows.Maps.GetSockets().UnavailableReason, Does.Contain("Linux only"));
    }

    [Test]
    public void The_device_and_inode_columns_come_from_the_maple_tree_and_a_cyclic_tree_ends_the_walk()
    {
        var os = new FakeOs(new SparseMemory());
        os.Fields[("task_struct", "mm")] = 0x900;
        os.Fields[("mm_struct", "mm_mt")] = 0x40;
        os.Fields[("maple_tree", "ma_root")] = 0x8;
        os.Fields[("maple_range_64", "slot")] = 0x80;
        os.Fields[("maple_arange_64", "slot")] = 0x50;
        os.Fields[("vm_area_struct", "vm_start")] = 0x0;
        os.Fields[("vm_area_struct", "vm_file")] = 0xa0;
        os.Fields[("file", "f_inode")] = 0x20;
        os.Fields[("inode", "i_ino")] = 0x40;
        os.Fields[("inode", "i_sb")] = 0x28;
        os.Fields[("super_block", "s_dev")] = 0x10;
        var k = os.KernelMemory;
        const ulong task = 0xffff888000100000, mm = 0xffff888000200000, root = 0xffff888000300000, leaf = 0xffff888000300100;
        const ulong vma = 0xffff888000400000, file = 0xffff888000500000, inode = 0xffff888000600000, super = 0xffff888000700000;
        os.AddProcess(5, "mapped", task: task);
        os.Areas[5] = [new MemoryArea(0x400000, 0x401000, MemoryProtection.Read, 0, "/bin/mapped")];
        // root: an arange_64 node (type 3) whose first slot is a leaf_64 (type 1) holding the one area.
        k.Set64(task + 0x900, mm).Set64(mm + 0x40 + 0x8, root | (3 << 3) | 2)
            .Set(root, new byte[256]).Set64(root + 0x50, leaf | (1 << 3) | 4)
            .Set(leaf, new byte[256]).Set64(leaf + 0x80, vma)
            .Set64(vma, 0x400000).Set64(vma + 0xa0, file).Set64(file + 0x20, inode).Set64(inode + 0x40, 4242).Set64(inode + 0x28, super)
            .Set32(super + 0x10, (8u << 20) | 3);
        // A second process whose range_64 root names itself in every slot.
        os.AddProcess(6, "cyclic", task: task + 0x10000);
        os.Areas[6] = [new MemoryArea(0x400000, 0x401000, MemoryProtection.Read, 0, "/bin/cyclic")];
        const ulong loop = 0xffff888000800000;
        k.Set64(task + 0x10000 + 0x900, mm + 0x1000).Set64(mm + 0x1000 + 0x48, loop | (2 << 3) | 2).Set(loop, new byte[256]);
        for (ulong slot = 0; slot < 16; slot++)
            k.Set64(loop + 0x80 + slot * 8, loop | (2 << 3) | 4);
        using var machine = Machine.Open(new SparseMemory(), os);

        Assert.That(machine.Vfs.ReadText("/pid/5/maps.txt"), Does.StartWith("00400000-00401000 r--p 00000000 08:03 4242 "));
        // Every slot leads back to the same node: the walk ends at its node cap and places nothing.
        Assert.That(machine.Vfs.ReadText("/pid/6/maps.txt"), Does.StartWith("00400000-00401000 r--p 00000000 00:00 0 "));
    }

    /// <summary>An OS layer without symbols or types.</summary>
    private sealed class BareOs(IPhysicalMemory memory) : IOperatingSystem
    {
        public OsInfo Info { get; } = new() { Name = "bare", Version = "0" };

        public IPhysicalMemory PhysicalMemory => memory;

        public IReadOnlyList<ProcessInfo> GetProcesses() => [];

        public ProcessInfo? GetProcess(ulong pid) => null;

        public IVirtualMemory OpenProcessMemory(ProcessInfo process) => new SparseMemory();

        public IReadOnlyList<MemoryArea> GetMemoryAreas(ProcessInfo process) => [];

        public IReadOnlyList<ModuleInfo> GetModules(ProcessInfo process) => [];

        public IReadOnlyList<ModuleInfo> GetKernelModules() => [];

        public void Dispose() { }
    }

    private sealed class RecordingProvider(List<(LogLevel, string)> recorded) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Recording(recorded);

        public void Dispose() { }

        private sealed class Recording(List<(LogLevel, string)> recorded) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                recorded.Add((logLevel, formatter(state, exception)));
        }
    }
}

/// <summary>Kernel structures of a process holding sockets, laid out at offsets given as its kernel's types.</summary>
internal static class LinuxSocketWorld
{
    public const ulong TaskFiles = 0x7c0, FilesFdt = 0x20, FdtMaxFds = 0x0, FdtFd = 0x8, FileOps = 0x28, FilePrivate = 0xc8;
    public const ulong SocketType = 0x4, SocketSk = 0x18, SockCommon = 0x0, Family = 0x10, State = 0x12, Daddr = 0x0, RcvSaddr = 0x4, Dport = 0xc, Num = 0xe, Protocol = 0x208;
    private const ulong SocketFileOps = 0xffffffff81e00000, OtherOps = 0xffffffff81f00000;

    public static FakeOs Build(out ulong[] socks)
    {
        var os = new FakeOs(new SparseMemory());
        os.Symbols["socket_file_ops"] = SocketFileOps;
        os.Fields[("task_struct", "files")] = TaskFiles;
        os.Fields[("files_struct", "fdt")] = FilesFdt;
        os.Fields[("fdtable", "max_fds")] = FdtMaxFds;
        os.Fields[("fdtable", "fd")] = FdtFd;
        os.Fields[("file", "f_op")] = FileOps;
        os.Fields[("file", "private_data")] = FilePrivate;
        os.Fields[("socket", "type")] = SocketType;
        os.Fields[("socket", "sk")] = SocketSk;
        os.Fields[("sock", "__sk_common")] = SockCommon;
        os.Fields[("sock_common", "skc_family")] = Family;
        os.Fields[("sock_common", "skc_state")] = State;
        os.Fields[("sock_common", "skc_daddr")] = Daddr;
        os.Fields[("sock_common", "skc_rcv_saddr")] = RcvSaddr;
        os.Fields[("sock_common", "skc_dport")] = Dport;
        os.Fields[("sock_common", "skc_num")] = Num;
        os.Fields[("sock", "sk_protocol")] = Protocol;
        var k = os.KernelMemory;
        const ulong task = 0xffff888000100000, files = 0xffff888000110000, fdt = 0xffff888000120000, fds = 0xffff888000130000;
        os.AddProcess(10, "server", task: task);
        // A thread of the same process sharing the table: its sockets are not listed twice.
        os.Processes.Add(os.Processes[^1] with { Pid = 12, Name = "server-thread" });
        os.AddProcess(13, "kthread", task: 0xffff888000180000);
        os.Processes[^1] = os.Processes[^1] with { IsKernelThread = true, DirectoryTableBase = 0 };
        k.Set64(task + TaskFiles, files).Set64(files + FilesFdt, fdt).Set32(fdt + FdtMaxFds, 8).Set64(fdt + FdtFd, fds);
        socks = [0xffff888000160000, 0xffff888000161000, 0xffff888000162000];
        // fd 0-2: a plain file; 3: listening TCP; 4: empty; 5: connected TCP; 6: unix datagram; 7: the listening socket again (dup).
        ulong plain = 0xffff888000140000;
        k.Set64(plain + FileOps, OtherOps);
        for (int fd = 0; fd < 3; fd++)
            k.Set64(fds + (ulong)fd * 8, plain);
        k.Set64(fds + 4 * 8, 0);
        ulong[] sockFiles = [0xffff888000150000, 0xffff888000151000, 0xffff888000152000];
        ulong[] sockets = [0xffff888000170000, 0xffff888000171000, 0xffff888000172000];
        int[] fdOf = [3, 5, 6];
        for (int i = 0; i < 3; i++)
        {
            k.Set64(fds + (ulong)fdOf[i] * 8, sockFiles[i]);
            k.Set64(sockFiles[i] + FileOps, SocketFileOps).Set64(sockFiles[i] + FilePrivate, sockets[i]);
            k.Set64(sockets[i] + SocketSk, socks[i]);
        }
        k.Set64(fds + 7 * 8, sockFiles[0]);
        // Listening on 0.0.0.0:8080.
        k.Set16(sockets[0] + SocketType, 1).Set16(socks[0] + Family, 2).Set(socks[0] + State, [10]).Set16(socks[0] + Num, 8080).Set16(socks[0] + Protocol, 6)
            .Set(socks[0] + Daddr, [0, 0, 0, 0]).Set(socks[0] + RcvSaddr, [0, 0, 0, 0]).Set16(socks[0] + Dport, 0);
        // 10.0.2.15:8080 <- 10.0.2.2:51000, ports as the kernel keeps them: local in host order, remote in network order.
        k.Set16(sockets[1] + SocketType, 1).Set16(socks[1] + Family, 2).Set(socks[1] + State, [1]).Set16(socks[1] + Num, 8080).Set16(socks[1] + Protocol, 6)
            .Set(socks[1] + RcvSaddr, IPAddress.Parse("10.0.2.15").GetAddressBytes()).Set(socks[1] + Daddr, IPAddress.Parse("10.0.2.2").GetAddressBytes())
            .Set(socks[1] + Dport, [51000 >> 8, 51000 & 0xff]);
        k.Set16(sockets[2] + SocketType, 2).Set16(socks[2] + Family, 1).Set(socks[2] + State, [7]);
        return os;
    }
}
