using System.Text;
using Introspect.Abi;
using Introspect.Core.Memory;

namespace Introspect.Core.Vfs;

/// <summary>A file or directory of the virtual file system.</summary>
internal abstract class VfsNode(string name)
{
    public string Name { get; } = name;
}

/// <summary>A directory whose children are made on demand and made again when its version changes.</summary>
/// <remarks>
/// The version is any object (the machine's process snapshot, say); the children are rebuilt when it is no longer the
/// same object. Names that are not listed can still be found through a lookup (kernel symbols by name, which are
/// too many to list).
/// </remarks>
internal sealed class VfsDirectory : VfsNode
{
    private readonly Func<object?> _version;
    private readonly Func<IEnumerable<VfsNode>> _build;
    private readonly Func<string, VfsNode?>? _lookup;
    private readonly Lock _gate = new();
    private Snapshot? _snapshot;

    public VfsDirectory(string name, Func<object?> version, Func<IEnumerable<VfsNode>> build, Func<string, VfsNode?>? lookup = null)
        : base(name)
    {
        _version = version;
        _build = build;
        _lookup = lookup;
    }

    /// <summary>A directory of fixed children.</summary>
    public VfsDirectory(string name, params VfsNode[] children) : this(name, static () => null, () => children) { }

    public IReadOnlyList<VfsNode> Children => Current().Ordered;

    public VfsNode? Find(string name)
    {
        if (Current().ByName.TryGetValue(name, out var child))
            return child;
        return _lookup?.Invoke(name);
    }

    private Snapshot Current()
    {
        var version = _version();
        var snapshot = Volatile.Read(ref _snapshot);
        if (snapshot is not null && ReferenceEquals(snapshot.Version, version))
            return snapshot;
        lock (_gate)
        {
            if (_snapshot is not null && ReferenceEquals(_snapshot.Version, version))
                return _snapshot;
            var ordered = new List<VfsNode>();
            var byName = new Dictionary<string, VfsNode>(StringComparer.Ordinal);
            foreach (var child in _build())
            {
                // Two children may want one name (two modules of one name); the later one gets a suffix rather than vanish.
                var name = child.Name;
                if (byName.TryAdd(name, child))
                {
                    ordered.Add(child);
                    continue;
                }
                for (int n = 2; ; n++)
                {
                    var renamed = Renamed(child, $"{name}~{n}");
                    if (renamed is null)
                        break;
                    if (byName.TryAdd(renamed.Name, renamed))
                    {
                        ordered.Add(renamed);
                        break;
                    }
                }
            }
            _snapshot = new Snapshot(version, byName, ordered.ToArray());
            return _snapshot;
        }
    }

    private static VfsNode? Renamed(VfsNode node, string name) => node switch
    {
        VfsDirectory directory => new VfsDirectory(name, directory._version, directory._build, directory._lookup),
        VfsFileNode file => new VfsRenamedFile(name, file),
        _ => null,
    };

    private sealed record Snapshot(object? Version, Dictionary<string, VfsNode> ByName, VfsNode[] Ordered);
}

/// <summary>A file: a length, reads at an offset, and writes where it takes them.</summary>
internal abstract class VfsFileNode(string name) : VfsNode(name)
{
    public abstract ulong Size { get; }

    public virtual bool IsWritable => false;

    /// <summary>Memory read on demand rather than text made once: such files should not be cached by whoever serves them.</summary>
    public virtual bool IsLive => false;

    /// <summary>Reads from <paramref name="offset"/>; returns how many bytes were read (0 at or past the end).</summary>
    public abstract int Read(ulong offset, Span<byte> destination);

    public virtual int Write(ulong offset, ReadOnlySpan<byte> data) =>
        throw new UnauthorizedAccessException($"'{Name}' is read-only.");

    /// <summary>How many of <paramref name="wanted"/> bytes from <paramref name="offset"/> lie inside <paramref name="size"/>.</summary>
    protected static int Clamp(ulong offset, int wanted, ulong size) =>
        offset >= size ? 0 : (int)Math.Min((ulong)wanted, size - offset);
}

