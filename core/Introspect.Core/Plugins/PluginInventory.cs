using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Introspect.Abi;
using Introspect.Core.Plugins.Native;

namespace Introspect.Core.Plugins;

/// <summary>A plugin installed with <see cref="PluginInventory.Install"/>: what its <c>plugin.json</c> records.</summary>
/// <param name="Name">The plugin's name.</param>
/// <param name="Kind">Connector or OS layer.</param>
/// <param name="Version">The plugin's version.</param>
/// <param name="AbiVersion">The contract version it was built against.</param>
/// <param name="Format">Managed or native.</param>
/// <param name="File">The plugin's file, relative to <paramref name="Folder"/>.</param>
/// <param name="Sha256">The file's SHA-256 when installed, lower-case hexadecimal.</param>
/// <param name="Folder">The folder it was installed into (<c>ROOT/name/version</c>).</param>
/// <param name="InstalledFrom">The path it was installed from.</param>
/// <param name="InstalledAt">When.</param>
public sealed record InstalledPlugin(
    string Name,
    PluginKind Kind,
    Version Version,
    int AbiVersion,
    PluginFormat Format,
    string File,
    string Sha256,
    string Folder,
    string? InstalledFrom,
    DateTimeOffset InstalledAt)
{
    /// <summary>The installed file's full path.</summary>
    public string FilePath => System.IO.Path.Combine(Folder, File);

    /// <summary>Why the installed file cannot be trusted (changed or gone since it was installed), or null.</summary>
    public string? CheckIntegrity()
    {
        if (!System.IO.File.Exists(FilePath))
            return $"{FilePath} is gone since it was installed; reinstall the plugin";
        string actual = PluginInventory.Sha256Of(FilePath);
        return actual == Sha256
            ? null
            : $"{FilePath} changed since it was installed (sha256 {actual}, recorded {Sha256}); reinstall it with 'introspect plugins install --force'";
    }
}

/// <summary>The per-user plugin folder: install, list, remove and clean, with side-by-side versions.</summary>
/// <remarks>
/// <para>
/// Layout: <c>ROOT/NAME/VERSION/</c> holds the plugin's file (a native library alone; a managed assembly with its
/// whole folder, so its private dependencies come along) and <c>plugin.json</c>, which records the metadata and the
/// file's SHA-256. Several versions of a name live side by side; chains pick the newest unless they pin one.
/// </para>
/// <para>
/// Install checks everything before copying anything, and refuses with the reason: not a plugin, built for another
/// machine or OS, built for another plugin ABI, or a managed plugin whose dependencies are neither beside it nor
/// in the .NET runtime.
/// </para>
/// </remarks>
public sealed class PluginInventory
{
    /// <summary>The name of the install record in each installed plugin's folder.</summary>
    public const string ManifestName = "plugin.json";

    /// <summary>Names the per-user Introspect folder (plugins in its <c>plugins/</c>, the user's <c>plugins.json</c> in it) instead of the XDG folders.</summary>
    public const string HomeVariable = "INTROSPECT_HOME";

    private const int MaxCopiedFiles = 4096;
    private const long MaxCopiedBytes = 1L << 30;

