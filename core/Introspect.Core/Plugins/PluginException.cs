namespace Introspect.Core.Plugins;

/// <summary>A plugin cannot be found, is incompatible, or failed to load; the message says which and what to do.</summary>
public sealed class PluginException : Exception
{
    public PluginException(string message) : base(message) { }

    public PluginException(string message, Exception inner) : base(message, inner) { }

    public PluginException() { }
}
