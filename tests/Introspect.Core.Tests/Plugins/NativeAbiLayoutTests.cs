using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Introspect.Core.Plugins.Native;
using Introspect.Tests.Plugins;

namespace Introspect.Core.Tests.Plugins;

/// <summary>The header is the source of truth: the host's mirror of every struct must have the C compiler's sizes and offsets.</summary>
public class NativeAbiLayoutTests
{
    // C struct, C field, managed type, managed field (null: the C name in PascalCase).
    private static readonly (string CStruct, string CField, Type Managed, string? ManagedField)[] Fields =
    [
        ("ip_memory_request", "address", typeof(IpMemoryRequest), null),
        ("ip_memory_request", "buffer", typeof(IpMemoryRequest), null),
        ("ip_memory_request", "length", typeof(IpMemoryRequest), null),
        ("ip_memory_request", "ok", typeof(IpMemoryRequest), null),
        ("ip_memory_range", "size", typeof(IpMemoryRange), null),
        ("ip_memory_range", "backing", typeof(IpMemoryRange), null),
        ("ip_host", "context", typeof(IpHost), null),
        ("ip_host", "log", typeof(IpHost), null),
        ("ip_argument", "value", typeof(IpArgument), null),
        ("ip_create_args", "abi_version", typeof(IpCreateArgs), null),
        ("ip_create_args", "argument_count", typeof(IpCreateArgs), null),
        ("ip_create_args", "arguments", typeof(IpCreateArgs), null),
        ("ip_create_args", "host", typeof(IpCreateArgs), null),
        ("ip_create_args", "input_connector", typeof(IpCreateArgs), null),
        ("ip_create_args", "input_os", typeof(IpCreateArgs), null),
        ("ip_create_args", "tlb_entries", typeof(IpCreateArgs), null),
        ("ip_create_args", "tlb_max_age_ns", typeof(IpCreateArgs), "TlbMaxAgeNs"),
        ("ip_connector_metadata", "max_address", typeof(IpConnectorMetadata), null),
        ("ip_connector_metadata", "real_size", typeof(IpConnectorMetadata), null),
        ("ip_connector_metadata", "read_only", typeof(IpConnectorMetadata), null),
        ("ip_connector_metadata", "ideal_batch_size", typeof(IpConnectorMetadata), null),
        ("ip_connector_hints", "format", typeof(IpConnectorHints), null),
        ("ip_connector_hints", "architecture", typeof(IpConnectorHints), null),
        ("ip_connector_hints", "present", typeof(IpConnectorHints), null),
        ("ip_connector_hints", "directory_table_base", typeof(IpConnectorHints), "DirectoryTableBaseValue"),
        ("ip_connector_hints", "kd_debugger_data_block", typeof(IpConnectorHints), "KdDebuggerDataBlockValue"),
        ("ip_connector_hints", "pae_enabled", typeof(IpConnectorHints), null),
        ("ip_cpu_registers", "index", typeof(IpCpuRegisters), null),
        ("ip_cpu_registers", "instruction_pointer", typeof(IpCpuRegisters), null),
        ("ip_cpu_registers", "kernel_gs_base", typeof(IpCpuRegisters), null),
        ("ip_connector_vtable", "metadata", typeof(IpConnectorVtable), null),
        ("ip_connector_vtable", "read", typeof(IpConnectorVtable), null),
        ("ip_connector_vtable", "write", typeof(IpConnectorVtable), null),
        ("ip_connector_vtable", "memory_map", typeof(IpConnectorVtable), null),
        ("ip_connector_vtable", "set_memory_map", typeof(IpConnectorVtable), null),
        ("ip_connector_vtable", "hints", typeof(IpConnectorVtable), null),
        ("ip_connector_vtable", "vmcoreinfo", typeof(IpConnectorVtable), "VmcoreInfo"),
        ("ip_connector_vtable", "cpus", typeof(IpConnectorVtable), null),
        ("ip_connector_vtable", "last_error", typeof(IpConnectorVtable), null),
        ("ip_connector_vtable", "destroy", typeof(IpConnectorVtable), null),
        ("ip_connector", "self", typeof(IpConnector), null),
        ("ip_connector", "vtable", typeof(IpConnector), null),
        ("ip_os_info", "name", typeof(IpOsInfo), null),
        ("ip_os_info", "version_text", typeof(IpOsInfo), null),
        ("ip_os_info", "architecture", typeof(IpOsInfo), null),
        ("ip_os_info", "kernel_base", typeof(IpOsInfo), null),
        ("ip_os_info", "kernel_slide", typeof(IpOsInfo), null),
        ("ip_os_info", "directory_table_base", typeof(IpOsInfo), null),
        ("ip_process", "pid", typeof(IpProcess), null),
        ("ip_process", "kernel_object", typeof(IpProcess), null),
        ("ip_process", "state", typeof(IpProcess), null),
        ("ip_process", "thread_count", typeof(IpProcess), null),
        ("ip_process", "architecture", typeof(IpProcess), null),
        ("ip_process", "name", typeof(IpProcess), null),
        ("ip_process", "state_text", typeof(IpProcess), null),
        ("ip_process_details", "process", typeof(IpProcessDetails), null),
        ("ip_process_details", "path", typeof(IpProcessDetails), null),
        ("ip_process_details", "command_line", typeof(IpProcessDetails), null),
        ("ip_memory_area", "start", typeof(IpMemoryArea), null),
        ("ip_memory_area", "offset", typeof(IpMemoryArea), null),
        ("ip_memory_area", "protection", typeof(IpMemoryArea), null),
        ("ip_memory_area", "path", typeof(IpMemoryArea), null),
        ("ip_module", "base", typeof(IpModule), null),
        ("ip_module", "image_size", typeof(IpModule), null),
        ("ip_module", "name", typeof(IpModule), null),
        ("ip_module", "path", typeof(IpModule), null),
        ("ip_os_vtable", "info", typeof(IpOsVtable), null),
        ("ip_os_vtable", "process_list", typeof(IpOsVtable), null),
        ("ip_os_vtable", "process_info", typeof(IpOsVtable), null),
        ("ip_os_vtable", "process_read", typeof(IpOsVtable), null),
        ("ip_os_vtable", "process_write", typeof(IpOsVtable), null),
        ("ip_os_vtable", "process_translate", typeof(IpOsVtable), null),
        ("ip_os_vtable", "memory_areas", typeof(IpOsVtable), null),
        ("ip_os_vtable", "module_list", typeof(IpOsVtable), null),
        ("ip_os_vtable", "last_error", typeof(IpOsVtable), null),
        ("ip_os_vtable", "destroy", typeof(IpOsVtable), null),
        ("ip_os", "self", typeof(IpOs), null),
        ("ip_os", "vtable", typeof(IpOs), null),
    ];

