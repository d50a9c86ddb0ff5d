/*
 * introspect_plugin.h - the native plugin contract of Introspect (plugin ABI version 1).
 *
 * This header is the contract's source of truth for plugins written in C or in any language that
 * exports C symbols. The .NET host mirrors it (Introspect.Core, Plugins/Native) and is checked
 * against it by tests that compile the samples in plugins/samples with this header.
 *
 * A plugin is a shared library (.so on Linux, .dll on Windows) that exports one descriptor per
 * plugin it holds, as a data symbol whose name starts with "introspect_plugin_":
 *
 *     IP_EXPORT const ip_plugin_descriptor introspect_plugin_myconnector = { ... };
 *
 * How the host uses it:
 *   1. Listing and installing read the descriptors straight out of the file's export table
 *      (ELF .dynsym, or PT_DYNAMIC when a file has no section headers; PE export directory),
 *      WITHOUT loading the library. Everything the host shows is therefore kept in fixed-size,
 *      inline, NUL-terminated UTF-8 char arrays: nothing in a descriptor but `create` is a
 *      pointer, so nothing needs relocating. The host checks magic, size, version, ABI version,
 *      kind and the file's machine (e_machine / PE Machine) before it ever loads the file.
 *   2. A chain that names the plugin makes the host load the library (dlopen / LoadLibrary),
 *      look the descriptor up again, check it again, and call `create`.
 *   3. `create` fills a caller-owned instance (ip_connector or ip_os): an opaque `self` and a
 *      table of plain C function pointers. The host calls them, then `destroy` exactly once.
 *
 * Rules every side keeps:
 *   - Versioned structs. Every struct a call passes by pointer starts with `size` and `version`.
 *     The side that provides the memory sets them to what it knows; the side that reads it
 *     refuses (IP_ERROR_VERSION, or the host refuses the plugin) a version it does not know or
 *     a size smaller than that version's. A larger size is fine: later versions only append.
 *     The two hot per-entry element types (ip_memory_request, ip_memory_range) carry no header;
 *     every call that passes an array of them passes the element size beside it, which the
 *     callee checks, and their layout is fixed by the vtable version.
 *   - Buffers belong to the caller. A call never returns memory the other side must free:
 *     lists are copied into caller-provided arrays (IP_ERROR_NEED_MORE with the needed count
 *     when the array is too small), strings into caller-provided char arrays (truncated and
 *     always NUL-terminated). Nothing allocated on one side is freed on the other.
 *   - Errors are integer codes (below). After a failed call the host may fetch a message with
 *     the instance's `last_error`, which copies it into the host's buffer. `create` has no
 *     instance yet, so it writes its message into the buffer the host passes it.
 *   - A failed entry of a scatter read or write never fails the batch: the call returns IP_OK
 *     and clears that entry's `ok`. A batch-level error code means no entry was attempted.
 *   - Calls never keep a pointer they were given beyond the call, except the inputs and host
 *     services in ip_create_args, which stay valid until the instance is destroyed. An instance
 *     never destroys its inputs: they belong to the host, which destroys the chain's steps last
 *     first.
 *   - Reads and writes may be called from several threads at once; a plugin that cannot serve
 *     that must lock internally. `destroy` is never called concurrently with anything else.
 *
 * Plugin names are lower case [a-z0-9_-], at most 63 characters. Versions are
 * "major.minor[.patch]". See plugins/README.md for a walk-through and the C sample.
 */
#ifndef INTROSPECT_PLUGIN_H
#define INTROSPECT_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The contract version. The host refuses a descriptor with another value, before loading. */
#define INTROSPECT_ABI_VERSION 1

#if defined(_WIN32)
#define IP_EXPORT __declspec(dllexport)
#else
#define IP_EXPORT __attribute__((visibility("default")))
#endif

/* Every descriptor symbol's name starts with this. */
#define IP_DESCRIPTOR_SYMBOL_PREFIX "introspect_plugin_"
/* The first bytes of a descriptor after size and version: "IPLUGIN" and a NUL. */
#define IP_DESCRIPTOR_MAGIC "IPLUGIN"

/* ---- Result codes ------------------------------------------------------------------------ */

