using System.Globalization;
using System.Text;

namespace Introspect.Symbols.Pdb;

/// <summary>Lays a type out as a debugger's <c>dt</c> does: its size, then one line per member with offset and type.</summary>
internal static class TypeDump
{
    public static string Format(PdbType type)
    {
        var text = new StringBuilder();
        var shown = type.Underlying;
        text.Append(CultureInfo.InvariantCulture, $"{shown} ({PdbType.Hex(shown.Size)} bytes)");
        if (shown.IsForwardReference)
            text.Append(" (declared only: no definition in this PDB)");
        text.Append('\n');
        if (shown.Kind == PdbTypeKind.Enum)
        {
            foreach (var value in shown.Enumerators)
                text.Append(CultureInfo.InvariantCulture, $"   {value.Name} = {PdbType.Hex(value.Value)}\n");
            return text.ToString();
        }
        int width = 0;
        foreach (var field in shown.Fields)
            width = Math.Max(width, field.Name.Length);
        width = Math.Min(width, 40);
        foreach (var field in shown.Fields)
        {
            string name = field.Name.PadRight(width);
            switch (field.Kind)
            {
                case PdbFieldKind.StaticMember:
                    text.Append(CultureInfo.InvariantCulture, $"   static {name} : {field.Type}\n");
                    break;
                case PdbFieldKind.BaseClass:
                    text.Append(CultureInfo.InvariantCulture, $"   +{field.Offset:x3} {name} : (base) {field.Type}\n");
                    break;
                case PdbFieldKind.VirtualBaseClass:
                    text.Append(CultureInfo.InvariantCulture, $"   virtual {name} : (virtual base) {field.Type}\n");
                    break;
                default:
                    if (field.IsBitfield)
                        text.Append(CultureInfo.InvariantCulture,
                            $"   +0x{field.Offset:x3} {name} : Pos {field.Type.BitPosition}, {field.Type.BitLength} Bit{(field.Type.BitLength == 1 ? "" : "s")} ({field.Type.ElementType})\n");
                    else
                        text.Append(CultureInfo.InvariantCulture, $"   +0x{field.Offset:x3} {name} : {field.Type}\n");
                    break;
            }
        }
        return text.ToString();
    }
}
