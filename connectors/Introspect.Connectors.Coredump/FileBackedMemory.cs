using Introspect.Abi;
using Introspect.Connectors.Coredump.IO;

namespace Introspect.Connectors.Coredump;

/// <summary>A dump whose pages lie uncompressed in the file: raw, ELF, LiME and Microsoft crash dumps.</summary>
/// <remarks>
/// The memory map's backing address is the file offset. A read is a map lookup, a bounds check
/// and a copy out of the mapped file. A replaced map may point anywhere: what lies past the end
/// of the file fails to read.
/// </remarks>
internal sealed class FileBackedMemory(MappedFile file, MemoryMap map, ConnectorHints hints)
    : DumpMemory(file.Name, map, hints, IdealBatch)
{
    private const int IdealBatch = 1024;

    protected override bool ReadBacking(ulong backing, Span<byte> destination, MemoryFlags flags, bool zeroPad)
    {
        if (file.TryRead(backing, destination))
            return true;
        if (!zeroPad)
            return false;
        // Serve what the file holds and zero the rest.
        ulong held = backing < file.Length ? file.Length - backing : 0;
        int count = held < (ulong)destination.Length ? (int)held : destination.Length;
        if (count > 0 && !file.TryRead(backing, destination[..count]))
            return false;
        destination[count..].Clear();
        return true;
    }

    protected override void EnterBatch() => file.Enter();

    protected override void ExitBatch() => file.Exit();

    public override void Dispose() => file.Dispose();
}
