using System.CommandLine;
using Introspect.Abi;
using Introspect.Core.Chains;
using Introspect.Core.Plugins;

namespace Introspect.Cli.Commands;

/// <summary>The <c>introspect</c> command tree.</summary>
internal static class CliApplication
{
    /// <summary>Exit code for bad input (a bad chain, a bad argument, a malformed file): the user's to fix.</summary>
    public const int InputError = 2;

    public static int Run(string[] args, CliConsole console)
    {
        var root = new RootCommand("Introspect: read a machine's physical memory through a chain of plugins (connector -> OS -> ...).")
        {
            PluginsCommand.Create(console),
            InfoCommand.Create(console),
            ReadCommand.Create(console),
            DumpCommand.Create(console),
            SearchCommand.Create(console),
            BenchCommand.Create(console),
            PeCommand.Create(console),
            PdbCommand.Create(console),
            SymbolsCommand.Create(console),
            ProcessCommands.Ps(console),
            ProcessCommands.Maps(console),
            ProcessCommands.Modules(console),
            KernelCommands.Kernel(console),
            KernelCommands.Symbol(console),
            MountCommand.Create(console),
            YaraCommand.Create(console),
            ServeCommand.Create(console),
        };
        // No response files: '@name' is a chain named in plugins.json (--chain @myguest), not a file of arguments.
        var parseResult = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
        try
        {
            return parseResult.Invoke(new InvocationConfiguration
            {
                Output = console.Output,
                Error = console.Error,
                EnableDefaultExceptionHandler = false,
            });
        }
        catch (Exception e) when (IsUserError(e))
        {
            console.Error.WriteLine($"error: {e.Message}");
            return InputError;
        }
    }

    /// <summary>Errors in what the user gave, reported as one line; anything else is our bug and keeps its stack trace.</summary>
    private static bool IsUserError(Exception e) =>
        e is ChainSyntaxException or PluginException or PluginArgumentException or InvalidDataException
            or FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException or IOException
            or CliUsageException;
}

/// <summary>A command was given options that make no sense together; the message says what to give instead.</summary>
internal sealed class CliUsageException : Exception
{
    public CliUsageException(string message) : base(message) { }

    public CliUsageException() { }

    public CliUsageException(string message, Exception inner) : base(message, inner) { }
}
