using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Introspect.Abi;

namespace Introspect.Core.Plugins.Native;

/// <summary>A loaded native library; freeing it waits until every instance created from it is destroyed.</summary>
internal sealed class NativeLibraryHandle : SafeHandle
{
    public NativeLibraryHandle(nint handle) : base(0, ownsHandle: true) => SetHandle(handle);

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle()
    {
        NativeLibrary.Free(handle);
        return true;
    }
}

/// <summary>One native plugin of a loaded library: its checked descriptor and its <c>create</c> entry.</summary>
/// <remarks>
/// This type and the instance handle are the chokepoint where native pointers are made and released: the library is
/// loaded only after the file's export table passed <see cref="NativePluginReader"/>, and the descriptor in memory is
/// checked again (size, version, magic, ABI, kind, name) before <c>create</c> is read from it.
/// </remarks>
internal sealed unsafe class NativePlugin
{
    private const int ErrorCapacity = 2048;

    private readonly NativeLibraryHandle _library;
    private readonly delegate* unmanaged<IpCreateArgs*, void*, byte*, nuint, int> _create;

    private NativePlugin(PluginDescriptor descriptor, NativeLibraryHandle library, delegate* unmanaged<IpCreateArgs*, void*, byte*, nuint, int> create)
    {
        Descriptor = descriptor;
        _library = library;
        _create = create;
    }

    public PluginDescriptor Descriptor { get; }

    public NativeLibraryHandle Library => _library;

    /// <summary>Loads <paramref name="descriptor"/>'s library (sharing <paramref name="library"/> when given) and checks its descriptor in memory.</summary>
    /// <exception cref="PluginException">The file changed, cannot be loaded, or its descriptor in memory is not the one in the file.</exception>
    public static NativePlugin Load(PluginDescriptor descriptor, NativeLibraryHandle? library)
    {
        bool loadedHere = library is null;
        if (library is null)
        {
            // The file is read again right before loading: what was listed may have been replaced since.
            NativeImage? image;
            try
            {
                image = NativeImage.Read(descriptor.Path);
            }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
            {
                throw new PluginException($"{descriptor.KindText} '{descriptor.Name}' ({descriptor.Path}) cannot be read: {e.Message}", e);
            }
            if (image is null)
                throw new PluginException($"{descriptor.KindText} '{descriptor.Name}': {descriptor.Path} is no longer a native library.");
            if (image.Incompatibility is not null)
                throw new PluginException($"{descriptor.KindText} '{descriptor.Name}' ({descriptor.Path}) cannot be loaded: {image.Incompatibility}.");
            if (!image.Exports.Any(e => e.Symbol == descriptor.EntryPoint))
                throw new PluginException($"{descriptor.KindText} '{descriptor.Name}': {descriptor.Path} no longer exports '{descriptor.EntryPoint}'.");
            try
            {
                library = new NativeLibraryHandle(NativeLibrary.Load(descriptor.Path));
            }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                throw new PluginException($"{descriptor.KindText} '{descriptor.Name}' ({descriptor.Path}) could not be loaded: {e.Message}", e);
            }
        }

