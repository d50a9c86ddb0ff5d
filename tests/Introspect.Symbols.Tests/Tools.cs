using System.Diagnostics;

namespace Introspect.Symbols.Tests;

/// <summary>Runs the real tools the tests compare against: binutils' objdump, LLVM's llvm-pdbutil, clang-cl and lld-link.</summary>
internal static class Tools
{
    private static readonly string[] Folders = ["/usr/bin", "/usr/local/bin", "/usr/lib/llvm-16/bin", "/usr/lib/llvm-15/bin", "/usr/lib/llvm-14/bin"];

    /// <summary>The path of a tool, under its plain name or Debian's versioned one; fails the test when it is missing.</summary>
    public static string Find(string tool)
    {
        foreach (var folder in Folders)
        {
            foreach (var name in new[] { tool, tool + "-16", tool + "-15", tool + "-14" })
            {
                var path = Path.Combine(folder, name);
                if (File.Exists(path))
                    return path;
            }
        }
        Assert.Fail($"{tool} is not installed; tests/fixtures/build.sh installs it (Debian packages binutils, llvm, clang, lld).");
        return null!;
    }

    /// <summary>Runs a tool to completion and returns its standard output; a non-zero exit fails the test.</summary>
    public static string Run(string tool, params string[] arguments) => RunIn(null, tool, arguments);

    public static string RunIn(string? workingDirectory, string tool, params string[] arguments)
    {
        var start = new ProcessStartInfo(Find(tool))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (workingDirectory is not null)
            start.WorkingDirectory = workingDirectory;
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEndAsync();
        string output = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{tool} {string.Join(' ', arguments)} did not finish within 2 minutes");
        }
        if (process.ExitCode != 0)
            Assert.Fail($"{tool} {string.Join(' ', arguments)} exited with {process.ExitCode}: {error.Result}");
        return output;
    }
}
