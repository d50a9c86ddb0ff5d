/*
 * native_sample.c - two Introspect plugins in C, written against plugins/abi/introspect_plugin.h.
 *
 *   native-sample     a connector. Started alone it serves a file as physical memory, through
 *                     its own memory map (a map file, or the whole file at address 0). After an OS
 *                     step it serves one process's virtual memory as physical memory instead,
 *                     remapped by the same kind of map (guest-physical -> process-virtual).
 *   native-sample-os  an OS layer of the simplest kind: one process whose virtual memory is its
 *                     input's physical memory, address for address.
 *
 * Everything the host needs to list them lives in the two exported descriptors; the code below
 * runs only once a chain names one of them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "introspect_plugin.h"

/* The plugins' version; builds of other versions (side-by-side installs) set it with -DNATIVE_SAMPLE_VERSION="1.1.0". */
#ifndef NATIVE_SAMPLE_VERSION
#define NATIVE_SAMPLE_VERSION "1.0.0"
#endif

#define MAX_RANGES 65536
#define MAX_MAP_FILE (16u << 20)
#define STACK_PIECES 256

/* ---- small helpers ------------------------------------------------------------------------ */

static void copy_text(char *destination, size_t capacity, const char *text)
{
    if (capacity == 0)
        return;
    size_t length = strlen(text);
    if (length >= capacity)
        length = capacity - 1;
    memcpy(destination, text, length);
    destination[length] = '\0';
}

static void set_error(char *buffer, size_t capacity, const char *format, ...)
{
    if (buffer == NULL || capacity == 0)
        return;
    va_list args;
    va_start(args, format);
    vsnprintf(buffer, capacity, format, args);
    va_end(args);
}

static const char *find_argument(const ip_create_args *args, const char *key)
{
    for (uint32_t i = 0; i < args->argument_count; i++) {
        if (strcmp(args->arguments[i].key, key) == 0)
            return args->arguments[i].value;
    }
    return NULL;
}

/* The host has already checked the form (decimal or 0x hex, optional k/m/g). */
static int parse_number(const char *text, uint64_t *value)
{
    char *end = NULL;
    errno = 0;
    unsigned long long parsed = strtoull(text, &end, 0);
    if (errno != 0 || end == text)
        return 0;
    int shift = 0;
    if (*end == 'k' || *end == 'K') shift = 10;
    else if (*end == 'm' || *end == 'M') shift = 20;
    else if (*end == 'g' || *end == 'G') shift = 30;
    if (shift != 0)
        end++;
    if (*end != '\0')
        return 0;
    *value = (uint64_t)parsed << shift;
    return 1;
}

static int parse_boolean(const char *text)
{
    return strcmp(text, "on") == 0 || strcmp(text, "true") == 0 || strcmp(text, "yes") == 0 || strcmp(text, "1") == 0;
}

static void host_log(const ip_host *host, int32_t level, const char *format, ...)
{
    if (host == NULL || host->log == NULL)
        return;
    char message[512];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    host->log(host->context, level, message);
}

/* ---- memory maps ---------------------------------------------------------------------------- */

typedef struct map {
    ip_memory_range *ranges;
    size_t count;
} map;

static int compare_ranges(const void *a, const void *b)
{
    const ip_memory_range *x = a, *y = b;
    return x->base < y->base ? -1 : x->base > y->base;
}

/* Sorts and checks a map: no empty range, none wrapping past 2^64, no overlap. */
static int check_map(map *m, const char *what, char *error, size_t capacity)
{
    qsort(m->ranges, m->count, sizeof *m->ranges, compare_ranges);
    for (size_t i = 0; i < m->count; i++) {
        const ip_memory_range *r = &m->ranges[i];
        if (r->size == 0 || r->base + (r->size - 1) < r->base || r->backing + (r->size - 1) < r->backing) {
            set_error(error, capacity, "%s: range 0x%llx+0x%llx is empty or wraps past 2^64", what,
                (unsigned long long)r->base, (unsigned long long)r->size);
            return IP_ERROR_INVALID_DATA;
        }
        if (i > 0 && r->base <= m->ranges[i - 1].base + (m->ranges[i - 1].size - 1)) {
            set_error(error, capacity, "%s: ranges at 0x%llx and 0x%llx overlap", what,
                (unsigned long long)m->ranges[i - 1].base, (unsigned long long)r->base);
            return IP_ERROR_INVALID_DATA;
        }
    }
    return IP_OK;
}

