using Introspect.Symbols.Pdb;
using Introspect.Symbols.Pe;
using Introspect.Symbols.Store;
using Introspect.TestSupport;

namespace Introspect.Symbols.Tests;

/// <summary>Real files with bytes changed at random (a fixed seed, so every run tries the same files): every reader
/// either reads them or says they are bad with an <see cref="InvalidDataException"/>; nothing else escapes, nothing hangs.</summary>
[CancelAfter(300_000)]
public class MutationTests
{
    private const int Mutants = 300;

    private static byte[] Mutate(byte[] original, Random random)
    {
        var bytes = (byte[])original.Clone();
        int changes = random.Next(1, 9);
        for (int i = 0; i < changes; i++)
        {
            int at = random.Next(bytes.Length);
            switch (random.Next(3))
            {
                case 0:
                    bytes[at] = (byte)random.Next(256);
                    break;
                case 1:
                    bytes[at] ^= (byte)(1 << random.Next(8));
                    break;
                default:
                    // A 32-bit field set to an extreme.
                    var extreme = new[] { 0u, 0xffffffffu, 0x80000000u, 0x7fffffffu, 0x1000u }[random.Next(5)];
                    if (at + 4 <= bytes.Length)
                        BitConverter.GetBytes(extreme).CopyTo(bytes, at);
                    break;
            }
        }
        return bytes;
    }

    /// <returns>True when the mutant was refused.</returns>
    private static bool ReadsOrRefuses(Action read, string what)
    {
        try
        {
            read();
            return false;
        }
        catch (InvalidDataException)
        {
            return true;
        }
        catch (Exception e)
        {
            Assert.Fail($"{what}: {e.GetType().Name} instead of InvalidDataException: {e}");
            return false;
        }
    }

    [TestCase("breakpad/dump_syms_regtest64.pdb", 1)]
    [TestCase("breakpad/omap_reorder_bbs.pdb", 2)]
    [TestCase("symbolic/crash.pdb", 3)]
    public void Mutated_pdbs_are_read_or_refused(string relative, int seed)
    {
        var original = File.ReadAllBytes(TestInputs.TestData(["pdb", .. relative.Split('/')]));
        // Most of a PDB is symbol and type records: mutate only the first and the last blocks too, where the
        // superblock, the directory and the stream headers lie, so that those are hit often.
        var random = new Random(seed);
        int refused = 0;
        for (int i = 0; i < Mutants; i++)
        {
            var bytes = Mutate(original, random);
            refused += ReadsOrRefuses(() =>
            {
                var pdb = PdbFile.Load(bytes, "mutant.pdb");
                foreach (var symbol in pdb.Symbols.Take(200))
                    pdb.FindSymbols(symbol.Name);
                pdb.FindNearestSymbol(0x1234);
                foreach (var type in pdb.UserDefinedTypes.Take(300))
                {
                    _ = type.Size;
                    _ = type.ToString();
                    foreach (var field in type.Fields)
                        _ = field.Type.ToString();
                    pdb.DumpType(type.Name);
                }
            }, $"mutant {i} of {relative}") ? 1 : 0;
        }
        Assert.That(refused, Is.GreaterThan(0), "some mutants were refused: the checks were reached");
    }

    [Test]
    public void Mutated_pdb_headers_are_read_or_refused()
    {
        var original = File.ReadAllBytes(TestInputs.TestData("pdb", "breakpad", "dump_syms_regtest64.pdb"));
        var random = new Random(4);
        int refused = 0;
        for (int i = 0; i < Mutants; i++)
        {
            var bytes = (byte[])original.Clone();
            // The superblock, and the block map and directory at the end of this file.
            int at = random.Next(2) == 0 ? random.Next(64) : bytes.Length - 1 - random.Next(4096);
            bytes[at] = (byte)random.Next(256);
            refused += ReadsOrRefuses(() => PdbFile.Load(bytes, "mutant.pdb").FindType("google_breakpad::C"), $"header mutant {i}") ? 1 : 0;
        }
        Assert.That(refused, Is.GreaterThan(Mutants / 10));
    }

