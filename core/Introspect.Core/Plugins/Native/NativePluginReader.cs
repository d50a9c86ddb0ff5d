using System.Buffers.Binary;
using Introspect.Abi;

namespace Introspect.Core.Plugins.Native;

/// <summary>Reads <c>ip_plugin_descriptor</c>s out of a native library's file, without loading it.</summary>
/// <remarks>
/// Everything a descriptor says before <c>create</c> is inline text and 32-bit numbers, so the bytes in the file are
/// the bytes the library will have once loaded; the <c>create</c> pointer, which the dynamic loader relocates, is
/// never read here.
/// </remarks>
internal static class NativePluginReader
{
    /// <summary>The plugins <paramref name="image"/> exports.</summary>
    /// <exception cref="InvalidDataException">An export with the descriptor prefix is not a valid descriptor; the message names the file, the symbol and the field.</exception>
    public static IReadOnlyList<PluginDescriptor> Read(NativeImage image)
    {
        var plugins = new List<PluginDescriptor>();
        foreach (var export in image.Exports)
        {
            if (export.Problem is not null)
                throw new InvalidDataException($"{image.Path}: {export.Problem}.");
            plugins.Add(Parse(image, export));
        }
        return plugins;
    }

    /// <summary>Checks one descriptor's bytes field by field.</summary>
    public static PluginDescriptor Parse(NativeImage image, NativeExport export) =>
        Parse(image.Path, export.Symbol, export.Data, export.DeclaredSize, image.PointerSize, image.Incompatibility);

    public static PluginDescriptor Parse(string path, string symbol, ReadOnlySpan<byte> data, ulong? declaredSize, int pointerSize, string? platformProblem)
    {
        string where = $"{path}: descriptor '{symbol}'";
        if (data.Length < 8)
            throw new InvalidDataException($"{where} has {data.Length} bytes in the file; expected at least its size and version (8 bytes).");
        uint size = BinaryPrimitives.ReadUInt32LittleEndian(data);
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(data[4..]);
        if (version != NativeAbi.DescriptorVersion)
            throw new InvalidDataException($"{where} has descriptor version {version}; this host reads version {NativeAbi.DescriptorVersion} (plugin ABI {IntrospectAbi.Version}).");
        int expected = NativeAbi.DescriptorSize(pointerSize);
        if (size < expected || size > NativeAbi.MaxDescriptorSize)
            throw new InvalidDataException($"{where} has size {size}; expected at least {expected} (sizeof(ip_plugin_descriptor) for {pointerSize * 8}-bit code) and at most {NativeAbi.MaxDescriptorSize}.");
        if (size > data.Length || (declaredSize is { } symbolSize && symbolSize < size))
            throw new InvalidDataException($"{where} has size {size}, but the file holds {Math.Min((ulong)data.Length, declaredSize ?? ulong.MaxValue)} bytes for it.");
        if (!data.Slice(NativeAbi.DescriptorMagicOffset, 8).SequenceEqual(NativeAbi.Magic))
            throw new InvalidDataException($"{where} has magic '{NativeAbi.ReadText(data.Slice(NativeAbi.DescriptorMagicOffset, 8))}'; expected \"IPLUGIN\".");

        int abi = (int)BinaryPrimitives.ReadUInt32LittleEndian(data[NativeAbi.DescriptorAbiOffset..]);
        uint kindValue = BinaryPrimitives.ReadUInt32LittleEndian(data[NativeAbi.DescriptorKindOffset..]);
        uint inputs = BinaryPrimitives.ReadUInt32LittleEndian(data[NativeAbi.DescriptorInputsOffset..]);
        uint parameterCount = BinaryPrimitives.ReadUInt32LittleEndian(data[NativeAbi.DescriptorParameterCountOffset..]);
        var kind = kindValue switch
        {
            NativeAbi.KindConnector => PluginKind.Connector,
            NativeAbi.KindOs => PluginKind.OperatingSystem,
            _ => throw new InvalidDataException($"{where} has kind {kindValue}; expected 1 (IP_KIND_CONNECTOR) or 2 (IP_KIND_OS)."),
        };
        string name = NativeAbi.ReadText(data.Slice(NativeAbi.DescriptorNameOffset, NativeAbi.NameMax));
        if (!PluginNames.IsValid(name))
            throw new InvalidDataException($"{where} has name '{name}'; expected lower-case letters, digits, '_' or '-' (at most 64).");
        string versionText = NativeAbi.ReadText(data.Slice(NativeAbi.DescriptorVersionOffset, NativeAbi.VersionMax));
        if (!System.Version.TryParse(versionText, out var pluginVersion))
            throw new InvalidDataException($"{where} (plugin '{name}') has version '{versionText}'; expected major.minor[.patch].");
        string description = NativeAbi.ReadText(data.Slice(NativeAbi.DescriptorDescriptionOffset, NativeAbi.DescriptionMax));
        string help = NativeAbi.ReadText(data.Slice(NativeAbi.DescriptorHelpOffset, NativeAbi.HelpMax));

        if (abi != IntrospectAbi.Version)
        {
            // Another ABI may lay out the rest differently: keep what identifies the plugin, read nothing more.
            return new PluginDescriptor(kind, name, pluginVersion, abi, description, path, symbol)
            {
                Format = PluginFormat.Native,
                Help = help,
                PlatformProblem = platformProblem,
            };
        }

        if (parameterCount > NativeAbi.ParametersMax)
            throw new InvalidDataException($"{where} (plugin '{name}') has parameter_count {parameterCount}; expected at most {NativeAbi.ParametersMax}.");
        var parameters = new List<PluginParameter>();
        for (int i = 0; i < parameterCount; i++)
        {
            var entry = data.Slice(NativeAbi.DescriptorParametersOffset + i * NativeAbi.ParameterSize, NativeAbi.ParameterSize);
            var parameter = ParseParameter(where, name, i, entry);
            if (parameter is null)
                break;
            if (parameters.Any(p => p.Name == parameter.Name))
                throw new InvalidDataException($"{where} (plugin '{name}') declares parameter '{parameter.Name}' twice.");
            parameters.Add(parameter);
        }
        if (parameters.Count(p => p.IsDefaultArgument) > 1)
            throw new InvalidDataException($"{where} (plugin '{name}') marks {string.Join(" and ", parameters.Where(p => p.IsDefaultArgument).Select(p => p.Name))} as the default argument; expected at most one.");

        (bool, bool)? connectorInputs = null;
        if (kind == PluginKind.Connector)
        {
            if ((inputs & (NativeAbi.InputNone | NativeAbi.InputOs)) == 0)
                throw new InvalidDataException($"{where} (connector '{name}') has inputs 0x{inputs:x}; expected IP_INPUT_NONE (0x1), IP_INPUT_OS (0x2) or both.");
            connectorInputs = ((inputs & NativeAbi.InputNone) != 0, (inputs & NativeAbi.InputOs) != 0);
        }
        return new PluginDescriptor(kind, name, pluginVersion, abi, description, path, symbol)
        {
            Format = PluginFormat.Native,
            DeclaredParameters = parameters,
            Help = help,
            ConnectorInputs = connectorInputs,
            PlatformProblem = platformProblem,
        };
    }