/* Reads a map file: one range a line, "base last [backing]" in hexadecimal, '#' comments. */
static int read_map_file(const char *path, map *out, char *error, size_t capacity)
{
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        set_error(error, capacity, "native-sample: the map file 'map=%s' cannot be opened: %s", path, strerror(errno));
        return IP_ERROR_ARGUMENT;
    }
    size_t allocated = 16;
    out->ranges = malloc(allocated * sizeof *out->ranges);
    out->count = 0;
    char line[512];
    unsigned line_number = 0;
    int result = IP_OK;
    while (out->ranges != NULL && fgets(line, sizeof line, file) != NULL) {
        line_number++;
        char *hash = strchr(line, '#');
        if (hash != NULL)
            *hash = '\0';
        for (char *c = line; *c; c++) {
            if (*c == '-' || *c == '\t' || *c == '\r' || *c == '\n')
                *c = ' ';
        }
        char *cursor = line;
        unsigned long long numbers[3];
        int found = 0;
        while (found < 4) {
            while (*cursor == ' ')
                cursor++;
            if (*cursor == '\0')
                break;
            char *end = NULL;
            errno = 0;
            unsigned long long value = strtoull(cursor, &end, 16);
            if (end == cursor || errno != 0 || (*end != ' ' && *end != '\0') || found == 3) {
                found = -1;
                break;
            }
            numbers[found++] = value;
            cursor = end;
        }
        if (found == 0)
            continue;
        if (found < 2 || numbers[1] < numbers[0] || numbers[1] - numbers[0] == UINT64_MAX) {
            set_error(error, capacity, "native-sample: map file %s, line %u: expected 'base last [backing]' in hexadecimal with last >= base",
                path, line_number);
            result = IP_ERROR_INVALID_DATA;
            break;
        }
        if (out->count == MAX_RANGES) {
            set_error(error, capacity, "native-sample: map file %s holds more than %d ranges", path, MAX_RANGES);
            result = IP_ERROR_INVALID_DATA;
            break;
        }
        if (out->count == allocated) {
            allocated *= 2;
            ip_memory_range *grown = realloc(out->ranges, allocated * sizeof *out->ranges);
            if (grown == NULL) {
                free(out->ranges);
                out->ranges = NULL;
                break;
            }
            out->ranges = grown;
        }
        ip_memory_range *range = &out->ranges[out->count++];
        range->base = numbers[0];
        range->size = numbers[1] - numbers[0] + 1;
        range->backing = found == 3 ? numbers[2] : numbers[0];
    }
    fclose(file);
    if (out->ranges == NULL) {
        set_error(error, capacity, "native-sample: out of memory reading the map file %s", path);
        return IP_ERROR_INTERNAL;
    }
    if (result == IP_OK)
        result = check_map(out, path, error, capacity);
    if (result != IP_OK) {
        free(out->ranges);
        out->ranges = NULL;
        out->count = 0;
    }
    return result;
}

/* The index of the range holding `address`, or -1. */
static long find_range(const map *m, uint64_t address)
{
    size_t lo = 0, hi = m->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const ip_memory_range *r = &m->ranges[mid];
        if (address < r->base)
            hi = mid;
        else if (address - r->base >= r->size)
            lo = mid + 1;
        else
            return (long)mid;
    }
    return -1;
}

/* ---- the connector ---------------------------------------------------------------------------- */

typedef struct connector {
    /* a file ... */
    int fd;
    uint8_t *data;
    uint64_t data_size;
    int writable;
    /* ... or a process of the input OS */
    const ip_os *os;
    uint64_t pid;

    pthread_rwlock_t lock;                            /* guards `memory_map` against set_memory_map */
    map memory_map;
    uint32_t ideal_batch;
    const ip_host *host;
    char format[32];
    char last_error[512];
} connector;

static int32_t connector_metadata(void *self, ip_connector_metadata *out)
{
    connector *c = self;
    if (out == NULL || out->version != IP_METADATA_VERSION || out->size < sizeof *out) {
        copy_text(c->last_error, sizeof c->last_error, "metadata: unknown ip_connector_metadata size or version");
        return IP_ERROR_VERSION;
    }
    pthread_rwlock_rdlock(&c->lock);
    uint64_t max = 0, real = 0;
    for (size_t i = 0; i < c->memory_map.count; i++)
        real += c->memory_map.ranges[i].size;
    if (c->memory_map.count > 0) {
        const ip_memory_range *last = &c->memory_map.ranges[c->memory_map.count - 1];
        max = last->base + (last->size - 1);
    }
    pthread_rwlock_unlock(&c->lock);
    out->max_address = max;
    out->real_size = real;
    out->read_only = c->writable ? 0 : 1;
    out->ideal_batch_size = c->ideal_batch;
    return IP_OK;
}

/* Copies one request from or to the file through the map; 1 when every byte was served. */
static int transfer_file(connector *c, ip_memory_request *request, int write, int zero_pad)
{
    uint64_t address = request->address;
    uint8_t *buffer = request->buffer;
    uint64_t remaining = request->length;
    if (remaining == 0)
        return 1;
    if (remaining - 1 > UINT64_MAX - address)
        return 0;
    while (remaining > 0) {
        long index = find_range(&c->memory_map, address);
        uint64_t chunk;
        if (index < 0) {
            if (!zero_pad || write)
                return 0;
            /* Zero up to the next range. */
            uint64_t gap = remaining;
            for (size_t i = 0; i < c->memory_map.count; i++) {
                if (c->memory_map.ranges[i].base > address) {
                    uint64_t distance = c->memory_map.ranges[i].base - address;
                    if (distance < gap)
                        gap = distance;
                    break;
                }
            }
            memset(buffer, 0, gap);
            chunk = gap;
        } else {
            const ip_memory_range *r = &c->memory_map.ranges[index];
            uint64_t delta = address - r->base;
            chunk = r->size - delta < remaining ? r->size - delta : remaining;
            uint64_t offset = r->backing + delta;
            /* offset + chunk <= data_size, written so that it cannot overflow. */
            if (offset > c->data_size || chunk > c->data_size - offset) {
                if (!zero_pad || write)
                    return 0;
                uint64_t held = offset < c->data_size ? c->data_size - offset : 0;
                if (held > 0)
                    memcpy(buffer, c->data + offset, held);
                memset(buffer + held, 0, chunk - held);
            } else if (write) {
                memcpy(c->data + offset, buffer, chunk);
            } else {
                memcpy(buffer, c->data + offset, chunk);
            }
        }
        address += chunk;
        buffer += chunk;
        remaining -= chunk;
    }
    return 1;
}

