using System.Globalization;

namespace Introspect.Connectors.Qemu;

/// <summary>A memory backend declared with <c>-object memory-backend-*</c>.</summary>
/// <param name="Type">The object type (<c>memory-backend-file</c>, <c>memory-backend-ram</c>, <c>memory-backend-memfd</c>).</param>
/// <param name="Id">Its <c>id=</c>.</param>
/// <param name="Size">Its <c>size=</c> in bytes, when given.</param>
/// <param name="MemPath">Its <c>mem-path=</c> (file backends).</param>
/// <param name="Shared">Its <c>share=</c>.</param>
internal sealed record MemoryBackend(string Type, string Id, ulong? Size, string? MemPath, bool Shared);

/// <summary>What a QEMU process's command line says about its guest: name, RAM, machine type, memory backends, QMP sockets.</summary>
internal sealed class QemuCommandLine
{
    /// <summary>QEMU's RAM size when <c>-m</c> is not given.</summary>
    public const ulong DefaultRamBytes = 128UL << 20;

    private QemuCommandLine()
    {
    }

    /// <summary>The guest's name: <c>-name NAME</c> or <c>-name guest=NAME,...</c>.</summary>
    public string? GuestName { get; private set; }

    /// <summary>The <c>process=</c> of <c>-name</c>: the name QEMU gives its own process.</summary>
    public string? ProcessName { get; private set; }

    /// <summary>The <c>-m</c> size, or null when not given.</summary>
    public ulong? RamBytes { get; private set; }

    /// <summary>The machine type (<c>-machine pc</c>, <c>-M q35</c>, <c>type=</c>), or null for QEMU's default (<c>pc</c>).</summary>
    public string? MachineType { get; private set; }

    /// <summary><c>max-ram-below-4g=</c> of <c>-machine</c>.</summary>
    public ulong? MaxRamBelow4G { get; private set; }

    /// <summary><c>memory-backend=</c> of <c>-machine</c>: the id of the backend that is the guest's RAM.</summary>
    public string? MemoryBackendId { get; private set; }

    public List<MemoryBackend> Backends { get; } = [];

    /// <summary>Unix socket paths of QMP monitors (<c>-qmp unix:PATH</c>, or <c>-chardev socket,path=P</c> with <c>-mon chardev=ID,mode=control</c>).</summary>
    public List<string> QmpSockets { get; } = [];

    /// <summary>The backend that holds the guest's RAM: the one <c>-machine memory-backend=</c> names, else none.</summary>
    public MemoryBackend? RamBackend => MemoryBackendId is null ? null : Backends.FirstOrDefault(b => b.Id == MemoryBackendId);

    /// <summary>The guest's RAM size: the RAM backend's size, else <c>-m</c>, else QEMU's default.</summary>
    public ulong EffectiveRamBytes => RamBackend?.Size ?? RamBytes ?? DefaultRamBytes;

    /// <summary>Whether argv[0] or the executable is a QEMU system emulator.</summary>
    public static bool IsQemu(IReadOnlyList<string>? arguments, string? executable) =>
        (arguments is { Count: > 0 } && Path.GetFileName(arguments[0]).StartsWith("qemu-system-", StringComparison.Ordinal))
        || (executable is not null && Path.GetFileName(executable).StartsWith("qemu-system-", StringComparison.Ordinal));

