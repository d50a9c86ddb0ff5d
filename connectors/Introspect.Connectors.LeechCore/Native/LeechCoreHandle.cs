using System.Runtime.InteropServices;

namespace Introspect.Connectors.LeechCore.Native;

/// <summary>An open LeechCore device (<c>LcCreateEx</c>'s HANDLE), closed once with <c>LcClose</c>.</summary>
/// <remarks>
/// Native calls take a reference on the handle for their duration (<see cref="SafeHandle.DangerousAddRef"/>), so a
/// <see cref="SafeHandle.Dispose()"/> racing a read closes the device only after the read returns.
/// </remarks>
internal sealed class LeechCoreHandle : SafeHandle
{
    private readonly LeechCoreLibrary _library;

    public LeechCoreHandle(LeechCoreLibrary library, nint handle) : base(0, ownsHandle: true)
    {
        _library = library;
        SetHandle(handle);
    }

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle()
    {
        _library.Close(handle);
        return true;
    }
}
