using Introspect.Abi;
using Introspect.Core.Memory;

namespace Introspect.Os.Windows.Tests;

/// <summary>Every fixture, as a raw image, a full crash dump and a bitmap crash dump, against its ground truth, with the
/// kernel's PDB found in the fixtures' symbol store.</summary>
[TestFixtureSource(typeof(WindowsSupport), nameof(WindowsSupport.Forms))]
public sealed class FixtureTests(FixtureForm form)
{
    private WindowsTruth _truth = null!;
    private IPhysicalMemory _memory = null!;
    private WindowsOperatingSystem _windows = null!;
    private List<string> _log = null!;
    private IReadOnlyList<ProcessInfo> _processes = null!;

    [OneTimeSetUp]
    public void Open()
    {
        _truth = WindowsSupport.Truth(form.Name);
        _memory = WindowsSupport.Open(form);
        _windows = WindowsSupport.OpenWithPdb(_memory, out _log);
        _processes = _windows.GetProcesses();
    }

    [OneTimeTearDown]
    public void Close()
    {
        _windows?.Dispose();
        _memory?.Dispose();
    }

    /// <summary>A DTB as the layer reports it: a page on x64, a 32-byte aligned PDPT on x86 PAE.</summary>
    private ulong Root(ulong dtb) => _truth.Architecture == "x64" ? dtb & ~0xFFFUL : dtb & ~0x1FUL;

    private ProcessInfo Process(TruthProcess truth) =>
        _processes.Single(p => p.Pid == truth.Pid && p.KernelObject == truth.Eprocess);

