using Microsoft.Extensions.Logging;

namespace Introspect.Core;

/// <summary>The machine's logger factory: the caller's (or standard error), filtered by the <c>verbosity</c> value of the machine's configuration.</summary>
/// <remarks>The filter is read at each message, so a change of verbosity applies at once, to plugins too.</remarks>
internal sealed class MachineLogging : ILoggerFactory
{
    private readonly ILoggerFactory? _inner;
    private int _verbosity = 1;

    public MachineLogging(ILoggerFactory? inner) => _inner = inner;

    /// <summary>0 errors only, 1 warnings, 2 information, 3 debug, 4 trace.</summary>
    public int Verbosity
    {
        get => Volatile.Read(ref _verbosity);
        set => Volatile.Write(ref _verbosity, Math.Clamp(value, 0, 4));
    }

    public LogLevel Threshold => Verbosity switch
    {
        0 => LogLevel.Error,
        1 => LogLevel.Warning,
        2 => LogLevel.Information,
        3 => LogLevel.Debug,
        _ => LogLevel.Trace,
    };

    public ILogger CreateLogger(string categoryName) =>
        new FilteredLogger(this, _inner?.CreateLogger(categoryName), categoryName);

    public void AddProvider(ILoggerProvider provider) => _inner?.AddProvider(provider);

    public void Dispose()
    {
        // The caller's factory is the caller's to dispose.
    }

    private sealed class FilteredLogger(MachineLogging owner, ILogger? inner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => inner?.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) =>
            logLevel != LogLevel.None && logLevel >= owner.Threshold && (inner?.IsEnabled(logLevel) ?? true);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
                return;
            if (inner is not null)
            {
                inner.Log(logLevel, eventId, state, exception, formatter);
                return;
            }
            Console.Error.WriteLine($"{LevelText(logLevel)}: {category}: {formatter(state, exception)}");
        }

        private static string LevelText(LogLevel level) => level switch
        {
            LogLevel.Trace => "trace",
            LogLevel.Debug => "debug",
            LogLevel.Information => "info",
            LogLevel.Warning => "warning",
            _ => "error",
        };
    }
}
