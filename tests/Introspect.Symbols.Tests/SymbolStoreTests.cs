using System.Text;
using Introspect.Symbols.Pe;
using Introspect.Symbols.Store;
using Introspect.TestSupport;

namespace Introspect.Symbols.Tests;

/// <summary>The symbol store client against a real HTTP server on 127.0.0.1 serving the shared PDBs in the server
/// layout, healthy and failing.</summary>
[CancelAfter(60_000)]
public class SymbolStoreTests
{
    private TestSymbolServer _server = null!;
    private string _scratch = null!;
    private string _cache = null!;

    private static readonly string ExePath = TestInputs.TestData("pdb", "breakpad", "dump_syms_regtest64.exe");
    private static readonly string PdbPath = TestInputs.TestData("pdb", "breakpad", "dump_syms_regtest64.pdb");

    private static SymbolFileKey Key => SymbolFileKey.ForPdb(PeImage.Open(ExePath).CodeView!);

    private static byte[] PdbBytes => File.ReadAllBytes(PdbPath);

    private string ServerPath(string file = "dump_syms_regtest64.pdb") => $"/symbols/dump_syms_regtest64.pdb/{Key.Id}/{file}";

    private string CachedPath => Path.Combine(_cache, "dump_syms_regtest64.pdb", Key.Id, "dump_syms_regtest64.pdb");

    [SetUp]
    public void Start()
    {
        _server = new TestSymbolServer();
        _scratch = Directory.CreateTempSubdirectory("introspect-store-").FullName;
        _cache = Path.Combine(_scratch, "cache");
    }

    [TearDown]
    public void Stop()
    {
        _server.Dispose();
        Directory.Delete(_scratch, recursive: true);
    }

    private SymbolStore Store(string? path = null, bool offline = false, int attempts = 3) => new(
        SymbolPath.Parse(path ?? $"srv*{_cache}*{_server.Url}/symbols"),
        new SymbolStoreOptions
        {
            Offline = offline,
            MaxAttempts = attempts,
            RetryDelay = TimeSpan.FromMilliseconds(20),
            ResponseTimeout = TimeSpan.FromMilliseconds(500),
            StallTimeout = TimeSpan.FromMilliseconds(500),
        });

    private static SymbolLookup Find(SymbolStore store, IProgress<SymbolDownloadProgress>? progress = null) =>
        store.FindAsync(Key, progress).GetAwaiter().GetResult();

    [Test]
    public void The_key_of_an_image_is_its_pdbs_name_guid_and_age()
    {
        Assert.That(Key.FileName, Is.EqualTo("dump_syms_regtest64.pdb"));
        Assert.That(Key.Id, Is.EqualTo("72E103A85CB249078B76B2E7C06257B13"), "the id Breakpad's MODULE line gives");
        Assert.That(SymbolFileKey.ForImage(@"C:\Windows\System32\ntoskrnl.exe", 0x5a4b3c2d, 0x1f000).StorePath, Is.EqualTo("ntoskrnl.exe/5A4B3C2D1F000/ntoskrnl.exe"));
    }

    [Test]
    public void A_pdb_is_downloaded_checked_and_cached_and_then_found_offline()
    {
        _server.Serve(ServerPath(), PdbBytes);
        var reports = new List<SymbolDownloadProgress>();

        using (var store = Store())
        {
            var lookup = Find(store, new SynchronousProgress<SymbolDownloadProgress>(reports.Add));
            Assert.That(lookup.Found, Is.True, string.Join('\n', lookup.Log));
            Assert.That(lookup.Path, Is.EqualTo(CachedPath));
        }
        Assert.That(File.ReadAllBytes(CachedPath), Is.EqualTo(PdbBytes));
        Assert.That(reports, Is.Not.Empty);
        Assert.That(reports[^1].BytesReceived, Is.EqualTo(PdbBytes.Length));
        Assert.That(reports[^1].TotalBytes, Is.EqualTo(PdbBytes.Length));
        Assert.That(Directory.GetFiles(_cache, "*.partial", SearchOption.AllDirectories), Is.Empty);

        using var offline = Store(offline: true);
        var again = Find(offline);
        Assert.That(again.Path, Is.EqualTo(CachedPath));
        Assert.That(_server.TotalRequests, Is.EqualTo(1), "the second lookup did not touch the network");
    }

    [Test]
    public void A_compressed_pd_underscore_is_expanded_into_the_cache()
    {
        var cab = CabBuilder.Build("dump_syms_regtest64.pdb", PdbBytes, CabBuilder.MsZip, out _);
        _server.Serve(ServerPath("dump_syms_regtest64.pd_"), cab);

        using var store = Store();
        var lookup = Find(store);

        Assert.That(lookup.Found, Is.True, string.Join('\n', lookup.Log));
        Assert.That(File.ReadAllBytes(lookup.Path!), Is.EqualTo(PdbBytes));
        Assert.That(_server.RequestsFor(ServerPath()), Is.EqualTo(1), "the plain name was asked for first");
        Assert.That(lookup.Log, Has.Some.Contains("compressed"));
    }

