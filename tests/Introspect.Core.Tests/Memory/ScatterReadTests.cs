using Introspect.Abi;
using Introspect.Core.Memory;

namespace Introspect.Core.Tests.Memory;

public sealed class ScatterReadTests
{
    private ArrayPhysicalMemory _memory = null!;

    [TearDown]
    public void TearDown() => _memory.Dispose();

    [SetUp]
    public void SetUp()
    {
        _memory = new ArrayPhysicalMemory(0x10000);
        Random.Shared.NextBytes(_memory.Bytes);
    }

    [Test]
    public void Prepared_ranges_are_read_in_one_batch_of_distinct_pages()
    {
        var scatter = new ScatterRead(_memory);
        scatter.Prepare(0x1010, 8);
        scatter.Prepare(0x1ff8, 16);     // pages 1 and 2
        scatter.Prepare<ulong>(0x1020);  // page 1 again
        scatter.Prepare(0x5000, 0x1000);
        Assert.That(scatter.PageCount, Is.EqualTo(3));

        scatter.Execute();

        Assert.That(_memory.BatchSizes, Is.EqualTo(new[] { 3 }));
        Assert.That(scatter.Read(0x1ff8, 16), Is.EqualTo(_memory.Bytes.AsSpan(0x1ff8, 16).ToArray()));
        Assert.That(scatter.TryRead(0x1020, out ulong value), Is.True);
        Assert.That(value, Is.EqualTo(BitConverter.ToUInt64(_memory.Bytes, 0x1020)));
        Assert.That(scatter.Read(0x5000, 0x1000), Is.EqualTo(_memory.Bytes.AsSpan(0x5000, 0x1000).ToArray()));
    }

    [Test]
    public void What_was_not_prepared_executed_or_readable_is_not_answered()
    {
        _memory.MakeUnreadable(0x3000);
        var scatter = new ScatterRead(_memory);
        scatter.Prepare(0x2000, 0x2000);
        Assert.That(scatter.TryRead(0x2000, new byte[4]), Is.False, "not executed yet");
        scatter.Execute();
        Assert.That(scatter.TryRead(0x2000, new byte[4]), Is.True);
        Assert.That(scatter.TryRead(0x2ffe, new byte[4]), Is.False, "runs into the unreadable page");
        Assert.That(scatter.TryRead(0x6000, out uint _), Is.False, "never prepared");
        scatter.Prepare(0x6000, 4);
        Assert.That(scatter.Read(0x6000, 4), Is.Null, "prepared after the execute");

        scatter.Clear();
        Assert.That(scatter.PageCount, Is.Zero);
        Assert.That(scatter.TryRead(0x2000, new byte[4]), Is.False);
    }

    [Test]
    public void Zero_padding_answers_unreadable_pages_with_zeros()
    {
        _memory.MakeUnreadable(0x3000);
        var scatter = new ScatterRead(_memory, MemoryFlags.ZeroPadOnFail);
        scatter.Prepare(0x3000, 8);
        scatter.Execute();
        Assert.That(scatter.Read(0x3000, 8), Is.EqualTo(new byte[8]));
    }

    [Test]
    public void A_physical_memory_gets_batches_of_its_ideal_size()
    {
        _memory.IdealBatchSize = 2;
        var scatter = new ScatterRead(_memory);
        for (ulong page = 0; page < 5; page++)
            scatter.Prepare(page * 0x1000, 1);
        scatter.Execute();
        Assert.That(_memory.BatchSizes, Is.EqualTo(new[] { 2, 2, 1 }));
        scatter.Execute();
        Assert.That(_memory.ReadCalls, Is.EqualTo(6), "executing again reads again");
    }

    [Test]
    public void Any_other_memory_gets_one_batch()
    {
        var memory = new DelegateMemory((batch, _) =>
        {
            foreach (ref var request in batch)
                request.Succeeded = true;
        });
        var scatter = new ScatterRead(memory);
        for (ulong page = 0; page < 5000; page++)
            scatter.Prepare(page * 0x1000, 1);
        scatter.Execute();
        Assert.That(memory.ReadCalls, Is.EqualTo(1));
    }

    [Test]
    public void Preparing_more_than_an_array_can_hold_is_refused()
    {
        var scatter = new ScatterRead(_memory);
        Assert.That(() => scatter.Prepare(0, int.MaxValue), Throws.InvalidOperationException.With.Message.Contains(ScatterRead.MaxPages.ToString()));
    }
}
