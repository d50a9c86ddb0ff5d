using Introspect.Abi;
using Introspect.Connectors.LeechCore;

[assembly: IntrospectPlugin(PluginKind.Connector, "leechcore", "1.0.0", IntrospectAbi.Version, typeof(LeechCoreConnectorFactory),
    Description = "Physical memory through LeechCore: PCIe DMA boards (fpga, usb3380), memory dump files, QEMU, VMware, Hyper-V, pmem drivers and LeechAgent remotes; LeechCore's device strings as they are.")]
[assembly: IntrospectPlugin(PluginKind.Connector, "hyperv", "1.0.0", IntrospectAbi.Version, typeof(HyperVConnectorFactory),
    Description = "Hyper-V guests through LeechCore: saved states (.vmrs, hvsavedstate) and running VMs (hvmm, LiveCloudKd) by name or id; needs Windows with Hyper-V, or a LeechAgent on one.")]

namespace Introspect.Connectors.LeechCore;

/// <summary>The <c>leechcore</c> connector: any LeechCore device, named by LeechCore's own device string.</summary>
/// <remarks>
/// <para><c>leechcore:device=fpga</c>, <c>leechcore:device=file://file=guest.raw</c>,
/// <c>leechcore:device=qemu://shm=NAME</c>, <c>leechcore:device=fpga,remote=rpc://insecure:host</c>: the device
/// string goes to LeechCore unchanged (a device string with commas goes in double quotes), so every device and
/// device parameter LeechCore knows works here, including those of plugins placed beside LeechCore.</para>
/// <para>The memory is what LeechCore serves, with LeechCore's memory map; LeechCore's memory-information options
/// (architecture, page-table root, the Windows kernel's pointers) become <see cref="IConnectorHints"/>. Writes go to
/// devices LeechCore opened writable.</para>
/// <para>Open fails with <see cref="PluginArgumentException"/> for a bad argument or a <c>library</c> that cannot be
/// loaded, with <see cref="DllNotFoundException"/> when no LeechCore is found (the message lists where it looked and
/// how to get it), with <see cref="IOException"/> carrying LeechCore's own reason when it will not open the device.</para>
/// </remarks>
public sealed class LeechCoreConnectorFactory : IConnectorFactory
{
    /// <inheritdoc />
    public IReadOnlyList<PluginParameter> Parameters { get; } =
    [
        new PluginParameter("device", PluginParameterType.String,
            "LeechCore's device string: fpga, usb3380, file://file=PATH, qemu://shm=NAME, vmware, pmem, hvmm://id=N, ... (see LeechCore's wiki).")
        {
            Required = true,
        },
        .. ConnectorOptions.Shared,
    ];

    /// <inheritdoc />
    public IPhysicalMemory Create(PluginArguments arguments, IPluginContext context)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        ArgumentNullException.ThrowIfNull(context);
        ConnectorOptions.CheckKeys(arguments, Parameters);
        string device = arguments.GetRequiredString("device");
        if (device.Trim().Length == 0)
            throw new PluginArgumentException($"{arguments.PluginName}: the argument 'device' is empty; expected a LeechCore device string such as fpga or file://file=PATH.");
        // Arguments are checked before LeechCore is looked for: a typo should not be reported as a missing library.
        ConnectorOptions.PrintfVerbosity(arguments);
        var library = ConnectorOptions.LoadLibrary(arguments);
        return ConnectorOptions.Open(library, device, arguments, context);
    }
}
