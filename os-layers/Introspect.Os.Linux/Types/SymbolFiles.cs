using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Introspect.Os.Linux.Kernel;

namespace Introspect.Os.Linux.Types;

/// <summary>Reads the symbol files a user may give for kernels that lack kallsyms or BTF: System.map and Volatility's ISF.</summary>
internal static class SymbolFiles
{
    /// <summary>Reads a System.map file: lines of <c>address type name</c>, the address in hexadecimal.</summary>
    /// <exception cref="InvalidDataException">The file holds no symbol line, or too many.</exception>
    public static ExternalSymbols ReadSystemMap(string path)
    {
        string name = Path.GetFileName(path);
        CheckSize(path);
        var symbols = new List<KernelSymbol>();
        int lineNumber = 0, malformed = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length < 3 || parts[1].Length != 1
                || !ulong.TryParse(parts[0], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong address))
            {
                if (line.Trim().Length > 0)
                    malformed++;
                continue;
            }
            if (symbols.Count >= LinuxLimits.MaxSymbols)
                ThrowHelper.ThrowInvalid($"{name}: more than {LinuxLimits.MaxSymbols} symbols at line {lineNumber}; expected a kernel's System.map.");
            symbols.Add(new KernelSymbol(parts[2], parts[1][0], address));
        }
        if (symbols.Count == 0)
            ThrowHelper.ThrowInvalid($"{name}: no line of the form 'ADDRESS TYPE NAME' in {lineNumber} lines ({malformed} malformed); expected a System.map file.");
        return new ExternalSymbols($"System.map '{name}'", new SymbolTable(symbols, name), null);
    }

    /// <summary>Reads a Volatility 3 ISF JSON file (<c>.json</c>, or gzip-compressed <c>.json.gz</c>): symbols and types.</summary>
    /// <exception cref="InvalidDataException">The file is not JSON, or lacks the <c>symbols</c> or <c>user_types</c> objects.</exception>
    public static (ExternalSymbols Symbols, IsfTypes Types) ReadIsf(string path)
    {
        string name = Path.GetFileName(path);
        CheckSize(path);
        JsonDocument document;
        try
        {
            using var file = File.OpenRead(path);
            using Stream stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : file;
            document = JsonDocument.Parse(stream, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            return ThrowHelper.ThrowInvalid<(ExternalSymbols, IsfTypes)>($"{name}: not valid JSON ({e.Message}); expected a Volatility ISF file.");
        }
        catch (InvalidDataException e)
        {
            return ThrowHelper.ThrowInvalid<(ExternalSymbols, IsfTypes)>($"{name}: the gzip stream is damaged ({e.Message}).");
        }
        try
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("symbols", out var symbolsElement) || symbolsElement.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("user_types", out var userTypes) || userTypes.ValueKind != JsonValueKind.Object)
                return ThrowHelper.ThrowInvalid<(ExternalSymbols, IsfTypes)>($"{name}: no 'symbols' and 'user_types' objects at the top level; expected a Volatility ISF file.");

            var symbols = new List<KernelSymbol>();
            string? banner = null;
            foreach (var property in symbolsElement.EnumerateObject())
            {
                if (property.Value.ValueKind != JsonValueKind.Object || !property.Value.TryGetProperty("address", out var addressElement)
                    || !addressElement.TryGetUInt64(out ulong address))
                    continue;
                if (symbols.Count >= LinuxLimits.MaxSymbols)
                    ThrowHelper.ThrowInvalid($"{name}: more than {LinuxLimits.MaxSymbols} symbols; expected a kernel's ISF.");
                symbols.Add(new KernelSymbol(property.Name, '?', address));
                if (property.Name == "linux_banner" && property.Value.TryGetProperty("constant_data", out var data)
                    && data.ValueKind == JsonValueKind.String && data.TryGetBytesFromBase64(out var bytes))
                    banner = Encoding.UTF8.GetString(bytes);
            }
            var types = new IsfTypes($"ISF '{name}'", document);
            return (new ExternalSymbols($"ISF '{name}'", new SymbolTable(symbols, name), banner), types);
        }
        catch
        {
            document.Dispose();
            throw;
        }
    }

    private static void CheckSize(string path)
    {
        long length = new FileInfo(path).Length;
        if (length > LinuxLimits.MaxSymbolFileBytes)
            ThrowHelper.ThrowInvalid($"{Path.GetFileName(path)}: {length} bytes; a symbol file is expected to be at most {LinuxLimits.MaxSymbolFileBytes}.");
    }
}

