using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using Introspect.Abi;
using Introspect.Remote.Protocol;

namespace Introspect.Remote.Server;

internal sealed partial class ServerSession
{
    /// <summary>Answers one request; protocol mistakes throw <see cref="ProtocolViolationException"/>, which the caller turns into an error reply.</summary>
    private Reply Answer(OwnedFrame frame)
    {
        var header = frame.Header;
        var payload = frame.Payload;
        uint id = header.RequestId;
        if (id == 0)
            throw new ProtocolViolationException(RemoteErrorCode.Malformed, 0, "request id 0 is reserved for the connection itself; number requests from 1.");
        switch (header.Type)
        {
            case MessageType.Ping:
                return Reply.Of(MessageType.Pong, id, payload.ToArray());
            case MessageType.Describe:
                ExpectEmpty(payload, header);
                return Reply.Of(MessageType.Description, id, JsonPayload.Encode(Describe()));
            case MessageType.ReadPhysical:
                return ReadBatch(frame, isVirtual: false);
            case MessageType.WritePhysical:
                return WriteBatch(frame, isVirtual: false);
            case MessageType.ReadVirtual:
                return ReadBatch(frame, isVirtual: true);
            case MessageType.WriteVirtual:
                return WriteBatch(frame, isVirtual: true);
            case MessageType.Translate:
                return Translate(frame);
            case MessageType.ListProcesses:
                ExpectEmpty(payload, header);
                return Json(id, OnSystem(system => system.GetProcesses()), "process list");
            case MessageType.GetProcess:
            {
                ulong pid = ReadPid(payload, header);
                return Json(id, OnSystem(system => system.GetProcess(pid)), "process");
            }
            case MessageType.MemoryAreas:
            {
                ulong pid = ReadPid(payload, header);
                return Json(id, OnProcess(pid, (system, process) => system.GetMemoryAreas(process)), "memory area list");
            }
            case MessageType.Modules:
            {
                ulong pid = ReadPid(payload, header);
                return Json(id, OnProcess(pid, (system, process) => system.GetModules(process)), "module list");
            }
            case MessageType.KernelModules:
                ExpectEmpty(payload, header);
                return Json(id, OnSystem(system => system.GetKernelModules()), "kernel module list");
            case MessageType.SymbolAddress:
            case MessageType.SymbolName:
            case MessageType.TypeSize:
            case MessageType.FieldOffset:
                return Symbol(frame);
            case MessageType.Hello:
                throw new ProtocolViolationException(RemoteErrorCode.Malformed, id, "Hello was already sent; a connection says hello once.");
            default:
                throw new ProtocolViolationException(RemoteErrorCode.UnknownType, id,
                    $"message type {((byte)header.Type).ToString(CultureInfo.InvariantCulture)} is not one this server knows (protocol version {RemoteProtocol.MaxVersion}).");
        }
    }

    private ServedDescription Describe()
    {
        var memory = _server.Memory;
        var metadata = memory.Metadata;
        var system = _server.OperatingSystem;
        OsInfo? os = null;
        int symbols = 0;
        if (system is not null)
        {
            lock (_server.OperatingSystemLock)
            {
                os = system.Info;
                if (system is IKernelSymbols kernelSymbols)
                    symbols = kernelSymbols.SymbolCount;
            }
        }
        return new ServedDescription
        {
            Chain = _server.ChainDescription,
            MaxAddress = metadata.MaxAddress,
            RealSize = metadata.RealSize,
            ReadOnly = metadata.ReadOnly || !_options.AllowWrite,
            IdealBatchSize = metadata.IdealBatchSize,
            MemoryMap = memory.MemoryMap.Select(r => new[] { r.Base, r.Size }).ToList(),
            Hints = memory is IConnectorHints hints ? hints.Hints : null,
            OperatingSystem = os,
            SymbolCount = symbols,
        };
    }

