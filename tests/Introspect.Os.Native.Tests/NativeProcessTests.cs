using System.Diagnostics;
using System.Text;
using Introspect.Abi;
using Introspect.Core;
using Introspect.Core.Plugins;

namespace Introspect.Os.Native.Tests;

/// <summary>The native layer against this machine's own /proc: a child process the test starts, with a known string in its memory.</summary>
[NonParallelizable]
public sealed class NativeProcessTests
{
    private Process _child = null!;
    private string _marker = null!;
    private NativeOperatingSystem _system = null!;

    [OneTimeSetUp]
    public void StartChild()
    {
        if (!OperatingSystem.IsLinux())
            Assert.Ignore("The native layer reads Linux's /proc.");
        _marker = $"INTROSPECT_NATIVE_MARKER_{Guid.NewGuid():N}";
        var start = new ProcessStartInfo("sleep", "1000") { UseShellExecute = false };
        start.Environment["INTROSPECT_TEST_MARKER"] = _marker;
        _child = Process.Start(start)!;
        _system = (NativeOperatingSystem)new NativeOsFactory().Create(PluginArguments.Empty("native"), new NullContext());
        // exec may not have happened yet: wait until /proc shows the new image.
        var watch = Stopwatch.StartNew();
        while (_system.GetProcess((ulong)_child.Id)?.Name != "sleep" && watch.Elapsed < TimeSpan.FromSeconds(10))
            Thread.Sleep(20);
    }

    [OneTimeTearDown]
    public void StopChild()
    {
        if (_child is null)
            return;
        _child.Kill();
        _child.WaitForExit();
        _child.Dispose();
    }

    [Test]
    public void The_child_is_listed_with_its_parent_command_line_environment_and_executable()
    {
        var child = _system.GetProcesses().SingleOrDefault(p => p.Pid == (ulong)_child.Id);
        Assert.That(child, Is.Not.Null);
        Assert.That(child!.Name, Is.EqualTo("sleep"));
        Assert.That(child.ParentPid, Is.EqualTo((ulong)Environment.ProcessId));
        Assert.That(child.Arguments, Is.EqualTo(new[] { "sleep", "1000" }));
        Assert.That(child.Environment, Does.Contain($"INTROSPECT_TEST_MARKER={_marker}"));
        Assert.That(Path.GetFileName(child.Path), Is.EqualTo("sleep"));
        Assert.That(child.State, Is.EqualTo(ProcessState.Sleeping));
        Assert.That(child.Uid, Is.EqualTo(uint.Parse(File.ReadAllLines("/proc/self/status").First(l => l.StartsWith("Uid:", StringComparison.Ordinal)).Split('\t')[1], System.Globalization.CultureInfo.InvariantCulture)));
        Assert.That(child.StartTime, Is.EqualTo(DateTimeOffset.Now).Within(TimeSpan.FromMinutes(10)));
        Assert.That(child.IsKernelThread, Is.False);
    }

    [Test]
    public void Kernel_threads_are_marked()
    {
        var kthreadd = _system.GetProcess(2);
        if (kthreadd is null || kthreadd.Name != "kthreadd")
            Assert.Ignore("This machine's pid 2 is not kthreadd (a container's pid namespace).");
        Assert.That(kthreadd.IsKernelThread, Is.True);
    }

    [Test]
    public void The_marker_is_read_from_the_childs_stack_with_process_vm_readv()
    {
        var child = _system.GetProcess((ulong)_child.Id)!;
        var stack = _system.GetMemoryAreas(child).Single(a => a.Path == "[stack]");
        var memory = _system.OpenProcessMemory(child);
        var bytes = new byte[stack.End - stack.Start];
        Span<MemoryRequest> batch = [new MemoryRequest(stack.Start, bytes)];
        memory.Read(batch);
        Assert.That(batch[0].Succeeded, Is.True);
        Assert.That(bytes.AsSpan().IndexOf(Encoding.ASCII.GetBytes("INTROSPECT_TEST_MARKER=" + _marker)), Is.GreaterThan(0));
    }

    [Test]
    public void A_batch_fails_only_the_entries_that_cannot_be_read()
    {
        var child = _system.GetProcess((ulong)_child.Id)!;
        var stack = _system.GetMemoryAreas(child).Single(a => a.Path == "[stack]");
        var memory = _system.OpenProcessMemory(child);
        var buffers = Enumerable.Range(0, 5).Select(_ => new byte[64]).ToArray();
        var batch = new MemoryRequest[]
        {
            new(stack.End - 64, buffers[0]),
            new(0, buffers[1]),                          // never mapped
            new(stack.End - 128, buffers[2]),
            new(stack.End - 32, buffers[3]),             // runs past the end of the stack
            new(ulong.MaxValue - 10, buffers[4]),        // wraps past 2^64
        };
        memory.Read(batch);
        Assert.That(batch.Select(b => b.Succeeded), Is.EqualTo(new[] { true, false, true, false, false }));
    }

    [Test]
    public void Zero_padding_fills_the_unreadable_pages_and_keeps_the_readable_ones()
    {
        var child = _system.GetProcess((ulong)_child.Id)!;
        var stack = _system.GetMemoryAreas(child).Single(a => a.Path == "[stack]");
        var memory = _system.OpenProcessMemory(child);
        var expected = new byte[32];
        Span<MemoryRequest> plain = [new MemoryRequest(stack.End - 32, expected)];
        memory.Read(plain);
        var padded = new byte[64];
        padded.AsSpan().Fill(0xcc);
        Span<MemoryRequest> batch = [new MemoryRequest(stack.End - 32, padded)];
        memory.Read(batch, MemoryFlags.ZeroPadOnFail);
        Assert.That(batch[0].Succeeded, Is.True);
        Assert.That(padded[..32], Is.EqualTo(expected));
        Assert.That(padded[32..], Is.All.EqualTo((byte)0));
    }

