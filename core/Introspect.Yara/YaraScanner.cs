using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Introspect.Yara;

/// <summary>Where a match was found: its offset, and what the scan knows of its addresses and process.</summary>
internal readonly record struct YaraLocation(ulong Offset, ulong? PhysicalAddress, ulong? VirtualAddress, ulong? Pid);

/// <summary>One libyara scanner and the matches it collected; scans buffer after buffer on one thread.</summary>
/// <remarks>
/// libyara reports a matching rule through a callback, during which the rule's strings and their matches can be read
/// from the scan context (what the <c>yr_rule_strings_foreach</c> and <c>yr_string_matches_foreach</c> macros do).
/// The callback reads them with <see cref="Marshal"/> at the offsets of <see cref="YaraNative"/>.
/// </remarks>
internal sealed class YaraScanner : IDisposable
{
    /// <summary>SCAN_FLAGS_REPORT_RULES_MATCHING: only matching rules call back.</summary>
    private const int ReportRulesMatching = 8;

    /// <summary>The most bytes of each match kept (libyara keeps at most 512 itself).</summary>
    private const int MaxDataBytes = 512;

    private readonly YaraRules _rules;
    private readonly SafeYaraScannerHandle _scanner;
    private readonly GCHandle _self;
    private readonly int _maxMatches;
    private readonly List<YaraMatch> _matches = [];
    private Func<ulong, YaraLocation>? _locate;
    private ulong _keepBelow;
    private Exception? _failure;

