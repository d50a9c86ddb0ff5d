using Introspect.Abi;
using Introspect.Core.Chains;
using Introspect.Remote;
using Moq;

namespace Introspect.Connectors.Remote.Tests;

/// <summary>When the served chain ends in an OS, <c>remote-os</c> gives its process list and each process's memory by pid.</summary>
public class OperatingSystemTests
{
    private const ulong ShellPid = 42;
    private const ulong ShellCode = 0x400000;
    private const ulong BannerPage = 0x2161000;

    private static readonly ProcessInfo[] Processes =
    [
        new() { Pid = 1, Name = "init", Path = "/sbin/init", CommandLine = "/sbin/init", Arguments = ["/sbin/init"], State = ProcessState.Sleeping, StateText = "S", Uid = 0, DirectoryTableBase = 0x3000000 },
        new() { Pid = 2, ParentPid = 0, Name = "kthreadd", IsKernelThread = true, State = ProcessState.Sleeping, ThreadCount = 1 },
        new()
        {
            Pid = ShellPid, ParentPid = 1, Name = "sh", Path = "/bin/busybox", CommandLine = "sh -c echo hi", Arguments = ["sh", "-c", "echo hi"],
            Environment = ["HOME=/", "TERM=linux"], State = ProcessState.Running, StateText = "R", Uid = 1000, ThreadCount = 3,
            DirectoryTableBase = 0x4000000, StartTime = new DateTimeOffset(2024, 5, 1, 12, 0, 0, TimeSpan.Zero),
        },
    ];

    private static readonly MemoryArea[] Areas =
    [
        new(ShellCode, ShellCode + 0x1000, MemoryProtection.Read | MemoryProtection.Execute, 0, "/bin/busybox"),
        new(0x7ffd0000, 0x7ffff000, MemoryProtection.Read | MemoryProtection.Write, 0, "[stack]"),
    ];

    /// <summary>An OS layer over the served image in which pid 42's page at 0x400000 is the physical page of the kernel banner.</summary>
    private static Mock<IOperatingSystem> ServedSystem(IPhysicalMemory physical)
    {
        var system = new Mock<IOperatingSystem>(MockBehavior.Strict);
        system.Setup(s => s.Info).Returns(new OsInfo
        {
            Name = "linux",
            Version = "Linux version 6.1.0-56-amd64",
            Architecture = MachineArchitecture.X64,
            KernelBase = 0xffffffff81000000,
            KernelSlide = 0,
            DirectoryTableBase = 0x2000000,
            Properties = new Dictionary<string, string> { ["page_offset_base"] = "0xffff888000000000" },
        });
        system.Setup(s => s.PhysicalMemory).Returns(physical);
        system.Setup(s => s.GetProcesses()).Returns(Processes);
        system.Setup(s => s.GetProcess(It.IsAny<ulong>())).Returns((ulong pid) => Processes.FirstOrDefault(p => p.Pid == pid));
        system.Setup(s => s.OpenProcessMemory(It.Is<ProcessInfo>(p => p.Pid == ShellPid))).Returns(new OnePageMemory(physical, ShellCode, BannerPage));
        system.Setup(s => s.GetMemoryAreas(It.Is<ProcessInfo>(p => p.Pid == ShellPid))).Returns(Areas);
        system.Setup(s => s.GetModules(It.Is<ProcessInfo>(p => p.Pid == ShellPid))).Returns([new ModuleInfo("busybox", "/bin/busybox", ShellCode, 0x1000)]);
        system.Setup(s => s.GetKernelModules()).Returns([new ModuleInfo("e1000", null, 0xffffffffc0000000, 0x20000)]);
        var symbols = system.As<IKernelSymbols>();
        symbols.Setup(s => s.SymbolCount).Returns(12345);
        ulong bannerAddress = 0xffffffff82161900;
        symbols.Setup(s => s.TryGetSymbolAddress("linux_banner", out bannerAddress)).Returns(true);
        ulong none = 0;
        symbols.Setup(s => s.TryGetSymbolAddress(It.Is<string>(n => n != "linux_banner"), out none)).Returns(false);
        string name = "linux_banner";
        ulong displacement = 5;
        symbols.Setup(s => s.TryGetSymbolName(0xffffffff82161905, out name, out displacement)).Returns(true);
        return system;
    }

