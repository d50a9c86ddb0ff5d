using System.Globalization;
using System.Text;

namespace Introspect.Connectors.LeechCore.Native;

/// <summary>What to open: <c>LC_CONFIG</c>'s caller-set fields.</summary>
/// <param name="Device">The device string (<c>szDevice</c>), for example <c>fpga</c> or <c>file://file=x.raw</c>.</param>
/// <param name="Remote">A LeechAgent to open it through (<c>szRemote</c>), for example <c>rpc://insecure:host</c>; null for local.</param>
/// <param name="PaMax">The highest address to use (<c>paMax</c>); 0 lets the device detect it.</param>
/// <param name="PrintfVerbosity">The <c>LC_CONFIG_PRINTF_*</c> bits: what LeechCore prints to standard output.</param>
internal readonly record struct DeviceRequest(string Device, string? Remote, ulong PaMax, uint PrintfVerbosity);

/// <summary>Why <c>LcCreateEx</c> refused a device, as far as LeechCore said.</summary>
/// <param name="UserText">The error information's text, or null when LeechCore gave none.</param>
/// <param name="UserInputRequest">LeechCore asks the user to choose (LiveCloudKd lists its VMs this way).</param>
internal sealed record CreateFailure(string? UserText, bool UserInputRequest);

/// <summary>An open LeechCore device: its handle, what <c>LcCreateEx</c> reported about it, options and commands.</summary>
/// <remarks>
/// The <c>unsafe</c> code of this type is its marshalling of <c>LC_CONFIG</c>, <c>LC_CONFIG_ERRORINFO</c> and
/// command output: everything LeechCore allocates goes back through <c>LcMemFree</c> before a method returns.
/// </remarks>
internal sealed unsafe class LeechCoreDevice : IDisposable
{
    /// <summary>The largest text accepted from <c>LC_CMD_MEMMAP_GET</c>: LeechCore's own limit of 0x100000 ranges at 61 characters each.</summary>
    private const uint MaxMemoryMapText = 64u << 20;

    /// <summary>The most UTF-16 units read from error information, whatever its header claims.</summary>
    private const uint MaxUserText = 1 << 16;

    private LeechCoreDevice(LeechCoreLibrary library, LeechCoreHandle handle, string deviceName, ulong paMax, bool isVolatile, bool writable, bool remote)
    {
        Library = library;
        Handle = handle;
        DeviceName = deviceName;
        PaMax = paMax;
        IsVolatile = isVolatile;
        IsWritable = writable;
        IsRemote = remote;
    }

    public LeechCoreLibrary Library { get; }

    public LeechCoreHandle Handle { get; }

    /// <summary>LeechCore's name for the device type (<c>szDeviceName</c>): <c>file</c>, <c>fpga</c>, <c>hvmm</c>, ...</summary>
    public string DeviceName { get; }

    /// <summary>The top of the device's memory map as <c>LcCreateEx</c> reported it (exclusive).</summary>
    public ulong PaMax { get; }

    /// <summary>The memory may change under the reader (live memory).</summary>
    public bool IsVolatile { get; }

    public bool IsWritable { get; }

    /// <summary>Opened through a LeechAgent.</summary>
    public bool IsRemote { get; }

    /// <summary>Opens a device.</summary>
    /// <exception cref="ArgumentException">The device or remote string does not fit <c>LC_CONFIG</c> (259 bytes of UTF-8) or holds a NUL.</exception>
    public static LeechCoreDevice? TryOpen(LeechCoreLibrary library, DeviceRequest request, out CreateFailure? failure)
    {
        ArgumentNullException.ThrowIfNull(library);
        LcConfig config = default;
        config.Version = LeechCoreAbi.ConfigVersion;
        config.PrintfVerbosity = request.PrintfVerbosity;
        config.PaMax = request.PaMax;
        CopyString(request.Device, new Span<byte>(config.Device, LeechCoreAbi.MaxPath), "device");
        CopyString(request.Remote ?? "", new Span<byte>(config.RemoteName, LeechCoreAbi.MaxPath), "remote");

        LcConfigErrorInfo* errorInfo = null;
        nint handle = library.CreateEx(&config, &errorInfo);
        // Error information belongs to LeechCore whether or not the device opened.
        failure = errorInfo == null ? null : ReadErrorInfo(library, errorInfo);
        if (handle == 0)
        {
            failure ??= new CreateFailure(null, false);
            return null;
        }
        var safeHandle = new LeechCoreHandle(library, handle);
        string name = ReadString(new ReadOnlySpan<byte>(config.DeviceName, LeechCoreAbi.MaxPath));
        failure = null;
        return new LeechCoreDevice(library, safeHandle, name, config.PaMax, config.Volatile != 0, config.Writable != 0, config.IsRemote != 0);
    }

