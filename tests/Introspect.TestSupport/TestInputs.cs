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

    private const ulong MiB = 1024 * 1024;

    /// <summary>KASLR on, machine <c>pc</c>, 256 MiB, 4-level paging.</summary>
    public static FixtureGuest LinuxKaslrPc { get; } = new("linux-kaslr-pc", "pc", "qemu64", 256 * MiB, 256 * MiB, Kaslr: true, PagingLevels: 4);

    /// <summary><c>nokaslr</c>, machine <c>q35</c>, 256 MiB, 4-level paging: the kernel at its link address.</summary>
    public static FixtureGuest LinuxNoKaslrQ35 { get; } = new("linux-nokaslr-q35", "q35", "qemu64", 256 * MiB, 256 * MiB, Kaslr: false, PagingLevels: 4);

    /// <summary>
    /// KASLR on, machine <c>pc</c> with <c>max-ram-below-4g=512M</c>: 512 MiB below the PCI hole and 512 MiB at 4 GiB.
    /// With 1 GiB the kernel turns transparent huge pages on, so the memtest processes' <c>huge</c> buffers are 2 MiB pages.
    /// </summary>
    public static FixtureGuest LinuxHighMemPc { get; } = new("linux-highmem-pc", "pc,max-ram-below-4g=512M", "qemu64", 1024 * MiB, 512 * MiB, Kaslr: true, PagingLevels: 4);

    /// <summary>KASLR on, machine <c>pc</c>, <c>-cpu max</c>: the kernel runs with 5-level paging (LA57).</summary>
    public static FixtureGuest LinuxLa57Pc { get; } = new("linux-la57-pc", "pc", "max", 256 * MiB, 256 * MiB, Kaslr: true, PagingLevels: 5);

    /// <summary>Every guest of the fixtures' <c>linux-guests</c> step, each with the sectioned ground truth <see cref="GuestOracle"/> reads.</summary>
    public static IReadOnlyList<FixtureGuest> LinuxGuests { get; } = [LinuxKaslrPc, LinuxNoKaslrQ35, LinuxHighMemPc, LinuxLa57Pc];

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
