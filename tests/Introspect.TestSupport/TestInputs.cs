using NUnit.Framework;

namespace Introspect.TestSupport;

/// <summary>Where the tests find real inputs: the shared test data, and what <c>tests/fixtures</c> builds.</summary>
/// <remarks>
/// A missing input fails the test with the command that makes it, rather than skipping it:
/// a suite that quietly skips its real-data tests proves nothing.
/// </remarks>
public static class TestInputs
{
    private static readonly Lazy<string> RepositoryRootPath = new(FindRepositoryRoot);

    /// <summary>The repository's top folder (the one holding <c>Introspect.sln</c>).</summary>
    public static string RepositoryRoot => RepositoryRootPath.Value;

    /// <summary>The shared test data: <c>INTROSPECT_TESTDATA</c>, else <c>../shared/testdata</c> beside the repository.</summary>
    public static string TestDataRoot =>
        Environment.GetEnvironmentVariable("INTROSPECT_TESTDATA") is { Length: > 0 } fromEnvironment
            ? fromEnvironment
            : Path.GetFullPath(Path.Combine(RepositoryRoot, "..", "shared", "testdata"));

    /// <summary>What <c>tests/fixtures/build.sh</c> writes: <c>INTROSPECT_FIXTURES</c>, else <c>tests/fixtures/out</c>.</summary>
    public static string FixturesRoot =>
        Environment.GetEnvironmentVariable("INTROSPECT_FIXTURES") is { Length: > 0 } fromEnvironment
            ? fromEnvironment
            : Path.Combine(RepositoryRoot, "tests", "fixtures", "out");

    /// <summary>A file of the shared test data, which must exist.</summary>
    public static string TestData(params string[] relativePath) =>
        Require(Path.Combine([TestDataRoot, .. relativePath]), "the shared test data (set INTROSPECT_TESTDATA to its folder)");

    /// <summary>A file the fixtures build, which must exist.</summary>
    public static string Fixture(params string[] relativePath) =>
        Require(Path.Combine([FixturesRoot, .. relativePath]), "the fixtures: run tests/fixtures/build.sh");

    /// <summary>The 128 MiB raw image of the shared Debian guest, unpacked by the fixtures from its <c>.raw.xz</c>.</summary>
    public static string LinuxRawImage => Fixture("linux-6.1-x64-128M.raw");

    /// <summary>The flattened makedumpfile dump QEMU wrote of the same guest at the same moment.</summary>
    public static string LinuxFlattenedKdump => TestData("linux", "linux-6.1-x64-128M.kdump-zlib");

    private static string Require(string path, string source)
    {
        if (!File.Exists(path))
            Assert.Fail($"Missing test input {path}; it comes from {source}.");
        return path;
    }

    private static string FindRepositoryRoot()
    {
        var recorded = typeof(TestInputs).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
            .Cast<System.Reflection.AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "RepositoryRoot")?.Value;
        if (recorded is not null && File.Exists(Path.Combine(recorded, "Introspect.sln")))
            return recorded;
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Introspect.sln")))
                return directory.FullName;
        }
        throw new InvalidOperationException($"No Introspect.sln above {AppContext.BaseDirectory} nor at the recorded {recorded}.");
    }
}
