using System.CommandLine;
using System.Text.Json;
using Spectre.Console;

namespace Introspect.Cli.Commands;

/// <summary><c>introspect info</c>: what a chain's physical memory is.</summary>
internal static class InfoCommand
{
    public static Command Create(CliConsole console)
    {
        var chain = CommonOptions.Chain();
        var json = CommonOptions.JsonOutput();
        var pluginPath = CommonOptions.PluginPath();
        var verbose = CommonOptions.Verbose();
        var command = new Command("info", "Describe a chain's physical memory: connector, format, size, memory map, hints");
        CommonOptions.AddTo(command, chain, json, pluginPath, verbose);
        command.SetAction(parseResult =>
        {
            using var opened = CommonOptions.OpenChain(parseResult, chain, pluginPath, verbose);
            var metadata = opened.Memory.Metadata;
            var hints = opened.Hints;
            if (parseResult.GetValue(json))
            {
                console.Output.WriteLine(JsonSerializer.Serialize(new
                {
                    Chain = opened.Spec.ToString(),
                    Connector = opened.Connector.Name,
                    ConnectorVersion = opened.Connector.Version.ToString(),
                    hints.Format,
                    metadata.MaxAddress,
                    metadata.RealSize,
                    metadata.ReadOnly,
                    metadata.IdealBatchSize,
                    MemoryMap = opened.Memory.MemoryMap.Select(r => new { r.Base, r.Size }),
                    Hints = new
                    {
                        Architecture = hints.Architecture == Abi.MachineArchitecture.Unknown ? null : hints.Architecture.ToString(),
                        hints.DirectoryTableBase,
                        hints.PfnDatabase,
                        hints.PsLoadedModuleList,
                        hints.PsActiveProcessHead,
                        hints.KdDebuggerDataBlock,
                        hints.PaeEnabled,
                        HasVmcoreInfo = hints.VmcoreInfo is not null,
                        Cpus = hints.Cpus.Select(c => new { c.Index, c.Cr3, c.InstructionPointer }),
                    },
                }, CommonOptions.Json));
                return 0;
            }

            var facts = new Grid().AddColumn().AddColumn();
            facts.AddRow("chain", Markup.Escape(opened.Spec.ToString()));
            facts.AddRow("connector", Markup.Escape($"{opened.Connector.Name} {opened.Connector.Version}"));
            facts.AddRow("format", Markup.Escape(hints.Format ?? "unknown"));
            facts.AddRow("max address", CommonOptions.Hex(metadata.MaxAddress));
            facts.AddRow("real size", $"{CommonOptions.Hex(metadata.RealSize)} ({metadata.RealSize / (1024.0 * 1024.0):0.#} MiB)");
            facts.AddRow("read-only", metadata.ReadOnly ? "yes" : "no");
            facts.AddRow("ideal batch", metadata.IdealBatchSize.ToString(System.Globalization.CultureInfo.InvariantCulture));
            if (hints.Architecture != Abi.MachineArchitecture.Unknown)
                facts.AddRow("architecture", hints.Architecture.ToString());
            if (hints.DirectoryTableBase is { } dtb)
                facts.AddRow("directory table base", CommonOptions.Hex(dtb));
            if (hints.PsActiveProcessHead is { } head)
                facts.AddRow("PsActiveProcessHead", CommonOptions.Hex(head));
            if (hints.PsLoadedModuleList is { } modules)
                facts.AddRow("PsLoadedModuleList", CommonOptions.Hex(modules));
            if (hints.KdDebuggerDataBlock is { } kdbg)
                facts.AddRow("KdDebuggerDataBlock", CommonOptions.Hex(kdbg));
            foreach (var cpu in hints.Cpus)
                facts.AddRow($"cpu {cpu.Index}", $"cr3 {CommonOptions.Hex(cpu.Cr3)} rip {CommonOptions.Hex(cpu.InstructionPointer)}");
            if (hints.VmcoreInfo is not null)
                facts.AddRow("vmcoreinfo", $"{hints.VmcoreInfo.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length} lines");
            console.Ansi.Write(facts);

            var map = new Table().Title("memory map").AddColumns("base", "last", "size", "backing");
            foreach (var range in opened.Memory.MemoryMap)
                map.AddRow(CommonOptions.Hex(range.Base), CommonOptions.Hex(range.Last), CommonOptions.Hex(range.Size), CommonOptions.Hex(range.BackingBase));
            console.Ansi.Write(map);
            return 0;
        });
        return command;
    }
}