/// <summary>Type layouts from a Volatility ISF file (<c>user_types</c>, <c>base_types</c>, <c>enums</c>), as dwarf2json writes them.</summary>
/// <remarks>
/// A field is <c>{ "offset": bytes, "type": T, "anonymous": true? }</c>; anonymous members are named
/// <c>unnamed_field_OFFSET</c> and their fields are found through them. A type descriptor is
/// <c>{ "kind": "struct"|"union"|"base"|"enum"|"pointer"|"array"|"bitfield"|"function", ... }</c>.
/// </remarks>
internal sealed class IsfTypes : IKernelTypeSource, IDisposable
{
    private const ulong DefaultPointerSize = 8;

    private readonly JsonDocument _document;
    private readonly Dictionary<string, JsonElement> _userTypes;
    private readonly Dictionary<string, JsonElement> _baseTypes;
    private readonly Dictionary<string, JsonElement> _enums;

    public IsfTypes(string description, JsonDocument document)
    {
        Description = description;
        _document = document;
        _userTypes = Index(document.RootElement, "user_types");
        _baseTypes = Index(document.RootElement, "base_types");
        _enums = Index(document.RootElement, "enums");
    }

    public string Description { get; }

    private static Dictionary<string, JsonElement> Index(JsonElement root, string name)
    {
        var index = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        if (root.TryGetProperty(name, out var element) && element.ValueKind == JsonValueKind.Object)
        {
            foreach (var property in element.EnumerateObject())
            {
                if (property.Value.ValueKind == JsonValueKind.Object)
                    index.TryAdd(property.Name, property.Value);
            }
        }
        return index;
    }

    public bool TryGetTypeSize(string typeName, out ulong size)
    {
        var name = TypeNames.StripTag(typeName, out _);
        size = 0;
        foreach (var table in (ReadOnlySpan<Dictionary<string, JsonElement>>)[_userTypes, _baseTypes, _enums])
        {
            if (table.TryGetValue(name, out var type) && type.TryGetProperty("size", out var sizeElement) && sizeElement.TryGetUInt64(out size))
                return true;
        }
        return false;
    }

    public bool TryGetField(string typeName, string fieldPath, out FieldLayout field)
    {
        field = default;
        if (string.IsNullOrEmpty(fieldPath) || !_userTypes.TryGetValue(TypeNames.StripTag(typeName, out _), out var current))
            return false;
        ulong offset = 0;
        JsonElement type = default;
        var parts = fieldPath.Split('.');
        for (int i = 0; i < parts.Length; i++)
        {
            if (!TryFindField(current, parts[i], 0, out ulong fieldOffset, out type))
                return false;
            offset = unchecked(offset + fieldOffset);
            if (i < parts.Length - 1 && !TryUserType(type, out current))
                return false;
        }
        int bitOffset = 0, bitSize = 0;
        if (Kind(type) == "bitfield")
        {
            bitOffset = type.TryGetProperty("bit_position", out var position) && position.TryGetInt32(out int p) && p >= 0 ? p : 0;
            bitSize = type.TryGetProperty("bit_length", out var length) && length.TryGetInt32(out int l) && l >= 0 ? l : 0;
            offset = unchecked(offset + (ulong)(bitOffset / 8));
            bitOffset %= 8;
        }
        ulong? count = Kind(type) == "array" && type.TryGetProperty("count", out var countElement) && countElement.TryGetUInt64(out ulong c) ? c : null;
        field = new FieldLayout(offset, bitSize != 0 ? 0 : SizeOf(type, 0), count, bitOffset, bitSize);
        return true;
    }

