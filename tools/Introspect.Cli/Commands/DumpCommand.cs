using System.CommandLine;
using Introspect.Core.Dumps;
using Spectre.Console;

namespace Introspect.Cli.Commands;

/// <summary><c>introspect dump</c>: a chain's physical memory into a raw image or an ELF core file.</summary>
internal static class DumpCommand
{
    public static Command Create(CliConsole console)
    {
        var chain = CommonOptions.Chain();
        var output = new Option<FileInfo>("--out", "-o") { Description = "The file to write", Required = true };
        var format = new Option<string>("--format") { Description = "raw (file offset = physical address) or elf (one PT_LOAD per range)", DefaultValueFactory = _ => "raw" };
        format.AcceptOnlyFromAmong("raw", "elf");
        var pluginPath = CommonOptions.PluginPath();
        var verbose = CommonOptions.Verbose();
        var command = new Command("dump", "Write the physical memory to a file");
        CommonOptions.AddTo(command, chain, output, format, pluginPath, verbose);
        command.SetAction((parseResult, cancel) =>
        {
            using var opened = CommonOptions.OpenChain(parseResult, chain, pluginPath, verbose);
            var path = parseResult.GetValue(output)!.FullName;
            var asElf = parseResult.GetValue(format) == "elf";
            DumpResult result = default;
            void Write(IProgress<ulong>? progress) => result = asElf
                ? PhysicalMemoryDump.WriteElf(opened.Memory, path, opened.Hints, progress, cancel)
                : PhysicalMemoryDump.WriteRaw(opened.Memory, path, progress, cancel);
            if (console.Interactive)
            {
                console.ErrorAnsi.Progress().Start(context =>
                {
                    var task = context.AddTask("dumping", maxValue: opened.Memory.MemoryMap.TotalSize);
                    Write(new Progress<ulong>(done => task.Value = done));
                });
            }
            else
            {
                Write(null);
            }
            console.Error.WriteLine($"wrote {path}: {result.FileSize} bytes, {result.BytesCovered} bytes of memory in {opened.Memory.MemoryMap.Count} ranges");
            if (result.UnreadableBytes > 0)
                console.Error.WriteLine($"warning: {result.UnreadableBytes} bytes could not be read and were written as zeros");
            return Task.FromResult(0);
        });
        return command;
    }
}