typedef enum ip_result {
    IP_OK = 0,
    /* An argument is well-formed but unusable (a file that does not exist). */
    IP_ERROR_ARGUMENT = -1,
    /* The source is malformed; the message names the file, the field and what was expected. */
    IP_ERROR_INVALID_DATA = -2,
    /* The operating system refused an I/O operation. */
    IP_ERROR_IO = -3,
    /* The operation is not supported (a write to read-only memory). */
    IP_ERROR_UNSUPPORTED = -4,
    /* The caller's array is too small; the count it passed was set to what is needed. */
    IP_ERROR_NEED_MORE = -5,
    /* No such process. */
    IP_ERROR_NOT_FOUND = -6,
    /* A struct's size or version is one the callee does not know. */
    IP_ERROR_VERSION = -7,
    /* Anything else: a bug or an unexpected state in the plugin. */
    IP_ERROR_INTERNAL = -8
} ip_result;

/* ---- Small shared types ------------------------------------------------------------------ */

typedef enum ip_plugin_kind {
    IP_KIND_CONNECTOR = 1,       /* serves physical memory */
    IP_KIND_OS = 2               /* turns physical memory into a kernel, processes and modules */
} ip_plugin_kind;

/* What a plugin's `create` accepts as its input (ip_plugin_descriptor.inputs, a bit set). */
#define IP_INPUT_NONE      0x1u  /* a connector that starts a chain */
#define IP_INPUT_OS        0x2u  /* a connector that reads through an OS (a VM inside it) */
#define IP_INPUT_CONNECTOR 0x4u  /* an OS layer: always reads a connector */

/* Same numbering as the managed MachineArchitecture. */
typedef enum ip_architecture {
    IP_ARCH_UNKNOWN = 0,
    IP_ARCH_X86 = 1,
    IP_ARCH_X86_PAE = 2,
    IP_ARCH_X64 = 3,
    IP_ARCH_ARM64 = 4
} ip_architecture;

/* Flags of a read or write (same values as the managed MemoryFlags). */
#define IP_FLAG_NOCACHE          0x1u  /* bypass every cache */
#define IP_FLAG_ZEROPAD_ON_FAIL  0x2u  /* zero what cannot be read and report it as read */
#define IP_FLAG_FORCE_CACHE      0x8u  /* answer from caches only */

/* Log levels of ip_host.log (same values as the managed PluginLogLevel). */
typedef enum ip_log_level {
    IP_LOG_TRACE = 0,
    IP_LOG_DEBUG = 1,
    IP_LOG_INFO = 2,
    IP_LOG_WARNING = 3,
    IP_LOG_ERROR = 4
} ip_log_level;

/* One entry of a scatter read or write. No header: see the rules above. */
typedef struct ip_memory_request {
    uint64_t address;            /* physical (connector) or virtual (OS process) address */
    uint8_t *buffer;             /* caller-owned, `length` bytes */
    uint64_t length;
    uint32_t ok;                 /* out: 1 when every byte was read or written, 0 otherwise */
    uint32_t reserved;           /* 0 */
} ip_memory_request;

/* One range of a memory map: physical base..base+size-1 lives at `backing` in the source. */
typedef struct ip_memory_range {
    uint64_t base;
    uint64_t size;               /* never 0 */
    uint64_t backing;            /* == base for a range that is not remapped */
} ip_memory_range;

/* ---- The descriptor ---------------------------------------------------------------------- */

#define IP_DESCRIPTOR_VERSION 1

#define IP_NAME_MAX 64
#define IP_VERSION_MAX 32
#define IP_DESCRIPTION_MAX 256
#define IP_HELP_MAX 2048
#define IP_PARAMETERS_MAX 16
#define IP_PARAMETER_NAME_MAX 32
#define IP_PARAMETER_DEFAULT_MAX 64
#define IP_PARAMETER_CHOICES_MAX 128
#define IP_PARAMETER_DESCRIPTION_MAX 192

/* Same numbering as the managed PluginParameterType. */
typedef enum ip_parameter_type {
    IP_PARAM_STRING = 0,
    IP_PARAM_PATH = 1,
    IP_PARAM_NUMBER = 2,         /* decimal or 0x hex, optional k/m/g suffix: the host checks the form */
    IP_PARAM_BOOLEAN = 3,        /* on/off, true/false, yes/no, 1/0 */
    IP_PARAM_CHOICE = 4          /* one of `choices` */
} ip_parameter_type;

#define IP_PARAM_REQUIRED         0x1u
/* The chain may give this argument's value bare: "myconnector:/data/x" means "myconnector:path=/data/x".
 * At most one parameter has it. */
#define IP_PARAM_DEFAULT_ARGUMENT 0x2u

/* One argument the plugin accepts. The host refuses any other key before calling create, checks
 * the value's form, and fills in `default_value` when the chain gives none. */
