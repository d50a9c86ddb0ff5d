using System.Text;

namespace Introspect.Core.Vfs;

/// <summary>One entry of a directory of the virtual file system.</summary>
/// <param name="Name">The entry's name (no slashes).</param>
/// <param name="IsDirectory">Whether it is a directory.</param>
/// <param name="Size">A file's length in bytes; 0 for a directory.</param>
/// <param name="IsWritable">Whether writes are accepted (a configuration value, memory when the chain allows writes).</param>
public readonly record struct VfsEntry(string Name, bool IsDirectory, ulong Size, bool IsWritable);

/// <summary>The machine as files, in MemProcFS's shape: <c>/memory.pmem</c>, <c>/pid/PID/</c>, <c>/name/NAME-PID/</c>, <c>/sys/</c>, <c>/conf/</c>, <c>/vm/</c>.</summary>
/// <remarks>
/// <para>
/// Paths are absolute, separated by <c>/</c>; an empty path or <c>/</c> is the root. Directories are built when first
/// listed and rebuilt when the machine's snapshot changes (a refresh, or the refresh period passing); text files are
/// made when first read. Memory files (<c>memory.pmem</c>, <c>memory.vmem</c>) read through to the machine with
/// unreadable pages as zeros, as MemProcFS does, so a file's length is its address space's.
/// </para>
/// <para>Safe to use from several threads: each file serves reads on its own, the lists behind them are taken under the machine's lock.</para>
/// </remarks>
public sealed class VirtualFileSystem
{
    private readonly VfsDirectory _root;

    internal VirtualFileSystem(VfsDirectory root) => _root = root;

    /// <summary>The entry at <paramref name="path"/>, or null when there is none.</summary>
    public VfsEntry? GetEntry(string path)
    {
        var node = Resolve(path);
        return node is null ? null : EntryOf(node);
    }

    /// <summary>The entries of the directory at <paramref name="path"/>, in a stable order.</summary>
    /// <exception cref="DirectoryNotFoundException">There is no directory at <paramref name="path"/>.</exception>
    public IReadOnlyList<VfsEntry> List(string path)
    {
        if (Resolve(path) is not VfsDirectory directory)
            throw new DirectoryNotFoundException($"The virtual file system has no directory '{path}'.");
        var children = directory.Children;
        var entries = new VfsEntry[children.Count];
        for (int i = 0; i < entries.Length; i++)
            entries[i] = EntryOf(children[i]);
        return entries;
    }

    /// <summary>Opens the file at <paramref name="path"/> for repeated reads and writes.</summary>
    /// <returns>The file, or null when there is no file at <paramref name="path"/> (nothing, or a directory).</returns>
    public VfsFile? TryOpen(string path) => Resolve(path) is VfsFileNode file ? new VfsFile(file) : null;

    /// <summary>Opens the file at <paramref name="path"/>.</summary>
    /// <exception cref="FileNotFoundException">There is no file at <paramref name="path"/>.</exception>
    public VfsFile Open(string path) =>
        TryOpen(path) ?? throw new FileNotFoundException($"The virtual file system has no file '{path}'.", path);

    /// <summary>Reads from the file at <paramref name="path"/> into <paramref name="destination"/>, from <paramref name="offset"/>.</summary>
    /// <returns>How many bytes were read: fewer than asked only at the end of the file.</returns>
    /// <exception cref="FileNotFoundException">There is no file at <paramref name="path"/>.</exception>
    public int Read(string path, Span<byte> destination, ulong offset = 0) => Open(path).Read(destination, offset);

    /// <summary>Reads <paramref name="length"/> bytes (all that is left when negative) from <paramref name="offset"/> of the file at <paramref name="path"/> (MemProcFS's <c>vfs.read</c>).</summary>
    /// <exception cref="FileNotFoundException">There is no file at <paramref name="path"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The rest of the file is too large for one array and no length was given.</exception>
    public byte[] Read(string path, ulong offset = 0, int length = -1)
    {
        var file = Open(path);
        ulong size = file.Size;
        ulong available = offset < size ? size - offset : 0;
        if (length < 0)
        {
            if (available > (ulong)Array.MaxLength)
                throw new ArgumentOutOfRangeException(nameof(length), $"'{path}' has {available} bytes from offset {offset}, more than one array holds; give a length.");
            length = (int)available;
        }
        var buffer = new byte[(int)Math.Min((ulong)length, available)];
        int read = file.Read(buffer, offset);
        return read == buffer.Length ? buffer : buffer[..read];
    }

    /// <summary>The whole text of the file at <paramref name="path"/>, as UTF-8.</summary>
    /// <exception cref="FileNotFoundException">There is no file at <paramref name="path"/>.</exception>
    public string ReadText(string path) => Encoding.UTF8.GetString(Read(path));

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/> of the file at <paramref name="path"/> (MemProcFS's <c>vfs.write</c>).</summary>
    /// <returns>How many bytes were written.</returns>
    /// <exception cref="FileNotFoundException">There is no file at <paramref name="path"/>.</exception>
    /// <exception cref="UnauthorizedAccessException">The file is read-only.</exception>
    /// <exception cref="ArgumentException">The data is not a value the file accepts (a configuration file's message says which).</exception>
    public int Write(string path, ReadOnlySpan<byte> data, ulong offset = 0) => Open(path).Write(data, offset);

    internal VfsNode? Resolve(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        VfsNode node = _root;
        foreach (var part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == ".")
                continue;
            if (node is not VfsDirectory directory || directory.Find(part) is not { } child)
                return null;
            node = child;
        }
        return node;
    }

    private static VfsEntry EntryOf(VfsNode node) => node switch
    {
        VfsFileNode file => new VfsEntry(node.Name, false, file.Size, file.IsWritable),
        _ => new VfsEntry(node.Name, true, 0, false),
    };
}

/// <summary>An opened file of the virtual file system: reads and writes at offsets, without looking the path up again.</summary>
public sealed class VfsFile
{
    private readonly VfsFileNode _node;

    internal VfsFile(VfsFileNode node) => _node = node;

    public string Name => _node.Name;

    /// <summary>The file's length now (a text file's may change after a refresh).</summary>
    public ulong Size => _node.Size;

    public bool IsWritable => _node.IsWritable;

    /// <summary>Whether the file's bytes are memory read on demand (and may change between reads), rather than text made once.</summary>
    public bool IsLive => _node.IsLive;

    /// <summary>Reads from <paramref name="offset"/> into <paramref name="destination"/>.</summary>
    /// <returns>How many bytes were read: fewer than asked only at the end of the file. Never throws for unreadable memory (it reads as zeros).</returns>
    public int Read(Span<byte> destination, ulong offset)
    {
        if (destination.IsEmpty)
            return 0;
        return _node.Read(offset, destination);
    }

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/>.</summary>
    /// <returns>How many bytes were written.</returns>
    /// <exception cref="UnauthorizedAccessException">The file is read-only.</exception>
    /// <exception cref="ArgumentException">The data is not a value the file accepts.</exception>
    public int Write(ReadOnlySpan<byte> data, ulong offset)
    {
        if (!_node.IsWritable)
            throw new UnauthorizedAccessException($"'{_node.Name}' is read-only.");
        return _node.Write(offset, data);
    }
}