    [TestCase("pe/ntoskrnl.exe", 5)]
    [TestCase("pe/hal.dll", 6)]
    [TestCase("pdb/symbolic/crash.exe", 7)]
    public void Mutated_pe_images_are_read_or_refused(string relative, int seed)
    {
        var original = File.ReadAllBytes(TestInputs.TestData(relative.Split('/')));
        var image = PeImage.Load(original, relative);
        // The headers and the tables (exports, imports, debug) are where a change matters.
        var hot = new List<(int Start, int Length)> { (0, (int)Math.Min(image.SizeOfHeaders, (uint)original.Length)) };
        foreach (var which in new[] { PeDirectory.Export, PeDirectory.Import, PeDirectory.Debug })
        {
            var directory = image.Directory(which);
            if (image.SectionOf(directory.VirtualAddress) is { } section && directory.VirtualAddress != 0)
                hot.Add(((int)(section.PointerToRawData + (directory.VirtualAddress - section.VirtualAddress)), (int)Math.Max(directory.Size, 64u)));
        }
        var random = new Random(seed);
        int refused = 0;
        for (int i = 0; i < Mutants; i++)
        {
            var bytes = (byte[])original.Clone();
            for (int change = random.Next(1, 5); change > 0; change--)
            {
                var (start, length) = hot[random.Next(hot.Count)];
                int at = Math.Min(bytes.Length - 1, start + random.Next(length));
                bytes[at] = random.Next(2) == 0 ? (byte)random.Next(256) : (byte)0xff;
            }
            refused += ReadsOrRefuses(() =>
            {
                var mutant = PeImage.Load(bytes, "mutant.dll");
                mutant.FindExport("PsInitialSystemProcess");
            }, $"mutant {i} of {relative}") ? 1 : 0;
        }
        Assert.That(refused, Is.GreaterThan(Mutants / 20), "a good share of mutants were refused: the checks were reached");
    }

    [TestCase("pe/ntoskrnl.exe", 9)]
    [TestCase("pdb/breakpad/dump_syms_regtest64.exe", 10)]
    public void Mutated_images_in_memory_with_missing_pages_are_read_or_refused(string relative, int seed)
    {
        var random = new Random(seed);
        var path = TestInputs.TestData(relative.Split('/'));
        var file = PeImage.Open(path);
        var hot = new List<uint> { 0 };
        foreach (var which in new[] { PeDirectory.Export, PeDirectory.Import, PeDirectory.Debug })
        {
            if (file.Directory(which).VirtualAddress is not 0 and var rva)
                hot.Add(rva);
        }
        int refused = 0;
        for (int i = 0; i < Mutants / 3; i++)
        {
            const ulong Base = 0xfffff80000000000;
            var memory = new MappedImage(path, Base);
            for (int change = random.Next(1, 5); change > 0; change--)
            {
                uint at = (uint)Math.Min(memory.Size - 1, hot[random.Next(hot.Count)] + random.Next(512));
                memory.Poke(at, random.Next(2) == 0 ? (byte)random.Next(256) : (byte)0xff);
            }
            for (int missing = random.Next(0, 4); missing > 0; missing--)
                memory.Remove((uint)random.Next(memory.Size));
            refused += ReadsOrRefuses(() => PeImage.FromMemory(memory, Base).FindExport("PsInitialSystemProcess"), $"memory mutant {i} of {relative}") ? 1 : 0;
        }
        Assert.That(refused, Is.GreaterThan(0));
    }

    [Test]
    public void Mutated_cabinets_are_expanded_or_refused()
    {
        var pdb = File.ReadAllBytes(TestInputs.TestData("pdb", "HelloWorld.pdb"));
        var cab = CabBuilder.Build("HelloWorld.pdb", pdb, CabBuilder.MsZip, out _);
        var random = new Random(8);
        int refused = 0;
        for (int i = 0; i < Mutants; i++)
        {
            var bytes = Mutate(cab, random);
            refused += ReadsOrRefuses(() =>
            {
                try
                {
                    CabArchive.Extract(bytes, "mutant.pd_", null, Stream.Null);
                }
                catch (NotSupportedException)
                {
                    // A mutated compression type may say LZX: refused by name, as it should be.
                }
            }, $"cabinet mutant {i}") ? 1 : 0;
        }
        Assert.That(refused, Is.GreaterThan(0));
    }
}
