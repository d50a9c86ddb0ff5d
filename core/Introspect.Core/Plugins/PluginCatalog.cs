namespace Introspect.Core.Plugins;

/// <summary>The plugins found in a set of folders, read from their declarations only.</summary>
/// <remarks>
/// A folder is searched at its top level and one level down (<c>plugins/&lt;plugin&gt;/&lt;plugin&gt;.dll</c>, where a
/// plugin keeps its dependencies beside it). Files that are not assemblies, and assemblies that declare no plugin,
/// are passed over quietly; a file that declares a plugin badly is reported in <see cref="Problems"/>.
/// </remarks>
public sealed class PluginCatalog
{
    private PluginCatalog(IReadOnlyList<PluginDescriptor> plugins, IReadOnlyList<PluginProblem> problems, IReadOnlyList<string> searchPaths)
    {
        Plugins = plugins;
        Problems = problems;
        SearchPaths = searchPaths;
    }

    /// <summary>Every plugin found, compatible or not, sorted by name then newest version first.</summary>
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
            foreach (var file in CandidateFiles(folder))
            {
                if (!seenFiles.Add(file))
                    continue;
                try
                {
                    plugins.AddRange(ManagedPluginReader.Read(file));
                }
                catch (Exception e) when (e is InvalidDataException or BadImageFormatException or IOException or UnauthorizedAccessException)
                {
                    problems.Add(new PluginProblem(file, e.Message));
                }
            }
        }
        plugins.Sort(static (a, b) =>
        {
            int byName = string.CompareOrdinal(a.Name, b.Name);
            return byName != 0 ? byName : b.Version.CompareTo(a.Version);
        });
        return new PluginCatalog(plugins, problems, searched);
    }

    private static IEnumerable<string> CandidateFiles(string folder)
    {
        var files = new List<string>(Directory.EnumerateFiles(folder, "*.dll"));
        foreach (var subfolder in Directory.EnumerateDirectories(folder))
            files.AddRange(Directory.EnumerateFiles(subfolder, "*.dll"));
        files.Sort(StringComparer.Ordinal);
        return files;
    }
}
