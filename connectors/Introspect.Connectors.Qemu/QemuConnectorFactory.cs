using System.Globalization;
using System.Text;
using Introspect.Abi;
using Introspect.Connectors.Qemu;
using Introspect.Core.Chains;

[assembly: IntrospectPlugin(PluginKind.Connector, "qemu", "1.0.0", IntrospectAbi.Version, typeof(QemuConnectorFactory),
    Description = "A running QEMU guest's RAM, live: the QEMU process found by name= or pid= in the OS before it (default: native), its RAM from a memory-backend-file, QMP or the largest mapping.")]

namespace Introspect.Connectors.Qemu;

/// <summary>The <c>qemu</c> connector: a running QEMU guest's RAM, read through the OS its QEMU process runs in.</summary>
/// <remarks>
/// <para>
/// Arguments: <c>name=</c> (the guest's <c>-name</c>) or <c>pid=</c>; <c>freeze=on</c> pauses the guest through QMP
/// while the connector is open; <c>write=on</c> allows writes; <c>map_base=</c> (the host-virtual address of the
/// guest's RAM block in the QEMU process) and <c>map_size=</c> (the RAM size) override what would be found.
/// </para>
/// <para>
/// Guest RAM is found, in order: the file of a <c>memory-backend-file</c> with <c>share=on</c>, mapped here directly (only when QEMU
/// runs on this machine); the RAM block's address from QMP (<c>info mtree -f</c> and <c>gpa2hva</c>, when the
/// command line has a QMP unix socket that answers); the mapping of the backend's file or an anonymous read-write
/// mapping of the RAM's size in the process's memory areas. The guest-physical layout comes from <c>info mtree -f</c>,
/// else from the <c>pc</c>/<c>q35</c> rules. What was used is logged, and kept in <see cref="QemuGuestMemory.Description"/>.
/// </para>
/// </remarks>
public sealed class QemuConnectorFactory : IConnectorFactory, IConnectorOverOsFactory, IDefaultInputConnectorFactory
{
    /// <inheritdoc />
    public IReadOnlyList<PluginParameter> Parameters { get; } =
    [
        new PluginParameter("name", PluginParameterType.String, "The guest's name (QEMU's -name, or its guest= part).") { IsDefaultArgument = true },
        new PluginParameter("pid", PluginParameterType.Number, "The QEMU process's id."),
        new PluginParameter("freeze", PluginParameterType.Boolean, "Pause the guest through QMP while the connector is open, for a consistent snapshot.") { DefaultValue = "off" },
        new PluginParameter("write", PluginParameterType.Boolean, "Allow writing guest RAM.") { DefaultValue = "off" },
        new PluginParameter("qmp", PluginParameterType.Boolean, "Use the QMP sockets on QEMU's command line (off: find RAM and layout without asking QEMU).") { DefaultValue = "on" },
        new PluginParameter("map_base", PluginParameterType.Number, "The host-virtual address of the guest's RAM block in the QEMU process (overrides QMP and the mapping search)."),
        new PluginParameter("map_size", PluginParameterType.Number, "The guest's RAM size in bytes (overrides -m and the backend's size)."),
    ];

    /// <summary>Starting a chain, the host gives this connector the <c>native</c> OS.</summary>
    public string DefaultInput => "native";

    /// <summary>Refuses: the connector reads through an OS (the host passes <see cref="DefaultInput"/> when it starts a chain).</summary>
    public IPhysicalMemory Create(PluginArguments arguments, IPluginContext context) =>
        throw new PluginArgumentException($"{arguments?.PluginName ?? "qemu"}: the qemu connector reads a QEMU process through an OS; start the chain with it (the host puts 'native' before it) or put an OS step before it.");

    /// <inheritdoc />
    public IPhysicalMemory Create(IOperatingSystem input, PluginArguments arguments, IPluginContext context)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(arguments);
        ArgumentNullException.ThrowIfNull(context);
        return QemuOpener.Open(input, arguments, context);
    }
}