/* Serves a batch from the input OS's process: each request is cut where the map's ranges end,
 * the pieces go down as one batch of virtual reads, and a request succeeds when all its pieces did. */
static int32_t transfer_process(connector *c, ip_memory_request *requests, size_t count, uint32_t flags, int write)
{
    size_t pieces = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t address = requests[i].address, remaining = requests[i].length;
        requests[i].ok = 0;
        if (remaining == 0 || remaining - 1 > UINT64_MAX - address)
            continue;
        while (remaining > 0) {
            long index = find_range(&c->memory_map, address);
            if (index < 0) {
                pieces++;                             /* counted, later marked failed */
                break;
            }
            const ip_memory_range *r = &c->memory_map.ranges[index];
            uint64_t available = r->size - (address - r->base);
            uint64_t chunk = available < remaining ? available : remaining;
            pieces++;
            address += chunk;
            remaining -= chunk;
        }
    }
    ip_memory_request stack[STACK_PIECES];
    size_t owner_stack[STACK_PIECES];
    ip_memory_request *down = pieces <= STACK_PIECES ? stack : malloc(pieces * sizeof *down);
    size_t *owner = pieces <= STACK_PIECES ? owner_stack : malloc(pieces * sizeof *owner);
    if (down == NULL || owner == NULL) {
        if (down != stack) free(down);
        if (owner != owner_stack) free(owner);
        copy_text(c->last_error, sizeof c->last_error, "out of memory");
        return IP_ERROR_INTERNAL;
    }
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t address = requests[i].address, remaining = requests[i].length;
        uint8_t *buffer = requests[i].buffer;
        if (remaining == 0) {
            requests[i].ok = 1;
            continue;
        }
        if (remaining - 1 > UINT64_MAX - address)
            continue;
        requests[i].ok = 1;
        while (remaining > 0) {
            long index = find_range(&c->memory_map, address);
            if (index < 0) {
                requests[i].ok = 0;
                break;
            }
            const ip_memory_range *r = &c->memory_map.ranges[index];
            uint64_t delta = address - r->base;
            uint64_t available = r->size - delta;
            uint64_t chunk = available < remaining ? available : remaining;
            down[n].address = r->backing + delta;
            down[n].buffer = buffer;
            down[n].length = chunk;
            down[n].ok = 0;
            down[n].reserved = 0;
            owner[n] = i;
            n++;
            address += chunk;
            buffer += chunk;
            remaining -= chunk;
        }
    }
    int32_t result = IP_OK;
    if (n > 0) {
        const ip_os_vtable *os = c->os->vtable;
        result = write
            ? os->process_write(c->os->self, c->pid, down, n, sizeof *down, flags)
            : os->process_read(c->os->self, c->pid, down, n, sizeof *down, flags);
        if (result != IP_OK) {
            char message[400];
            os->last_error(c->os->self, message, sizeof message);
            set_error(c->last_error, sizeof c->last_error, "the input OS failed on process %llu: %s", (unsigned long long)c->pid, message);
            for (size_t i = 0; i < count; i++)
                requests[i].ok = 0;
        } else {
            for (size_t k = 0; k < n; k++) {
                if (!down[k].ok)
                    requests[owner[k]].ok = 0;
            }
        }
    }
    if (down != stack) free(down);
    if (owner != owner_stack) free(owner);
    return result;
}

static int32_t connector_transfer(connector *c, ip_memory_request *requests, size_t count, size_t request_size, uint32_t flags, int write)
{
    if (request_size != sizeof(ip_memory_request)) {
        set_error(c->last_error, sizeof c->last_error, "read/write: ip_memory_request of %zu bytes; this plugin knows %zu", request_size, sizeof(ip_memory_request));
        return IP_ERROR_VERSION;
    }
    if (write && !c->writable) {
        copy_text(c->last_error, sizeof c->last_error, "native-sample: the memory is read-only (open it with write=on)");
        return IP_ERROR_UNSUPPORTED;
    }
    pthread_rwlock_rdlock(&c->lock);
    int32_t result = IP_OK;
    if (c->os != NULL) {
        result = transfer_process(c, requests, count, flags, write);
    } else {
        int zero_pad = (flags & IP_FLAG_ZEROPAD_ON_FAIL) != 0;
        for (size_t i = 0; i < count; i++)
            requests[i].ok = (uint32_t)transfer_file(c, &requests[i], write, zero_pad);
    }
    pthread_rwlock_unlock(&c->lock);
    return result;
}