    [Test]
    public void The_kernel_is_found_with_its_version_base_and_page_tables()
    {
        var info = _windows.Info;
        Assert.Multiple(() =>
        {
            Assert.That(info.Name, Is.EqualTo("windows"));
            Assert.That(info.KernelBase, Is.EqualTo(_truth.KernelBase));
            Assert.That(info.DirectoryTableBase, Is.EqualTo(Root(_truth.Dtb)));
            Assert.That(info.Architecture, Is.EqualTo(_truth.Architecture switch
            {
                "x64" => MachineArchitecture.X64,
                "x86pae" => MachineArchitecture.X86Pae,
                _ => MachineArchitecture.X86,
            }));
            Assert.That(info.Properties["build"], Is.EqualTo(_truth.Build.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            Assert.That(info.Version, Does.Contain($"Windows {_truth.Major}.{_truth.Minor} build {_truth.Build}"));
            Assert.That(info.Properties["offsets_source"], Does.StartWith("PDB"));
            Assert.That(info.Properties["pdb"], Does.StartWith(_truth.PdbName));
            Assert.That(info.Properties["ps_active_process_head"], Is.EqualTo(WindowsSupport.Hex(_truth.PsActiveProcessHead)));
            Assert.That(info.Properties["ps_loaded_module_list"], Is.EqualTo(WindowsSupport.Hex(_truth.PsLoadedModuleList)));
            if (_truth.Architecture == "x64")
                Assert.That(info.Properties["self_map_index"], Is.EqualTo(WindowsSupport.Hex((ulong)_truth.SelfMapIndex)));
            Assert.That(info.Properties["bootstrap"], Does.Contain("offsets: using PDB"));
        });
    }

    [Test]
    public void The_process_list_holds_every_process_the_hidden_one_marked()
    {
        var expected = _truth.Processes.Select(p => (p.Pid, p.ParentPid, p.Name, p.Hidden, p.Exited)).OrderBy(p => p.Pid).ToList();
        var actual = _processes.Select(p => (p.Pid, p.ParentPid, p.Name, p.IsHidden, p.State == ProcessState.Exited)).OrderBy(p => p.Pid).ToList();
        Assert.That(actual, Is.EqualTo(expected));
        Assert.That(_truth.Processes.Any(p => p.Hidden), Is.True, "the fixture has a hidden process");
    }

    [Test]
    public void Each_process_has_its_tables_times_path_and_command_line()
    {
        Assert.Multiple(() =>
        {
            foreach (var truth in _truth.Processes)
            {
                var process = Process(truth);
                string what = $"pid {truth.Pid} {truth.Name}";
                Assert.That(process.DirectoryTableBase, Is.EqualTo(Root(truth.Dtb)), what);
                Assert.That(process.UserDirectoryTableBase, Is.EqualTo(truth.UserDtb is 0 or 1 ? null : Root(truth.UserDtb)), what);
                Assert.That(process.StartTime, Is.EqualTo(new DateTimeOffset(DateTime.FromFileTimeUtc(truth.CreateTime))), what);
                Assert.That(process.Architecture, Is.EqualTo(truth.Wow64 ? MachineArchitecture.X86 : MachineArchitecture.Unknown), what);
                if (truth.Exited)
                {
                    Assert.That(process.ExitTime, Is.EqualTo(new DateTimeOffset(DateTime.FromFileTimeUtc(truth.ExitTime))), what);
                    Assert.That(process.ExitStatus, Is.EqualTo((int)truth.ExitStatus), what);
                }
                else
                {
                    Assert.That(process.ExitTime, Is.Null, what);
                    Assert.That(process.Path ?? "", Is.EqualTo(truth.Path), what);
                    Assert.That(process.CommandLine ?? "", Is.EqualTo(truth.CommandLine), what);
                }
            }
        });
    }

    [Test]
    public void Each_process_has_the_modules_of_its_loader_lists()
    {
        Assert.Multiple(() =>
        {
            foreach (var truth in _truth.Processes)
            {
                var process = Process(truth);
                var modules = _windows.GetModules(process);
                var expected = truth.Modules.Select(m => new ModuleInfo(m.Name, m.Path, m.Base, m.Size)).ToList();
                var bases = expected.Select(m => m.Base).ToHashSet();
                expected.AddRange(truth.Modules32.Where(m => bases.Add(m.Base)).Select(m => new ModuleInfo(m.Name, m.Path, m.Base, m.Size)));
                Assert.That(modules, Is.EqualTo(expected), $"pid {truth.Pid}");
                Assert.That(_windows.GetModules32(process), Is.EqualTo(truth.Modules32.Select(m => new ModuleInfo(m.Name, m.Path, m.Base, m.Size))), $"pid {truth.Pid} (32-bit)");
            }
        });
    }

    [Test]
    public void Each_process_has_the_vads_of_its_tree()
    {
        Assert.Multiple(() =>
        {
            foreach (var truth in _truth.Processes)
            {
                var process = Process(truth);
                var vads = _windows.GetVads(process).Select(v => new TruthVad(v.Start, v.End, (int)v.Protection, v.Private, v.File));
                Assert.That(vads, Is.EqualTo(truth.Vads), $"pid {truth.Pid}");
                var areas = _windows.GetMemoryAreas(process);
                Assert.That(areas.Select(a => (a.Start, a.End, a.Path)), Is.EqualTo(truth.Vads.Select(v => (v.Start, v.End, v.File))), $"pid {truth.Pid}");
            }
        });
    }

    [Test]
    public void The_kernel_modules_are_those_of_PsLoadedModuleList()
    {
        var expected = _truth.KernelModules.Select(m => new ModuleInfo(m.Name, m.Path, m.Base, m.Size));
        Assert.That(_windows.GetKernelModules(), Is.EqualTo(expected));
    }

    [Test]
    public void Probe_reads_through_each_process_tables_give_the_known_bytes()
    {
        int probes = 0;
        Assert.Multiple(() =>
        {
            foreach (var truth in _truth.Processes)
            {
                var memory = _windows.OpenProcessMemory(Process(truth));
                foreach (var probe in truth.Probes)
                {
                    var bytes = new byte[probe.Bytes.Length];
                    Assert.That(memory.Read(probe.Address, bytes), Is.EqualTo(bytes.Length), $"pid {truth.Pid} at {WindowsSupport.Hex(probe.Address)}");
                    Assert.That(bytes, Is.EqualTo(probe.Bytes), $"pid {truth.Pid} at {WindowsSupport.Hex(probe.Address)}");
                    probes++;
                }
            }
        });
        Assert.That(probes, Is.GreaterThan(0));
    }

    [Test]
    public void Kernel_symbols_resolve_both_ways_through_the_pdb()
    {
        Assert.Multiple(() =>
        {
            Assert.That(_windows.TryGetSymbolAddress("PsActiveProcessHead", out ulong head), Is.True);
            Assert.That(head, Is.EqualTo(_truth.PsActiveProcessHead));
            Assert.That(_windows.TryGetSymbolName(_truth.PsLoadedModuleList, out string name, out ulong displacement), Is.True);
            Assert.That((name, displacement), Is.EqualTo(("PsLoadedModuleList", 0UL)));
            // Inside the list head (its Blink), whatever the pointer size.
            Assert.That(_windows.TryGetSymbolName(_truth.PsActiveProcessHead + 4, out name, out displacement), Is.True);
            Assert.That((name, displacement), Is.EqualTo(("PsActiveProcessHead", 4UL)));
            Assert.That(_windows.TryGetSymbolAddress("NoSuchSymbolAnywhere", out _), Is.False);
            Assert.That(_windows.SymbolCount, Is.GreaterThan(0));
        });
    }

    [Test]
    public void Kernel_types_give_the_truth_eprocess_offsets()
    {
        Assert.Multiple(() =>
        {
            foreach (var (field, offset) in _truth.EprocessOffsets)
            {
                if (field == "SizeOf")
                {
                    Assert.That(_windows.TryGetTypeSize("_EPROCESS", out ulong size), Is.True);
                    Assert.That(size, Is.EqualTo((ulong)offset));
                    continue;
                }
                string path = field is "DirectoryTableBase" or "UserDirectoryTableBase" ? "Pcb." + field : field;
                Assert.That(_windows.TryGetFieldOffset("_EPROCESS", path, out ulong found), Is.True, field);
                Assert.That(found, Is.EqualTo((ulong)offset), field);
            }
            Assert.That(_windows.TryGetFieldOffset("_EPROCESS", "NoSuchField", out _), Is.False);
        });
    }

    [Test]
    public void A_process_is_found_by_pid_and_its_memory_reads_like_the_kernel_view()
    {
        var truth = _truth.Processes.First(p => !p.Exited && !p.Hidden && p.Probes.Count > 0 && p.Pid != 4);
        var process = _windows.GetProcess(truth.Pid);
        Assert.That(process, Is.Not.Null);
        Assert.That(process!.KernelObject, Is.EqualTo(truth.Eprocess));
        Assert.That(_windows.GetProcess(0xFFFF_FFF0), Is.Null);
        var memory = _windows.OpenProcessMemory(process);
        Assert.That(memory.TryTranslate(truth.Probes[0].Address, out ulong physical), Is.True);
        var direct = new byte[4];
        Assert.That(_memory.Read(physical, direct), Is.EqualTo(4));
        Assert.That(direct, Is.EqualTo(truth.Probes[0].Bytes[..4]));
    }
}
