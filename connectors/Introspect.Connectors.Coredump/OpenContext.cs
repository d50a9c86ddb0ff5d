using Introspect.Abi;

namespace Introspect.Connectors.Coredump;

/// <summary>What a format's parser needs besides the bytes: the file's name, the caller's choices, a log.</summary>
internal sealed class OpenContext(string path, bool allowTruncated, IPluginContext? plugin)
{
    public string Path { get; } = path;

    /// <summary>Serve the part of a truncated dump that the file holds, rather than refusing it.</summary>
    public bool AllowTruncated { get; } = allowTruncated;

    public void Log(PluginLogLevel level, string message) => plugin?.Log(level, $"coredump: {Path}: {message}");
}
