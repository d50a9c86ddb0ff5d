using System.Collections.Concurrent;
using System.Reflection;
using Introspect.Abi;
using Introspect.Core.Chains;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Introspect.Core.Plugins;

/// <summary>Finds plugins, loads the ones a chain names, and opens chains through them.</summary>
/// <remarks>
/// Built-in plugins go through here exactly as a third party's do. A plugin's code runs only once a chain names
/// it: listing reads declarations alone. Each plugin file gets its own load context, shared by every chain that uses it.
/// </remarks>
public sealed class PluginHost
{
    /// <summary>The environment variable holding extra plugin folders, separated by the platform's path separator.</summary>
    public const string PluginPathVariable = "INTROSPECT_PLUGIN_PATH";

    private readonly ConcurrentDictionary<string, Lazy<Assembly>> _loadedAssemblies = new(StringComparer.Ordinal);
    private readonly ILoggerFactory _loggerFactory;

    public PluginHost(PluginCatalog catalog, ILoggerFactory? loggerFactory = null)
    {
        Catalog = catalog ?? throw new ArgumentNullException(nameof(catalog));
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
    }

    /// <summary>A host over <see cref="DefaultSearchPaths"/> and any extra folders.</summary>
    public static PluginHost CreateDefault(IEnumerable<string>? extraPaths = null, ILoggerFactory? loggerFactory = null) =>
        new(PluginCatalog.Scan([.. extraPaths ?? [], .. DefaultSearchPaths()]), loggerFactory);

    public PluginCatalog Catalog { get; }

    /// <summary>
    /// Where plugins are looked for, in order: the folders in <see cref="PluginPathVariable"/>, the user's plugin
    /// folder (<c>~/.local/share/introspect/plugins</c>), and <c>plugins/</c> beside the running program.
    /// </summary>
    public static IReadOnlyList<string> DefaultSearchPaths()
    {
        var paths = new List<string>();
        if (Environment.GetEnvironmentVariable(PluginPathVariable) is { Length: > 0 } fromEnvironment)
            paths.AddRange(fromEnvironment.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        paths.Add(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "introspect", "plugins"));
        paths.Add(Path.Combine(AppContext.BaseDirectory, "plugins"));
        return paths;
    }

    /// <summary>The plugin a chain step names: the newest compatible version, or exactly the version asked for.</summary>
    /// <exception cref="PluginException">No such plugin, no such version, or only incompatible ones.</exception>
    public PluginDescriptor Resolve(string name, string? version = null, PluginKind? kind = null)
    {
        var candidates = Catalog.Plugins.Where(p => p.Name == name && (kind is null || p.Kind == kind)).ToList();
        if (candidates.Count == 0)
        {
            var known = Catalog.Plugins.Where(p => kind is null || p.Kind == kind).Select(p => p.Name).Distinct().ToList();
            var kindText = kind is null ? "plugin" : kind == PluginKind.Connector ? "connector" : "OS layer";
            throw new PluginException(
                $"No {kindText} named '{name}'. Installed: {(known.Count == 0 ? "none" : string.Join(", ", known))}. " +
                $"Searched: {string.Join(", ", Catalog.SearchPaths)} (add folders with {PluginPathVariable}).");
        }
        if (version is not null)
        {
            var wanted = System.Version.Parse(version);
            candidates = candidates.Where(p => VersionMatches(p.Version, wanted)).ToList();
            if (candidates.Count == 0)
                throw new PluginException($"Plugin '{name}' has no version {version}. Installed: {string.Join(", ", Catalog.Plugins.Where(p => p.Name == name).Select(p => p.Version))}.");
        }
        var compatible = candidates.FirstOrDefault(p => p.IsCompatible);
        if (compatible is null)
        {
            var first = candidates[0];
            throw new PluginException(
                $"Plugin '{name}' {first.Version} ({first.Path}) was built for plugin ABI {first.AbiVersion}; this host speaks ABI {IntrospectAbi.Version}. " +
                "Install a build of the plugin for this version of Introspect.");
        }
        return compatible;
    }

