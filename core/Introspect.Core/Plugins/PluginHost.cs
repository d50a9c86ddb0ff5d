using System.Reflection;
using Introspect.Abi;
using Introspect.Core.Caching;
using Introspect.Core.Chains;
using Introspect.Core.Plugins.Native;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Introspect.Core.Plugins;

/// <summary>How a <see cref="PluginHost"/> behaves.</summary>
public sealed record PluginHostOptions
{
    /// <summary>The middleware every step gets unless it says otherwise (from <c>plugins.json</c>).</summary>
    public MiddlewareSettings Middleware { get; init; } = MiddlewareSettings.Default;

    /// <summary>
    /// Unload a plugin (its load context, or its native library) as soon as the last instance made from it is disposed.
    /// Off, plugins stay loaded until <see cref="PluginHost.UnloadUnused"/> or <see cref="PluginHost.Dispose"/>, which
    /// saves reloading them when chains are opened again and again.
    /// </summary>
    public bool UnloadWhenUnused { get; init; }

    /// <summary>Check an installed plugin's file against the SHA-256 its install recorded before loading it.</summary>
    public bool VerifyInstalledFiles { get; init; } = true;
}

/// <summary>Finds plugins, loads the ones a chain names, and opens chains through them.</summary>
/// <remarks>
/// <para>
/// Built-in plugins go through here exactly as a third party's do. A plugin's code runs only once a chain names it:
/// listing reads declarations alone. Managed plugins get a collectible load context each, native ones are loaded with
/// <c>NativeLibrary</c> after their export table was checked; both are shared by every chain that uses them and counted,
/// so that the last instance's disposal can unload them.
/// </para>
/// <para>
/// A chain's steps go connector → OS → connector (over that OS) → OS ... Each step's middleware keys are taken off its
/// arguments (see <see cref="MiddlewareSettings"/>); the rest are checked against what the plugin declares. Managed
/// and native steps mix freely: a native OS layer reads a managed connector through an exported <c>ip_connector</c>,
/// a native connector reads a managed OS through an exported <c>ip_os</c>, and native reads native directly.
/// </para>
/// </remarks>
public sealed class PluginHost : IDisposable
{
    /// <summary>The environment variable holding extra plugin folders, separated by the platform's path separator.</summary>
    public const string PluginPathVariable = "INTROSPECT_PLUGIN_PATH";

    /// <summary>How long the page cache keeps a page of live memory when no <c>cache.validity</c> is given.</summary>
    private static readonly TimeSpan LivePageValidity = TimeSpan.FromMilliseconds(250);

    private readonly Dictionary<string, LoadedPlugin> _loaded = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private readonly ILoggerFactory _loggerFactory;

    public PluginHost(PluginCatalog catalog, ILoggerFactory? loggerFactory = null, PluginHostOptions? options = null)
    {
        Catalog = catalog ?? throw new ArgumentNullException(nameof(catalog));
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        Options = options ?? new PluginHostOptions();
    }

    /// <summary>A host over <see cref="DefaultSearchPaths"/> and any extra folders.</summary>
    public static PluginHost CreateDefault(IEnumerable<string>? extraPaths = null, ILoggerFactory? loggerFactory = null, PluginHostOptions? options = null) =>
        new(PluginCatalog.Scan([.. extraPaths ?? [], .. DefaultSearchPaths()]), loggerFactory, options);

    public PluginCatalog Catalog { get; }

    public PluginHostOptions Options { get; }