    private static PluginParameter? ParseParameter(string where, string plugin, int index, ReadOnlySpan<byte> entry)
    {
        string name = NativeAbi.ReadText(entry[..NativeAbi.ParameterNameMax]);
        if (name.Length == 0)
            return null;
        if (!IsParameterName(name))
            throw new InvalidDataException($"{where} (plugin '{plugin}') parameter {index} is named '{name}'; expected lower-case letters, digits, '_', '-' or '.'.");
        uint type = BinaryPrimitives.ReadUInt32LittleEndian(entry[NativeAbi.ParameterNameMax..]);
        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(entry[(NativeAbi.ParameterNameMax + 4)..]);
        if (type > (uint)PluginParameterType.Choice)
            throw new InvalidDataException($"{where} (plugin '{plugin}') parameter '{name}' has type {type}; expected 0 (string) to 4 (choice).");
        int at = NativeAbi.ParameterNameMax + 8;
        string defaultValue = NativeAbi.ReadText(entry.Slice(at, NativeAbi.ParameterDefaultMax));
        at += NativeAbi.ParameterDefaultMax;
        string choices = NativeAbi.ReadText(entry.Slice(at, NativeAbi.ParameterChoicesMax));
        at += NativeAbi.ParameterChoicesMax;
        string description = NativeAbi.ReadText(entry.Slice(at, NativeAbi.ParameterDescriptionMax));
        var choiceList = choices.Split('|', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (type == (uint)PluginParameterType.Choice && choiceList.Length == 0)
            throw new InvalidDataException($"{where} (plugin '{plugin}') parameter '{name}' is a choice with no choices; expected 'a|b|c'.");
        return new PluginParameter(name, (PluginParameterType)type, description)
        {
            Required = (flags & NativeAbi.ParamRequired) != 0,
            IsDefaultArgument = (flags & NativeAbi.ParamDefaultArgument) != 0,
            DefaultValue = defaultValue.Length == 0 ? null : defaultValue,
            Choices = choiceList,
        };
    }

    private static bool IsParameterName(string name) =>
        name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '_' or '-' or '.');
}
