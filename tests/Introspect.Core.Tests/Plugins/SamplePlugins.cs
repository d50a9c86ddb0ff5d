using System.Collections.Concurrent;
using System.Diagnostics;
using Introspect.TestSupport;

namespace Introspect.Tests.Plugins
{
    /// <summary>The sample plugins as the tests use them: the C one compiled here from source, the managed one from its build output.</summary>
    /// <remarks>Builds go to one temporary folder per test run, removed when the run ends; each variant is built once.</remarks>
    internal static class SamplePlugins
    {
        private static readonly Lazy<string> BuildRoot = new(() => Directory.CreateTempSubdirectory("introspect-samples-").FullName);

        /// <summary>Removes every build and scratch folder of this run (called once all tests of the assembly ran).</summary>
        public static void DeleteBuilds()
        {
            if (BuildRoot.IsValueCreated && Directory.Exists(BuildRoot.Value))
                Directory.Delete(BuildRoot.Value, recursive: true);
        }

        private static readonly ConcurrentDictionary<string, Lazy<string>> Builds = new();

        /// <summary>The folder of the C sample's sources.</summary>
        public static string NativeSourceFolder => Path.Combine(TestInputs.RepositoryRoot, "plugins", "samples", "native-file-connector");

        /// <summary>The C header.</summary>
        public static string HeaderFolder => Path.Combine(TestInputs.RepositoryRoot, "plugins", "abi");

        /// <summary>The C sample built with its Makefile (version 1.0.0): <c>libintrospect_native_sample.so</c>.</summary>
        public static string NativeLibrary => BuildNative("default");

        /// <summary>The C sample built into its own folder with extra compiler flags (for example another version).</summary>
        public static string BuildNative(string variant, string extraCflags = "", string extraLdflags = "") =>
            Builds.GetOrAdd("make:" + variant, _ => new Lazy<string>(() =>
            {
                var output = Path.Combine(BuildRoot.Value, variant);
                Directory.CreateDirectory(output);
                Run("make", ["-s", "-C", NativeSourceFolder, $"OUT={output}", $"EXTRA_CFLAGS={extraCflags}", $"EXTRA_LDFLAGS={extraLdflags}"]);
                return Path.Combine(output, "libintrospect_native_sample.so");
            })).Value;

        /// <summary>Compiles one C source file with the contract's header into <c>OUTPUT</c> (a shared library unless the flags say otherwise).</summary>
        public static string CompileC(string name, string source, params string[] flags) =>
            Builds.GetOrAdd("gcc:" + name, _ => new Lazy<string>(() =>
            {
                var folder = Path.Combine(BuildRoot.Value, "c-" + name);
                Directory.CreateDirectory(folder);
                var sourcePath = Path.Combine(folder, name + ".c");
                File.WriteAllText(sourcePath, source);
                var output = Path.Combine(folder, flags.Contains("-shared") ? $"lib{name}.so" : name);
                Run("gcc", ["-std=c11", "-Wall", "-Werror", "-I", HeaderFolder, "-o", output, sourcePath, .. flags]);
                return output;
            })).Value;

        /// <summary>A fresh scratch folder inside the build folder.</summary>
        public static string Scratch(string name) => Directory.CreateDirectory(Path.Combine(BuildRoot.Value, name + "-" + Guid.NewGuid().ToString("n")[..8])).FullName;

        /// <summary>The managed sample's build output folder (Introspect.Samples.ManagedConnector.dll, Newtonsoft.Json.dll, ...).</summary>
        public static string ManagedFolder
        {
            get
            {
                // Artifacts output: bin/<project>/<configuration>/; the sample sits beside this test project's folder.
                var own = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
                var folder = Path.Combine(own.Parent!.Parent!.FullName, "Introspect.Samples.ManagedConnector", own.Name);
                if (!File.Exists(Path.Combine(folder, ManagedAssemblyName)))
                    Assert.Fail($"The managed sample plugin is not built at {folder}; build plugins/samples/Introspect.Samples.ManagedConnector.");
                return folder;
            }
        }

        public const string ManagedAssemblyName = "Introspect.Samples.ManagedConnector.dll";

        public static string ManagedAssembly => Path.Combine(ManagedFolder, ManagedAssemblyName);

        /// <summary>Copies the managed sample's folder, leaving out the files named.</summary>
        public static string CopyManaged(string into, params string[] without)
        {
            Directory.CreateDirectory(into);
            foreach (var file in Directory.EnumerateFiles(ManagedFolder))
            {
                if (!without.Contains(Path.GetFileName(file)))
                    File.Copy(file, Path.Combine(into, Path.GetFileName(file)));
            }
            return Path.Combine(into, ManagedAssemblyName);
        }

        /// <summary>Runs a tool to completion (bounded), failing the test with its output when it fails.</summary>
        public static string Run(string tool, IEnumerable<string> arguments)
        {
            var start = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var argument in arguments)
                start.ArgumentList.Add(argument);
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
            {
                process.Kill(entireProcessTree: true);
                Assert.Fail($"{tool} {string.Join(' ', start.ArgumentList)} did not finish in 3 minutes.");
            }
            if (process.ExitCode != 0)
                Assert.Fail($"{tool} {string.Join(' ', start.ArgumentList)} failed ({process.ExitCode}):\n{output.Result}\n{error.Result}");
            return output.Result;
        }
    }
}

/// <summary>Deletes the sample builds once every test of the assembly ran (a set-up fixture outside any namespace covers them all).</summary>
[SetUpFixture]
#pragma warning disable CA1050 // NUnit applies a set-up fixture to its namespace's tests: this one must be in none.
public sealed class SamplePluginsCleanup
#pragma warning restore CA1050
{
    [OneTimeTearDown]
    public void DeleteBuilds() => Introspect.Tests.Plugins.SamplePlugins.DeleteBuilds();
}
