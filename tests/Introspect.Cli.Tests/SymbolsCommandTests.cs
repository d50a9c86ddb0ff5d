using System.Net;
using System.Text.Json;
using Introspect.Symbols.Pe;
using Introspect.TestSupport;

namespace Introspect.Cli.Tests;

/// <summary><c>introspect pe</c>, <c>pdb</c> and <c>symbols fetch</c> on the shared PE images and PDBs.</summary>
[CancelAfter(120_000)]
public class SymbolsCommandTests
{
    private static string Data(params string[] path) => TestInputs.TestData(path);

    private static string Ntoskrnl => Data("pe", "ntoskrnl.exe");
    private static string RegtestExe => Data("pdb", "breakpad", "dump_syms_regtest64.exe");
    private static string RegtestPdb => Data("pdb", "breakpad", "dump_syms_regtest64.pdb");
    private static string CrashPdb => Data("pdb", "symbolic", "crash.pdb");

    private string _scratch = null!;

    [SetUp]
    public void CreateScratch() => _scratch = Directory.CreateTempSubdirectory("introspect-symbols-cli-").FullName;

    [TearDown]
    public void DeleteScratch() => Directory.Delete(_scratch, recursive: true);

    [Test]
    public void Pe_describes_an_image_and_its_codeview_record()
    {
        var run = CliRun.Of("pe", RegtestExe, "--json");

        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        using var json = JsonDocument.Parse(run.Output);
        Assert.That(json.RootElement.GetProperty("format").GetString(), Is.EqualTo("PE32+"));
        var codeView = json.RootElement.GetProperty("codeView");
        Assert.That(codeView.GetProperty("symbolStoreId").GetString(), Is.EqualTo("72E103A85CB249078B76B2E7C06257B13"));
        Assert.That(codeView.GetProperty("pdbPath").GetString(), Does.EndWith("dump_syms_regtest64.pdb"));

        var table = CliRun.Of("pe", Ntoskrnl);
        Assert.That(table.Output, Does.Contain("exports").And.Contain("1656"));
    }

    [Test]
    public void Pe_exports_lists_every_export_with_ordinal_rva_and_forwarder()
    {
        var run = CliRun.Of("pe", Ntoskrnl, "--exports", "--json");

        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        using var json = JsonDocument.Parse(run.Output);
        var exports = json.RootElement.EnumerateArray().ToList();
        var image = PeImage.Open(Ntoskrnl);
        Assert.That(exports, Has.Count.EqualTo(image.Exports.Count));
        var process = exports.Single(e => e.GetProperty("name").GetString() == "PsInitialSystemProcess");
        Assert.That(process.GetProperty("rva").GetUInt32(), Is.EqualTo(image.FindExport("PsInitialSystemProcess")!.Rva));
        Assert.That(exports.Single(e => e.GetProperty("name").GetString() == "NlsAnsiCodePage").GetProperty("forwarder").GetString(), Is.EqualTo("ntdll.NlsAnsiCodePage"));

        var text = CliRun.Of("pe", Ntoskrnl, "--exports");
        Assert.That(text.Output, Does.Contain("KeServiceDescriptorTable").And.Contain("-> ntdll.NlsAnsiCodePage"));
    }

    [Test]
    public void Pe_imports_and_sections_list_what_the_image_has()
    {
        var imports = CliRun.Of("pe", Data("pe", "hal.dll"), "--imports", "--json");
        Assert.That(imports.ExitCode, Is.Zero, imports.ToString());
        using (var json = JsonDocument.Parse(imports.Output))
        {
            var dlls = json.RootElement.EnumerateArray().Select(m => m.GetProperty("dll").GetString()).ToList();
            Assert.That(dlls, Is.EqualTo(new[] { "kernel32.dll", "ntdll.dll", "ucrtbase.dll" }));
        }

        var sections = CliRun.Of("pe", Data("pe", "hal.dll"), "--sections", "--json");
        using var sectionJson = JsonDocument.Parse(sections.Output);
        Assert.That(sectionJson.RootElement.EnumerateArray().Select(s => s.GetProperty("name").GetString()), Does.Contain(".debug_info"));
    }

    [Test]
    public void Pe_refuses_two_listings_at_once_and_a_file_that_is_not_pe()
    {
        var both = CliRun.Of("pe", Ntoskrnl, "--exports", "--imports");
        Assert.That(both.ExitCode, Is.EqualTo(2));
        Assert.That(both.Error, Does.Contain("at most one"));

        var notPe = CliRun.Of("pe", RegtestPdb);
        Assert.That(notPe.ExitCode, Is.EqualTo(2));
        Assert.That(notPe.Error.Trim().Split('\n'), Has.Length.EqualTo(1));
        Assert.That(notPe.Error, Does.Contain("e_magic"));
    }

