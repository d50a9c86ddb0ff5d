using System.Collections.Immutable;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using Introspect.Abi;

namespace Introspect.Core.Plugins;

/// <summary>Reads <see cref="IntrospectPluginAttribute"/> declarations out of an assembly file without loading it.</summary>
internal static class ManagedPluginReader
{
    private const string AttributeNamespace = "Introspect.Abi";
    private const string AttributeName = nameof(IntrospectPluginAttribute);

    /// <summary>The plugins <paramref name="path"/> declares; empty for an assembly that declares none or a file that is not one.</summary>
    /// <exception cref="InvalidDataException">The file is an assembly whose declaration cannot be decoded.</exception>
    public static IReadOnlyList<PluginDescriptor> Read(string path)
    {
        using var stream = File.OpenRead(path);
        using var peReader = new PEReader(stream);
        if (!peReader.HasMetadata)
            return [];
        var metadata = peReader.GetMetadataReader();
        if (!metadata.IsAssembly)
            return [];

        var plugins = new List<PluginDescriptor>();
        foreach (var handle in metadata.GetAssemblyDefinition().GetCustomAttributes())
        {
            var attribute = metadata.GetCustomAttribute(handle);
            if (!IsPluginAttribute(metadata, attribute))
                continue;
            CustomAttributeValue<string> value;
            try
            {
                value = attribute.DecodeValue(AttributeTypeNames.Instance);
            }
            catch (BadImageFormatException e)
            {
                throw new InvalidDataException($"{path}: its {AttributeName} cannot be decoded: {e.Message}", e);
            }
            plugins.Add(ToDescriptor(path, value));
        }
        return plugins;
    }

    private static bool IsPluginAttribute(MetadataReader metadata, CustomAttribute attribute)
    {
        // The constructor of an attribute defined in another assembly is a member reference on a type reference.
        if (attribute.Constructor.Kind != HandleKind.MemberReference)
            return false;
        var constructor = metadata.GetMemberReference((MemberReferenceHandle)attribute.Constructor);
        if (constructor.Parent.Kind != HandleKind.TypeReference)
            return false;
        var type = metadata.GetTypeReference((TypeReferenceHandle)constructor.Parent);
        return metadata.StringComparer.Equals(type.Name, AttributeName) && metadata.StringComparer.Equals(type.Namespace, AttributeNamespace);
    }

    private static PluginDescriptor ToDescriptor(string path, CustomAttributeValue<string> value)
    {
        ImmutableArray<CustomAttributeTypedArgument<string>> fixedArguments = value.FixedArguments;
        if (fixedArguments.Length != 5)
            throw new InvalidDataException($"{path}: {AttributeName} has {fixedArguments.Length} constructor arguments; expected 5 (kind, name, version, ABI version, factory type).");

        var kind = fixedArguments[0].Value is int kindValue && Enum.IsDefined((PluginKind)kindValue)
            ? (PluginKind)kindValue
            : throw new InvalidDataException($"{path}: {AttributeName} kind '{fixedArguments[0].Value}' is not a known plugin kind.");
        var name = fixedArguments[1].Value as string;
        if (string.IsNullOrEmpty(name) || !PluginNames.IsValid(name))
            throw new InvalidDataException($"{path}: {AttributeName} name '{name}' is not a plugin name; expected lower-case letters, digits, '_' or '-'.");
        var versionText = fixedArguments[2].Value as string;
        if (!System.Version.TryParse(versionText, out var version))
            throw new InvalidDataException($"{path}: plugin '{name}' has version '{versionText}'; expected major.minor[.patch].");
        var abiVersion = fixedArguments[3].Value is int abi
            ? abi
            : throw new InvalidDataException($"{path}: plugin '{name}' has no integer ABI version.");
        var entryPoint = fixedArguments[4].Value as string;
        if (string.IsNullOrEmpty(entryPoint))
            throw new InvalidDataException($"{path}: plugin '{name}' names no factory type.");

        string description = "";
        foreach (var named in value.NamedArguments)
        {
            if (named.Name == nameof(IntrospectPluginAttribute.Description) && named.Value is string text)
                description = text;
        }
        return new PluginDescriptor(kind, name, version, abiVersion, description, path, entryPoint);
    }

    /// <summary>Decodes attribute argument types as their names; the only enum a plugin declaration holds is <see cref="PluginKind"/> (an int).</summary>
    private sealed class AttributeTypeNames : ICustomAttributeTypeProvider<string>
    {
        public static readonly AttributeTypeNames Instance = new();

        public string GetPrimitiveType(PrimitiveTypeCode typeCode) => typeCode.ToString();

        public string GetSystemType() => "System.Type";

        public string GetSZArrayType(string elementType) => elementType + "[]";

        public string GetTypeFromDefinition(MetadataReader reader, TypeDefinitionHandle handle, byte rawTypeKind)
        {
            var definition = reader.GetTypeDefinition(handle);
            return reader.GetString(definition.Namespace) + "." + reader.GetString(definition.Name);
        }

        public string GetTypeFromReference(MetadataReader reader, TypeReferenceHandle handle, byte rawTypeKind)
        {
            var reference = reader.GetTypeReference(handle);
            return reader.GetString(reference.Namespace) + "." + reader.GetString(reference.Name);
        }

        public string GetTypeFromSerializedName(string name) => name;

        public PrimitiveTypeCode GetUnderlyingEnumType(string type) =>
            type == typeof(PluginKind).FullName
                ? PrimitiveTypeCode.Int32
                : throw new BadImageFormatException($"unexpected enum type '{type}' in a plugin declaration");

        public bool IsSystemType(string type) => type == "System.Type";
    }
}

/// <summary>The rule for plugin names: what chains can write without quoting.</summary>
public static class PluginNames
{
    public static bool IsValid(string name) =>
        name.Length is > 0 and <= 64 && name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '_' or '-');
}
