using System.Buffers.Binary;
using System.Net;
using Introspect.Abi;

namespace Introspect.Core;

/// <summary>Finds the sockets Linux processes hold, through the kernel's types: task → files → fdtable → file → socket → sock.</summary>
/// <remarks>
/// A file is a socket when its <c>f_op</c> is <c>socket_file_ops</c>; its <c>private_data</c> is then the
/// <c>struct socket</c>, whose <c>sk</c> holds family, state, addresses and ports in <c>struct sock_common</c>.
/// Every count read from the guest is capped, every pointer is read with a failure path: a torn table ends that
/// process's walk, never the list.
/// </remarks>
internal static class LinuxSockets
{
    /// <summary>The most file descriptors looked at per process (the kernel's default hard limit is 4096; a million is absurd).</summary>
    private const uint MaxFds = 1 << 16;

    private const int AfUnix = 1, AfInet = 2, AfInet6 = 10, AfNetlink = 16, AfPacket = 17;

    public static MapResult<NetworkSocket> Find(Machine machine, MachineKernel kernel)
    {
        var symbols = kernel.Symbols;
        if (!symbols.HasTypes)
            return MapResult<NetworkSocket>.Unavailable("the linux layer offers no kernel types (BTF), which finding sockets needs.");
        if (!symbols.TryGetSymbolAddress("socket_file_ops", out var socketFileOps))
            return MapResult<NetworkSocket>.Unavailable("the kernel's symbols have no 'socket_file_ops', by which a file is known to be a socket.");
        var layout = Layout.Create(symbols, out var missing);
        if (layout is null)
            return MapResult<NetworkSocket>.Unavailable($"the kernel's types lack {missing}.");
        int pointerSize = kernel.Architecture is MachineArchitecture.X86 or MachineArchitecture.X86Pae ? 4 : 8;
        var memory = kernel.Memory;

        var sockets = new List<NetworkSocket>();
        var seenSocks = new HashSet<ulong>();
        var seenTables = new HashSet<ulong>();
        foreach (var process in machine.GetProcesses().OrderBy(p => p.Pid))
        {
            ulong task = process.Info.KernelObject;
            if (process.IsKernelThread || task == 0)
                continue;
            if (!TryPointer(memory, task + layout.TaskFiles, pointerSize, out var files) || files == 0)
                continue;
            // Threads and CLONE_FILES children share one table: walk it once, for the lowest pid.
            if (!seenTables.Add(files))
                continue;
            if (!TryPointer(memory, files + layout.FilesFdt, pointerSize, out var fdt) || fdt == 0)
                continue;
            if (!memory.TryRead<uint>(fdt + layout.FdtMaxFds, out var maxFds) || !TryPointer(memory, fdt + layout.FdtFd, pointerSize, out var fdArray) || fdArray == 0)
                continue;
            int count = (int)Math.Min(maxFds, MaxFds);
            var table = new byte[count * pointerSize];
            if (memory.Read(fdArray, table) != table.Length)
                continue;
            for (int fd = 0; fd < count; fd++)
            {
                ulong file = pointerSize == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(table.AsSpan(fd * 8)) : BinaryPrimitives.ReadUInt32LittleEndian(table.AsSpan(fd * 4));
                if (file == 0)
                    continue;
                if (!TryPointer(memory, file + layout.FileOps, pointerSize, out var fileOps) || fileOps != socketFileOps)
                    continue;
                if (!TryPointer(memory, file + layout.FilePrivateData, pointerSize, out var socket) || socket == 0)
                    continue;
                if (!TryPointer(memory, socket + layout.SocketSk, pointerSize, out var sock) || sock == 0 || !seenSocks.Add(sock))
                    continue;
                if (Describe(memory, layout, process.Pid, fd, socket, sock) is { } found)
                    sockets.Add(found);
            }
        }
        return MapResult<NetworkSocket>.Available(sockets);
    }

