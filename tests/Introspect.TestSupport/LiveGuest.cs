using NUnit.Framework;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Introspect.TestSupport;

/// <summary>How <see cref="LiveGuest.Boot"/> starts a guest.</summary>
/// <param name="RamMiB">The guest's RAM.</param>
/// <param name="Machine">QEMU's machine type.</param>
/// <param name="MemoryBackendFile">Give the guest its RAM as a shared <c>memory-backend-file</c> in <c>/dev/shm</c>.</param>
public sealed record LiveGuestOptions(int RamMiB = 128, string Machine = "pc", bool MemoryBackendFile = false)
{
    /// <summary>How long the guest may take to reach its shell (TCG on a busy machine is slow).</summary>
    public TimeSpan BootTimeout { get; init; } = TimeSpan.FromMinutes(4);
}

/// <summary>
/// A Linux guest booted under QEMU (TCG) for a test, running while the test reads it: the <c>live-guest</c> fixture's
/// kernel and initramfs, whose PID 1 is a shell on the serial console. The test types commands and reads their output
/// through a unix socket; QMP on a second socket pauses and resumes it. Dispose kills QEMU and removes its files.
/// </summary>
/// <remarks>
/// QEMU's command line holds two QMP sockets: the first (<see cref="QmpSocket"/>) is left to the code under test, the
/// second is the harness's own, so that neither waits for the other (QEMU serves one client per socket).
/// </remarks>
public sealed class LiveGuest : IDisposable
{
    private readonly Process _qemu;
    private readonly Socket _serial;
    private readonly StringBuilder _console = new();
    private readonly object _gate = new();
    private readonly Thread _reader;
    private readonly string _directory;
    private readonly string _harnessQmp;
    private int _commands;
    private int _disposed;

    private LiveGuest(string name, string directory, Process qemu, Socket serial, string? ramFile)
    {
        Name = name;
        _directory = directory;
        _qemu = qemu;
        _serial = serial;
        RamFile = ramFile;
        QmpSocket = Path.Combine(directory, "qmp.sock");
        _harnessQmp = Path.Combine(directory, "harness.sock");
        _reader = new Thread(ReadConsole) { IsBackground = true, Name = $"serial {name}" };
        _reader.Start();
    }

    /// <summary>The guest's <c>-name</c>.</summary>
    public string Name { get; }

    /// <summary>The QEMU process's id.</summary>
    public int Pid => _qemu.Id;

    /// <summary>The QMP socket left for the code under test.</summary>
    public string QmpSocket { get; }

    /// <summary>The RAM file of a <c>memory-backend-file</c> guest, else null.</summary>
    public string? RamFile { get; }

    /// <summary>Everything the console printed so far, <c>\r</c> removed.</summary>
    public string Console
    {
        get
        {
            lock (_gate)
                return _console.ToString().Replace("\r", "", StringComparison.Ordinal);
        }
    }

    /// <summary>Boots a guest and waits for its shell; ignores the test when QEMU or the fixture is missing.</summary>
    public static LiveGuest Boot(string name, LiveGuestOptions? options = null)
    {
        options ??= new LiveGuestOptions();
        var kernel = TestInputs.Fixture("live-guest.vmlinuz");
        var initramfs = TestInputs.Fixture("live-guest.cpio");
        if (!File.Exists(kernel) || !File.Exists(initramfs))
            Assert.Ignore($"The live-guest fixture is missing ({kernel}); run tests/fixtures/build.sh live-guest.");
        var qemuPath = FindOnPath("qemu-system-x86_64");
        if (qemuPath is null)
            Assert.Ignore("qemu-system-x86_64 is not installed.");
        var directory = Directory.CreateTempSubdirectory("introspect-live-").FullName;
        string? ramFile = options.MemoryBackendFile ? $"/dev/shm/{Path.GetFileName(directory)}-ram" : null;
        var arguments = new List<string>
        {
            "-name", name,
            "-machine", options.Machine, "-m", $"{options.RamMiB}M", "-smp", "1", "-accel", "tcg",
            "-display", "none", "-vga", "none", "-nic", "none", "-no-reboot", "-monitor", "none",
            "-kernel", kernel, "-initrd", initramfs, "-append", "console=ttyS0 panic=-1 quiet",
            "-chardev", $"socket,id=console,path={Path.Combine(directory, "serial.sock")},server=on,wait=off", "-serial", "chardev:console",
            "-qmp", $"unix:{Path.Combine(directory, "qmp.sock")},server=on,wait=off",
            "-qmp", $"unix:{Path.Combine(directory, "harness.sock")},server=on,wait=off",
        };
        if (ramFile is not null)
        {
            File.Delete(ramFile); // a reused file would hold another guest's pages
            arguments.AddRange(["-object", $"memory-backend-file,id=ram,size={options.RamMiB}M,mem-path={ramFile},share=on", "-machine", "memory-backend=ram"]);
        }
        var start = new ProcessStartInfo(qemuPath!) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        var qemu = Process.Start(start) ?? throw new InvalidOperationException("QEMU did not start.");
        qemu.ErrorDataReceived += (_, _) => { };
        qemu.BeginErrorReadLine();
        qemu.BeginOutputReadLine();
        Socket? serial = null;
        try
        {
            var socketPath = Path.Combine(directory, "serial.sock");
            var deadline = Stopwatch.StartNew();
            while (true)
            {
                if (qemu.HasExited)
                    throw new InvalidOperationException($"QEMU exited with {qemu.ExitCode} before opening its console.");
                if (File.Exists(socketPath))
                {
                    serial = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    try
                    {
                        serial.Connect(new UnixDomainSocketEndPoint(socketPath));
                        break;
                    }
                    catch (SocketException)
                    {
                        serial.Dispose();
                        serial = null;
                    }
                }
                if (deadline.Elapsed > TimeSpan.FromSeconds(30))
                    throw new TimeoutException("QEMU opened no serial console socket within 30 s.");
                Thread.Sleep(50);
            }
            var guest = new LiveGuest(name, directory, qemu, serial, ramFile);
            try
            {
                guest.WaitFor("LIVE-GUEST-READY", 0, options.BootTimeout);
                // Let the shell print its prompt before the first command is typed.
                guest.Run("true");
                return guest;
            }
            catch
            {
                guest.Dispose();
                throw;
            }
        }
        catch
        {
            serial?.Dispose();
            Kill(qemu);
            Directory.Delete(directory, recursive: true);
            if (ramFile is not null)
                File.Delete(ramFile);
            throw;
        }
    }

