using Spectre.Console;

namespace Introspect.Cli;

/// <summary>Where a command writes: standard output for results, standard error for messages, and whether a person is watching.</summary>
/// <remarks>Commands never touch <see cref="Console"/> directly, so tests can run them in-process and read what they wrote.</remarks>
internal sealed class CliConsole
{
    public CliConsole(TextWriter output, TextWriter error, bool interactive, Stream? rawOutput = null)
    {
        Output = output;
        Error = error;
        Interactive = interactive;
        RawOutput = rawOutput;
        Ansi = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Interactive = interactive ? InteractionSupport.Yes : InteractionSupport.No,
            Ansi = interactive ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = interactive ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
        });
        if (!interactive)
            Ansi.Profile.Width = 200;
        ErrorAnsi = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(error),
            Interactive = interactive ? InteractionSupport.Yes : InteractionSupport.No,
            Ansi = interactive ? AnsiSupport.Detect : AnsiSupport.No,
        });
    }

    public static CliConsole FromProcess() =>
        new(Console.Out, Console.Error, interactive: !Console.IsOutputRedirected && !Console.IsErrorRedirected, Console.OpenStandardOutput());

    public TextWriter Output { get; }

    public TextWriter Error { get; }

    /// <summary>Binary results (<c>read --format raw</c>) go here; null when output is text only.</summary>
    public Stream? RawOutput { get; }

    /// <summary>True when a terminal is attached: progress bars and colour only then.</summary>
    public bool Interactive { get; }

    public IAnsiConsole Ansi { get; }

    /// <summary>Progress bars draw on standard error, so that standard output stays clean for results.</summary>
    public IAnsiConsole ErrorAnsi { get; }
}