static int32_t connector_read(void *self, ip_memory_request *requests, size_t count, size_t request_size, uint32_t flags)
{
    return connector_transfer(self, requests, count, request_size, flags, 0);
}

static int32_t connector_write(void *self, ip_memory_request *requests, size_t count, size_t request_size, uint32_t flags)
{
    return connector_transfer(self, requests, count, request_size, flags, 1);
}

static int32_t connector_memory_map(void *self, ip_memory_range *ranges, size_t capacity, size_t range_size, size_t *count)
{
    connector *c = self;
    if (range_size != sizeof(ip_memory_range)) {
        copy_text(c->last_error, sizeof c->last_error, "memory_map: unknown ip_memory_range size");
        return IP_ERROR_VERSION;
    }
    pthread_rwlock_rdlock(&c->lock);
    size_t needed = c->memory_map.count;
    *count = needed;
    if (needed > capacity) {
        pthread_rwlock_unlock(&c->lock);
        return IP_ERROR_NEED_MORE;
    }
    memcpy(ranges, c->memory_map.ranges, needed * sizeof *ranges);
    pthread_rwlock_unlock(&c->lock);
    return IP_OK;
}

static int32_t connector_set_memory_map(void *self, const ip_memory_range *ranges, size_t count, size_t range_size)
{
    connector *c = self;
    if (range_size != sizeof(ip_memory_range)) {
        copy_text(c->last_error, sizeof c->last_error, "set_memory_map: unknown ip_memory_range size");
        return IP_ERROR_VERSION;
    }
    if (count > MAX_RANGES) {
        set_error(c->last_error, sizeof c->last_error, "set_memory_map: %zu ranges; at most %d", count, MAX_RANGES);
        return IP_ERROR_ARGUMENT;
    }
    map replacement = { malloc((count ? count : 1) * sizeof *ranges), count };
    if (replacement.ranges == NULL) {
        copy_text(c->last_error, sizeof c->last_error, "out of memory");
        return IP_ERROR_INTERNAL;
    }
    memcpy(replacement.ranges, ranges, count * sizeof *ranges);
    int32_t result = check_map(&replacement, "set_memory_map", c->last_error, sizeof c->last_error);
    if (result != IP_OK) {
        free(replacement.ranges);
        return result;
    }
    pthread_rwlock_wrlock(&c->lock);
    map old = c->memory_map;
    c->memory_map = replacement;
    pthread_rwlock_unlock(&c->lock);
    free(old.ranges);
    return IP_OK;
}

static int32_t connector_hints(void *self, ip_connector_hints *out)
{
    connector *c = self;
    if (out == NULL || out->version != IP_HINTS_VERSION || out->size < sizeof *out) {
        copy_text(c->last_error, sizeof c->last_error, "hints: unknown ip_connector_hints size or version");
        return IP_ERROR_VERSION;
    }
    copy_text(out->format, sizeof out->format, c->format);
    out->architecture = IP_ARCH_UNKNOWN;
    out->present = 0;
    return IP_OK;
}

static size_t connector_last_error(void *self, char *buffer, size_t capacity)
{
    connector *c = self;
    copy_text(buffer, capacity, c->last_error);
    return strlen(c->last_error);
}

static void connector_destroy(void *self)
{
    connector *c = self;
    if (c->data != NULL && c->data != MAP_FAILED)
        munmap(c->data, c->data_size);
    if (c->fd >= 0)
        close(c->fd);
    free(c->memory_map.ranges);
    pthread_rwlock_destroy(&c->lock);
    free(c);
}

static const ip_connector_vtable connector_vtable = {
    .size = sizeof(ip_connector_vtable),
    .version = IP_CONNECTOR_VTABLE_VERSION,
    .metadata = connector_metadata,
    .read = connector_read,
    .write = connector_write,
    .memory_map = connector_memory_map,
    .set_memory_map = connector_set_memory_map,
    .hints = connector_hints,
    .vmcoreinfo = NULL,
    .cpus = NULL,
    .last_error = connector_last_error,
    .destroy = connector_destroy,
};

/* The identity map of a process: each of its memory areas at its own address. */
static int process_identity_map(const ip_os *os, uint64_t pid, map *out, char *error, size_t capacity)
{
    size_t count = 0;
    int32_t result = os->vtable->memory_areas(os->self, pid, NULL, 0, sizeof(ip_memory_area), &count);
    if (result != IP_OK && result != IP_ERROR_NEED_MORE) {
        char message[256];
        os->vtable->last_error(os->self, message, sizeof message);
        set_error(error, capacity, "native-sample: the input OS lists no memory areas for pid %llu: %s", (unsigned long long)pid, message);
        return result == IP_ERROR_NOT_FOUND ? IP_ERROR_ARGUMENT : result;
    }
    if (count > MAX_RANGES) {
        set_error(error, capacity, "native-sample: process %llu has %zu memory areas; at most %d", (unsigned long long)pid, count, MAX_RANGES);
        return IP_ERROR_INVALID_DATA;
    }
    ip_memory_area *areas = calloc(count ? count : 1, sizeof *areas);
    if (areas == NULL)
        return IP_ERROR_INTERNAL;
    for (size_t i = 0; i < count; i++) {
        areas[i].size = sizeof *areas;
        areas[i].version = IP_MEMORY_AREA_VERSION;
    }
    size_t got = 0;
    result = os->vtable->memory_areas(os->self, pid, areas, count, sizeof *areas, &got);
    if (result != IP_OK) {
        free(areas);
        set_error(error, capacity, "native-sample: the memory areas of pid %llu changed while read", (unsigned long long)pid);
        return result;
    }
    out->ranges = malloc((got ? got : 1) * sizeof *out->ranges);
    out->count = 0;
    if (out->ranges == NULL) {
        free(areas);
        return IP_ERROR_INTERNAL;
    }
    for (size_t i = 0; i < got; i++) {
        if (areas[i].end <= areas[i].start)
            continue;
        ip_memory_range *r = &out->ranges[out->count++];
        r->base = areas[i].start;
        r->size = areas[i].end - areas[i].start;
        r->backing = areas[i].start;
    }
    free(areas);
    return check_map(out, "native-sample: the process's memory areas", error, capacity);
}

