using System.Text;

namespace Introspect.Connectors.Coredump.Tests.Builders;

/// <summary>Writes ELF core files the way QEMU's dump-guest-memory does: a PT_NOTE, then PT_LOADs with their data.</summary>
internal sealed class ElfBuilder
{
    public bool Is64 { get; init; } = true;

    public ushort Machine { get; init; } = 62;

    public ushort Type { get; init; } = 4;

    /// <summary>Write e_phnum as PN_XNUM with the count in section header 0.</summary>
    public bool ExtendedNumbering { get; init; }

    public List<Load> Loads { get; } = [];

    public List<(string Name, uint Type, byte[] Desc)> Notes { get; } = [];

    public int HeaderSize => Is64 ? 64 : 52;

    public int ProgramHeaderSize => Is64 ? 56 : 32;

    /// <summary>The file offset of program header <paramref name="index"/> (0 is the PT_NOTE).</summary>
    public long ProgramHeaderOffset(int index) => HeaderSize + (long)index * ProgramHeaderSize;

    public byte[] Build()
    {
        int phnum = 1 + Loads.Count;
        long sectionOffset = ProgramHeaderOffset(phnum);
        long noteOffset = sectionOffset + (ExtendedNumbering ? (Is64 ? 64 : 40) : 0);
        var notes = NoteBytes(Notes);
        long dataOffset = Bytes.AlignUp(noteOffset + notes.Length, 0x1000) + 0x10;
        var offsets = new long[Loads.Count];
        long end = dataOffset;
        for (int i = 0; i < Loads.Count; i++)
        {
            offsets[i] = Loads[i].Offset ?? end;
            end = Math.Max(end, offsets[i] + Loads[i].Data.Length);
        }
        var file = new byte[end];
        file[0] = 0x7F;
        Bytes.Ascii(file, 1, "ELF");
        file[4] = (byte)(Is64 ? 2 : 1);
        file[5] = 1;
        file[6] = 1;
        Bytes.U16(file, 16, Type);
        Bytes.U16(file, 18, Machine);
        Bytes.U32(file, 20, 1);
        if (Is64)
        {
            Bytes.U64(file, 32, (ulong)HeaderSize);
            Bytes.U64(file, 40, ExtendedNumbering ? (ulong)sectionOffset : 0);
            Bytes.U16(file, 52, 64);
            Bytes.U16(file, 54, 56);
            Bytes.U16(file, 56, ExtendedNumbering ? (ushort)0xFFFF : (ushort)phnum);
            Bytes.U16(file, 58, 64);
            Bytes.U16(file, 60, ExtendedNumbering ? (ushort)1 : (ushort)0);
            if (ExtendedNumbering)
                Bytes.U32(file, sectionOffset + 44, (uint)phnum);
        }
        else
        {
            Bytes.U32(file, 28, (uint)HeaderSize);
            Bytes.U32(file, 32, ExtendedNumbering ? (uint)sectionOffset : 0);
            Bytes.U16(file, 40, 52);
            Bytes.U16(file, 42, 32);
            Bytes.U16(file, 44, ExtendedNumbering ? (ushort)0xFFFF : (ushort)phnum);
            Bytes.U16(file, 46, 40);
            Bytes.U16(file, 48, ExtendedNumbering ? (ushort)1 : (ushort)0);
            if (ExtendedNumbering)
                Bytes.U32(file, sectionOffset + 28, (uint)phnum);
        }
        WriteProgramHeader(file, 0, 4, (ulong)noteOffset, 0, (ulong)notes.Length, (ulong)notes.Length);
        notes.CopyTo(file, noteOffset);
        for (int i = 0; i < Loads.Count; i++)
        {
            var load = Loads[i];
            WriteProgramHeader(file, i + 1, 1, (ulong)offsets[i], load.Physical, (ulong)load.Data.Length, load.MemorySize ?? (ulong)load.Data.Length);
            if (load.WriteData)
                load.Data.CopyTo(file, offsets[i]);
        }
        return file;
    }

    private void WriteProgramHeader(byte[] file, int index, uint type, ulong offset, ulong physical, ulong fileSize, ulong memorySize)
    {
        long at = ProgramHeaderOffset(index);
        Bytes.U32(file, at, type);
        if (Is64)
        {
            Bytes.U64(file, at + 8, offset);
            Bytes.U64(file, at + 16, physical);
            Bytes.U64(file, at + 24, physical);
            Bytes.U64(file, at + 32, fileSize);
            Bytes.U64(file, at + 40, memorySize);
        }
        else
        {
            Bytes.U32(file, at + 4, (uint)offset);
            Bytes.U32(file, at + 8, (uint)physical);
            Bytes.U32(file, at + 12, (uint)physical);
            Bytes.U32(file, at + 16, (uint)fileSize);
            Bytes.U32(file, at + 20, (uint)memorySize);
        }
    }

    public static byte[] NoteBytes(IEnumerable<(string Name, uint Type, byte[] Desc)> notes)
    {
        using var output = new MemoryStream();
        foreach (var (name, type, desc) in notes)
        {
            var nameBytes = Encoding.ASCII.GetBytes(name + "\0");
            var head = new byte[12];
            Bytes.U32(head, 0, (uint)nameBytes.Length);
            Bytes.U32(head, 4, (uint)desc.Length);
            Bytes.U32(head, 8, type);
            output.Write(head);
            output.Write(nameBytes);
            output.Write(new byte[Bytes.AlignUp(nameBytes.Length, 4) - nameBytes.Length]);
            output.Write(desc);
            output.Write(new byte[Bytes.AlignUp(desc.Length, 4) - desc.Length]);
        }
        return output.ToArray();
    }

    /// <summary>QEMU's QEMUCPUState for x86 (440 bytes).</summary>
    public static byte[] QemuCpuState(ulong rip, ulong rsp, ulong gsBase, ulong cr0, ulong cr3, ulong cr4, ulong kernelGsBase)
    {
        var desc = new byte[440];
        Bytes.U32(desc, 0, 1);
        Bytes.U32(desc, 4, 440);
        Bytes.U64(desc, 8 + 6 * 8, rsp);
        Bytes.U64(desc, 8 + 16 * 8, rip);
        Bytes.U64(desc, 152 + 4 * 24 + 16, gsBase);
        Bytes.U64(desc, 392, cr0);
        Bytes.U64(desc, 392 + 3 * 8, cr3);
        Bytes.U64(desc, 392 + 4 * 8, cr4);
        Bytes.U64(desc, 432, kernelGsBase);
        return desc;
    }

    /// <summary>An x86-64 elf_prstatus (336 bytes) with rip, rsp and gs_base set.</summary>
    public static byte[] PrStatusX64(ulong rip, ulong rsp, ulong gsBase)
    {
        var desc = new byte[336];
        Bytes.U64(desc, 112 + 16 * 8, rip);
        Bytes.U64(desc, 112 + 19 * 8, rsp);
        Bytes.U64(desc, 112 + 22 * 8, gsBase);
        return desc;
    }

    public sealed record Load(ulong Physical, byte[] Data)
    {
        /// <summary>Puts the data at this file offset instead of after the previous segment.</summary>
        public long? Offset { get; init; }

        public ulong? MemorySize { get; init; }

        /// <summary>False when another segment writes the same bytes at the same place.</summary>
        public bool WriteData { get; init; } = true;
    }
}
