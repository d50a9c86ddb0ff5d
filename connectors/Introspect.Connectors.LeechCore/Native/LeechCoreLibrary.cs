using System.Runtime.InteropServices;

namespace Introspect.Connectors.LeechCore.Native;

/// <summary>One loaded LeechCore library, its exports bound to function pointers.</summary>
/// <remarks>
/// <para>This type is the connector's one door into native code: every call into LeechCore goes through a method
/// here, and the <c>unsafe</c> code that calls is here and nowhere else.</para>
/// <para>Function pointers rather than <c>[LibraryImport]</c>: the library is found at run time (a chain argument,
/// <c>LEECHCORE_PATH</c>, beside the plugin), and two chains in one process may name two different builds, which a
/// process-wide <c>DllImport</c> resolver, bound once per method, could not keep apart. A library is never
/// unloaded: LeechCore keeps process-wide state and device modules of its own.</para>
/// </remarks>
internal sealed unsafe class LeechCoreLibrary
{
    private readonly delegate* unmanaged[Cdecl]<LcConfig*, LcConfigErrorInfo**, nint> _createEx;
    private readonly delegate* unmanaged[Cdecl]<nint, void> _close;
    private readonly delegate* unmanaged[Cdecl]<void*, void> _memFree;
    private readonly delegate* unmanaged[Cdecl]<nint, uint, MemScatter**, void> _readScatter;
    private readonly delegate* unmanaged[Cdecl]<nint, uint, MemScatter**, void> _writeScatter;
    private readonly delegate* unmanaged[Cdecl]<nint, ulong, uint, byte*, int> _read;
    private readonly delegate* unmanaged[Cdecl]<nint, ulong, uint, byte*, int> _write;
    private readonly delegate* unmanaged[Cdecl]<nint, ulong, ulong*, int> _getOption;
    private readonly delegate* unmanaged[Cdecl]<nint, ulong, ulong, int> _setOption;
    private readonly delegate* unmanaged[Cdecl]<nint, ulong, uint, byte*, byte**, uint*, int> _command;

    /// <summary>Binds the exports of an already loaded library.</summary>
    /// <exception cref="EntryPointNotFoundException">The library lacks one of LeechCore's exports: it is not LeechCore 2.x.</exception>
    public LeechCoreLibrary(string path, nint module)
    {
        Path = path;
        _createEx = (delegate* unmanaged[Cdecl]<LcConfig*, LcConfigErrorInfo**, nint>)Export(module, "LcCreateEx");
        _close = (delegate* unmanaged[Cdecl]<nint, void>)Export(module, "LcClose");
        _memFree = (delegate* unmanaged[Cdecl]<void*, void>)Export(module, "LcMemFree");
        _readScatter = (delegate* unmanaged[Cdecl]<nint, uint, MemScatter**, void>)Export(module, "LcReadScatter");
        _writeScatter = (delegate* unmanaged[Cdecl]<nint, uint, MemScatter**, void>)Export(module, "LcWriteScatter");
        _read = (delegate* unmanaged[Cdecl]<nint, ulong, uint, byte*, int>)Export(module, "LcRead");
        _write = (delegate* unmanaged[Cdecl]<nint, ulong, uint, byte*, int>)Export(module, "LcWrite");
        _getOption = (delegate* unmanaged[Cdecl]<nint, ulong, ulong*, int>)Export(module, "LcGetOption");
        _setOption = (delegate* unmanaged[Cdecl]<nint, ulong, ulong, int>)Export(module, "LcSetOption");
        _command = (delegate* unmanaged[Cdecl]<nint, ulong, uint, byte*, byte**, uint*, int>)Export(module, "LcCommand");
    }

    /// <summary>Where the library was loaded from (or its bare name, when the system's search found it).</summary>
    public string Path { get; }

    private nint Export(nint module, string name) =>
        NativeLibrary.TryGetExport(module, name, out var address)
            ? address
            : throw new EntryPointNotFoundException($"{Path} does not export {name}: it is not LeechCore 2.x (LeechCore's leechcore.h declares {name}).");

    /// <summary><c>LcCreateEx</c>: opens a device; on failure LeechCore may hand back error information the caller frees.</summary>
    public nint CreateEx(LcConfig* config, LcConfigErrorInfo** errorInfo) => _createEx(config, errorInfo);

    public void Close(nint handle) => _close(handle);

    /// <summary><c>LcMemFree</c>: frees what LeechCore allocated (error information, command output), and only that.</summary>
    public void MemFree(void* memory) => _memFree(memory);

    public void ReadScatter(nint handle, int count, MemScatter** entries) => _readScatter(handle, (uint)count, entries);

    public void WriteScatter(nint handle, int count, MemScatter** entries) => _writeScatter(handle, (uint)count, entries);

    /// <summary><c>LcRead</c>: any address and length; LeechCore cuts it into pages and succeeds only if all were read.</summary>
    public bool Read(nint handle, ulong address, uint length, byte* buffer) => _read(handle, address, length, buffer) != 0;

    /// <summary><c>LcWrite</c>: any address and length, byte-exact; LeechCore cuts it into pages itself.</summary>
    public bool Write(nint handle, ulong address, uint length, byte* buffer) => _write(handle, address, length, buffer) != 0;

    public bool GetOption(nint handle, ulong option, out ulong value)
    {
        ulong result = 0;
        bool ok = _getOption(handle, option, &result) != 0;
        value = ok ? result : 0;
        return ok;
    }

    public bool SetOption(nint handle, ulong option, ulong value) => _setOption(handle, option, value) != 0;

    /// <summary><c>LcCommand</c> with input bytes and no output.</summary>
    public bool Command(nint handle, ulong command, ReadOnlySpan<byte> input)
    {
        fixed (byte* data = input)
            return _command(handle, command, (uint)input.Length, data, null, null) != 0;
    }

    /// <summary><c>LcCommand</c> with no input; the output, if any, is LeechCore's and goes back through <see cref="MemFree"/>.</summary>
    public bool Command(nint handle, ulong command, out byte* output, out uint outputLength)
    {
        byte* data = null;
        uint length = 0;
        bool ok = _command(handle, command, 0, null, &data, &length) != 0;
        output = data;
        outputLength = length;
        return ok;
    }
}