static int32_t connector_create(const ip_create_args *args, void *out_instance, char *error, size_t capacity)
{
    ip_connector *out = out_instance;
    if (args == NULL || args->version != IP_CREATE_ARGS_VERSION || args->size < sizeof *args) {
        set_error(error, capacity, "native-sample: unknown ip_create_args size or version");
        return IP_ERROR_VERSION;
    }
    if (out == NULL || out->version != IP_CONNECTOR_VERSION || out->size < sizeof *out) {
        set_error(error, capacity, "native-sample: unknown ip_connector size or version");
        return IP_ERROR_VERSION;
    }
    const char *path = find_argument(args, "path");
    const char *map_path = find_argument(args, "map");
    const char *write_text = find_argument(args, "write");
    const char *pid_text = find_argument(args, "pid");
    const char *batch_text = find_argument(args, "batch");

    connector *c = calloc(1, sizeof *c);
    if (c == NULL) {
        set_error(error, capacity, "native-sample: out of memory");
        return IP_ERROR_INTERNAL;
    }
    c->fd = -1;
    c->host = args->host;
    c->ideal_batch = 1024;
    pthread_rwlock_init(&c->lock, NULL);
    uint64_t number = 0;
    if (batch_text != NULL && parse_number(batch_text, &number) && number > 0 && number <= 65536)
        c->ideal_batch = (uint32_t)number;

    int32_t result = IP_OK;
    if (args->input_os != NULL) {
        /* After an OS step: serve a process's virtual memory. */
        if (path != NULL) {
            set_error(error, capacity, "native-sample: 'path' makes no sense after an OS step; give pid=N (and map=FILE) instead");
            result = IP_ERROR_ARGUMENT;
            goto fail;
        }
        if (pid_text == NULL || !parse_number(pid_text, &c->pid)) {
            set_error(error, capacity, "native-sample: after an OS step the argument 'pid' is required (the process whose memory to serve)");
            result = IP_ERROR_ARGUMENT;
            goto fail;
        }
        const ip_os *os = args->input_os;
        if (os->version != IP_OS_VERSION || os->size < sizeof *os || os->vtable == NULL
            || os->vtable->version != IP_OS_VTABLE_VERSION || os->vtable->size < sizeof(ip_os_vtable)) {
            set_error(error, capacity, "native-sample: the input OS has an unknown ip_os size or version");
            result = IP_ERROR_VERSION;
            goto fail;
        }
        c->os = os;
        c->writable = write_text != NULL && parse_boolean(write_text) && os->vtable->process_write != NULL;
        copy_text(c->format, sizeof c->format, "process");
        result = map_path != NULL
            ? read_map_file(map_path, &c->memory_map, error, capacity)
            : process_identity_map(os, c->pid, &c->memory_map, error, capacity);
        if (result != IP_OK)
            goto fail;
        host_log(c->host, IP_LOG_INFO, "native-sample: serving process %llu's memory through %zu ranges", (unsigned long long)c->pid, c->memory_map.count);
    } else {
        if (path == NULL) {
            set_error(error, capacity, "native-sample: the argument 'path' is required (the file to serve)");
            result = IP_ERROR_ARGUMENT;
            goto fail;
        }
        if (pid_text != NULL) {
            set_error(error, capacity, "native-sample: 'pid' needs an OS step before this connector");
            result = IP_ERROR_ARGUMENT;
            goto fail;
        }
        c->writable = write_text != NULL && parse_boolean(write_text);
        c->fd = open(path, c->writable ? O_RDWR : O_RDONLY);
        struct stat status;
        if (c->fd < 0 || fstat(c->fd, &status) != 0) {
            set_error(error, capacity, "native-sample: the file 'path=%s' cannot be opened: %s", path, strerror(errno));
            result = IP_ERROR_ARGUMENT;
            goto fail;
        }
        if (!S_ISREG(status.st_mode) || status.st_size == 0) {
            set_error(error, capacity, "native-sample: 'path=%s' is not a non-empty regular file", path);
            result = IP_ERROR_ARGUMENT;
            goto fail;
        }
        c->data_size = (uint64_t)status.st_size;
        c->data = mmap(NULL, c->data_size, c->writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, c->fd, 0);
        if (c->data == MAP_FAILED) {
            c->data = NULL;
            set_error(error, capacity, "native-sample: %s cannot be mapped: %s", path, strerror(errno));
            result = IP_ERROR_IO;
            goto fail;
        }
        copy_text(c->format, sizeof c->format, "raw");
        if (map_path != NULL) {
            result = read_map_file(map_path, &c->memory_map, error, capacity);
            if (result != IP_OK)
                goto fail;
        } else {
            c->memory_map.ranges = malloc(sizeof *c->memory_map.ranges);
            if (c->memory_map.ranges == NULL) {
                result = IP_ERROR_INTERNAL;
                goto fail;
            }
            c->memory_map.ranges[0] = (ip_memory_range){ 0, c->data_size, 0 };
            c->memory_map.count = 1;
        }
        host_log(c->host, IP_LOG_DEBUG, "native-sample: serving %s (%llu bytes) through %zu ranges", path, (unsigned long long)c->data_size, c->memory_map.count);
    }
    out->self = c;
    out->vtable = &connector_vtable;
    return IP_OK;

fail:
    connector_destroy(c);
    return result;
}

