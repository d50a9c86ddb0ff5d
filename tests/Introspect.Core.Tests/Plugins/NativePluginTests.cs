using System.Collections.Concurrent;
using Introspect.Abi;
using Introspect.Core.Caching;
using Introspect.Core.Chains;
using Introspect.Core.Plugins;
using Introspect.TestSupport;
using Introspect.Tests.Plugins;
using Microsoft.Extensions.Logging;

namespace Introspect.Core.Tests.Plugins;

/// <summary>The C sample inside real chains: alone, under and over managed layers, and against the coredump connector on the same image.</summary>
public class NativePluginTests
{
    private const ulong Banner = 0x2161900; // "Linux version " in the shared Debian guest's RAM
    private static string BuiltIn => Path.Combine(AppContext.BaseDirectory, "plugins");

    private static string Raw => TestInputs.LinuxRawImage;

    private string _scratch = null!;
    private string _natives = null!;
    private CapturingLogger _log = null!;

    [SetUp]
    public void CreateScratch()
    {
        _scratch = SamplePlugins.Scratch("native");
        _natives = Path.Combine(_scratch, "plugins");
        Directory.CreateDirectory(_natives);
        File.Copy(SamplePlugins.NativeLibrary, Path.Combine(_natives, "libintrospect_native_sample.so"));
        _log = new CapturingLogger();
    }

    [TearDown]
    public void DisposeLog() => _log.Dispose();

    private PluginHost Host(PluginHostOptions? options = null, params string[] more) =>
        new(PluginCatalog.Scan([_natives, BuiltIn, .. more]), _log, options);

    private static byte[] Read(IMemory memory, ulong address, int length, MemoryFlags flags = MemoryFlags.None)
    {
        var buffer = new byte[length];
        Span<MemoryRequest> batch = [new MemoryRequest(address, buffer)];
        memory.Read(batch, flags);
        Assert.That(batch[0].Succeeded, $"read of {length} bytes at 0x{address:x}");
        return buffer;
    }

    private static bool TryRead(IMemory memory, ulong address, int length)
    {
        Span<MemoryRequest> batch = [new MemoryRequest(address, new byte[length])];
        memory.Read(batch);
        return batch[0].Succeeded;
    }

    [Test]
    public void The_native_connector_serves_every_byte_the_coredump_connector_serves_from_the_same_image()
    {
        var host = Host();
        using var native = host.Open(ChainSpec.Parse($"native-sample:\"{Raw}\""));
        using var managed = host.Open(ChainSpec.Parse($"coredump:\"{Raw}\""));

        Assert.That(native.Plugins[0].Format, Is.EqualTo(PluginFormat.Native));
        Assert.That(native.PhysicalMemory.Metadata with { IdealBatchSize = 0 }, Is.EqualTo(managed.PhysicalMemory.Metadata with { IdealBatchSize = 0 }));
        Assert.That(native.PhysicalMemory.MemoryMap.ToString(), Is.EqualTo(managed.PhysicalMemory.MemoryMap.ToString()));
        Assert.That(native.Hints.Format, Is.EqualTo("raw"));

        const int Chunk = 1 << 20;
        var ours = new byte[Chunk];
        var theirs = new byte[Chunk];
        for (ulong address = 0; address < native.PhysicalMemory.Metadata.RealSize; address += Chunk)
        {
            Span<MemoryRequest> a = [new MemoryRequest(address, ours)];
            Span<MemoryRequest> b = [new MemoryRequest(address, theirs)];
            native.PhysicalMemory.Read(a);
            managed.PhysicalMemory.Read(b);
            Assert.That(a[0].Succeeded && b[0].Succeeded, $"0x{address:x}");
            Assert.That(ours.AsSpan().SequenceEqual(theirs), $"the MiB at 0x{address:x}");
        }
    }

    [Test]
    public void A_scatter_batch_sets_each_entry_on_its_own_and_zero_pads_when_asked()
    {
        var host = Host();
        using var chain = host.Open(ChainSpec.Parse($"native-sample:\"{Raw}\""));
        var memory = chain.PhysicalMemory;
        var shared = new byte[3 * 4096];
        var requests = new[]
        {
            new MemoryRequest(Banner, shared.AsMemory(0, 14)),
            new MemoryRequest(0x8000000 - 8, shared.AsMemory(4096, 16)),   // runs past the end of RAM
            new MemoryRequest(0x10000000, shared.AsMemory(8192, 4096)),    // not mapped at all
            new MemoryRequest(0x1000, Memory<byte>.Empty),
        };

        memory.Read(requests);

        Assert.That(requests.Select(r => r.Succeeded), Is.EqualTo(new[] { true, false, false, true }));
        Assert.That(System.Text.Encoding.ASCII.GetString(shared, 0, 14), Is.EqualTo("Linux version "));
        shared.AsSpan(4096 + 8, 8).Fill(0xcc);

        memory.Read(requests.AsSpan(1, 1), MemoryFlags.ZeroPadOnFail);

        Assert.That(requests[1].Succeeded);
        Assert.That(shared.AsSpan(4096 + 8, 8).ToArray(), Is.All.Zero);
    }

