using Introspect.Abi;
using Introspect.Core.Plugins;

namespace Introspect.Core.Chains;

/// <summary>A chain opened by the plugin host: what each step made, and the last physical memory and OS.</summary>
/// <remarks>Disposing closes every step, the last one first; an OS layer never disposes the memory it was given.</remarks>
public sealed class OpenedChain : IDisposable
{
    private readonly List<IDisposable> _owned;

    internal OpenedChain(ChainSpec spec, IReadOnlyList<PluginDescriptor> plugins, IPhysicalMemory physicalMemory, IOperatingSystem? operatingSystem, List<IDisposable> owned)
    {
        Spec = spec;
        Plugins = plugins;
        PhysicalMemory = physicalMemory;
        OperatingSystem = operatingSystem;
        _owned = owned;
    }

    public ChainSpec Spec { get; }

    /// <summary>The plugin behind each step, in chain order.</summary>
    public IReadOnlyList<PluginDescriptor> Plugins { get; }

    /// <summary>The physical memory the chain's last connector serves.</summary>
    public IPhysicalMemory PhysicalMemory { get; }

    /// <summary>The OS the chain ends in, or null for a chain that ends in a connector.</summary>
    public IOperatingSystem? OperatingSystem { get; }

    /// <summary>What the last connector learned about the machine.</summary>
    public ConnectorHints Hints => PhysicalMemory is IConnectorHints withHints ? withHints.Hints : ConnectorHints.None;

    /// <summary>The OS, or an error that says the chain needs one.</summary>
    public IOperatingSystem RequireOperatingSystem() =>
        OperatingSystem ?? throw new PluginException($"Chain '{Spec}' ends in a connector; this needs an OS layer at its end (for example '{Spec} -> linux').");

    public void Dispose()
    {
        for (int i = _owned.Count - 1; i >= 0; i--)
            _owned[i].Dispose();
        _owned.Clear();
    }
}
