using System.Globalization;
using Introspect.Symbols.Pe;

namespace Introspect.Symbols.Store;

/// <summary>What a symbol store files a file under: its name and an id (a PDB's GUID and age, an image's time stamp
/// and size), and how to tell that a file found is the one asked for.</summary>
public sealed record SymbolFileKey
{
    private SymbolFileKey(string fileName, string id)
    {
        FileName = fileName;
        Id = id;
    }

    /// <summary>The file's name without folders (<c>ntkrnlmp.pdb</c>).</summary>
    public string FileName { get; }

    /// <summary>The store's folder name for this version of the file.</summary>
    public string Id { get; }

    /// <summary>The PDB's GUID, for a PDB key.</summary>
    public Guid? PdbGuid { get; private init; }

    /// <summary>The PDB's age, for a PDB key.</summary>
    public uint PdbAge { get; private init; }

    /// <summary>The image's time stamp, for an image key.</summary>
    public uint? ImageTimeStamp { get; private init; }

    /// <summary>The image's size, for an image key.</summary>
    public uint ImageSize { get; private init; }

    /// <summary>The file's place in a store: <c>name/id/name</c>.</summary>
    public string StorePath => $"{FileName}/{Id}/{FileName}";

    /// <summary>The key of a PDB with a GUID (PDB 7.00).</summary>
    public static SymbolFileKey ForPdb(string pdbName, Guid guid, uint age)
    {
        ArgumentNullException.ThrowIfNull(pdbName);
        return new SymbolFileKey(BaseName(pdbName), PeCodeView.FormatGuid(guid) + age.ToString("X", CultureInfo.InvariantCulture))
        {
            PdbGuid = guid,
            PdbAge = age,
        };
    }

    /// <summary>The key of the PDB an image's CodeView record names.</summary>
    public static SymbolFileKey ForPdb(PeCodeView codeView)
    {
        ArgumentNullException.ThrowIfNull(codeView);
        if (codeView.Format != "RSDS")
            throw new NotSupportedException($"{codeView.PdbPath}: a {codeView.Format} CodeView record names a PDB 2.00 file, which this reader does not read; only RSDS (PDB 7.00) records are supported.");
        return ForPdb(codeView.PdbFileName, codeView.Guid, codeView.Age);
    }

    /// <summary>The key of an image file itself (a store keeps those too).</summary>
    public static SymbolFileKey ForImage(string fileName, uint timeDateStamp, uint sizeOfImage)
    {
        ArgumentNullException.ThrowIfNull(fileName);
        return new SymbolFileKey(BaseName(fileName), $"{timeDateStamp:X8}{sizeOfImage:X}")
        {
            ImageTimeStamp = timeDateStamp,
            ImageSize = sizeOfImage,
        };
    }

    /// <summary>Whether a file's bytes are the file this key names.</summary>
    /// <returns>Null when they are; else why not.</returns>
    internal string? Mismatch(ReadOnlyMemory<byte> bytes, string name)
    {
        try
        {
            if (PdbGuid is { } guid)
            {
                var (found, age) = Pdb.PdbFile.ReadIdentity(bytes, name);
                return found == guid && age == PdbAge ? null : $"it is the PDB {PeCodeView.FormatGuid(found)} age {age}, not {Id}";
            }
            var image = PeImage.Load(bytes, name);
            return image.TimeDateStamp == ImageTimeStamp && image.SizeOfImage == ImageSize ? null : $"it is the image {image.ImageStoreId}, not {Id}";
        }
        catch (InvalidDataException e)
        {
            return $"it is not a well-formed {(PdbGuid is null ? "image" : "PDB")} ({e.Message})";
        }
    }

    private static string BaseName(string path) => path[(path.LastIndexOfAny(['\\', '/']) + 1)..];

    public override string ToString() => StorePath;
}