/// <summary>Another name for a file (two children of a directory that wanted one name).</summary>
internal sealed class VfsRenamedFile(string name, VfsFileNode inner) : VfsFileNode(name)
{
    public override ulong Size => inner.Size;

    public override bool IsWritable => inner.IsWritable;

    public override bool IsLive => inner.IsLive;

    public override int Read(ulong offset, Span<byte> destination) => inner.Read(offset, destination);

    public override int Write(ulong offset, ReadOnlySpan<byte> data) => inner.Write(offset, data);
}

/// <summary>A text file made when first read (or when its length is first asked), and kept while its version holds.</summary>
internal sealed class VfsTextFile : VfsFileNode
{
    private readonly Func<string> _content;
    private readonly Func<object?> _version;
    private (object? Version, byte[] Bytes)? _cached;

    public VfsTextFile(string name, Func<string> content, Func<object?>? version = null) : base(name)
    {
        _content = content;
        _version = version ?? (static () => null);
    }

    /// <summary>A text file of fixed content.</summary>
    public static VfsTextFile Of(string name, string content) => new(name, () => content);

    public override ulong Size => (ulong)Bytes().Length;

    public override int Read(ulong offset, Span<byte> destination)
    {
        var bytes = Bytes();
        int length = Clamp(offset, destination.Length, (ulong)bytes.Length);
        bytes.AsSpan((int)offset, length).CopyTo(destination);
        return length;
    }

    private byte[] Bytes()
    {
        var version = _version();
        var cached = _cached;
        if (cached is { } hit && ReferenceEquals(hit.Version, version))
            return hit.Bytes;
        string text;
        try
        {
            text = _content();
        }
        catch (Exception e) when (e is InvalidDataException or IOException or NotSupportedException)
        {
            // A file that cannot be made says why instead of failing every read (the way MemProcFS's files do).
            text = $"unavailable: {e.Message}\n";
        }
        var bytes = Encoding.UTF8.GetBytes(text);
        _cached = (version, bytes);
        return bytes;
    }
}

/// <summary>A window of memory as a file: offset 0 is <see cref="_start"/>; unreadable pages read as zeros.</summary>
internal sealed class VfsMemoryFile(string name, IMemory memory, ulong start, ulong size, bool writable) : VfsFileNode(name)
{
    private readonly ulong _start = start;

    public override ulong Size => size;

    public override bool IsWritable => writable;

    public override bool IsLive => true;

    public override int Read(ulong offset, Span<byte> destination)
    {
        int length = Clamp(offset, destination.Length, size);
        if (length == 0)
            return 0;
        return memory.Read(_start + offset, destination[..length], MemoryFlags.ZeroPadOnFail);
    }

    public override int Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (!writable)
            return base.Write(offset, data);
        int length = Clamp(offset, data.Length, size);
        if (length == 0)
            return 0;
        return MemoryWrites.Write(memory, _start + offset, data[..length]);
    }
}

/// <summary>A file that reads and writes one value through delegates (a configuration value).</summary>
internal sealed class VfsValueFile(string name, Func<string> read, Action<string>? write) : VfsFileNode(name)
{
    public override ulong Size => (ulong)Encoding.UTF8.GetByteCount(read());

    public override bool IsWritable => write is not null;

    public override bool IsLive => true;

    public override int Read(ulong offset, Span<byte> destination)
    {
        var bytes = Encoding.UTF8.GetBytes(read());
        int length = Clamp(offset, destination.Length, (ulong)bytes.Length);
        bytes.AsSpan((int)offset, length).CopyTo(destination);
        return length;
    }

    /// <remarks>
    /// A value is written whole, at offset 0, the way <c>echo 5000 &gt; file</c> writes it; surrounding white space
    /// is ignored. A write elsewhere would splice digits into the old value, which is never what was meant.
    /// </remarks>
    public override int Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (write is null)
            return base.Write(offset, data);
        if (offset != 0)
            throw new ArgumentException($"'{Name}' takes a whole value written at offset 0; a write at offset {offset} was refused.");
        write(Encoding.UTF8.GetString(data).Trim());
        return data.Length;
    }
}
