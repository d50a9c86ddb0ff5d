using System.Runtime.InteropServices;
using System.Text;
using Introspect.Connectors.LeechCore.Native;
using Introspect.TestSupport;

namespace Introspect.Connectors.LeechCore.Tests;

/// <summary>The test library catches what it is there to catch: each rule broken on purpose is reported.</summary>
/// <remarks>Without these, "no violations" after the connector's tests could mean a library that checks nothing.</remarks>
public unsafe class FakeLibraryTests
{
    private LeechCoreLibrary _library = null!;
    private nint _handle;
    private MemScatter* _entries;
    private MemScatter** _pointers;
    private byte* _buffers;

    [SetUp]
    public void Open()
    {
        FakeLeechCore.Reset();
        _library = LeechCoreLoader.Load("test", FakeLeechCore.LibraryPath, null, "/nonexistent");
        _handle = Create("file://file=" + TestInputs.LinuxRawImage, out var failure);
        Assert.That(_handle, Is.Not.EqualTo(nint.Zero), failure);
        _entries = (MemScatter*)NativeMemory.AllocZeroed(4, (nuint)sizeof(MemScatter));
        _pointers = (MemScatter**)NativeMemory.AllocZeroed(4, (nuint)sizeof(nint));
        _buffers = (byte*)NativeMemory.AllocZeroed(4 * 4096);
        for (int i = 0; i < 4; i++)
        {
            _pointers[i] = &_entries[i];
            _entries[i].Version = LeechCoreAbi.MemScatterVersion;
            _entries[i].Address = 0x100000 + (ulong)i * 4096;
            _entries[i].Size = 4096;
            _entries[i].Buffer = _buffers + i * 4096;
        }
    }

    [TearDown]
    public void Close()
    {
        if (_handle != 0)
            _library.Close(_handle);
        NativeMemory.Free(_entries);
        NativeMemory.Free(_pointers);
        NativeMemory.Free(_buffers);
        FakeLeechCore.Reset();
    }

    private nint Create(string device, out string? failure, uint version = LeechCoreAbi.ConfigVersion)
    {
        LcConfig config = default;
        config.Version = version;
        var bytes = Encoding.UTF8.GetBytes(device);
        bytes.CopyTo(new Span<byte>(config.Device, 259));
        LcConfigErrorInfo* info = null;
        nint handle = _library.CreateEx(&config, &info);
        failure = null;
        if (info != null)
        {
            failure = new string((char*)((byte*)info + 80), 0, (int)info->UserTextLength);
            _library.MemFree(info);
        }
        return handle;
    }

    [Test]
    public void A_scatter_read_by_the_rules_is_served_without_complaint()
    {
        _library.ReadScatter(_handle, 4, _pointers);
        Assert.Multiple(() =>
        {
            Assert.That(FakeLeechCore.Violations, Is.Zero, FakeLeechCore.Log);
            for (int i = 0; i < 4; i++)
            {
                Assert.That(_entries[i].Succeeded, Is.EqualTo(1));
                Assert.That(_entries[i].StackIndex, Is.Zero, "the library keeps its stack balanced");
                Assert.That(new ReadOnlySpan<byte>(_buffers + i * 4096, 4096).SequenceEqual(Support.Expected(0x100000 + (ulong)i * 4096, 4096)), Is.True);
            }
        });
    }

    /// <summary>One way of breaking a scatter entry.</summary>
    public enum Breakage
    {
        WrongVersion,
        FNotReset,
        TooSmall,
        MoreThanAPage,
        UnalignedAddress,
        PageCrossing,
        StackTooDeep,
        NoBuffer,
        SharedBuffer,
    }

