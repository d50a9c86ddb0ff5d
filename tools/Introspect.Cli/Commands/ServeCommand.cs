using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Introspect.Core.Chains;
using Introspect.Core.Plugins;
using Introspect.Remote;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Introspect.Cli.Commands;

/// <summary><c>introspect serve</c>: expose a chain's physical memory, and the OS it ends in, to <c>remote</c> connectors.</summary>
/// <remarks>
/// Prints <c>listening on ADDRESS:PORT</c> on standard output once clients can connect (the port picked, for
/// port 0), logs every client and what it read on standard error, and serves until interrupted.
/// </remarks>
internal static class ServeCommand
{
    /// <summary>Where the token may come from instead of a file.</summary>
    public const string TokenVariable = "INTROSPECT_SERVE_TOKEN";

    public static Command Create(CliConsole console)
    {
        var chain = CommonOptions.Chain();
        var listen = new Option<string>("--listen", "-l")
        {
            Description = "ADDRESS:PORT to listen on ([::]:PORT or 0.0.0.0:PORT for every interface; port 0 picks one)",
            DefaultValueFactory = _ => $"127.0.0.1:{RemoteServerOptions.DefaultPort}",
        };
        var certificate = new Option<FileInfo?>("--certificate") { Description = "Serve TLS with this certificate: PKCS#12 (.pfx), or PEM with its key inside or in --certificate-key" };
        var certificateKey = new Option<FileInfo?>("--certificate-key") { Description = "The PEM private key of --certificate" };
        var tokenFile = new Option<FileInfo?>("--token-file") { Description = $"Require the token this file holds (or set {TokenVariable})" };
        var clientCa = new Option<FileInfo?>("--client-ca") { Description = "Require client certificates issued by the authorities in this PEM file (needs --certificate)" };
        var noAuth = new Option<bool>("--no-auth") { Description = "Accept any client that can connect (no token, no client certificate)" };
        var allowWrite = new Option<bool>("--allow-write") { Description = "Let clients write to the served memory (read-only otherwise)" };
        var maxFrame = new Option<int>("--max-frame-size") { Description = "The largest frame, and so batch, in bytes", DefaultValueFactory = _ => 16 << 20 };
        var maxBatch = new Option<int>("--max-batch") { Description = "The most entries in one batch", DefaultValueFactory = _ => 16384 };
        var maxInFlight = new Option<int>("--max-in-flight") { Description = "Requests of one client worked on at once", DefaultValueFactory = _ => 8 };
        var maxClients = new Option<int>("--max-clients") { Description = "Clients connected at once", DefaultValueFactory = _ => 64 };
        var idleTimeout = new Option<double>("--idle-timeout") { Description = "Seconds a client may send nothing before it is disconnected", DefaultValueFactory = _ => 600 };
        var stallTimeout = new Option<double>("--stall-timeout") { Description = "Seconds a half-sent frame or an unread reply may wait before the client is disconnected", DefaultValueFactory = _ => 30 };
        var compression = new Option<string>("--compression")
        {
            Description = "Codecs clients may ask for: deflate, brotli, both (comma-separated) or none",
            DefaultValueFactory = _ => "deflate,brotli",
        };
        var pluginPath = CommonOptions.PluginPath();
        var verbose = CommonOptions.Verbose();
        var command = new Command("serve", "Serve a chain's memory (and its OS's processes) to remote connectors over TCP or TLS");
        CommonOptions.AddTo(command, chain, listen, certificate, certificateKey, tokenFile, clientCa, noAuth, allowWrite,
            maxFrame, maxBatch, maxInFlight, maxClients, idleTimeout, stallTimeout, compression, pluginPath, verbose);
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var endPoint = ParseEndPoint(parseResult.GetValue(listen)!);
            string? token = ReadToken(parseResult.GetValue(tokenFile));
            var serverCertificate = parseResult.GetValue(certificate) is { } certificateFile
                ? RemoteCertificates.LoadWithKey(certificateFile.FullName, parseResult.GetValue(certificateKey)?.FullName)
                : null;
            if (serverCertificate is null && parseResult.GetValue(certificateKey) is not null)
                throw new CliUsageException("--certificate-key is the key of --certificate; give --certificate too.");
            var authorities = parseResult.GetValue(clientCa) is { } caFile ? RemoteCertificates.LoadTrusted(caFile.FullName) : null;
            if (parseResult.GetValue(noAuth) && (token is not null || authorities is not null))
                throw new CliUsageException("--no-auth accepts anyone; it cannot go with --token-file or --client-ca.");
            var options = new RemoteServerOptions
            {
                Listen = endPoint,
                Certificate = serverCertificate,
                Token = token,
                ClientCertificateAuthorities = authorities,
                AllowAnonymous = parseResult.GetValue(noAuth),
                AllowWrite = parseResult.GetValue(allowWrite),
                MaxFrameSize = parseResult.GetValue(maxFrame),
                MaxBatchEntries = parseResult.GetValue(maxBatch),
                MaxInFlight = parseResult.GetValue(maxInFlight),
                MaxClients = parseResult.GetValue(maxClients),
                IdleTimeout = Seconds(parseResult.GetValue(idleTimeout), "--idle-timeout"),
                StallTimeout = Seconds(parseResult.GetValue(stallTimeout), "--stall-timeout"),
                Compression = ParseCompression(parseResult.GetValue(compression)!),
            };
            try
            {
                options.Validate();
            }
            catch (ArgumentException e)
            {
                throw new CliUsageException(e.Message.Replace("give a token, client certificate authorities, or allow anonymous clients explicitly",
                    "give --token-file, --client-ca, or --no-auth to accept anyone who can connect", StringComparison.Ordinal), e);
            }

            using var services = BuildServices(parseResult.GetValue(pluginPath) ?? [], parseResult.GetValue(verbose));
            var spec = ChainSpec.Parse(parseResult.GetValue(chain)!);
            using var opened = services.GetRequiredService<PluginHost>().Open(spec);
            await using var server = RemoteServer.ForChain(opened, options, services.GetRequiredService<ILoggerFactory>());
            try
            {
                server.Start();
            }
            catch (SocketException e)
            {
                throw new CliUsageException($"cannot listen on {endPoint}: {e.Message}.", e);
            }
            console.Output.WriteLine($"listening on {server.EndPoint}");
            console.Output.Flush();
            await server.RunAsync(cancellationToken).ConfigureAwait(false);
            return 0;
        });
        return command;
    }

    /// <summary>Logging for a server: every client's arrival and departure at Information, each batch at Debug with --verbose.</summary>
    private static ServiceProvider BuildServices(string[] extraPaths, bool verbose)
    {
        var services = new ServiceCollection();
        services.AddLogging(logging =>
        {
            logging.SetMinimumLevel(verbose ? LogLevel.Debug : LogLevel.Information);
            logging.AddSimpleConsole(options =>
            {
                options.SingleLine = true;
                options.TimestampFormat = "yyyy-MM-dd HH:mm:ss ";
            });
            logging.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(options => options.LogToStandardErrorThreshold = LogLevel.Trace);
        });
        services.AddSingleton(provider => PluginHost.CreateDefault(extraPaths, provider.GetRequiredService<ILoggerFactory>()));
        return services.BuildServiceProvider();
    }

    /// <summary>Reads <c>ADDRESS:PORT</c>, <c>[IPv6]:PORT</c>, <c>HOST:PORT</c> or a bare port (on the loopback address).</summary>
    internal static IPEndPoint ParseEndPoint(string text)
    {
        text = text.Trim();
        if (ushort.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var bare))
            return new IPEndPoint(IPAddress.Loopback, bare);
        if (text.Count(c => c == ':') > 1 && !text.StartsWith('['))
            throw new CliUsageException($"--listen '{text}': write an IPv6 address in brackets, e.g. [::1]:{RemoteServerOptions.DefaultPort}.");
        if (IPEndPoint.TryParse(text, out var endPoint) && text.Contains(':', StringComparison.Ordinal) && (endPoint.Port != 0 || text.EndsWith(":0", StringComparison.Ordinal)))
            return endPoint;
        int colon = text.LastIndexOf(':');
        if (colon > 0 && ushort.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port))
        {
            string host = text[..colon];
            IPAddress[] addresses;
            try
            {
                addresses = Dns.GetHostAddresses(host);
            }
            catch (SocketException e)
            {
                throw new CliUsageException($"--listen '{text}': the host '{host}' cannot be resolved: {e.Message}.", e);
            }
            if (addresses.Length == 0)
                throw new CliUsageException($"--listen '{text}': the host '{host}' has no address.");
            var address = addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? addresses[0];
            return new IPEndPoint(address, port);
        }
        throw new CliUsageException($"--listen '{text}' is not ADDRESS:PORT; expected for example 127.0.0.1:{RemoteServerOptions.DefaultPort}, [::1]:{RemoteServerOptions.DefaultPort} or 0.0.0.0:{RemoteServerOptions.DefaultPort}.");
    }

    private static string? ReadToken(FileInfo? file)
    {
        if (file is null)
            return Environment.GetEnvironmentVariable(TokenVariable) is { Length: > 0 } fromEnvironment ? fromEnvironment.Trim() : null;
        if (!file.Exists)
            throw new CliUsageException($"--token-file {file.FullName}: no such file.");
        var token = File.ReadAllText(file.FullName).Trim();
        if (token.Length == 0)
            throw new CliUsageException($"--token-file {file.FullName} is empty; expected the token clients must give.");
        return token;
    }

    private static TimeSpan Seconds(double value, string option)
    {
        if (!(value > 0 && value <= 7 * 24 * 3600))
            throw new CliUsageException($"{option} must be between 0 and 604800 seconds; it is {value.ToString(CultureInfo.InvariantCulture)}.");
        return TimeSpan.FromSeconds(value);
    }

    private static PageCompression[] ParseCompression(string text)
    {
        var codecs = new List<PageCompression>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            switch (part.ToLowerInvariant())
            {
                case "none":
                    break;
                case "deflate":
                    codecs.Add(PageCompression.Deflate);
                    break;
                case "brotli":
                    codecs.Add(PageCompression.Brotli);
                    break;
                default:
                    throw new CliUsageException($"--compression '{part}' is not a codec; expected deflate, brotli or none.");
            }
        }
        return [.. codecs];
    }
}