/* ---- the OS layer ----------------------------------------------------------------------------- */

typedef struct flat_os {
    const ip_connector *input;
    uint64_t pid;
    char name[64];
    char last_error[512];
} flat_os;

static int32_t os_info(void *self, ip_os_info *out)
{
    flat_os *os = self;
    if (out == NULL || out->version != IP_OS_INFO_VERSION || out->size < sizeof *out) {
        copy_text(os->last_error, sizeof os->last_error, "info: unknown ip_os_info size or version");
        return IP_ERROR_VERSION;
    }
    copy_text(out->name, sizeof out->name, "flat");
    copy_text(out->version_text, sizeof out->version_text, "native-sample-os " NATIVE_SAMPLE_VERSION ": one process, virtual = physical");
    out->architecture = IP_ARCH_UNKNOWN;
    out->flags = 0;
    out->kernel_base = 0;
    out->kernel_slide = 0;
    out->directory_table_base = 0;
    return IP_OK;
}

static void fill_process(const flat_os *os, ip_process *p)
{
    p->pid = os->pid;
    p->parent_pid = 0;
    p->directory_table_base = 0;
    p->user_directory_table_base = 0;
    p->kernel_object = 0;
    p->state = IP_STATE_RUNNING;
    p->flags = 0;
    p->uid = 0;
    p->thread_count = 1;
    p->architecture = IP_ARCH_UNKNOWN;
    p->reserved = 0;
    copy_text(p->name, sizeof p->name, os->name);
    copy_text(p->state_text, sizeof p->state_text, "R");
}

static int32_t os_process_list(void *self, ip_process *processes, size_t capacity, size_t process_size, size_t *count)
{
    flat_os *os = self;
    if (process_size != sizeof(ip_process)) {
        copy_text(os->last_error, sizeof os->last_error, "process_list: unknown ip_process size");
        return IP_ERROR_VERSION;
    }
    *count = 1;
    if (capacity < 1)
        return IP_ERROR_NEED_MORE;
    if (processes[0].version != IP_PROCESS_VERSION || processes[0].size < sizeof(ip_process)) {
        copy_text(os->last_error, sizeof os->last_error, "process_list: unknown ip_process version");
        return IP_ERROR_VERSION;
    }
    fill_process(os, &processes[0]);
    return IP_OK;
}

static int32_t os_process_info(void *self, uint64_t pid, ip_process_details *out)
{
    flat_os *os = self;
    if (out == NULL || out->version != IP_PROCESS_DETAILS_VERSION || out->size < sizeof *out
        || out->process.version != IP_PROCESS_VERSION || out->process.size < sizeof out->process) {
        copy_text(os->last_error, sizeof os->last_error, "process_info: unknown ip_process_details size or version");
        return IP_ERROR_VERSION;
    }
    if (pid != os->pid) {
        set_error(os->last_error, sizeof os->last_error, "no process %llu", (unsigned long long)pid);
        return IP_ERROR_NOT_FOUND;
    }
    fill_process(os, &out->process);
    copy_text(out->path, sizeof out->path, "[physical memory]");
    copy_text(out->command_line, sizeof out->command_line, os->name);
    return IP_OK;
}

static int32_t os_process_transfer(void *self, uint64_t pid, ip_memory_request *requests, size_t count, size_t request_size, uint32_t flags, int write)
{
    flat_os *os = self;
    if (pid != os->pid) {
        set_error(os->last_error, sizeof os->last_error, "no process %llu", (unsigned long long)pid);
        return IP_ERROR_NOT_FOUND;
    }
    const ip_connector_vtable *input = os->input->vtable;
    if (write && input->write == NULL) {
        copy_text(os->last_error, sizeof os->last_error, "the input connector is read-only");
        return IP_ERROR_UNSUPPORTED;
    }
    int32_t result = write
        ? input->write(os->input->self, requests, count, request_size, flags)
        : input->read(os->input->self, requests, count, request_size, flags);
    if (result != IP_OK) {
        char message[400];
        input->last_error(os->input->self, message, sizeof message);
        set_error(os->last_error, sizeof os->last_error, "the input connector failed: %s", message);
    }
    return result;
}

