using Introspect.Core.Translation;

namespace Introspect.Core.Caching;

/// <summary>A translation lookaside buffer: recent page translations keyed by (address-space root, virtual page).</summary>
/// <remarks>
/// Bounded (4-way set associative, the oldest way of a full set is replaced), thread-safe, and judged by a
/// <see cref="CacheValidity"/> like the page cache. One buffer may serve many address spaces: the root (the
/// page-table base) is part of the key. A 4 KiB page takes one entry; a large page (2 MiB, 1 GiB, 4 MiB) takes one
/// entry per 2 MiB of it that is used, so a big direct map does not flood the buffer.
/// </remarks>
public sealed class TranslationCache
{
    private const int Ways = 4;
    private const int LockStripes = 64;
    private const ulong PageMask = PagingArchitecture.PageSize - 1;
    private const ulong LargeGranuleMask = (2UL << 20) - 1;
    private const ulong LargeKeyTag = 1; // keys are 4 KiB aligned, so bit 0 tells a large-page key from a page key

    private readonly Entry[] _entries;
    private readonly byte[] _nextWay;
    private readonly Lock[] _locks;
    private readonly int _setMask;
    private readonly CacheValidity _validity;
    private readonly MemoryMetrics? _metrics;
    private long _hits;
    private long _misses;
    private volatile bool _holdsLargePages;

    /// <param name="capacity">How many translations to hold at most, rounded up to a power of two (at least 4).</param>
    /// <param name="validity">How long a translation may be used.</param>
    /// <param name="metrics">Where to count hits and misses, if anywhere.</param>
    public TranslationCache(int capacity, CacheValidity validity, MemoryMetrics? metrics = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(capacity, 1 << 26);
        ArgumentNullException.ThrowIfNull(validity);
        int sets = (int)Math.Max(1, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)capacity) / Ways);
        _entries = new Entry[sets * Ways];
        _nextWay = new byte[sets];
        _setMask = sets - 1;
        _locks = new Lock[Math.Min(LockStripes, sets)];
        for (int i = 0; i < _locks.Length; i++)
            _locks[i] = new Lock();
        _validity = validity;
        _metrics = metrics;
    }

    /// <summary>The most translations the buffer holds.</summary>
    public int Capacity => _entries.Length;

    public CacheValidity Validity => _validity;

    public long Hits => Volatile.Read(ref _hits);

    public long Misses => Volatile.Read(ref _misses);

    /// <summary>Looks up the translation of <paramref name="virtualAddress"/> in the address space rooted at <paramref name="root"/>.</summary>
    public bool TryGet(ulong root, ulong virtualAddress, out PageTranslation translation)
    {
        if (Probe(root, virtualAddress & ~PageMask, virtualAddress, PageMask, out translation)
            || (_holdsLargePages && Probe(root, (virtualAddress & ~LargeGranuleMask) | LargeKeyTag, virtualAddress, LargeGranuleMask, out translation)))
        {
            Interlocked.Increment(ref _hits);
            _metrics?.AddTlb(1, 0);
            return true;
        }
        Interlocked.Increment(ref _misses);
        _metrics?.AddTlb(0, 1);
        return false;
    }

    private bool Probe(ulong root, ulong key, ulong virtualAddress, ulong offsetMask, out PageTranslation translation)
    {
        int set = SetOf(root, key);
        lock (_locks[set & (_locks.Length - 1)])
        {
            var ways = _entries.AsSpan(set * Ways, Ways);
            for (int w = 0; w < Ways; w++)
            {
                ref var entry = ref ways[w];
                if (entry.Used && entry.Key == key && entry.Root == root)
                {
                    if (!_validity.IsValid(entry.Stamp))
                    {
                        entry.Used = false;
                        break;
                    }
                    translation = new PageTranslation(virtualAddress, unchecked(entry.Physical + (virtualAddress & offsetMask)), entry.PageSize, entry.Flags);
                    return true;
                }
            }
        }
        translation = default;
        return false;
    }

    /// <summary>Remembers the translation of the page holding <paramref name="translation"/>'s virtual address.</summary>
    /// <param name="root">The address space's root (its page-table base).</param>
    /// <param name="translation">A translation a walk produced.</param>
    /// <param name="stamp">The validity stamp taken before the walk began (<see cref="CacheValidity.Stamp"/>).</param>
    public void Add(ulong root, in PageTranslation translation, long stamp)
    {
        bool large = translation.PageSize > LargeGranuleMask;
        ulong offsetMask = large ? LargeGranuleMask : PageMask;
        ulong key = large ? (translation.VirtualAddress & ~LargeGranuleMask) | LargeKeyTag : translation.VirtualAddress & ~PageMask;
        ulong physical = unchecked(translation.PhysicalAddress - (translation.VirtualAddress & offsetMask));
        int set = SetOf(root, key);
        lock (_locks[set & (_locks.Length - 1)])
        {
            var ways = _entries.AsSpan(set * Ways, Ways);
            int target = -1;
            for (int w = 0; w < Ways; w++)
            {
                ref readonly var entry = ref ways[w];
                if (entry.Used && entry.Key == key && entry.Root == root)
                {
                    target = w;
                    break;
                }
                if (!entry.Used && target < 0)
                    target = w;
            }
            if (target < 0)
            {
                target = _nextWay[set];
                _nextWay[set] = (byte)((target + 1) & (Ways - 1));
            }
            ways[target] = new Entry
            {
                Root = root,
                Key = key,
                Physical = physical,
                PageSize = translation.PageSize,
                Flags = translation.Flags,
                Stamp = stamp,
                Used = true,
            };
        }
        if (large)
            _holdsLargePages = true;
    }

    /// <summary>Remembers a translation, stamped now.</summary>
    public void Add(ulong root, in PageTranslation translation) => Add(root, translation, _validity.Stamp());

    /// <summary>Forgets every translation.</summary>
    public void Clear()
    {
        for (int stripe = 0; stripe < _locks.Length; stripe++)
        {
            lock (_locks[stripe])
            {
                for (int set = stripe; set <= _setMask; set += _locks.Length)
                    _entries.AsSpan(set * Ways, Ways).Clear();
            }
        }
    }

    /// <summary>A stamp for translations a walk is about to produce.</summary>
    internal long Stamp() => _validity.Stamp();

    private int SetOf(ulong root, ulong key)
    {
        // Fibonacci hashing mixes the page number with the root, so address spaces do not fight over the same sets.
        ulong hash = unchecked(((key >> 12 | key << 63) ^ (root * 0x9E3779B97F4A7C15UL)) * 0x9E3779B97F4A7C15UL);
        return (int)(hash >> 40) & _setMask;
    }

    private struct Entry
    {
        public ulong Root;
        public ulong Key;
        public ulong Physical;
        public ulong PageSize;
        public long Stamp;
        public PageFlags Flags;
        public bool Used;
    }
}
