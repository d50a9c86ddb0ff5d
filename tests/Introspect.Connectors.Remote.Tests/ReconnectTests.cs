using System.Net;
using Introspect.Abi;
using Introspect.Core.Chains;
using Introspect.Remote;

namespace Introspect.Connectors.Remote.Tests;

/// <summary>A server that goes away makes reads fail with a clear error; once it is back, reads work again.</summary>
public class ReconnectTests
{
    private static RemoteServer ServeOn(IPhysicalMemory memory, int port) => Loopback.Serve(memory, new RemoteServerOptions
    {
        Listen = new IPEndPoint(IPAddress.Loopback, port),
        AllowAnonymous = true,
    });

    [Test]
    public void Reads_fail_clearly_while_the_server_is_gone_and_work_again_when_it_is_back()
    {
        var first = Loopback.Serve(ServedImage.Memory, Loopback.Anonymous());
        int port = first.EndPoint.Port;
        using var chain = ServedImage.Host.Open(ChainSpec.Parse($"remote:host=127.0.0.1,port={port},connect-timeout=2000"));
        var remote = chain.PhysicalMemory;
        var (before, ok) = Loopback.ReadPages(remote, [0x2161000]);
        Assert.That(ok, Has.All.True);

        first.Dispose();
        var gone = Assert.Catch<IOException>(() => Loopback.ReadPages(remote, [0x2161000]));
        var stillGone = Assert.Catch<IOException>(() => Loopback.ReadPages(remote, [0x2161000]));

        using var second = ServeOn(ServedImage.Memory, port);
        var (after, okAfter) = Loopback.ReadPages(remote, [0x2161000]);

        Assert.That(gone!.Message, Does.Contain($"remote 127.0.0.1:{port}"));
        Assert.That(gone.Message, Does.Contain("cannot connect").Or.Contain("shutting down").Or.Contain("connection was lost"));
        Assert.That(stillGone!.Message, Does.Contain("cannot connect"));
        Assert.That(okAfter, Has.All.True);
        Assert.That(after, Is.EqualTo(before));
    }

    [Test]
    public void A_read_under_which_the_connection_drops_is_retried_on_a_new_connection()
    {
        var memory = ArrayMemory.Patterned(1 << 20);
        var first = Loopback.Serve(memory, Loopback.Anonymous());
        int port = first.EndPoint.Port;
        using var remote = RemoteClient.OpenPhysicalMemory(Loopback.Client(first));
        // The server stops and a new one takes the port before the client notices: the next read meets a dead connection first.
        first.Dispose();
        using var second = ServeOn(memory, port);

        var (bytes, ok) = Loopback.ReadPages(remote, [0x3000]);

        Assert.That(ok, Has.All.True);
        Assert.That(bytes.AsSpan().SequenceEqual(memory.Bytes.AsSpan(0x3000, 4096)));
    }

    [Test]
    public void A_server_that_comes_back_serving_other_memory_is_refused()
    {
        var first = Loopback.Serve(ArrayMemory.Patterned(1 << 20), Loopback.Anonymous());
        int port = first.EndPoint.Port;
        using var remote = RemoteClient.OpenPhysicalMemory(Loopback.Client(first));
        first.Dispose();
        using var second = ServeOn(ArrayMemory.Patterned(2 << 20), port);

        var e = Assert.Catch<IOException>(() => Loopback.ReadPages(remote, [0x3000]));

        Assert.That(e!.Message, Does.Contain("now serves different memory").And.Contain("open the chain again"));
    }

    [Test]
    public void A_server_that_stops_replying_fails_the_read_after_the_timeout()
    {
        // The server's memory blocks until released: the server is there but does not answer.
        var gate = new ManualResetEventSlim(false);
        var blocking = new BlockingMemory(ArrayMemory.Patterned(1 << 20), gate);
        using var server = Loopback.Serve(blocking, Loopback.Anonymous());
        using var remote = RemoteClient.OpenPhysicalMemory(new RemoteClientOptions
        {
            Host = "127.0.0.1",
            Port = server.EndPoint.Port,
            Timeout = TimeSpan.FromMilliseconds(500),
        });
        try
        {
            var e = Assert.Catch<IOException>(() => Loopback.ReadPages(remote, [0x1000]));
            Assert.That(e!.Message, Does.Contain("no reply within 0.5 s"));
        }
        finally
        {
            gate.Set();
        }
        var (_, ok) = Loopback.ReadPages(remote, [0x1000]);
        Assert.That(ok, Has.All.True, "a new connection serves once the server answers again");
    }

    private sealed class BlockingMemory(ArrayMemory inner, ManualResetEventSlim gate) : IPhysicalMemory
    {
        public PhysicalMemoryMetadata Metadata => inner.Metadata;

        public MemoryMap MemoryMap => inner.MemoryMap;

        public void SetMemoryMap(MemoryMap map) => inner.SetMemoryMap(map);

        public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
        {
            gate.Wait(TimeSpan.FromSeconds(20));
            inner.Read(batch, flags);
        }

        public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => inner.Write(batch, flags);

        public void Dispose() { }
    }
}