        bool added = false;
        try
        {
            library.DangerousAddRef(ref added);
            if (!NativeLibrary.TryGetExport(library.DangerousGetHandle(), descriptor.EntryPoint, out nint address) || address == 0)
                throw new PluginException($"{descriptor.KindText} '{descriptor.Name}': the loaded {descriptor.Path} does not export '{descriptor.EntryPoint}'.");
            var inMemory = ReadLoadedDescriptor(descriptor, (byte*)address);
            if (inMemory.Name != descriptor.Name || inMemory.Kind != descriptor.Kind || inMemory.Version != descriptor.Version || !inMemory.IsCompatible)
                throw new PluginException($"{descriptor.KindText} '{descriptor.Name}': the loaded descriptor '{descriptor.EntryPoint}' says {inMemory.KindName} '{inMemory.Name}' {inMemory.Version} ABI {inMemory.AbiVersion}, not what the file declared.");
            var create = *(delegate* unmanaged<IpCreateArgs*, void*, byte*, nuint, int>*)((byte*)address + NativeAbi.DescriptorCreateOffset);
            if (create == null)
                throw new PluginException($"{descriptor.KindText} '{descriptor.Name}': descriptor '{descriptor.EntryPoint}' has no create function.");
            return new NativePlugin(descriptor, library, create);
        }
        catch when (loadedHere)
        {
            library.Dispose();
            throw;
        }
        finally
        {
            // The plugin object keeps no reference count of its own: instances take theirs in Create.
            if (added)
                library.DangerousRelease();
        }
    }

    private static PluginDescriptor ReadLoadedDescriptor(PluginDescriptor descriptor, byte* address)
    {
        uint size = *(uint*)address;
        int readable = (int)Math.Min(size, (uint)NativeAbi.MaxDescriptorSize);
        try
        {
            return NativePluginReader.Parse(descriptor.Path, descriptor.EntryPoint, new ReadOnlySpan<byte>(address, readable), null, IntPtr.Size, null);
        }
        catch (InvalidDataException e)
        {
            throw new PluginException($"{descriptor.KindText} '{descriptor.Name}': its descriptor in memory is not valid: {e.Message}", e);
        }
    }

    /// <summary>Calls <c>create</c> with the bound arguments and inputs; the returned handle owns the instance.</summary>
    /// <param name="arguments">Checked and completed by the host.</param>
    /// <param name="context">Where the plugin's log goes.</param>
    /// <param name="inputConnector">An OS layer's input, else null.</param>
    /// <param name="inputOs">A connector's OS input, else null.</param>
    /// <param name="tlb">The translation cache settings for an OS layer.</param>
    /// <exception cref="PluginArgumentException">The plugin refused an argument (IP_ERROR_ARGUMENT, IP_ERROR_NOT_FOUND).</exception>
    /// <exception cref="InvalidDataException">The plugin found its source malformed.</exception>
    /// <exception cref="PluginException">Any other failure, or an instance the host cannot trust.</exception>
    public NativeInstance Create(PluginArguments arguments, IPluginContext context, IpConnector* inputConnector, IpOs* inputOs, ITranslationCacheSettings? tlb)
    {
        bool isConnector = Descriptor.Kind == PluginKind.Connector;
        var host = NativeHostServices.Create(context);
        nuint instanceSize = isConnector ? (nuint)sizeof(IpConnector) : (nuint)sizeof(IpOs);
        void* instance = NativeMemory.AllocZeroed(instanceSize);
        var strings = new List<nint>();
        IpArgument* argumentArray = null;
        bool added = false;
        try
        {
            _library.DangerousAddRef(ref added);
            if (isConnector)
                *(IpConnector*)instance = new IpConnector { Size = (uint)sizeof(IpConnector), Version = NativeAbi.ConnectorVersion };
            else
                *(IpOs*)instance = new IpOs { Size = (uint)sizeof(IpOs), Version = NativeAbi.OsVersion };

            var values = arguments.Values.ToList();
            argumentArray = (IpArgument*)NativeMemory.AllocZeroed((nuint)Math.Max(1, values.Count), (nuint)sizeof(IpArgument));
            for (int i = 0; i < values.Count; i++)
            {
                argumentArray[i].Key = Utf8(values[i].Key.ToLowerInvariant(), strings);
                argumentArray[i].Value = Utf8(values[i].Value, strings);
            }
            var args = new IpCreateArgs
            {
                Size = (uint)sizeof(IpCreateArgs),
                Version = NativeAbi.CreateArgsVersion,
                AbiVersion = (uint)IntrospectAbi.Version,
                ArgumentCount = (uint)values.Count,
                Arguments = argumentArray,
                Host = host.Pointer,
                InputConnector = inputConnector,
                InputOs = inputOs,
                TlbEntries = tlb is { Enabled: true } ? (uint)tlb.Entries : 0,
                TlbMaxAgeNs = tlb?.MaxAge is { } age ? (ulong)(age.Ticks * 100) : 0,
            };
            byte* error = stackalloc byte[ErrorCapacity];
            error[0] = 0;
            int result = _create(&args, instance, error, ErrorCapacity);
            if (result != (int)NativeResult.Ok)
            {
                string message = NativeAbi.ReadText(new ReadOnlySpan<byte>(error, ErrorCapacity));
                throw NativeErrors.ToException((NativeResult)result, Descriptor, "open", message);
            }
            var handle = isConnector ? CheckConnector((IpConnector*)instance) : CheckOs((IpOs*)instance);
            handle.Attach(instance, host, _library);
            added = false; // the instance owns the reference now
            instance = null;
            host = null;
            return handle;
        }
        finally
        {
            foreach (var s in strings)
                NativeMemory.Free((void*)s);
            NativeMemory.Free(argumentArray);
            if (instance is not null)
                NativeMemory.Free(instance);
            host?.Dispose();
            if (added)
                _library.DangerousRelease();
        }
    }

    private NativeInstance CheckConnector(IpConnector* connector)
    {
        var vtable = connector->Vtable;
        string? problem =
            connector->Size < sizeof(IpConnector) || connector->Version != NativeAbi.ConnectorVersion ? $"ip_connector size {connector->Size} version {connector->Version}"
            : vtable == null ? "no vtable"
            : vtable->Size < sizeof(IpConnectorVtable) || vtable->Version != NativeAbi.ConnectorVtableVersion ? $"ip_connector_vtable size {vtable->Size} version {vtable->Version}"
            : vtable->Metadata == null || vtable->Read == null || vtable->MemoryMap == null || vtable->LastError == null || vtable->Destroy == null ? "a vtable without metadata, read, memory_map, last_error or destroy"
            : null;
        return Checked(problem, connector->Self, vtable == null ? null : vtable->Destroy);
    }

    private NativeInstance CheckOs(IpOs* os)
    {
        var vtable = os->Vtable;
        string? problem =
            os->Size < sizeof(IpOs) || os->Version != NativeAbi.OsVersion ? $"ip_os size {os->Size} version {os->Version}"
            : vtable == null ? "no vtable"
            : vtable->Size < sizeof(IpOsVtable) || vtable->Version != NativeAbi.OsVtableVersion ? $"ip_os_vtable size {vtable->Size} version {vtable->Version}"
            : vtable->Info == null || vtable->ProcessList == null || vtable->ProcessInfo == null || vtable->ProcessRead == null || vtable->ProcessTranslate == null
              || vtable->MemoryAreas == null || vtable->ModuleList == null || vtable->LastError == null || vtable->Destroy == null ? "a vtable missing a required function"
            : null;
        return Checked(problem, os->Self, vtable == null ? null : vtable->Destroy);
    }

    private NativeInstance Checked(string? problem, void* self, delegate* unmanaged<void*, void> destroy)
    {
        if (problem is null)
            return new NativeInstance(self, destroy);
        // An instance the host cannot trust is destroyed when it can be, and refused.
        if (destroy != null && problem.StartsWith("a vtable", StringComparison.Ordinal))
            destroy(self);
        throw new PluginException($"{Descriptor.KindText} '{Descriptor.Name}' {Descriptor.Version} returned an instance this host cannot use: {problem}; this host speaks plugin ABI {IntrospectAbi.Version} (introspect_plugin.h).");
    }

    private static byte* Utf8(string text, List<nint> owned)
    {
        int length = Encoding.UTF8.GetByteCount(text);
        byte* buffer = (byte*)NativeMemory.Alloc((nuint)length + 1);
        owned.Add((nint)buffer);
        Encoding.UTF8.GetBytes(text, new Span<byte>(buffer, length));
        buffer[length] = 0;
        return buffer;
    }
}

