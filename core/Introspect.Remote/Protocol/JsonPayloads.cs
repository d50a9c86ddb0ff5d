using System.Text.Json;
using Introspect.Abi;

namespace Introspect.Remote.Protocol;

/// <summary>What a server says about what it serves, in reply to <see cref="MessageType.Describe"/>.</summary>
/// <remarks>Descriptions and lists travel as JSON: they are read once, change shape more often than the hot path, and a reader that ignores unknown fields lets either side grow them.</remarks>
internal sealed record ServedDescription
{
    /// <summary>The chain's plugins by name (<c>coredump -> linux</c>); never their arguments, which may name the server's files.</summary>
    public string Chain { get; init; } = "";

    public ulong MaxAddress { get; init; }

    public ulong RealSize { get; init; }

    public bool ReadOnly { get; init; }

    public int IdealBatchSize { get; init; }

    /// <summary>The memory map as <c>[base, size]</c> pairs in the server's physical addresses.</summary>
    public IReadOnlyList<ulong[]> MemoryMap { get; init; } = [];

    public ConnectorHints? Hints { get; init; }

    /// <summary>The OS the chain ends in, or null for a chain that ends in a connector.</summary>
    public OsInfo? OperatingSystem { get; init; }

    public int SymbolCount { get; init; }

    /// <summary>The memory map as a <see cref="Abi.MemoryMap"/>; ranges that overlap, wrap or are empty make it malformed.</summary>
    public MemoryMap ToMemoryMap(string peer)
    {
        var ranges = new List<MemoryRange>(MemoryMap.Count);
        foreach (var pair in MemoryMap)
        {
            if (pair is not { Length: 2 })
                throw new InvalidDataException($"{peer}: the description's memory map holds an entry that is not a [base, size] pair.");
            ranges.Add(new MemoryRange(pair[0], pair[1]));
        }
        try
        {
            return new MemoryMap(ranges);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{peer}: the description's memory map is not valid: {e.Message}", e);
        }
    }
}

/// <summary>The JSON settings both sides use, and decoding that turns bad JSON into <see cref="InvalidDataException"/>.</summary>
internal static class JsonPayload
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        // Nothing served nests deeper than a process's argument list; a deep document is an attack, not data.
        MaxDepth = 16,
    };

    public static byte[] Encode<T>(T value) => JsonSerializer.SerializeToUtf8Bytes(value, Options);

    public static T? Decode<T>(ReadOnlySpan<byte> payload, string peer, string what)
    {
        try
        {
            return JsonSerializer.Deserialize<T>(payload, Options);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{peer}: the {what} reply is not the JSON expected: {e.Message}", e);
        }
    }
}
