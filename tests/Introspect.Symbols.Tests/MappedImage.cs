using Introspect.Abi;
using Introspect.Symbols.Pe;

namespace Introspect.Symbols.Tests;

/// <summary>A PE file laid out as the Windows loader maps it (headers, then each section at its RVA), served as memory
/// at a base address, with chosen pages missing as if paged out.</summary>
internal sealed class MappedImage : IMemory
{
    public const int PageSize = 4096;

    private readonly byte[] _image;
    private readonly HashSet<ulong> _missing = [];

    public MappedImage(string path, ulong imageBase)
    {
        Base = imageBase;
        var file = System.IO.File.ReadAllBytes(path);
        var parsed = PeImage.Load(file, path);
        _image = new byte[(parsed.SizeOfImage + PageSize - 1) / PageSize * PageSize];
        file.AsSpan(0, (int)Math.Min(parsed.SizeOfHeaders, (uint)file.Length)).CopyTo(_image);
        foreach (var section in parsed.Sections)
        {
            int length = (int)Math.Min(section.SizeOfRawData, section.MappedSize);
            length = Math.Min(length, file.Length - (int)section.PointerToRawData);
            if (length > 0)
                file.AsSpan((int)section.PointerToRawData, length).CopyTo(_image.AsSpan((int)section.VirtualAddress));
        }
        File = parsed;
    }

    public ulong Base { get; }

    /// <summary>The image as read from its file, to compare with.</summary>
    public PeImage File { get; }

    public int Reads { get; private set; }

    public int Size => _image.Length;

    /// <summary>Changes one byte of the mapped image.</summary>
    public void Poke(uint rva, byte value) => _image[rva] = value;

    /// <summary>Makes the page holding <paramref name="rva"/> unreadable.</summary>
    public void Remove(uint rva) => _missing.Add(rva / PageSize);

    public void Read(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None)
    {
        for (int i = 0; i < batch.Length; i++)
        {
            Reads++;
            ref var request = ref batch[i];
            request.Succeeded = false;
            ulong offset = request.Address - Base;
            int length = request.Buffer.Length;
            if (request.Address < Base || offset + (ulong)length > (ulong)_image.Length)
                continue;
            bool readable = true;
            for (ulong page = offset / PageSize; page <= (offset + (ulong)length - 1) / PageSize && readable; page++)
                readable = !_missing.Contains(page);
            if (!readable)
                continue;
            _image.AsSpan((int)offset, length).CopyTo(request.Buffer.Span);
            request.Succeeded = true;
        }
    }

    public void Write(Span<MemoryRequest> batch, MemoryFlags flags = MemoryFlags.None) => throw new NotSupportedException();
}
