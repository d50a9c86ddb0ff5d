using Introspect.Abi;
using Introspect.Os.Native;

[assembly: IntrospectPlugin(PluginKind.OperatingSystem, "native", "1.0.0", IntrospectAbi.Version, typeof(NativeOsFactory),
    Description = "The Linux machine Introspect runs on: processes, maps and modules from /proc, process memory through process_vm_readv; starts a chain (native -> qemu:name=vm -> linux).")]

namespace Introspect.Os.Native;

/// <summary>Opens the local machine as an OS: the <c>native</c> OS layer, which starts a chain instead of reading a connector.</summary>
/// <remarks>
/// Arguments: <c>write=on</c> lets process memory be written through <c>process_vm_writev</c> (off by default);
/// <c>proc=DIR</c> reads another procfs mount (a container's). Reading another process needs the right to ptrace it
/// (same user, and Yama's <c>ptrace_scope</c> permitting); what cannot be read fails per entry.
/// </remarks>
public sealed class NativeOsFactory : IOsLayerFactory, IOsLayerWithoutInputFactory
{
    /// <inheritdoc />
    public IReadOnlyList<PluginParameter> Parameters { get; } =
    [
        new PluginParameter("write", PluginParameterType.Boolean, "Allow writing process memory (process_vm_writev).") { DefaultValue = "off" },
        new PluginParameter("proc", PluginParameterType.Path, "The procfs mount to read.") { DefaultValue = "/proc" },
    ];

    /// <summary>Refuses: this layer reads the machine it runs on, not a connector's memory.</summary>
    public IOperatingSystem Create(IPhysicalMemory input, PluginArguments arguments, IPluginContext context) =>
        throw new InvalidDataException($"{arguments?.PluginName ?? "native"}: the native OS layer is the machine Introspect runs on and reads no connector's memory; put it first in the chain (native -> qemu:name=NAME -> linux).");

    /// <inheritdoc />
    public IOperatingSystem Create(PluginArguments arguments, IPluginContext context)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        ArgumentNullException.ThrowIfNull(context);
        if (!OperatingSystem.IsLinux())
            throw new PluginArgumentException($"{arguments.PluginName}: the native OS layer reads Linux's /proc and process_vm_readv; this machine runs {System.Runtime.InteropServices.RuntimeInformation.OSDescription}.");
        var root = arguments.GetString("proc") ?? "/proc";
        if (!File.Exists(Path.Combine(root, "self", "stat")))
            throw new PluginArgumentException($"{arguments.PluginName}: the argument 'proc={root}' names no procfs mount (no self/stat in it).");
        bool write = arguments.GetBoolean("write") ?? false;
        context.Log(PluginLogLevel.Debug, $"native: processes from {root}, memory through process_vm_readv{(write ? ", writes allowed" : "")}.");
        return new NativeOperatingSystem(new ProcFs(root), write);
    }
}
