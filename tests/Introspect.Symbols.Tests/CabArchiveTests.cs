using Introspect.Symbols.Store;
using Introspect.TestSupport;

namespace Introspect.Symbols.Tests;

/// <summary>Compressed symbol files (<c>.pd_</c>): cabinets made by gcab and by a makecab-style MSZIP writer.</summary>
public class CabArchiveTests
{
    private static byte[] Pdb() => File.ReadAllBytes(TestInputs.TestData("pdb", "breakpad", "dump_syms_regtest64.pdb"));

    private static byte[] Expand(byte[] cab, string? name = null)
    {
        using var output = new MemoryStream();
        CabArchive.Extract(cab, "test.pd_", name, output);
        return output.ToArray();
    }

    [Test]
    public void A_cabinet_made_by_gcab_expands_to_the_original_pdb()
    {
        var folder = Directory.CreateTempSubdirectory("introspect-cab-").FullName;
        try
        {
            File.Copy(TestInputs.TestData("pdb", "breakpad", "dump_syms_regtest64.pdb"), Path.Combine(folder, "dump_syms_regtest64.pdb"));
            Tools.RunIn(folder, "gcab", "-c", "-z", "dump_syms_regtest64.pd_", "dump_syms_regtest64.pdb");
            var cab = File.ReadAllBytes(Path.Combine(folder, "dump_syms_regtest64.pd_"));

            Assert.That(CabArchive.List(cab, "gcab"), Is.EqualTo(new[] { ("dump_syms_regtest64.pdb", (uint)Pdb().Length) }));
            Assert.That(Expand(cab), Is.EqualTo(Pdb()));
            Assert.That(Expand(cab, "DUMP_SYMS_REGTEST64.PDB"), Is.EqualTo(Pdb()), "names match without case, as on Windows");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Test]
    public void Mszip_blocks_that_refer_to_the_previous_blocks_output_expand()
    {
        var cab = CabBuilder.Build("dump_syms_regtest64.pdb", Pdb(), CabBuilder.MsZip, out int dependent);

        Assert.That(dependent, Is.GreaterThan(0), "some blocks use the history, so this tests it");
        Assert.That(Expand(cab), Is.EqualTo(Pdb()));
    }

    [Test]
    public void An_uncompressed_cabinet_expands()
    {
        var cab = CabBuilder.Build("x.pdb", Pdb(), CabBuilder.None, out _);

        Assert.That(Expand(cab), Is.EqualTo(Pdb()));
    }

    [Test]
    public void An_lzx_cabinet_is_refused_by_name()
    {
        var cab = CabBuilder.Build("x.pdb", Pdb()[..1000], CabBuilder.Lzx, out _);

        var error = Assert.Throws<NotSupportedException>(() => Expand(cab));
        Assert.That(error!.Message, Does.Contain("LZX").And.Contain("test.pd_"));
    }

    [Test]
    public void A_truncated_cabinet_is_refused()
    {
        var cab = CabBuilder.Build("x.pdb", Pdb(), CabBuilder.MsZip, out _);

        var error = Assert.Throws<InvalidDataException>(() => Expand(cab[..(cab.Length / 2)]));
        Assert.That(error!.Message, Does.Contain("test.pd_").And.Contain("truncated"));
    }

    [Test]
    public void Corrupt_mszip_data_is_refused()
    {
        var cab = CabBuilder.Build("x.pdb", Pdb(), CabBuilder.MsZip, out _);
        for (int i = 200; i < 400; i++)
            cab[i] ^= 0x5a;

        Assert.Throws<InvalidDataException>(() => Expand(cab));
    }

    [Test]
    public void Absurd_file_and_folder_counts_are_refused()
    {
        var cab = CabBuilder.Build("x.pdb", Pdb()[..1000], CabBuilder.MsZip, out _);
        cab[28] = 0xff;
        cab[29] = 0xff;

        var error = Assert.Throws<InvalidDataException>(() => Expand(cab));
        Assert.That(error!.Message, Does.Contain("file count").And.Contain("65535"));
    }

    [Test]
    public void Something_that_is_not_a_cabinet_is_refused() =>
        Assert.That(() => Expand(Pdb()), Throws.InstanceOf<InvalidDataException>().With.Message.Contains("MSCF"));
}
