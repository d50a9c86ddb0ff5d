using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Introspect.Yara;

/// <summary>libyara's C functions (YARA 4.2, <c>libyara.so.9</c>) and the layouts the scan callback reads.</summary>
/// <remarks>
/// Handles travel as <see cref="nint"/> inside this class and as <see cref="SafeHandle"/>s outside it. The offsets
/// below are those of YARA 4.2's <c>types.h</c> on 64-bit machines, the ABI of the <c>.so.9</c> soname: the
/// structures behind <c>yr_rule_strings_foreach</c> and <c>yr_string_matches_foreach</c>, which are macros and so
/// part of the library's binary interface.
/// </remarks>
internal static partial class YaraNative
{
    public const string Library = "libyara.so.9";

    public const int ErrorSuccess = 0;
    public const int CallbackContinue = 0;
    public const int CallbackAbort = 1;
    public const int MessageRuleMatching = 1;
    public const int MessageConsoleLog = 7;
    public const int MessageTooManyMatches = 6;
    public const int ErrorLevelError = 0;

    // struct YR_RULE (48 bytes): flags, num_atoms, then references of 8 bytes each.
    public const int RuleFlags = 0;
    public const int RuleIdentifier = 8;
    public const int RuleTags = 16;
    public const int RuleStrings = 32;
    public const int RuleNamespace = 40;
    public const int RuleFlagPrivate = 0x01;

    // struct YR_STRING (56 bytes).
    public const int StringSize = 56;
    public const int StringFlags = 0;
    public const int StringIndex = 4;
    public const int StringIdentifier = 48;
    public const int StringFlagLastInRule = 0x1000;
    public const int StringFlagPrivate = 0x100000;

    // YR_SCAN_CONTEXT.matches: an array of struct YR_MATCHES (24 bytes: head, tail, count), indexed by string index.
    public const int ContextMatches = 160;
    public const int MatchesSize = 24;

    // struct YR_MATCH.
    public const int MatchBase = 0;
    public const int MatchOffset = 8;
    public const int MatchLength = 16;
    public const int MatchDataLength = 20;
    public const int MatchData = 24;
    public const int MatchNext = 40;
    public const int MatchIsPrivate = 52;

    [LibraryImport(Library)]
    public static partial int yr_initialize();

    [LibraryImport(Library)]
    public static partial int yr_compiler_create(out nint compiler);

    [LibraryImport(Library)]
    public static partial void yr_compiler_destroy(nint compiler);

    [LibraryImport(Library)]
    public static partial void yr_compiler_set_callback(SafeYaraCompilerHandle compiler, nint callback, nint userData);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int yr_compiler_add_string(SafeYaraCompilerHandle compiler, string rules, string? @namespace);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int yr_compiler_add_fd(SafeYaraCompilerHandle compiler, int fd, string? @namespace, string fileName);

    [LibraryImport(Library)]
    public static partial int yr_compiler_get_rules(SafeYaraCompilerHandle compiler, out nint rules);

    [LibraryImport(Library)]
    public static partial int yr_rules_destroy(nint rules);

    [LibraryImport(Library)]
    public static partial int yr_scanner_create(SafeYaraRulesHandle rules, out nint scanner);

    [LibraryImport(Library)]
    public static partial void yr_scanner_destroy(nint scanner);

    [LibraryImport(Library)]
    public static partial void yr_scanner_set_callback(SafeYaraScannerHandle scanner, nint callback, nint userData);

    [LibraryImport(Library)]
    public static partial void yr_scanner_set_flags(SafeYaraScannerHandle scanner, int flags);

    [LibraryImport(Library)]
    public static partial int yr_scanner_scan_mem(SafeYaraScannerHandle scanner, ref byte buffer, nuint length);

    /// <summary>The address of <see cref="YaraRules.OnCompilerMessage"/>, for <c>yr_compiler_set_callback</c>.</summary>
    /// <remarks>This member and the next are the library's one <c>unsafe</c> chokepoint: taking a method's address needs it.</remarks>
    public static unsafe nint CompilerCallback =>
        (nint)(delegate* unmanaged[Cdecl]<int, nint, int, nint, nint, nint, void>)&YaraRules.OnCompilerMessage;

    /// <summary>The address of <see cref="YaraScanner.OnScanMessage"/>, for <c>yr_scanner_set_callback</c>.</summary>
    public static unsafe nint ScanCallback =>
        (nint)(delegate* unmanaged[Cdecl]<nint, int, nint, nint, int>)&YaraScanner.OnScanMessage;

    private static readonly Lazy<int> Initialized = new(() =>
    {
        try
        {
            return yr_initialize();
        }
        catch (DllNotFoundException e)
        {
            throw new DllNotFoundException($"YARA needs {Library}, which is not installed (Debian: apt install libyara9).", e);
        }
    });

    /// <summary>Initialises libyara once per process; it is never finalised, as rules may live until the process ends.</summary>
    public static void EnsureInitialized()
    {
        int result = Initialized.Value;
        if (result != ErrorSuccess)
            throw new InvalidOperationException($"libyara failed to initialise: {ErrorName(result)}.");
    }

    public static string ErrorName(int code) => code switch
    {
        1 => "insufficient memory",
        26 => "scan timeout",
        27 => "too many scan threads",
        28 => "callback error",
        29 => "invalid argument",
        30 => "too many matches",
        31 => "internal fatal error",
        _ => $"error {code}",
    };
}

/// <summary>A YARA compiler, destroyed with <c>yr_compiler_destroy</c>.</summary>
internal sealed class SafeYaraCompilerHandle : SafeHandle
{
    public SafeYaraCompilerHandle() : base(0, ownsHandle: true) { }

    public SafeYaraCompilerHandle(nint handle) : this() => SetHandle(handle);

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle()
    {
        YaraNative.yr_compiler_destroy(handle);
        return true;
    }
}

/// <summary>Compiled YARA rules, destroyed with <c>yr_rules_destroy</c>.</summary>
internal sealed class SafeYaraRulesHandle : SafeHandle
{
    public SafeYaraRulesHandle() : base(0, ownsHandle: true) { }

    public SafeYaraRulesHandle(nint handle) : this() => SetHandle(handle);

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle() => YaraNative.yr_rules_destroy(handle) == YaraNative.ErrorSuccess;
}

/// <summary>A YARA scanner, destroyed with <c>yr_scanner_destroy</c>.</summary>
internal sealed class SafeYaraScannerHandle : SafeHandle
{
    public SafeYaraScannerHandle() : base(0, ownsHandle: true) { }

    public SafeYaraScannerHandle(nint handle) : this() => SetHandle(handle);

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle()
    {
        YaraNative.yr_scanner_destroy(handle);
        return true;
    }
}
