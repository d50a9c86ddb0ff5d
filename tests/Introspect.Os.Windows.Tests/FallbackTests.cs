using System.Net;
using System.Net.Sockets;
using Introspect.Abi;
using Introspect.Symbols.Tests;
using Introspect.TestSupport;

namespace Introspect.Os.Windows.Tests;

/// <summary>Offsets from wherever they can be had: the PDB over HTTP from a symbol server on 127.0.0.1, the built-in
/// layouts when the server is down or the layer is offline, the heuristic locator when told to; the same process list
/// each way, and the account says which way was taken.</summary>
[TestFixtureSource(typeof(WindowsSupport), nameof(WindowsSupport.Names))]
public sealed class FallbackTests(string name)
{
    private WindowsTruth _truth = null!;
    private string _cache = null!;

    [OneTimeSetUp]
    public void Load() => _truth = WindowsSupport.Truth(name);

    /// <summary>An empty symbol cache for each test, so no test finds what another downloaded.</summary>
    [SetUp]
    public void MakeCache()
    {
        _cache = Path.Combine(Path.GetTempPath(), "introspect-windows-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_cache);
    }

    [TearDown]
    public void RemoveCache() => Directory.Delete(_cache, recursive: true);

    private IPhysicalMemory Raw() => WindowsSupport.Open(new FixtureForm(name, "raw"));

    private List<(ulong Pid, ulong ParentPid, string Name, bool Hidden)> Expected() =>
        _truth.Processes.Select(p => (p.Pid, p.ParentPid, p.Name, p.Hidden)).OrderBy(p => p.Pid).ToList();

    private static List<(ulong Pid, ulong ParentPid, string Name, bool Hidden)> Listed(IOperatingSystem windows) =>
        windows.GetProcesses().Select(p => (p.Pid, p.ParentPid, p.Name, p.IsHidden)).OrderBy(p => p.Pid).ToList();

    private string StoreId => $"{_truth.PdbGuid:N}".ToUpperInvariant() + _truth.PdbAge.ToString("X", System.Globalization.CultureInfo.InvariantCulture);

    [Test]
    public void The_pdb_comes_from_a_symbol_server_over_http_and_lands_in_the_cache()
    {
        using var server = new TestSymbolServer();
        string pdbPath = Path.Combine(WindowsSupport.SymbolStore, _truth.PdbName, StoreId, _truth.PdbName);
        string route = $"/{_truth.PdbName}/{StoreId}/{_truth.PdbName}";
        server.Serve(route, File.ReadAllBytes(TestInputs.Fixture("windows", "symbols", _truth.PdbName, StoreId, _truth.PdbName)));
        using var memory = Raw();
        using var windows = WindowsSupport.OpenWindows(memory, out _, ("symbols", $"srv*{_cache}*{server.Url}"));
        Assert.Multiple(() =>
        {
            Assert.That(server.RequestsFor(route), Is.EqualTo(1));
            Assert.That(File.Exists(Path.Combine(_cache, _truth.PdbName, StoreId, _truth.PdbName)), Is.True, "kept in the cache");
            Assert.That(File.Exists(pdbPath), Is.True);
            Assert.That(windows.Info.Properties["offsets_source"], Does.StartWith("PDB"));
            Assert.That(windows.Info.Properties["bootstrap"], Does.Contain(server.Url));
            Assert.That(Listed(windows), Is.EqualTo(Expected()));
        });
    }

    [Test]
    public void With_the_symbol_server_down_the_built_in_layout_gives_the_same_processes()
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        using var memory = Raw();
        using var windows = WindowsSupport.OpenWindows(memory, out _, ("symbols", $"srv*{_cache}*http://127.0.0.1:{port}"));
        Assert.Multiple(() =>
        {
            Assert.That(windows.Info.Properties["pdb"], Is.EqualTo("none"));
            Assert.That(windows.Info.Properties["offsets_source"], Does.StartWith("built-in layout"));
            Assert.That(windows.Info.Properties["bootstrap"], Does.Contain("pdb: not found"));
            Assert.That(Listed(windows), Is.EqualTo(Expected()));
            Assert.That(windows.TryGetFieldOffset("_EPROCESS", "UniqueProcessId", out _), Is.False, "no types without the PDB");
            Assert.That(windows.TryGetSymbolAddress("PsInitialSystemProcess", out _), Is.True, "exports still name symbols");
        });
    }

