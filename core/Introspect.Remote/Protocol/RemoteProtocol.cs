namespace Introspect.Remote.Protocol;

/// <summary>The constants of the wire protocol between <c>introspect serve</c> and the <c>remote</c> connector.</summary>
/// <remarks>
/// <para>Every message is a frame: a 12-byte header (payload length u32, type u8, three reserved zero bytes,
/// request id u32; little-endian) followed by the payload. A connection opens with the client's
/// <see cref="MessageType.Hello"/> (magic, the range of versions it speaks, the codecs it accepts, its token)
/// and the server's <see cref="MessageType.Welcome"/> (the version and codec chosen, the limits it enforces).
/// After that the client sends requests with ids of its choosing, several at once if it likes, and the server
/// answers each with a frame bearing the same id, in whatever order they finish. Request id 0 is the
/// connection's own: an error with id 0 ends the connection.</para>
/// <para>Batches stay batches: one read request carries every (address, length) entry of a scatter batch and
/// one reply carries a bitmap of which entries succeeded and the bytes of those that did, so a batch costs one
/// round trip however many pages it holds.</para>
/// </remarks>
internal static class RemoteProtocol
{
    /// <summary>The first bytes of every <see cref="MessageType.Hello"/>.</summary>
    public static ReadOnlySpan<byte> Magic => "INTRSPCT"u8;

    /// <summary>The versions this build speaks (only 1 so far); a peer outside this range is refused with both ranges named.</summary>
    public const ushort MinVersion = 1;

    public const ushort MaxVersion = 1;

    public const int HeaderSize = 12;

    /// <summary>The port <c>serve</c> listens on and the connector dials when none is given.</summary>
    public const int DefaultPort = 7445;

    /// <summary>Frames of the handshake are small; anything longer before the welcome is refused.</summary>
    public const int MaxHandshakeFrame = 4096;

    public const int MaxTokenBytes = 1024;

    public const int MaxNameBytes = 256;

    public const int MaxErrorMessageBytes = 4096;

    /// <summary>What one read or write entry costs on the wire besides its data: address u64 and length u32.</summary>
    public const int EntrySize = 12;

    /// <summary>The fixed part of a batch request or reply (pid, flags, count, lengths), generously counted.</summary>
    public const int BatchOverhead = 32;

    /// <summary>Whether a batch of <paramref name="count"/> entries and <paramref name="dataBytes"/> bytes fits a frame of <paramref name="maxFrame"/> bytes.</summary>
    /// <remarks>Both sides apply this one rule: it bounds the request (entries plus written data) and the reply (bitmap plus read data) alike.</remarks>
    public static bool BatchFits(long count, long dataBytes, long maxFrame) =>
        count >= 0 && dataBytes >= 0 && count * EntrySize + dataBytes + BatchOverhead <= maxFrame;
}

/// <summary>What a frame carries.</summary>
internal enum MessageType : byte
{
    Hello = 1,
    Welcome = 2,
    /// <summary>A request failed (or, with id 0, the connection ends): u16 code, u16 length, UTF-8 message.</summary>
    Error = 3,
    Ping = 4,
    Pong = 5,

    /// <summary>Asks for the served memory's metadata, map and hints and the OS's description (JSON reply).</summary>
    Describe = 10,
    Description = 11,
    ReadPhysical = 12,
    ReadReply = 13,
    WritePhysical = 14,
    WriteReply = 15,

    ListProcesses = 20,
    /// <summary>A reply whose payload is UTF-8 JSON.</summary>
    JsonReply = 21,
    GetProcess = 22,
    ReadVirtual = 24,
    WriteVirtual = 26,
    Translate = 28,
    TranslateReply = 29,
    MemoryAreas = 30,
    Modules = 32,
    KernelModules = 34,
    SymbolAddress = 36,
    SymbolReply = 37,
    SymbolName = 38,
    TypeSize = 40,
    FieldOffset = 42,
}

/// <summary>Why a request or a connection failed, as the server tells the client.</summary>
internal enum RemoteErrorCode : ushort
{
    Malformed = 1,
    UnknownType = 2,
    FrameTooLarge = 3,
    UnsupportedVersion = 4,
    Unauthorized = 5,
    ReadOnly = 6,
    LimitExceeded = 7,
    NoOperatingSystem = 8,
    NoSuchProcess = 9,
    NotSupported = 10,
    ServerBusy = 11,
    Internal = 12,
    Timeout = 13,
    ShuttingDown = 14,
}

/// <summary>Flags of the server's welcome.</summary>
[Flags]
internal enum ServerFeatures : byte
{
    None = 0,
    Writable = 1,
    OperatingSystem = 2,
    KernelSymbols = 4,
    KernelTypes = 8,
}