    private static readonly JsonSerializerOptions ManifestJson = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    public PluginInventory(string root)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        Root = Path.GetFullPath(root);
    }

    /// <summary>The folder plugins are installed into.</summary>
    public string Root { get; }

    /// <summary>
    /// The per-user plugin folder: <c>$INTROSPECT_HOME/plugins</c>, else <c>$XDG_DATA_HOME/introspect/plugins</c>,
    /// else <c>~/.local/share/introspect/plugins</c> (on Windows, under the local application data folder).
    /// </summary>
    public static string DefaultRoot()
    {
        if (Environment.GetEnvironmentVariable(HomeVariable) is { Length: > 0 } home)
            return Path.Combine(home, "plugins");
        if (Environment.GetEnvironmentVariable("XDG_DATA_HOME") is { Length: > 0 } data && Path.IsPathRooted(data))
            return Path.Combine(data, "introspect", "plugins");
        if (OperatingSystem.IsWindows())
            return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "introspect", "plugins");
        return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share", "introspect", "plugins");
    }

    /// <summary>Every installed plugin, sorted by name then newest version first; folders without a readable record are skipped.</summary>
    public IReadOnlyList<InstalledPlugin> Installed()
    {
        var list = new List<InstalledPlugin>();
        if (!Directory.Exists(Root))
            return list;
        foreach (var nameFolder in Directory.EnumerateDirectories(Root))
        {
            foreach (var versionFolder in Directory.EnumerateDirectories(nameFolder))
            {
                if (TryReadManifest(versionFolder, out var installed, out _))
                    list.Add(installed!);
            }
        }
        return [.. list.OrderBy(p => p.Name, StringComparer.Ordinal).ThenByDescending(p => p.Version)];
    }

    /// <summary>Reads a folder's <c>plugin.json</c>.</summary>
    public static bool TryReadManifest(string folder, out InstalledPlugin? installed, out string? problem)
    {
        installed = null;
        problem = null;
        var path = Path.Combine(folder, ManifestName);
        if (!File.Exists(path))
            return false;
        try
        {
            var manifest = JsonSerializer.Deserialize<Manifest>(File.ReadAllText(path), ManifestJson);
            if (manifest is null || !PluginNames.IsValid(manifest.Name ?? "") || !System.Version.TryParse(manifest.Version, out var version)
                || string.IsNullOrEmpty(manifest.File) || Path.GetFileName(manifest.File) != manifest.File || string.IsNullOrEmpty(manifest.Sha256))
            {
                problem = $"{path}: expected name, version, file (a file name in the same folder) and sha256";
                return false;
            }
            installed = new InstalledPlugin(manifest.Name!, manifest.Kind, version, manifest.AbiVersion, manifest.Format, manifest.File, manifest.Sha256,
                Path.GetFullPath(folder), manifest.InstalledFrom, manifest.InstalledAt);
            return true;
        }
        catch (JsonException e)
        {
            problem = $"{path}: {e.Message}";
            return false;
        }
    }

    /// <summary>Installs every plugin a file or folder holds.</summary>
    /// <param name="path">A plugin file (<c>.so</c>, <c>.dll</c>), or a folder holding plugins (read like a search path).</param>
    /// <param name="force">Replace a plugin already installed with the same name and version.</param>
    /// <returns>What was installed.</returns>
    /// <exception cref="PluginException">Nothing is installed; the message says why.</exception>
    public IReadOnlyList<InstalledPlugin> Install(string path, bool force = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string source = Path.GetFullPath(path);
        List<string> files;
        if (File.Exists(source))
            files = [source];
        else if (Directory.Exists(source))
            files = [.. PluginCatalog.CandidateFiles(source).Select(c => c.File)];
        else
            throw new PluginException($"Cannot install '{path}': no such file or folder.");

        var found = new List<(PluginDescriptor Plugin, string File)>();
        var notPlugins = new List<string>();
        foreach (var file in files)
        {
            var (plugins, reason) = Inspect(file);
            if (plugins.Count == 0)
                notPlugins.Add(reason!);
            found.AddRange(plugins.Select(p => (p, file)));
        }
        if (found.Count == 0)
        {
            throw new PluginException(File.Exists(source)
                ? $"Cannot install {source}: it is not an Introspect plugin: {notPlugins[0]}."
                : $"Cannot install {source}: no Introspect plugin in it ({files.Count} candidate files looked at{(notPlugins.Count > 0 ? "; " + string.Join("; ", notPlugins.Take(3)) : "")}).");
        }

        // Everything is checked before anything is copied: an install happens whole or not at all.
        foreach (var (plugin, file) in found)
        {
            if (plugin.PlatformProblem is not null)
                throw new PluginException($"Cannot install {plugin.KindText} '{plugin.Name}' {plugin.Version} from {file}: wrong architecture: {plugin.PlatformProblem}.");
            if (plugin.AbiVersion != IntrospectAbi.Version)
                throw new PluginException($"Cannot install {plugin.KindText} '{plugin.Name}' {plugin.Version} from {file}: wrong ABI version: it was built for plugin ABI {plugin.AbiVersion}; this host speaks ABI {IntrospectAbi.Version}. Install a build of the plugin for this version of Introspect.");
            if (plugin.Format == PluginFormat.Managed && MissingDependency(file) is { } missing)
                throw new PluginException($"Cannot install {plugin.KindText} '{plugin.Name}' {plugin.Version} from {file}: missing dependency: {missing}. Install the plugin's whole build output folder (dotnet publish), not the assembly alone.");
            var target = FolderOf(plugin.Name, plugin.Version);
            if (Directory.Exists(target) && !force)
                throw new PluginException($"{plugin.KindText} '{plugin.Name}' {plugin.Version} is already installed in {target}; use --force to replace it.");
        }
        var duplicate = found.GroupBy(f => (f.Plugin.Name, f.Plugin.Version)).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new PluginException($"Cannot install: '{duplicate.Key.Name}' {duplicate.Key.Version} is declared by {string.Join(" and ", duplicate.Select(d => d.File))}; install one of them.");

        var installed = new List<InstalledPlugin>();
        foreach (var (plugin, file) in found)
            installed.Add(Copy(plugin, file, source));
        return installed;
    }

    /// <summary>The plugins a file declares, or why it declares none.</summary>
    internal static (IReadOnlyList<PluginDescriptor> Plugins, string? NotAPlugin) Inspect(string file)
    {
        try
        {
            Span<byte> head = stackalloc byte[4];
            using (var stream = File.OpenRead(file))
            {
                if (stream.ReadAtLeast(head, 4, throwOnEndOfStream: false) < 4)
                    return ([], $"{file} is too short to be a library");
            }
            if (!NativeImage.LooksNative(head))
                return ([], $"{file} is neither a .NET assembly nor a shared library");
            if (head.StartsWith("MZ"u8) && IsManagedAssembly(file))
            {
                var managed = ManagedPluginReader.Read(file);
                return managed.Count > 0 ? (managed, null) : ([], $"{file} is a .NET assembly without an [assembly: IntrospectPlugin(...)] declaration");
            }
            var image = NativeImage.Read(file);
            if (image is null)
                return ([], $"{file} is neither a .NET assembly nor a shared library");
            var native = NativePluginReader.Read(image);
            if (native.Count > 0)
                return (native, null);
            return ([], image.Incompatibility is not null
                ? $"{file} exports no {NativeAbi.SymbolPrefix}* descriptor, and {image.Incompatibility}"
                : $"{file} is a shared library that exports no {NativeAbi.SymbolPrefix}* descriptor");
        }
        catch (Exception e) when (e is InvalidDataException or BadImageFormatException or IOException or UnauthorizedAccessException)
        {
            return ([], e.Message);
        }
    }

    internal static bool IsManagedAssembly(string file)
    {
        try
        {
            using var stream = File.OpenRead(file);
            using var reader = new PEReader(stream);
            return reader.HasMetadata && reader.GetMetadataReader().IsAssembly;
        }
        catch (BadImageFormatException)
        {
            return false;
        }
    }

    /// <summary>The first assembly the plugin needs that is neither beside it, nor the shared contract, nor in the .NET runtime; null when none is missing.</summary>
    /// <remarks>Follows references through the assemblies found beside it, as the plugin's load context would.</remarks>
    internal static string? MissingDependency(string assemblyPath)
    {
        string folder = Path.GetDirectoryName(assemblyPath)!;
        string runtime = RuntimeEnvironment.GetRuntimeDirectory();
        string contract = typeof(IMemory).Assembly.GetName().Name!;
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var queue = new Queue<string>([assemblyPath]);
        while (queue.Count > 0 && seen.Count < 512)
        {
            string current = queue.Dequeue();
            if (!seen.Add(Path.GetFileName(current)))
                continue;
            using var stream = File.OpenRead(current);
            using var reader = new PEReader(stream);
            if (!reader.HasMetadata)
                continue;
            var metadata = reader.GetMetadataReader();
            foreach (var handle in metadata.AssemblyReferences)
            {
                var reference = metadata.GetAssemblyReference(handle);
                string name = metadata.GetString(reference.Name);
                if (name == contract)
                    continue;
                string beside = Path.Combine(folder, name + ".dll");
                if (File.Exists(beside))
                {
                    queue.Enqueue(beside);
                    continue;
                }
                if (File.Exists(Path.Combine(runtime, name + ".dll")))
                    continue;
                return $"{name} {reference.Version} (needed by {Path.GetFileName(current)}) is neither in {folder} nor in the .NET runtime";
            }
        }
        return null;
    }

    /// <summary>Removes the versions of <paramref name="name"/> that <paramref name="version"/> matches (every version when null).</summary>
    /// <exception cref="PluginException">Nothing installed matches; the message lists what is installed.</exception>
    public IReadOnlyList<InstalledPlugin> Remove(string name, string? version = null)
    {
        var installed = Installed().Where(p => p.Name == name).ToList();
        if (installed.Count == 0)
        {
            var names = Installed().Select(p => p.Name).Distinct().ToList();
            throw new PluginException($"No plugin named '{name}' is installed in {Root}. Installed: {(names.Count == 0 ? "none" : string.Join(", ", names))}.");
        }
        var matching = version is null ? installed : installed.Where(p => VersionPattern.Matches(p.Version, version)).ToList();
        if (matching.Count == 0)
            throw new PluginException($"'{name}' has no installed version {version}. Installed: {string.Join(", ", installed.Select(p => p.Version))}.");
        foreach (var plugin in matching)
            Delete(plugin);
        return matching;
    }

    /// <summary>Removes every version but the newest of each installed plugin.</summary>
    public IReadOnlyList<InstalledPlugin> Clean()
    {
        var removed = new List<InstalledPlugin>();
        foreach (var group in Installed().GroupBy(p => p.Name))
        {
            foreach (var old in group.OrderByDescending(p => p.Version).Skip(1))
            {
                Delete(old);
                removed.Add(old);
            }
        }
        return removed;
    }

    private void Delete(InstalledPlugin plugin)
    {
        Directory.Delete(plugin.Folder, recursive: true);
        var parent = Path.GetDirectoryName(plugin.Folder)!;
        if (Directory.Exists(parent) && !Directory.EnumerateFileSystemEntries(parent).Any())
            Directory.Delete(parent);
    }

    private string FolderOf(string name, Version version) => Path.Combine(Root, name, version.ToString());

    private InstalledPlugin Copy(PluginDescriptor plugin, string file, string source)
    {
        Directory.CreateDirectory(Root);
        string staging = Path.Combine(Root, $".staging-{Guid.NewGuid():n}");
        Directory.CreateDirectory(staging);
        try
        {
            if (plugin.Format == PluginFormat.Native)
                File.Copy(file, Path.Combine(staging, Path.GetFileName(file)));
            else
                CopyFolder(Path.GetDirectoryName(file)!, staging);
            var installed = new InstalledPlugin(plugin.Name, plugin.Kind, plugin.Version, plugin.AbiVersion, plugin.Format,
                Path.GetFileName(file), Sha256Of(file), FolderOf(plugin.Name, plugin.Version), source, DateTimeOffset.UtcNow);
            var manifest = new Manifest
            {
                Name = installed.Name,
                Kind = installed.Kind,
                Version = installed.Version.ToString(),
                AbiVersion = installed.AbiVersion,
                Format = installed.Format,
                File = installed.File,
                Sha256 = installed.Sha256,
                Description = plugin.Description,
                InstalledFrom = source,
                InstalledAt = installed.InstalledAt,
            };
            File.WriteAllText(Path.Combine(staging, ManifestName), JsonSerializer.Serialize(manifest, ManifestJson));
            Directory.CreateDirectory(Path.GetDirectoryName(installed.Folder)!);
            if (Directory.Exists(installed.Folder))
                Directory.Delete(installed.Folder, recursive: true);
            Directory.Move(staging, installed.Folder);
            return installed;
        }
        finally
        {
            if (Directory.Exists(staging))
                Directory.Delete(staging, recursive: true);
        }
    }

    private static void CopyFolder(string from, string to)
    {
        int files = 0;
        long bytes = 0;
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            if (Path.GetFileName(file) == ManifestName)
                continue;
            var info = new FileInfo(file);
            if (++files > MaxCopiedFiles || (bytes += info.Length) > MaxCopiedBytes)
                throw new PluginException($"Cannot install from {from}: the folder holds more than {MaxCopiedFiles} files or {MaxCopiedBytes >> 20} MiB; point install at the plugin's own build output folder.");
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }

    /// <summary>The SHA-256 of a file, lower-case hexadecimal.</summary>
    public static string Sha256Of(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    private sealed class Manifest
    {
        public string? Name { get; set; }
        public PluginKind Kind { get; set; }
        public string? Version { get; set; }
        public int AbiVersion { get; set; }
        public PluginFormat Format { get; set; }
        public string? File { get; set; }
        public string Sha256 { get; set; } = "";
        public string? Description { get; set; }
        public string? InstalledFrom { get; set; }
        public DateTimeOffset InstalledAt { get; set; }
    }
}

/// <summary>How <c>name@1.2</c> matches versions: the parts given must be equal, the parts left out match anything.</summary>
public static class VersionPattern
{
    /// <summary>Whether <paramref name="installed"/> matches <paramref name="pattern"/> (<c>1</c>, <c>1.2</c> or <c>1.2.3</c>).</summary>
    /// <exception cref="PluginException">The pattern is not a version.</exception>
    public static bool Matches(Version installed, string pattern)
    {
        ArgumentNullException.ThrowIfNull(installed);
        var parts = pattern.Split('.');
        if (parts.Length is < 1 or > 4 || parts.Any(p => !int.TryParse(p, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out _)))
            throw new PluginException($"'{pattern}' is not a version; expected major[.minor[.patch]], such as 1 or 1.2 or 1.2.0.");
        int[] wanted = [.. parts.Select(p => int.Parse(p, System.Globalization.CultureInfo.InvariantCulture))];
        int[] actual = [installed.Major, Math.Max(0, installed.Minor), Math.Max(0, installed.Build), Math.Max(0, installed.Revision)];
        for (int i = 0; i < wanted.Length; i++)
        {
            if (wanted[i] != actual[i])
                return false;
        }
        return true;
    }
}