    [Test]
    public void Offline_without_a_cached_pdb_the_built_in_layout_gives_the_same_processes_modules_and_vads()
    {
        using var memory = Raw();
        using var withPdb = WindowsSupport.OpenWithPdb(memory, out _);
        using var windows = WindowsSupport.OpenWindows(memory, out _, ("symbols", _cache), ("offline", "on"));
        Assert.That(windows.Info.Properties["offsets_source"], Does.StartWith("built-in layout"));
        Assert.That(Listed(windows), Is.EqualTo(Expected()));
        // Without the PDB's PsLoadedModuleList (Wine's kernel does not export it), the KDBG block in the kernel's data
        // gives it; on 32-bit kernels its pointers are sign-extended.
        Assert.That(windows.Info.Properties["bootstrap"], Does.Contain("module list: using the KDBG block"));
        Assert.That(windows.GetKernelModules(), Is.EqualTo(_truth.KernelModules.Select(m => new ModuleInfo(m.Name, m.Path, m.Base, m.Size))));
        Assert.Multiple(() =>
        {
            foreach (var process in withPdb.GetProcesses())
            {
                var same = windows.GetProcesses().Single(p => p.KernelObject == process.KernelObject);
                Assert.That(same, Is.EqualTo(process), $"pid {process.Pid}");
                Assert.That(windows.GetVads(same), Is.EqualTo(withPdb.GetVads(process)), $"pid {process.Pid}");
                Assert.That(windows.GetModules(same), Is.EqualTo(withPdb.GetModules(process)), $"pid {process.Pid}");
            }
        });
    }

    [Test]
    public void The_heuristic_locator_finds_the_offsets_from_the_system_process()
    {
        using var memory = Raw();
        using var windows = WindowsSupport.OpenWindows(memory, out _, ("offsets", "heuristic"));
        var offsets = windows.Kernel.Offsets;
        Assert.Multiple(() =>
        {
            Assert.That(windows.Info.Properties["offsets_source"], Does.StartWith("heuristic locator"));
            Assert.That(windows.Info.Properties["bootstrap"], Does.Contain("heuristic: UniqueProcessId"));
            Assert.That(offsets.UniqueProcessId, Is.EqualTo(_truth.EprocessOffsets["UniqueProcessId"]));
            Assert.That(offsets.ActiveProcessLinks, Is.EqualTo(_truth.EprocessOffsets["ActiveProcessLinks"]));
            Assert.That(offsets.ImageFileName, Is.EqualTo(_truth.EprocessOffsets["ImageFileName"]));
            Assert.That(offsets.DirectoryTableBase, Is.EqualTo(_truth.EprocessOffsets["DirectoryTableBase"]));
            Assert.That(offsets.InheritedFromUniqueProcessId, Is.EqualTo(_truth.EprocessOffsets["InheritedFromUniqueProcessId"]));
            Assert.That(offsets.Peb, Is.EqualTo(_truth.EprocessOffsets["Peb"]));
            Assert.That(offsets.CreateTime, Is.EqualTo(_truth.EprocessOffsets["CreateTime"]));
            Assert.That(Listed(windows), Is.EqualTo(Expected()));
            foreach (var truth in _truth.Processes)
            {
                var process = windows.GetProcesses().Single(p => p.KernelObject == truth.Eprocess);
                var vads = windows.GetVads(process).Select(v => new TruthVad(v.Start, v.End, (int)v.Protection, v.Private, v.File));
                Assert.That(vads, Is.EqualTo(truth.Vads), $"pid {truth.Pid}: VADs with the fields of the nearest agreeing layout");
            }
        });
    }

    [Test]
    public void Forced_to_the_pdb_without_one_the_layer_says_what_it_tried()
    {
        using var memory = Raw();
        Assert.That(() => WindowsSupport.OpenWindows(memory, out _, ("offsets", "pdb"), ("symbols", _cache), ("offline", "on")),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains("no structure offsets").And.Message.Contains("offsets=pdb")
                .And.Message.Contains("pdb: not found"));
    }
}