    private static readonly (string CStruct, Type Managed)[] Structs =
    [
        ("ip_memory_request", typeof(IpMemoryRequest)), ("ip_memory_range", typeof(IpMemoryRange)), ("ip_host", typeof(IpHost)),
        ("ip_argument", typeof(IpArgument)), ("ip_create_args", typeof(IpCreateArgs)), ("ip_connector_metadata", typeof(IpConnectorMetadata)),
        ("ip_connector_hints", typeof(IpConnectorHints)), ("ip_cpu_registers", typeof(IpCpuRegisters)), ("ip_connector_vtable", typeof(IpConnectorVtable)),
        ("ip_connector", typeof(IpConnector)), ("ip_os_info", typeof(IpOsInfo)), ("ip_process", typeof(IpProcess)),
        ("ip_process_details", typeof(IpProcessDetails)), ("ip_memory_area", typeof(IpMemoryArea)), ("ip_module", typeof(IpModule)),
        ("ip_os_vtable", typeof(IpOsVtable)), ("ip_os", typeof(IpOs)),
    ];

    private static Dictionary<string, long> CompilerLayout()
    {
        var source = new StringBuilder("#include <stdio.h>\n#include <stddef.h>\n#include \"introspect_plugin.h\"\nint main(void) {\n");
        foreach (var (cStruct, _) in Structs)
            source.Append(CultureInfo.InvariantCulture, $"    printf(\"{cStruct} %zu\\n\", sizeof({cStruct}));\n");
        foreach (var (cStruct, cField, _, _) in Fields)
            source.Append(CultureInfo.InvariantCulture, $"    printf(\"{cStruct}.{cField} %zu\\n\", offsetof({cStruct}, {cField}));\n");
        foreach (var field in new[] { "magic", "abi_version", "kind", "inputs", "parameter_count", "name", "plugin_version", "description", "help", "parameters", "create" })
            source.Append(CultureInfo.InvariantCulture, $"    printf(\"ip_plugin_descriptor.{field} %zu\\n\", offsetof(ip_plugin_descriptor, {field}));\n");
        source.Append("    printf(\"ip_plugin_descriptor %zu\\n\", sizeof(ip_plugin_descriptor));\n");
        source.Append("    printf(\"ip_parameter %zu\\n\", sizeof(ip_parameter));\n");
        source.Append("    printf(\"INTROSPECT_ABI_VERSION %d\\n\", INTROSPECT_ABI_VERSION);\n    return 0;\n}\n");
        var program = SamplePlugins.CompileC("layout", source.ToString());
        var output = SamplePlugins.Run(program, []);
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' '))
            .ToDictionary(parts => parts[0], parts => long.Parse(parts[1], CultureInfo.InvariantCulture));
    }

    [Test]
    public void Every_struct_of_the_host_has_the_size_and_offsets_the_c_compiler_gives_the_header()
    {
        var layout = CompilerLayout();

        Assert.Multiple(() =>
        {
            foreach (var (cStruct, managed) in Structs)
                Assert.That(Marshal.SizeOf(managed), Is.EqualTo(layout[cStruct]), $"sizeof({cStruct}) vs {managed.Name}");
            foreach (var (cStruct, cField, managed, managedField) in Fields)
            {
                var name = managedField ?? string.Concat(cField.Split('_').Select(part => char.ToUpperInvariant(part[0]) + part[1..]));
                Assert.That((long)Marshal.OffsetOf(managed, name), Is.EqualTo(layout[$"{cStruct}.{cField}"]), $"offsetof({cStruct}, {cField}) vs {managed.Name}.{name}");
            }
        });
    }

    [Test]
    public void The_descriptor_offsets_the_host_reads_from_files_are_the_c_compiler_s()
    {
        var layout = CompilerLayout();

        Assert.Multiple(() =>
        {
            Assert.That(layout["ip_plugin_descriptor.magic"], Is.EqualTo(NativeAbi.DescriptorMagicOffset));
            Assert.That(layout["ip_plugin_descriptor.abi_version"], Is.EqualTo(NativeAbi.DescriptorAbiOffset));
            Assert.That(layout["ip_plugin_descriptor.kind"], Is.EqualTo(NativeAbi.DescriptorKindOffset));
            Assert.That(layout["ip_plugin_descriptor.inputs"], Is.EqualTo(NativeAbi.DescriptorInputsOffset));
            Assert.That(layout["ip_plugin_descriptor.parameter_count"], Is.EqualTo(NativeAbi.DescriptorParameterCountOffset));
            Assert.That(layout["ip_plugin_descriptor.name"], Is.EqualTo(NativeAbi.DescriptorNameOffset));
            Assert.That(layout["ip_plugin_descriptor.plugin_version"], Is.EqualTo(NativeAbi.DescriptorVersionOffset));
            Assert.That(layout["ip_plugin_descriptor.description"], Is.EqualTo(NativeAbi.DescriptorDescriptionOffset));
            Assert.That(layout["ip_plugin_descriptor.help"], Is.EqualTo(NativeAbi.DescriptorHelpOffset));
            Assert.That(layout["ip_plugin_descriptor.parameters"], Is.EqualTo(NativeAbi.DescriptorParametersOffset));
            Assert.That(layout["ip_plugin_descriptor.create"], Is.EqualTo(NativeAbi.DescriptorCreateOffset));
            Assert.That(layout["ip_plugin_descriptor"], Is.EqualTo(NativeAbi.DescriptorSize(IntPtr.Size)));
            Assert.That(layout["ip_parameter"], Is.EqualTo(NativeAbi.ParameterSize));
            Assert.That(layout["INTROSPECT_ABI_VERSION"], Is.EqualTo(Abi.IntrospectAbi.Version));
        });
    }
}
