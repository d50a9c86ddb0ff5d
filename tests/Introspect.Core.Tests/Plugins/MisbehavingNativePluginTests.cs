using Introspect.Abi;
using Introspect.Core.Chains;
using Introspect.Core.Plugins;
using Introspect.Tests.Plugins;

namespace Introspect.Core.Tests.Plugins;

/// <summary>A native plugin that gets the contract wrong in every way a struct or a count can be wrong: the host refuses it, never trusts it.</summary>
public class MisbehavingNativePluginTests
{
    private const string Source = """
        #include <string.h>
        #include "introspect_plugin.h"

        static char mode[32];

        static int32_t metadata(void *self, ip_connector_metadata *out) { (void)self; out->max_address = 0xfff; out->real_size = 0x1000; out->read_only = 1; out->ideal_batch_size = 8; return IP_OK; }
        static int32_t read_fails(void *self, ip_memory_request *r, size_t n, size_t size, uint32_t flags) { (void)self; (void)r; (void)n; (void)size; (void)flags; return IP_ERROR_INTERNAL; }
        static int32_t memory_map(void *self, ip_memory_range *ranges, size_t capacity, size_t size, size_t *count)
        {
            (void)self; (void)size;
            if (strcmp(mode, "needmore") == 0) { *count = capacity + 1; return IP_ERROR_NEED_MORE; }
            if (strcmp(mode, "hugemap") == 0) { *count = (size_t)1 << 30; return IP_ERROR_NEED_MORE; }
            if (strcmp(mode, "lie") == 0) { *count = capacity + 5; return IP_OK; }
            if (strcmp(mode, "overlap") == 0) {
                *count = 2;
                ranges[0] = (ip_memory_range){ 0, 0x2000, 0 };
                ranges[1] = (ip_memory_range){ 0x1000, 0x2000, 0 };
                return IP_OK;
            }
            *count = 1;
            if (capacity < 1) return IP_ERROR_NEED_MORE;
            ranges[0] = (ip_memory_range){ 0, 0x1000, 0 };
            return IP_OK;
        }
        static size_t last_error(void *self, char *buffer, size_t capacity) { (void)self; strncpy(buffer, "the disk is on fire", capacity); return 19; }
        static void destroy(void *self) { (void)self; }

        static ip_connector_vtable vtable = {
            .size = sizeof(ip_connector_vtable), .version = IP_CONNECTOR_VTABLE_VERSION,
            .metadata = metadata, .read = read_fails, .memory_map = memory_map, .last_error = last_error, .destroy = destroy,
        };
        static ip_connector_vtable future_vtable = {
            .size = sizeof(ip_connector_vtable), .version = 99,
            .metadata = metadata, .read = read_fails, .memory_map = memory_map, .last_error = last_error, .destroy = destroy,
        };
        static ip_connector_vtable incomplete_vtable = {
            .size = sizeof(ip_connector_vtable), .version = IP_CONNECTOR_VTABLE_VERSION,
            .metadata = metadata, .memory_map = memory_map, .last_error = last_error, .destroy = destroy,
        };

        static int32_t create(const ip_create_args *args, void *out_instance, char *error, size_t capacity)
        {
            ip_connector *out = out_instance;
            strncpy(mode, args->arguments[0].value, sizeof mode - 1);
            out->self = mode;
            out->vtable = &vtable;
            if (strcmp(mode, "invaliddata") == 0) { strncpy(error, "misbehaving: dump.bin: header field 'magic' is 0x0; expected 0x1234.", capacity); return IP_ERROR_INVALID_DATA; }
            if (strcmp(mode, "internal") == 0) { strncpy(error, "something broke", capacity); return IP_ERROR_INTERNAL; }
            if (strcmp(mode, "unknown") == 0) return -1234;
            if (strcmp(mode, "unterminated") == 0) { memset(error, 'x', capacity); return IP_ERROR_INTERNAL; }
            if (strcmp(mode, "future") == 0) out->vtable = &future_vtable;
            if (strcmp(mode, "incomplete") == 0) out->vtable = &incomplete_vtable;
            if (strcmp(mode, "shrunk") == 0) out->size = 4;
            return IP_OK;
        }

        IP_EXPORT const ip_plugin_descriptor introspect_plugin_misbehaving = {
            .size = sizeof(ip_plugin_descriptor), .version = IP_DESCRIPTOR_VERSION, .magic = IP_DESCRIPTOR_MAGIC,
            .abi_version = INTROSPECT_ABI_VERSION, .kind = IP_KIND_CONNECTOR, .inputs = IP_INPUT_NONE,
            .name = "misbehaving", .plugin_version = "0.1.0", .description = "gets the contract wrong on purpose",
            .parameter_count = 1,
            .parameters = { { .name = "mode", .type = IP_PARAM_STRING, .flags = IP_PARAM_REQUIRED, .description = "what to get wrong" } },
            .create = create,
        };

        IP_EXPORT const ip_plugin_descriptor introspect_plugin_no_create = {
            .size = sizeof(ip_plugin_descriptor), .version = IP_DESCRIPTOR_VERSION, .magic = IP_DESCRIPTOR_MAGIC,
            .abi_version = INTROSPECT_ABI_VERSION, .kind = IP_KIND_CONNECTOR, .inputs = IP_INPUT_NONE,
            .name = "no-create", .plugin_version = "0.1.0", .description = "forgot its create function",
        };
        """;

