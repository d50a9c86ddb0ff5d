namespace Introspect.Remote;

/// <summary>How the data of a read reply is compressed; negotiated in the handshake, chosen per reply.</summary>
public enum PageCompression : byte
{
    /// <summary>Bytes as they are: the fastest on a fast link.</summary>
    None = 0,
    /// <summary>Deflate (RFC 1951) at its fastest level.</summary>
    Deflate = 1,
    /// <summary>Brotli at quality 1.</summary>
    Brotli = 2,
}
