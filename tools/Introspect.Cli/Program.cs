using Introspect.Cli.Commands;

namespace Introspect.Cli;

internal static class Program
{
    private static int Main(string[] args) => CliApplication.Run(args, CliConsole.FromProcess());
}