    [Test]
    public void A_map_file_remaps_the_file_and_set_memory_map_replaces_it()
    {
        var map = Path.Combine(_scratch, "guest.map");
        File.WriteAllText(map, "# low page shows the banner's page, 1 MiB at 1 MiB shows the start of the file\n0x0 0xfff 0x2161000\n0x100000-0x1fffff 0\n");
        var host = Host();
        using var chain = host.Open(ChainSpec.Parse($"native-sample:\"{Raw}\",map=\"{map}\""));
        var memory = chain.PhysicalMemory;

        Assert.That(memory.MemoryMap.ToString(), Is.EqualTo("0x0 0xfff 0x2161000\n0x100000 0x1fffff 0x0\n"));
        Assert.That(memory.Metadata.MaxAddress, Is.EqualTo(0x1fffffUL));
        Assert.That(memory.Metadata.RealSize, Is.EqualTo(0x101000UL));
        Assert.That(Read(memory, 0x900, 14), Is.EqualTo("Linux version "u8.ToArray()));
        Assert.That(Read(memory, 0x100000, 64), Is.EqualTo(File.ReadAllBytes(Raw).AsSpan(0, 64).ToArray()));
        Assert.That(TryRead(memory, 0x1000, 16), Is.False);

        memory.SetMemoryMap(new MemoryMap([new MemoryRange(0x5000, 0x1000, Banner & ~0xfffUL)]));

        Assert.That(memory.MemoryMap.Count, Is.EqualTo(1));
        Assert.That(memory.Metadata.MaxAddress, Is.EqualTo(0x5fffUL));
        Assert.That(Read(memory, 0x5900, 14), Is.EqualTo("Linux version "u8.ToArray()));
        Assert.That(TryRead(memory, 0x900, 14), Is.False);
    }

    [Test]
    public void Errors_of_the_c_code_come_back_as_the_contract_s_exceptions_with_its_message()
    {
        var badMap = Path.Combine(_scratch, "bad.map");
        File.WriteAllText(badMap, "0x0 0xfff\n0x2000 0x1000\n");
        var overlap = Path.Combine(_scratch, "overlap.map");
        File.WriteAllText(overlap, "0x0 0x1fff\n0x1000 0x2fff\n");
        var host = Host();

        Assert.That(() => host.Open(ChainSpec.Parse($"native-sample:path=/nonexistent/guest.raw")),
            Throws.TypeOf<PluginArgumentException>().With.Message.EqualTo("native-sample: the file 'path=/nonexistent/guest.raw' cannot be opened: No such file or directory"));
        Assert.That(() => host.Open(ChainSpec.Parse($"native-sample:map=\"{badMap}\"")),
            Throws.TypeOf<PluginArgumentException>().With.Message.Contains("the argument 'path' is required"));
        Assert.That(() => host.Open(ChainSpec.Parse($"native-sample:\"{Raw}\",map=\"{badMap}\"")),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains($"map file {badMap}, line 2: expected 'base last [backing]'"));
        Assert.That(() => host.Open(ChainSpec.Parse($"native-sample:\"{Raw}\",map=\"{overlap}\"")),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains("ranges at 0x0 and 0x1000 overlap"));
        Assert.That(() => host.Open(ChainSpec.Parse($"native-sample:\"{Raw}\",pid=1")),
            Throws.TypeOf<PluginArgumentException>().With.Message.Contains("'pid' needs an OS step before this connector"));
        Assert.That(() => host.Open(ChainSpec.Parse($"native-sample:\"{Raw}\",speed=3")),
            Throws.TypeOf<PluginArgumentException>().With.Message.Contains("unknown argument 'speed'. Accepted: path, map, write, pid, batch"));
        Assert.That(() => host.Open(ChainSpec.Parse($"native-sample:\"{Raw}\",batch=lots")),
            Throws.TypeOf<PluginArgumentException>().With.Message.Contains("'batch=lots' is not a number"));
    }

