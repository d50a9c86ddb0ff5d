using Introspect.Abi;
using Introspect.Core.Chains;
using Introspect.Remote;

namespace Introspect.Connectors.Remote.Tests;

/// <summary>A chain through <c>remote</c> serves exactly what the local chain serves.</summary>
public class PageForPageTests
{
    private const int PageSize = 4096;

    [Test]
    public void The_remote_chain_equals_the_local_chain_page_for_page()
    {
        var local = ServedImage.Memory;
        using var server = Loopback.Serve(local, Loopback.Anonymous());
        using var chain = ServedImage.Host.Open(ChainSpec.Parse($"remote:host=127.0.0.1,port={server.EndPoint.Port}"));
        var remote = chain.PhysicalMemory;

        Assert.That(remote.Metadata.MaxAddress, Is.EqualTo(local.Metadata.MaxAddress));
        Assert.That(remote.Metadata.RealSize, Is.EqualTo(local.Metadata.RealSize));
        Assert.That(remote.Metadata.ReadOnly, Is.True, "a server without --allow-write is read-only");
        Assert.That(remote.MemoryMap.Select(r => (r.Base, r.Size)), Is.EqualTo(local.MemoryMap.Select(r => (r.Base, r.Size))));
        Assert.That(chain.Hints.Format, Is.EqualTo(((IConnectorHints)local).Hints.Format));

        // Every page of the 128 MiB, a batch of 1024 pages at a time, each batch one round trip.
        const int Batch = 1024;
        int pages = (int)(ServedImage.Size / PageSize);
        int differing = 0, failedRemote = 0;
        for (int first = 0; first < pages; first += Batch)
        {
            var addresses = Enumerable.Range(first, Math.Min(Batch, pages - first)).Select(p => (ulong)p * PageSize).ToList();
            var (expected, expectedOk) = Loopback.ReadPages(local, addresses);
            var (actual, actualOk) = Loopback.ReadPages(remote, addresses);
            for (int i = 0; i < addresses.Count; i++)
            {
                if (actualOk[i] != expectedOk[i])
                    failedRemote++;
                else if (expectedOk[i] && !expected.AsSpan(i * PageSize, PageSize).SequenceEqual(actual.AsSpan(i * PageSize, PageSize)))
                    differing++;
            }
        }
        Assert.That(failedRemote, Is.Zero, "pages whose success differs");
        Assert.That(differing, Is.Zero, "pages whose bytes differ");
    }

    [TestCase(PageCompression.Deflate)]
    [TestCase(PageCompression.Brotli)]
    public void Compressed_replies_carry_the_same_pages(PageCompression codec)
    {
        var local = ServedImage.Memory;
        var log = new MemoryLog();
        using var server = Loopback.Serve(local, Loopback.Anonymous(), logs: log.Factory());
        using var remote = RemoteClient.OpenPhysicalMemory(new RemoteClientOptions
        {
            Host = "127.0.0.1",
            Port = server.EndPoint.Port,
            Compression = [codec],
        });
        // The kernel's text and data (incl. the banner) plus the zero pages at the top of RAM: both compress differently.
        var addresses = Enumerable.Range(0, 2048).Select(p => 0x2000000UL + (ulong)p * PageSize)
            .Concat(Enumerable.Range(0, 256).Select(p => ServedImage.Size - 0x100000 + (ulong)p * PageSize)).ToList();
        var (expected, expectedOk) = Loopback.ReadPages(local, addresses);
        var (actual, actualOk) = Loopback.ReadPages(remote, addresses);

        Assert.That(actualOk, Is.EqualTo(expectedOk));
        Assert.That(actual.SequenceEqual(expected), "the decompressed pages equal the local ones");
        Assert.That(log.Lines, Has.Some.Contains($"compression {codec.ToString().ToLowerInvariant()}"));
    }

