using Introspect.Abi;

namespace Introspect.Remote.Client;

/// <summary>A server's physical memory, read over the network: the <c>remote</c> connector.</summary>
/// <remarks>
/// <para>A batch is one request and one reply however many entries it holds (within the server's limits; past
/// them it is split into requests sent together). Unreadable memory fails its entries as anywhere else; a server
/// that cannot be reached makes the read throw an <see cref="IOException"/> that says so, since that is no
/// property of the memory. The next read connects again.</para>
/// <para>The memory map starts as the server's, in the server's own physical addresses. A map set with
/// <see cref="SetMemoryMap"/> is applied here: addresses are translated through it (its backing addresses are the
/// server's physical addresses) and those outside it fail without a request.</para>
/// </remarks>
internal sealed class RemotePhysicalMemory : IPhysicalMemory, IConnectorHints
{
    /// <summary>A round trip costs far more than an entry: batches over the network should be large.</summary>
    private const int MinimumIdealBatch = 1024;

    private MemoryMap _map;
    private MemoryMap? _remap;

    public RemotePhysicalMemory(RemoteLink link)
    {
        Link = link;
        _map = link.Description.ToMemoryMap(link.Peer);
        var description = link.Description;
        var welcome = link.Welcome;
        int ideal = Math.Clamp(Math.Max(description.IdealBatchSize, MinimumIdealBatch), 1, welcome.MaxBatchEntries);
        bool readOnly = description.ReadOnly || (welcome.Features & Protocol.ServerFeatures.Writable) == 0;
        Metadata = new PhysicalMemoryMetadata(description.MaxAddress, description.RealSize, readOnly, ideal);
        Hints = description.Hints ?? ConnectorHints.None;
    }

    internal RemoteLink Link { get; }

    public PhysicalMemoryMetadata Metadata { get; }

    public MemoryMap MemoryMap => _map;

    public ConnectorHints Hints { get; }

    public void SetMemoryMap(MemoryMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        _map = map;
        _remap = map;
    }

    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) =>
        Link.Transfer(batch, flags, pid: null, _remap, write: false);

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        if (Metadata.ReadOnly)
            throw new NotSupportedException($"{Link.Peer} is read-only: the server writes only when started with --allow-write over a writable memory.");
        Link.Transfer(batch, flags, pid: null, _remap, write: true);
    }

    public void Dispose() => Link.Dispose();
}
