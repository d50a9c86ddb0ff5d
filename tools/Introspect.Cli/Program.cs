namespace Introspect.Cli;

internal static class Program
{
    private static int Main(string[] args) => args.Length;
}
