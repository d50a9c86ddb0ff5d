using Introspect.Core.Plugins.Native;

namespace Introspect.Core.Plugins;

/// <summary>The plugins found in a set of folders, read from their declarations only.</summary>
/// <remarks>
/// <para>
/// A folder is searched at its top level and one level down (<c>plugins/&lt;plugin&gt;/&lt;plugin&gt;.dll</c>, where a
/// plugin keeps its dependencies beside it), for <c>.dll</c> and <c>.so</c> files: .NET assemblies are read with
/// <c>System.Reflection.Metadata</c>, native libraries through their export tables, and neither is loaded. A folder
/// holding a <c>plugin.json</c> install record (the inventory's <c>NAME/VERSION/</c> folders, found up to two levels
/// down) contributes the one plugin the record names.
/// </para>
/// <para>
/// Files that are not libraries, and libraries that declare no plugin, are passed over quietly; a file that
/// declares a plugin badly is reported in <see cref="Problems"/>. Plugins built for another ABI or machine are
/// listed, marked incompatible with the reason.
/// </para>
/// </remarks>
public sealed class PluginCatalog
{
    private PluginCatalog(IReadOnlyList<PluginDescriptor> plugins, IReadOnlyList<PluginProblem> problems, IReadOnlyList<string> searchPaths)
    {
        Plugins = plugins;
        Problems = problems;
        SearchPaths = searchPaths;
    }

    /// <summary>Every plugin found, compatible or not, sorted by name then newest version first (ties in search-path order).</summary>
    public IReadOnlyList<PluginDescriptor> Plugins { get; }

    public IReadOnlyList<PluginProblem> Problems { get; }

    /// <summary>The folders that were searched, in order.</summary>
    public IReadOnlyList<string> SearchPaths { get; }

    public static PluginCatalog Scan(IEnumerable<string> searchPaths)
    {
        ArgumentNullException.ThrowIfNull(searchPaths);
        var plugins = new List<PluginDescriptor>();
        var problems = new List<PluginProblem>();
        var seenFiles = new HashSet<string>(StringComparer.Ordinal);
        var searched = new List<string>();
        foreach (var searchPath in searchPaths)
        {
            var folder = Path.GetFullPath(searchPath);
            if (searched.Contains(folder))
                continue;
            searched.Add(folder);
            if (!Directory.Exists(folder))
                continue;
            foreach (var (file, installed) in CandidateFiles(folder))
            {
                if (!seenFiles.Add(file + "\n" + installed?.Name))
                    continue;
                try
                {
                    var found = Read(file, problems);
                    if (installed is not null)
                    {
                        found = [.. found.Where(p => p.Name == installed.Name && p.Version == installed.Version).Select(p => p with { Installation = installed })];
                        if (found.Count == 0)
                            problems.Add(new PluginProblem(file, $"the install record in {installed.Folder} names '{installed.Name}' {installed.Version}, which the file does not declare; reinstall it"));
                    }
                    plugins.AddRange(found);
                }
                catch (Exception e) when (e is InvalidDataException or BadImageFormatException or IOException or UnauthorizedAccessException)
                {
                    problems.Add(new PluginProblem(file, e.Message));
                }
            }
        }
        // A stable sort: among equal names and versions, the first search path wins.
        return new PluginCatalog([.. plugins.OrderBy(p => p.Name, StringComparer.Ordinal).ThenByDescending(p => p.Version)], problems, searched);
    }

    private static List<PluginDescriptor> Read(string file, List<PluginProblem> problems)
    {
        Span<byte> head = stackalloc byte[4];
        using (var stream = File.OpenRead(file))
        {
            if (stream.ReadAtLeast(head, 4, throwOnEndOfStream: false) < 4)
                return [];
        }
        if (head.StartsWith("MZ"u8) && PluginInventory.IsManagedAssembly(file))
            return [.. ManagedPluginReader.Read(file)];
        if (!NativeImage.LooksNative(head))
        {
            // A file named like a library that is none: worth a word, as before, only for .dll files users put there.
            if (file.EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
                problems.Add(new PluginProblem(file, $"{file} is neither a .NET assembly nor a native library."));
            return [];
        }
        var image = NativeImage.Read(file);
        if (image is null)
            return [];
        var plugins = new List<PluginDescriptor>();
        foreach (var export in image.Exports)
        {
            // One bad descriptor does not hide the file's other plugins.
            try
            {
                if (export.Problem is not null)
                    throw new InvalidDataException($"{file}: {export.Problem}.");
                plugins.Add(NativePluginReader.Parse(image, export));
            }
            catch (InvalidDataException e)
            {
                problems.Add(new PluginProblem(file, e.Message));
            }
        }
        return plugins;
    }

    /// <summary>The files a search folder offers, each with the install record it came with (null outside the inventory).</summary>
    internal static IEnumerable<(string File, InstalledPlugin? Installed)> CandidateFiles(string folder)
    {
        var found = new List<(string, InstalledPlugin?)>();
        Visit(folder, 0, found);
        return found;
    }

    private static void Visit(string folder, int depth, List<(string, InstalledPlugin?)> found)
    {
        if (PluginInventory.TryReadManifest(folder, out var installed, out _))
        {
            found.Add((installed!.FilePath, installed));
            return;
        }
        if (depth <= 1)
        {
            var files = Directory.EnumerateFiles(folder)
                .Where(f => f.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".so", StringComparison.Ordinal))
                .Order(StringComparer.Ordinal);
            foreach (var file in files)
                found.Add((file, null));
        }
        if (depth < 2)
        {
            foreach (var sub in Directory.EnumerateDirectories(folder).Order(StringComparer.Ordinal))
            {
                if (!Path.GetFileName(sub).StartsWith('.'))
                    Visit(sub, depth + 1, found);
            }
        }
    }
}
