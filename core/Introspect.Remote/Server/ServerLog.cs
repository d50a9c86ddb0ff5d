using Microsoft.Extensions.Logging;

namespace Introspect.Remote.Server;

/// <summary>Every line the server logs: who connected, how they authenticated, what they read, and why anyone was turned away.</summary>
internal static partial class ServerLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "serving {Chain} on {EndPoint} ({Transport}; {Authentication}; {Access})")]
    public static partial void Listening(ILogger logger, string chain, string endPoint, string transport, string authentication, string access);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "client #{Session} {Peer} connected as '{ClientName}' ({Authentication}; protocol {Version}; compression {Compression})")]
    public static partial void Connected(ILogger logger, ulong session, string peer, string clientName, string authentication, int version, string compression);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "client #{Session} {Peer} left after {Seconds:0.0} s ({Reason}): {Summary}")]
    public static partial void Disconnected(ILogger logger, ulong session, string peer, double seconds, string reason, string summary);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "refused {Peer}: {Reason}")]
    public static partial void Refused(ILogger logger, string peer, string reason);

    [LoggerMessage(EventId = 5, Level = LogLevel.Warning, Message = "client #{Session} {Peer}: {Problem}")]
    public static partial void ProtocolError(ILogger logger, ulong session, string peer, string problem);

    [LoggerMessage(EventId = 6, Level = LogLevel.Debug, Message = "client #{Session} {Operation}: {Entries} entries, {Bytes} bytes from 0x{First:x}{Process}, {Succeeded} succeeded")]
    public static partial void Batch(ILogger logger, ulong session, string operation, int entries, long bytes, ulong first, string process, int succeeded);

    [LoggerMessage(EventId = 7, Level = LogLevel.Debug, Message = "client #{Session} {Request}")]
    public static partial void Request(ILogger logger, ulong session, string request);

    [LoggerMessage(EventId = 8, Level = LogLevel.Warning, Message = "client #{Session} {Peer}: the served chain failed on {Request}: {Message}")]
    public static partial void ChainFailed(ILogger logger, ulong session, string peer, string request, string message, Exception exception);

    [LoggerMessage(EventId = 9, Level = LogLevel.Warning, Message = "serving without TLS on {EndPoint}, which is not a loopback address: the token and all memory cross the network in clear")]
    public static partial void PlainOnNetwork(ILogger logger, string endPoint);

    [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "stopped serving on {EndPoint}")]
    public static partial void Stopped(ILogger logger, string endPoint);

    [LoggerMessage(EventId = 11, Level = LogLevel.Warning, Message = "accepting a connection failed: {Message}")]
    public static partial void AcceptFailed(ILogger logger, string message);
}