    [Test]
    public void Pdb_summarises_a_pdb_with_its_symbol_store_id()
    {
        var run = CliRun.Of("pdb", RegtestPdb, "--json");

        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        using var json = JsonDocument.Parse(run.Output);
        Assert.That(json.RootElement.GetProperty("symbolStoreId").GetString(), Is.EqualTo("72E103A85CB249078B76B2E7C06257B13"));
        Assert.That(json.RootElement.GetProperty("modules").GetInt32(), Is.EqualTo(144));
        Assert.That(json.RootElement.GetProperty("types").GetInt32(), Is.EqualTo(1625));
    }

    [Test]
    public void Pdb_answers_symbol_and_address_queries()
    {
        var symbol = CliRun.Of("pdb", RegtestPdb, "--symbol", "google_breakpad::C::f", "--json");
        Assert.That(symbol.ExitCode, Is.Zero, symbol.ToString());
        using (var json = JsonDocument.Parse(symbol.Output))
            Assert.That(json.RootElement[0].GetProperty("rva").GetUInt32(), Is.EqualTo(0x1110u), "FUNC 1110 26 0 google_breakpad::C::f() in the Breakpad oracle");

        var address = CliRun.Of("pdb", RegtestPdb, "--address", "0x1120");
        Assert.That(address.Output.Trim(), Is.EqualTo("google_breakpad::C::f+0x10"));

        var json2 = CliRun.Of("pdb", RegtestPdb, "--address", "4368", "--json");
        using var parsed = JsonDocument.Parse(json2.Output);
        Assert.That(parsed.RootElement.GetProperty("displacement").GetUInt32(), Is.Zero);

        var missing = CliRun.Of("pdb", RegtestPdb, "--symbol", "NoSuchSymbol");
        Assert.That(missing.ExitCode, Is.EqualTo(1));
        Assert.That(missing.Error, Does.Contain("no symbol named NoSuchSymbol"));
    }

    [Test]
    public void Pdb_dumps_a_type_and_gives_a_field_offset()
    {
        var dump = CliRun.Of("pdb", CrashPdb, "--type", "_EXCEPTION_RECORD");
        Assert.That(dump.ExitCode, Is.Zero, dump.ToString());
        Assert.That(dump.Output, Does.StartWith("struct _EXCEPTION_RECORD (0x50 bytes)").And.Contain("+0x014 ExceptionInformation : unsigned long[15]"));

        var json = CliRun.Of("pdb", CrashPdb, "--type", "_EXCEPTION_RECORD", "--json");
        using (var parsed = JsonDocument.Parse(json.Output))
        {
            Assert.That(parsed.RootElement.GetProperty("size").GetUInt64(), Is.EqualTo(0x50));
            Assert.That(parsed.RootElement.GetProperty("fields").EnumerateArray().Select(f => f.GetProperty("name").GetString()), Does.Contain("ExceptionAddress"));
        }

        var field = CliRun.Of("pdb", CrashPdb, "--type", "_EXCEPTION_RECORD", "--field", "ExceptionAddress");
        Assert.That(field.Output.Trim(), Is.EqualTo("0xc  void *"));

        var noField = CliRun.Of("pdb", CrashPdb, "--type", "_EXCEPTION_RECORD", "--field", "Nope");
        Assert.That(noField.ExitCode, Is.EqualTo(1));
        var fieldAlone = CliRun.Of("pdb", CrashPdb, "--field", "x");
        Assert.That(fieldAlone.ExitCode, Is.EqualTo(2));
        Assert.That(fieldAlone.Error, Does.Contain("--field needs --type"));
    }

    [Test]
    public void Pdb_bench_gives_figures_shaped_like_introspect_bench()
    {
        var run = CliRun.Of("pdb", CrashPdb, "--bench", "--rounds", "1", "--json");

        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        using var json = JsonDocument.Parse(run.Output);
        var figures = json.RootElement.EnumerateArray().ToList();
        Assert.That(figures.Select(f => f.GetProperty("name").GetString()), Has.Some.StartsWith("open").And.Some.StartsWith("symbol name").And.Some.StartsWith("address").And.Some.StartsWith("type name").And.Some.StartsWith("type and field"));
        foreach (var figure in figures)
        {
            Assert.That(figure.GetProperty("value").GetDouble(), Is.Positive);
            Assert.That(figure.GetProperty("baseline").GetDouble(), Is.Positive);
            Assert.That(figure.GetProperty("ratio").GetDouble(), Is.EqualTo(figure.GetProperty("value").GetDouble() / figure.GetProperty("baseline").GetDouble()).Within(1e-6).Percent);
            Assert.That(figure.GetProperty("unit").GetString(), Is.Not.Empty);
        }
    }