    private static NetworkSocket? Describe(MachineVirtualMemory memory, Layout layout, ulong pid, int fd, ulong socket, ulong sock)
    {
        if (!memory.TryRead<ushort>(sock + layout.Family, out var family) || !memory.TryRead<byte>(sock + layout.State, out var state))
            return null;
        memory.TryRead<short>(socket + layout.SocketType, out var type);
        ushort protocol = 0;
        if (layout.Protocol is { } protocolOffset)
            memory.TryRead(sock + protocolOffset, out protocol);
        IPEndPoint? local = null, remote = null;
        if (family == AfInet || family == AfInet6)
        {
            memory.TryRead<ushort>(sock + layout.LocalPort, out var localPort);
            memory.TryRead<ushort>(sock + layout.RemotePort, out var remotePortBigEndian);
            ushort remotePort = BinaryPrimitives.ReverseEndianness(remotePortBigEndian);
            if (family == AfInet)
            {
                var localAddress = memory.Read(sock + layout.LocalAddress, 4);
                var remoteAddress = memory.Read(sock + layout.RemoteAddress, 4);
                if (localAddress.Length == 4 && remoteAddress.Length == 4)
                {
                    local = new IPEndPoint(new IPAddress(localAddress), localPort);
                    remote = new IPEndPoint(new IPAddress(remoteAddress), remotePort);
                }
            }
            else if (layout.LocalAddress6 is { } local6 && layout.RemoteAddress6 is { } remote6)
            {
                var localAddress = memory.Read(sock + local6, 16);
                var remoteAddress = memory.Read(sock + remote6, 16);
                if (localAddress.Length == 16 && remoteAddress.Length == 16)
                {
                    local = new IPEndPoint(new IPAddress(localAddress), localPort);
                    remote = new IPEndPoint(new IPAddress(remoteAddress), remotePort);
                }
            }
        }
        bool inet = family is AfInet or AfInet6;
        return new NetworkSocket(pid, fd, FamilyName(family), TypeName(type), inet ? ProtocolName(protocol) : null,
            inet ? TcpStateName(state) : state.ToString(System.Globalization.CultureInfo.InvariantCulture), local, remote, sock);
    }

    private static bool TryPointer(MachineVirtualMemory memory, ulong address, int pointerSize, out ulong value)
    {
        if (pointerSize == 8)
            return memory.TryRead(address, out value);
        bool read = memory.TryRead<uint>(address, out var narrow);
        value = narrow;
        return read;
    }

    private static string FamilyName(ushort family) => family switch
    {
        AfUnix => "unix",
        AfInet => "inet",
        AfInet6 => "inet6",
        AfNetlink => "netlink",
        AfPacket => "packet",
        _ => family.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    private static string TypeName(short type) => type switch
    {
        1 => "stream",
        2 => "dgram",
        3 => "raw",
        4 => "rdm",
        5 => "seqpacket",
        10 => "packet",
        _ => type.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    private static string ProtocolName(ushort protocol) => protocol switch
    {
        1 => "icmp",
        6 => "tcp",
        17 => "udp",
        58 => "icmpv6",
        132 => "sctp",
        _ => protocol.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>The names of include/net/tcp_states.h, which UDP sockets reuse (7 is an unconnected UDP socket).</summary>
    private static string TcpStateName(byte state) => state switch
    {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        _ => state.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>The offsets the walk needs, from the kernel's types; fields of <c>struct sock</c> are relative to the sock.</summary>
    private sealed record Layout(
        ulong TaskFiles, ulong FilesFdt, ulong FdtMaxFds, ulong FdtFd, ulong FileOps, ulong FilePrivateData,
        ulong SocketType, ulong SocketSk, ulong Family, ulong State, ulong LocalAddress, ulong RemoteAddress,
        ulong LocalPort, ulong RemotePort, ulong? LocalAddress6, ulong? RemoteAddress6, ulong? Protocol)
    {
        public static Layout? Create(MachineSymbols types, out string missing)
        {
            missing = "";
            var lacking = new List<string>();
            ulong Field(string type, string field)
            {
                if (types.TryGetFieldOffset(type, field, out var offset))
                    return offset;
                lacking.Add($"{type}.{field}");
                return 0;
            }
            // sock_common's address and port fields sit in anonymous unions; a layer may or may not see through them.
            ulong Common(string field)
            {
                ulong common = Field("sock", "__sk_common");
                if (types.TryGetFieldOffset("sock_common", field, out var offset))
                    return common + offset;
                lacking.Add($"sock_common.{field}");
                return 0;
            }
            ulong? Optional(string type, string field, ulong add = 0) =>
                types.TryGetFieldOffset(type, field, out var offset) ? offset + add : null;

            var layout = new Layout(
                Field("task_struct", "files"), Field("files_struct", "fdt"), Field("fdtable", "max_fds"), Field("fdtable", "fd"),
                Field("file", "f_op"), Field("file", "private_data"), Field("socket", "type"), Field("socket", "sk"),
                Common("skc_family"), Common("skc_state"), Common("skc_rcv_saddr"), Common("skc_daddr"),
                Common("skc_num"), Common("skc_dport"),
                Optional("sock_common", "skc_v6_rcv_saddr", types.TryGetFieldOffset("sock", "__sk_common", out var c1) ? c1 : 0),
                Optional("sock_common", "skc_v6_daddr", types.TryGetFieldOffset("sock", "__sk_common", out var c2) ? c2 : 0),
                Optional("sock", "sk_protocol"));
            if (lacking.Count == 0)
                return layout;
            missing = string.Join(", ", lacking.Distinct());
            return null;
        }
    }
}
