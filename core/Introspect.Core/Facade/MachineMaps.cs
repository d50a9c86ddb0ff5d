using System.Collections;
using System.Globalization;
using System.Net;
using Introspect.Abi;

namespace Introspect.Core;

/// <summary>A list a machine could make, or the reason it could not (an OS without that notion, a kernel without the types to find it).</summary>
public sealed class MapResult<T> : IReadOnlyList<T>
{
    private readonly IReadOnlyList<T> _items;

    private MapResult(IReadOnlyList<T> items, string? reason)
    {
        _items = items;
        UnavailableReason = reason;
    }

    public static MapResult<T> Available(IReadOnlyList<T> items) => new(items ?? throw new ArgumentNullException(nameof(items)), null);

    public static MapResult<T> Unavailable(string reason) => new([], reason ?? throw new ArgumentNullException(nameof(reason)));

    public bool IsAvailable => UnavailableReason is null;

    /// <summary>Why the list could not be made; null when it was.</summary>
    public string? UnavailableReason { get; }

    public int Count => _items.Count;

    public T this[int index] => _items[index];

    public IEnumerator<T> GetEnumerator() => _items.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>A virtual machine found running inside the machine's OS (MemProcFS's <c>maps.vm</c>).</summary>
/// <param name="Pid">The process that runs it.</param>
/// <param name="Name">Its name (QEMU's <c>-name</c>), or the process's name when it has none.</param>
/// <param name="Kind">What runs it: <c>qemu</c>.</param>
/// <param name="MemorySize">Its RAM in bytes, from the command line (QEMU's <c>-m</c>, 128 MiB when absent), where it can be read.</param>
/// <param name="CommandLine">The command line that started it.</param>
public sealed record VirtualMachineInfo(ulong Pid, string Name, string Kind, ulong? MemorySize, string? CommandLine);

/// <summary>A user that runs processes (MemProcFS's <c>maps.user</c>): Linux knows users by number only; names live in files, not in the kernel.</summary>
/// <param name="Uid">The real user id.</param>
/// <param name="Pids">The processes running as the user.</param>
public sealed record UserInfo(uint Uid, IReadOnlyList<ulong> Pids);

/// <summary>A socket held open by a process (MemProcFS's <c>maps.net</c>).</summary>
/// <param name="Pid">The process holding it (the lowest pid when several share it).</param>
/// <param name="Fd">Its file descriptor in that process.</param>
/// <param name="Family">The address family: <c>inet</c>, <c>inet6</c>, <c>unix</c>, <c>netlink</c>, or the number.</param>
/// <param name="Type">The socket type: <c>stream</c>, <c>dgram</c>, <c>raw</c>, <c>seqpacket</c>, or the number.</param>
/// <param name="Protocol">The protocol for internet sockets: <c>tcp</c>, <c>udp</c>, <c>icmp</c>, or the number.</param>
/// <param name="State">The protocol state: TCP's names (<c>LISTEN</c>, <c>ESTABLISHED</c>, ...) for internet sockets.</param>
/// <param name="Local">The local address and port of an internet socket.</param>
/// <param name="Remote">The remote address and port of an internet socket (any:0 when unconnected).</param>
/// <param name="KernelObject">The kernel's <c>struct sock</c>.</param>
public sealed record NetworkSocket(ulong Pid, int Fd, string Family, string Type, string? Protocol, string State, IPEndPoint? Local, IPEndPoint? Remote, ulong KernelObject);

/// <summary>What a machine lists beyond its processes (MemProcFS's <c>vmm.maps</c>), per OS what it can honestly give.</summary>
public sealed class MachineMaps
{
    private readonly Machine _machine;

    internal MachineMaps(Machine machine) => _machine = machine;

    /// <summary>Where RAM is (MemProcFS's <c>maps.memmap</c>): the chain's memory map.</summary>
    public MemoryMap PhysicalMemoryMap => _machine.Memory.Map;

    /// <summary>The kernel's modules (Linux's loadable modules, Windows' drivers).</summary>
    public MapResult<ModuleInfo> GetKernelModules() => !_machine.HasOperatingSystem
        ? MapResult<ModuleInfo>.Unavailable(NoOs)
        : MapResult<ModuleInfo>.Available(_machine.Kernel.GetModules());