    [Test]
    public void Symbols_fetch_downloads_the_pdb_of_an_image_into_the_cache_then_finds_it_offline()
    {
        var cache = Path.Combine(_scratch, "cache");
        using var server = new OneFileServer("/dump_syms_regtest64.pdb/72E103A85CB249078B76B2E7C06257B13/dump_syms_regtest64.pdb", File.ReadAllBytes(RegtestPdb));

        var run = CliRun.Of("symbols", "fetch", "--pe", RegtestExe, "--symbol-path", $"srv*{cache}*{server.Url}");

        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        string path = run.Output.Trim();
        Assert.That(path, Is.EqualTo(Path.Combine(cache, "dump_syms_regtest64.pdb", "72E103A85CB249078B76B2E7C06257B13", "dump_syms_regtest64.pdb")));
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(File.ReadAllBytes(RegtestPdb)));

        var offline = CliRun.Of("symbols", "fetch", "--pe", RegtestExe, "--symbol-path", $"srv*{cache}*http://127.0.0.1:9/unreachable", "--offline", "--json");
        Assert.That(offline.ExitCode, Is.Zero, offline.ToString());
        using var json = JsonDocument.Parse(offline.Output);
        Assert.That(json.RootElement.GetProperty("found").GetBoolean(), Is.True);
        Assert.That(json.RootElement.GetProperty("path").GetString(), Is.EqualTo(path));
        Assert.That(server.Requests, Is.EqualTo(1));
    }

    [Test]
    public void Symbols_fetch_says_where_it_looked_when_the_pdb_is_nowhere()
    {
        using var server = new OneFileServer("/elsewhere", []);

        var run = CliRun.Of("symbols", "fetch", "--pe", RegtestExe, "--symbol-path", $"srv*{Path.Combine(_scratch, "c")}*{server.Url}", "--timeout", "5");

        Assert.That(run.ExitCode, Is.EqualTo(1));
        Assert.That(run.Error, Does.Contain("404").And.Contain("was not found on the symbol path"));
    }

    [Test]
    public void Symbols_fetch_refuses_an_image_without_a_codeview_record_and_a_bad_symbol_path()
    {
        var noCodeView = CliRun.Of("symbols", "fetch", "--pe", Data("pe", "hal.dll"), "--offline");
        Assert.That(noCodeView.ExitCode, Is.EqualTo(2));
        Assert.That(noCodeView.Error, Does.Contain("no CodeView"));

        var badPath = CliRun.Of("symbols", "fetch", "--pe", RegtestExe, "--symbol-path", "srv*");
        Assert.That(badPath.ExitCode, Is.EqualTo(2));
        Assert.That(badPath.Error, Does.Contain("--symbol-path"));
    }

    /// <summary>An HTTP server on 127.0.0.1 that serves one path and answers 404 to any other.</summary>
    private sealed class OneFileServer : IDisposable
    {
        private readonly HttpListener _listener = new();
        private readonly Task _loop;
        private int _requests;

        public OneFileServer(string path, byte[] body)
        {
            var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            int port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            Url = $"http://127.0.0.1:{port}";
            _listener.Prefixes.Add(Url + "/");
            _listener.Start();
            _loop = Task.Run(async () =>
            {
                while (_listener.IsListening)
                {
                    HttpListenerContext context;
                    try
                    {
                        context = await _listener.GetContextAsync();
                    }
                    catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
                    {
                        return;
                    }
                    Interlocked.Increment(ref _requests);
                    bool match = context.Request.Url!.AbsolutePath == path;
                    context.Response.StatusCode = match ? 200 : 404;
                    if (match)
                        await context.Response.OutputStream.WriteAsync(body);
                    context.Response.Close();
                }
            });
        }

        public string Url { get; }

        public int Requests => _requests;

        public void Dispose()
        {
            _listener.Stop();
            _listener.Close();
            _loop.Wait(TimeSpan.FromSeconds(5));
        }
    }
}
