using Introspect.Cli.Commands;

namespace Introspect.Cli.Tests;

/// <summary>Runs the <c>introspect</c> command in-process, as a non-interactive terminal would, and keeps what it wrote.</summary>
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
