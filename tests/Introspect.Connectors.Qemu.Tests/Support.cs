using System.Collections.Concurrent;
using Introspect.Cli;
using Introspect.Cli.Commands;
using Introspect.Core;
using Introspect.Core.Plugins;
using Microsoft.Extensions.Logging;

namespace Introspect.Connectors.Qemu.Tests;

/// <summary>Runs the <c>introspect</c> command in-process, as a non-interactive terminal would.</summary>
internal sealed record CliRun(int ExitCode, string Output, string Error, byte[] RawOutput)
{
    public static CliRun Of(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        using var raw = new MemoryStream();
        int exitCode = CliApplication.Run(args, new CliConsole(output, error, interactive: false, raw));
        return new CliRun(exitCode, output.ToString(), error.ToString(), raw.ToArray());
    }

    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Output}\nstderr:\n{Error}";
}

/// <summary>Keeps every log message, for tests that check what a plugin reported.</summary>
internal sealed class LogCapture : ILoggerProvider
{
    public ConcurrentQueue<string> Messages { get; } = new();

    public ILoggerFactory Factory() => LoggerFactory.Create(builder => builder.SetMinimumLevel(LogLevel.Trace).AddProvider(this));

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void Dispose()
    {
    }

    private sealed class Logger(LogCapture owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner.Messages.Enqueue(formatter(state, exception));
    }
}

internal static class Chains
{
    private static readonly Lazy<PluginCatalog> Catalog = new(() => PluginCatalog.Scan([Path.Combine(AppContext.BaseDirectory, "plugins")]));

    /// <summary>Opens a chain through a plugin host that logs to <paramref name="log"/> (plugins' own reports, unfiltered).</summary>
    public static Machine Open(string chain, LogCapture? log = null)
    {
        var host = new PluginHost(Catalog.Value, log?.Factory());
        try
        {
            var opened = host.Open(Introspect.Core.Chains.ChainSpec.Parse(chain));
            return Machine.Open(opened);
        }
        catch
        {
            host.Dispose();
            throw;
        }
    }
}