    private static PluginHost Host() =>
        new(PluginCatalog.Scan([Path.GetDirectoryName(SamplePlugins.CompileC("misbehaving", Source, "-shared", "-fPIC"))!]));

    [TestCase("future", "returned an instance this host cannot use: ip_connector_vtable size 88 version 99")]
    [TestCase("incomplete", "returned an instance this host cannot use: a vtable without metadata, read, memory_map, last_error or destroy")]
    [TestCase("shrunk", "returned an instance this host cannot use: ip_connector size 4 version 1")]
    [TestCase("internal", "connector 'misbehaving' 0.1.0 failed to open (error -8, IP_ERROR_INTERNAL): something broke")]
    [TestCase("unknown", "failed to open (error -1234, an unknown code)")]
    [TestCase("needmore", "kept asking for a larger array for its memory map")]
    [TestCase("hugemap", "returned a memory map of 1073741824 entries; this host accepts at most 1048576")]
    [TestCase("lie", "reported 69 memory map entries in an array of 64")]
    [TestCase("overlap", "returned a memory map this host cannot use: Memory ranges 0x0-0x1fff and 0x1000-0x2fff overlap")]
    public void A_wrong_instance_or_list_is_refused_with_what_was_wrong(string mode, string expected)
    {
        var error = Assert.Throws<PluginException>(() => Host().Open(ChainSpec.Parse($"misbehaving:mode={mode}")));

        Assert.That(error!.Message, Does.Contain(expected));
    }

    [Test]
    public void The_error_code_picks_the_exception_and_the_plugin_s_message_is_kept()
    {
        var error = Assert.Throws<InvalidDataException>(() => Host().Open(ChainSpec.Parse("misbehaving:mode=invaliddata")));

        Assert.That(error!.Message, Is.EqualTo("misbehaving: dump.bin: header field 'magic' is 0x0; expected 0x1234."));
    }

    [Test]
    public void A_message_without_its_nul_is_read_no_further_than_the_buffer()
    {
        var error = Assert.Throws<PluginException>(() => Host().Open(ChainSpec.Parse("misbehaving:mode=unterminated")));

        Assert.That(error!.Message, Does.EndWith(new string('x', 2048)));
    }

    [Test]
    public void A_batch_the_plugin_refuses_fails_every_entry_and_throws_nothing()
    {
        using var chain = Host().Open(ChainSpec.Parse("misbehaving:mode=ok"));
        var requests = new[] { new MemoryRequest(0, new byte[8]), new MemoryRequest(8, new byte[8]) };
        requests[0].Succeeded = true;

        chain.PhysicalMemory.Read(requests);

        Assert.That(requests.Select(r => r.Succeeded), Is.All.False);
        Assert.That(chain.PhysicalMemory.Metadata.IdealBatchSize, Is.EqualTo(8));
        Assert.That(() => chain.PhysicalMemory.Write(requests), Throws.TypeOf<NotSupportedException>(), "no write function: read-only");
    }

    [Test]
    public void A_descriptor_without_create_is_refused_when_loaded()
    {
        var error = Assert.Throws<PluginException>(() => Host().Open(ChainSpec.Parse("no-create")));

        Assert.That(error!.Message, Does.Contain("descriptor 'introspect_plugin_no_create' has no create function"));
    }
}
