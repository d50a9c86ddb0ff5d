using System.Diagnostics;
using System.Text;
using Introspect.Abi;
using Introspect.Core;
using Introspect.Core.Plugins;
using Introspect.TestSupport;

namespace Introspect.Fuse.Tests;

/// <summary>A fixture guest mounted through the kernel, read with the system's own tools, against the guest's ground truth.</summary>
[NonParallelizable]
public class MountTests
{
    private static readonly FixtureGuest Guest = TestInputs.LinuxKaslrPc;
    private Machine _machine = null!;
    private GuestOracle _oracle = null!;
    private Mounted _mount = null!;

    [OneTimeSetUp]
    public void MountGuest()
    {
        RequireFuse();
        _oracle = Guest.Oracle;
        _machine = Machine.Open($"coredump:path=\"{Guest.Raw}\" -> linux", new MachineOptions { Configuration = PluginConfiguration.Empty });
        _mount = Mounted.Start(_machine, readOnly: true);
    }

    [OneTimeTearDown]
    public void UnmountGuest()
    {
        _mount?.Dispose();
        _machine?.Dispose();
    }

    /// <summary>Fails (never skips) with what is missing when FUSE cannot be used here.</summary>
    internal static void RequireFuse()
    {
        try
        {
            FuseMount.CheckAvailable();
        }
        catch (FuseUnavailableException e)
        {
            Assert.Fail($"These tests mount through FUSE, which is unusable here: {e.Message}");
        }
    }