/// <summary>Finds a QEMU process and its guest's RAM, and builds the physical memory over it.</summary>
internal static class QemuOpener
{
    public static QemuGuestMemory Open(IOperatingSystem input, PluginArguments arguments, IPluginContext context)
    {
        var name = arguments.GetString("name");
        var pid = arguments.GetNumber("pid");
        bool freeze = arguments.GetBoolean("freeze") ?? false;
        bool write = arguments.GetBoolean("write") ?? false;
        var mapBase = arguments.GetNumber("map_base");
        var mapSize = arguments.GetNumber("map_size");
        if (name is null && pid is null)
            throw new PluginArgumentException($"{arguments.PluginName}: name= (the guest's -name) or pid= (the QEMU process) is required.");
        if (mapSize is 0)
            throw new PluginArgumentException($"{arguments.PluginName}: map_size=0 names no RAM; expected the guest's RAM size in bytes.");

        var (process, commandLine) = FindProcess(input, name, pid, arguments.PluginName);
        bool local = input.Info.Name == "native";
        var log = new StringBuilder().Append(CultureInfo.InvariantCulture, $"qemu: process {process.Pid} ({process.Name}, guest '{commandLine.GuestName ?? "unnamed"}')");

        // QMP is reachable only when QEMU runs on this machine: inside a guest its socket path means nothing here.
        QmpClient? qmp = null;
        string? qmpPath = null;
        bool useQmp = arguments.GetBoolean("qmp") ?? true;
        if (local && useQmp)
        {
            foreach (var socket in commandLine.QmpSockets)
            {
                qmp = QmpClient.TryConnect(socket, out var problem);
                if (qmp is not null)
                {
                    qmpPath = socket;
                    break;
                }
                context.Log(PluginLogLevel.Warning, $"qemu: QMP at {socket} unusable ({problem}); falling back.");
            }
        }
        else if (commandLine.QmpSockets.Count > 0 && !useQmp)
        {
            log.Append("; QMP not used (qmp=off)");
        }
        else if (commandLine.QmpSockets.Count > 0)
        {
            log.Append("; QMP not used (QEMU runs inside another machine)");
        }
        if (freeze && qmp is null)
            throw new PluginArgumentException($"{arguments.PluginName}: freeze=on pauses the guest through QMP, and process {process.Pid} has {(commandLine.QmpSockets.Count == 0 ? "no -qmp unix socket on its command line" : !useQmp ? "qmp=off" : local ? "no QMP socket that answers" : "its QMP socket inside another machine")}.");

        try
        {
            // The layout: QEMU's own flat view, else the machine rules for the RAM size.
            ulong ramBytes = mapSize ?? commandLine.EffectiveRamBytes;
            List<RamRange> layout;
            string layoutText;
            ulong? hva = null;
            if (qmp is not null && mapSize is null)
            {
                layout = GuestLayout.FromMtree(qmp.Human("info mtree -f"), out var region);
                layoutText = $"info mtree -f (region '{region}')";
                ramBytes = layout.Max(r => r.BlockOffset + r.Size);
                if (mapBase is null)
                    hva = QueryHostAddress(qmp, layout[0]);
            }
            else
            {
                layout = GuestLayout.FromMachineRules(commandLine.MachineType, ramBytes, commandLine.MaxRamBelow4G, out layoutText);
                if (mapSize is not null)
                    layoutText += " (map_size given)";
            }
            log.Append("; layout from ").Append(layoutText);

            IPhysicalMemory memory;
            var backend = commandLine.RamBackend;
            // With share=off the guest's writes stay in QEMU's private copy: the file then shows RAM as it was at start.
            if (mapBase is null && local && backend is { Type: "memory-backend-file", Shared: true, MemPath: { } file } && File.Exists(file)
                && (ulong)new FileInfo(file).Length >= ramBytes)
            {
                var map = BuildMap(layout, 0);
                memory = new MappedFileMemory(file, ramBytes, map, readOnly: !write);
                log.Append(CultureInfo.InvariantCulture, $"; RAM from the file {file} (memory-backend-file '{backend.Id}'), mapped here");
            }
            else
            {
                ulong blockBase;
                if (mapBase is { } given)
                {
                    blockBase = given;
                    log.Append(CultureInfo.InvariantCulture, $"; RAM block at 0x{given:x} (map_base given)");
                }
                else if (hva is { } fromQmp)
                {
                    blockBase = fromQmp;
                    log.Append(CultureInfo.InvariantCulture, $"; RAM block at 0x{fromQmp:x} (QMP gpa2hva)");
                }
                else
                {
                    blockBase = FindMapping(input, process, backend, ramBytes, out var how);
                    log.Append(CultureInfo.InvariantCulture, $"; RAM block at 0x{blockBase:x} ({how})");
                }
                var map = BuildMap(layout, blockBase);
                memory = new GuestPhysicalMemory(input.OpenProcessMemory(process), map, readOnly: !write);
            }

            bool resume = false;
            if (freeze)
            {
                resume = qmp!.Execute("query-status")?["running"]?.GetValue<bool>() ?? false;
                qmp.Execute("stop");
                log.Append("; guest paused (freeze=on)");
            }
            var description = log.ToString();
            context.Log(PluginLogLevel.Information, description + ".");
            ulong? hostProcess = local && memory is GuestPhysicalMemory ? process.Pid : null;
            var result = new QemuGuestMemory(memory, description, process.Pid, hostProcess, freeze ? qmpPath : null, resume, !freeze, context);
            return result;
        }
        finally
        {
            qmp?.Dispose();
        }
    }

