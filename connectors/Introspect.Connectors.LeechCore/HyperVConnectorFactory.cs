using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Introspect.Abi;
using Introspect.Connectors.LeechCore.Native;

namespace Introspect.Connectors.LeechCore;

/// <summary>The <c>hyperv</c> connector: Hyper-V guests through LeechCore's Hyper-V devices, with Hyper-V's names.</summary>
/// <remarks>
/// <para>A saved state, <c>hyperv:vmrs=C:\VMs\guest.vmrs</c>, opens LeechCore's <c>hvsavedstate://PATH</c> device
/// (the <c>leechcore_device_hvsavedstate</c> plugin with Microsoft's <c>vmsavedstatedumpprovider.dll</c>). A running
/// guest, <c>hyperv:vm=NAME</c> or <c>hyperv:id=N</c>, opens <c>hvmm://id=N</c>, LiveCloudKd's device
/// (<c>leechcore_device_hvmm</c> with <c>hvlib.dll</c> and the <c>hvmm.sys</c> driver); a name is looked up in the
/// list LiveCloudKd gives for <c>hvmm://listvm</c>, and <c>id</c> is the number in that list. <c>guest=linux</c>
/// adds LiveCloudKd's <c>unix</c> flag, <c>access=winhv|raw</c> its <c>m=0|1</c> reading method.</para>
/// <para>These devices exist only on Windows with Hyper-V. Elsewhere the connector refuses at once, unless
/// <c>remote=</c> names a LeechAgent running on the Hyper-V host, where the device is opened.</para>
/// </remarks>
public sealed partial class HyperVConnectorFactory : IConnectorFactory
{
    private static readonly string[] GuestChoices = ["windows", "linux"];
    private static readonly string[] AccessChoices = ["default", "winhv", "raw"];

    /// <summary>Whether the host can have Hyper-V's devices; the tests replace it to reach the mapping on any host.</summary>
    internal Func<bool> HostHasHyperV { get; init; } = OperatingSystem.IsWindows;

    /// <inheritdoc />
    public IReadOnlyList<PluginParameter> Parameters { get; } =
    [
        new PluginParameter("vmrs", PluginParameterType.Path, "A saved state (.vmrs runtime state file) to read: LeechCore's hvsavedstate device."),
        new PluginParameter("vm", PluginParameterType.String, "A running VM by its Hyper-V name (as Get-VM shows it), through LiveCloudKd: LeechCore's hvmm device."),
        new PluginParameter("id", PluginParameterType.Number, "A running VM by its number in LiveCloudKd's list (hvmm://listvm), through LeechCore's hvmm device."),
        new PluginParameter("guest", PluginParameterType.Choice, "The running VM's operating system; linux sets LiveCloudKd's unix flag.")
        {
            DefaultValue = "windows",
            Choices = GuestChoices,
        },
        new PluginParameter("access", PluginParameterType.Choice, "LiveCloudKd's way of reading a running VM: its default, winhv (hypercalls, m=0) or raw (its driver, m=1).")
        {
            DefaultValue = "default",
            Choices = AccessChoices,
        },
        .. ConnectorOptions.Shared,
    ];

    /// <inheritdoc />
    public IPhysicalMemory Create(PluginArguments arguments, IPluginContext context)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        ArgumentNullException.ThrowIfNull(context);
        ConnectorOptions.CheckKeys(arguments, Parameters);
        string plugin = arguments.PluginName;
        string? vmrs = arguments.GetString("vmrs");
        string? name = arguments.GetString("vm");
        ulong? id = arguments.GetNumber("id");
        int given = (vmrs is not null ? 1 : 0) + (name is not null ? 1 : 0) + (id is not null ? 1 : 0);
        if (given != 1)
            throw new PluginArgumentException($"{plugin}: give exactly one of vmrs=FILE (a saved state), vm=NAME or id=N (a running VM); {(given == 0 ? "none was given" : "more than one was given")}.");
        bool linuxGuest = string.Equals(arguments.GetString("guest") ?? "windows", "linux", StringComparison.OrdinalIgnoreCase);
        string access = (arguments.GetString("access") ?? "default").ToLowerInvariant();
        if (!AccessChoices.Contains(access))
            throw new PluginArgumentException($"{plugin}: 'access={access}' is not one of {string.Join(", ", AccessChoices)}.");
        if (vmrs is not null && (linuxGuest || access != "default"))
            throw new PluginArgumentException($"{plugin}: guest and access choose how LiveCloudKd reads a running VM; a saved state (vmrs) takes neither.");
        uint verbosity = ConnectorOptions.PrintfVerbosity(arguments);

