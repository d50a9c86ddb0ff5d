using System.Globalization;
using System.Reflection;
using System.Text.Json;

namespace Introspect.Os.Windows.Offsets;

/// <summary>The structure layouts shipped with the layer (<c>layouts.json</c>): public layouts of released kernels, by
/// build and architecture, for when the kernel's PDB cannot be had.</summary>
internal static class BuiltInLayouts
{
    private static readonly Lazy<IReadOnlyList<Layout>> All = new(Load);

    internal sealed record Layout(string Name, bool Is64, uint MinBuild, uint MaxBuild, WindowsOffsets Offsets);

    public static IReadOnlyList<Layout> Layouts => All.Value;

    /// <summary>The layout of exactly this build and pointer size, or null.</summary>
    public static Layout? For(uint build, int pointerSize) =>
        Layouts.FirstOrDefault(l => l.Is64 == (pointerSize == 8) && build >= l.MinBuild && build <= l.MaxBuild);

    private static List<Layout> Load()
    {
        using var stream = typeof(BuiltInLayouts).Assembly.GetManifestResourceStream("Introspect.Os.Windows.layouts.json")
            ?? throw new InvalidOperationException("The layer's built-in layouts (layouts.json) are missing from its assembly.");
        using var document = JsonDocument.Parse(stream);
        var layouts = new List<Layout>();
        foreach (var element in document.RootElement.GetProperty("layouts").EnumerateArray())
        {
            string name = element.GetProperty("name").GetString()!;
            bool is64 = element.GetProperty("architecture").GetString() == "x64";
            var fields = element.GetProperty("fields");
            int F(string key) => fields.TryGetProperty(key, out var value) ? ParseNumber(value.GetString()!, name, key) : -1;
            var offsets = new WindowsOffsets
            {
                Source = $"built-in layout \"{name}\"",
                PointerSize = is64 ? 8 : 4,
                DirectoryTableBase = F("DirectoryTableBase"),
                UserDirectoryTableBase = F("UserDirectoryTableBase"),
                UniqueProcessId = F("UniqueProcessId"),
                ActiveProcessLinks = F("ActiveProcessLinks"),
                InheritedFromUniqueProcessId = F("InheritedFromUniqueProcessId"),
                CreateTime = F("CreateTime"),
                ExitTime = F("ExitTime"),
                ExitStatus = F("ExitStatus"),
                ImageFileName = F("ImageFileName"),
                Peb = F("Peb"),
                WoW64Process = F("WoW64Process"),
                SeAuditProcessCreationInfo = F("SeAuditProcessCreationInfo"),
                VadRoot = F("VadRoot"),
                EprocessSize = F("EprocessSize"),
                VadTree = Enum.Parse<VadTreeKind>(element.GetProperty("vadTree").GetString()!),
                VadLeft = F("VadLeft"),
                VadRight = F("VadRight"),
                VadStartingVpn = F("VadStartingVpn"),
                VadEndingVpn = F("VadEndingVpn"),
                VadStartingVpnHigh = F("VadStartingVpnHigh"),
                VadEndingVpnHigh = F("VadEndingVpnHigh"),
                VadVpnSize = F("VadVpnSize"),
                VadFlags = F("VadFlags"),
                VadFlagsSize = F("VadFlagsSize"),
                VadProtectionShift = F("VadProtectionShift"),
                VadProtectionBits = F("VadProtectionBits"),
                VadPrivateMemoryShift = F("VadPrivateMemoryShift"),
                VadSubsection = F("VadSubsection"),
                SubsectionControlArea = 0,
                ControlAreaFilePointer = F("ControlAreaFilePointer"),
                FileObjectFileName = F("FileObjectFileName"),
            };
            layouts.Add(new Layout(name, is64, element.GetProperty("minBuild").GetUInt32(), element.GetProperty("maxBuild").GetUInt32(), offsets));
        }
        return layouts;
    }

    private static int ParseNumber(string text, string layout, string key)
    {
        bool ok = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? int.TryParse(text.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int value)
            : int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
        return ok ? value : throw new InvalidOperationException($"layouts.json: layout '{layout}', field '{key}' is '{text}'; expected a number.");
    }
}
