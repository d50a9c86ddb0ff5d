using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Introspect.Abi;
using Spectre.Console;

namespace Introspect.Cli.Commands;

/// <summary><c>introspect ps</c>, <c>maps</c> and <c>modules</c>: what the chain's OS layer sees of processes.</summary>
internal static class ProcessCommands
{
    public static Command Ps(CliConsole console)
    {
        var chain = CommonOptions.Chain();
        var tree = new Option<bool>("--tree") { Description = "Show processes under their parents" };
        var json = CommonOptions.JsonOutput();
        var pluginPath = CommonOptions.PluginPath();
        var verbose = CommonOptions.Verbose();
        var watch = new Option<bool>("--watch") { Description = "Refresh the list until Ctrl-C (a live chain shows processes come and go)" };
        var interval = new Option<double>("--interval") { Description = "Seconds between refreshes with --watch", DefaultValueFactory = _ => 1.0 };
        var count = new Option<int>("--count") { Description = "Stop --watch after this many refreshes (0: until Ctrl-C)" };
        var command = new Command("ps", "List the processes of the OS at the end of a chain");
        CommonOptions.AddTo(command, chain, tree, json, pluginPath, verbose, watch, interval, count);
        command.SetAction(parseResult =>
        {
            bool watching = parseResult.GetValue(watch);
            double seconds = parseResult.GetValue(interval);
            int refreshes = parseResult.GetValue(count);
            if (!watching && (parseResult.GetResult(interval) is { Implicit: false } || parseResult.GetResult(count) is { Implicit: false }))
                throw new CliUsageException("--interval and --count go with --watch.");
            if (seconds is < 0.05 or > 86400 || double.IsNaN(seconds))
                throw new CliUsageException($"--interval {seconds.ToString(CultureInfo.InvariantCulture)} is out of range; expected 0.05 to 86400 seconds.");
            if (refreshes < 0)
                throw new CliUsageException("--count must be 0 (until Ctrl-C) or more.");
            using var opened = CommonOptions.OpenChain(parseResult, chain, pluginPath, verbose);
            var system = opened.Chain.RequireOperatingSystem();
            if (!watching)
            {
                Show(console, system.GetProcesses(), parseResult.GetValue(json), parseResult.GetValue(tree));
                return 0;
            }
            using var stop = new CancellationTokenSource();
            ConsoleCancelEventHandler onCancel = (_, e) =>
            {
                e.Cancel = true;
                stop.Cancel();
            };
            Console.CancelKeyPress += onCancel;
            try
            {
                for (int refresh = 1; !stop.IsCancellationRequested; refresh++)
                {
                    var clock = System.Diagnostics.Stopwatch.StartNew();
                    // Each call walks the OS afresh: a live chain shows what runs now, a torn walk what it could read.
                    var processes = system.GetProcesses();
                    double milliseconds = clock.Elapsed.TotalMilliseconds;
                    if (console.Interactive)
                        console.Ansi.Clear();
                    if (!parseResult.GetValue(json))
                        console.Output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"--- refresh {refresh} at {DateTimeOffset.Now:HH:mm:ss}: {processes.Count} processes in {milliseconds:0.0} ms ({opened.Spec})"));
                    Show(console, processes, parseResult.GetValue(json), parseResult.GetValue(tree));
                    console.Output.Flush();
                    if (refreshes > 0 && refresh >= refreshes)
                        break;
                    stop.Token.WaitHandle.WaitOne(TimeSpan.FromSeconds(seconds));
                }
            }
            finally
            {
                Console.CancelKeyPress -= onCancel;
            }
            return 0;
        });
        return command;
    }

    private static void Show(CliConsole console, IReadOnlyList<ProcessInfo> processes, bool json, bool tree)
    {
        if (json)
        {
            console.Output.WriteLine(JsonSerializer.Serialize(processes.Select(p => new
            {
                p.Pid,
                Ppid = p.ParentPid,
                p.Name,
                State = StateOf(p),
                p.Uid,
                p.CommandLine,
                p.Path,
                Threads = p.ThreadCount,
                KernelThread = p.IsKernelThread,
                Hidden = p.IsHidden,
                Dtb = p.DirectoryTableBase,
            }), CommonOptions.Json));
            return;
        }
        var table = new Table().NoBorder().AddColumns("PID", "PPID", "S", "UID", "THR", "NAME", "COMMAND");
        foreach (var (process, depth) in tree ? AsTree(processes) : processes.Select(p => (p, 0)))
        {
            var command = process.IsKernelThread ? $"[{process.Name}]" : process.CommandLine ?? process.Name;
            table.AddRow(
                process.Pid.ToString(CultureInfo.InvariantCulture),
                process.ParentPid.ToString(CultureInfo.InvariantCulture),
                StateOf(process),
                process.Uid?.ToString(CultureInfo.InvariantCulture) ?? "",
                process.ThreadCount.ToString(CultureInfo.InvariantCulture),
                Markup.Escape(new string(' ', 2 * depth) + process.Name),
                Markup.Escape(command));
        }
        console.Ansi.Write(table);
    }

    public static Command Maps(CliConsole console)
    {
        var chain = CommonOptions.Chain();
        var pid = Pid(required: true);
        var json = CommonOptions.JsonOutput();
        var pluginPath = CommonOptions.PluginPath();
        var verbose = CommonOptions.Verbose();
        var command = new Command("maps", "List a process's memory areas, as /proc/PID/maps shows them");
        CommonOptions.AddTo(command, chain, pid, json, pluginPath, verbose);
        command.SetAction(parseResult =>
        {
            using var opened = CommonOptions.OpenChain(parseResult, chain, pluginPath, verbose);
            var system = opened.Chain.RequireOperatingSystem();
            var areas = system.GetMemoryAreas(FindProcess(system, parseResult.GetValue(pid)));
            if (parseResult.GetValue(json))
            {
                console.Output.WriteLine(JsonSerializer.Serialize(areas.Select(a => new { a.Start, a.End, Perms = a.Permissions, a.Offset, a.Path }), CommonOptions.Json));
                return 0;
            }
            foreach (var area in areas)
                console.Output.WriteLine($"{area.Start:x8}-{area.End:x8} {area.Permissions} {area.Offset:x8} {area.Path}".TrimEnd());
            return 0;
        });
        return command;
    }

    public static Command Modules(CliConsole console)
    {
        var chain = CommonOptions.Chain();
        var pid = Pid(required: false);
        var json = CommonOptions.JsonOutput();
        var pluginPath = CommonOptions.PluginPath();
        var verbose = CommonOptions.Verbose();
        var command = new Command("modules", "List the kernel's modules, or a process's with --pid");
        CommonOptions.AddTo(command, chain, pid, json, pluginPath, verbose);
        command.SetAction(parseResult =>
        {
            using var opened = CommonOptions.OpenChain(parseResult, chain, pluginPath, verbose);
            var system = opened.Chain.RequireOperatingSystem();
            var modules = parseResult.GetResult(pid) is null
                ? system.GetKernelModules()
                : system.GetModules(FindProcess(system, parseResult.GetValue(pid)));
            if (parseResult.GetValue(json))
            {
                console.Output.WriteLine(JsonSerializer.Serialize(modules, CommonOptions.Json));
                return 0;
            }
            var table = new Table().NoBorder().AddColumns("BASE", "SIZE", "NAME", "PATH");
            foreach (var module in modules)
                table.AddRow(CommonOptions.Hex(module.Base), CommonOptions.Hex(module.Size), Markup.Escape(module.Name), Markup.Escape(module.Path ?? ""));
            console.Ansi.Write(table);
            return 0;
        });
        return command;
    }

    public static Option<ulong> Pid(bool required)
    {
        var option = CommonOptions.Number("--pid", "The process id");
        option.Required = required;
        return option;
    }

    /// <summary>The process with <paramref name="pid"/>, or an error that says how to find one.</summary>
    public static ProcessInfo FindProcess(IOperatingSystem system, ulong pid) =>
        system.GetProcess(pid) ?? throw new CliUsageException($"no process with pid {pid} in the {system.Info.Name} at the end of the chain; 'introspect ps' lists them.");

    private static string StateOf(ProcessInfo process) => process.StateText ?? process.State.ToString().ToLowerInvariant();

    /// <summary>Processes depth-first under their parents; a process whose parent is missing (or part of a cycle) starts a root.</summary>
    private static IEnumerable<(ProcessInfo Process, int Depth)> AsTree(IReadOnlyList<ProcessInfo> processes)
    {
        var byPid = processes.GroupBy(p => p.Pid).ToDictionary(g => g.Key, g => g.First());
        var children = processes.ToLookup(p => p.ParentPid);
        var shown = new HashSet<ulong>();
        var ordered = new List<(ProcessInfo, int)>();
        void Visit(ProcessInfo process, int depth)
        {
            if (!shown.Add(process.Pid))
                return;
            ordered.Add((process, depth));
            foreach (var child in children[process.Pid].Where(c => c.Pid != process.Pid))
                Visit(child, depth + 1);
        }
        foreach (var process in processes.Where(p => p.Pid == p.ParentPid || !byPid.ContainsKey(p.ParentPid)))
            Visit(process, 0);
        foreach (var process in processes)
            Visit(process, 0);
        return ordered;
    }
}
