using System.Net;
using System.Text;

namespace Introspect.Symbols.Store;

/// <summary>How a <see cref="SymbolStore"/> reaches symbol servers.</summary>
public sealed class SymbolStoreOptions
{
    /// <summary>Use caches and folders only; never the network.</summary>
    public bool Offline { get; init; }

    /// <summary>How long a request may wait for the server's response headers.</summary>
    public TimeSpan ResponseTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a download may go without receiving a byte.</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long one lookup may take in all, retries included.</summary>
    public TimeSpan TotalTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>How many times one file is tried on one server before it is given up (timeouts, broken connections,
    /// server errors, bodies that are not the file asked for). A 404 is final at once.</summary>
    public int MaxAttempts { get; init; } = 3;

    /// <summary>The wait before the second attempt; it doubles for each further one.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The HTTP handler to send requests through (a proxy, a test); null for the default one.</summary>
    public HttpMessageHandler? HttpHandler { get; init; }
}

/// <summary>The progress of one download.</summary>
/// <param name="Url">What is being downloaded.</param>
/// <param name="BytesReceived">How much has arrived.</param>
/// <param name="TotalBytes">The size the server announced, if it did.</param>
public readonly record struct SymbolDownloadProgress(string Url, long BytesReceived, long? TotalBytes);

/// <summary>The outcome of a lookup: where the file is, or why it was not found.</summary>
/// <param name="Key">What was looked for.</param>
/// <param name="Path">The local path of the file found (in a cache when it was downloaded); null when not found.</param>
/// <param name="Log">What was tried, in order, with what each place answered.</param>
public sealed record SymbolLookup(SymbolFileKey Key, string? Path, IReadOnlyList<string> Log)
{
    public bool Found => Path is not null;
}

/// <summary>Finds PDBs (and images) along a symbol path: local caches and folders first, then symbol servers over
/// HTTP, whose answers are checked (GUID and age, or time stamp and size) and kept in the caches.</summary>
/// <remarks>
/// <para>On a server, <c>name/id/name</c> is asked for, then the compressed <c>name/id/name_</c> (a cabinet), then
/// <c>name/id/file.ptr</c> (a pointer to where the file lies). A 404 moves on; a timeout, a broken connection, a
/// server error or a body that is not the file asked for is retried with a growing delay, up to
/// <see cref="SymbolStoreOptions.MaxAttempts"/> times. Every wait is bounded, so a lookup never hangs: at worst it
/// ends after <see cref="SymbolStoreOptions.TotalTimeout"/>.</para>
/// <para>Files are written to a temporary name and moved into place once checked, so a cache never holds a partial
/// or wrong file.</para>
/// </remarks>
public sealed class SymbolStore : IDisposable
{
    private const int BufferSize = 64 * 1024;

    private readonly SymbolPath _path;
    private readonly SymbolStoreOptions _options;
    private readonly Lazy<HttpClient> _http;

    public SymbolStore(SymbolPath path, SymbolStoreOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        _path = path;
        _options = options ?? new SymbolStoreOptions();
        if (_options.MaxAttempts < 1)
            throw new ArgumentOutOfRangeException(nameof(options), _options.MaxAttempts, "MaxAttempts must be at least 1.");
        _http = new Lazy<HttpClient>(CreateClient);
    }

    public SymbolPath Path => _path;

    public void Dispose()
    {
        if (_http.IsValueCreated)
            _http.Value.Dispose();
    }

    private HttpClient CreateClient()
    {
        var handler = _options.HttpHandler ?? new SocketsHttpHandler
        {
            ConnectTimeout = _options.ResponseTimeout,
            AutomaticDecompression = DecompressionMethods.All,
        };
        var client = new HttpClient(handler, disposeHandler: _options.HttpHandler is null) { Timeout = Timeout.InfiniteTimeSpan };
        // Microsoft's server answers what Microsoft's own client asks for.
        client.DefaultRequestHeaders.UserAgent.ParseAdd("Microsoft-Symbol-Server/10.0.0.0");
        return client;
    }

