using System.Globalization;
using System.Text.Json;

namespace Introspect.Os.Windows.Tests;

internal sealed record TruthModule(string Name, string Path, ulong Base, ulong Size);

internal sealed record TruthVad(ulong Start, ulong End, int Protection, bool Private, string? File);

internal sealed record TruthProbe(ulong Address, byte[] Bytes);

internal sealed record TruthProcess(ulong Pid, ulong ParentPid, string Name, string Path, string CommandLine, ulong Eprocess, ulong Dtb, ulong UserDtb,
    long CreateTime, long ExitTime, ulong ExitStatus, bool Exited, bool Wow64, bool Hidden,
    IReadOnlyList<TruthModule> Modules, IReadOnlyList<TruthModule> Modules32, IReadOnlyList<TruthVad> Vads, IReadOnlyList<TruthProbe> Probes);

/// <summary>A Windows fixture's ground truth (<c>NAME.truth.json</c>), as far as the layer's results are checked against it.</summary>
internal sealed record WindowsTruth(string Name, string Architecture, uint Build, uint Major, uint Minor, ulong KernelBase, ulong Dtb, int SelfMapIndex,
    string PdbName, Guid PdbGuid, uint PdbAge, ulong PsActiveProcessHead, ulong PsLoadedModuleList,
    IReadOnlyDictionary<string, int> EprocessOffsets, IReadOnlyList<TruthProcess> Processes, IReadOnlyList<TruthModule> KernelModules)
{
    public static WindowsTruth Load(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(path));
        var root = document.RootElement;
        var pdb = root.GetProperty("pdb");
        return new WindowsTruth(
            root.GetProperty("name").GetString()!,
            root.GetProperty("architecture").GetString()!,
            root.GetProperty("build").GetUInt32(),
            root.GetProperty("major").GetUInt32(),
            root.GetProperty("minor").GetUInt32(),
            Hex(root, "kernelBase"),
            Hex(root, "dtb"),
            root.TryGetProperty("selfMapIndex", out var selfMap) ? selfMap.GetInt32() : -1,
            pdb.GetProperty("name").GetString()!,
            Guid.Parse(pdb.GetProperty("guid").GetString()!),
            pdb.GetProperty("age").GetUInt32(),
            Hex(root, "psActiveProcessHead"),
            Hex(root, "psLoadedModuleList"),
            root.GetProperty("eprocessOffsets").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32()),
            root.GetProperty("processes").EnumerateArray().Select(Process).ToList(),
            Modules(root, "kernelModules"));
    }

    private static TruthProcess Process(JsonElement p) => new(
        p.GetProperty("pid").GetUInt64(),
        p.GetProperty("parentPid").GetUInt64(),
        p.GetProperty("name").GetString()!,
        p.GetProperty("path").GetString() ?? "",
        p.GetProperty("commandLine").GetString() ?? "",
        Hex(p, "eprocess"),
        Hex(p, "dtb"),
        p.TryGetProperty("userDtb", out _) ? Hex(p, "userDtb") : 0,
        p.GetProperty("createTime").GetInt64(),
        p.GetProperty("exitTime").GetInt64(),
        p.GetProperty("exitStatus").ValueKind == JsonValueKind.String ? Hex(p, "exitStatus") : p.GetProperty("exitStatus").GetUInt64(),
        p.GetProperty("exited").GetBoolean(),
        p.GetProperty("wow64").GetBoolean(),
        p.GetProperty("hidden").GetBoolean(),
        Modules(p, "modules"),
        p.TryGetProperty("modules32", out _) ? Modules(p, "modules32") : [],
        p.GetProperty("vads").EnumerateArray().Select(v => new TruthVad(Hex(v, "start"), Hex(v, "end"), v.GetProperty("protection").GetInt32(),
            v.GetProperty("private").GetBoolean(), v.GetProperty("file").ValueKind == JsonValueKind.String ? v.GetProperty("file").GetString() : null)).ToList(),
        p.GetProperty("probes").EnumerateArray().Select(b => new TruthProbe(Hex(b, "address"), Convert.FromHexString(b.GetProperty("hex").GetString()!))).ToList());

    private static List<TruthModule> Modules(JsonElement parent, string name) =>
        parent.GetProperty(name).EnumerateArray().Select(m => new TruthModule(m.GetProperty("name").GetString()!, m.GetProperty("path").GetString() ?? "",
            Hex(m, "base"), Hex(m, "size"))).ToList();

    public static ulong Hex(JsonElement element, string name)
    {
        var text = element.GetProperty(name).GetString()!;
        return ulong.Parse(text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? text[2..] : text, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
    }
}
