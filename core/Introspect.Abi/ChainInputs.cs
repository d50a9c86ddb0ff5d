namespace Introspect.Abi;

/// <summary>
/// A capability of a connector factory: it opens a connector over the operating system found by the chain's
/// previous step (memflow's <c>accept_input</c>), such as a virtual machine whose RAM is a process's memory.
/// </summary>
/// <remarks>
/// In <c>coredump:path=host.elf -&gt; linux -&gt; qemu:name=guest1 -&gt; linux</c>, the <c>qemu</c> step is such a
/// connector: the host passes it the first <c>linux</c> layer. A factory that lacks this interface can only start a
/// chain, and the host says so when a chain puts it after an OS step. The input stays open until the connector is
/// disposed; the connector must not dispose it.
/// </remarks>
public interface IConnectorOverOsFactory
{
    /// <summary>Opens the connector over <paramref name="input"/>.</summary>
    /// <exception cref="InvalidDataException">What the connector looks for is not in the OS; the message says what was tried.</exception>
    /// <exception cref="PluginArgumentException">An argument is valid by type but unusable (no such process).</exception>
    IPhysicalMemory Create(IOperatingSystem input, PluginArguments arguments, IPluginContext context);
}

/// <summary>
/// A capability of <see cref="IPluginContext"/> given to OS layers: the translation cache (TLB) the user configured
/// for the step (<c>tlb=off</c>, <c>tlb.entries=4096</c>, <c>tlb.validity=250ms</c>, or <c>plugins.json</c>'s defaults).
/// </summary>
/// <remarks>
/// Caches are host middleware, but a layer builds its own address spaces, so the host hands it the settings and the
/// layer creates the cache (for example Introspect.Core's <c>TranslationCache</c>) from them.
/// </remarks>
public interface ITranslationCacheSettings
{
    /// <summary>Whether the layer should cache translations at all.</summary>
    bool Enabled { get; }

    /// <summary>How many translations to keep.</summary>
    int Entries { get; }

    /// <summary>How long a translation stays valid; null for as long as the layer keeps it.</summary>
    TimeSpan? MaxAge { get; }
}

/// <summary>
/// A capability of an OS layer factory: it opens an OS without a physical memory below it, such as the machine
/// Introspect runs on (<c>native</c>), so that its step can start a chain (<c>native -&gt; qemu:name=guest1 -&gt; linux</c>).
/// </summary>
/// <remarks>The layer's <see cref="IOperatingSystem.PhysicalMemory"/> is then whatever it can offer, possibly a memory that reads nothing.</remarks>
public interface IOsLayerWithoutInputFactory
{
    /// <summary>Opens the OS.</summary>
    /// <exception cref="PluginArgumentException">An argument is valid by type but unusable.</exception>
    IOperatingSystem Create(PluginArguments arguments, IPluginContext context);
}

/// <summary>
/// A capability of an <see cref="IConnectorOverOsFactory"/>: the OS layer the host opens below the connector when the
/// connector starts a chain (<c>qemu:name=guest1 -&gt; linux</c> reads through <c>native</c>).
/// </summary>
public interface IDefaultInputConnectorFactory
{
    /// <summary>The name of an OS layer that can start a chain (see <see cref="IOsLayerWithoutInputFactory"/>), opened without arguments.</summary>
    string DefaultInput { get; }
}
