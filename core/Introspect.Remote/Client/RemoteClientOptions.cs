using System.Security.Cryptography.X509Certificates;
using Introspect.Remote.Protocol;

namespace Introspect.Remote;

/// <summary>Where a remote connector connects and how it proves who it is and whom it talks to.</summary>
public sealed class RemoteClientOptions
{
    public required string Host { get; init; }

    public int Port { get; init; } = RemoteProtocol.DefaultPort;

    /// <summary>The server's shared token, if it asks for one.</summary>
    public string? Token { get; init; }

    /// <summary>Speak TLS; implied by any of the certificate options.</summary>
    public bool Tls { get; init; }

    /// <summary>The name the server's certificate must carry; <see cref="Host"/> when null.</summary>
    public string? ServerName { get; init; }

    /// <summary>Certificates to trust as roots for the server's certificate (a private CA, or the server's self-signed certificate itself), instead of the system's store.</summary>
    public X509Certificate2Collection? TrustedCertificates { get; init; }

    /// <summary>The SHA-256 fingerprint (hex) the server's certificate must have; pins it, whoever issued it and whatever name it carries.</summary>
    public string? ServerFingerprint { get; init; }

    /// <summary>A certificate with its private key, for servers that require client certificates.</summary>
    public X509Certificate2? ClientCertificate { get; init; }

    /// <summary>Codecs to ask for, in order of preference; the server picks the first it allows, or none.</summary>
    public IReadOnlyList<PageCompression> Compression { get; init; } = [];

    /// <summary>How long a request may wait for its reply before the connection is judged dead.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long connecting (TCP, TLS, hello) may take.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>What the server's log calls this client.</summary>
    public string ClientName { get; init; } = $"introspect remote on {Environment.MachineName}, pid {Environment.ProcessId}";

    internal bool UsesTls => Tls || TrustedCertificates is { Count: > 0 } || ServerFingerprint is not null || ClientCertificate is not null;

    /// <summary>How error messages name the server.</summary>
    internal string Peer => $"remote {(Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]" : Host)}:{Port}";
}
