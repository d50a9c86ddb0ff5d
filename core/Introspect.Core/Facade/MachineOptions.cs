using Introspect.Core.Plugins;
using Microsoft.Extensions.Logging;

namespace Introspect.Core;

/// <summary>How <see cref="Machine.Open(string, MachineOptions?)"/> finds plugins, logs, and what it owns.</summary>
public sealed record MachineOptions
{
    /// <summary>The plugin host to open chains with; null makes one over <see cref="PluginHost.DefaultSearchPaths"/> and <see cref="PluginPaths"/>.</summary>
    public PluginHost? Host { get; init; }

    /// <summary>Extra folders to look for plugins in, when no <see cref="Host"/> is given.</summary>
    public IReadOnlyList<string> PluginPaths { get; init; } = [];

    /// <summary>
    /// The configuration that names chains (<c>@name</c>), adds plugin folders and sets the chain's caches; null reads
    /// <see cref="ConfigurationFile"/>, else <c>plugins.json</c> in the current folder, else the per-user one.
    /// </summary>
    public PluginConfiguration? Configuration { get; init; }

    /// <summary>The <c>plugins.json</c> to read when no <see cref="Configuration"/> is given.</summary>
    public string? ConfigurationFile { get; init; }

    /// <summary>
    /// Where the machine and its plugins log, filtered by the <c>verbosity</c> configuration value; null logs warnings
    /// and errors to standard error.
    /// </summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>Keep what was given open when the machine is disposed (an <see cref="Chains.OpenedChain"/>, or layers built by the caller); a chain the machine opened itself is always closed with it.</summary>
    public bool LeaveOpen { get; init; }
}
