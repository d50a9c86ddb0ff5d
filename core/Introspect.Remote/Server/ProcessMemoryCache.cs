using System.Diagnostics;
using Introspect.Abi;

namespace Introspect.Remote.Server;

/// <summary>One client's recently used processes and their opened memory, so a stream of virtual reads does not look the process up each time.</summary>
/// <remarks>
/// Entries live for a few seconds: long enough for a burst of reads, short enough that on a live machine a pid
/// that exited and was reused is seen afresh. A miss asks the OS layer, under the server's OS lock.
/// </remarks>
internal sealed class ProcessMemoryCache(RemoteServer server) : IDisposable
{
    private const int Capacity = 64;
    private static readonly long Lifetime = Stopwatch.Frequency * 5;

    private readonly Lock _lock = new();
    private readonly Dictionary<ulong, (ProcessInfo Process, IVirtualMemory Memory, long Expires)> _entries = [];

    /// <summary>The process and its memory, or null when the OS has no such process.</summary>
    public (ProcessInfo Process, IVirtualMemory Memory)? Get(ulong pid)
    {
        long now = Stopwatch.GetTimestamp();
        lock (_lock)
        {
            if (_entries.TryGetValue(pid, out var entry) && entry.Expires > now)
                return (entry.Process, entry.Memory);
        }
        var system = server.OperatingSystem!;
        ProcessInfo? process;
        IVirtualMemory? memory = null;
        lock (server.OperatingSystemLock)
        {
            process = system.GetProcess(pid);
            if (process is not null)
                memory = system.OpenProcessMemory(process);
        }
        if (process is null)
            return null;
        lock (_lock)
        {
            if (_entries.Count >= Capacity)
                Evict(now);
            _entries[pid] = (process, memory!, now + Lifetime);
        }
        return (process, memory!);
    }

    private void Evict(long now)
    {
        foreach (var (pid, entry) in _entries.ToList())
        {
            if (entry.Expires <= now)
                Remove(pid);
        }
        if (_entries.Count >= Capacity)
        {
            foreach (var pid in _entries.Keys.ToList())
                Remove(pid);
        }
    }

    // The contract gives process memories no lifetime of their own (the OS layer owns them), so a dropped entry is just forgotten.
    private void Remove(ulong pid) => _entries.Remove(pid);

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var pid in _entries.Keys.ToList())
                Remove(pid);
        }
    }
}