/// <summary>A native instance (<c>self</c> and its <c>destroy</c>), destroyed exactly once, after every call in flight.</summary>
/// <remarks>Callers bracket each call with <see cref="SafeHandle.DangerousAddRef"/>/<see cref="SafeHandle.DangerousRelease"/>, so disposing it while another thread is inside a call waits for that call's release.</remarks>
internal sealed unsafe class NativeInstance : SafeHandle
{
    private readonly delegate* unmanaged<void*, void> _destroy;
    private void* _instance;
    private NativeHostServices? _host;
    private NativeLibraryHandle? _library;

    public NativeInstance(void* self, delegate* unmanaged<void*, void> destroy) : base(0, ownsHandle: true)
    {
        _destroy = destroy;
        SetHandle((nint)self);
    }

    // A plugin may use 0 as its self pointer; validity is whether the instance was attached.
    public override bool IsInvalid => _instance is null;

    public void* Self => (void*)handle;

    /// <summary>The instance struct the host allocated (an <see cref="IpConnector"/> or <see cref="IpOs"/>), valid until release.</summary>
    public void* Instance => _instance;

    internal void Attach(void* instance, NativeHostServices host, NativeLibraryHandle library)
    {
        _instance = instance;
        _host = host;
        _library = library;
    }

    protected override bool ReleaseHandle()
    {
        _destroy((void*)handle);
        NativeMemory.Free(_instance);
        _host?.Dispose();
        _library?.DangerousRelease();
        return true;
    }
}

