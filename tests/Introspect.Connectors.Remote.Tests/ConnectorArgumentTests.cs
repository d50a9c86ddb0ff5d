using System.Net;
using System.Net.Sockets;
using Introspect.Abi;
using Introspect.Core.Chains;

namespace Introspect.Connectors.Remote.Tests;

/// <summary>The <c>remote</c> step's arguments: every mistake is an error that says what was expected.</summary>
public class ConnectorArgumentTests
{
    private static Exception OpenFails(string arguments) =>
        Assert.Catch(() => ServedImage.Host.Open(ChainSpec.Parse("remote:" + arguments)).Dispose())!;

    [TestCase("port=1", "'host' is required")]
    [TestCase("host=127.0.0.1,port=70000", "not a TCP port")]
    [TestCase("host=127.0.0.1,port=12ab", "not a number")]
    [TestCase("host=127.0.0.1,token=a,token-file=/nonexistent", "not both")]
    [TestCase("host=127.0.0.1,fingerprint=abcd", "64 hexadecimal digits")]
    [TestCase("host=127.0.0.1,key=/nonexistent.pem", "give cert=FILE too")]
    [TestCase("host=127.0.0.1,ca=/nonexistent.pem", "'ca=/nonexistent.pem' cannot be used")]
    [TestCase("host=127.0.0.1,timeout=0", "out of range")]
    [TestCase("host=127.0.0.1,compression=zip", "not one of none, deflate, brotli")]
    [TestCase("host=127.0.0.1,colour=blue", "unknown argument 'colour'")]
    public void Bad_arguments_are_refused_naming_what_was_expected(string arguments, string expected)
    {
        var e = OpenFails(arguments);

        Assert.That(e, Is.InstanceOf<PluginArgumentException>());
        Assert.That(e.Message, Does.Contain(expected));
    }

    [Test]
    public void A_server_that_is_not_there_is_an_error_naming_it()
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        var e = OpenFails($"host=127.0.0.1,port={port}");

        Assert.That(e, Is.InstanceOf<IOException>());
        Assert.That(e.Message, Does.Contain($"remote 127.0.0.1:{port}: cannot connect"));
    }

    [Test]
    public void The_token_is_read_from_a_file_and_the_defaults_are_sensible()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "  token-in-a-file\n");
            var options = RemoteConnectorFactory.ReadOptions(new PluginArguments("remote", [new("host", "[::1]"), new("token-file", file)]));

            Assert.That(options.Token, Is.EqualTo("token-in-a-file"));
            Assert.That(options.Host, Is.EqualTo("::1"));
            Assert.That(options.Port, Is.EqualTo(Introspect.Remote.RemoteServerOptions.DefaultPort));
            Assert.That(options.Tls, Is.False);
            Assert.That(options.Compression, Is.Empty);
            Assert.That(options.Timeout, Is.EqualTo(TimeSpan.FromSeconds(30)));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Test]
    public void The_plugin_declares_the_connector_and_the_os_layer()
    {
        var plugins = ServedImage.Host.Catalog.Plugins.Where(p => p.Name.StartsWith("remote", StringComparison.Ordinal)).ToList();

        Assert.That(plugins.Select(p => (p.Name, p.Kind)), Is.EquivalentTo(new[] { ("remote", PluginKind.Connector), ("remote-os", PluginKind.OperatingSystem) }));
        Assert.That(plugins, Has.All.Matches<Introspect.Core.Plugins.PluginDescriptor>(p => p!.IsCompatible));
    }
}
