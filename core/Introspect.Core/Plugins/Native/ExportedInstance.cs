using System.Runtime.InteropServices;

namespace Introspect.Core.Plugins.Native;

/// <summary>A managed object exposed to native code as a contract instance struct (<c>ip_connector</c>, <c>ip_os</c>).</summary>
/// <remarks>
/// <c>self</c> in the struct is a <see cref="GCHandle"/> to the managed object; the struct lives in native memory until
/// <see cref="Dispose"/>, which the host calls only after the native layer reading it was destroyed. The derived type
/// keeps its vtable of <see cref="UnmanagedCallersOnlyAttribute"/> functions; what every such table shares — finding the
/// object again, keeping the last error for <c>last_error</c> — is here. No exception crosses into native code.
/// </remarks>
internal abstract unsafe class ExportedInstance<TInstance> : IDisposable where TInstance : unmanaged
{
    private GCHandle _self;
    private TInstance* _instance;
    private string? _lastError;

    /// <param name="describe">Builds the instance struct from the <c>self</c> pointer.</param>
    protected ExportedInstance(Func<nint, TInstance> describe)
    {
        _self = GCHandle.Alloc(this);
        _instance = (TInstance*)NativeMemory.AllocZeroed((nuint)sizeof(TInstance));
        *_instance = describe(GCHandle.ToIntPtr(_self));
    }

    public TInstance* Pointer => _instance;

    public void Dispose()
    {
        if (_instance == null)
            return;
        NativeMemory.Free(_instance);
        _instance = null;
        _self.Free();
    }

    /// <summary>The exported object behind a <c>self</c> pointer native code passed back, or null for a bad one.</summary>
    protected static T? From<T>(void* self) where T : class =>
        self == null ? null : GCHandle.FromIntPtr((nint)self).Target as T;

    /// <summary>Keeps the exception's message for <c>last_error</c> and returns its contract code.</summary>
    protected int Fail(Exception e)
    {
        _lastError = e.Message;
        return (int)NativeErrors.FromException(e);
    }

    protected int Fail(NativeResult result, string message)
    {
        _lastError = message;
        return (int)result;
    }

    /// <summary>The body of every vtable's <c>last_error</c>: copies the kept message into the caller's buffer.</summary>
    protected static nuint CopyLastError(void* self, byte* buffer, nuint capacity)
    {
        try
        {
            return NativeErrors.CopyMessage(From<ExportedInstance<TInstance>>(self)?._lastError, buffer, capacity);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return 0;
        }
    }
}
