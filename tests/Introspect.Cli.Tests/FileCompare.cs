namespace Introspect.Cli.Tests;

internal static class FileCompare
{
    /// <summary>The offset of the first differing byte in the first <paramref name="length"/> bytes of two files, or -1 if they agree.</summary>
    public static long FirstDifference(string left, string right, long length)
    {
        using var a = File.OpenRead(left);
        using var b = File.OpenRead(right);
        if (a.Length < length || b.Length < length)
            return Math.Min(a.Length, b.Length);
        var bufferA = new byte[1 << 20];
        var bufferB = new byte[1 << 20];
        for (long offset = 0; offset < length;)
        {
            int count = (int)Math.Min(bufferA.Length, length - offset);
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
