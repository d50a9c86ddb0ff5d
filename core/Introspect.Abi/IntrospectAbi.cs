namespace Introspect.Abi;

/// <summary>The version of the plugin contract this assembly defines.</summary>
/// <remarks>
/// Bumped on any change a built plugin could observe (a member added to an interface the host
/// calls, a struct laid out differently). The host refuses a plugin declaring another version
/// before loading any of its code.
/// </remarks>
public static class IntrospectAbi
{
    public const int Version = 1;
}