    [Test]
    public void A_client_batch_is_one_batch_and_one_request_at_the_server()
    {
        var counting = new CountingMemory(ServedImage.Memory);
        var log = new MemoryLog();
        using var server = Loopback.Serve(counting, Loopback.Anonymous(), logs: log.Factory());
        using (var remote = RemoteClient.OpenPhysicalMemory(Loopback.Client(server)))
        {
            var random = new Random(7);
            var addresses = Enumerable.Range(0, 1000).Select(_ => (ulong)random.Next(0, 32768) * PageSize).ToList();
            long before = counting.Calls;

            var (bytes, ok) = Loopback.ReadPages(remote, addresses);

            Assert.That(counting.Calls - before, Is.EqualTo(1), "one batch reached the served memory");
            Assert.That(counting.BatchSizes.Last(), Is.EqualTo(1000));
            Assert.That(ok, Has.All.True);
            var (expected, _) = Loopback.ReadPages(ServedImage.Memory, addresses);
            Assert.That(bytes.SequenceEqual(expected));
        }
        // Describe, then the one read: two requests in the session's summary.
        Assert.That(Loopback.Eventually(() => log.Lines.Any(l => l.Contains("left after", StringComparison.Ordinal))));
        Assert.That(log.Lines.Single(l => l.Contains("left after", StringComparison.Ordinal)), Does.Contain("2 requests; read 1 batches, 1000 entries"));
    }

    [Test]
    public void A_batch_over_the_server_limits_is_split_into_requests_and_still_complete()
    {
        var memory = ArrayMemory.Patterned(8 << 20);
        using var server = Loopback.Serve(memory, Loopback.Anonymous(maxFrame: 64 * 1024, maxEntries: 100));
        using var remote = RemoteClient.OpenPhysicalMemory(Loopback.Client(server));
        var big = new byte[3 << 20];
        var pages = new byte[500 * 256];
        var batch = new MemoryRequest[501];
        batch[0] = new MemoryRequest(0x123456, big);
        for (int i = 0; i < 500; i++)
            batch[i + 1] = new MemoryRequest((ulong)(i * 7919 * 16 % ((8 << 20) - 256)), pages.AsMemory(i * 256, 256));

        remote.Read(batch);

        Assert.That(batch.Select(r => r.Succeeded), Has.All.True);
        Assert.That(big.AsSpan().SequenceEqual(memory.Bytes.AsSpan(0x123456, big.Length)), "the 3 MiB entry, cut into frame-sized pieces, is whole");
        for (int i = 0; i < 500; i++)
            Assert.That(pages.AsSpan(i * 256, 256).SequenceEqual(memory.Bytes.AsSpan((int)batch[i + 1].Address, 256)), $"entry {i + 1}");
        Assert.That(memory.BatchSizes.Max(), Is.LessThanOrEqualTo(100), "no request over the server's entry limit");
    }

    [Test]
    public void Unreadable_entries_fail_alone_and_zero_padding_reads_them_as_zeros()
    {
        using var server = Loopback.Serve(ServedImage.Memory, Loopback.Anonymous());
        using var remote = RemoteClient.OpenPhysicalMemory(Loopback.Client(server));
        var addresses = new List<ulong> { 0x2161000, ServedImage.Size + 0x1000, 0x1000, ulong.MaxValue - 0xFFF };

        var (_, ok) = Loopback.ReadPages(remote, addresses);
        var (padded, paddedOk) = Loopback.ReadPages(remote, addresses, MemoryFlags.ZeroPadOnFail);

        Assert.That(ok, Is.EqualTo(new[] { true, false, true, false }));
        Assert.That(paddedOk, Has.All.True);
        Assert.That(padded.AsSpan(PageSize, PageSize).ContainsAnyExcept((byte)0), Is.False);
        Assert.That(padded.AsSpan(0, PageSize).ContainsAnyExcept((byte)0), Is.True);
    }

    [Test]
    public void A_memory_map_set_by_a_layer_above_remaps_and_limits_reads()
    {
        using var server = Loopback.Serve(ServedImage.Memory, Loopback.Anonymous());
        using var remote = RemoteClient.OpenPhysicalMemory(Loopback.Client(server));
        // Physical 0x10000000.. now shows the server's 0x2000000.., and nothing else is mapped.
        remote.SetMemoryMap(new MemoryMap([new MemoryRange(0x10000000, 0x200000, 0x2000000)]));

        var (bytes, ok) = Loopback.ReadPages(remote, [0x10161000, 0x2161000]);
        var (expected, _) = Loopback.ReadPages(ServedImage.Memory, [0x2161000]);

        Assert.That(ok, Is.EqualTo(new[] { true, false }));
        Assert.That(bytes.AsSpan(0, PageSize).SequenceEqual(expected));
        Assert.That(remote.MemoryMap.Single().Base, Is.EqualTo(0x10000000UL));
    }
}