static int32_t os_process_read(void *self, uint64_t pid, ip_memory_request *requests, size_t count, size_t request_size, uint32_t flags)
{
    return os_process_transfer(self, pid, requests, count, request_size, flags, 0);
}

static int32_t os_process_write(void *self, uint64_t pid, ip_memory_request *requests, size_t count, size_t request_size, uint32_t flags)
{
    return os_process_transfer(self, pid, requests, count, request_size, flags, 1);
}

/* The input's memory map, fetched with the NEED_MORE protocol; the caller frees it. */
static int32_t input_map(flat_os *os, map *out)
{
    size_t count = 0;
    int32_t result = os->input->vtable->memory_map(os->input->self, NULL, 0, sizeof(ip_memory_range), &count);
    if (result != IP_OK && result != IP_ERROR_NEED_MORE)
        return result;
    if (count > MAX_RANGES)
        return IP_ERROR_INVALID_DATA;
    out->ranges = malloc((count ? count : 1) * sizeof *out->ranges);
    if (out->ranges == NULL)
        return IP_ERROR_INTERNAL;
    result = os->input->vtable->memory_map(os->input->self, out->ranges, count, sizeof(ip_memory_range), &out->count);
    if (result != IP_OK) {
        free(out->ranges);
        out->ranges = NULL;
    }
    return result;
}

static int32_t os_process_translate(void *self, uint64_t pid, uint64_t virtual_address, uint64_t *physical_address)
{
    flat_os *os = self;
    if (pid != os->pid)
        return IP_ERROR_NOT_FOUND;
    map m;
    int32_t result = input_map(os, &m);
    if (result != IP_OK)
        return result;
    long index = find_range(&m, virtual_address);
    free(m.ranges);
    if (index < 0)
        return IP_ERROR_NOT_FOUND;
    *physical_address = virtual_address;
    return IP_OK;
}

static int32_t os_memory_areas(void *self, uint64_t pid, ip_memory_area *areas, size_t capacity, size_t area_size, size_t *count)
{
    flat_os *os = self;
    if (area_size != sizeof(ip_memory_area)) {
        copy_text(os->last_error, sizeof os->last_error, "memory_areas: unknown ip_memory_area size");
        return IP_ERROR_VERSION;
    }
    if (pid != os->pid) {
        set_error(os->last_error, sizeof os->last_error, "no process %llu", (unsigned long long)pid);
        return IP_ERROR_NOT_FOUND;
    }
    map m;
    int32_t result = input_map(os, &m);
    if (result != IP_OK) {
        copy_text(os->last_error, sizeof os->last_error, "the input connector's memory map cannot be read");
        return result;
    }
    *count = m.count;
    if (m.count > capacity) {
        free(m.ranges);
        return IP_ERROR_NEED_MORE;
    }
    for (size_t i = 0; i < m.count; i++) {
        if (areas[i].version != IP_MEMORY_AREA_VERSION || areas[i].size < sizeof *areas) {
            free(m.ranges);
            copy_text(os->last_error, sizeof os->last_error, "memory_areas: unknown ip_memory_area version");
            return IP_ERROR_VERSION;
        }
        areas[i].start = m.ranges[i].base;
        areas[i].end = m.ranges[i].base + m.ranges[i].size;
        areas[i].offset = m.ranges[i].base;
        areas[i].protection = IP_PROT_READ | IP_PROT_WRITE;
        areas[i].reserved = 0;
        copy_text(areas[i].path, sizeof areas[i].path, "[physical]");
    }
    free(m.ranges);
    return IP_OK;
}

static int32_t os_module_list(void *self, uint64_t pid, ip_module *modules, size_t capacity, size_t module_size, size_t *count)
{
    flat_os *os = self;
    (void)modules;
    (void)capacity;
    if (module_size != sizeof(ip_module)) {
        copy_text(os->last_error, sizeof os->last_error, "module_list: unknown ip_module size");
        return IP_ERROR_VERSION;
    }
    if (pid != os->pid && pid != IP_KERNEL_PID) {
        set_error(os->last_error, sizeof os->last_error, "no process %llu", (unsigned long long)pid);
        return IP_ERROR_NOT_FOUND;
    }
    *count = 0;                                       /* flat memory has no modules */
    return IP_OK;
}

static size_t os_last_error(void *self, char *buffer, size_t capacity)
{
    flat_os *os = self;
    copy_text(buffer, capacity, os->last_error);
    return strlen(os->last_error);
}

static void os_destroy(void *self)
{
    free(self);
}

static const ip_os_vtable flat_os_vtable = {
    .size = sizeof(ip_os_vtable),
    .version = IP_OS_VTABLE_VERSION,
    .info = os_info,
    .process_list = os_process_list,
    .process_info = os_process_info,
    .process_read = os_process_read,
    .process_write = os_process_write,
    .process_translate = os_process_translate,
    .memory_areas = os_memory_areas,
    .module_list = os_module_list,
    .last_error = os_last_error,
    .destroy = os_destroy,
};