    [Test]
    public void Ls_shows_memprocfs_folders_and_every_process()
    {
        var root = Shell($"ls {Q(_mount.Path)}");
        Assert.That(root.Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EquivalentTo(new[] { "conf", "memory.pmem", "name", "pid", "sys", "vm" }));

        var pids = Shell($"ls {Q(_mount.Path + "/pid")}").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(pids, Is.SupersetOf(_oracle.Processes.Where(p => !p.Name.StartsWith("kworker", StringComparison.Ordinal)).Select(p => p.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture))));
        var alpha = _oracle.Memtests.First(m => m.Name == "alpha");
        Assert.That(Shell($"ls {Q(_mount.Path + "/name")}"), Does.Contain($"memtest-alpha-{alpha.Pid}\n"));
        Assert.That(Shell($"ls -l {Q(_mount.Path + "/pid/" + alpha.Pid)}"), Does.Contain(" memory.vmem\n").And.Contain(" core.elf\n").And.Contain("-r--r--r--"));
    }

    [Test]
    public void Cat_cmdline_txt_is_each_processes_own_command_line()
    {
        foreach (var process in _oracle.Processes.Where(p => !p.KernelThread && p.State != 'Z'))
            Assert.That(Shell($"cat {Q($"{_mount.Path}/pid/{process.Pid}/cmdline.txt")}"), Is.EqualTo(process.CommandLine + "\n"), $"pid {process.Pid}");
    }

    [Test]
    public void Cat_maps_txt_is_the_guests_proc_maps()
    {
        foreach (var report in _oracle.Memtests)
        {
            var expected = string.Concat(_oracle.Lines($"maps {report.Pid}").Select(line => line + "\n"));
            Assert.That(Shell($"cat {Q($"{_mount.Path}/pid/{report.Pid}/maps.txt")}"), Is.EqualTo(expected), $"memtest {report.Name}");
        }
    }

    [Test]
    public void Memory_vmem_read_at_a_buffers_address_gives_the_programs_bytes()
    {
        foreach (var report in _oracle.Memtests)
        {
            foreach (var buffer in report.Buffers)
            {
                var file = $"{_mount.Path}/pid/{report.Pid}/memory.vmem";
                var bytes = ShellBytes($"dd if={Q(file)} iflag=skip_bytes,count_bytes skip={buffer.Address} count={buffer.Length} bs=1M status=none");
                Assert.That(bytes, Has.Length.EqualTo(buffer.Length), $"memtest {report.Name} {buffer.Kind}");
                Assert.That(MemtestPattern.Fnv1a64(bytes), Is.EqualTo(buffer.Fnv1a64), $"memtest {report.Name} {buffer.Kind}");
            }
        }
    }

    [Test]
    public void Memory_pmem_is_the_raw_image_byte_for_byte()
    {
        var (exit, output, error) = Run("cmp", $"{_mount.Path}/memory.pmem", Guest.Raw);
        Assert.That(exit, Is.Zero, output + error);
    }

    [Test]
    public void Readelf_accepts_the_core_file_of_each_memtest()
    {
        foreach (var report in _oracle.Memtests)
        {
            var (exit, output, error) = Run("readelf", "-h", "-l", $"{_mount.Path}/pid/{report.Pid}/core.elf");
            Assert.That(exit, Is.Zero, error);
            Assert.That(error, Is.Empty, $"readelf warns about memtest {report.Name}'s core");
            Assert.That(output, Does.Contain("CORE (Core file)"));
            int loads = output.Split('\n').Count(l => l.TrimStart().StartsWith("LOAD", StringComparison.Ordinal));
            Assert.That(loads, Is.EqualTo(_oracle.Lines($"maps {report.Pid}").Count), $"memtest {report.Name}: one LOAD per mapping");
        }
    }

    [Test]
    public void Gdb_opens_the_core_file_and_reads_the_programs_heap_from_it()
    {
        var alpha = _oracle.Memtests.First(m => m.Name == "alpha");
        var heap = alpha.Buffer("heap");

        var (exit, output, error) = Run("gdb", "-batch", "-nx", "-ex", $"x/s 0x{heap.Address:x}", "-c", $"{_mount.Path}/pid/{alpha.Pid}/core.elf");

        Assert.That(exit, Is.Zero, error);
        Assert.That(output, Does.Contain("Core was generated by `memtest-alpha"));
        Assert.That(output, Does.Contain($"\"MEMTEST/heap/{alpha.Pid}/alpha\""));
    }

    [Test]
    public void The_sys_files_give_the_kernels_version_and_modules()
    {
        Assert.That(Shell($"cat {Q(_mount.Path + "/sys/version.txt")}"), Is.EqualTo(_oracle.Version + "\n"));
        var modules = Shell($"cat {Q(_mount.Path + "/sys/modules/modules.txt")}");
        foreach (var module in _oracle.Modules)
            Assert.That(modules, Does.Contain(module.Name));
        Assert.That(Shell($"cat {Q(_mount.Path + "/sys/symbols/init_task.txt")}"), Is.EqualTo($"0x{_oracle.Symbols["init_task"]:x} init_task\n"));
    }

    [Test]
    public void A_read_only_mount_refuses_writes()
    {
        var (exit, _, error) = Run("sh", "-c", $"echo 0 > {Q(_mount.Path + "/conf/refresh_period_ms.txt")}");
        Assert.That(exit, Is.Not.Zero);
        Assert.That(error, Does.Contain("Read-only file system"));
        Assert.That(_machine.Config.Get(MachineConfig.RefreshPeriodKey), Is.EqualTo(5000UL));
    }

    [Test]
    public void A_writable_mount_takes_configuration_values_but_not_writes_to_a_read_only_dump()
    {
        using var writable = Mounted.Start(_machine, readOnly: false);
        try
        {
            var (exit, _, error) = Run("sh", "-c", $"echo 1234 > {Q(writable.Path + "/conf/refresh_period_ms.txt")}");
            Assert.That(exit, Is.Zero, error);
            Assert.That(_machine.Config.Get(MachineConfig.RefreshPeriodKey), Is.EqualTo(1234UL));
            Assert.That(Shell($"cat {Q(writable.Path + "/conf/refresh_period_ms.txt")}"), Is.EqualTo("1234\n"));

            // The write fails with EINVAL (dash's echo words every failure "I/O error"); the value stays.
            var bad = Run("sh", "-c", $"echo loud > {Q(writable.Path + "/conf/verbosity.txt")}");
            Assert.That(bad.ExitCode, Is.Not.Zero);
            Assert.That(_machine.Config.Get(MachineConfig.VerbosityKey), Is.EqualTo(1UL));
            var memory = Run("sh", "-c", $"printf x | dd of={Q(writable.Path + "/memory.pmem")} bs=1 seek=4096 conv=notrunc status=none");
            Assert.That(memory.ExitCode, Is.Not.Zero, "the dump takes no writes");
            Assert.That(memory.Error, Does.Contain("Permission denied"));
        }
        finally
        {
            _machine.Config.Set(MachineConfig.RefreshPeriodKey, 5000);
        }
    }

    [Test]
    public void Large_reads_reach_the_machine_as_one_mebibyte_requests()
    {
        var counting = new CountingMemory(_machine.Memory.Inner as IPhysicalMemory ?? throw new InvalidOperationException("physical memory expected"));
        using var machine = Machine.Open(counting, options: new MachineOptions { LeaveOpen = true });
        using var mounted = Mounted.Start(machine, readOnly: true);

        var bytes = ShellBytes($"dd if={Q(mounted.Path + "/memory.pmem")} bs=1M count=8 status=none");

        Assert.That(bytes, Has.Length.EqualTo(8 << 20));
        Assert.That(counting.LargestRequest, Is.EqualTo(1 << 20), "the kernel passes whole 1 MiB reads");
        Assert.That(counting.Requests, Is.LessThanOrEqualTo(16), "8 MiB in a handful of requests, not 2048 pages");
    }

    [Test]
    public void An_unmount_from_outside_ends_the_loop_and_leaves_no_device_open()
    {
        int devicesBefore = OpenFuseDevices();
        var mounted = Mounted.Start(_machine, readOnly: true);
        Assert.That(OpenFuseDevices(), Is.EqualTo(devicesBefore + 1));

        var (exit, _, error) = Run("fusermount3", "-u", mounted.Path);
        Assert.That(exit, Is.Zero, error);
        Assert.That(mounted.Loop.Wait(TimeSpan.FromSeconds(20)), "the loop ends when the file system is unmounted");
        mounted.Dispose();
        Assert.That(OpenFuseDevices(), Is.EqualTo(devicesBefore));
    }

    [Test]
    public void Fuse_being_unavailable_or_a_missing_mount_point_is_a_clear_error()
    {
        var missing = Assert.Throws<FuseUnavailableException>(() => FuseMount.CheckAvailable("/nonexistent/fuse"))!;
        Assert.That(missing.Message, Does.Contain("/nonexistent/fuse").And.Contain("modprobe fuse"));
        // A file that exists but does not open for writing: a file of this very read-only mount.
        var readOnlyFile = _mount.Path + "/memory.pmem";
        var unopenable = Assert.Throws<FuseUnavailableException>(() => FuseMount.CheckAvailable(readOnlyFile))!;
        Assert.That(unopenable.Message, Does.Contain(readOnlyFile).And.Contain("cannot be opened for reading and writing"));
        var folder = Path.Combine(Path.GetTempPath(), "introspect-no-such-folder-" + Guid.NewGuid());
        var notThere = Assert.Throws<DirectoryNotFoundException>(() => FuseMount.Mount(_machine.Vfs, folder))!;
        Assert.That(notThere.Message, Does.Contain(folder));
    }

    private static int OpenFuseDevices() =>
        new DirectoryInfo("/proc/self/fd").EnumerateFileSystemInfos().Count(fd =>
        {
            try
            {
                return fd.LinkTarget == "/dev/fuse";
            }
            catch (IOException)
            {
                return false;
            }
        });

    private static string Q(string path) => "'" + path.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private static string Shell(string command)
    {
        var (exit, output, error) = Run("sh", "-c", command);
        Assert.That(exit, Is.Zero, $"{command}: {error}");
        return output;
    }

    private static byte[] ShellBytes(string command)
    {
        using var process = Process.Start(new ProcessStartInfo("sh", ["-c", command]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        using var bytes = new MemoryStream();
        var copy = process.StandardOutput.BaseStream.CopyToAsync(bytes);
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(60_000) || !copy.Wait(60_000))
        {
            process.Kill();
            Assert.Fail($"{command} did not finish within 60 s");
        }
        Assert.That(process.ExitCode, Is.Zero, $"{command}: {error.Result}");
        return bytes.ToArray();
    }

    internal static (int ExitCode, string Output, string Error) Run(string program, params string[] arguments)
    {
        using var process = Process.Start(new ProcessStartInfo(program, arguments) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(60_000))
        {
            process.Kill();
            Assert.Fail($"{program} {string.Join(' ', arguments)} did not finish within 60 s");
        }
        return (process.ExitCode, output.Result, error.Result);
    }

    /// <summary>A machine's file system mounted in a fresh folder and served on a thread; disposing unmounts and removes the folder.</summary>
    internal sealed class Mounted : IDisposable
    {
        private readonly FuseMount _mount;

        private Mounted(string path, FuseMount mount, Task loop)
        {
            Path = path;
            _mount = mount;
            Loop = loop;
        }

        public string Path { get; }

        public Task Loop { get; }

        public static Mounted Start(Machine machine, bool readOnly)
        {
            var path = Directory.CreateTempSubdirectory("introspect-mount-").FullName;
            var mount = FuseMount.Mount(machine.Vfs, path, new FuseMountOptions { ReadOnly = readOnly });
            var mounted = new Mounted(path, mount, mount.RunInBackground());
            // The kernel answers for the mount once libfuse's loop has read the INIT request; a stat waits for that.
            var until = DateTime.UtcNow.AddSeconds(20);
            while (!File.Exists(System.IO.Path.Combine(path, "memory.pmem")))
            {
                if (DateTime.UtcNow > until)
                {
                    mounted.Dispose();
                    Assert.Fail($"the mount at {path} did not answer within 20 s");
                }
                Thread.Sleep(50);
            }
            return mounted;
        }

        public void Dispose()
        {
            // fusermount3 -u as a user would; then the loop ends and the mount is freed.
            if (File.Exists(System.IO.Path.Combine(Path, "memory.pmem")))
                Run("fusermount3", "-u", Path);
            Loop.Wait(TimeSpan.FromSeconds(20));
            _mount.Dispose();
            Directory.Delete(Path);
        }
    }

    /// <summary>Physical memory that notes how many requests it serves and the largest.</summary>
    private sealed class CountingMemory(IPhysicalMemory inner) : IPhysicalMemory
    {
        private int _requests;
        private int _largest;

        public int Requests => Volatile.Read(ref _requests);

        public int LargestRequest => Volatile.Read(ref _largest);

        public PhysicalMemoryMetadata Metadata => inner.Metadata;

        public MemoryMap MemoryMap => inner.MemoryMap;

        public void SetMemoryMap(MemoryMap map) => inner.SetMemoryMap(map);

        public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
        {
            foreach (var request in batch)
            {
                Interlocked.Increment(ref _requests);
                int largest;
                while ((largest = Volatile.Read(ref _largest)) < request.Buffer.Length && Interlocked.CompareExchange(ref _largest, request.Buffer.Length, largest) != largest)
                {
                }
            }
            inner.Read(batch, flags);
        }

        public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => inner.Write(batch, flags);

        public void Dispose() { }
    }
}
