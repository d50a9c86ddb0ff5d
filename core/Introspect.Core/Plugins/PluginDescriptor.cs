using Introspect.Abi;

namespace Introspect.Core.Plugins;

/// <summary>How a plugin's code is built: a .NET assembly or a native library.</summary>
public enum PluginFormat
{
    /// <summary>A .NET assembly declaring itself with <see cref="IntrospectPluginAttribute"/>.</summary>
    Managed,
    /// <summary>A shared library exporting an <c>ip_plugin_descriptor</c> (plugins/abi/introspect_plugin.h).</summary>
    Native,
}

/// <summary>A plugin as its file declares it, known without running any of its code.</summary>
/// <param name="Kind">Connector or OS layer.</param>
/// <param name="Name">The name chains use.</param>
/// <param name="Version">The plugin's own version.</param>
/// <param name="AbiVersion">The contract version it was built against.</param>
/// <param name="Description">One line saying what it does.</param>
/// <param name="Path">The file that declares it.</param>
/// <param name="EntryPoint">The managed factory's type name as the declaration wrote it, or the native descriptor's symbol.</param>
public sealed record PluginDescriptor(
    PluginKind Kind,
    string Name,
    Version Version,
    int AbiVersion,
    string Description,
    string Path,
    string EntryPoint)
{
    public PluginFormat Format { get; init; } = PluginFormat.Managed;

    /// <summary>The arguments a native plugin declares in its descriptor; null for a managed one, whose factory says so once loaded.</summary>
    public IReadOnlyList<PluginParameter>? DeclaredParameters { get; init; }

    /// <summary>A native plugin's help text (empty when it has none).</summary>
    public string Help { get; init; } = "";

    /// <summary>For a native connector: whether it can start a chain and whether it can follow an OS step; null when only loading tells.</summary>
    public (bool StartsChain, bool FollowsOs)? ConnectorInputs { get; init; }

    /// <summary>Why this host cannot load the file whatever its ABI (built for another machine or OS), or null.</summary>
    public string? PlatformProblem { get; init; }

    /// <summary>The install record beside the file, when the plugin was installed with <c>introspect plugins install</c>.</summary>
    public InstalledPlugin? Installation { get; init; }

    /// <summary>Whether this host can load it: the contract versions match and the file is for this machine.</summary>
    public bool IsCompatible => AbiVersion == IntrospectAbi.Version && PlatformProblem is null;

    /// <summary>Why it cannot be loaded, for the user; null when it can.</summary>
    public string? Incompatibility => PlatformProblem is not null
        ? PlatformProblem
        : AbiVersion != IntrospectAbi.Version
            ? $"it was built for plugin ABI {AbiVersion}; this host speaks ABI {IntrospectAbi.Version}"
            : null;

    /// <summary>The kind as users read and write it.</summary>
    public string KindName => Kind switch
    {
        PluginKind.Connector => "connector",
        PluginKind.OperatingSystem => "os",
        _ => Kind.ToString().ToLowerInvariant(),
    };

    /// <summary>The kind in a sentence.</summary>
    internal string KindText => Kind == PluginKind.Connector ? "connector" : "OS layer";

    /// <summary><c>name version</c>, as messages name a plugin.</summary>
    public override string ToString() => $"{Name} {Version}";
}

/// <summary>A file that looked like a plugin but could not be read as one.</summary>
/// <param name="Path">The file.</param>
/// <param name="Reason">What was wrong, for the user.</param>
public sealed record PluginProblem(string Path, string Reason);
