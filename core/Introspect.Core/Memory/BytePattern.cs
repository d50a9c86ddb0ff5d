using System.Text;

namespace Introspect.Core.Memory;

/// <summary>A byte sequence to search for, in which some bytes may be wildcards.</summary>
public sealed class BytePattern
{
    private readonly byte[] _bytes;
    private readonly bool[] _wildcard;

    private BytePattern(byte[] bytes, bool[] wildcard)
    {
        _bytes = bytes;
        _wildcard = wildcard;
        // The longest run of fixed bytes is what the search looks for first (vectorized), then the rest is checked.
        int bestStart = 0, bestLength = 0;
        for (int i = 0; i < bytes.Length;)
        {
            if (wildcard[i])
            {
                i++;
                continue;
            }
            int start = i;
            while (i < bytes.Length && !wildcard[i])
                i++;
            if (i - start > bestLength)
            {
                bestStart = start;
                bestLength = i - start;
            }
        }
        AnchorOffset = bestStart;
        Anchor = bytes.AsMemory(bestStart, bestLength);
        HasWildcards = Array.IndexOf(wildcard, true) >= 0;
    }

    /// <summary>How many bytes the pattern spans.</summary>
    public int Length => _bytes.Length;

    /// <summary>Whether any byte is a wildcard.</summary>
    public bool HasWildcards { get; }

    /// <summary>The longest run of fixed bytes (empty when every byte is a wildcard).</summary>
    internal ReadOnlyMemory<byte> Anchor { get; }

    /// <summary>Where <see cref="Anchor"/> starts in the pattern.</summary>
    internal int AnchorOffset { get; }

    /// <summary>Parses hexadecimal bytes with <c>??</c> wildcards: <c>"4d 5a ?? 00"</c> or <c>"4d5a??00"</c>.</summary>
    /// <remarks>Whitespace separates groups; each group is an even number of hex digits or <c>??</c> pairs.</remarks>
    /// <exception cref="FormatException">The text is empty, holds a character that is neither a hex digit, <c>?</c>
    /// nor whitespace, splits a byte, or mixes a digit and <c>?</c> in one byte.</exception>
    public static BytePattern Parse(string hex)
    {
        ArgumentNullException.ThrowIfNull(hex);
        var bytes = new List<byte>();
        var wildcard = new List<bool>();
        int i = 0;
        while (i < hex.Length)
        {
            if (char.IsWhiteSpace(hex[i]))
            {
                i++;
                continue;
            }
            int start = i;
            while (i < hex.Length && !char.IsWhiteSpace(hex[i]))
                i++;
            var group = hex.AsSpan(start, i - start);
            if (group.Length % 2 != 0)
                throw new FormatException($"Byte pattern '{hex}': the group '{group}' at position {start} has an odd number of characters; every byte is two hex digits or '??'.");
            for (int j = 0; j < group.Length; j += 2)
            {
                char high = group[j], low = group[j + 1];
                if (high == '?' && low == '?')
                {
                    bytes.Add(0);
                    wildcard.Add(true);
                    continue;
                }
                int h = HexValue(high), l = HexValue(low);
                if (h < 0 || l < 0)
                    throw new FormatException($"Byte pattern '{hex}': '{high}{low}' at position {start + j} is not a byte; expected two hex digits or '??'.");
                bytes.Add((byte)(h << 4 | l));
                wildcard.Add(false);
            }
        }
        if (bytes.Count == 0)
            throw new FormatException("Byte pattern is empty; expected hex bytes such as '4d 5a ?? 00'.");
        return new BytePattern([.. bytes], [.. wildcard]);
    }

    /// <summary>A pattern of <paramref name="text"/>'s bytes in <paramref name="encoding"/> (UTF-8 when null), without wildcards.</summary>
    public static BytePattern FromText(string text, Encoding? encoding = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(text);
        return FromBytes((encoding ?? Encoding.UTF8).GetBytes(text));
    }

    /// <summary>A pattern of exactly these bytes.</summary>
    public static BytePattern FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty)
            throw new ArgumentException("A byte pattern needs at least one byte.", nameof(bytes));
        return new BytePattern(bytes.ToArray(), new bool[bytes.Length]);
    }

    /// <summary>Whether <paramref name="data"/> starts with the pattern.</summary>
    public bool IsMatch(ReadOnlySpan<byte> data)
    {
        if (data.Length < _bytes.Length)
            return false;
        if (!HasWildcards)
            return data.StartsWith(_bytes);
        for (int i = 0; i < _bytes.Length; i++)
        {
            if (!_wildcard[i] && data[i] != _bytes[i])
                return false;
        }
        return true;
    }

    /// <summary>The pattern in the form <see cref="Parse"/> reads: <c>4d 5a ?? 00</c>.</summary>
    public override string ToString()
    {
        var text = new StringBuilder(_bytes.Length * 3);
        for (int i = 0; i < _bytes.Length; i++)
        {
            if (i > 0)
                text.Append(' ');
            if (_wildcard[i])
                text.Append("??");
            else
                text.Append(_bytes[i].ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
        }
        return text.ToString();
    }

    private static int HexValue(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'f' => c - 'a' + 10,
        >= 'A' and <= 'F' => c - 'A' + 10,
        _ => -1,
    };
}
