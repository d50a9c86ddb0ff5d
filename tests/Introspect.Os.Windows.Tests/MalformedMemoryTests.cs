using Introspect.Abi;
using Introspect.Core.Memory;
using Introspect.TestSupport;

namespace Introspect.Os.Windows.Tests;

/// <summary>A real fixture damaged the ways a torn or hostile image is: cyclic and torn process lists, a cyclic VAD tree,
/// a loader list that loops, a PDB that is not the one asked for. Every walk ends with what it found and a warning.</summary>
public sealed class MalformedMemoryTests
{
    private string _name = null!;
    private WindowsTruth _truth = null!;
    private IPhysicalMemory _raw = null!;
    private WindowsOperatingSystem _clean = null!;

    [OneTimeSetUp]
    public void Open()
    {
        _name = WindowsSupport.Names().First();
        _truth = WindowsSupport.Truth(_name);
        _raw = WindowsSupport.Open(new FixtureForm(_name, "raw"));
        _clean = WindowsSupport.OpenWithPdb(_raw, out _);
    }

    [OneTimeTearDown]
    public void Close()
    {
        _clean?.Dispose();
        _raw?.Dispose();
    }

    private ulong Physical(ulong kernelAddress)
    {
        Assert.That(_clean.KernelMemory.TryTranslate(kernelAddress, out ulong physical), Is.True, $"{WindowsSupport.Hex(kernelAddress)} is mapped");
        return physical;
    }

    private List<ulong> Linked() => new Processes.ProcessWalker(_clean.Kernel).WalkList();

    private ulong Links(ulong eprocess) => eprocess + (ulong)_clean.Kernel.Offsets.ActiveProcessLinks;

    [Test]
    public void A_cyclic_process_list_ends_with_a_warning_and_the_pool_scan_recovers_the_rest()
    {
        var linked = Linked();
        Assert.That(linked, Has.Count.GreaterThan(4));
        var memory = new PatchedMemory(_raw);
        memory.PatchUInt64(Physical(Links(linked[3])), Links(linked[1]));
        using (var windows = WindowsSupport.OpenWindows(memory, out var log, ("symbols", WindowsSupport.SymbolStore), ("offline", "on"), ("poolscan", "off")))
        {
            Assert.That(windows.GetProcesses().Select(p => p.KernelObject), Is.EqualTo(linked.Take(4)));
            Assert.That(log, Has.Some.Contains("Warning: windows: the process list loops back"));
        }
        using (var windows = WindowsSupport.OpenWindows(memory, out _, ("symbols", WindowsSupport.SymbolStore), ("offline", "on")))
        {
            var processes = windows.GetProcesses();
            Assert.That(processes.Select(p => p.Pid).Order(), Is.EqualTo(_truth.Processes.Select(p => p.Pid).Order()), "the pool scan finds those cut off");
            Assert.That(processes.Where(p => p.IsHidden).Select(p => p.KernelObject), Does.Contain(linked[4]));
        }
    }

    [Test]
    public void A_torn_process_list_ends_with_a_warning()
    {
        var linked = Linked();
        var memory = new PatchedMemory(_raw);
        memory.PatchUInt64(Physical(Links(linked[2])), 0x1234);
        using var windows = WindowsSupport.OpenWindows(memory, out var log, ("symbols", WindowsSupport.SymbolStore), ("offline", "on"), ("poolscan", "off"));
        Assert.That(windows.GetProcesses().Select(p => p.KernelObject), Is.EqualTo(linked.Take(3)));
        Assert.That(log, Has.Some.Contains("the process list is torn after 3 entries"));
    }

    [Test]
    public void A_cyclic_vad_tree_ends_with_a_warning()
    {
        var process = _clean.GetProcesses().First(p => _clean.GetVads(p).Count > 3);
        int vads = _clean.GetVads(process).Count;
        ulong rootField = process.KernelObject + (ulong)_clean.Kernel.Offsets.VadRoot;
        Assert.That(_clean.KernelMemory.TryRead(rootField, out ulong root), Is.True);
        var memory = new PatchedMemory(_raw);
        // The root's right child points back at the root, and so does its left: a loop both ways.
        memory.PatchUInt64(Physical(root + (ulong)_clean.Kernel.Offsets.VadRight), root);
        using var windows = WindowsSupport.OpenWindows(memory, out var log, ("symbols", WindowsSupport.SymbolStore), ("offline", "on"), ("poolscan", "off"));
        var damaged = windows.GetProcesses().Single(p => p.KernelObject == process.KernelObject);
        var areas = windows.GetVads(damaged);
        Assert.That(areas, Has.Count.InRange(1, vads));
        Assert.That(log, Has.Some.Contains($"the VAD tree of process {process.Pid}"));
    }

