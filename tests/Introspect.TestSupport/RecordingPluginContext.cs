using Introspect.Abi;

namespace Introspect.TestSupport;

/// <summary>A plugin context that keeps every message the plugin logs, as <c>Level: message</c> lines, for tests
/// that check what a layer said about damaged input.</summary>
public sealed class RecordingPluginContext : IPluginContext
{
    /// <summary>The messages so far; a plugin may log from several threads, so read it once the plugin is done.</summary>
    public List<string> Messages { get; } = [];

    public void Log(PluginLogLevel level, string message)
    {
        lock (Messages)
            Messages.Add($"{level}: {message}");
    }
}
