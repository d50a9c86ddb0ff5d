namespace Introspect.Abi;

/// <summary>The physical memory of a machine, as a connector serves it.</summary>
public interface IPhysicalMemory : IMemory, IDisposable
{
    PhysicalMemoryMetadata Metadata { get; }

    /// <summary>Where RAM is, and where in the connector's own backing each range is found.</summary>
    MemoryMap MemoryMap { get; }

    /// <summary>Replaces the memory map with what a layer above learned (memflow's <c>set_mem_map</c>).</summary>
    /// <remarks>Addresses outside the new map fail to read from then on.</remarks>
    void SetMemoryMap(MemoryMap map);
}

/// <summary>What a physical memory says about itself.</summary>
/// <param name="MaxAddress">The highest address that may be readable (inclusive).</param>
/// <param name="RealSize">How many bytes of memory are really backed.</param>
/// <param name="ReadOnly">Whether writes are refused.</param>
/// <param name="IdealBatchSize">How many entries a batch should hold for the best throughput.</param>
public readonly record struct PhysicalMemoryMetadata(ulong MaxAddress, ulong RealSize, bool ReadOnly, int IdealBatchSize);