    private static (ProcessInfo Process, QemuCommandLine CommandLine) FindProcess(IOperatingSystem input, string? name, ulong? pid, string plugin)
    {
        if (pid is { } id)
        {
            var process = input.GetProcess(id)
                ?? throw new PluginArgumentException($"{plugin}: the argument 'pid={id}' names no process in {input.Info.Name}.");
            var arguments = ArgumentsOf(process);
            if (!QemuCommandLine.IsQemu(arguments, process.Path))
                throw new PluginArgumentException($"{plugin}: process {id} ({process.Name}) is not a QEMU system emulator (its command line starts '{(arguments.Count > 0 ? arguments[0] : "")}').");
            var line = QemuCommandLine.Parse(arguments);
            if (name is not null && line.GuestName != name)
                throw new PluginArgumentException($"{plugin}: process {id} runs guest '{line.GuestName ?? "unnamed"}', not '{name}'.");
            return (process, line);
        }
        var seen = new List<string>();
        var matches = new List<(ProcessInfo, QemuCommandLine)>();
        foreach (var process in input.GetProcesses())
        {
            if (process.IsKernelThread)
                continue;
            var arguments = ArgumentsOf(process);
            if (!QemuCommandLine.IsQemu(arguments, process.Path))
                continue;
            QemuCommandLine line;
            try
            {
                line = QemuCommandLine.Parse(arguments);
            }
            catch (InvalidDataException)
            {
                continue;
            }
            seen.Add($"{process.Pid} ('{line.GuestName ?? "unnamed"}')");
            if (line.GuestName == name)
                matches.Add((process, line));
        }
        return matches.Count switch
        {
            1 => matches[0],
            0 => throw new PluginArgumentException($"{plugin}: no QEMU process in {input.Info.Name} runs a guest named '{name}'. QEMU processes: {(seen.Count == 0 ? "none" : string.Join(", ", seen))}."),
            _ => throw new PluginArgumentException($"{plugin}: {matches.Count} QEMU processes run a guest named '{name}' ({string.Join(", ", matches.Select(m => m.Item1.Pid))}); pick one with pid=."),
        };
    }

    private static IReadOnlyList<string> ArgumentsOf(ProcessInfo process) =>
        process.Arguments ?? (process.CommandLine is { } text ? text.Split(' ', StringSplitOptions.RemoveEmptyEntries) : []);

    /// <summary>The RAM block's host address: <c>gpa2hva</c> of the first RAM range, less that range's offset in the block.</summary>
    private static ulong? QueryHostAddress(QmpClient qmp, RamRange first)
    {
        var reply = qmp.Human(string.Create(CultureInfo.InvariantCulture, $"gpa2hva 0x{first.GuestPhysical:x}"));
        int at = reply.LastIndexOf("0x", StringComparison.Ordinal);
        if (at < 0)
            return null;
        var digits = reply.AsSpan(at + 2);
        int end = 0;
        while (end < digits.Length && char.IsAsciiHexDigit(digits[end]))
            end++;
        return ulong.TryParse(digits[..end], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong hva) && hva >= first.BlockOffset
            ? hva - first.BlockOffset
            : null;
    }

    /// <summary>The RAM block among the process's memory areas: the backend file's mapping, else an anonymous read-write mapping of exactly the RAM size, else the largest at least that size.</summary>
    private static ulong FindMapping(IOperatingSystem input, ProcessInfo process, MemoryBackend? backend, ulong ramBytes, out string how)
    {
        var areas = input.GetMemoryAreas(process);
        if (backend?.MemPath is { } file)
        {
            foreach (var area in areas)
            {
                if (area.Path == file && area.Offset == 0 && area.End - area.Start >= ramBytes)
                {
                    how = $"the mapping of {file}";
                    return area.Start;
                }
            }
        }
        const MemoryProtection ReadWrite = MemoryProtection.Read | MemoryProtection.Write;
        MemoryArea? exact = null, largest = null;
        foreach (var area in areas)
        {
            if (area.Path is not null || (area.Protection & ReadWrite) != ReadWrite)
                continue;
            ulong size = area.End - area.Start;
            if (size == ramBytes && exact is null)
                exact = area;
            if (size >= ramBytes && (largest is null || size > largest.End - largest.Start))
                largest = area;
        }
        if (exact is not null)
        {
            how = "the anonymous read-write mapping of the RAM's size";
            return exact.Start;
        }
        if (largest is not null)
        {
            how = string.Create(CultureInfo.InvariantCulture, $"the largest anonymous read-write mapping ({(largest.End - largest.Start) >> 20} MiB, RAM assumed at its start)");
            return largest.Start;
        }
        throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
            $"qemu: process {process.Pid} has no mapping of {ramBytes} bytes of guest RAM ({areas.Count} memory areas read{(areas.Count == 0 ? ": none readable" : "")}); give map_base= and map_size=."));
    }

    private static MemoryMap BuildMap(List<RamRange> layout, ulong backingBase) =>
        new(layout.Select(r => new MemoryRange(r.GuestPhysical, r.Size, backingBase + r.BlockOffset)));
}