    private Reply ReadBatch(OwnedFrame frame, bool isVirtual)
    {
        var header = frame.Header;
        var request = BatchRequest.Decode(frame.Payload, header.Type, header.RequestId, _options.MaxBatchEntries, _options.MaxFrameSize);
        IMemory? target = isVirtual ? ProcessMemory(request.Pid, header.RequestId) : _server.Memory;
        int count = request.Count;
        int bitmapSize = BatchLayout.BitmapSize(count);
        int dataOffset = BatchLayout.ReadReplyFixed + bitmapSize;
        // Bounded by the frame limit, which Decode checked the whole batch against.
        int total = (int)request.TotalBytes;
        var buffer = ArrayPool<byte>.Shared.Rent(dataOffset + total);
        var requests = ArrayPool<MemoryRequest>.Shared.Rent(count);
        try
        {
            int position = dataOffset;
            for (int i = 0; i < count; i++)
            {
                int length = request.Length(i);
                requests[i] = new MemoryRequest(request.Address(i), buffer.AsMemory(position, length));
                position += length;
            }
            if (isVirtual)
            {
                lock (_server.OperatingSystemLock)
                    target!.Read(requests.AsSpan(0, count), request.Flags);
            }
            else
            {
                target!.Read(requests.AsSpan(0, count), request.Flags);
            }

            // Failed entries send no bytes: the data of those that succeeded moves down over the gaps.
            var bitmap = buffer.AsSpan(BatchLayout.ReadReplyFixed, bitmapSize);
            bitmap.Clear();
            int write = dataOffset, read = dataOffset, succeeded = 0;
            for (int i = 0; i < count; i++)
            {
                int length = request.Length(i);
                if (requests[i].Succeeded)
                {
                    BatchLayout.SetBit(bitmap, i);
                    succeeded++;
                    if (write != read)
                        buffer.AsSpan(read, length).CopyTo(buffer.AsSpan(write));
                    write += length;
                }
                read += length;
            }
            int raw = write - dataOffset;
            _log.Read(isVirtual, request, raw);
            ServerLog.Batch(_server.Logger, Id, isVirtual ? "read virtual" : "read", count, request.TotalBytes, count > 0 ? request.Address(0) : 0,
                isVirtual ? $" in pid {request.Pid}" : "", succeeded);

            if (_compression != PageCompression.None && raw >= PageCodec.MinimumSize)
            {
                var compressed = ArrayPool<byte>.Shared.Rent(dataOffset + raw);
                if (PageCodec.TryCompress(_compression, buffer.AsSpan(dataOffset, raw), compressed, dataOffset, out int written))
                {
                    buffer.AsSpan(0, dataOffset).CopyTo(compressed);
                    BatchLayout.WriteReadReplyHeader(compressed, count, _compression, raw, written);
                    ArrayPool<byte>.Shared.Return(buffer);
                    return Reply.Rented(MessageType.ReadReply, header.RequestId, compressed, dataOffset + written);
                }
                ArrayPool<byte>.Shared.Return(compressed);
            }
            BatchLayout.WriteReadReplyHeader(buffer, count, PageCompression.None, raw, raw);
            return Reply.Rented(MessageType.ReadReply, header.RequestId, buffer, dataOffset + raw);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
        finally
        {
            ArrayPool<MemoryRequest>.Shared.Return(requests, clearArray: true);
        }
    }

    private Reply WriteBatch(OwnedFrame frame, bool isVirtual)
    {
        var header = frame.Header;
        if (!_options.AllowWrite)
            throw new ProtocolViolationException(RemoteErrorCode.ReadOnly, header.RequestId, "this server is read-only; it writes only when started with --allow-write.");
        if (!isVirtual && _server.Memory.Metadata.ReadOnly)
            throw new ProtocolViolationException(RemoteErrorCode.ReadOnly, header.RequestId, "the served memory is read-only.");
        var request = BatchRequest.Decode(frame.Payload, header.Type, header.RequestId, _options.MaxBatchEntries, _options.MaxFrameSize);
        IMemory target = isVirtual ? ProcessMemory(request.Pid, header.RequestId) : _server.Memory;
        int count = request.Count;
        var data = ArrayPool<byte>.Shared.Rent((int)request.TotalBytes);
        var requests = ArrayPool<MemoryRequest>.Shared.Rent(count);
        try
        {
            request.Data.CopyTo(data);
            int position = 0;
            for (int i = 0; i < count; i++)
            {
                int length = request.Length(i);
                requests[i] = new MemoryRequest(request.Address(i), data.AsMemory(position, length));
                position += length;
            }
            try
            {
                if (isVirtual)
                {
                    lock (_server.OperatingSystemLock)
                        target.Write(requests.AsSpan(0, count), request.Flags);
                }
                else
                {
                    target.Write(requests.AsSpan(0, count), request.Flags);
                }
            }
            catch (NotSupportedException e)
            {
                throw new ProtocolViolationException(RemoteErrorCode.ReadOnly, header.RequestId, $"the served memory refuses writes: {e.Message}");
            }
            var reply = new byte[BatchLayout.WriteReplyFixed + BatchLayout.BitmapSize(count)];
            BinaryPrimitives.WriteUInt32LittleEndian(reply, (uint)count);
            long written = 0;
            for (int i = 0; i < count; i++)
            {
                if (requests[i].Succeeded)
                {
                    BatchLayout.SetBit(reply.AsSpan(BatchLayout.WriteReplyFixed), i);
                    written += request.Length(i);
                }
            }
            _log.Write(isVirtual, request, written);
            return Reply.Of(MessageType.WriteReply, header.RequestId, reply);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(data);
            ArrayPool<MemoryRequest>.Shared.Return(requests, clearArray: true);
        }
    }

    private Reply Translate(OwnedFrame frame)
    {
        var header = frame.Header;
        var reader = new PayloadReader(frame.Payload, nameof(MessageType.Translate));
        ulong pid = reader.ReadUInt64("pid");
        uint count = reader.ReadUInt32("count");
        reader.ReadUInt32("reserved");
        if (count > (uint)_options.MaxBatchEntries)
            throw new ProtocolViolationException(RemoteErrorCode.LimitExceeded, header.RequestId,
                $"Translate: {count} addresses is over the server's limit of {_options.MaxBatchEntries} per batch.");
        if (reader.Remaining != (long)count * 8)
            throw new ProtocolViolationException(RemoteErrorCode.Malformed, header.RequestId,
                $"Translate message: field 'addresses' is {reader.Remaining} bytes; expected {(long)count * 8} for {count} addresses.");
        var addresses = reader.Rest;
        var memory = ProcessMemory(pid, header.RequestId);
        int bitmapSize = BatchLayout.BitmapSize((int)count);
        var reply = new byte[4 + bitmapSize + (int)count * 8];
        BinaryPrimitives.WriteUInt32LittleEndian(reply, count);
        var bitmap = reply.AsSpan(4, bitmapSize);
        var results = reply.AsSpan(4 + bitmapSize);
        lock (_server.OperatingSystemLock)
        {
            for (int i = 0; i < (int)count; i++)
            {
                if (memory.TryTranslate(BinaryPrimitives.ReadUInt64LittleEndian(addresses[(i * 8)..]), out ulong physical))
                {
                    BatchLayout.SetBit(bitmap, i);
                    BinaryPrimitives.WriteUInt64LittleEndian(results[(i * 8)..], physical);
                }
            }
        }
        _log.TouchProcess(pid);
        return Reply.Of(MessageType.TranslateReply, header.RequestId, reply);
    }

    /// <summary>Symbol and type queries; the reply is found u8, value u64, name (a u16-length string).</summary>
    private Reply Symbol(OwnedFrame frame)
    {
        var header = frame.Header;
        var system = RequireSystem(header.RequestId);
        var reader = new PayloadReader(frame.Payload, header.Type.ToString());
        bool found;
        ulong value;
        string name = "";
        lock (_server.OperatingSystemLock)
        {
            switch (header.Type)
            {
                case MessageType.SymbolAddress:
                {
                    var symbols = system as IKernelSymbols ?? throw NotSupported(header.RequestId, "kernel symbols");
                    string symbol = reader.ReadString("name", RemoteProtocol.MaxNameBytes * 4);
                    reader.ExpectEnd();
                    found = symbols.TryGetSymbolAddress(symbol, out value);
                    break;
                }
                case MessageType.SymbolName:
                {
                    var symbols = system as IKernelSymbols ?? throw NotSupported(header.RequestId, "kernel symbols");
                    ulong address = reader.ReadUInt64("address");
                    reader.ExpectEnd();
                    found = symbols.TryGetSymbolName(address, out name, out value);
                    break;
                }
                case MessageType.TypeSize:
                {
                    var types = system as IKernelTypes ?? throw NotSupported(header.RequestId, "kernel types");
                    string type = reader.ReadString("type", RemoteProtocol.MaxNameBytes * 4);
                    reader.ExpectEnd();
                    found = types.TryGetTypeSize(type, out value);
                    break;
                }
                default:
                {
                    var types = system as IKernelTypes ?? throw NotSupported(header.RequestId, "kernel types");
                    string type = reader.ReadString("type", RemoteProtocol.MaxNameBytes * 4);
                    string field = reader.ReadString("field", RemoteProtocol.MaxNameBytes * 4);
                    reader.ExpectEnd();
                    found = types.TryGetFieldOffset(type, field, out value);
                    break;
                }
            }
        }
        name = found ? name ?? "" : "";
        var reply = new byte[1 + 8 + FrameWriter.StringSize(name)];
        var writer = new ArrayWriter(reply);
        reply[0] = found ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt64LittleEndian(reply.AsSpan(1), found ? value : 0);
        writer.Skip(9);
        FrameWriter.WriteString(writer, name);
        return Reply.Of(MessageType.SymbolReply, header.RequestId, reply);
    }

    private static ProtocolViolationException NotSupported(uint requestId, string what) =>
        new(RemoteErrorCode.NotSupported, requestId, $"the served OS layer offers no {what}.");

    private Reply Json<T>(uint requestId, T value, string what)
    {
        var json = JsonPayload.Encode(value);
        if (json.Length > _options.MaxFrameSize)
            throw new ProtocolViolationException(RemoteErrorCode.LimitExceeded, requestId,
                $"the {what} is {json.Length} bytes of JSON, over the server's frame limit of {_options.MaxFrameSize} bytes.");
        return Reply.Of(MessageType.JsonReply, requestId, json);
    }

    private IOperatingSystem RequireSystem(uint requestId) =>
        _server.OperatingSystem ?? throw new ProtocolViolationException(RemoteErrorCode.NoOperatingSystem, requestId,
            $"the served chain ({(_server.ChainDescription.Length > 0 ? _server.ChainDescription : "a connector")}) ends in a connector; serve a chain that ends in an OS layer (e.g. '... -> linux') for processes.");

    private T OnSystem<T>(Func<IOperatingSystem, T> call)
    {
        var system = RequireSystem(0);
        lock (_server.OperatingSystemLock)
            return call(system);
    }

    private T OnProcess<T>(ulong pid, Func<IOperatingSystem, ProcessInfo, T> call)
    {
        var system = RequireSystem(0);
        var (process, _) = _processes.Get(pid) ?? throw new ProtocolViolationException(RemoteErrorCode.NoSuchProcess, 0, $"there is no process {pid}.");
        _log.TouchProcess(pid);
        lock (_server.OperatingSystemLock)
            return call(system, process);
    }

    private IVirtualMemory ProcessMemory(ulong pid, uint requestId)
    {
        RequireSystem(requestId);
        var entry = _processes.Get(pid) ?? throw new ProtocolViolationException(RemoteErrorCode.NoSuchProcess, requestId, $"there is no process {pid}.");
        return entry.Memory;
    }

    private static ulong ReadPid(ReadOnlySpan<byte> payload, FrameHeader header)
    {
        var reader = new PayloadReader(payload, header.Type.ToString());
        ulong pid = reader.ReadUInt64("pid");
        reader.ExpectEnd();
        return pid;
    }

    private static void ExpectEmpty(ReadOnlySpan<byte> payload, FrameHeader header)
    {
        if (!payload.IsEmpty)
            throw new ProtocolViolationException(RemoteErrorCode.Malformed, header.RequestId, $"{header.Type} message: the payload is {payload.Length} bytes; expected none.");
    }

    /// <summary>A buffer writer over a fixed array, for replies whose size is known in advance.</summary>
    private sealed class ArrayWriter(byte[] array) : IBufferWriter<byte>
    {
        private int _position;

        public void Skip(int count) => _position += count;

        public void Advance(int count) => _position += count;

        public Memory<byte> GetMemory(int sizeHint = 0) => array.AsMemory(_position);

        public Span<byte> GetSpan(int sizeHint = 0) => array.AsSpan(_position);
    }
}