    [Test]
    public void Processes_and_their_memory_by_pid_come_from_the_served_os_layer()
    {
        var log = new MemoryLog();
        using var server = Loopback.Serve(ServedImage.Memory, Loopback.Anonymous(), ServedSystem(ServedImage.Memory).Object, log.Factory());
        using (var chain = ServedImage.Host.Open(ChainSpec.Parse($"remote:host=127.0.0.1,port={server.EndPoint.Port} -> remote-os")))
        {
            var system = chain.RequireOperatingSystem();

            Assert.That(system.Info.Version, Is.EqualTo("Linux version 6.1.0-56-amd64"));
            Assert.That(system.Info.KernelBase, Is.EqualTo(0xffffffff81000000));
            Assert.That(system.Info.Properties["page_offset_base"], Is.EqualTo("0xffff888000000000"));
            var processes = system.GetProcesses();
            Assert.That(processes.Select(p => (p.Pid, p.ParentPid, p.Name, p.IsKernelThread, p.State, p.Uid)),
                Is.EqualTo(Processes.Select(p => (p.Pid, p.ParentPid, p.Name, p.IsKernelThread, p.State, p.Uid))));
            var shell = system.GetProcess(ShellPid)!;
            Assert.That(shell.Arguments, Is.EqualTo(new[] { "sh", "-c", "echo hi" }));
            Assert.That(shell.Environment, Is.EqualTo(new[] { "HOME=/", "TERM=linux" }));
            Assert.That(shell.StartTime, Is.EqualTo(Processes[2].StartTime));
            Assert.That(system.GetProcess(999), Is.Null);

            var memory = system.OpenProcessMemory(shell);
            var banner = new byte[13];
            var batch = new[] { new MemoryRequest(ShellCode + 0x900, banner), new MemoryRequest(0x10000000, new byte[8]) };
            memory.Read(batch);
            Assert.That(batch.Select(r => r.Succeeded), Is.EqualTo(new[] { true, false }));
            Assert.That(global::System.Text.Encoding.ASCII.GetString(banner), Is.EqualTo("Linux version"));
            Assert.That(memory.TryTranslate(ShellCode + 0x900, out ulong physical), Is.True);
            Assert.That(physical, Is.EqualTo(BannerPage + 0x900));
            Assert.That(memory.TryTranslate(0x10000000, out _), Is.False);

            Assert.That(system.GetMemoryAreas(shell).Select(a => (a.Start, a.End, a.Permissions, a.Path)), Is.EqualTo(Areas.Select(a => (a.Start, a.End, a.Permissions, a.Path))));
            Assert.That(system.GetModules(shell).Single().Name, Is.EqualTo("busybox"));
            Assert.That(system.GetKernelModules().Single().Base, Is.EqualTo(0xffffffffc0000000));

            Assert.That(system, Is.InstanceOf<IKernelSymbols>());
            Assert.That(system, Is.Not.InstanceOf<IKernelTypes>(), "the served layer offers no types, so neither does remote-os");
            var symbols = (IKernelSymbols)system;
            Assert.That(symbols.SymbolCount, Is.EqualTo(12345));
            Assert.That(symbols.TryGetSymbolAddress("linux_banner", out ulong address) && address == 0xffffffff82161900);
            Assert.That(symbols.TryGetSymbolAddress("no_such_symbol", out _), Is.False);
            Assert.That(symbols.TryGetSymbolName(0xffffffff82161905, out string symbol, out ulong offset) && symbol == "linux_banner" && offset == 5);
        }
        Assert.That(Loopback.Eventually(() => log.Lines.Any(l => l.Contains("left after", StringComparison.Ordinal))));
        Assert.That(log.Lines.Single(l => l.Contains("left after", StringComparison.Ordinal)), Does.Contain("processes 42 (13 B)"));
    }

    [Test]
    public void A_process_that_is_gone_reads_nothing_and_has_no_areas()
    {
        using var server = Loopback.Serve(ServedImage.Memory, Loopback.Anonymous(), ServedSystem(ServedImage.Memory).Object);
        using var remote = RemoteClient.OpenPhysicalMemory(Loopback.Client(server));
        var system = RemoteClient.OpenOperatingSystem(remote);
        var gone = Processes[2] with { Pid = 4242 };

        var batch = new[] { new MemoryRequest(ShellCode, new byte[16]) };
        system.OpenProcessMemory(gone).Read(batch);

        Assert.That(batch[0].Succeeded, Is.False);
        Assert.That(system.GetMemoryAreas(gone), Is.Empty);
        Assert.That(system.OpenProcessMemory(gone).TryTranslate(ShellCode, out _), Is.False);
    }

    [Test]
    public void Remote_os_over_a_server_whose_chain_ends_in_a_connector_says_what_to_serve()
    {
        using var server = Loopback.Serve(ServedImage.Memory, Loopback.Anonymous());

        var e = Assert.Catch<InvalidDataException>(() => ServedImage.Host.Open(ChainSpec.Parse($"remote:host=127.0.0.1,port={server.EndPoint.Port} -> remote-os")));

        Assert.That(e!.Message, Does.Contain("ends in a connector").And.Contain("-> linux"));
    }

    [Test]
    public void Remote_os_after_another_connector_is_refused()
    {
        var e = Assert.Catch<InvalidDataException>(() => ServedImage.Host.Open(ChainSpec.Parse($"coredump:path=\"{Introspect.TestSupport.TestInputs.LinuxRawImage}\" -> remote-os")));

        Assert.That(e!.Message, Does.Contain("must follow the remote connector"));
    }

    /// <summary>A process memory of one page, mapped at <paramref name="virtualPage"/> onto <paramref name="physicalPage"/>.</summary>
    private sealed class OnePageMemory(IPhysicalMemory physical, ulong virtualPage, ulong physicalPage) : IVirtualMemory
    {
        public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
        {
            for (int i = 0; i < batch.Length; i++)
            {
                ref var request = ref batch[i];
                if (TryTranslate(request.Address, out ulong at) && (at & 0xFFF) + (ulong)request.Buffer.Length <= 0x1000)
                {
                    var one = new[] { new MemoryRequest(at, request.Buffer) };
                    physical.Read(one, flags);
                    request.Succeeded = one[0].Succeeded;
                }
                else
                {
                    request.Succeeded = false;
                }
            }
        }

        public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => throw new NotSupportedException();

        public bool TryTranslate(ulong virtualAddress, out ulong physicalAddress)
        {
            // Below the page the difference wraps to a huge number, deliberately unchecked.
            ulong offset = unchecked(virtualAddress - virtualPage);
            physicalAddress = unchecked(physicalPage + offset);
            return offset < 0x1000;
        }
    }
}
