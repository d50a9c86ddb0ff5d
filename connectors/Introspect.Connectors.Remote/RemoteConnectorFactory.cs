using System.Globalization;
using Introspect.Abi;
using Introspect.Connectors.Remote;
using Introspect.Remote;

[assembly: IntrospectPlugin(PluginKind.Connector, "remote", "1.0.0", IntrospectAbi.Version, typeof(RemoteConnectorFactory),
    Description = "The physical memory an `introspect serve` server exposes, over TCP or TLS; a batch is one round trip.")]
[assembly: IntrospectPlugin(PluginKind.OperatingSystem, "remote-os", "1.0.0", IntrospectAbi.Version, typeof(RemoteOsFactory),
    Description = "The OS a served chain ends in, as the server sees it: processes, their memory by pid, areas, modules, symbols. Follows the remote connector.")]

namespace Introspect.Connectors.Remote;

/// <summary>Opens a connection to an <c>introspect serve</c> server: the <c>remote</c> connector.</summary>
/// <remarks>
/// <para><c>remote:host=H[,port=P][,token=T|token-file=F][,tls=on][,ca=F|fingerprint=SHA256][,servername=N][,cert=F[,key=F]][,compression=none|deflate|brotli][,timeout=MS][,connect-timeout=MS]</c>.</para>
/// <para>The memory is the server's physical memory, with its metadata, memory map and the served connector's
/// hints; writable only when the server allows writes. Open fails with <see cref="IOException"/> when the
/// server cannot be reached or the TLS handshake fails, with <see cref="UnauthorizedAccessException"/> when the
/// server refuses the token or certificate, and with <see cref="PluginArgumentException"/> for arguments that
/// cannot be used (a certificate file that cannot be read).</para>
/// </remarks>
public sealed class RemoteConnectorFactory : IConnectorFactory
{
    /// <inheritdoc />
    public IReadOnlyList<PluginParameter> Parameters { get; } =
    [
        new PluginParameter("host", PluginParameterType.String, "The server's host name or address.") { Required = true },
        new PluginParameter("port", PluginParameterType.Number, "The server's port.") { DefaultValue = "7445" },
        new PluginParameter("token", PluginParameterType.String, "The server's shared token (visible in process lists: prefer token-file)."),
        new PluginParameter("token-file", PluginParameterType.Path, "A file holding the server's shared token."),
        new PluginParameter("tls", PluginParameterType.Boolean, "Speak TLS (implied by ca, fingerprint and cert).") { DefaultValue = "off" },
        new PluginParameter("ca", PluginParameterType.Path, "Trust this certificate file (PEM or DER: the server's own certificate or its CA) instead of the system's store."),
        new PluginParameter("fingerprint", PluginParameterType.String, "Accept only a server certificate with this SHA-256 fingerprint (hex, colons allowed)."),
        new PluginParameter("servername", PluginParameterType.String, "The name the server's certificate must carry, when it is not the host."),
        new PluginParameter("cert", PluginParameterType.Path, "A client certificate with its private key (PKCS#12, or PEM with key=)."),
        new PluginParameter("key", PluginParameterType.Path, "The PEM private key of cert."),
        new PluginParameter("compression", PluginParameterType.Choice, "Ask the server to compress page data (worth it on slow links only).")
        {
            DefaultValue = "none",
            Choices = ["none", "deflate", "brotli"],
        },
        new PluginParameter("timeout", PluginParameterType.Number, "Milliseconds a request may wait for its reply before the connection is judged dead.") { DefaultValue = "30000" },
        new PluginParameter("connect-timeout", PluginParameterType.Number, "Milliseconds connecting (TCP, TLS, hello) may take.") { DefaultValue = "10000" },
    ];