    [Test]
    public void Writes_go_through_to_the_file_when_asked_for_and_are_refused_otherwise()
    {
        var copy = Path.Combine(_scratch, "copy.raw");
        using (var source = File.OpenRead(Raw))
        using (var target = File.Create(copy))
        {
            var head = new byte[1 << 20];
            source.ReadExactly(head);
            target.Write(head);
        }
        var host = Host();
        using (var readOnly = host.Open(ChainSpec.Parse($"native-sample:\"{copy}\"")))
        {
            Assert.That(readOnly.PhysicalMemory.Metadata.ReadOnly);
            Assert.That(() => readOnly.PhysicalMemory.Write([new MemoryRequest(0, new byte[4])]), Throws.TypeOf<NotSupportedException>().With.Message.Contains("read-only"));
        }
        using (var writable = host.Open(ChainSpec.Parse($"native-sample:\"{copy}\",write=on")))
        {
            var requests = new[] { new MemoryRequest(0x10, "introspect"u8.ToArray()), new MemoryRequest(0x7fffffff, new byte[2]) };
            writable.PhysicalMemory.Write(requests);
            Assert.That(requests.Select(r => r.Succeeded), Is.EqualTo(new[] { true, false }));
        }
        Assert.That(File.ReadAllBytes(copy).AsSpan(0x10, 10).ToArray(), Is.EqualTo("introspect"u8.ToArray()));
    }

    [Test]
    public void A_native_os_layer_reads_a_managed_connector_through_an_exported_vtable()
    {
        var host = Host();
        using var chain = host.Open(ChainSpec.Parse($"coredump:\"{Raw}\" -> native-sample-os:name=ram,tlb.entries=512"));
        var os = chain.RequireOperatingSystem();

        Assert.That(os.Info.Name, Is.EqualTo("flat"));
        Assert.That(os.Info.Version, Does.StartWith("native-sample-os 1.0.0"));
        Assert.That(os.PhysicalMemory, Is.SameAs(chain.PhysicalMemory));
        var process = os.GetProcesses().Single();
        Assert.That((process.Pid, process.Name, process.State, process.StateText), Is.EqualTo((1UL, "ram", ProcessState.Running, "R")));
        var detailed = os.GetProcess(1)!;
        Assert.That(detailed.Path, Is.EqualTo("[physical memory]"));
        Assert.That(detailed.CommandLine, Is.EqualTo("ram"));
        Assert.That(os.GetProcess(2), Is.Null);
        Assert.That(os.GetMemoryAreas(process).Select(a => (a.Start, a.End, a.Permissions, a.Path)), Is.EqualTo(new[] { (0UL, 0x8000000UL, "rw-p", "[physical]") }));
        Assert.That(os.GetModules(process), Is.Empty);
        Assert.That(os.GetKernelModules(), Is.Empty);
        var memory = os.OpenProcessMemory(process);
        Assert.That(Read(memory, Banner, 14), Is.EqualTo("Linux version "u8.ToArray()));
        Assert.That(memory.TryTranslate(Banner, out var physical) && physical == Banner);
        Assert.That(memory.TryTranslate(0x9000000, out _), Is.False);
        Assert.That(TryRead(memory, 0x9000000, 8), Is.False);
        Assert.That(_log.Messages, Has.Some.Contains("native-sample-os: one process 1 'ram' over the input's physical memory (a TLB would hold 512 entries"));
    }

    [Test]
    public void A_managed_os_layer_reads_the_native_connector()
    {
        var host = Host(null, SamplePlugins.ManagedFolder);
        using var chain = host.Open(ChainSpec.Parse($"native-sample:\"{Raw}\",cache=auto -> managed-sample-os:tlb=off"));
        var os = chain.RequireOperatingSystem();
        var memory = os.OpenProcessMemory(os.GetProcesses().Single());

        Assert.That(Read(memory, Banner, 14), Is.EqualTo("Linux version "u8.ToArray()));
        Assert.That(chain.PhysicalMemory, Is.TypeOf<PageCache>(), "with cache=auto an OS layer from another file reads the connector through the page cache");
        Assert.That(_log.Messages, Has.Some.Contains("managed-sample-os: a TLB would hold 0 entries"));
    }

