namespace Introspect.Symbols.Pdb;

/// <summary>How names are matched: C decoration, and the signatures debuggers print after a function's name.</summary>
internal static class SymbolNames
{
    /// <summary>
    /// Strips C decoration the way DIA does for display: one leading <c>_</c> or <c>@</c>, and a trailing
    /// <c>@digits</c> (x86 <c>__stdcall</c>/<c>__fastcall</c> argument bytes). C++ decorated names (<c>?...</c>) and names
    /// with nothing to strip come back unchanged.
    /// </summary>
    public static string Undecorate(string name)
    {
        if (name.Length < 2 || name[0] == '?')
            return name;
        int start = name[0] is '_' or '@' ? 1 : 0;
        int end = name.Length;
        int at = name.LastIndexOf('@');
        if (at > start && at < name.Length - 1)
        {
            bool digits = true;
            for (int i = at + 1; i < name.Length && digits; i++)
                digits = char.IsAsciiDigit(name[i]);
            if (digits)
                end = at;
        }
        return start == 0 && end == name.Length ? name : name[start..end];
    }

    /// <summary>
    /// The qualified name inside a function name as a debugger prints it: without <c>static</c>, the return type, the
    /// parameter list and trailing qualifiers, e.g. <c>static int ns::C::f(int) const</c> gives <c>ns::C::f</c>.
    /// </summary>
    /// <returns>Null when there is nothing to strip.</returns>
    public static string? StripSignature(string name)
    {
        var text = name.AsSpan().Trim();
        // The parameter list: the last top-level "(...)" (templates may hold parentheses of their own).
        int close = text.LastIndexOf(')');
        if (close < 0)
            return null;
        int depth = 0, open = -1;
        for (int i = close; i >= 0; i--)
        {
            if (text[i] == ')')
                depth++;
            else if (text[i] == '(' && --depth == 0)
            {
                open = i;
                break;
            }
        }
        if (open <= 0)
            return null;
        var head = text[..open].TrimEnd();
        // The name is the last top-level word of what remains (outside <...> and `...'), except that an operator's
        // name may hold spaces and angle brackets of its own ("operator delete", "operator<").
        int operatorAt = head.LastIndexOf("operator", StringComparison.Ordinal);
        bool isOperator = operatorAt >= 0 && (operatorAt == 0 || head[operatorAt - 1] is ' ' or ':')
            && (operatorAt + 8 == head.Length || !char.IsAsciiLetterOrDigit(head[operatorAt + 8]) && head[operatorAt + 8] != '_');
        int nameStart = WordStart(head, isOperator ? operatorAt : head.Length);
        var result = head[nameStart..].Trim();
        return result.IsEmpty || result.Length == name.Length ? null : result.ToString();
    }

    /// <summary>Where the qualified name that ends at <paramref name="end"/> starts: after the last space, <c>*</c> or
    /// <c>&amp;</c> outside template arguments and quoted names.</summary>
    private static int WordStart(ReadOnlySpan<char> text, int end)
    {
        int angle = 0, quote = 0;
        for (int i = end - 1; i >= 0; i--)
        {
            char c = text[i];
            if (c == '>')
                angle++;
            else if (c == '<' && angle > 0)
                angle--;
            else if (c == '\'')
                quote++;
            else if (c == '`' && quote > 0)
                quote--;
            else if (c is ' ' or '*' or '&' && angle == 0 && quote == 0)
                return i + 1;
        }
        return 0;
    }
}
