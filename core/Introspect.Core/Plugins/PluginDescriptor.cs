using Introspect.Abi;

namespace Introspect.Core.Plugins;

/// <summary>A plugin as its file declares it, known without running any of its code.</summary>
/// <param name="Kind">Connector or OS layer.</param>
/// <param name="Name">The name chains use.</param>
/// <param name="Version">The plugin's own version.</param>
/// <param name="AbiVersion">The contract version it was built against.</param>
/// <param name="Description">One line saying what it does.</param>
/// <param name="Path">The file that declares it.</param>
/// <param name="EntryPoint">The managed factory's type name as the declaration wrote it.</param>
public sealed record PluginDescriptor(
    PluginKind Kind,
    string Name,
    Version Version,
    int AbiVersion,
    string Description,
    string Path,
    string EntryPoint)
{
    /// <summary>Whether this host can load it: the contract versions must match exactly.</summary>
    public bool IsCompatible => AbiVersion == IntrospectAbi.Version;

    /// <summary>The kind as users read and write it.</summary>
    public string KindName => Kind switch
    {
        PluginKind.Connector => "connector",
        PluginKind.OperatingSystem => "os",
        _ => Kind.ToString().ToLowerInvariant(),
    };
}

/// <summary>A file that looked like a plugin but could not be read as one.</summary>
/// <param name="Path">The file.</param>
/// <param name="Reason">What was wrong, for the user.</param>
public sealed record PluginProblem(string Path, string Reason);