    [Test]
    public void A_file_pointer_to_a_reachable_path_is_followed()
    {
        _server.Serve(ServerPath("file.ptr"), Encoding.ASCII.GetBytes($"PATH:{PdbPath}"));

        using var store = Store();
        var lookup = Find(store);

        Assert.That(lookup.Path, Is.EqualTo(CachedPath), string.Join('\n', lookup.Log));
        Assert.That(File.ReadAllBytes(CachedPath), Is.EqualTo(PdbBytes));
    }

    [Test]
    public void A_file_pointer_message_is_reported()
    {
        _server.Serve(ServerPath("file.ptr"), "MSG: withdrawn by its publisher"u8.ToArray());

        using var store = Store();
        var lookup = Find(store);

        Assert.That(lookup.Found, Is.False);
        Assert.That(lookup.Log, Has.Some.Contains("withdrawn by its publisher"));
    }

    [Test]
    public void Not_found_anywhere_asks_for_each_name_once_and_stores_nothing()
    {
        using var store = Store();
        var lookup = Find(store);

        Assert.That(lookup.Found, Is.False);
        Assert.That(_server.RequestsFor(ServerPath()), Is.EqualTo(1), "a 404 is not retried");
        Assert.That(_server.RequestsFor(ServerPath("dump_syms_regtest64.pd_")), Is.EqualTo(1));
        Assert.That(_server.RequestsFor(ServerPath("file.ptr")), Is.EqualTo(1));
        Assert.That(lookup.Log.Count(l => l.Contains("404", StringComparison.Ordinal)), Is.EqualTo(3));
        Assert.That(File.Exists(CachedPath), Is.False);
    }

    [Test]
    public void A_server_that_never_answers_times_out_after_the_bounded_retries()
    {
        _server.Serve(ServerPath(), PdbBytes, Behavior.NoResponse);

        using var store = Store(attempts: 2);
        var lookup = Find(store);

        Assert.That(lookup.Found, Is.False);
        Assert.That(_server.RequestsFor(ServerPath()), Is.EqualTo(2));
        Assert.That(lookup.Log, Has.Some.Contains("timed out: no response"));
        Assert.That(lookup.Log, Has.Some.Contains("given up after 2 attempts"));
    }

    [Test]
    public void A_download_that_stalls_times_out()
    {
        _server.Serve(ServerPath(), PdbBytes, Behavior.Stall);

        using var store = Store(attempts: 1);
        var lookup = Find(store);

        Assert.That(lookup.Found, Is.False);
        Assert.That(lookup.Log, Has.Some.Contains("timed out: no data"));
        Assert.That(File.Exists(CachedPath), Is.False);
    }

    [Test]
    public void A_lookup_ends_at_its_total_timeout_even_while_retrying()
    {
        _server.Serve(ServerPath(), PdbBytes, Behavior.NoResponse);
        using var store = new SymbolStore(SymbolPath.Parse($"srv*{_cache}*{_server.Url}/symbols"), new SymbolStoreOptions
        {
            MaxAttempts = 1000,
            RetryDelay = TimeSpan.FromMilliseconds(10),
            ResponseTimeout = TimeSpan.FromMilliseconds(200),
            TotalTimeout = TimeSpan.FromSeconds(1),
        });

        var lookup = Find(store);

        Assert.That(lookup.Found, Is.False);
        Assert.That(lookup.Log[^1], Does.Contain("gave up"));
        Assert.That(_server.RequestsFor(ServerPath()), Is.LessThan(1000));
    }

    [Test]
    public void A_truncated_body_is_detected_by_its_length_retried_and_never_cached()
    {
        _server.Serve(ServerPath(), PdbBytes, Behavior.Truncated);

        using var store = Store(attempts: 3);
        var lookup = Find(store);

        Assert.That(lookup.Found, Is.False);
        Assert.That(_server.RequestsFor(ServerPath()), Is.EqualTo(3));
        Assert.That(lookup.Log, Has.Some.Contains("of " + PdbBytes.Length + " bytes").Or.Some.Contains("ended"));
        Assert.That(File.Exists(CachedPath), Is.False);
        Assert.That(Directory.Exists(_cache) ? Directory.GetFiles(_cache, "*", SearchOption.AllDirectories) : [], Is.Empty);
    }

