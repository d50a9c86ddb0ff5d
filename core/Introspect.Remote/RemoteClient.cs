using Introspect.Abi;
using Introspect.Remote.Client;

namespace Introspect.Remote;

/// <summary>Opens what an <c>introspect serve</c> server serves: its physical memory, and the OS its chain ends in.</summary>
public static class RemoteClient
{
    /// <summary>Connects and returns the server's physical memory; disposing it closes the connection.</summary>
    /// <remarks>The memory also implements <see cref="IConnectorHints"/> with the served connector's hints.</remarks>
    /// <exception cref="IOException">The server cannot be reached, refused the connection, or the TLS handshake failed; the message says which.</exception>
    /// <exception cref="UnauthorizedAccessException">The server refused the token or the client certificate.</exception>
    /// <exception cref="InvalidDataException">The server broke the protocol.</exception>
    public static IPhysicalMemory OpenPhysicalMemory(RemoteClientOptions options, IPluginContext? context = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.Host))
            throw new ArgumentException("The host to connect to is empty.", nameof(options));
        if (options.Port is < 1 or > 65535)
            throw new ArgumentException($"The port {options.Port} is not 1..65535.", nameof(options));
        var link = new RemoteLink(options, context);
        try
        {
            return new RemotePhysicalMemory(link);
        }
        catch
        {
            link.Dispose();
            throw;
        }
    }

    /// <summary>Whether <paramref name="memory"/> is a server's memory opened by <see cref="OpenPhysicalMemory"/>.</summary>
    public static bool IsRemote(IPhysicalMemory memory) => memory is RemotePhysicalMemory;

    /// <summary>The OS the server's chain ends in, over <paramref name="memory"/>'s connection; it does not own the memory.</summary>
    /// <exception cref="ArgumentException"><paramref name="memory"/> was not opened by <see cref="OpenPhysicalMemory"/>.</exception>
    /// <exception cref="InvalidDataException">The server's chain ends in a connector.</exception>
    public static IOperatingSystem OpenOperatingSystem(IPhysicalMemory memory)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (memory is not RemotePhysicalMemory remote)
            throw new ArgumentException("The memory is not a remote server's; open it with RemoteClient.OpenPhysicalMemory.", nameof(memory));
        return RemoteOperatingSystem.Open(remote);
    }
}