/// <summary>The <c>ip_host</c> a native instance logs through: native memory pointing back at the plugin's context.</summary>
internal sealed unsafe class NativeHostServices : IDisposable
{
    private GCHandle _context;

    private NativeHostServices(IPluginContext context)
    {
        _context = GCHandle.Alloc(context);
        Pointer = (IpHost*)NativeMemory.AllocZeroed((nuint)sizeof(IpHost));
        *Pointer = new IpHost
        {
            Size = (uint)sizeof(IpHost),
            Version = NativeAbi.HostVersion,
            Context = (void*)GCHandle.ToIntPtr(_context),
            Log = &Log,
        };
    }

    public IpHost* Pointer { get; private set; }

    public static NativeHostServices Create(IPluginContext context) => new(context);

    [UnmanagedCallersOnly]
    private static void Log(void* context, int level, byte* message)
    {
        try
        {
            if (context == null || message == null)
                return;
            var target = (IPluginContext?)GCHandle.FromIntPtr((nint)context).Target;
            var text = Marshal.PtrToStringUTF8((nint)message) ?? "";
            target?.Log(Enum.IsDefined((PluginLogLevel)level) ? (PluginLogLevel)level : PluginLogLevel.Error, text);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Nothing may cross back into native code; a logger that fails loses this one message.
        }
    }

    public void Dispose()
    {
        if (Pointer == null)
            return;
        NativeMemory.Free(Pointer);
        Pointer = null;
        _context.Free();
    }
}

/// <summary>Maps between result codes and exceptions, both ways.</summary>
internal static class NativeErrors
{
    public static Exception ToException(NativeResult result, PluginDescriptor plugin, string what, string message)
    {
        string text = message.Length > 0 ? message : $"{result} ({(int)result})";
        string prefixed = text.StartsWith(plugin.Name, StringComparison.Ordinal) ? text : $"{plugin.Name}: {text}";
        return result switch
        {
            NativeResult.Argument or NativeResult.NotFound => new PluginArgumentException(prefixed),
            NativeResult.InvalidData => new InvalidDataException(prefixed),
            NativeResult.IO => new IOException(prefixed),
            NativeResult.Unsupported => new NotSupportedException(prefixed),
            _ => new PluginException($"{plugin.KindText} '{plugin.Name}' {plugin.Version} failed to {what} (error {(int)result}, {ResultName(result)}): {text}"),
        };
    }

    public static NativeResult FromException(Exception e) => e switch
    {
        PluginArgumentException or ArgumentException => NativeResult.Argument,
        InvalidDataException => NativeResult.InvalidData,
        IOException or UnauthorizedAccessException => NativeResult.IO,
        NotSupportedException => NativeResult.Unsupported,
        _ => NativeResult.Internal,
    };

    public static string ResultName(NativeResult result) => result switch
    {
        NativeResult.Ok => "IP_OK",
        NativeResult.Argument => "IP_ERROR_ARGUMENT",
        NativeResult.InvalidData => "IP_ERROR_INVALID_DATA",
        NativeResult.IO => "IP_ERROR_IO",
        NativeResult.Unsupported => "IP_ERROR_UNSUPPORTED",
        NativeResult.NeedMore => "IP_ERROR_NEED_MORE",
        NativeResult.NotFound => "IP_ERROR_NOT_FOUND",
        NativeResult.Version => "IP_ERROR_VERSION",
        NativeResult.Internal => "IP_ERROR_INTERNAL",
        _ => "an unknown code",
    };

    /// <summary>Copies an instance's last error message, bounded.</summary>
    public static unsafe string LastError(void* self, delegate* unmanaged<void*, byte*, nuint, nuint> lastError)
    {
        const int Capacity = 1024;
        byte* buffer = stackalloc byte[Capacity];
        buffer[0] = 0;
        lastError(self, buffer, Capacity);
        return NativeAbi.ReadText(new ReadOnlySpan<byte>(buffer, Capacity));
    }

    /// <summary>Writes a message into a caller's buffer as the contract's <c>last_error</c> does: truncated, NUL-terminated; returns its full length.</summary>
    public static unsafe nuint CopyMessage(string? message, byte* buffer, nuint capacity)
    {
        message ??= "";
        int length = Encoding.UTF8.GetByteCount(message);
        if (buffer != null && capacity > 0)
            NativeAbi.WriteText(new Span<byte>(buffer, (int)Math.Min(capacity, int.MaxValue)), message);
        return (nuint)length;
    }
}