    /// <summary>Virtual machines running inside the OS: QEMU processes (<c>qemu-system-*</c>), with their name and RAM size.</summary>
    public MapResult<VirtualMachineInfo> GetVirtualMachines()
    {
        if (!_machine.HasOperatingSystem)
            return MapResult<VirtualMachineInfo>.Unavailable(NoOs);
        var machines = new List<VirtualMachineInfo>();
        foreach (var process in _machine.GetProcesses())
        {
            if (process.IsKernelThread || !IsQemu(process))
                continue;
            var arguments = process.Info.Arguments ?? (process.CommandLine ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);
            machines.Add(new VirtualMachineInfo(process.Pid, QemuName(arguments) ?? process.Name, "qemu", QemuMemory(arguments), process.CommandLine));
        }
        return MapResult<VirtualMachineInfo>.Available(machines);
    }

    /// <summary>The users that run processes, by user id, with their processes.</summary>
    public MapResult<UserInfo> GetUsers()
    {
        if (!_machine.HasOperatingSystem)
            return MapResult<UserInfo>.Unavailable(NoOs);
        var processes = _machine.GetProcesses();
        if (processes.All(p => p.Info.Uid is null))
            return MapResult<UserInfo>.Unavailable($"the {_machine.Kernel.Name} layer gives no user ids.");
        var users = processes.Where(p => p.Info.Uid is not null)
            .GroupBy(p => p.Info.Uid!.Value)
            .OrderBy(g => g.Key)
            .Select(g => new UserInfo(g.Key, g.Select(p => p.Pid).Order().ToList()))
            .ToList();
        return MapResult<UserInfo>.Available(users);
    }

    /// <summary>The sockets processes hold open, found through the kernel's types (Linux: BTF) walking each process's file table.</summary>
    public MapResult<NetworkSocket> GetSockets()
    {
        if (!_machine.HasOperatingSystem)
            return MapResult<NetworkSocket>.Unavailable(NoOs);
        var kernel = _machine.Kernel;
        if (kernel.Name != "linux")
            return MapResult<NetworkSocket>.Unavailable($"sockets are read for Linux only; this OS is '{kernel.Name}'.");
        return LinuxSockets.Find(_machine, kernel);
    }

    private const string NoOs = "the chain ends in a connector; this needs an OS layer at its end.";

    private static bool IsQemu(MachineProcess process) =>
        process.Name.StartsWith("qemu-system", StringComparison.Ordinal)
        || (process.Path is { } path && Path.GetFileName(path).StartsWith("qemu-system", StringComparison.Ordinal));

    /// <summary>QEMU's <c>-name NAME</c> or <c>-name guest=NAME,...</c>.</summary>
    internal static string? QemuName(IReadOnlyList<string> arguments)
    {
        var value = OptionValue(arguments, "-name");
        if (value is null)
            return null;
        foreach (var part in value.Split(','))
        {
            if (part.StartsWith("guest=", StringComparison.Ordinal))
                return part["guest=".Length..];
        }
        var first = value.Split(',')[0];
        return first.Contains('=', StringComparison.Ordinal) ? null : first;
    }

    /// <summary>QEMU's <c>-m SIZE</c> or <c>-m size=SIZE,...</c> in bytes: a bare number is MiB, suffixes k/M/G/T; 128 MiB when absent.</summary>
    internal static ulong? QemuMemory(IReadOnlyList<string> arguments)
    {
        var value = OptionValue(arguments, "-m");
        if (value is null)
            return 128UL << 20;
        var size = value.Split(',').Select(p => p.StartsWith("size=", StringComparison.Ordinal) ? p[5..] : p).FirstOrDefault(p => !p.Contains('=', StringComparison.Ordinal));
        if (string.IsNullOrEmpty(size))
            return null;
        int shift = char.ToUpperInvariant(size[^1]) switch { 'K' => 10, 'M' => 20, 'G' => 30, 'T' => 40, 'B' => 0, _ => -1 };
        var digits = shift < 0 ? size : size[..^1];
        if (shift < 0)
            shift = 20;
        if (!ulong.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number > ulong.MaxValue >> shift)
            return null;
        return number << shift;
    }

    private static string? OptionValue(IReadOnlyList<string> arguments, string option)
    {
        for (int i = 0; i < arguments.Count; i++)
        {
            // QEMU takes -opt and --opt alike.
            var argument = arguments[i].StartsWith("--", StringComparison.Ordinal) ? arguments[i][1..] : arguments[i];
            if (argument == option && i + 1 < arguments.Count)
                return arguments[i + 1];
            if (argument.StartsWith(option + "=", StringComparison.Ordinal))
                return argument[(option.Length + 1)..];
        }
        return null;
    }
}
