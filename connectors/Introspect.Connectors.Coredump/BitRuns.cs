using System.Buffers.Binary;
using System.Numerics;

namespace Introspect.Connectors.Coredump;

/// <summary>Runs and counts of set bits in the page bitmaps of crash dumps and kdump files (bit n = page n, least significant bit first).</summary>
internal static class BitRuns
{
    /// <summary>Adds every run of set bits among the first <paramref name="bitCount"/> bits as (first bit, length).</summary>
    public static void Collect(ReadOnlySpan<byte> bitmap, ulong bitCount, List<(ulong Start, ulong Length)> runs)
    {
        ulong bit = 0;
        while (bit < bitCount)
        {
            ulong start = Next(bitmap, bit, bitCount, set: true);
            if (start >= bitCount)
                return;
            ulong end = Next(bitmap, start, bitCount, set: false);
            runs.Add((start, end - start));
            bit = end;
        }
    }

    /// <summary>How many of the first <paramref name="bitCount"/> bits are set.</summary>
    public static ulong PopCount(ReadOnlySpan<byte> bitmap, ulong bitCount)
    {
        ulong total = 0;
        ulong words = bitCount / 64;
        for (ulong w = 0; w < words; w++)
            total += (ulong)BitOperations.PopCount(Word(bitmap, w));
        int rest = (int)(bitCount % 64);
        if (rest != 0)
            total += (ulong)BitOperations.PopCount(Word(bitmap, words) & ((1UL << rest) - 1));
        return total;
    }

    /// <summary>The first bit at or after <paramref name="from"/> that is set (or clear), or <paramref name="bitCount"/>.</summary>
    private static ulong Next(ReadOnlySpan<byte> bitmap, ulong from, ulong bitCount, bool set)
    {
        ulong word = from / 64;
        ulong value = Word(bitmap, word);
        if (!set)
            value = ~value;
        value &= ulong.MaxValue << (int)(from % 64);
        ulong lastWord = (bitCount - 1) / 64;
        while (value == 0)
        {
            if (word >= lastWord)
                return bitCount;
            word++;
            value = Word(bitmap, word);
            if (!set)
                value = ~value;
        }
        ulong found = word * 64 + (ulong)BitOperations.TrailingZeroCount(value);
        return found < bitCount ? found : bitCount;
    }

    /// <summary>64 bits from byte 8*<paramref name="index"/>; bytes past the bitmap read as zero.</summary>
    private static ulong Word(ReadOnlySpan<byte> bitmap, ulong index)
    {
        ulong offset = index * 8;
        if (offset + 8 <= (ulong)bitmap.Length)
            return BinaryPrimitives.ReadUInt64LittleEndian(bitmap[(int)offset..]);
        ulong value = 0;
        for (int i = 0; offset + (ulong)i < (ulong)bitmap.Length && i < 8; i++)
            value |= (ulong)bitmap[(int)offset + i] << (8 * i);
        return value;
    }
}
