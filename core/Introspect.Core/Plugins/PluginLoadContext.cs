using System.Reflection;
using System.Runtime.Loader;

namespace Introspect.Core.Plugins;

/// <summary>The load context of one plugin: its own dependencies, the host's contract.</summary>
/// <remarks>
/// The contract assembly must come from the host's context, or the plugin's <c>IConnectorFactory</c> would be a
/// different type from the host's and every cast would fail; everything else the plugin ships it gets from its own
/// folder, through its <c>.deps.json</c>, so two plugins can carry different versions of the same library.
/// The context is collectible: the host unloads it once the last instance made from it is disposed, if asked to.
/// </remarks>
internal sealed class PluginLoadContext(string pluginPath) : AssemblyLoadContext($"plugin:{Path.GetFileNameWithoutExtension(pluginPath)}", isCollectible: true)
{
    private static readonly string SharedContract = typeof(Abi.IMemory).Assembly.GetName().Name!;

    private readonly AssemblyDependencyResolver _resolver = new(pluginPath);

    protected override Assembly? Load(AssemblyName assemblyName)
    {
        if (string.Equals(assemblyName.Name, SharedContract, StringComparison.Ordinal))
            return null;
        var path = _resolver.ResolveAssemblyToPath(assemblyName);
        return path is null ? null : LoadFromAssemblyPath(path);
    }

    protected override nint LoadUnmanagedDll(string unmanagedDllName)
    {
        var path = _resolver.ResolveUnmanagedDllToPath(unmanagedDllName);
        return path is null ? 0 : LoadUnmanagedDllFromPath(path);
    }
}
