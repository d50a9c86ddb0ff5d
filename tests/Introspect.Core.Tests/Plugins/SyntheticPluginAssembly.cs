using System.Reflection;
using System.Reflection.Emit;
using Introspect.Abi;

namespace Introspect.Core.Tests.Plugins;

/// <summary>Writes real plugin assemblies to disk with <see cref="PersistedAssemblyBuilder"/>, to test what the host does with plugins it did not build.</summary>
internal static class SyntheticPluginAssembly
{
    /// <summary>An assembly declaring one connector plugin whose factory type has the given name (it defines no such type unless <paramref name="defineFactory"/>).</summary>
    public static string Write(string folder, string assemblyName, string pluginName, int abiVersion, string factoryTypeName, bool defineFactory)
    {
        var assembly = new PersistedAssemblyBuilder(new AssemblyName(assemblyName), typeof(object).Assembly);
        var module = assembly.DefineDynamicModule(assemblyName);
        Type factoryType;
        if (defineFactory)
        {
            // A type that exists but does not implement IConnectorFactory: loading must refuse it with a reason.
            var type = module.DefineType(factoryTypeName, TypeAttributes.Public | TypeAttributes.Sealed | TypeAttributes.Class);
            type.DefineDefaultConstructor(MethodAttributes.Public);
            factoryType = type.CreateType();
        }
        else
        {
            factoryType = typeof(object);
        }
        var constructor = typeof(IntrospectPluginAttribute).GetConstructors().Single();
        var description = typeof(IntrospectPluginAttribute).GetProperty(nameof(IntrospectPluginAttribute.Description))!;
        assembly.SetCustomAttribute(new CustomAttributeBuilder(
            constructor,
            [PluginKind.Connector, pluginName, "2.5.1", abiVersion, factoryType],
            [description],
            [$"synthetic plugin {pluginName}"]));
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, assemblyName + ".dll");
        assembly.Save(path);
        return path;
    }
}
