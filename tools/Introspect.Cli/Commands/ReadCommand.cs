using System.CommandLine;
using Introspect.Abi;
using Introspect.Core.Memory;

namespace Introspect.Cli.Commands;

/// <summary><c>introspect read</c>: bytes of physical memory, as a hex dump or raw.</summary>
internal static class ReadCommand
{
    /// <summary>More than this is a job for <c>introspect dump</c>.</summary>
    private const ulong MaxLength = 256UL << 20;

    public static Command Create(CliConsole console)
    {
        var chain = CommonOptions.Chain();
        var physical = CommonOptions.Number("--phys", "The physical address to read from");
        physical.Required = false;
        var pid = ProcessCommands.Pid(required: false);
        var virtualAddress = CommonOptions.Number("--virt", "With --pid: the virtual address to read from");
        virtualAddress.Required = false;
        var length = CommonOptions.Number("--length", "How many bytes to read");
        var format = new Option<string>("--format") { Description = "hex (MemProcFS layout) or raw bytes", DefaultValueFactory = _ => "hex" };
        format.AcceptOnlyFromAmong("hex", "raw");
        var pluginPath = CommonOptions.PluginPath();
        var verbose = CommonOptions.Verbose();
        var command = new Command("read", "Read physical memory (--phys), or a process's virtual memory (--pid with --virt)");
        command.Aliases.Add("hexdump");
        CommonOptions.AddTo(command, chain, physical, pid, virtualAddress, length, format, pluginPath, verbose);
        command.SetAction(parseResult =>
        {
            bool isVirtual = parseResult.GetResult(pid) is not null;
            if (isVirtual != (parseResult.GetResult(virtualAddress) is not null) || isVirtual == (parseResult.GetResult(physical) is not null))
                throw new CliUsageException("give either --phys ADDRESS, or --pid N with --virt ADDRESS.");
            var start = isVirtual ? parseResult.GetValue(virtualAddress) : parseResult.GetValue(physical);
            var count = parseResult.GetValue(length);
            if (count == 0 || count > MaxLength)
                throw new CliUsageException($"--length {count} is out of range; expected 1 to {MaxLength} bytes (use 'introspect dump' for more).");
            if (start + (count - 1) < start)
                throw new CliUsageException($"address {CommonOptions.Hex(start)} with --length {count} runs past the end of the 64-bit address space.");

            using var opened = CommonOptions.OpenChain(parseResult, chain, pluginPath, verbose);
            IMemory memory = opened.Memory;
            if (isVirtual)
            {
                var system = opened.Chain.RequireOperatingSystem();
                memory = system.OpenProcessMemory(ProcessCommands.FindProcess(system, parseResult.GetValue(pid)));
            }
            var buffer = new byte[count];
            int read = memory.Read(start, buffer);
            if (read < buffer.Length)
                console.Error.WriteLine($"warning: only {read} of {count} bytes are readable at {CommonOptions.Hex(start)}; the first unreadable byte is at {CommonOptions.Hex(start + (ulong)read)}.");
            if (read == 0)
                return 1;
            if (parseResult.GetValue(format) == "raw")
            {
                var output = console.RawOutput ?? throw new CliUsageException("--format raw needs a byte stream on standard output.");
                output.Write(buffer, 0, read);
                output.Flush();
            }
            else
            {
                console.Output.Write(HexDump.Format(buffer.AsSpan(0, read), start));
            }
            return 0;
        });
        return command;
    }
}