    /// <summary>Opens a chain: its connector, then each OS layer over the memory before it.</summary>
    /// <exception cref="PluginException">A step names no installed plugin, or the steps are in an order no chain can have.</exception>
    /// <exception cref="PluginArgumentException">An argument is unknown or its value has the wrong form.</exception>
    /// <exception cref="InvalidDataException">A connector's source is malformed, or an OS layer cannot find its OS.</exception>
    public OpenedChain Open(ChainSpec chain)
    {
        ArgumentNullException.ThrowIfNull(chain);
        var plugins = chain.Steps.Select(step => Resolve(step.Name, step.Version)).ToList();
        CheckOrder(chain, plugins);
        var owned = new List<IDisposable>();
        try
        {
            IPhysicalMemory memory = OpenConnector(plugins[0], chain.Steps[0]);
            owned.Add(memory);
            IOperatingSystem? system = null;
            for (int i = 1; i < chain.Steps.Count; i++)
            {
                system = OpenOperatingSystem(plugins[i], chain.Steps[i], memory);
                owned.Add(system);
            }
            return new OpenedChain(chain, plugins, memory, system, owned);
        }
        catch
        {
            for (int i = owned.Count - 1; i >= 0; i--)
                owned[i].Dispose();
            throw;
        }
    }

    private static void CheckOrder(ChainSpec chain, List<PluginDescriptor> plugins)
    {
        if (plugins[0].Kind != PluginKind.Connector)
            throw new PluginException($"Chain '{chain.Text}' starts with '{plugins[0].Name}', an OS layer; a chain starts with a connector (for example coredump:path=FILE).");
        for (int i = 1; i < plugins.Count; i++)
        {
            var (previous, current) = (plugins[i - 1], plugins[i]);
            if (previous.Kind == PluginKind.Connector && current.Kind == PluginKind.Connector)
                throw new PluginException($"Chain '{chain.Text}': connector '{current.Name}' follows connector '{previous.Name}'; after a connector comes an OS layer that reads its memory.");
            if (previous.Kind == PluginKind.OperatingSystem && current.Kind == PluginKind.OperatingSystem)
                throw new PluginException($"Chain '{chain.Text}': OS layer '{current.Name}' follows OS layer '{previous.Name}'; an OS layer reads the physical memory of a connector.");
            if (previous.Kind == PluginKind.OperatingSystem)
                throw new PluginException($"Chain '{chain.Text}': connector '{current.Name}' would take OS '{previous.Name}' as its input, which this host cannot do yet.");
        }
    }

