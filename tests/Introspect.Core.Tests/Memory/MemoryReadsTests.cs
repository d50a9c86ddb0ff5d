using System.Text;
using Introspect.Abi;
using Introspect.Core.Memory;

namespace Introspect.Core.Tests.Memory;

public sealed class MemoryReadsTests
{
    private ArrayPhysicalMemory _memory = null!;

    [TearDown]
    public void TearDown() => _memory.Dispose();

    [SetUp]
    public void SetUp()
    {
        _memory = new ArrayPhysicalMemory(0x10000);
        for (int i = 0; i < _memory.Bytes.Length; i++)
            _memory.Bytes[i] = unchecked((byte)(i * 7));
    }

    [Test]
    public void A_readable_range_is_one_request_straight_into_the_span()
    {
        Span<byte> buffer = stackalloc byte[0x2345];
        Assert.That(_memory.Read(0x1100, buffer), Is.EqualTo(buffer.Length));
        Assert.That(buffer.SequenceEqual(_memory.Bytes.AsSpan(0x1100, 0x2345)), Is.True);
        Assert.That(_memory.BatchSizes, Is.EqualTo(new[] { 1 }));
    }

    [Test]
    public void An_unreadable_page_ends_the_readable_prefix_found_in_one_more_batch()
    {
        _memory.MakeUnreadable(0x3000);
        var buffer = new byte[0x3000];
        Assert.That(_memory.Read(0x1800, buffer), Is.EqualTo(0x1800));
        Assert.That(buffer.AsSpan(0, 0x1800).SequenceEqual(_memory.Bytes.AsSpan(0x1800, 0x1800)), Is.True);
        Assert.That(_memory.BatchSizes, Is.EqualTo(new[] { 1, 4 }), "the whole range, then its four pages in one batch");
    }

    [Test]
    public void An_unreadable_first_page_reads_nothing()
    {
        _memory.MakeUnreadable(0x1000);
        Assert.That(_memory.Read(0x1ff0, new byte[0x100]), Is.Zero);
        Assert.That(_memory.Read(0x1010, new byte[0x10]), Is.Zero);
        Assert.That(_memory.Read(0x2_0000, new byte[0x10]), Is.Zero, "beyond the memory");
    }

    [Test]
    public void Zero_padding_fills_the_unreadable_pages_and_returns_the_whole_length()
    {
        _memory.MakeUnreadable(0x2000);
        var buffer = new byte[0x3000];
        buffer.AsSpan().Fill(0xcc);
        Assert.That(_memory.Read(0x1000, buffer, MemoryFlags.ZeroPadOnFail), Is.EqualTo(0x3000));
        Assert.That(buffer.AsSpan(0x1000, 0x1000).IndexOfAnyExcept((byte)0), Is.EqualTo(-1));
        Assert.That(buffer.AsSpan(0, 0x1000).SequenceEqual(_memory.Bytes.AsSpan(0x1000, 0x1000)), Is.True);
        Assert.That(buffer.AsSpan(0x2000).SequenceEqual(_memory.Bytes.AsSpan(0x3000, 0x1000)), Is.True);
    }

    [Test]
    public void A_range_past_2_to_the_64_is_cut_there()
    {
        var memory = new DelegateMemory((batch, _) =>
        {
            foreach (ref var request in batch)
                request.Succeeded = request.Address + (ulong)(request.Buffer.Length - 1) == ulong.MaxValue;
        });
        Assert.That(memory.Read(ulong.MaxValue - 3, new byte[16]), Is.EqualTo(4));
    }

    [Test]
    public void Typed_reads_need_every_byte()
    {
        Assert.That(_memory.TryRead(0x10, out uint value), Is.True);
        Assert.That(value, Is.EqualTo(BitConverter.ToUInt32(_memory.Bytes, 0x10)));
        _memory.MakeUnreadable(0x2000);
        Assert.That(_memory.TryRead(0x1ffe, out value), Is.False);
        Assert.That(value, Is.Zero);
        Assert.That(_memory.TryRead(0x1ffe, out value, MemoryFlags.ZeroPadOnFail), Is.True);
        Assert.That(value, Is.EqualTo(BitConverter.ToUInt16(_memory.Bytes, 0x1ffe)));
    }

    [Test]
    public void Utf8_strings_stop_at_NUL_at_the_limit_or_at_unreadable_memory()
    {
        Encoding.UTF8.GetBytes("swapper/0\0tail").CopyTo(_memory.Bytes, 0x100);
        Assert.That(_memory.ReadUtf8String(0x100, 64), Is.EqualTo("swapper/0"));
        Assert.That(_memory.ReadUtf8String(0x100, 4), Is.EqualTo("swap"));

        "grüße"u8.ToArray().CopyTo(_memory.Bytes, 0x1ff9); // runs to the end of the page
        _memory.MakeUnreadable(0x2000);
        Assert.That(_memory.ReadUtf8String(0x1ff9, 100), Is.EqualTo("grüße"));
        Assert.That(_memory.ReadUtf8String(0x2000, 100), Is.Null);
        Assert.That(_memory.ReadUtf8String(0x100, 0), Is.Null);
    }

    [Test]
    public void Long_strings_are_read_across_pages()
    {
        var text = new string('x', 5000);
        Encoding.ASCII.GetBytes(text + "\0").CopyTo(_memory.Bytes, 0x3800);
        Assert.That(_memory.ReadUtf8String(0x3800, 8192), Is.EqualTo(text));
    }

    [Test]
    public void Utf16_strings_stop_at_a_NUL_character()
    {
        Encoding.Unicode.GetBytes("ntoskrnl.exe\0junk").CopyTo(_memory.Bytes, 0x400);
        Assert.That(_memory.ReadUtf16String(0x400, 256), Is.EqualTo("ntoskrnl.exe"));
        Assert.That(_memory.ReadUtf16String(0x400, 9), Is.EqualTo("ntos"), "an odd byte limit rounds down");
        // A character straddling a page boundary is read whole.
        Encoding.Unicode.GetBytes("ab\0").CopyTo(_memory.Bytes, 0x4fff);
        Assert.That(_memory.ReadUtf16String(0x4fff, 16), Is.EqualTo("ab"));
    }

    [Test]
    public void A_memory_that_reads_another_memory_from_inside_a_read_gets_its_own_buffer()
    {
        var outer = new DelegateMemory((batch, _) =>
        {
            Span<byte> inner = stackalloc byte[4];
            foreach (ref var request in batch)
            {
                Assert.That(_memory.Read(request.Address, inner), Is.EqualTo(4));
                request.Buffer.Span.Fill(inner[0]);
                request.Succeeded = true;
            }
        });
        Span<byte> buffer = stackalloc byte[8];
        Assert.That(outer.Read(0x10, buffer), Is.EqualTo(8));
        Assert.That(buffer.IndexOfAnyExcept(_memory.Bytes[0x10]), Is.EqualTo(-1));
    }
}