    [Test]
    public void A_truncated_body_without_a_length_is_caught_by_the_pdb_check_and_never_cached()
    {
        _server.Serve(ServerPath(), PdbBytes, Behavior.TruncatedNoLength);

        using var store = Store(attempts: 2);
        var lookup = Find(store);

        Assert.That(lookup.Found, Is.False);
        Assert.That(lookup.Log, Has.Some.Contains("not the file asked for"));
        Assert.That(File.Exists(CachedPath), Is.False);
    }

    [Test]
    public void A_whole_body_without_a_length_is_accepted()
    {
        _server.Serve(ServerPath(), PdbBytes, Behavior.NoLength);

        using var store = Store();
        Assert.That(Find(store).Path, Is.EqualTo(CachedPath));
    }

    [Test]
    public void Another_pdb_served_under_this_key_is_refused()
    {
        _server.Serve(ServerPath(), File.ReadAllBytes(TestInputs.TestData("pdb", "symbolic", "crash.pdb")));

        using var store = Store(attempts: 1);
        var lookup = Find(store);

        Assert.That(lookup.Found, Is.False);
        Assert.That(lookup.Log, Has.Some.Contains("not the file asked for").And.Some.Contains("3249D99D"));
        Assert.That(File.Exists(CachedPath), Is.False);
    }

    [Test]
    public void A_server_error_is_retried_and_the_second_attempt_succeeds()
    {
        _server.Serve(ServerPath(), PdbBytes, Behavior.FailOnce);

        using var store = Store();
        var lookup = Find(store);

        Assert.That(lookup.Path, Is.EqualTo(CachedPath), string.Join('\n', lookup.Log));
        Assert.That(_server.RequestsFor(ServerPath()), Is.EqualTo(2));
        Assert.That(lookup.Log, Has.Some.Contains("503"));
    }

    [Test]
    public void Offline_never_touches_the_network()
    {
        _server.Serve(ServerPath(), PdbBytes);

        using var store = Store(offline: true);
        var lookup = Find(store);

        Assert.That(lookup.Found, Is.False);
        Assert.That(_server.TotalRequests, Is.Zero);
        Assert.That(lookup.Log, Has.Some.Contains("offline"));
    }

    [Test]
    public void A_plain_folder_gives_the_matching_pdb_and_skips_a_different_one()
    {
        var good = Path.Combine(_scratch, "good");
        var bad = Path.Combine(_scratch, "bad");
        Directory.CreateDirectory(good);
        Directory.CreateDirectory(bad);
        File.Copy(PdbPath, Path.Combine(good, "dump_syms_regtest64.pdb"));
        File.Copy(TestInputs.TestData("pdb", "symbolic", "crash.pdb"), Path.Combine(bad, "dump_syms_regtest64.pdb"));

        using var store = Store($"{bad};{good}", offline: true);
        var lookup = Find(store);

        Assert.That(lookup.Path, Is.EqualTo(Path.Combine(good, "dump_syms_regtest64.pdb")));
        Assert.That(lookup.Log, Has.Some.Contains("not the file asked for"));
    }

    [Test]
    public void A_cache_element_keeps_what_later_elements_find_and_nearer_caches_are_filled()
    {
        _server.Serve(ServerPath(), PdbBytes);
        var front = Path.Combine(_scratch, "front");
        var near = Path.Combine(_scratch, "near");

        using (var store = Store($"cache*{front};srv*{near}*{_cache}*{_server.Url}/symbols"))
            Assert.That(Find(store).Found, Is.True);

        foreach (var cache in new[] { front, near, _cache })
            Assert.That(File.ReadAllBytes(Path.Combine(cache, "dump_syms_regtest64.pdb", Key.Id, "dump_syms_regtest64.pdb")), Is.EqualTo(PdbBytes), cache);
        using var again = Store($"cache*{front};srv*{near}*{_cache}*{_server.Url}/symbols", offline: true);
        Assert.That(Find(again).Path, Does.StartWith(front));
    }

    [Test]
    public void A_folder_in_the_store_layout_serves_as_an_upstream()
    {
        var upstream = Path.Combine(_scratch, "upstream", "dump_syms_regtest64.pdb", Key.Id);
        Directory.CreateDirectory(upstream);
        File.WriteAllBytes(Path.Combine(upstream, "dump_syms_regtest64.pd_"), CabBuilder.Build("dump_syms_regtest64.pdb", PdbBytes, CabBuilder.MsZip, out _));

        using var store = Store($"srv*{_cache}*{Path.Combine(_scratch, "upstream")}", offline: true);
        var lookup = Find(store);

        Assert.That(lookup.Path, Is.EqualTo(CachedPath), string.Join('\n', lookup.Log));
        Assert.That(File.ReadAllBytes(CachedPath), Is.EqualTo(PdbBytes));
    }

    /// <summary>Reports on the calling thread, so the test sees every report before the lookup returns.</summary>
    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