    /// <summary>Looks for the file along the symbol path.</summary>
    /// <remarks>Never throws for what servers or folders do (that goes to <see cref="SymbolLookup.Log"/>); throws
    /// <see cref="OperationCanceledException"/> only when <paramref name="cancellationToken"/> is cancelled.</remarks>
    public async Task<SymbolLookup> FindAsync(SymbolFileKey key, IProgress<SymbolDownloadProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        var log = new List<string>();
        using var total = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        total.CancelAfter(_options.TotalTimeout);
        var activeCaches = new List<string>();
        try
        {
            foreach (var element in _path.Elements)
            {
                string? found = element.Kind switch
                {
                    SymbolPathElementKind.Cache => FromStoreFolder(element.Location, key, log),
                    SymbolPathElementKind.Directory => FromPlainFolder(element.Location, key, log),
                    _ => await FromStore(element, key, activeCaches, log, progress, total.Token).ConfigureAwait(false),
                };
                if (found is not null)
                {
                    foreach (var cache in activeCaches)
                        CopyInto(cache, key, found, log);
                    return new SymbolLookup(key, found, log);
                }
                if (element.Kind == SymbolPathElementKind.Cache)
                    activeCaches.Add(element.Location);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            log.Add($"gave up: the lookup took longer than {_options.TotalTimeout.TotalSeconds:0.#} s");
        }
        return new SymbolLookup(key, null, log);
    }

    /// <summary>Looks in a folder of the store layout (<c>name/id/name</c>).</summary>
    private static string? FromStoreFolder(string folder, SymbolFileKey key, List<string> log)
    {
        var path = System.IO.Path.Combine(folder, key.FileName, key.Id, key.FileName);
        if (!File.Exists(path))
        {
            log.Add($"{path}: not there");
            return null;
        }
        return Check(path, key, log) ? path : null;
    }

    /// <summary>Looks in a plain folder: the file itself, then the store layout below it.</summary>
    private static string? FromPlainFolder(string folder, SymbolFileKey key, List<string> log)
    {
        var direct = System.IO.Path.Combine(folder, key.FileName);
        if (File.Exists(direct) && Check(direct, key, log))
            return direct;
        if (!File.Exists(direct))
            log.Add($"{direct}: not there");
        return FromStoreFolder(folder, key, log);
    }

    private static bool Check(string path, SymbolFileKey key, List<string> log)
    {
        string? mismatch;
        try
        {
            mismatch = key.Mismatch(File.ReadAllBytes(path), path);
        }
        catch (IOException e)
        {
            mismatch = e.Message;
        }
        catch (UnauthorizedAccessException e)
        {
            mismatch = e.Message;
        }
        if (mismatch is null)
        {
            log.Add($"{path}: found");
            return true;
        }
        log.Add($"{path}: not the file asked for: {mismatch}");
        return false;
    }

    private async Task<string?> FromStore(SymbolPathElement store, SymbolFileKey key, List<string> activeCaches, List<string> log,
        IProgress<SymbolDownloadProgress>? progress, CancellationToken cancel)
    {
        for (int i = 0; i < store.Caches.Count; i++)
        {
            var cached = FromStoreFolder(store.Caches[i], key, log);
            if (cached is null)
                continue;
            for (int nearer = 0; nearer < i; nearer++)
                CopyInto(store.Caches[nearer], key, cached, log);
            return cached;
        }
        var target = store.Caches[0];
        string? fetched;
        if (store.IsRemote)
        {
            if (_options.Offline)
            {
                log.Add($"{store.Location}: skipped (offline)");
                return null;
            }
            fetched = await FromServer(store.Location.TrimEnd('/'), key, target, log, progress, cancel).ConfigureAwait(false);
        }
        else
        {
            fetched = FromUpstreamFolder(store.Location, key, target, log);
        }
        if (fetched is null)
            return null;
        for (int i = 1; i < store.Caches.Count; i++)
            CopyInto(store.Caches[i], key, fetched, log);
        return fetched;
    }

    /// <summary>A folder in the store layout used as an upstream: the file, its compressed form, or its pointer.</summary>
    private static string? FromUpstreamFolder(string folder, SymbolFileKey key, string cache, List<string> log)
    {
        var place = System.IO.Path.Combine(folder, key.FileName, key.Id);
        var plain = System.IO.Path.Combine(place, key.FileName);
        if (File.Exists(plain))
            return Check(plain, key, log) ? Install(cache, key, plain, log) : null;
        var compressed = System.IO.Path.Combine(place, key.FileName[..^1] + "_");
        if (File.Exists(compressed))
            return Accept(File.ReadAllBytes(compressed), compressed, compressed: true, key, cache, log, out _);
        var pointer = System.IO.Path.Combine(place, "file.ptr");
        if (File.Exists(pointer))
            return FollowPointer(File.ReadAllText(pointer), pointer, key, cache, log);
        log.Add($"{place}: not there");
        return null;
    }

    private enum Outcome { Found, NotFound, Failed }

    private async Task<string?> FromServer(string server, SymbolFileKey key, string cache, List<string> log,
        IProgress<SymbolDownloadProgress>? progress, CancellationToken cancel)
    {
        var baseUrl = $"{server}/{Uri.EscapeDataString(key.FileName)}/{key.Id}/";
        foreach (var (file, kind) in new[] { (key.FileName, 0), (key.FileName[..^1] + "_", 1), ("file.ptr", 2) })
        {
            var url = baseUrl + Uri.EscapeDataString(file);
            for (int attempt = 1; ; attempt++)
            {
                var (outcome, body, message) = await Download(url, progress, cancel).ConfigureAwait(false);
                if (outcome == Outcome.NotFound)
                {
                    log.Add($"{url}: {message}");
                    break;
                }
                if (outcome == Outcome.Found)
                {
                    string? installed = kind == 2
                        ? FollowPointer(Encoding.UTF8.GetString(body!), url, key, cache, log)
                        : Accept(body!, url, compressed: kind == 1, key, cache, log, out message);
                    if (installed is not null || kind == 2)
                        return installed;
                }
                else
                {
                    log.Add($"{url}: attempt {attempt} of {_options.MaxAttempts}: {message}");
                }
                if (attempt >= _options.MaxAttempts)
                {
                    log.Add($"{url}: given up after {attempt} attempts");
                    return null; // the server does not answer well: the other names would fare no better
                }
                // Doubling, but never more than a minute between attempts (and never past the total timeout).
                var delay = TimeSpan.FromMilliseconds(Math.Min(_options.RetryDelay.TotalMilliseconds * Math.Pow(2, Math.Min(attempt - 1, 30)), 60_000));
                await Task.Delay(delay, cancel).ConfigureAwait(false);
            }
        }
        return null;
    }

    /// <summary>One attempt at one URL, every wait bounded.</summary>
    private async Task<(Outcome, byte[]?, string)> Download(string url, IProgress<SymbolDownloadProgress>? progress, CancellationToken cancel)
    {
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        attempt.CancelAfter(_options.ResponseTimeout);
        string phase = "no response";
        try
        {
            using var response = await _http.Value.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, attempt.Token).ConfigureAwait(false);
            if (response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Gone)
                return (Outcome.NotFound, null, $"not there ({(int)response.StatusCode})");
            if (!response.IsSuccessStatusCode)
                return (Outcome.Failed, null, $"the server answered {(int)response.StatusCode} {response.ReasonPhrase}");
            long? length = response.Content.Headers.ContentLength;
            using var body = new MemoryStream(length is > 0 and < int.MaxValue ? (int)length : 0);
            phase = "no data";
            attempt.CancelAfter(_options.StallTimeout);
            using var stream = await response.Content.ReadAsStreamAsync(attempt.Token).ConfigureAwait(false);
            var buffer = new byte[BufferSize];
            while (true)
            {
                attempt.CancelAfter(_options.StallTimeout);
                int read = await stream.ReadAsync(buffer, attempt.Token).ConfigureAwait(false);
                if (read == 0)
                    break;
                body.Write(buffer, 0, read);
                progress?.Report(new SymbolDownloadProgress(url, body.Length, length));
            }
            if (length is { } expected && body.Length != expected)
                return (Outcome.Failed, null, $"the body ended after {body.Length} of {expected} bytes");
            return (Outcome.Found, body.ToArray(), "downloaded");
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            var limit = phase == "no response" ? _options.ResponseTimeout : _options.StallTimeout;
            return (Outcome.Failed, null, $"timed out: {phase} within {limit.TotalSeconds:0.###} s");
        }
        catch (HttpRequestException e)
        {
            return (Outcome.Failed, null, e.Message);
        }
        catch (IOException e)
        {
            return (Outcome.Failed, null, e.Message);
        }
    }