    [Test]
    public void Larger_batches_than_one_system_call_takes_are_split()
    {
        var child = _system.GetProcess((ulong)_child.Id)!;
        var stack = _system.GetMemoryAreas(child).Single(a => a.Path == "[stack]");
        var memory = _system.OpenProcessMemory(child);
        int count = ProcessVmMemory.MaxVectors * 2 + 7;
        var batch = new MemoryRequest[count];
        for (int i = 0; i < count; i++)
            batch[i] = new MemoryRequest(i % 3 == 1 ? 8 : stack.End - 16, new byte[8]);
        memory.Read(batch);
        Assert.That(batch.Select((b, i) => b.Succeeded == (i % 3 != 1)), Is.All.True);
    }

    [Test]
    public void Writes_are_refused_unless_allowed_and_land_in_the_child_when_allowed()
    {
        var child = _system.GetProcess((ulong)_child.Id)!;
        var stack = _system.GetMemoryAreas(child).Single(a => a.Path == "[stack]");
        var readOnly = _system.OpenProcessMemory(child);
        var data = "WRITTEN!"u8.ToArray();
        // The topmost bytes of the stack hold the executable's path; the first 8 after the marker's value are its NUL and more.
        var bytes = new byte[stack.End - stack.Start];
        Span<MemoryRequest> read = [new MemoryRequest(stack.Start, bytes)];
        readOnly.Read(read);
        int at = bytes.AsSpan().IndexOf(Encoding.ASCII.GetBytes(_marker));
        Assert.That(at, Is.GreaterThan(0));
        ulong target = stack.Start + (ulong)at;
        Assert.That(() => readOnly.Write([new MemoryRequest(target, data)]), Throws.TypeOf<NotSupportedException>());

        using var writable = new NativeOsFactory().Create(new PluginArguments("native", [new("write", "on")]), new NullContext());
        var memory = writable.OpenProcessMemory(child);
        var write = new[] { new MemoryRequest(target, data), new MemoryRequest(0, data) };
        memory.Write(write);
        Assert.That(write.Select(w => w.Succeeded), Is.EqualTo(new[] { true, false }));
        var back = new byte[data.Length];
        Span<MemoryRequest> check = [new MemoryRequest(target, back)];
        memory.Read(check);
        Assert.That(back, Is.EqualTo(data));
        Assert.That(File.ReadAllBytes($"/proc/{_child.Id}/environ").AsSpan().IndexOf(data), Is.GreaterThanOrEqualTo(0), "the kernel's own view of the child's environment shows the write");
    }

    [Test]
    public void Modules_are_the_mapped_elf_files_with_the_executable_first()
    {
        var child = _system.GetProcess((ulong)_child.Id)!;
        var modules = _system.GetModules(child);
        Assert.That(modules, Is.Not.Empty);
        Assert.That(modules[0].Path, Is.EqualTo(child.Path));
        Assert.That(modules.Select(m => m.Name), Has.Some.StartsWith("libc.so").Or.Some.StartsWith("ld-linux"));
        Assert.That(modules.Where(m => m.Path is null || m.Path.StartsWith('[')), Is.Empty);
    }

    [Test]
    public void A_process_that_is_gone_is_not_found_and_fails_reads()
    {
        var gone = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        gone.WaitForExit();
        ulong pid = (ulong)gone.Id;
        gone.Dispose();
        Assert.That(_system.GetProcess(pid), Is.Null);
        var memory = _system.OpenProcessMemory(new ProcessInfo { Pid = pid, Name = "true" });
        var batch = new[] { new MemoryRequest(0x400000, new byte[16]) };
        memory.Read(batch);
        Assert.That(batch[0].Succeeded, Is.False);
        Assert.That(_system.GetMemoryAreas(new ProcessInfo { Pid = pid, Name = "true" }), Is.Empty);
    }

    [Test]
    public void Native_starts_a_chain_through_the_plugin_host_and_serves_no_physical_memory()
    {
        using var host = PluginHost.CreateDefault([Path.Combine(AppContext.BaseDirectory, "plugins")]);
        using var machine = Machine.Open("native", new MachineOptions { Host = host, Configuration = PluginConfiguration.Empty });
        var self = machine.GetProcess((ulong)Environment.ProcessId);
        Assert.That(self, Is.Not.Null);
        Assert.That(self!.Info.Arguments, Is.Not.Empty);
        Assert.That(machine.GetProcess((ulong)_child.Id)!.Name, Is.EqualTo("sleep"));
        var page = new byte[16];
        Assert.That(machine.Memory.Read(0x1000, page), Is.Zero);
    }

    [Test]
    public void Native_refuses_to_read_a_connector_and_unknown_proc_folders()
    {
        var factory = new NativeOsFactory();
        Assert.That(() => factory.Create(new NoPhysicalMemory(), PluginArguments.Empty("native"), new NullContext()),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains("put it first in the chain"));
        Assert.That(() => factory.Create(new PluginArguments("native", [new("proc", "/nonexistent")]), new NullContext()),
            Throws.TypeOf<PluginArgumentException>().With.Message.Contains("proc=/nonexistent"));
    }

    private sealed class NullContext : IPluginContext
    {
        public void Log(PluginLogLevel level, string message)
        {
        }
    }
}