    [TestCase(Breakage.WrongVersion, "version 0xc0fe0001")]
    [TestCase(Breakage.FNotReset, "f must be reset")]
    [TestCase(Breakage.TooSmall, "cb must be 8..0x1000")]
    [TestCase(Breakage.MoreThanAPage, "cb must be 8..0x1000")]
    [TestCase(Breakage.UnalignedAddress, "not DWORD aligned")]
    [TestCase(Breakage.PageCrossing, "crosses a 0x1000 page boundary")]
    [TestCase(Breakage.StackTooDeep, "iStack=11")]
    [TestCase(Breakage.NoBuffer, "pb=NULL")]
    [TestCase(Breakage.SharedBuffer, "overlap")]
    public void A_broken_scatter_entry_fails_the_whole_call_and_is_reported(Breakage breakage, string expected)
    {
        MemScatter* entry = &_entries[2];
        switch (breakage)
        {
            case Breakage.WrongVersion: entry->Version = 0xc0fe0001; break;
            case Breakage.FNotReset: entry->Succeeded = 1; break;
            case Breakage.TooSmall: entry->Size = 4; break;
            case Breakage.MoreThanAPage: entry->Size = 0x1004; break;
            case Breakage.UnalignedAddress: entry->Address += 2; entry->Size = 8; break;
            case Breakage.PageCrossing: entry->Address += 0xff8; entry->Size = 16; break;
            case Breakage.StackTooDeep: entry->StackIndex = 11; break;
            case Breakage.NoBuffer: entry->Buffer = null; break;
            case Breakage.SharedBuffer: entry->Buffer = _entries[1].Buffer + 8; break;
        }
        _library.ReadScatter(_handle, 4, _pointers);
        Assert.Multiple(() =>
        {
            Assert.That(FakeLeechCore.Violations, Is.GreaterThan(0));
            Assert.That(FakeLeechCore.Log, Does.Contain(expected));
            for (int i = 0; i < 4; i++)
                Assert.That(_entries[i].Succeeded, Is.Zero, "a call with a broken entry serves none");
        });
    }

    [Test]
    public void Freeing_memory_the_library_did_not_allocate_is_reported()
    {
        _library.MemFree(_buffers);
        Assert.That(FakeLeechCore.Log, Does.Contain("was not allocated by the library"));
    }

    [Test]
    public void Error_information_is_the_callers_to_free()
    {
        LcConfig config = default;
        config.Version = LeechCoreAbi.ConfigVersion;
        "bogus://"u8.CopyTo(new Span<byte>(config.Device, 259));
        LcConfigErrorInfo* info = null;
        Assert.That(_library.CreateEx(&config, &info), Is.EqualTo(nint.Zero));
        Assert.That(info != null, Is.True);
        Assert.That(FakeLeechCore.OutstandingAllocations, Is.EqualTo(1));
        _library.MemFree(info);
        Assert.That(FakeLeechCore.OutstandingAllocations, Is.Zero);
        _library.MemFree(info);
        Assert.That(FakeLeechCore.Log, Does.Contain("freed already"));
    }

    [Test]
    public void A_wrong_LC_CONFIG_version_is_refused_and_reported()
    {
        Assert.That(Create(TestInputs.LinuxRawImage, out _, version: 0xc0fd0001), Is.EqualTo(nint.Zero));
        Assert.That(FakeLeechCore.Log, Does.Contain("LC_CONFIG.dwVersion is 0xc0fd0001"));
    }

    [Test]
    public void Closing_a_handle_twice_is_reported()
    {
        _library.Close(_handle);
        _library.Close(_handle);
        _handle = 0;
        Assert.That(FakeLeechCore.Log, Does.Contain("is not an open LeechCore handle"));
    }

    [Test]
    public void Writing_to_a_read_only_device_is_reported()
    {
        _library.WriteScatter(_handle, 1, _pointers);
        Assert.That(FakeLeechCore.Log, Does.Contain("the device is read-only"));
        Assert.That(_entries[0].Succeeded, Is.Zero);
    }

    [Test]
    public void LcRead_takes_any_address_and_length()
    {
        var buffer = new byte[5000];
        fixed (byte* b = buffer)
            Assert.That(_library.Read(_handle, 0x2161903, 5000, b), Is.True);
        Assert.That(buffer, Is.EqualTo(Support.Expected(0x2161903, 5000)));
        Assert.That(FakeLeechCore.Violations, Is.Zero, FakeLeechCore.Log);
    }
}