typedef struct ip_parameter {
    char name[IP_PARAMETER_NAME_MAX];                 /* lower case; "" ends the list early */
    uint32_t type;                                    /* ip_parameter_type */
    uint32_t flags;                                   /* IP_PARAM_* */
    char default_value[IP_PARAMETER_DEFAULT_MAX];     /* "" for none */
    char choices[IP_PARAMETER_CHOICES_MAX];           /* IP_PARAM_CHOICE: "raw|elf|auto" */
    char description[IP_PARAMETER_DESCRIPTION_MAX];
} ip_parameter;

typedef struct ip_create_args ip_create_args;

/*
 * Creates an instance. `out_instance` points to an ip_connector (kind IP_KIND_CONNECTOR) or an
 * ip_os (IP_KIND_OS) whose size and version the host has set; create checks them, fills in
 * `self` and `vtable`, and returns IP_OK. On failure it returns an error code, writes a message
 * into `error` (at most `error_capacity` bytes including the NUL) and leaves nothing to destroy.
 */
typedef int32_t (*ip_create_fn)(const ip_create_args *args, void *out_instance, char *error, size_t error_capacity);

typedef struct ip_plugin_descriptor {
    uint32_t size;                                    /* sizeof(ip_plugin_descriptor) */
    uint32_t version;                                 /* IP_DESCRIPTOR_VERSION */
    char magic[8];                                    /* IP_DESCRIPTOR_MAGIC */
    uint32_t abi_version;                             /* INTROSPECT_ABI_VERSION */
    uint32_t kind;                                    /* ip_plugin_kind */
    uint32_t inputs;                                  /* IP_INPUT_* bits */
    uint32_t parameter_count;                         /* <= IP_PARAMETERS_MAX */
    char name[IP_NAME_MAX];                           /* the name chains use */
    char plugin_version[IP_VERSION_MAX];              /* "1.0.0" */
    char description[IP_DESCRIPTION_MAX];             /* one line */
    char help[IP_HELP_MAX];                           /* free text shown by `introspect plugins info` */
    ip_parameter parameters[IP_PARAMETERS_MAX];
    /* The only pointer, placed last; the host reads it only after loading the library. */
    ip_create_fn create;
} ip_plugin_descriptor;

/* ---- Host services and create arguments -------------------------------------------------- */

#define IP_HOST_VERSION 1

/* What the host offers a plugin; valid until the instance is destroyed. */
typedef struct ip_host {
    uint32_t size;
    uint32_t version;
    void *context;
    /* Logs one message (UTF-8, copied by the host before it returns). */
    void (*log)(void *context, int32_t level, const char *message);
} ip_host;

/* One key=value argument, checked by the host against the descriptor's parameters. */
typedef struct ip_argument {
    const char *key;
    const char *value;
} ip_argument;

typedef struct ip_connector ip_connector;
typedef struct ip_os ip_os;

#define IP_CREATE_ARGS_VERSION 1

struct ip_create_args {
    uint32_t size;
    uint32_t version;                                 /* IP_CREATE_ARGS_VERSION */
    uint32_t abi_version;                             /* the host's INTROSPECT_ABI_VERSION */
    uint32_t argument_count;
    const ip_argument *arguments;                     /* valid during create only: copy what you keep */
    const ip_host *host;                              /* never NULL */
    /* An OS layer's input: the physical memory it reads. NULL for a connector. */
    const ip_connector *input_connector;
    /* A connector's input when it follows an OS step (IP_INPUT_OS). NULL when it starts a chain. */
    const ip_os *input_os;
    /* An OS layer's translation cache as the user configured it (tlb=off, tlb.entries=N,
     * tlb.validity=...): 0 entries means off; max age 0 means valid until the layer refreshes. */
    uint32_t tlb_entries;
    uint32_t reserved;
    uint64_t tlb_max_age_ns;
};

/* ---- Connectors -------------------------------------------------------------------------- */

#define IP_CONNECTOR_VERSION 1
#define IP_CONNECTOR_VTABLE_VERSION 1
#define IP_METADATA_VERSION 1
#define IP_HINTS_VERSION 1
#define IP_CPU_VERSION 1

typedef struct ip_connector_metadata {
    uint32_t size;
    uint32_t version;
    uint64_t max_address;                             /* highest address that may be readable (inclusive) */
    uint64_t real_size;                               /* bytes really backed */
    uint32_t read_only;                               /* 1: writes are refused */
    uint32_t ideal_batch_size;                        /* entries per batch for the best throughput */
} ip_connector_metadata;

