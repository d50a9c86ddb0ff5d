namespace Introspect.Os.Linux.Kernel;

/// <summary>One kernel symbol: its name, <c>nm</c>-style type letter and address.</summary>
internal readonly record struct KernelSymbol(string Name, char Type, ulong Address);

/// <summary>Kernel symbols indexed both ways: name to address, and address to the nearest symbol at or below it.</summary>
/// <remarks>
/// A name may occur several times (static symbols of different files); lookup by name prefers a global symbol (an
/// upper-case type letter) and otherwise takes the first. Naming an address takes the symbol at or below it as long
/// as the address lies before the next symbol, or within a page of the last one, so that addresses far outside the
/// image (module space, user space) are not named after the image's last symbol.
/// </remarks>
internal sealed class SymbolTable
{
    private const ulong TailSlack = 4096;

    private readonly KernelSymbol[] _symbols;
    private readonly int[] _byAddress;
    private readonly Dictionary<string, int> _byName;

    public SymbolTable(IReadOnlyList<KernelSymbol> symbols, string source)
    {
        ArgumentNullException.ThrowIfNull(symbols);
        Source = source;
        _symbols = [.. symbols];
        _byAddress = SortByAddress(_symbols);
        _byName = new Dictionary<string, int>(_symbols.Length, StringComparer.Ordinal);
        for (int i = 0; i < _symbols.Length; i++)
        {
            var symbol = _symbols[i];
            if (!_byName.TryGetValue(symbol.Name, out int existing))
                _byName.Add(symbol.Name, i);
            else if (!char.IsUpper(_symbols[existing].Type) && char.IsUpper(symbol.Type))
                _byName[symbol.Name] = i;
        }
    }

    /// <summary>Indices of the symbols by address; among equal addresses, in table order, so the table decides which name an address gets.</summary>
    private static int[] SortByAddress(KernelSymbol[] symbols)
    {
        var order = new int[symbols.Length];
        var keys = new ulong[symbols.Length];
        bool sorted = true;
        for (int i = 0; i < symbols.Length; i++)
        {
            order[i] = i;
            keys[i] = symbols[i].Address;
            sorted &= i == 0 || keys[i] >= keys[i - 1];
        }
        if (sorted)
            return order; // kallsyms comes sorted by address: nothing to do
        Array.Sort(keys, order);
        // The sort is not stable: put each run of equal addresses back in table order.
        for (int start = 0; start < keys.Length;)
        {
            int end = start + 1;
            while (end < keys.Length && keys[end] == keys[start])
                end++;
            if (end - start > 1)
                Array.Sort(order, start, end - start);
            start = end;
        }
        return order;
    }

    /// <summary>Where the symbols came from (<c>kallsyms</c>, a file name).</summary>
    public string Source { get; }

    public int Count => _symbols.Length;

    public IReadOnlyList<KernelSymbol> Symbols => _symbols;

    public bool TryGetAddress(string name, out ulong address)
    {
        if (_byName.TryGetValue(name, out int index))
        {
            address = _symbols[index].Address;
            return true;
        }
        address = 0;
        return false;
    }

    public bool TryGetSymbol(string name, out KernelSymbol symbol)
    {
        if (_byName.TryGetValue(name, out int index))
        {
            symbol = _symbols[index];
            return true;
        }
        symbol = default;
        return false;
    }

    public bool TryGetName(ulong address, out string name, out ulong displacement)
    {
        name = "";
        displacement = 0;
        int lo = 0, hi = _byAddress.Length - 1, found = -1;
        while (lo <= hi)
        {
            int mid = (int)((uint)(lo + hi) >> 1);
            if (_symbols[_byAddress[mid]].Address <= address)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }
        if (found < 0)
            return false;
        ulong at = _symbols[_byAddress[found]].Address;
        // Among several symbols at this address, the first in table order names it.
        while (found > 0 && _symbols[_byAddress[found - 1]].Address == at)
            found--;
        var symbol = _symbols[_byAddress[found]];
        displacement = address - symbol.Address;
        if (found == _byAddress.Length - 1 || _symbols[_byAddress[^1]].Address == at)
        {
            if (displacement >= TailSlack)
                return false;
        }
        name = symbol.Name;
        return true;
    }

    /// <summary>This table with the symbols of <paramref name="other"/> whose names it lacks.</summary>
    public SymbolTable MergeMissing(SymbolTable other)
    {
        var merged = new List<KernelSymbol>(_symbols);
        foreach (var symbol in other._symbols)
        {
            if (!_byName.ContainsKey(symbol.Name))
                merged.Add(symbol);
        }
        return new SymbolTable(merged, $"{Source} + {other.Source}");
    }
}