    private bool TryFindField(JsonElement aggregate, string name, int depth, out ulong offset, out JsonElement type)
    {
        offset = 0;
        type = default;
        if (depth > LinuxLimits.MaxTypeDepth || !aggregate.TryGetProperty("fields", out var fields) || fields.ValueKind != JsonValueKind.Object)
            return false;
        if (fields.TryGetProperty(name, out var direct) && direct.ValueKind == JsonValueKind.Object && !IsAnonymous(direct, name))
        {
            offset = OffsetOf(direct);
            return direct.TryGetProperty("type", out type);
        }
        foreach (var member in fields.EnumerateObject())
        {
            if (member.Value.ValueKind != JsonValueKind.Object || !IsAnonymous(member.Value, member.Name)
                || !member.Value.TryGetProperty("type", out var memberType) || !TryUserType(memberType, out var inner))
                continue;
            if (TryFindField(inner, name, depth + 1, out ulong innerOffset, out type))
            {
                offset = unchecked(OffsetOf(member.Value) + innerOffset);
                return true;
            }
        }
        return false;
    }

    private static bool IsAnonymous(JsonElement field, string name) =>
        (field.TryGetProperty("anonymous", out var anonymous) && anonymous.ValueKind == JsonValueKind.True)
        || name.StartsWith("unnamed_field", StringComparison.Ordinal);

    private static ulong OffsetOf(JsonElement field) =>
        field.TryGetProperty("offset", out var offset) && offset.TryGetUInt64(out ulong value) ? value : 0;

    private static string? Kind(JsonElement type) =>
        type.ValueKind == JsonValueKind.Object && type.TryGetProperty("kind", out var kind) && kind.ValueKind == JsonValueKind.String ? kind.GetString() : null;

    private bool TryUserType(JsonElement type, out JsonElement userType)
    {
        userType = default;
        return Kind(type) is "struct" or "union" && type.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String
            && _userTypes.TryGetValue(name.GetString()!, out userType);
    }

    private ulong SizeOf(JsonElement type, int depth)
    {
        if (depth > LinuxLimits.MaxTypeDepth)
            return 0;
        string? Named() => type.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null;
        switch (Kind(type))
        {
            case "struct" or "union":
                return Named() is { } aggregate && TryGetTypeSize(aggregate, out ulong size) ? size : 0;
            case "base":
                return Named() is { } baseName && _baseTypes.TryGetValue(baseName, out var baseType)
                    && baseType.TryGetProperty("size", out var baseSize) && baseSize.TryGetUInt64(out ulong b) ? b : 0;
            case "enum":
                return Named() is { } enumName && _enums.TryGetValue(enumName, out var enumType)
                    && enumType.TryGetProperty("size", out var enumSize) && enumSize.TryGetUInt64(out ulong e) ? e : 0;
            case "pointer":
                return _baseTypes.TryGetValue("pointer", out var pointer) && pointer.TryGetProperty("size", out var pointerSize)
                    && pointerSize.TryGetUInt64(out ulong p) ? p : DefaultPointerSize;
            case "array":
                if (!type.TryGetProperty("count", out var count) || !count.TryGetUInt64(out ulong elements)
                    || !type.TryGetProperty("subtype", out var subtype))
                    return 0;
                ulong element = SizeOf(subtype, depth + 1);
                return element != 0 && elements <= ulong.MaxValue / element ? element * elements : 0;
            default:
                return 0;
        }
    }

    public void Dispose() => _document.Dispose();
}

/// <summary>Asks one type source, then another for what the first lacks.</summary>
internal sealed class CombinedTypes(IKernelTypeSource first, IKernelTypeSource second) : IKernelTypeSource
{
    public string Description => $"{first.Description} + {second.Description}";

    public bool TryGetTypeSize(string typeName, out ulong size) =>
        first.TryGetTypeSize(typeName, out size) || second.TryGetTypeSize(typeName, out size);

    public bool TryGetField(string typeName, string fieldPath, out FieldLayout field) =>
        first.TryGetField(typeName, fieldPath, out field) || second.TryGetField(typeName, fieldPath, out field);
}
