using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Introspect.Abi;
using Introspect.Core.Chains;
using Introspect.Remote;

namespace Introspect.Connectors.Remote.Tests;

/// <summary>Tokens, TLS, client certificates, read-only serving, and the log of who read what.</summary>
public class SecurityTests
{
    private string _scratch = null!;

    [SetUp]
    public void CreateScratch() => _scratch = Directory.CreateTempSubdirectory("introspect-remote-").FullName;

    [TearDown]
    public void DeleteScratch() => Directory.Delete(_scratch, recursive: true);

    /// <summary>A certificate made for the test: an authority, or a leaf for the server (127.0.0.1, localhost) or a client.</summary>
    private static X509Certificate2 Certificate(string name, X509Certificate2? issuer = null, bool authority = false, bool client = false)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        if (authority)
        {
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        }
        else
        {
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(client ? "1.3.6.1.5.5.7.3.2" : "1.3.6.1.5.5.7.3.1")], false));
            var names = new SubjectAlternativeNameBuilder();
            names.AddDnsName(name);
            if (name == "localhost")
                names.AddIpAddress(IPAddress.Loopback);
            request.CertificateExtensions.Add(names.Build());
        }
        var now = DateTimeOffset.UtcNow;
        using var made = issuer is null
            ? request.CreateSelfSigned(now.AddDays(-1), now.AddDays(1))
            : request.Create(issuer, now.AddHours(-1), now.AddHours(12), RandomNumberGenerator.GetBytes(8)).CopyWithPrivateKey(key);
        // Through PKCS#12, as a certificate from a file would come, so that TLS finds its key.
        return X509CertificateLoader.LoadPkcs12(made.Export(X509ContentType.Pfx), null);
    }

    private static X509Certificate2Collection Trust(X509Certificate2 certificate) => [X509CertificateLoader.LoadCertificate(certificate.RawData)];

    private static RemoteServer ServeTls(X509Certificate2 certificate, X509Certificate2Collection? clientAuthorities = null, string? token = null, MemoryLog? log = null) =>
        Loopback.Serve(ServedImage.Memory, new RemoteServerOptions
        {
            Listen = Loopback.AnyPort,
            Certificate = certificate,
            ClientCertificateAuthorities = clientAuthorities,
            Token = token,
            AllowAnonymous = token is null && clientAuthorities is null,
        }, logs: log?.Factory());

    private static void ReadsTheBanner(IPhysicalMemory remote)
    {
        var banner = new byte[13];
        var batch = new[] { new MemoryRequest(0x2161900, banner) };
        remote.Read(batch);
        Assert.That(batch[0].Succeeded);
        Assert.That(System.Text.Encoding.ASCII.GetString(banner), Is.EqualTo("Linux version"));
    }

    [Test]
    public void The_right_token_is_let_in_and_a_wrong_or_missing_one_refused()
    {
        using var server = Loopback.Serve(ServedImage.Memory, new RemoteServerOptions { Listen = Loopback.AnyPort, Token = "s3cret-token" });

        using (var remote = RemoteClient.OpenPhysicalMemory(Loopback.Client(server, "s3cret-token")))
            ReadsTheBanner(remote);
        var wrong = Assert.Throws<UnauthorizedAccessException>(() => RemoteClient.OpenPhysicalMemory(Loopback.Client(server, "guess")));
        var missing = Assert.Throws<UnauthorizedAccessException>(() => RemoteClient.OpenPhysicalMemory(Loopback.Client(server)));

        Assert.That(wrong!.Message, Does.Contain("refused this client").And.Contain("token is wrong"));
        Assert.That(missing!.Message, Does.Contain("requires a token"));
    }

    [Test]
    public void A_server_with_no_way_to_authenticate_clients_does_not_start()
    {
        var e = Assert.Throws<ArgumentException>(() => new RemoteServer(ServedImage.Memory, null, new RemoteServerOptions { Listen = Loopback.AnyPort }));

        Assert.That(e!.Message, Does.Contain("authenticate"));
    }

    [Test]
    public void Tls_with_the_server_certificate_trusted_from_a_file_or_pinned_by_fingerprint_works()
    {
        using var certificate = Certificate("localhost");
        using var server = ServeTls(certificate);
        var ca = Path.Combine(_scratch, "server.pem");
        File.WriteAllText(ca, certificate.ExportCertificatePem());

        using (var chain = ServedImage.Host.Open(ChainSpec.Parse($"remote:host=127.0.0.1,port={server.EndPoint.Port},ca=\"{ca}\",servername=localhost")))
            ReadsTheBanner(chain.PhysicalMemory);
        using (var pinned = RemoteClient.OpenPhysicalMemory(new RemoteClientOptions
        {
            Host = "127.0.0.1",
            Port = server.EndPoint.Port,
            ServerFingerprint = Convert.ToHexString(SHA256.HashData(certificate.RawData)),
        }))
            ReadsTheBanner(pinned);
    }

    [Test]
    public void A_server_certificate_nobody_vouches_for_is_refused_by_the_client()
    {
        using var certificate = Certificate("localhost");
        using var other = Certificate("localhost");
        using var server = ServeTls(certificate);
        var options = Loopback.Client(server);

        var untrusted = Assert.Throws<Introspect.Remote.Client.RemoteConnectionLostException>(() =>
            RemoteClient.OpenPhysicalMemory(new RemoteClientOptions { Host = "localhost", Port = options.Port, Tls = true }));
        var wrongRoot = Assert.Throws<Introspect.Remote.Client.RemoteConnectionLostException>(() =>
            RemoteClient.OpenPhysicalMemory(new RemoteClientOptions { Host = "localhost", Port = options.Port, TrustedCertificates = Trust(other) }));
        var wrongPin = Assert.Throws<Introspect.Remote.Client.RemoteConnectionLostException>(() =>
            RemoteClient.OpenPhysicalMemory(new RemoteClientOptions { Host = "localhost", Port = options.Port, ServerFingerprint = new string('A', 64) }));
        var wrongName = Assert.Throws<Introspect.Remote.Client.RemoteConnectionLostException>(() =>
            RemoteClient.OpenPhysicalMemory(new RemoteClientOptions { Host = "127.0.0.1", Port = options.Port, ServerName = "elsewhere.example", TrustedCertificates = Trust(certificate) }));

        Assert.That(untrusted!.Message, Does.Contain("TLS handshake failed").And.Contain("not trusted by this system").And.Contain("ca=FILE"));
        Assert.That(wrongRoot!.Message, Does.Contain("not issued by the trusted certificates"));
        Assert.That(wrongPin!.Message, Does.Contain("fingerprint").And.Contain(Convert.ToHexString(SHA256.HashData(certificate.RawData))));
        Assert.That(wrongName!.Message, Does.Contain("not for the name 'elsewhere.example'"));
    }

    [Test]
    public void A_plain_client_at_a_tls_server_is_told_to_use_tls()
    {
        using var certificate = Certificate("localhost");
        using var server = ServeTls(certificate);

        var e = Assert.Throws<Introspect.Remote.Client.RemoteConnectionLostException>(() => RemoteClient.OpenPhysicalMemory(Loopback.Client(server)));

        Assert.That(e!.Message, Does.Contain("closed the connection during the handshake").And.Contain("tls=on"));
    }

    [Test]
    public void Client_certificates_from_the_trusted_authority_are_let_in_and_others_refused()
    {
        using var authority = Certificate("Test Client CA", authority: true);
        using var otherAuthority = Certificate("Other CA", authority: true);
        using var good = Certificate("good-client", issuer: authority, client: true);
        using var bad = Certificate("bad-client", issuer: otherAuthority, client: true);
        using var serverCertificate = Certificate("localhost");
        var log = new MemoryLog();
        using var server = ServeTls(serverCertificate, Trust(authority), log: log);
        RemoteClientOptions Options(X509Certificate2? client) => new()
        {
            Host = "localhost",
            Port = server.EndPoint.Port,
            TrustedCertificates = Trust(serverCertificate),
            ClientCertificate = client,
            ConnectTimeout = TimeSpan.FromSeconds(5),
        };

        using (var remote = RemoteClient.OpenPhysicalMemory(Options(good)))
            ReadsTheBanner(remote);
        var refused = Assert.Catch<Exception>(() => RemoteClient.OpenPhysicalMemory(Options(bad)).Dispose());
        var without = Assert.Catch<Exception>(() => RemoteClient.OpenPhysicalMemory(Options(null)).Dispose());

        Assert.That(refused, Is.InstanceOf<IOException>().Or.InstanceOf<UnauthorizedAccessException>());
        Assert.That(without, Is.InstanceOf<IOException>().Or.InstanceOf<UnauthorizedAccessException>());
        Assert.That(Loopback.Eventually(() => log.Lines.Count(l => l.Contains("refused", StringComparison.Ordinal)) >= 2), string.Join("\n", log.Lines));
        Assert.That(log.Lines, Has.Some.Contains("connected").And.Contains("certificate CN=good-client"));
        Assert.That(log.Lines, Has.Some.Contains("bad-client is not issued by an authority this server trusts"));
        Assert.That(log.Lines, Has.Some.Contains("no client certificate"));
    }

    [Test]
    public void Every_client_is_logged_when_it_comes_and_leaves_with_what_it_read()
    {
        var log = new MemoryLog();
        using var server = Loopback.Serve(ServedImage.Memory, new RemoteServerOptions { Listen = Loopback.AnyPort, Token = "t" }, logs: log.Factory());
        using (var remote = RemoteClient.OpenPhysicalMemory(new RemoteClientOptions { Host = "127.0.0.1", Port = server.EndPoint.Port, Token = "t", ClientName = "auditor" }))
        {
            Loopback.ReadPages(remote, [0x2161000, 0x2162000]);
            Loopback.ReadPages(remote, [0x5000000]);
        }

        Assert.That(Loopback.Eventually(() => log.Lines.Any(l => l.Contains("left after", StringComparison.Ordinal))));
        Assert.That(log.Lines, Has.Some.Contains("connected as 'auditor'").And.Contains("token"));
        var summary = log.Lines.Single(l => l.Contains("left after", StringComparison.Ordinal));
        Assert.That(summary, Does.Contain("read 2 batches, 3 entries, 12 KiB of 12 KiB asked"));
        Assert.That(summary, Does.Contain("physical 0x2000000-0x21fffff, 0x5000000-0x51fffff"));
        Assert.That(log.Lines, Has.Some.Contains("Debug: client #1 read: 2 entries, 8192 bytes from 0x2161000"));
    }

    [Test]
    public void Writes_are_refused_unless_the_server_allows_them()
    {
        var readOnlyMemory = ArrayMemory.Patterned(1 << 20);
        var writable = ArrayMemory.Patterned(1 << 20);
        using var readOnlyServer = Loopback.Serve(readOnlyMemory, Loopback.Anonymous());
        using var writableServer = Loopback.Serve(writable, new RemoteServerOptions { Listen = Loopback.AnyPort, AllowAnonymous = true, AllowWrite = true });
        using var readOnly = RemoteClient.OpenPhysicalMemory(Loopback.Client(readOnlyServer));
        using var remote = RemoteClient.OpenPhysicalMemory(Loopback.Client(writableServer));
        var data = new byte[] { 1, 2, 3, 4, 5 };

        var refused = Assert.Throws<NotSupportedException>(() => readOnly.Write([new MemoryRequest(0x10, data)]));
        var batch = new[] { new MemoryRequest(0x10, data), new MemoryRequest(0x800000, data), new MemoryRequest(0xFFFFE, data) };
        remote.Write(batch);

        Assert.That(readOnly.Metadata.ReadOnly, Is.True);
        Assert.That(refused!.Message, Does.Contain("--allow-write"));
        Assert.That(remote.Metadata.ReadOnly, Is.False);
        Assert.That(batch.Select(r => r.Succeeded), Is.EqualTo(new[] { true, false, false }));
        Assert.That(writable.Bytes.AsSpan(0x10, 5).ToArray(), Is.EqualTo(data));
    }
}
