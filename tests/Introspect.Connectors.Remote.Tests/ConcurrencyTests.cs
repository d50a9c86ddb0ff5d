using System.Collections.Concurrent;
using Introspect.Abi;
using Introspect.Remote;

namespace Introspect.Connectors.Remote.Tests;

/// <summary>Many clients at once, and many batches in flight on one connection: no error, no lost or crossed reply.</summary>
public class ConcurrencyTests
{
    private const int PageSize = 4096;

    [Test]
    public void Sixteen_clients_reading_fixed_batches_at_once_all_get_their_own_pages()
    {
        const int Clients = 16, Batches = 24, PagesPerBatch = 128;
        var local = ServedImage.Memory;
        using var server = Loopback.Serve(local, Loopback.Anonymous());
        var failures = new ConcurrentQueue<string>();
        long pagesChecked = 0;
        var threads = Enumerable.Range(0, Clients).Select(client => new Thread(() =>
        {
            try
            {
                using var remote = RemoteClient.OpenPhysicalMemory(Loopback.Client(server));
                var random = new Random(client);
                for (int batch = 0; batch < Batches; batch++)
                {
                    var addresses = Enumerable.Range(0, PagesPerBatch).Select(_ => (ulong)random.Next(0, 32768) * PageSize).ToList();
                    var (actual, ok) = Loopback.ReadPages(remote, addresses);
                    var (expected, _) = Loopback.ReadPages(local, addresses);
                    if (!ok.All(o => o))
                        failures.Enqueue($"client {client} batch {batch}: {ok.Count(o => !o)} pages failed");
                    else if (!actual.AsSpan().SequenceEqual(expected))
                        failures.Enqueue($"client {client} batch {batch}: bytes differ");
                    Interlocked.Add(ref pagesChecked, PagesPerBatch);
                }
            }
            catch (Exception e)
            {
                failures.Enqueue($"client {client}: {e.GetType().Name}: {e.Message}");
            }
        })).ToList();

        threads.ForEach(t => t.Start());
        bool allDone = threads.All(t => t.Join(TimeSpan.FromSeconds(60)));

        Assert.That(allDone, "every client finished");
        Assert.That(failures, Is.Empty);
        Assert.That(Interlocked.Read(ref pagesChecked), Is.EqualTo((long)Clients * Batches * PagesPerBatch), "no reply was lost");
        Assert.That(Loopback.Eventually(() => server.ClientCount == 0));
    }

    [Test]
    public void Threads_sharing_one_connection_keep_several_batches_in_flight_and_get_their_own_replies()
    {
        var memory = ArrayMemory.Patterned(16 << 20);
        using var server = Loopback.Serve(memory, Loopback.Anonymous());
        using var remote = RemoteClient.OpenPhysicalMemory(Loopback.Client(server));
        var failures = new ConcurrentQueue<string>();

        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, worker =>
        {
            var random = new Random(100 + worker);
            for (int round = 0; round < 50; round++)
            {
                var batch = new MemoryRequest[64];
                var buffer = new byte[64 * 512];
                for (int i = 0; i < batch.Length; i++)
                    batch[i] = new MemoryRequest((ulong)random.Next(0, (16 << 20) - 512), buffer.AsMemory(i * 512, 512));
                remote.Read(batch);
                for (int i = 0; i < batch.Length; i++)
                {
                    if (!batch[i].Succeeded || !buffer.AsSpan(i * 512, 512).SequenceEqual(memory.Bytes.AsSpan((int)batch[i].Address, 512)))
                        failures.Enqueue($"worker {worker} round {round} entry {i}");
                }
            }
        });

        Assert.That(failures, Is.Empty);
    }
}