    /// <summary>Runs a shell command in the guest and returns its output lines (without the command's echo).</summary>
    /// <remarks>The output is framed by two markers the shell prints; typed as <c>B""N</c>, so that the echo of the typed line never matches.</remarks>
    public IReadOnlyList<string> Run(string command, TimeSpan? timeout = null)
    {
        int n = Interlocked.Increment(ref _commands);
        string begin = $"LIVE-BEGIN-{n}", end = $"LIVE-END-{n}";
        int from;
        lock (_gate)
            from = _console.Length;
        Send($"echo LIVE-BEGIN-\"\"{n}; {command}; echo LIVE-END-\"\"{n}\n");
        var text = WaitFor(end, from, timeout ?? TimeSpan.FromSeconds(120));
        int first = text.IndexOf(begin + "\n", StringComparison.Ordinal);
        int last = text.IndexOf(end, StringComparison.Ordinal);
        if (first < 0 || last < first)
            throw new InvalidOperationException($"The guest's output for '{command}' is not framed by its markers:\n{text}");
        return text[(first + begin.Length + 1)..last].Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    /// <summary>Starts a command in the background in the guest and returns its pid.</summary>
    public ulong Start(string command)
    {
        var lines = Run($"{command} & echo LIVE-PID $!");
        var line = lines.LastOrDefault(l => l.StartsWith("LIVE-PID ", StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"The guest printed no pid for '{command}': {string.Join(" | ", lines)}");
        return ulong.Parse(line["LIVE-PID ".Length..].Trim(), CultureInfo.InvariantCulture);
    }

    /// <summary>Pauses the guest (QMP <c>stop</c>).</summary>
    public void Freeze() => Qmp("stop");

    /// <summary>Resumes the guest (QMP <c>cont</c>).</summary>
    public void Resume() => Qmp("cont");

    /// <summary>Whether the guest runs (QMP <c>query-status</c>).</summary>
    public bool IsRunning => Qmp("query-status")?["running"]?.GetValue<bool>() ?? false;

    /// <summary>Runs a QMP command on the harness's own socket and returns its <c>return</c> value.</summary>
    public JsonNode? Qmp(string command, JsonObject? arguments = null)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Connect(new UnixDomainSocketEndPoint(_harnessQmp));
        using var stream = new NetworkStream(socket) { ReadTimeout = 30_000 };
        using var reader = new StreamReader(stream, Encoding.UTF8);
        _ = reader.ReadLine(); // greeting
        JsonNode? Execute(string name, JsonObject? args)
        {
            var request = new JsonObject { ["execute"] = name };
            if (args is not null)
                request["arguments"] = args;
            stream.Write(Encoding.UTF8.GetBytes(request.ToJsonString() + "\n"));
            while (true)
            {
                var line = reader.ReadLine() ?? throw new IOException($"QMP closed during '{name}'.");
                var message = JsonNode.Parse(line)!;
                if (message["event"] is not null)
                    continue;
                if (message["error"] is { } error)
                    throw new InvalidOperationException($"QMP '{name}' failed: {error.ToJsonString()}");
                return message["return"];
            }
        }
        Execute("qmp_capabilities", null);
        return Execute(command, arguments);
    }

    private void Send(string text) => _serial.Send(Encoding.ASCII.GetBytes(text));

    private string WaitFor(string marker, int from, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        lock (_gate)
        {
            while (true)
            {
                var text = _console.ToString(from, _console.Length - from).Replace("\r", "", StringComparison.Ordinal);
                if (text.Contains(marker, StringComparison.Ordinal))
                    return text;
                var left = timeout - deadline.Elapsed;
                if (left <= TimeSpan.Zero || _qemu.HasExited)
                    throw new TimeoutException($"The guest {Name} did not print '{marker}' within {timeout.TotalSeconds:0} s{(_qemu.HasExited ? " (QEMU exited)" : "")}. Console since:\n{text}");
                Monitor.Wait(_gate, left < TimeSpan.FromSeconds(1) ? left : TimeSpan.FromSeconds(1));
            }
        }
    }

    private void ReadConsole()
    {
        var buffer = new byte[4096];
        try
        {
            int read;
            while ((read = _serial.Receive(buffer)) > 0)
            {
                lock (_gate)
                {
                    _console.Append(Encoding.Latin1.GetString(buffer, 0, read));
                    Monitor.PulseAll(_gate);
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // The guest is being torn down.
        }
    }

    private static string? FindOnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, program)).FirstOrDefault(File.Exists);

    private static void Kill(Process qemu)
    {
        try
        {
            if (!qemu.HasExited)
            {
                qemu.Kill();
                qemu.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        qemu.Dispose();
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        Kill(_qemu);
        _serial.Dispose();
        _reader.Join(5000);
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
        if (RamFile is not null)
            File.Delete(RamFile);
    }
}
