namespace Introspect.Cli.Tests;

internal static class FileCompare
{
    /// <summary>The offset of the first differing byte in the first <paramref name="length"/> bytes of two files, or -1 if they agree.</summary>
    public static long FirstDifference(string left, string right, long length) => FirstDifference(left, right, 0, length);

    /// <summary>The offset of the first differing byte of two files in <paramref name="start"/>..+<paramref name="length"/>, or -1 if they agree.</summary>
    public static long FirstDifference(string left, string right, long start, long length)
    {
        using var a = File.OpenRead(left);
        using var b = File.OpenRead(right);
        if (a.Length < start + length || b.Length < start + length)
            return Math.Min(a.Length, b.Length);
        a.Position = start;
        b.Position = start;
        var bufferA = new byte[1 << 20];
        var bufferB = new byte[1 << 20];
        for (long offset = start; offset < start + length;)
        {
            int count = (int)Math.Min(bufferA.Length, start + length - offset);
            a.ReadExactly(bufferA, 0, count);
            b.ReadExactly(bufferB, 0, count);
            int mismatch = bufferA.AsSpan(0, count).CommonPrefixLength(bufferB.AsSpan(0, count));
            if (mismatch < count)
                return offset + mismatch;
            offset += count;
        }
        return -1;
    }
}