    public YaraScanner(YaraRules rules, int maxMatches)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxMatches);
        _rules = rules;
        _maxMatches = maxMatches;
        if (YaraNative.yr_scanner_create(rules.Handle, out var raw) != YaraNative.ErrorSuccess)
            throw new InvalidOperationException("libyara could not create a scanner (out of memory).");
        _scanner = new SafeYaraScannerHandle(raw);
        _self = GCHandle.Alloc(this);
        YaraNative.yr_scanner_set_callback(_scanner, YaraNative.ScanCallback, GCHandle.ToIntPtr(_self));
        YaraNative.yr_scanner_set_flags(_scanner, ReportRulesMatching);
    }

    public List<YaraMatch> Matches => _matches;

    public bool IsFull => _matches.Count >= _maxMatches;

    /// <summary>Scans <paramref name="data"/>; keeps the matches that start below <paramref name="keepBelow"/> (the rest belong to the next buffer).</summary>
    /// <param name="data">The bytes.</param>
    /// <param name="locate">Turns an offset in <paramref name="data"/> into where it is in the machine.</param>
    /// <param name="keepBelow">Matches starting at or after this offset are left to the next buffer, which overlaps this one.</param>
    public void Scan(ReadOnlySpan<byte> data, Func<ulong, YaraLocation> locate, ulong keepBelow)
    {
        if (IsFull || data.IsEmpty)
            return;
        _locate = locate;
        _keepBelow = keepBelow;
        _failure = null;
        // libyara reads the buffer during the call only: a reference to the span's first byte pins it for that long.
        int result = YaraNative.yr_scanner_scan_mem(_scanner, ref MemoryMarshal.GetReference(data), (nuint)data.Length);
        _locate = null;
        if (_failure is not null)
            throw new InvalidOperationException($"Reading YARA's matches failed: {_failure.Message}", _failure);
        if (result != YaraNative.ErrorSuccess)
            throw new InvalidOperationException($"YARA's scan failed: {YaraNative.ErrorName(result)}.");
    }

    public void Dispose()
    {
        _scanner.Dispose();
        if (_self.IsAllocated)
            _self.Free();
        GC.KeepAlive(_rules);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    internal static int OnScanMessage(nint context, int message, nint messageData, nint userData)
    {
        // Nothing may escape into native code: failures are kept and rethrown once the scan returns.
        YaraScanner? scanner = null;
        try
        {
            scanner = GCHandle.FromIntPtr(userData).Target as YaraScanner;
            if (scanner is null || message != YaraNative.MessageRuleMatching)
                return YaraNative.CallbackContinue;
            scanner.AddRule(context, messageData);
            return scanner.IsFull ? YaraNative.CallbackAbort : YaraNative.CallbackContinue;
        }
        catch (Exception e)
        {
            if (scanner is not null)
                scanner._failure = e;
            return YaraNative.CallbackAbort;
        }
    }

    private void AddRule(nint context, nint rule)
    {
        if ((Marshal.ReadInt32(rule, YaraNative.RuleFlags) & YaraNative.RuleFlagPrivate) != 0)
            return;
        var identifier = Marshal.PtrToStringUTF8(Marshal.ReadIntPtr(rule, YaraNative.RuleIdentifier)) ?? "";
        var nsPointer = Marshal.ReadIntPtr(rule, YaraNative.RuleNamespace);
        var ns = nsPointer == 0 ? "default" : Marshal.PtrToStringUTF8(Marshal.ReadIntPtr(nsPointer)) ?? "default";
        var tags = ReadTags(Marshal.ReadIntPtr(rule, YaraNative.RuleTags));
        var locate = _locate!;
        int found = 0, kept = 0;
        nint matchesArray = Marshal.ReadIntPtr(context, YaraNative.ContextMatches);
        nint stringPointer = Marshal.ReadIntPtr(rule, YaraNative.RuleStrings);
        for (int guard = 0; stringPointer != 0 && guard < 1 << 20; guard++, stringPointer += YaraNative.StringSize)
        {
            int flags = Marshal.ReadInt32(stringPointer, YaraNative.StringFlags);
            if ((flags & YaraNative.StringFlagPrivate) == 0)
            {
                uint index = (uint)Marshal.ReadInt32(stringPointer, YaraNative.StringIndex);
                var stringName = Marshal.PtrToStringUTF8(Marshal.ReadIntPtr(stringPointer, YaraNative.StringIdentifier)) ?? "";
                nint match = Marshal.ReadIntPtr(matchesArray + (nint)(index * YaraNative.MatchesSize));
                for (int links = 0; match != 0 && links < 1 << 24; links++, match = Marshal.ReadIntPtr(match, YaraNative.MatchNext))
                {
                    if (Marshal.ReadByte(match, YaraNative.MatchIsPrivate) != 0)
                        continue;
                    found++;
                    ulong offset = (ulong)(Marshal.ReadInt64(match, YaraNative.MatchBase) + Marshal.ReadInt64(match, YaraNative.MatchOffset));
                    if (offset >= _keepBelow || IsFull)
                        continue;
                    kept++;
                    int length = Marshal.ReadInt32(match, YaraNative.MatchLength);
                    int dataLength = Math.Clamp(Marshal.ReadInt32(match, YaraNative.MatchDataLength), 0, MaxDataBytes);
                    var data = new byte[dataLength];
                    if (dataLength > 0)
                        Marshal.Copy(Marshal.ReadIntPtr(match, YaraNative.MatchData), data, 0, dataLength);
                    Add(identifier, ns, tags, stringName, length, data, locate(offset));
                }
            }
            if ((flags & YaraNative.StringFlagLastInRule) != 0)
                break;
        }
        // A rule that matched without any string match of its own (a condition on the file alone) is reported once per buffer.
        if (found == 0 && !IsFull)
            Add(identifier, ns, tags, null, 0, [], locate(0));
    }

    private void Add(string rule, string ns, IReadOnlyList<string> tags, string? stringName, int length, byte[] data, YaraLocation location) =>
        _matches.Add(new YaraMatch(rule, ns, tags, stringName, location.Offset, length, data, location.PhysicalAddress, location.VirtualAddress, location.Pid));

    /// <summary>A rule's tags: NUL-terminated names one after another, ended by an empty one.</summary>
    private static IReadOnlyList<string> ReadTags(nint tags)
    {
        if (tags == 0)
            return [];
        var list = new List<string>();
        for (int guard = 0; guard < 256; guard++)
        {
            var tag = Marshal.PtrToStringUTF8(tags);
            if (string.IsNullOrEmpty(tag))
                break;
            list.Add(tag);
            tags += System.Text.Encoding.UTF8.GetByteCount(tag) + 1;
        }
        return list;
    }
}