    /// <summary>Checks a downloaded (or compressed) file and moves it into the cache.</summary>
    private static string? Accept(byte[] body, string source, bool compressed, SymbolFileKey key, string cache, List<string> log, out string message)
    {
        byte[] content = body;
        if (compressed)
        {
            try
            {
                using var expanded = new MemoryStream();
                CabArchive.Extract(body, source, null, expanded);
                content = expanded.ToArray();
            }
            catch (Exception e) when (e is InvalidDataException or NotSupportedException)
            {
                message = $"cannot be expanded: {e.Message}";
                log.Add($"{source}: {message}");
                return null;
            }
        }
        var mismatch = key.Mismatch(content, source);
        if (mismatch is not null)
        {
            message = $"not the file asked for: {mismatch}";
            log.Add($"{source}: {message}");
            return null;
        }
        message = "found";
        log.Add($"{source}: found{(compressed ? " (compressed)" : "")}");
        return Write(cache, key, content, log);
    }

    /// <summary>Follows a <c>file.ptr</c>: <c>PATH:</c> where the file lies, or <c>MSG:</c> why it is not there.</summary>
    private static string? FollowPointer(string text, string source, SymbolFileKey key, string cache, List<string> log)
    {
        text = text.Trim();
        if (text.StartsWith("MSG:", StringComparison.OrdinalIgnoreCase))
        {
            log.Add($"{source}: the server says: {text[4..].Trim()}");
            return null;
        }
        if (!text.StartsWith("PATH:", StringComparison.OrdinalIgnoreCase))
        {
            log.Add($"{source}: not a file pointer (expected PATH: or MSG:)");
            return null;
        }
        var target = text[5..].Trim();
        if (!File.Exists(target))
        {
            log.Add($"{source}: points to {target}, which cannot be reached from here");
            return null;
        }
        bool compressed = target.EndsWith('_');
        return Accept(File.ReadAllBytes(target), target, compressed, key, cache, log, out _);
    }