        string? remote = ConnectorOptions.Remote(arguments);
        if (remote is null && !HostHasHyperV())
        {
            throw new PlatformNotSupportedException(
                $"{plugin}: Hyper-V guests are read through LeechCore's hvsavedstate and hvmm devices, which exist only on Windows with Hyper-V " +
                $"(hvsavedstate needs Microsoft's vmsavedstatedumpprovider.dll, hvmm LiveCloudKd's hvlib.dll and hvmm.sys beside LeechCore); this host runs {RuntimeInformation.OSDescription}. " +
                "Give remote=rpc://<spn>:<host> to open the guest through a LeechAgent on the Hyper-V host, or read a dump of the guest with the coredump connector.");
        }

        string device;
        LeechCoreLibrary library;
        if (vmrs is not null)
        {
            // A remote path names a file on the Hyper-V host, which this host cannot check.
            if (remote is null && !File.Exists(vmrs))
                throw new PluginArgumentException($"{plugin}: vmrs={vmrs} names no file.");
            device = SavedStateDevice(remote is null ? Path.GetFullPath(vmrs) : vmrs);
            library = ConnectorOptions.LoadLibrary(arguments);
        }
        else
        {
            library = ConnectorOptions.LoadLibrary(arguments);
            ulong number = id ?? FindVm(library, plugin, name!, remote, verbosity);
            device = LiveDevice(number, linuxGuest, access);
        }
        return ConnectorOptions.Open(library, device, arguments, context);
    }

    /// <summary>The device string of a saved state: <c>hvsavedstate://</c> and the path, as the hvsavedstate plugin reads it.</summary>
    internal static string SavedStateDevice(string path) => "hvsavedstate://" + path;

    /// <summary>The device string of a running VM: LiveCloudKd's <c>hvmm://id=N[,unix][,m=M]</c>.</summary>
    internal static string LiveDevice(ulong id, bool linuxGuest, string access)
    {
        string device = string.Create(CultureInfo.InvariantCulture, $"hvmm://id={id}");
        if (linuxGuest)
            device += ",unix";
        return access switch
        {
            "winhv" => device + ",m=0",
            "raw" => device + ",m=1",
            _ => device,
        };
    }

    /// <summary>Finds a running VM's number in LiveCloudKd's list, which it hands back for <c>hvmm://listvm</c> as the
    /// error information of a device that did not open (<c>[id = N] NAME</c> lines).</summary>
    internal static ulong FindVm(LeechCoreLibrary library, string plugin, string name, string? remote, uint verbosity)
    {
        var request = new DeviceRequest("hvmm://listvm", remote, 0, verbosity);
        CreateFailure? failure;
        LeechCoreDevice? listing;
        try
        {
            listing = LeechCoreDevice.TryOpen(library, request, out failure);
        }
        catch (ArgumentException e)
        {
            throw new PluginArgumentException($"{plugin}: {e.Message}", e);
        }
        // Run locally, LiveCloudKd prints its list on the console and opens a device with no memory.
        bool printedLocally = listing is not null;
        listing?.Dispose();
        var vms = new List<(ulong Id, string Name)>();
        foreach (Match match in VmLine().Matches(failure?.UserText ?? ""))
        {
            if (ulong.TryParse(match.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var number))
                vms.Add((number, match.Groups[2].Value.Trim()));
        }
        if (vms.Count == 0)
        {
            throw new IOException(
                $"{plugin}: LiveCloudKd gave no list of running VMs to find '{name}' in " +
                (printedLocally ? "(run locally it prints the list on the console); " : $"({LeechCoreMemory.OpenFailure(plugin, library, request, failure)}); ") +
                "give id=N with the VM's number from 'hvmm://listvm' instead.");
        }
        foreach (var vm in vms)
        {
            if (string.Equals(vm.Name, name, StringComparison.OrdinalIgnoreCase))
                return vm.Id;
        }
        throw new PluginArgumentException($"{plugin}: no running VM is named '{name}'; LiveCloudKd lists {string.Join(", ", vms.Select(v => $"{v.Id}: '{v.Name}'"))}.");
    }

    [GeneratedRegex(@"^\s*\[id\s*=\s*(\d+)\]\s*(.+?)\s*$", RegexOptions.Multiline | RegexOptions.CultureInvariant)]
    private static partial Regex VmLine();
}
