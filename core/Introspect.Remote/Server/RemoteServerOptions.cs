using System.Globalization;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Introspect.Remote.Protocol;

namespace Introspect.Remote;

/// <summary>How a <see cref="RemoteServer"/> listens, whom it lets in, and the limits it holds every client to.</summary>
/// <remarks>
/// A server must be able to authenticate its clients: give a <see cref="Token"/>, or
/// <see cref="ClientCertificateAuthorities"/> (which needs a <see cref="Certificate"/>), or both; or say
/// <see cref="AllowAnonymous"/> outright. Limits bound what one client can make the server hold: at most
/// <see cref="MaxInFlight"/> requests of at most <see cref="MaxFrameSize"/> bytes each.
/// </remarks>
public sealed class RemoteServerOptions
{
    /// <summary>The port a server listens on, and a connector dials, when none is given.</summary>
    public const int DefaultPort = RemoteProtocol.DefaultPort;

    /// <summary>Where to listen; port 0 picks a free port (see <see cref="RemoteServer.EndPoint"/>).</summary>
    public IPEndPoint Listen { get; init; } = new(IPAddress.Loopback, RemoteProtocol.DefaultPort);

    /// <summary>The server's TLS certificate, with its private key; null serves plain TCP.</summary>
    public X509Certificate2? Certificate { get; init; }

    /// <summary>A shared secret every client must present; null for none.</summary>
    public string? Token { get; init; }

    /// <summary>Authorities that issue client certificates; when set, every client must present a certificate one of them issued.</summary>
    public X509Certificate2Collection? ClientCertificateAuthorities { get; init; }

    /// <summary>Accept clients without a token or a certificate: for a loopback listener on a trusted machine.</summary>
    public bool AllowAnonymous { get; init; }

    /// <summary>Let clients write to the served memory; reads only otherwise.</summary>
    public bool AllowWrite { get; init; }

    /// <summary>The largest payload of a frame either way; it also bounds a batch's bytes.</summary>
    public int MaxFrameSize { get; init; } = 16 << 20;

    /// <summary>The most entries one batch may hold.</summary>
    public int MaxBatchEntries { get; init; } = 16384;

    /// <summary>How many requests of one client the server works on at once; further ones wait in the socket.</summary>
    public int MaxInFlight { get; init; } = 8;

    /// <summary>How many clients may be connected at once; more are turned away.</summary>
    public int MaxClients { get; init; } = 64;

    /// <summary>The codecs the server will compress read data with, if a client asks for one.</summary>
    public IReadOnlyList<PageCompression> Compression { get; init; } = [PageCompression.Deflate, PageCompression.Brotli];

    /// <summary>How long a client has to finish TLS and its hello.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a client may send nothing before it is disconnected.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>How long a frame may stop halfway, or a reply wait for a client that does not read it, before the client is disconnected.</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>What clients are told they are served, e.g. <c>coredump -> linux</c>; plugin names only, never arguments.</summary>
    public string ChainDescription { get; init; } = "";

    /// <summary>Checks the options hang together.</summary>
    /// <exception cref="ArgumentException">An option is out of range, or no way to authenticate clients is configured.</exception>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Listen);
        if (Token is not null && (Token.Length == 0 || System.Text.Encoding.UTF8.GetByteCount(Token) > RemoteProtocol.MaxTokenBytes))
            throw new ArgumentException($"The token must be 1 to {RemoteProtocol.MaxTokenBytes} bytes of UTF-8.");
        if (ClientCertificateAuthorities is { Count: > 0 } && Certificate is null)
            throw new ArgumentException("Client certificates need TLS: give the server a certificate too.");
        if (Certificate is not null && !Certificate.HasPrivateKey)
            throw new ArgumentException($"The server certificate {Certificate.Subject} has no private key.");
        if (Token is null && ClientCertificateAuthorities is not { Count: > 0 } && !AllowAnonymous)
            throw new ArgumentException("The server has no way to authenticate clients: give a token, client certificate authorities, or allow anonymous clients explicitly.");
        Check(MaxFrameSize, Welcome.MinFrameSize, Welcome.LargestFrameSize, "the frame size limit");
        Check(MaxBatchEntries, 1, 1 << 22, "the batch entry limit");
        Check(MaxInFlight, 1, 256, "the in-flight limit");
        Check(MaxClients, 1, 65536, "the client limit");
        foreach (var (value, name) in new[] { (HandshakeTimeout, "handshake"), (IdleTimeout, "idle"), (StallTimeout, "stall") })
        {
            if (value <= TimeSpan.Zero)
                throw new ArgumentException($"The {name} timeout must be positive; it is {value}.");
        }
    }

    private static void Check(int value, int min, int max, string what)
    {
        if (value < min || value > max)
            throw new ArgumentException($"{char.ToUpperInvariant(what[0])}{what[1..]} is {value.ToString(CultureInfo.InvariantCulture)}; expected {min.ToString(CultureInfo.InvariantCulture)}..{max.ToString(CultureInfo.InvariantCulture)}.");
    }
}
