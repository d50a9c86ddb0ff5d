using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Introspect.Yara;

/// <summary>Compiled YARA rules: compile once from text or a file, scan many times (from several threads at once).</summary>
public sealed class YaraRules : IDisposable
{
    private readonly SafeYaraRulesHandle _handle;

    private YaraRules(SafeYaraRulesHandle handle, IReadOnlyList<string> warnings)
    {
        _handle = handle;
        Warnings = warnings;
    }

    /// <summary>The compiler's warnings, worded as the <c>yara</c> tool prints them.</summary>
    public IReadOnlyList<string> Warnings { get; }

    internal SafeYaraRulesHandle Handle => _handle;

    /// <summary>Compiles rules from text.</summary>
    /// <param name="source">The rules.</param>
    /// <param name="sourceName">What the messages call the text (a file name, say).</param>
    /// <exception cref="InvalidDataException">The rules do not compile; the message holds the compiler's own messages, one a line.</exception>
    /// <exception cref="DllNotFoundException">libyara is not installed.</exception>
    public static YaraRules Compile(string source, string sourceName = "rules")
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(sourceName);
        return CompileWith(sourceName, compiler => YaraNative.yr_compiler_add_string(compiler, source, null));
    }

    /// <summary>Compiles rules from a file; <c>include</c>s are found beside it.</summary>
    /// <exception cref="FileNotFoundException">There is no such file.</exception>
    /// <exception cref="InvalidDataException">The rules do not compile; the message holds the compiler's own messages, one a line.</exception>
    public static YaraRules CompileFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        return CompileWith(path, compiler =>
        {
            bool added = false;
            file.DangerousAddRef(ref added);
            try
            {
                return YaraNative.yr_compiler_add_fd(compiler, (int)file.DangerousGetHandle(), null, path);
            }
            finally
            {
                if (added)
                    file.DangerousRelease();
            }
        });
    }

    /// <summary>Scans one buffer: every match of every rule's strings, offsets from the buffer's start.</summary>
    public IReadOnlyList<YaraMatch> Scan(ReadOnlySpan<byte> data, int maxMatches = YaraSearch.DefaultMaxMatches)
    {
        using var scanner = new YaraScanner(this, maxMatches);
        scanner.Scan(data, static offset => new YaraLocation(offset, null, null, null), keepBelow: (ulong)data.Length);
        return scanner.Matches;
    }

    public void Dispose() => _handle.Dispose();

    private static YaraRules CompileWith(string sourceName, Func<SafeYaraCompilerHandle, int> add)
    {
        YaraNative.EnsureInitialized();
        if (YaraNative.yr_compiler_create(out var raw) != YaraNative.ErrorSuccess)
            throw new InvalidOperationException("libyara could not create a compiler (out of memory).");
        using var compiler = new SafeYaraCompilerHandle(raw);
        var messages = new CompilerMessages(sourceName);
        var self = GCHandle.Alloc(messages);
        try
        {
            YaraNative.yr_compiler_set_callback(compiler, YaraNative.CompilerCallback, GCHandle.ToIntPtr(self));
            int errors = add(compiler);
            if (errors > 0 || messages.Errors.Count > 0)
            {
                // The compiler's own messages, as the yara tool prints them: SOURCE(LINE): error: MESSAGE.
                var list = messages.Errors.Count > 0 ? messages.Errors : [$"{sourceName}: {errors} error(s)"];
                throw new InvalidDataException($"YARA rules in {sourceName} do not compile:\n{string.Join('\n', list)}");
            }
            if (YaraNative.yr_compiler_get_rules(compiler, out var rules) != YaraNative.ErrorSuccess)
                throw new InvalidOperationException("libyara could not build the compiled rules (out of memory).");
            return new YaraRules(new SafeYaraRulesHandle(rules), messages.Warnings);
        }
        finally
        {
            self.Free();
        }
    }

    /// <summary>libyara's compiler callback: one error or warning, with the file and line it was found at.</summary>
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    internal static void OnCompilerMessage(int errorLevel, nint fileName, int lineNumber, nint rule, nint message, nint userData)
    {
        // Nothing may escape into native code: a managed exception here would tear the process down.
        try
        {
            if (GCHandle.FromIntPtr(userData).Target is not CompilerMessages messages)
                return;
            var file = Marshal.PtrToStringUTF8(fileName) ?? messages.SourceName;
            var text = Marshal.PtrToStringUTF8(message) ?? "(no message)";
            var kind = errorLevel == YaraNative.ErrorLevelError ? "error" : "warning";
            // The yara tool's own wording, so that a message reads the same here as there.
            var line = rule != 0 && Marshal.PtrToStringUTF8(Marshal.ReadIntPtr(rule, YaraNative.RuleIdentifier)) is { } ruleName
                ? $"{kind}: rule \"{ruleName}\" in {file}({lineNumber}): {text}"
                : $"{file}({lineNumber}): {kind}: {text}";
            (errorLevel == YaraNative.ErrorLevelError ? messages.Errors : messages.Warnings).Add(line);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            // A message that cannot be read is lost; the error count still fails the compilation.
        }
    }

    private sealed class CompilerMessages(string sourceName)
    {
        public string SourceName { get; } = sourceName;

        public List<string> Errors { get; } = [];

        public List<string> Warnings { get; } = [];
    }
}
