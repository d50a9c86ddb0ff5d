using System.CommandLine;
using System.Runtime.InteropServices;
using Introspect.Core;
using Introspect.Fuse;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Introspect.Cli.Commands;

/// <summary><c>introspect mount</c>: the machine as files, served through the kernel with FUSE until Ctrl+C, SIGTERM or an unmount.</summary>
internal static class MountCommand
{
    public static Command Create(CliConsole console)
    {
        var chain = CommonOptions.Chain();
        var mountPoint = new Argument<string>("mountpoint") { Description = "An empty folder to show the machine in" };
        var write = new Option<bool>("--write") { Description = "Allow writes: configuration values under conf/, and memory when the chain takes writes" };
        var kernelCache = new Option<bool>("--kernel-cache") { Description = "Let the kernel cache memory files too (for dumps, whose bytes never change; not for a live machine)" };
        var allowOther = new Option<bool>("--allow-other") { Description = "Let other users see the files (needs user_allow_other in /etc/fuse.conf unless root)" };
        var pluginPath = CommonOptions.PluginPath();
        var verbose = CommonOptions.Verbose();
        var command = new Command("mount", "Show the machine as files (MemProcFS's layout): memory.pmem, pid/, name/, sys/, conf/, vm/") { mountPoint };
        CommonOptions.AddTo(command, chain, write, kernelCache, allowOther, pluginPath, verbose);
        command.SetAction(parseResult =>
        {
            // FUSE first: a missing device should not cost opening the chain to find out.
            FuseMount.CheckAvailable();
            var folder = Path.GetFullPath(parseResult.GetValue(mountPoint)!);
            if (!Directory.Exists(folder))
                throw new CliUsageException($"the mount point {folder} is not a folder; create it first.");
            using var services = CommonOptions.BuildServices(parseResult, pluginPath, verbose);
            using var machine = OpenMachine(services, parseResult.GetValue(chain)!);
            using var mount = FuseMount.Mount(machine.Vfs, folder, new FuseMountOptions
            {
                ReadOnly = !parseResult.GetValue(write),
                AllowOther = parseResult.GetValue(allowOther),
                KernelCache = parseResult.GetValue(kernelCache),
            });
            // Ctrl+C and SIGTERM unmount and let the loop end; the registrations keep the runtime from dying first.
            using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
            using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
            void Stop(PosixSignalContext context)
            {
                context.Cancel = true;
                mount.Stop();
            }
            console.Error.WriteLine($"mounted {machine.Chain!.Spec} at {folder}{(parseResult.GetValue(write) ? " (writable)" : " (read-only)")}; Ctrl+C or 'fusermount3 -u {folder}' unmounts");
            console.Error.Flush();
            int result = mount.Run();
            mount.Dispose();
            console.Error.WriteLine($"unmounted {folder}");
            return result == 0 ? 0 : 1;
        });
        return command;
    }

    /// <summary>Opens a chain (<c>@name</c> looked up in plugins.json) as a machine that logs through the command's services.</summary>
    public static Machine OpenMachine(ServiceProvider services, string chain)
    {
        var spec = services.GetRequiredService<Core.Plugins.PluginConfiguration>().ResolveChain(chain);
        var opened = services.GetRequiredService<Core.Plugins.PluginHost>().Open(spec);
        return Machine.Open(opened, new MachineOptions { LoggerFactory = services.GetRequiredService<ILoggerFactory>() });
    }
}