/* Which optional fields of ip_connector_hints hold a value. */
#define IP_HINT_DIRECTORY_TABLE_BASE   0x01u
#define IP_HINT_PFN_DATABASE           0x02u
#define IP_HINT_PS_LOADED_MODULE_LIST  0x04u
#define IP_HINT_PS_ACTIVE_PROCESS_HEAD 0x08u
#define IP_HINT_KD_DEBUGGER_DATA_BLOCK 0x10u
#define IP_HINT_PAE                    0x20u

/* What a connector learned about the machine (the managed ConnectorHints). */
typedef struct ip_connector_hints {
    uint32_t size;
    uint32_t version;
    char format[32];                                  /* "raw", "elf", ... or "" */
    uint32_t architecture;                            /* ip_architecture */
    uint32_t present;                                 /* IP_HINT_* bits */
    uint64_t directory_table_base;
    uint64_t pfn_database;
    uint64_t ps_loaded_module_list;
    uint64_t ps_active_process_head;
    uint64_t kd_debugger_data_block;
    uint32_t pae_enabled;
    uint32_t reserved;
} ip_connector_hints;

/* One CPU's registers captured with the memory. */
typedef struct ip_cpu_registers {
    uint32_t size;
    uint32_t version;
    uint32_t index;
    uint32_t reserved;
    uint64_t instruction_pointer;
    uint64_t stack_pointer;
    uint64_t cr0;
    uint64_t cr3;
    uint64_t cr4;
    uint64_t gs_base;
    uint64_t kernel_gs_base;
} ip_cpu_registers;

typedef struct ip_connector_vtable {
    uint32_t size;
    uint32_t version;                                 /* IP_CONNECTOR_VTABLE_VERSION */
    int32_t (*metadata)(void *self, ip_connector_metadata *out);
    /* Reads every entry; per-entry success in `ok`. Returns IP_OK unless the batch itself is refused. */
    int32_t (*read)(void *self, ip_memory_request *requests, size_t count, size_t request_size, uint32_t flags);
    /* NULL for read-only memory. */
    int32_t (*write)(void *self, ip_memory_request *requests, size_t count, size_t request_size, uint32_t flags);
    /* Copies the memory map, sorted and disjoint, into `ranges`. `*count` is set to the number of
     * ranges; IP_ERROR_NEED_MORE when that exceeds `capacity` (then nothing useful is copied). */
    int32_t (*memory_map)(void *self, ip_memory_range *ranges, size_t capacity, size_t range_size, size_t *count);
    /* Replaces the memory map (memflow's set_mem_map); NULL when unsupported. */
    int32_t (*set_memory_map)(void *self, const ip_memory_range *ranges, size_t count, size_t range_size);
    /* NULL: no hints. */
    int32_t (*hints)(void *self, ip_connector_hints *out);
    /* The guest kernel's VMCOREINFO text; NULL or `*length` 0 for none. `*length` excludes the NUL;
     * IP_ERROR_NEED_MORE when `capacity` cannot hold it and the NUL. */
    int32_t (*vmcoreinfo)(void *self, char *buffer, size_t capacity, size_t *length);
    /* Per-CPU registers; NULL for none. Same NEED_MORE rule as memory_map. */
    int32_t (*cpus)(void *self, ip_cpu_registers *cpus, size_t capacity, size_t cpu_size, size_t *count);
    /* Copies the message of the last failed call into `buffer` (NUL-terminated, truncated to
     * `capacity`); returns the full message length without the NUL, 0 when there is none. */
    size_t (*last_error)(void *self, char *buffer, size_t capacity);
    /* Releases the instance. Called exactly once; `self` is not used afterwards. */
    void (*destroy)(void *self);
} ip_connector_vtable;

struct ip_connector {
    uint32_t size;
    uint32_t version;                                 /* IP_CONNECTOR_VERSION */
    void *self;
    const ip_connector_vtable *vtable;
};

/* ---- OS layers --------------------------------------------------------------------------- */

#define IP_OS_VERSION 1
#define IP_OS_VTABLE_VERSION 1
#define IP_OS_INFO_VERSION 1
#define IP_PROCESS_VERSION 1
#define IP_PROCESS_DETAILS_VERSION 1
#define IP_MEMORY_AREA_VERSION 1
#define IP_MODULE_VERSION 1

/* The pid that module_list takes for the kernel's own modules. */
#define IP_KERNEL_PID UINT64_MAX

#define IP_OS_HAS_KERNEL_SLIDE 0x1u