    /// <summary>
    /// Where plugins are looked for, in order: the folders in <see cref="PluginPathVariable"/>, the user's plugin
    /// folder (<see cref="PluginInventory.DefaultRoot"/>), and <c>plugins/</c> beside the running program.
    /// </summary>
    public static IReadOnlyList<string> DefaultSearchPaths()
    {
        var paths = new List<string>();
        if (Environment.GetEnvironmentVariable(PluginPathVariable) is { Length: > 0 } fromEnvironment)
            paths.AddRange(fromEnvironment.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        paths.Add(PluginInventory.DefaultRoot());
        paths.Add(Path.Combine(AppContext.BaseDirectory, "plugins"));
        return paths;
    }

    /// <summary>How many plugin files are loaded now (load contexts and native libraries).</summary>
    public int LoadedCount
    {
        get
        {
            lock (_lock)
                return _loaded.Count;
        }
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
                $"Searched: {string.Join(", ", Catalog.SearchPaths)} (add folders with {PluginPathVariable}, --plugin-path or plugins.json, or install one with 'introspect plugins install').");
        }
        if (version is not null)
        {
            candidates = candidates.Where(p => VersionPattern.Matches(p.Version, version)).ToList();
            if (candidates.Count == 0)
                throw new PluginException($"Plugin '{name}' has no version {version}. Installed: {string.Join(", ", Catalog.Plugins.Where(p => p.Name == name).Select(p => p.Version).Distinct())}.");
        }
        var compatible = candidates.FirstOrDefault(p => p.IsCompatible);
        if (compatible is null)
        {
            var first = candidates[0];
            throw new PluginException(
                $"Plugin '{name}' {first.Version} ({first.Path}) cannot be loaded: {first.Incompatibility}. " +
                (first.PlatformProblem is null ? "Install a build of the plugin for this version of Introspect." : "Install a build of the plugin for this machine."));
        }
        return compatible;
    }

    /// <summary>Opens a chain: its connector, then each step over the one before it.</summary>
    /// <exception cref="PluginException">A step names no installed plugin, or the steps are in an order no chain can have; the message lists what would fit.</exception>
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
            IPhysicalMemory? memory = null;
            IOperatingSystem? system = null;
            for (int i = 0; i < plugins.Count; i++)
            {
                var step = chain.Steps[i];
                var descriptor = plugins[i];
                if (descriptor.Kind == PluginKind.Connector)
                {
                    // Auto caching is for an OS layer from another file: a connector and an OS layer shipped in one file
                    // are made for each other and may rely on meeting each other's objects unwrapped.
                    bool readByForeignOs = i + 1 < plugins.Count && plugins[i + 1].Path != descriptor.Path;
                    memory = OpenConnectorStep(chain, descriptor, step, system, readByForeignOs, owned);
                    system = null;
                }
                else
                {
                    system = OpenOsStep(descriptor, step, memory, owned);
                }
            }
            // A chain of one OS step that needs no memory below it (the local machine) serves what that OS offers.
            return new OpenedChain(chain, plugins, memory ?? system!.PhysicalMemory, system, owned);
        }
        catch
        {
            for (int i = owned.Count - 1; i >= 0; i--)
                owned[i].Dispose();
            throw;
        }
    }

    private void CheckOrder(ChainSpec chain, List<PluginDescriptor> plugins)
    {
        if (plugins[0].Kind != PluginKind.Connector && !StartsChain(plugins[0]))
            throw new PluginException($"Chain '{chain.Text}' starts with '{plugins[0].Name}', an OS layer; a chain starts with a connector. Connectors: {Names(PluginKind.Connector)}. (Only an OS layer of the machine itself, such as 'native', can start one.)");
        for (int i = 1; i < plugins.Count; i++)
        {
            var (previous, current) = (plugins[i - 1], plugins[i]);
            if (previous.Kind == PluginKind.Connector && current.Kind == PluginKind.Connector)
                throw new PluginException($"Chain '{chain.Text}': connector '{current.Name}' follows connector '{previous.Name}'; after a connector comes an OS layer that reads its memory. OS layers: {Names(PluginKind.OperatingSystem)}.");
            if (previous.Kind == PluginKind.OperatingSystem && current.Kind == PluginKind.OperatingSystem)
                throw new PluginException($"Chain '{chain.Text}': OS layer '{current.Name}' follows OS layer '{previous.Name}'; an OS layer reads the physical memory of a connector, and after an OS layer comes a connector that reads through it (such as a VM inside it) or the end of the chain.");
        }
    }

    /// <summary>Whether an OS layer opens without memory below it (loads a managed plugin: asked only of a chain's first step).</summary>
    private bool StartsChain(PluginDescriptor descriptor)
    {
        if (descriptor.Format == PluginFormat.Native)
            return false;
        using var lease = Acquire(descriptor);
        return lease.CreateFactory<IOsLayerFactory>(descriptor) is IOsLayerWithoutInputFactory;
    }

    private string Names(PluginKind kind)
    {
        var names = Catalog.Plugins.Where(p => p.Kind == kind && p.IsCompatible).Select(p => p.Name).Distinct().ToList();
        return names.Count == 0 ? "none installed" : string.Join(", ", names);
    }

    private IPhysicalMemory OpenConnectorStep(ChainSpec chain, PluginDescriptor descriptor, ChainStep step, IOperatingSystem? input, bool readByForeignOs, List<IDisposable> owned)
    {
        var (given, middleware) = SplitArguments(descriptor, step);
        var lease = Acquire(descriptor);
        owned.Add(lease);
        var context = new StepContext(_loggerFactory.CreateLogger($"plugin.{descriptor.Name}"));
        IPhysicalMemory memory;
        if (descriptor.Format == PluginFormat.Native)
        {
            var inputs = descriptor.ConnectorInputs ?? (true, false);
            if (input is null && !inputs.StartsChain)
                throw new PluginException($"Chain '{chain.Text}': connector '{descriptor.Name}' reads through an OS and cannot start a chain; put an OS step before it (for example 'coredump:FILE -> linux -> {descriptor.Name}').");
            if (input is not null && !inputs.FollowsOs)
                throw ConnectorCannotFollowOs(chain, descriptor);
            var arguments = Bind(descriptor, descriptor.DeclaredParameters ?? [], step, given);
            memory = OpenNative(lease, descriptor, arguments, context, connector: null, input, owned,
                static (instance, plugin, ctx, _) => new NativeConnector(instance, plugin, ctx));
        }
        else
        {
            var factory = lease.CreateFactory<IConnectorFactory>(descriptor);
            var arguments = Bind(descriptor, factory.Parameters, step, given);
            if (input is null && factory is IConnectorOverOsFactory defaultOverOs && factory is IDefaultInputConnectorFactory { DefaultInput: { Length: > 0 } inputName })
            {
                // A connector that reads through an OS gets its default one when it starts the chain (qemu over native).
                var inputDescriptor = Resolve(inputName, kind: PluginKind.OperatingSystem);
                var defaultInput = OpenOsStep(inputDescriptor, new ChainStep(inputName, null, []), null, owned);
                memory = Call(descriptor, "open", () => defaultOverOs.Create(defaultInput, arguments, context));
            }
            else if (input is null)
            {
                memory = Call(descriptor, "open", () => factory.Create(arguments, context));
            }
            else
            {
                if (factory is not IConnectorOverOsFactory overOs)
                    throw ConnectorCannotFollowOs(chain, descriptor);
                memory = Call(descriptor, "open", () => overOs.Create(input, arguments, context));
            }
        }
        bool cache = middleware.PageCache == PageCacheMode.On || (middleware.PageCache == PageCacheMode.Auto && readByForeignOs);
        if (cache)
        {
            // Pages of a running machine go stale: without a validity of the user's, keep them briefly.
            var maxAge = middleware.PageCacheMaxAge ?? (memory is IConnectorHints { Hints.Live: true } ? LivePageValidity : null);
            memory = new PageCache(memory, middleware.PageCachePages, MiddlewareSettings.ToValidity(maxAge));
        }
        // The cache disposes the connector it wraps; the lease goes after it.
        owned.Add(memory);
        return memory;
    }

    private PluginException ConnectorCannotFollowOs(ChainSpec chain, PluginDescriptor descriptor)
    {
        var able = new List<string>();
        foreach (var candidate in Catalog.Plugins.Where(p => p.Kind == PluginKind.Connector && p.IsCompatible).DistinctBy(p => p.Name))
        {
            if (candidate.ConnectorInputs is { } inputs ? inputs.FollowsOs : ManagedTakesOs(candidate))
                able.Add(candidate.Name);
        }
        return new PluginException(
            $"Chain '{chain.Text}': connector '{descriptor.Name}' cannot take an OS as its input; it only starts a chain. " +
            $"Connectors that read through an OS: {(able.Count == 0 ? "none installed" : string.Join(", ", able))}.");
    }

    /// <summary>Whether a managed connector's factory takes an OS (loads it: only asked on the error path).</summary>
    private bool ManagedTakesOs(PluginDescriptor descriptor)
    {
        try
        {
            using var lease = Acquire(descriptor);
            return lease.CreateFactory<IConnectorFactory>(descriptor) is IConnectorOverOsFactory;
        }
        catch (PluginException)
        {
            return false;
        }
    }

    private IOperatingSystem OpenOsStep(PluginDescriptor descriptor, ChainStep step, IPhysicalMemory? input, List<IDisposable> owned)
    {
        var (given, middleware) = SplitArguments(descriptor, step);
        var lease = Acquire(descriptor);
        owned.Add(lease);
        var context = new OsStepContext(_loggerFactory.CreateLogger($"plugin.{descriptor.Name}"), middleware);
        IOperatingSystem system;
        if (descriptor.Format == PluginFormat.Native)
        {
            if (input is null)
                throw new PluginException($"OS layer '{descriptor.Name}' reads a connector's memory and cannot start a chain; put a connector before it.");
            var arguments = Bind(descriptor, descriptor.DeclaredParameters ?? [], step, given);
            system = OpenNative(lease, descriptor, arguments, context, input, os: null, owned,
                static (instance, plugin, _, memory) => new NativeOperatingSystem(instance, plugin, memory!));
        }
        else
        {
            var factory = lease.CreateFactory<IOsLayerFactory>(descriptor);
            var arguments = Bind(descriptor, factory.Parameters, step, given);
            if (input is not null)
                system = Call(descriptor, "recognise its OS", () => factory.Create(input, arguments, context));
            else if (factory is IOsLayerWithoutInputFactory withoutInput)
                system = Call(descriptor, "open", () => withoutInput.Create(arguments, context));
            else
                throw new PluginException($"OS layer '{descriptor.Name}' reads a connector's memory and cannot start a chain; put a connector before it.");
        }
        owned.Add(system);
        return system;
    }

    private unsafe T OpenNative<T>(Lease lease, PluginDescriptor descriptor, PluginArguments arguments, StepContext context,
        IPhysicalMemory? connector, IOperatingSystem? os, List<IDisposable> owned,
        Func<NativeInstance, PluginDescriptor, IPluginContext, IPhysicalMemory?, T> wrap)
    {
        var plugin = lease.NativePlugin(descriptor);
        IpConnector* inputConnector = null;
        IpOs* inputOs = null;
        // Native input passes straight through; a managed one is exported, and the export outlives the instance reading it.
        if (connector is NativeConnector nativeConnector)
        {
            inputConnector = nativeConnector.Native;
        }
        else if (connector is not null)
        {
            var export = new ExportedConnector(connector);
            owned.Add(export);
            inputConnector = export.Pointer;
        }
        if (os is NativeOperatingSystem nativeOs)
        {
            inputOs = nativeOs.Native;
        }
        else if (os is not null)
        {
            var export = new ExportedOperatingSystem(os);
            owned.Add(export);
            inputOs = export.Pointer;
        }
        var instance = plugin.Create(arguments, context, inputConnector, inputOs, context as ITranslationCacheSettings);
        try
        {
            return wrap(instance, descriptor, context, connector);
        }
        catch
        {
            instance.Dispose();
            throw;
        }
    }

    /// <summary>Takes the host's middleware keys off a step's arguments and applies them over the defaults.</summary>
    private (List<KeyValuePair<string, string>> Given, MiddlewareSettings Middleware) SplitArguments(PluginDescriptor descriptor, ChainStep step)
    {
        var given = new List<KeyValuePair<string, string>>();
        var middleware = Options.Middleware;
        foreach (var (key, value) in step.Arguments)
        {
            if (!MiddlewareSettings.IsMiddlewareKey(key))
            {
                given.Add(new(key, value));
                continue;
            }
            bool connectorKey = MiddlewareSettings.IsConnectorKey(key);
            if (connectorKey && descriptor.Kind != PluginKind.Connector)
                throw new PluginArgumentException($"{descriptor.Name}: '{key}' configures the page cache over a connector's memory; put it on the connector step before '{descriptor.Name}'.");
            if (!connectorKey && descriptor.Kind != PluginKind.OperatingSystem)
                throw new PluginArgumentException($"{descriptor.Name}: '{key}' configures an OS layer's translation cache; put it on the OS step after '{descriptor.Name}'.");
            middleware = middleware.With(descriptor.Name, key, value);
        }
        return (given, middleware);
    }

    /// <summary>Binds a step's arguments, its bare first value going to the plugin's default argument.</summary>
    private static PluginArguments Bind(PluginDescriptor descriptor, IReadOnlyList<PluginParameter> parameters, ChainStep step, List<KeyValuePair<string, string>> given)
    {
        if (step.DefaultValue is not null)
        {
            var target = DefaultParameter(parameters)
                ?? throw new PluginArgumentException($"{descriptor.Name}: takes no bare value ('{step.DefaultValue}'); write key=value. Accepted: {(parameters.Count == 0 ? "none" : string.Join(", ", parameters.Select(p => p.Name)))}.");
            given = [new(target.Name, step.DefaultValue), .. given];
        }
        return PluginArgumentBinder.Bind(descriptor.Name, parameters, given);
    }

    /// <summary>The parameter a bare value goes to: the one marked, else the only required one.</summary>
    public static PluginParameter? DefaultParameter(IReadOnlyList<PluginParameter> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var marked = parameters.FirstOrDefault(p => p.IsDefaultArgument);
        if (marked is not null)
            return marked;
        var required = parameters.Where(p => p.Required).ToList();
        return required.Count == 1 ? required[0] : null;
    }

    /// <summary>Runs plugin code; what the contract lets it throw passes, anything else becomes a <see cref="PluginException"/> naming the plugin.</summary>
    private static T Call<T>(PluginDescriptor descriptor, string what, Func<T> action)
    {
        try
        {
            return action();
        }
        catch (Exception e) when (MissingAssembly(e) is { } assembly)
        {
            // An assembly that cannot be found is the plugin's packaging, not the user's file: say which one.
            throw new PluginException($"{descriptor.KindName} '{descriptor.Name}' {descriptor.Version} failed to {what}: it needs {assembly}, which is neither in {Path.GetDirectoryName(descriptor.Path)} nor in the .NET runtime ({e.Message})", e);
        }
        catch (Exception e) when (e is not (InvalidDataException or PluginArgumentException or IOException or UnauthorizedAccessException or PluginException))
        {
            throw new PluginException($"{descriptor.KindName} '{descriptor.Name}' {descriptor.Version} failed to {what}: {e.Message}", e);
        }
    }

    private static string? MissingAssembly(Exception e)
    {
        string? name = e switch
        {
            FileNotFoundException notFound => notFound.FileName,
            FileLoadException load => load.FileName,
            _ => null,
        };
        return name is not null && name.Contains(", Culture=", StringComparison.Ordinal) ? name : null;
    }

    /// <summary>The parameters a plugin accepts; a managed plugin is loaded for this, a native one is not.</summary>
    public IReadOnlyList<PluginParameter> GetParameters(PluginDescriptor descriptor)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        if (descriptor.Format == PluginFormat.Native)
            return descriptor.DeclaredParameters ?? [];
        using var lease = Acquire(descriptor);
        return descriptor.Kind switch
        {
            PluginKind.Connector => lease.CreateFactory<IConnectorFactory>(descriptor).Parameters,
            _ => lease.CreateFactory<IOsLayerFactory>(descriptor).Parameters,
        };
    }

    /// <summary>Unloads every plugin no instance uses any more.</summary>
    public void UnloadUnused()
    {
        lock (_lock)
        {
            foreach (var (path, loaded) in _loaded.ToList())
            {
                if (loaded.Instances == 0)
                {
                    _loaded.Remove(path);
                    loaded.Unload();
                }
            }
        }
    }

    /// <summary>Unloads what no instance uses; plugins still in use unload when their last instance is disposed.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var loaded in _loaded.Values)
                loaded.Unload();
            _loaded.Clear();
        }
    }

    private Lease Acquire(PluginDescriptor descriptor)
    {
        if (!descriptor.IsCompatible)
            throw new PluginException($"Plugin '{descriptor.Name}' ({descriptor.Path}) cannot be loaded: {descriptor.Incompatibility}.");
        lock (_lock)
        {
            if (!_loaded.TryGetValue(descriptor.Path, out var loaded))
            {
                if (Options.VerifyInstalledFiles && descriptor.Installation?.CheckIntegrity() is { } problem)
                    throw new PluginException($"{descriptor.KindText} '{descriptor.Name}' {descriptor.Version} is not loaded: {problem}.");
                loaded = new LoadedPlugin(descriptor.Path, descriptor.Format);
                _loaded[descriptor.Path] = loaded;
            }
            loaded.Instances++;
            return new Lease(this, loaded);
        }
    }

    private void Release(LoadedPlugin loaded)
    {
        lock (_lock)
        {
            loaded.Instances--;
            if (loaded.Instances == 0 && Options.UnloadWhenUnused && _loaded.TryGetValue(loaded.Path, out var current) && ReferenceEquals(current, loaded))
            {
                _loaded.Remove(loaded.Path);
                loaded.Unload();
            }
        }
    }

    /// <summary>One plugin file loaded: a load context and its assembly, or a native library; and how many instances use it.</summary>
    private sealed class LoadedPlugin(string path, PluginFormat format)
    {
        private PluginLoadContext? _context;
        private Assembly? _assembly;
        private NativeLibraryHandle? _library;
        private readonly Dictionary<string, NativePlugin> _native = new(StringComparer.Ordinal);

        public string Path { get; } = path;

        public PluginFormat Format { get; } = format;

        public int Instances { get; set; }

        public Assembly Assembly(PluginDescriptor descriptor)
        {
            if (_assembly is not null)
                return _assembly;
            var context = new PluginLoadContext(Path);
            try
            {
                _assembly = context.LoadFromAssemblyPath(Path);
                _context = context;
                return _assembly;
            }
            catch (Exception e) when (e is FileLoadException or BadImageFormatException or FileNotFoundException)
            {
                context.Unload();
                throw new PluginException($"Plugin '{descriptor.Name}' could not be loaded from {Path}: {e.Message}", e);
            }
        }

        public NativePlugin Native(PluginDescriptor descriptor)
        {
            if (_native.TryGetValue(descriptor.EntryPoint, out var plugin))
                return plugin;
            plugin = NativePlugin.Load(descriptor, _library);
            _library = plugin.Library;
            _native[descriptor.EntryPoint] = plugin;
            return plugin;
        }

        public void Unload()
        {
            // Instances still alive keep their own references: a native library is freed after its last instance,
            // and a collectible context is collected once nothing references its types.
            _native.Clear();
            _library?.Dispose();
            _library = null;
            _assembly = null;
            _context?.Unload();
            _context = null;
        }
    }

    /// <summary>One instance's hold on a loaded plugin; disposing it after the instance lets the plugin unload.</summary>
    private sealed class Lease(PluginHost host, LoadedPlugin loaded) : IDisposable
    {
        private int _disposed;

        public TFactory CreateFactory<TFactory>(PluginDescriptor descriptor) where TFactory : class
        {
            Assembly assembly;
            lock (host._lock)
                assembly = loaded.Assembly(descriptor);
            // The declaration stores an assembly-qualified name; the type lives in the declaring assembly itself.
            var typeName = descriptor.EntryPoint.Split(',', 2)[0].Trim();
            var type = assembly.GetType(typeName, throwOnError: false)
                ?? throw new PluginException($"Plugin '{descriptor.Name}' ({descriptor.Path}) declares factory type '{typeName}', which the assembly does not define.");
            if (!typeof(TFactory).IsAssignableFrom(type))
                throw new PluginException($"Plugin '{descriptor.Name}': factory type '{typeName}' does not implement {typeof(TFactory).Name} (was it built against another copy of Introspect.Abi, or declared with the wrong kind?).");
            try
            {
                return (TFactory)Activator.CreateInstance(type)!;
            }
            catch (Exception e) when (e is MissingMethodException or TargetInvocationException or MemberAccessException or FileNotFoundException or FileLoadException)
            {
                throw new PluginException($"Plugin '{descriptor.Name}': factory type '{typeName}' could not be created: {e.InnerException?.Message ?? e.Message}", e);
            }
        }

        public NativePlugin NativePlugin(PluginDescriptor descriptor)
        {
            lock (host._lock)
                return loaded.Native(descriptor);
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
                host.Release(loaded);
        }
    }

    /// <summary>What a step's plugin gets from the host: a logger.</summary>
    private class StepContext(ILogger logger) : IPluginContext
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

    /// <summary>What an OS layer's step gets: the logger, and the TLB settings of the step.</summary>
    private sealed class OsStepContext(ILogger logger, MiddlewareSettings middleware) : StepContext(logger), ITranslationCacheSettings
    {
        public bool Enabled => middleware.Tlb;

        public int Entries => middleware.TlbEntries;

        public TimeSpan? MaxAge => middleware.TlbMaxAge;
    }
}
