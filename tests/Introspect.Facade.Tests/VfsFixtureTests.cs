using System.Text;
using Introspect.Core;
using Introspect.Core.Plugins;
using Introspect.TestSupport;

namespace Introspect.Facade.Tests;

/// <summary>The virtual file system of every fixture guest (read through the API) against the guest's own <c>/proc</c>.</summary>
[TestFixtureSource(typeof(TestInputs), nameof(TestInputs.LinuxGuests))]
[NonParallelizable]
public class VfsFixtureTests(FixtureGuest guest)
{
    private Machine _machine = null!;
    private GuestOracle _oracle = null!;

    [OneTimeSetUp]
    public void OpenGuest()
    {
        _oracle = guest.Oracle;
        // The ELF dump holds all RAM, above 4 GiB too.
        _machine = Machine.Open($"coredump:path=\"{guest.Elf}\" -> linux", new MachineOptions { Configuration = PluginConfiguration.Empty });
    }

    [OneTimeTearDown]
    public void CloseGuest() => _machine?.Dispose();

    [Test]
    public void Maps_txt_is_byte_for_byte_the_guests_proc_maps()
    {
        foreach (var report in _oracle.Memtests)
        {
            var expected = string.Concat(_oracle.Lines($"maps {report.Pid}").Select(line => line + "\n"));
            Assert.That(_machine.Vfs.ReadText($"/pid/{report.Pid}/maps.txt"), Is.EqualTo(expected), $"memtest {report.Name}");
        }
    }

    [Test]
    public void Cmdline_name_ppid_state_and_uid_files_are_the_guests()
    {
        foreach (var process in _oracle.Processes.Where(p => !p.KernelThread && p.State != 'Z'))
        {
            var folder = $"/pid/{process.Pid}";
            Assert.That(_machine.Vfs.ReadText(folder + "/cmdline.txt"), Is.EqualTo(process.CommandLine + "\n"), folder);
            Assert.That(_machine.Vfs.ReadText(folder + "/name.txt"), Is.EqualTo(process.Name + "\n"), folder);
            Assert.That(_machine.Vfs.ReadText(folder + "/ppid.txt"), Is.EqualTo($"{process.ParentPid}\n"), folder);
            Assert.That(_machine.Vfs.ReadText(folder + "/state.txt")[0], Is.EqualTo(process.State), folder);
            Assert.That(_machine.Vfs.ReadText(folder + "/uid.txt"), Is.EqualTo($"{process.Uid}\n"), folder);
            Assert.That(_machine.Vfs.GetEntry($"/name/{process.Name.Replace('/', '_')}-{process.Pid}"), Is.Not.Null, folder);
        }
    }

    [Test]
    public void Environ_txt_is_the_guests_proc_environ()
    {
        foreach (var report in _oracle.Memtests)
        {
            var expected = string.Concat(_oracle.Environment(report.Pid).Select(line => line + "\n"));
            Assert.That(_machine.Vfs.ReadText($"/pid/{report.Pid}/environ.txt"), Is.EqualTo(expected), $"memtest {report.Name}");
        }
    }

    [Test]
    public void Memory_vmem_at_each_buffers_address_gives_its_bytes()
    {
        foreach (var report in _oracle.Memtests)
        {
            foreach (var buffer in report.Buffers)
            {
                var bytes = _machine.Vfs.Read($"/pid/{report.Pid}/memory.vmem", buffer.Address, buffer.Length);
                Assert.That(MemtestPattern.Fnv1a64(bytes), Is.EqualTo(buffer.Fnv1a64), $"memtest {report.Name} {buffer.Kind}");
            }
        }
    }

    [Test]
    public void Sys_files_give_the_version_the_kernel_modules_and_symbols()
    {
        Assert.That(_machine.Vfs.ReadText("/sys/version.txt"), Is.EqualTo(_oracle.Version + "\n"));
        var modules = _machine.Vfs.ReadText("/sys/modules/modules.txt");
        foreach (var module in _oracle.Modules)
            Assert.That(modules, Does.Contain($"{module.Address:x16}").And.Contain(module.Name));
        ulong initTask = _oracle.Symbols["init_task"];
        Assert.That(_machine.Vfs.ReadText("/sys/symbols/init_task.txt"), Is.EqualTo($"0x{initTask:x} init_task\n"));
        var tree = _machine.Vfs.ReadText("/sys/proc/proc.txt");
        var zombie = _oracle.Processes.Single(p => p.State == 'Z');
        Assert.That(tree, Does.Contain($"{zombie.Pid,6} {zombie.ParentPid,6} Z"));
    }
}