static int32_t os_create(const ip_create_args *args, void *out_instance, char *error, size_t capacity)
{
    ip_os *out = out_instance;
    if (args == NULL || args->version != IP_CREATE_ARGS_VERSION || args->size < sizeof *args) {
        set_error(error, capacity, "native-sample-os: unknown ip_create_args size or version");
        return IP_ERROR_VERSION;
    }
    if (out == NULL || out->version != IP_OS_VERSION || out->size < sizeof *out) {
        set_error(error, capacity, "native-sample-os: unknown ip_os size or version");
        return IP_ERROR_VERSION;
    }
    const ip_connector *input = args->input_connector;
    if (input == NULL || input->version != IP_CONNECTOR_VERSION || input->size < sizeof *input || input->vtable == NULL
        || input->vtable->version != IP_CONNECTOR_VTABLE_VERSION || input->vtable->size < sizeof(ip_connector_vtable)) {
        set_error(error, capacity, "native-sample-os: no input connector, or one of an unknown version");
        return IP_ERROR_VERSION;
    }
    flat_os *os = calloc(1, sizeof *os);
    if (os == NULL) {
        set_error(error, capacity, "native-sample-os: out of memory");
        return IP_ERROR_INTERNAL;
    }
    os->input = input;
    os->pid = 1;
    const char *pid_text = find_argument(args, "pid");
    if (pid_text != NULL && !parse_number(pid_text, &os->pid)) {
        free(os);
        set_error(error, capacity, "native-sample-os: 'pid=%s' is not a number", pid_text);
        return IP_ERROR_ARGUMENT;
    }
    const char *name = find_argument(args, "name");
    copy_text(os->name, sizeof os->name, name != NULL ? name : "memory");
    host_log(args->host, IP_LOG_DEBUG, "native-sample-os: one process %llu '%s' over the input's physical memory (a TLB would hold %u entries, max age %llu ns)",
        (unsigned long long)os->pid, os->name, args->tlb_entries, (unsigned long long)args->tlb_max_age_ns);
    out->self = os;
    out->vtable = &flat_os_vtable;
    return IP_OK;
}

/* ---- the descriptors ---------------------------------------------------------------------------- */

IP_EXPORT const ip_plugin_descriptor introspect_plugin_native_sample = {
    .size = sizeof(ip_plugin_descriptor),
    .version = IP_DESCRIPTOR_VERSION,
    .magic = IP_DESCRIPTOR_MAGIC,
    .abi_version = INTROSPECT_ABI_VERSION,
    .kind = IP_KIND_CONNECTOR,
    .inputs = IP_INPUT_NONE | IP_INPUT_OS,
    .parameter_count = 5,
    .name = "native-sample",
    .plugin_version = NATIVE_SAMPLE_VERSION,
    .description = "A file as physical memory through its own memory map, or a process of the OS before it as physical memory (sample plugin in C)",
    .help =
        "Started alone, serves the file 'path' as physical memory: through the ranges of the map file\n"
        "'map' (one range a line: 'base last [backing]' in hexadecimal, backing = file offset), or\n"
        "the whole file at address 0.\n"
        "After an OS step (... -> os -> native-sample:pid=N), serves process N's virtual memory as\n"
        "physical memory: 'map' then maps guest-physical ranges to the process's virtual addresses;\n"
        "without it, each memory area of the process appears at its own address.\n",
    .parameters = {
        { .name = "path", .type = IP_PARAM_PATH, .flags = IP_PARAM_DEFAULT_ARGUMENT,
          .description = "The file to serve (when the connector starts the chain)." },
        { .name = "map", .type = IP_PARAM_PATH,
          .description = "A memory map file: 'base last [backing]' hexadecimal lines." },
        { .name = "write", .type = IP_PARAM_BOOLEAN, .default_value = "off",
          .description = "Open the file (or the process) for writing too." },
        { .name = "pid", .type = IP_PARAM_NUMBER,
          .description = "After an OS step: the process whose memory to serve." },
        { .name = "batch", .type = IP_PARAM_NUMBER, .default_value = "1024",
          .description = "The ideal batch size the connector reports." },
    },
    .create = connector_create,
};

IP_EXPORT const ip_plugin_descriptor introspect_plugin_native_sample_os = {
    .size = sizeof(ip_plugin_descriptor),
    .version = IP_DESCRIPTOR_VERSION,
    .magic = IP_DESCRIPTOR_MAGIC,
    .abi_version = INTROSPECT_ABI_VERSION,
    .kind = IP_KIND_OS,
    .inputs = IP_INPUT_CONNECTOR,
    .parameter_count = 2,
    .name = "native-sample-os",
    .plugin_version = NATIVE_SAMPLE_VERSION,
    .description = "One process whose virtual memory is the physical memory (sample OS layer in C)",
    .help = "Shows its input connector's physical memory as the memory of a single process, address for address.\n",
    .parameters = {
        { .name = "pid", .type = IP_PARAM_NUMBER, .default_value = "1", .description = "The process's id." },
        { .name = "name", .type = IP_PARAM_STRING, .default_value = "memory", .description = "The process's name." },
    },
    .create = os_create,
};