    private static void CopyString(string value, Span<byte> destination, string what)
    {
        if (value.Contains('\0', StringComparison.Ordinal))
            throw new ArgumentException($"The {what} string holds a NUL character.", nameof(value));
        int length = Encoding.UTF8.GetByteCount(value);
        if (length >= destination.Length)
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"The {what} string is {length} bytes of UTF-8; LeechCore's LC_CONFIG holds at most {destination.Length - 1}."), nameof(value));
        destination.Clear();
        Encoding.UTF8.GetBytes(value, destination);
    }

    private static string ReadString(ReadOnlySpan<byte> bytes)
    {
        int end = bytes.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? bytes : bytes[..end]);
    }

    private static CreateFailure ReadErrorInfo(LeechCoreLibrary library, LcConfigErrorInfo* info)
    {
        try
        {
            if (info->Version != LeechCoreAbi.ConfigErrorInfoVersion || info->StructSize < (uint)sizeof(LcConfigErrorInfo))
                return new CreateFailure(string.Create(CultureInfo.InvariantCulture, $"(error information of unknown version 0x{info->Version:x8}, {info->StructSize} bytes)"), false);
            // cbStruct bounds the text, whatever cwszUserText claims.
            uint room = (info->StructSize - (uint)sizeof(LcConfigErrorInfo)) / sizeof(char);
            uint length = Math.Min(Math.Min(info->UserTextLength, room), MaxUserText);
            var text = new string((char*)((byte*)info + sizeof(LcConfigErrorInfo)), 0, (int)length);
            int nul = text.IndexOf('\0', StringComparison.Ordinal);
            if (nul >= 0)
                text = text[..nul];
            return new CreateFailure(text.Trim().Length == 0 ? null : text.TrimEnd(), info->UserInputRequest != 0);
        }
        finally
        {
            library.MemFree(info);
        }
    }

    /// <summary><c>LcGetOption</c>; false when the device does not know the option.</summary>
    public bool TryGetOption(ulong option, out ulong value)
    {
        bool added = false;
        Handle.DangerousAddRef(ref added);
        try
        {
            return Library.GetOption(Handle.DangerousGetHandle(), option, out value);
        }
        finally
        {
            if (added)
                Handle.DangerousRelease();
        }
    }

    /// <summary>The memory map as <c>LC_CMD_MEMMAP_GET</c> writes it, or null when the device gives none.</summary>
    /// <exception cref="InvalidDataException">LeechCore answered with more text than any map it can hold.</exception>
    public string? GetMemoryMapText(string source)
    {
        bool added = false;
        Handle.DangerousAddRef(ref added);
        byte* output = null;
        try
        {
            bool ok = Library.Command(Handle.DangerousGetHandle(), LeechCoreAbi.CommandMemoryMapGet, out output, out uint length);
            if (!ok || output == null || length == 0)
                return null;
            if (length > MaxMemoryMapText)
                throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                    $"{source}: LC_CMD_MEMMAP_GET returned {length} bytes; LeechCore's largest map ({LeechCoreAbi.MaxMemoryMapEntries} ranges) is at most {MaxMemoryMapText}."));
            var bytes = new ReadOnlySpan<byte>(output, (int)length);
            int end = bytes.IndexOf((byte)0);
            return Encoding.ASCII.GetString(end < 0 ? bytes : bytes[..end]);
        }
        finally
        {
            if (output != null)
                Library.MemFree(output);
            if (added)
                Handle.DangerousRelease();
        }
    }

    /// <summary>Replaces LeechCore's memory map with <c>LC_CMD_MEMMAP_SET</c> (the text form).</summary>
    public bool SetMemoryMapText(string text)
    {
        bool added = false;
        Handle.DangerousAddRef(ref added);
        try
        {
            return Library.Command(Handle.DangerousGetHandle(), LeechCoreAbi.CommandMemoryMapSet, Encoding.ASCII.GetBytes(text));
        }
        finally
        {
            if (added)
                Handle.DangerousRelease();
        }
    }

    public void Dispose() => Handle.Dispose();
}