typedef struct ip_os_info {
    uint32_t size;
    uint32_t version;
    char name[32];                                    /* "linux", "windows", ... */
    char version_text[256];                           /* the kernel's own version string */
    uint32_t architecture;                            /* ip_architecture */
    uint32_t flags;                                   /* IP_OS_HAS_KERNEL_SLIDE */
    uint64_t kernel_base;
    int64_t kernel_slide;
    uint64_t directory_table_base;
} ip_os_info;

/* Same numbering as the managed ProcessState. */
typedef enum ip_process_state {
    IP_STATE_UNKNOWN = 0, IP_STATE_RUNNING, IP_STATE_SLEEPING, IP_STATE_DISK_SLEEP, IP_STATE_STOPPED,
    IP_STATE_TRACED, IP_STATE_ZOMBIE, IP_STATE_DEAD, IP_STATE_IDLE, IP_STATE_EXITED
} ip_process_state;

#define IP_PROCESS_KERNEL_THREAD 0x1u
#define IP_PROCESS_HAS_UID       0x2u
#define IP_PROCESS_HAS_USER_DTB  0x4u
#define IP_PROCESS_HIDDEN        0x8u  /* found apart from the kernel's process list (a pool scan) */

typedef struct ip_process {
    uint32_t size;
    uint32_t version;
    uint64_t pid;
    uint64_t parent_pid;
    uint64_t directory_table_base;
    uint64_t user_directory_table_base;
    uint64_t kernel_object;
    uint32_t state;                                   /* ip_process_state */
    uint32_t flags;                                   /* IP_PROCESS_* */
    uint32_t uid;
    uint32_t thread_count;
    uint32_t architecture;                            /* ip_architecture, 0 = the kernel's */
    uint32_t reserved;
    char name[64];
    char state_text[8];
} ip_process;

typedef struct ip_process_details {
    uint32_t size;
    uint32_t version;
    ip_process process;
    char path[1024];
    char command_line[4096];
} ip_process_details;

/* Same values as the managed MemoryProtection. */
#define IP_PROT_READ    0x1u
#define IP_PROT_WRITE   0x2u
#define IP_PROT_EXECUTE 0x4u
#define IP_PROT_SHARED  0x8u

typedef struct ip_memory_area {
    uint32_t size;
    uint32_t version;
    uint64_t start;
    uint64_t end;                                     /* exclusive */
    uint64_t offset;
    uint32_t protection;                              /* IP_PROT_* */
    uint32_t reserved;
    char path[1024];                                  /* "" for anonymous memory */
} ip_memory_area;

typedef struct ip_module {
    uint32_t size;
    uint32_t version;
    uint64_t base;
    uint64_t image_size;
    char name[256];
    char path[1024];
} ip_module;

typedef struct ip_os_vtable {
    uint32_t size;
    uint32_t version;                                 /* IP_OS_VTABLE_VERSION */
    int32_t (*info)(void *self, ip_os_info *out);
    /* Copies every process (each element's size and version set by the caller) into `processes`;
     * same NEED_MORE rule as memory_map. */
    int32_t (*process_list)(void *self, ip_process *processes, size_t capacity, size_t process_size, size_t *count);
    /* IP_ERROR_NOT_FOUND for an unknown pid. */
    int32_t (*process_info)(void *self, uint64_t pid, ip_process_details *out);
    /* Scatter read of a process's virtual memory; IP_ERROR_NOT_FOUND for an unknown pid. */
    int32_t (*process_read)(void *self, uint64_t pid, ip_memory_request *requests, size_t count, size_t request_size, uint32_t flags);
    /* NULL when the layer cannot write. */
    int32_t (*process_write)(void *self, uint64_t pid, ip_memory_request *requests, size_t count, size_t request_size, uint32_t flags);
    /* IP_ERROR_NOT_FOUND when the address is not mapped (no message needed). */
    int32_t (*process_translate)(void *self, uint64_t pid, uint64_t virtual_address, uint64_t *physical_address);
    int32_t (*memory_areas)(void *self, uint64_t pid, ip_memory_area *areas, size_t capacity, size_t area_size, size_t *count);
    /* A process's modules, or the kernel's with IP_KERNEL_PID. */
    int32_t (*module_list)(void *self, uint64_t pid, ip_module *modules, size_t capacity, size_t module_size, size_t *count);
    size_t (*last_error)(void *self, char *buffer, size_t capacity);
    void (*destroy)(void *self);
} ip_os_vtable;

struct ip_os {
    uint32_t size;
    uint32_t version;                                 /* IP_OS_VERSION */
    void *self;
    const ip_os_vtable *vtable;
};

#ifdef __cplusplus
}
#endif

#endif /* INTROSPECT_PLUGIN_H */