    [Test]
    public void A_loader_list_that_loops_on_itself_gives_what_it_read()
    {
        var process = _clean.GetProcesses().First(p => !p.IsKernelThread && _clean.GetModules(p).Count >= 2 && p.State != ProcessState.Exited);
        var found = _clean.Find(process)!;
        var space = _clean.OpenProcessMemory(process);
        var o = _clean.Kernel.Offsets;
        Assert.That(space.TryRead(found.Peb + (ulong)o.PebLdr, out ulong ldr), Is.True);
        Assert.That(space.TryRead(ldr + (ulong)o.LdrInLoadOrderModuleList, out ulong first), Is.True);
        Assert.That(space.TryTranslate(first, out ulong firstPhysical), Is.True);
        var memory = new PatchedMemory(_raw);
        memory.PatchUInt64(firstPhysical, first);
        using var windows = WindowsSupport.OpenWindows(memory, out var log, ("symbols", WindowsSupport.SymbolStore), ("offline", "on"), ("poolscan", "off"));
        var damaged = windows.GetProcesses().Single(p => p.KernelObject == process.KernelObject);
        Assert.That(windows.GetModules(damaged).Select(m => m.Base), Is.EqualTo(_clean.GetModules(process).Take(1).Select(m => m.Base)));
        Assert.That(log, Has.Some.Contains($"the loader list of process {process.Pid} loops or breaks"));
    }

    [Test]
    public void An_absurd_unicode_string_is_read_as_nothing()
    {
        var process = _clean.GetProcesses().First(p => p.CommandLine is not null && p.State != ProcessState.Exited);
        var found = _clean.Find(process)!;
        var space = _clean.OpenProcessMemory(process);
        var o = _clean.Kernel.Offsets;
        Assert.That(space.TryRead(found.Peb + (ulong)o.PebProcessParameters, out ulong parameters), Is.True);
        Assert.That(space.TryTranslate(parameters + (ulong)o.ParametersCommandLine, out ulong physical), Is.True);
        var memory = new PatchedMemory(_raw);
        // Length odd and larger than MaximumLength, the buffer a kernel address nobody maps.
        memory.Patch(physical, [0xFF, 0xFF, 0x10, 0x00, 0, 0, 0, 0]);
        using var windows = WindowsSupport.OpenWindows(memory, out _, ("symbols", WindowsSupport.SymbolStore), ("offline", "on"), ("poolscan", "off"));
        var damaged = windows.GetProcesses().Single(p => p.KernelObject == process.KernelObject);
        Assert.That(damaged.CommandLine, Is.Null);
        Assert.That(damaged.Path, Is.EqualTo(process.Path));
    }

    [Test]
    public void A_pdb_that_is_not_the_kernels_is_refused_and_the_built_in_layout_used()
    {
        string folder = Path.Combine(Path.GetTempPath(), "introspect-windows-badpdb-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        try
        {
            // Another PDB under the kernel's PDB name: its GUID and age are not the ones the CodeView record asks for.
            File.Copy(TestInputs.TestData("pdb", "HelloWorld.pdb"), Path.Combine(folder, _truth.PdbName));
            using var windows = WindowsSupport.OpenWindows(_raw, out _, ("symbols", folder), ("offline", "on"));
            Assert.That(windows.Info.Properties["bootstrap"], Does.Contain("not the file asked for"));
            Assert.That(windows.Info.Properties["offsets_source"], Does.StartWith("built-in layout"));
            Assert.That(windows.GetProcesses().Select(p => p.Pid).Order(), Is.EqualTo(_truth.Processes.Select(p => p.Pid).Order()));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Test]
    public void Unknown_and_bad_arguments_are_refused_naming_them()
    {
        Assert.That(() => WindowsSupport.OpenWindows(_raw, out _, ("bogus", "1")), Throws.TypeOf<PluginArgumentException>().With.Message.Contains("'bogus'"));
        Assert.That(() => WindowsSupport.OpenWindows(_raw, out _, ("offsets", "guess")), Throws.TypeOf<PluginArgumentException>().With.Message.Contains("offsets=guess"));
        Assert.That(() => WindowsSupport.OpenWindows(_raw, out _, ("symbols", "srv*")), Throws.TypeOf<PluginArgumentException>().With.Message.Contains("symbols=srv*"));
    }
}