    [Test]
    public void A_native_connector_sits_between_two_managed_layers()
    {
        var map = Path.Combine(_scratch, "guest.map");
        File.WriteAllText(map, "0 0xfff 0x2161000\n");
        var host = Host(null, SamplePlugins.ManagedFolder);

        using var chain = host.Open(ChainSpec.Parse($"coredump:\"{Raw}\" -> managed-sample-os -> native-sample:pid=1,map=\"{map}\" -> managed-sample-os:name=guest"));

        Assert.That(chain.Plugins.Select(p => (p.Name, p.Format)), Is.EqualTo(new[]
        {
            ("coredump", PluginFormat.Managed), ("managed-sample-os", PluginFormat.Managed), ("native-sample", PluginFormat.Native), ("managed-sample-os", PluginFormat.Managed),
        }));
        var guest = chain.RequireOperatingSystem();
        Assert.That(guest.GetProcesses().Single().Name, Is.EqualTo("guest"));
        Assert.That(guest.PhysicalMemory.MemoryMap.ToString(), Is.EqualTo("0x0 0xfff 0x2161000\n"));
        Assert.That(chain.Hints.Format, Is.EqualTo("process"));
        Assert.That(Read(guest.OpenProcessMemory(guest.GetProcesses()[0]), 0x900, 14), Is.EqualTo("Linux version "u8.ToArray()));
    }

    [Test]
    public void A_managed_connector_sits_between_two_native_layers()
    {
        var layout = Path.Combine(_scratch, "layout.json");
        File.WriteAllText(layout, """{ "ranges": [ { "base": "0x0", "size": "0x1000", "backing": "0x2161000" }, { "base": "0x10000", "size": "4096" } ] }""");
        var host = Host(null, SamplePlugins.ManagedFolder);

        using var chain = host.Open(ChainSpec.Parse($"native-sample:\"{Raw}\" -> native-sample-os -> managed-sample:pid=1,layout=\"{layout}\" -> native-sample-os"));

        var guest = chain.RequireOperatingSystem();
        var memory = guest.OpenProcessMemory(guest.GetProcesses().Single());
        Assert.That(Read(memory, 0x900, 14), Is.EqualTo("Linux version "u8.ToArray()));
        Assert.That(Read(memory, 0x10000, 16), Is.EqualTo(File.ReadAllBytes(Raw).AsSpan(0x10000, 16).ToArray()));
        Assert.That(TryRead(memory, 0x2000, 4), Is.False);
    }

    [Test]
    public void A_native_connector_after_an_os_without_its_process_says_which_pid()
    {
        var host = Host(null, SamplePlugins.ManagedFolder);

        Assert.That(() => host.Open(ChainSpec.Parse($"coredump:\"{Raw}\" -> managed-sample-os -> native-sample:pid=7")),
            Throws.TypeOf<PluginArgumentException>().With.Message.Contains("the input OS lists no memory areas for pid 7: no process 7"));
        Assert.That(() => host.Open(ChainSpec.Parse($"coredump:\"{Raw}\" -> managed-sample-os -> native-sample")),
            Throws.TypeOf<PluginArgumentException>().With.Message.Contains("after an OS step the argument 'pid' is required"));
    }

    [Test]
    public void The_library_is_unmapped_once_its_last_instance_is_destroyed()
    {
        var host = Host(new PluginHostOptions { UnloadWhenUnused = true });
        var library = Path.Combine(_natives, "libintrospect_native_sample.so");

        using (var chain = host.Open(ChainSpec.Parse($"native-sample:\"{Raw}\" -> native-sample-os")))
        {
            Assert.That(host.LoadedCount, Is.EqualTo(1));
            Assert.That(File.ReadAllText("/proc/self/maps"), Does.Contain(library));
        }

        Assert.That(host.LoadedCount, Is.Zero);
        Assert.That(File.ReadAllText("/proc/self/maps"), Does.Not.Contain(library));
    }

    [Test]
    public void Parameters_of_a_native_plugin_are_known_without_loading_it()
    {
        var host = Host();
        var descriptor = host.Resolve("native-sample");

        var parameters = host.GetParameters(descriptor);

        Assert.That(parameters.Select(p => p.Name), Is.EqualTo(new[] { "path", "map", "write", "pid", "batch" }));
        Assert.That(host.LoadedCount, Is.Zero);
    }

    /// <summary>Collects every message every logger writes.</summary>
    private sealed class CapturingLogger : ILoggerFactory, ILogger
    {
        private readonly ConcurrentQueue<string> _messages = new();

        public IReadOnlyCollection<string> Messages => _messages;

        public ILogger CreateLogger(string categoryName) => this;

        public void AddProvider(ILoggerProvider provider) { }

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            _messages.Enqueue(formatter(state, exception));

        public void Dispose() { }
    }
}
