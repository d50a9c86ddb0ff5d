using Introspect.Abi;
using Introspect.TestSupport;
using Moq;

namespace Introspect.Connectors.LeechCore.Tests;

/// <summary>
/// The hyperv connector: Hyper-V's names mapped to LeechCore's hvsavedstate and hvmm device strings, checked by what
/// the test library receives; the refusal on hosts without Hyper-V. Reading a real Hyper-V guest needs Windows.
/// </summary>
public class HyperVTests : LeechCoreTest
{
    /// <summary>The connector as it behaves on a Windows host, so the mapping runs here.</summary>
    private static readonly HyperVConnectorFactory OnWindows = new() { HostHasHyperV = () => true };

    private static IPhysicalMemory Open(HyperVConnectorFactory factory, params (string Key, string Value)[] arguments)
    {
        var values = new Dictionary<string, string> { ["library"] = FakeLeechCore.LibraryPath };
        foreach (var (key, value) in arguments)
            values[key] = value;
        return factory.Create(new PluginArguments("hyperv", values), Mock.Of<IPluginContext>());
    }

    [Test]
    public void The_hyperv_parameters()
    {
        Assert.That(new HyperVConnectorFactory().Parameters.Select(p => p.Name),
            Is.EqualTo(new[] { "vmrs", "vm", "id", "guest", "access", "remote", "library", "memmap", "max-address", "batch-size", "verbosity" }));
    }

    [Test]
    public void On_a_host_without_Hyper_V_the_connector_refuses_and_says_what_would_work()
    {
        var here = new HyperVConnectorFactory { HostHasHyperV = () => false };
        Assert.That(() => Open(here, ("vm", "web01")),
            Throws.TypeOf<PlatformNotSupportedException>()
                .With.Message.Contains("only on Windows with Hyper-V")
                .And.Message.Contains("remote=")
                .And.Message.Contains("coredump"));
        Assert.That(FakeLeechCore.GetStats().CreateCalls, Is.Zero, "LeechCore is not even asked");
    }

    [Test]
    public void The_real_factory_on_this_Linux_host_refuses_the_same_way()
    {
        Assume.That(OperatingSystem.IsWindows(), Is.False);
        Assert.That(() => Open(new HyperVConnectorFactory(), ("id", "0")), Throws.TypeOf<PlatformNotSupportedException>());
    }

    [Test]
    public void A_saved_state_is_LeechCores_hvsavedstate_device()
    {
        using var folder = new TempFolder();
        string vmrs = folder.Write("guest.vmrs", new byte[4096]);
        Assert.That(() => Open(OnWindows, ("vmrs", vmrs)), Throws.TypeOf<IOException>().With.Message.Contains($"could not open device 'hvsavedstate://{vmrs}'"));
        Assert.That(FakeLeechCore.GetLastCreate().Device, Is.EqualTo("hvsavedstate://" + vmrs));
        Assert.That(() => Open(OnWindows, ("vmrs", folder.File("missing.vmrs"))),
            Throws.TypeOf<PluginArgumentException>().With.Message.Contains("missing.vmrs names no file"));
    }

    [TestCase("0", "windows", "default", "hvmm://id=0")]
    [TestCase("3", "linux", "default", "hvmm://id=3,unix")]
    [TestCase("2", "windows", "winhv", "hvmm://id=2,m=0")]
    [TestCase("0x1", "linux", "raw", "hvmm://id=1,unix,m=1")]
    public void A_running_VM_by_number_is_LiveCloudKds_hvmm_device(string id, string guest, string access, string device)
    {
        Assert.That(() => Open(OnWindows, ("id", id), ("guest", guest), ("access", access)), Throws.TypeOf<IOException>());
        Assert.That(FakeLeechCore.GetLastCreate().Device, Is.EqualTo(device));
    }

    [Test]
    public void A_running_VM_by_name_is_found_in_LiveCloudKds_list_and_read()
    {
        FakeLeechCore.SetVmList("web01\nDebian Guest\nbuild");
        FakeLeechCore.Alias("hvmm://id=1,unix", TestInputs.LinuxRawImage);
        using var memory = Open(OnWindows, ("vm", "debian guest"), ("guest", "linux"));
        Assert.That(FakeLeechCore.Log, Does.Contain("device='hvmm://listvm'"));
        Assert.That(FakeLeechCore.GetLastCreate().Device, Is.EqualTo("hvmm://id=1,unix"));
        Assert.That(Support.Read(memory, 0x2161900, 64), Is.EqualTo(Support.Expected(0x2161900, 64)));
        Assert.That(Support.HintsOf(memory).Format, Is.EqualTo("hyperv/file"));
        Assert.That(memory.Metadata.IdealBatchSize, Is.EqualTo(1024));
    }

    [Test]
    public void A_name_not_in_the_list_is_refused_with_the_list()
    {
        FakeLeechCore.SetVmList("web01\nbuild");
        Assert.That(() => Open(OnWindows, ("vm", "db01")),
            Throws.TypeOf<PluginArgumentException>().With.Message.Contains("no running VM is named 'db01'").And.Message.Contains("0: 'web01', 1: 'build'"));
    }

    [Test]
    public void Without_a_list_from_LiveCloudKd_the_error_asks_for_the_number()
    {
        Assert.That(() => Open(OnWindows, ("vm", "web01")),
            Throws.TypeOf<IOException>().With.Message.Contains("gave no list of running VMs").And.Message.Contains("give id=N"));
    }

    [Test]
    public void A_remote_LeechAgent_opens_the_device_on_the_Hyper_V_host_even_from_here()
    {
        var here = new HyperVConnectorFactory { HostHasHyperV = () => false };
        Assert.That(() => Open(here, ("vmrs", @"C:\VMs\guest.vmrs"), ("remote", "rpc://insecure:hyperv-host")),
            Throws.TypeOf<IOException>().With.Message.Contains("through 'rpc://insecure:hyperv-host'"));
        Assert.That(FakeLeechCore.GetLastCreate(), Has.Property("Device").EqualTo(@"hvsavedstate://C:\VMs\guest.vmrs").And.Property("Remote").EqualTo("rpc://insecure:hyperv-host"));
    }

    [Test]
    public void Exactly_one_way_of_naming_the_guest_is_accepted()
    {
        Assert.Multiple(() =>
        {
            Assert.That(() => Open(OnWindows), Throws.TypeOf<PluginArgumentException>().With.Message.Contains("none was given"));
            Assert.That(() => Open(OnWindows, ("vm", "a"), ("id", "1")), Throws.TypeOf<PluginArgumentException>().With.Message.Contains("more than one"));
            Assert.That(() => Open(OnWindows, ("vmrs", "x.vmrs"), ("guest", "linux")), Throws.TypeOf<PluginArgumentException>().With.Message.Contains("takes neither"));
            Assert.That(() => Open(OnWindows, ("id", "1"), ("access", "fast")), Throws.TypeOf<PluginArgumentException>().With.Message.Contains("access=fast"));
        });
    }
}
