using Introspect.Abi;
using Introspect.TestSupport;

namespace Introspect.Connectors.Coredump.Tests;

/// <summary>A read allocates nothing once warm, in the formats read in place and in the compressed ones.</summary>
public class AllocationTests
{
    [TestCase("raw", MemoryFlags.None)]
    [TestCase("kdump", MemoryFlags.None)]
    [TestCase("kdump", MemoryFlags.NoCache)]
    [TestCase("kdump", MemoryFlags.ZeroPadOnFail)]
    public void A_warm_batch_allocates_nothing(string source, MemoryFlags flags)
    {
        using var memory = Support.Open(source == "raw" ? TestInputs.LinuxRawImage : TestInputs.LinuxFlattenedKdump);
        var random = new Random(3);
        // Whole pages, unaligned pieces across page boundaries, and a few holes.
        var batch = Enumerable.Range(0, 512).Select(i => new MemoryRequest(
            i % 50 == 0 ? 0xA0000 + (ulong)i : (ulong)random.NextInt64(0x100000, 100L << 20),
            new byte[i % 3 == 0 ? 4096 : random.Next(1, 9000)])).ToArray();
        memory.Read(batch, flags);
        memory.Read(batch, flags);
        const int Rounds = 40;
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int round = 0; round < Rounds; round++)
            memory.Read(batch, flags);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        // Less than a byte per request: the runtime's own one-off allocations (tiered JIT) pass, one object per request cannot.
        Assert.That(allocated, Is.LessThan(Rounds * batch.Length));
        // The raw image holds the VGA window; the kdump file does not.
        bool holesFail = source == "kdump" && flags != MemoryFlags.ZeroPadOnFail;
        Assert.That(batch.Count(e => e.Succeeded), Is.EqualTo(holesFail ? 512 - 11 : 512));
    }
}