    /// <summary>Loads <paramref name="descriptor"/>'s connector factory and opens it with the step's arguments.</summary>
    public IPhysicalMemory OpenConnector(PluginDescriptor descriptor, ChainStep step)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        ArgumentNullException.ThrowIfNull(step);
        var factory = CreateFactory<IConnectorFactory>(descriptor);
        var arguments = PluginArgumentBinder.Bind(descriptor.Name, factory.Parameters, step.Arguments);
        return Call(descriptor, "open", () => factory.Create(arguments, ContextFor(descriptor)));
    }

    /// <summary>Loads <paramref name="descriptor"/>'s OS layer factory and recognises its OS in <paramref name="input"/>.</summary>
    public IOperatingSystem OpenOperatingSystem(PluginDescriptor descriptor, ChainStep step, IPhysicalMemory input)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        ArgumentNullException.ThrowIfNull(step);
        var factory = CreateFactory<IOsLayerFactory>(descriptor);
        var arguments = PluginArgumentBinder.Bind(descriptor.Name, factory.Parameters, step.Arguments);
        return Call(descriptor, "recognise its OS", () => factory.Create(input, arguments, ContextFor(descriptor)));
    }

    private IPluginContext ContextFor(PluginDescriptor descriptor) =>
        new LoggingPluginContext(_loggerFactory.CreateLogger($"plugin.{descriptor.Name}"));

    /// <summary>Runs plugin code; what the contract lets it throw passes, anything else becomes a <see cref="PluginException"/> naming the plugin.</summary>
    private static T Call<T>(PluginDescriptor descriptor, string what, Func<T> action)
    {
        try
        {
            return action();
        }
        catch (Exception e) when (e is not (InvalidDataException or PluginArgumentException or IOException or UnauthorizedAccessException or PluginException))
        {
            throw new PluginException($"{descriptor.KindName} '{descriptor.Name}' {descriptor.Version} failed to {what}: {e.Message}", e);
        }
    }

    /// <summary>The parameters a plugin accepts; this loads the plugin.</summary>
    public IReadOnlyList<PluginParameter> GetParameters(PluginDescriptor descriptor) => descriptor.Kind switch
    {
        PluginKind.Connector => CreateFactory<IConnectorFactory>(descriptor).Parameters,
        _ => CreateFactory<IOsLayerFactory>(descriptor).Parameters,
    };

    private TFactory CreateFactory<TFactory>(PluginDescriptor descriptor) where TFactory : class
    {
        if (!descriptor.IsCompatible)
            throw new PluginException($"Plugin '{descriptor.Name}' ({descriptor.Path}) was built for plugin ABI {descriptor.AbiVersion}; this host speaks ABI {IntrospectAbi.Version}.");
        Assembly assembly;
        try
        {
            assembly = _loadedAssemblies.GetOrAdd(descriptor.Path, static path => new Lazy<Assembly>(() => new PluginLoadContext(path).LoadFromAssemblyPath(path))).Value;
        }
        catch (Exception e) when (e is FileLoadException or BadImageFormatException or FileNotFoundException)
        {
            throw new PluginException($"Plugin '{descriptor.Name}' could not be loaded from {descriptor.Path}: {e.Message}", e);
        }
        // The declaration stores an assembly-qualified name; the type lives in the declaring assembly itself.
        var typeName = descriptor.EntryPoint.Split(',', 2)[0].Trim();
        var type = assembly.GetType(typeName, throwOnError: false)
            ?? throw new PluginException($"Plugin '{descriptor.Name}' ({descriptor.Path}) declares factory type '{typeName}', which the assembly does not define.");
        if (!typeof(TFactory).IsAssignableFrom(type))
            throw new PluginException($"Plugin '{descriptor.Name}': factory type '{typeName}' does not implement {typeof(TFactory).Name} (was it built against another copy of Introspect.Abi?).");
        try
        {
            return (TFactory)Activator.CreateInstance(type)!;
        }
        catch (Exception e) when (e is MissingMethodException or TargetInvocationException or MemberAccessException)
        {
            throw new PluginException($"Plugin '{descriptor.Name}': factory type '{typeName}' could not be created: {e.InnerException?.Message ?? e.Message}", e);
        }
    }

    private static bool VersionMatches(Version installed, Version wanted) =>
        installed.Major == wanted.Major
        && (wanted.Minor < 0 || installed.Minor == wanted.Minor)
        && (wanted.Build < 0 || installed.Build == wanted.Build);

    private sealed class LoggingPluginContext(ILogger logger) : IPluginContext
    {
        public void Log(PluginLogLevel level, string message)
        {
            var mapped = level switch
            {
                PluginLogLevel.Trace => LogLevel.Trace,
                PluginLogLevel.Debug => LogLevel.Debug,
                PluginLogLevel.Information => LogLevel.Information,
                PluginLogLevel.Warning => LogLevel.Warning,
                _ => LogLevel.Error,
            };
#pragma warning disable CA1848, CA2254 // The message comes from the plugin, already formatted.
            logger.Log(mapped, message);
#pragma warning restore CA1848, CA2254
        }
    }
}
