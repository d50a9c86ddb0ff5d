namespace Introspect.Os.Linux.Types;

/// <summary>Where a field sits in a structure, and what it holds.</summary>
/// <param name="Offset">Bytes from the start of the outer type (for a bit field: of the byte holding its first bit).</param>
/// <param name="Size">Bytes the field takes; 0 when unknown (a flexible array, a function).</param>
/// <param name="ElementCount">The element count when the field is an array, else null.</param>
/// <param name="BitOffset">For a bit field: its first bit, counted from <paramref name="Offset"/>.</param>
/// <param name="BitSize">For a bit field: its width in bits; 0 for an ordinary field.</param>
internal readonly record struct FieldLayout(ulong Offset, ulong Size, ulong? ElementCount, int BitOffset = 0, int BitSize = 0);

/// <summary>A source of kernel type layouts: the kernel's own BTF, or a symbol file.</summary>
internal interface IKernelTypeSource
{
    /// <summary>Says where the layouts come from, for messages (<c>BTF in memory</c>, a file's name).</summary>
    string Description { get; }

    /// <summary>The size of a structure, union, typedef or base type; <c>struct </c>/<c>union </c>/<c>enum </c> prefixes are allowed.</summary>
    bool TryGetTypeSize(string typeName, out ulong size);

    /// <summary>A field of <paramref name="typeName"/>: nested fields joined with dots; members of anonymous structures and unions are found by their own names.</summary>
    bool TryGetField(string typeName, string fieldPath, out FieldLayout field);
}

/// <summary>Splits the <c>struct </c>, <c>union </c> or <c>enum </c> prefix off a type name.</summary>
internal static class TypeNames
{
    public static string StripTag(string typeName, out bool hadTag)
    {
        var name = typeName.Trim();
        foreach (var tag in (ReadOnlySpan<string>)["struct ", "union ", "enum "])
        {
            if (name.StartsWith(tag, StringComparison.Ordinal))
            {
                hadTag = true;
                return name[tag.Length..].Trim();
            }
        }
        hadTag = false;
        return name;
    }
}