    /// <inheritdoc />
    public IPhysicalMemory Create(PluginArguments arguments, IPluginContext context)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        var options = ReadOptions(arguments);
        return RemoteClient.OpenPhysicalMemory(options, context);
    }

    internal static RemoteClientOptions ReadOptions(PluginArguments arguments)
    {
        string plugin = arguments.PluginName;
        string host = arguments.GetRequiredString("host").Trim();
        if (host.StartsWith('[') && host.EndsWith(']'))
            host = host[1..^1];
        if (host.Length == 0)
            throw new PluginArgumentException($"{plugin}: the argument 'host' is empty; expected the server's name or address.");
        ulong port = arguments.GetNumber("port") ?? 7445;
        if (port is 0 or > 65535)
            throw new PluginArgumentException($"{plugin}: 'port={port}' is not a TCP port; expected 1..65535.");

        string? token = arguments.GetString("token");
        if (arguments.GetString("token-file") is { } tokenFile)
        {
            if (token is not null)
                throw new PluginArgumentException($"{plugin}: give the token once, as token or as token-file, not both.");
            token = ReadFile(plugin, "token-file", tokenFile, File.ReadAllText).Trim();
            if (token.Length == 0)
                throw new PluginArgumentException($"{plugin}: 'token-file={tokenFile}' is empty; expected the server's token.");
        }

        var trusted = arguments.GetString("ca") is { } ca ? ReadFile(plugin, "ca", ca, RemoteCertificates.LoadTrusted) : null;
        string? fingerprint = arguments.GetString("fingerprint");
        if (fingerprint is not null)
        {
            string hex = fingerprint.Replace(":", "", StringComparison.Ordinal).Trim();
            if (hex.Length != 64 || !hex.All(Uri.IsHexDigit))
                throw new PluginArgumentException($"{plugin}: 'fingerprint={fingerprint}' is not a SHA-256 fingerprint; expected 64 hexadecimal digits (colons allowed).");
            if (trusted is not null)
                throw new PluginArgumentException($"{plugin}: give ca or fingerprint, not both: a pinned fingerprint already says which certificate to trust.");
        }
        string? keyPath = arguments.GetString("key");
        if (keyPath is not null && arguments.GetString("cert") is null)
            throw new PluginArgumentException($"{plugin}: 'key' is the private key of a client certificate; give cert=FILE too.");
        var certificate = arguments.GetString("cert") is { } certPath
            ? ReadFile(plugin, "cert", certPath, path => RemoteCertificates.LoadWithKey(path, keyPath))
            : null;

        var compression = (arguments.GetString("compression") ?? "none").ToLowerInvariant() switch
        {
            "deflate" => [PageCompression.Deflate],
            "brotli" => [PageCompression.Brotli],
            _ => Array.Empty<PageCompression>(),
        };
        return new RemoteClientOptions
        {
            Host = host,
            Port = (int)port,
            Token = token,
            Tls = arguments.GetBoolean("tls") ?? false,
            TrustedCertificates = trusted,
            ServerFingerprint = fingerprint,
            ServerName = arguments.GetString("servername"),
            ClientCertificate = certificate,
            Compression = compression,
            Timeout = Milliseconds(arguments, "timeout", 30000),
            ConnectTimeout = Milliseconds(arguments, "connect-timeout", 10000),
        };
    }

    private static TimeSpan Milliseconds(PluginArguments arguments, string key, ulong fallback)
    {
        ulong value = arguments.GetNumber(key) ?? fallback;
        if (value is 0 or > 24UL * 3600 * 1000)
            throw new PluginArgumentException($"{arguments.PluginName}: '{key}={value.ToString(CultureInfo.InvariantCulture)}' is out of range; expected 1 to 86400000 milliseconds.");
        return TimeSpan.FromMilliseconds(value);
    }

    private static T ReadFile<T>(string plugin, string key, string path, Func<string, T> read)
    {
        try
        {
            return read(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            throw new PluginArgumentException($"{plugin}: '{key}={path}' cannot be used: {e.Message}", e);
        }
    }
}

/// <summary>The OS a remote server's chain ends in: the <c>remote-os</c> layer, which must follow the <c>remote</c> connector.</summary>
public sealed class RemoteOsFactory : IOsLayerFactory
{
    /// <inheritdoc />
    public IReadOnlyList<PluginParameter> Parameters { get; } = [];

    /// <inheritdoc />
    public IOperatingSystem Create(IPhysicalMemory input, PluginArguments arguments, IPluginContext context)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (!RemoteClient.IsRemote(input))
            throw new InvalidDataException("remote-os shows the OS a remote server's chain ends in; it must follow the remote connector directly (remote:host=...,port=... -> remote-os), with no page cache between them (no cache=on on the remote step).");
        return RemoteClient.OpenOperatingSystem(input);
    }
}