    /// <exception cref="InvalidDataException">An option QEMU would also refuse (a size that is not one); the message names the option.</exception>
    public static QemuCommandLine Parse(IReadOnlyList<string> arguments)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        var line = new QemuCommandLine();
        var monitors = new Dictionary<string, string>(StringComparer.Ordinal); // chardev id -> socket path
        var controlMonitors = new List<string>();
        for (int i = 1; i < arguments.Count; i++)
        {
            var option = arguments[i];
            if (!option.StartsWith('-'))
                continue;
            option = option.TrimStart('-');
            string? value;
            int equals = option.IndexOf('=', StringComparison.Ordinal);
            if (equals > 0 && option[..equals] is "name" or "m" or "machine" or "M" or "object" or "qmp" or "chardev" or "mon")
            {
                value = option[(equals + 1)..];
                option = option[..equals];
            }
            else
            {
                value = i + 1 < arguments.Count ? arguments[i + 1] : null;
                if (option is "name" or "m" or "machine" or "M" or "object" or "qmp" or "chardev" or "mon")
                    i++;
            }
            if (value is null)
                continue;
            var (bare, keys) = SplitOptions(value);
            switch (option)
            {
                case "name":
                    line.GuestName = keys.GetValueOrDefault("guest") ?? bare ?? line.GuestName;
                    line.ProcessName = keys.GetValueOrDefault("process") ?? line.ProcessName;
                    break;
                case "m":
                    var sizeText = keys.GetValueOrDefault("size") ?? bare;
                    if (sizeText is not null)
                        line.RamBytes = ParseSize(sizeText, defaultUnit: 1UL << 20, "-m");
                    break;
                case "machine" or "M":
                    line.MachineType = keys.GetValueOrDefault("type") ?? bare ?? line.MachineType;
                    if (keys.TryGetValue("max-ram-below-4g", out var below))
                        line.MaxRamBelow4G = ParseSize(below, defaultUnit: 1, "-machine max-ram-below-4g");
                    if (keys.TryGetValue("memory-backend", out var backend))
                        line.MemoryBackendId = backend;
                    break;
                case "object":
                    var type = keys.GetValueOrDefault("qom-type") ?? bare;
                    if (type is not null && type.StartsWith("memory-backend-", StringComparison.Ordinal) && keys.TryGetValue("id", out var id))
                    {
                        ulong? size = keys.TryGetValue("size", out var text) ? ParseSize(text, defaultUnit: 1, $"-object {type} size") : null;
                        bool shared = keys.TryGetValue("share", out var share) && share is "on" or "true" or "yes";
                        line.Backends.Add(new MemoryBackend(type, id, size, keys.GetValueOrDefault("mem-path"), shared));
                    }
                    break;
                case "qmp":
                    if (bare is not null && bare.StartsWith("unix:", StringComparison.Ordinal))
                        line.QmpSockets.Add(bare["unix:".Length..]);
                    break;
                case "chardev":
                    if (bare == "socket" && keys.TryGetValue("id", out var chardevId) && keys.TryGetValue("path", out var path))
                        monitors[chardevId] = path;
                    break;
                case "mon":
                    if (keys.GetValueOrDefault("mode") == "control" && keys.TryGetValue("chardev", out var chardev))
                        controlMonitors.Add(chardev);
                    break;
            }
        }
        foreach (var chardev in controlMonitors)
        {
            if (monitors.TryGetValue(chardev, out var path))
                line.QmpSockets.Add(path);
        }
        return line;
    }

    /// <summary>QEMU's option syntax: <c>[bare,]key=value,...</c>, where <c>,,</c> is a literal comma.</summary>
    internal static (string? Bare, Dictionary<string, string> Keys) SplitOptions(string text)
    {
        var parts = new List<string>();
        var current = new System.Text.StringBuilder();
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] == ',')
            {
                if (i + 1 < text.Length && text[i + 1] == ',')
                {
                    current.Append(',');
                    i++;
                    continue;
                }
                parts.Add(current.ToString());
                current.Clear();
                continue;
            }
            current.Append(text[i]);
        }
        parts.Add(current.ToString());
        string? bare = null;
        var keys = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < parts.Count; i++)
        {
            int equals = parts[i].IndexOf('=', StringComparison.Ordinal);
            if (equals < 0)
            {
                if (i == 0)
                    bare = parts[i];
                continue;
            }
            keys[parts[i][..equals]] = parts[i][(equals + 1)..];
        }
        return (bare, keys);
    }

    /// <summary>A QEMU size: a number with an optional <c>B</c>/<c>K</c>/<c>M</c>/<c>G</c>/<c>T</c> suffix (powers of 1024).</summary>
    /// <exception cref="InvalidDataException">Not a size, or past 2^64.</exception>
    internal static ulong ParseSize(string text, ulong defaultUnit, string option)
    {
        var span = text.AsSpan().Trim();
        ulong unit = defaultUnit;
        if (span.Length > 0 && char.IsAsciiLetter(span[^1]))
        {
            unit = char.ToUpperInvariant(span[^1]) switch
            {
                'B' => 1,
                'K' => 1UL << 10,
                'M' => 1UL << 20,
                'G' => 1UL << 30,
                'T' => 1UL << 40,
                _ => 0,
            };
            span = span[..^1];
        }
        if (unit == 0 || !ulong.TryParse(span, NumberStyles.None, CultureInfo.InvariantCulture, out ulong number) || number > ulong.MaxValue / unit)
            throw new InvalidDataException($"QEMU command line, option {option}: '{text}' is not a size; expected a number with an optional B, K, M, G or T suffix.");
        return number * unit;
    }
}
