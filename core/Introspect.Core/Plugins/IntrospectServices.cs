using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Introspect.Core.Plugins;

/// <summary>What <see cref="IntrospectServices.AddIntrospect"/> composes the plugin services from.</summary>
public sealed class IntrospectServiceOptions
{
    /// <summary>A <c>plugins.json</c> to read instead of looking in the current and the per-user folder.</summary>
    public string? ConfigurationFile { get; set; }

    /// <summary>Skip <c>plugins.json</c> entirely (use <see cref="PluginConfiguration.Empty"/>).</summary>
    public bool IgnoreConfigurationFiles { get; set; }

    /// <summary>Extra plugin folders, searched first.</summary>
    public IList<string> PluginPaths { get; } = [];

    /// <summary>The per-user plugin folder; null for <see cref="PluginInventory.DefaultRoot"/>.</summary>
    public string? InventoryRoot { get; set; }

    /// <summary>Unload plugins when their last instance is disposed (see <see cref="PluginHostOptions.UnloadWhenUnused"/>).</summary>
    public bool UnloadWhenUnused { get; set; }
}

/// <summary>Composes Introspect's services with <c>Microsoft.Extensions.DependencyInjection</c>.</summary>
public static class IntrospectServices
{
    /// <summary>
    /// Adds the configuration (<see cref="PluginConfiguration"/>), the per-user <see cref="PluginInventory"/>, the
    /// <see cref="PluginCatalog"/> over every search path, and the <see cref="PluginHost"/>, which hands each plugin a
    /// logger from the container's <see cref="ILoggerFactory"/> (add logging to see them).
    /// </summary>
    /// <remarks>
    /// Search order: <see cref="IntrospectServiceOptions.PluginPaths"/>, <c>INTROSPECT_PLUGIN_PATH</c>, the paths in
    /// <c>plugins.json</c>, the per-user plugin folder, then <c>plugins/</c> beside the program. The configuration is
    /// read when first asked for, so a bad file fails the command that needs it with the file's line.
    /// </remarks>
    public static IServiceCollection AddIntrospect(this IServiceCollection services, Action<IntrospectServiceOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = new IntrospectServiceOptions();
        configure?.Invoke(options);
        services.TryAddSingleton(options);
        services.TryAddSingleton(provider =>
        {
            var o = provider.GetRequiredService<IntrospectServiceOptions>();
            return o.IgnoreConfigurationFiles ? PluginConfiguration.Empty : PluginConfiguration.Load(o.ConfigurationFile);
        });
        services.TryAddSingleton(provider => new PluginInventory(provider.GetRequiredService<IntrospectServiceOptions>().InventoryRoot ?? PluginInventory.DefaultRoot()));
        services.TryAddSingleton(provider =>
        {
            var o = provider.GetRequiredService<IntrospectServiceOptions>();
            var configuration = provider.GetRequiredService<PluginConfiguration>();
            var inventory = provider.GetRequiredService<PluginInventory>();
            var paths = new List<string>(o.PluginPaths);
            if (Environment.GetEnvironmentVariable(PluginHost.PluginPathVariable) is { Length: > 0 } fromEnvironment)
                paths.AddRange(fromEnvironment.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
            paths.AddRange(configuration.PluginPaths);
            paths.Add(inventory.Root);
            paths.Add(Path.Combine(AppContext.BaseDirectory, "plugins"));
            return PluginCatalog.Scan(paths);
        });
        services.TryAddSingleton(provider => new PluginHost(
            provider.GetRequiredService<PluginCatalog>(),
            provider.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance,
            new PluginHostOptions
            {
                Middleware = provider.GetRequiredService<PluginConfiguration>().Middleware,
                UnloadWhenUnused = provider.GetRequiredService<IntrospectServiceOptions>().UnloadWhenUnused,
            }));
        return services;
    }
}