    private static string? Install(string cache, SymbolFileKey key, string source, List<string> log) =>
        Write(cache, key, File.ReadAllBytes(source), log);

    private static void CopyInto(string cache, SymbolFileKey key, string source, List<string> log)
    {
        var destination = System.IO.Path.Combine(cache, key.FileName, key.Id, key.FileName);
        if (string.Equals(System.IO.Path.GetFullPath(destination), System.IO.Path.GetFullPath(source), StringComparison.Ordinal) || File.Exists(destination))
            return;
        Write(cache, key, File.ReadAllBytes(source), log);
    }

    /// <summary>Writes a checked file into a cache under a temporary name, then moves it into place.</summary>
    private static string? Write(string cache, SymbolFileKey key, byte[] content, List<string> log)
    {
        var folder = System.IO.Path.Combine(cache, key.FileName, key.Id);
        var destination = System.IO.Path.Combine(folder, key.FileName);
        var temporary = destination + $".{Environment.ProcessId}.{Guid.NewGuid():N}.partial";
        try
        {
            Directory.CreateDirectory(folder);
            File.WriteAllBytes(temporary, content);
            File.Move(temporary, destination, overwrite: true);
            log.Add($"{destination}: stored");
            return destination;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log.Add($"{destination}: cannot be stored: {e.Message}");
            try
            {
                File.Delete(temporary);
            }
            catch (IOException)
            {
            }
            return null;
        }
    }
}
