// A stand-in for LeechCore, built by the tests with
//     gcc -shared -fPIC -O2 -o leechcore.so fakeleechcore.c -lpthread
// It exports LeechCore's public C ABI (leechcore.h, version 2.2x) over plain files and checks every
// rule that header puts on the caller. A broken rule is a "violation": the call fails (returns FALSE
// or leaves every MEM_SCATTER's f FALSE), a line starting "VIOLATION" goes into a log, and a counter
// goes up; the tests read both through the fakelc_* exports and require zero violations.
//
// Rules checked:
// - LC_CONFIG: dwVersion 0xc0fd0002, szDevice and szRemote NUL-terminated within MAX_PATH, only the
//   known printf verbosity bits; the layout is pinned by the static assertions below (824 bytes on x64).
// - MEM_SCATTER (LcReadScatter, LcWriteScatter): version 0xc0fe0002; f FALSE on entry (the caller resets
//   it before reusing an entry); cb between 8 and 0x1000; address and size DWORD aligned; no crossing of
//   a 0x1000 page boundary; iStack at most MEM_SCATTER_STACK_SIZE - 2; pb set; no two entries' buffers
//   overlapping; writes only to a device LC_CONFIG.fWritable said was writable.
// - Memory: LcMemFree takes only what the library allocated (error information, LcCommand output,
//   LcAllocScatter1), once; the tests check nothing stays allocated once the caller is done.
// - Handles: only open handles are used; LcClose closes a handle once.
// Devices: file://file=PATH[,write=1][,volatile=1] (raw image, physical address = file offset, through
// the memory map), and any device string the tests alias to a file with fakelc_alias. Anything else
// fails with LC_CONFIG_ERRORINFO text, as LeechCore's own devices report failures to open.
#define _GNU_SOURCE
#include <ctype.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

typedef uint32_t DWORD;
typedef uint32_t BOOL;
typedef uint64_t QWORD;
typedef uint8_t BYTE;
typedef uint16_t WCHAR;
#define TRUE 1
#define FALSE 0
#define MAX_PATH 260

#define LC_CONFIG_VERSION 0xc0fd0002u
#define LC_CONFIG_ERRORINFO_VERSION 0xc0fe0002u
#define LC_CONFIG_PRINTF_ALL 0x0fu
#define MEM_SCATTER_VERSION 0xc0fe0002u
#define MEM_SCATTER_STACK_SIZE 12
#define MEM_SCATTER_ADDR_INVALID ((QWORD)-1)

#define LC_OPT_CORE_PRINTF_ENABLE 0x4000000100000000ull
#define LC_OPT_CORE_VERBOSE 0x4000000200000000ull
#define LC_OPT_CORE_VERBOSE_EXTRA 0x4000000300000000ull
#define LC_OPT_CORE_VERBOSE_EXTRA_TLP 0x4000000400000000ull
#define LC_OPT_CORE_VERSION_MAJOR 0x4000000500000000ull
#define LC_OPT_CORE_VERSION_MINOR 0x4000000600000000ull
#define LC_OPT_CORE_VERSION_REVISION 0x4000000700000000ull
#define LC_OPT_CORE_ADDR_MAX 0x1000000800000000ull
#define LC_OPT_CORE_VOLATILE 0x1000000b00000000ull
#define LC_OPT_CORE_READONLY 0x1000000c00000000ull
#define LC_OPT_MEMORYINFO_VALID 0x0200000100000000ull
#define LC_OPT_MEMORYINFO_ARCH 0x0200001200000000ull
#define LC_OPT_MEMORYINFO_OS_DTB 0x0200000700000000ull

#define LC_CMD_MEMMAP_GET 0x4000020000000000ull
#define LC_CMD_MEMMAP_SET 0x4000030000000000ull

typedef struct LC_CONFIG {
    DWORD dwVersion;
    DWORD dwPrintfVerbosity;
    char szDevice[MAX_PATH];
    char szRemote[MAX_PATH];
    int (*pfn_printf_opt)(const char *format, ...);
    QWORD paMax;
    BOOL fVolatile;
    BOOL fWritable;
    BOOL fRemote;
    BOOL fRemoteDisableCompress;
    char szDeviceName[MAX_PATH];
} LC_CONFIG;

_Static_assert(sizeof(LC_CONFIG) == 824, "LC_CONFIG is 824 bytes on x64");
_Static_assert(offsetof(LC_CONFIG, szRemote) == 268, "LC_CONFIG.szRemote");
_Static_assert(offsetof(LC_CONFIG, pfn_printf_opt) == 528, "LC_CONFIG.pfn_printf_opt");
_Static_assert(offsetof(LC_CONFIG, paMax) == 536, "LC_CONFIG.paMax");
_Static_assert(offsetof(LC_CONFIG, fVolatile) == 544, "LC_CONFIG.fVolatile");
_Static_assert(offsetof(LC_CONFIG, fWritable) == 548, "LC_CONFIG.fWritable");
_Static_assert(offsetof(LC_CONFIG, fRemote) == 552, "LC_CONFIG.fRemote");
_Static_assert(offsetof(LC_CONFIG, szDeviceName) == 560, "LC_CONFIG.szDeviceName");

typedef struct LC_CONFIG_ERRORINFO {
    DWORD dwVersion;
    DWORD cbStruct;
    DWORD _FutureUse[16];
    BOOL fUserInputRequest;
    DWORD cwszUserText;
    WCHAR wszUserText[];
} LC_CONFIG_ERRORINFO;

_Static_assert(sizeof(LC_CONFIG_ERRORINFO) == 80, "LC_CONFIG_ERRORINFO header is 80 bytes");

typedef struct MEM_SCATTER {
    DWORD version;
    BOOL f;
    QWORD qwA;
    union {
        BYTE *pb;
        QWORD _Filler;
    };
    DWORD cb;
    DWORD iStack;
    QWORD vStack[MEM_SCATTER_STACK_SIZE];
} MEM_SCATTER;

_Static_assert(sizeof(MEM_SCATTER) == 128, "MEM_SCATTER is 128 bytes");
_Static_assert(offsetof(MEM_SCATTER, pb) == 16, "MEM_SCATTER.pb");
_Static_assert(offsetof(MEM_SCATTER, cb) == 24, "MEM_SCATTER.cb");
_Static_assert(offsetof(MEM_SCATTER, iStack) == 28, "MEM_SCATTER.iStack");
_Static_assert(offsetof(MEM_SCATTER, vStack) == 32, "MEM_SCATTER.vStack");

typedef struct RANGE {
    QWORD pa;
    QWORD cb;
    QWORD remap;
} RANGE;

#define MAX_RANGES 4096
#define MAX_OPTIONS 32
#define MAX_FAIL_PAGES 256
#define MAX_ALIASES 16
#define MAX_DEVICES 64
#define DEVICE_MAGIC 0x4c434656u

typedef struct DEVICE {
    DWORD magic;
    int fd;
    BYTE *view;
    QWORD cbFile;
    BOOL fWritable;
    BOOL fVolatile;
    DWORD cRanges;
    RANGE ranges[MAX_RANGES];
    DWORD cOptions;
    QWORD optionIds[MAX_OPTIONS];
    QWORD optionValues[MAX_OPTIONS];
} DEVICE;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_log[1 << 16];
static size_t g_logLength;
static unsigned g_violations;

static void **g_allocations;
static size_t g_cAllocations, g_cAllocationsMax;
static DEVICE *g_devices[MAX_DEVICES];

// What the tests set up for the next device to open.
static char *g_nextMemMap;
static DWORD g_cNextOptions;
static QWORD g_nextOptionIds[MAX_OPTIONS], g_nextOptionValues[MAX_OPTIONS];
static DWORD g_cFailPages;
static QWORD g_failPages[MAX_FAIL_PAGES];
static char *g_vmList;
static DWORD g_cAliases;
static char *g_aliasDevice[MAX_ALIASES], *g_aliasFile[MAX_ALIASES];

// Statistics: [0] LcReadScatter calls, [1] largest cMEMs read, [2] MEMs read, [3] LcWriteScatter calls,
// [4] largest cMEMs written, [5] LcRead calls, [6] LcWrite calls, [7] LcCreateEx calls, [8] LcCommand calls.
#define STATS 9
static QWORD g_stats[STATS];
static char g_lastDevice[MAX_PATH], g_lastRemote[MAX_PATH];
static DWORD g_lastVerbosity;
static QWORD g_lastPaMax;

static void log_line(const char *prefix, const char *format, va_list args)
{
    char line[1024];
    if (vsnprintf(line, sizeof(line), format, args) < 0) { return; }
    size_t room = sizeof(g_log) - g_logLength;
    if (room < 2) { return; }
    int n = snprintf(g_log + g_logLength, room, "%s%s\n", prefix, line);
    if (n < 0) { return; }
    g_logLength += (size_t)n < room ? (size_t)n : room - 1;
}

// Callers hold g_lock.
static void violation(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    log_line("VIOLATION: ", format, args);
    va_end(args);
    g_violations++;
}

static void note(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    log_line("", format, args);
    va_end(args);
}

static void *tracked_alloc(size_t cb)
{
    void *pv = calloc(1, cb ? cb : 1);
    if (!pv) { return NULL; }
    if (g_cAllocations == g_cAllocationsMax) {
        size_t cMax = g_cAllocationsMax ? g_cAllocationsMax * 2 : 64;
        void **grown = realloc(g_allocations, cMax * sizeof(void *));
        if (!grown) { free(pv); return NULL; }
        g_allocations = grown;
        g_cAllocationsMax = cMax;
    }
    g_allocations[g_cAllocations++] = pv;
    return pv;
}

static int tracked_release(void *pv)
{
    for (size_t i = 0; i < g_cAllocations; i++) {
        if (g_allocations[i] == pv) {
            g_allocations[i] = g_allocations[--g_cAllocations];
            free(pv);
            return 1;
        }
    }
    return 0;
}

static DEVICE *device_of(void *h, const char *function)
{
    for (int i = 0; i < MAX_DEVICES; i++) {
        if (g_devices[i] && g_devices[i] == h && g_devices[i]->magic == DEVICE_MAGIC) { return g_devices[i]; }
    }
    violation("%s: handle %p is not an open LeechCore handle (never opened, or already closed)", function, h);
    return NULL;
}

static BOOL device_option(DEVICE *dev, QWORD id, QWORD *value)
{
    for (DWORD i = 0; i < dev->cOptions; i++) {
        if (dev->optionIds[i] == id) { *value = dev->optionValues[i]; return TRUE; }
    }
    return FALSE;
}

// Physical address -> file offset through the device's memory map, for a span that must not leave its range.
static BOOL translate(DEVICE *dev, QWORD pa, QWORD cb, QWORD *offset)
{
    for (DWORD i = 0; i < dev->cRanges; i++) {
        RANGE *r = &dev->ranges[i];
        if (pa >= r->pa && cb <= r->cb && pa - r->pa <= r->cb - cb) {
            *offset = r->remap + (pa - r->pa);
            return TRUE;
        }
    }
    return FALSE;
}

static BOOL page_fails(QWORD pa)
{
    for (DWORD i = 0; i < g_cFailPages; i++) {
        if (g_failPages[i] == (pa & ~0xfffull)) { return TRUE; }
    }
    return FALSE;
}

static BOOL device_read(DEVICE *dev, QWORD pa, DWORD cb, BYTE *pb)
{
    QWORD offset;
    if (page_fails(pa) || !translate(dev, pa, cb, &offset)) { return FALSE; }
    if (offset > dev->cbFile || cb > dev->cbFile - offset) { return FALSE; }
    memcpy(pb, dev->view + offset, cb);
    return TRUE;
}

static BOOL device_write(DEVICE *dev, QWORD pa, DWORD cb, const BYTE *pb)
{
    QWORD offset;
    if (page_fails(pa) || !translate(dev, pa, cb, &offset)) { return FALSE; }
    if (offset > dev->cbFile || cb > dev->cbFile - offset) { return FALSE; }
    memcpy(dev->view + offset, pb, cb);
    return TRUE;
}

// LeechCore's LC_CMD_MEMMAP_SET text: per line "base top [remap]" in hex, optionally after a 4-digit
// index, "0x" prefixes, '-', '->' and '#' comments allowed. Returns the number of ranges, or -1.
static int parse_memmap(const char *text, size_t cb, RANGE *ranges, int cMax, const char *function)
{
    char *copy = malloc(cb + 1);
    if (!copy) { return -1; }
    memcpy(copy, text, cb);
    copy[cb] = 0;
    int c = 0, line = 0;
    char *context = NULL;
    for (char *sz = strtok_r(copy, "\r\n", &context); sz; sz = strtok_r(NULL, "\r\n", &context)) {
        line++;
        char *hash = strchr(sz, '#');
        if (hash) { *hash = 0; }
        size_t n = strlen(sz);
        if (n > 5 && isxdigit((unsigned char)sz[0]) && isxdigit((unsigned char)sz[1]) && isxdigit((unsigned char)sz[2]) &&
            isxdigit((unsigned char)sz[3]) && sz[4] == ' ' && strstr(sz, "->")) {
            sz += 4;
        }
        QWORD v[3] = { 0, 0, 0 };
        int cv = 0;
        char *p = sz;
        while (*p && cv < 4) {
            while (*p && !isxdigit((unsigned char)*p)) { p++; }
            if (!*p) { break; }
            if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) { p += 2; }
            char *end;
            QWORD value = strtoull(p, &end, 16);
            if (end == p) { break; }
            if (cv < 3) { v[cv] = value; }
            cv++;
            p = end;
        }
        if (cv == 0) { continue; }
        if (cv < 2 || cv > 3 || (v[0] & 0xfff) || v[1] <= v[0] || ((v[1] + 1) & 0xfff)) {
            violation("%s: memory map line %d ('%s') is not 'base top [remap]' with a page-aligned base and top+1; LeechCore would drop it", function, line, sz);
            continue;
        }
        if (cv == 2) { v[2] = v[0]; }
        if (c > 0 && ranges[c - 1].pa + ranges[c - 1].cb > v[0]) {
            violation("%s: memory map line %d overlaps or is out of order; LeechCore would drop it", function, line);
            continue;
        }
        if (c == cMax) { free(copy); return -1; }
        ranges[c].pa = v[0];
        ranges[c].cb = v[1] + 1 - v[0];
        ranges[c].remap = v[2];
        c++;
    }
    free(copy);
    return c;
}

static void *fail_with_info(LC_CONFIG_ERRORINFO **ppInfo, BOOL fUserInput, const char *format, ...)
{
    char text[4096];
    va_list args;
    va_start(args, format);
    vsnprintf(text, sizeof(text), format, args);
    va_end(args);
    note("LcCreateEx failed: %s", text);
    if (!ppInfo) { return NULL; }
    size_t cch = strlen(text);
    LC_CONFIG_ERRORINFO *info = tracked_alloc(sizeof(LC_CONFIG_ERRORINFO) + (cch + 1) * sizeof(WCHAR));
    if (!info) { return NULL; }
    info->dwVersion = LC_CONFIG_ERRORINFO_VERSION;
    info->cbStruct = (DWORD)(sizeof(LC_CONFIG_ERRORINFO) + (cch + 1) * sizeof(WCHAR));
    info->fUserInputRequest = fUserInput;
    info->cwszUserText = (DWORD)cch;
    for (size_t i = 0; i < cch; i++) { info->wszUserText[i] = (unsigned char)text[i]; }
    *ppInfo = info;
    return NULL;
}

// The value of parameter `name` in a device string's "a=b,c=d" part.
static BOOL device_parameter(const char *device, const char *name, char *value, size_t cbValue)
{
    const char *p = strstr(device, "://");
    if (!p) { return FALSE; }
    p += 3;
    size_t cchName = strlen(name);
    while (*p) {
        const char *end = p + strcspn(p, ",;");
        if ((size_t)(end - p) > cchName && !strncasecmp(p, name, cchName) && p[cchName] == '=') {
            size_t cch = (size_t)(end - p) - cchName - 1;
            if (cch >= cbValue) { cch = cbValue - 1; }
            memcpy(value, p + cchName + 1, cch);
            value[cch] = 0;
            return TRUE;
        }
        p = *end ? end + 1 : end;
    }
    return FALSE;
}

static void *open_file_device(LC_CONFIG *cfg, LC_CONFIG_ERRORINFO **ppInfo, const char *path, BOOL fWritable, BOOL fVolatile)
{
    int fd = open(path, fWritable ? O_RDWR : O_RDONLY);
    if (fd < 0) { return fail_with_info(ppInfo, FALSE, "DEVICE: ERROR: unable to open file '%s'", path); }
    struct stat st;
    if (fstat(fd, &st) || st.st_size <= 0) { close(fd); return fail_with_info(ppInfo, FALSE, "DEVICE: ERROR: file '%s' is empty", path); }
    BYTE *view = mmap(NULL, (size_t)st.st_size, PROT_READ | (fWritable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
    if (view == MAP_FAILED) { close(fd); return fail_with_info(ppInfo, FALSE, "DEVICE: ERROR: unable to map file '%s'", path); }
    DEVICE *dev = calloc(1, sizeof(DEVICE));
    int slot = -1;
    for (int i = 0; i < MAX_DEVICES && dev; i++) {
        if (!g_devices[i]) { slot = i; break; }
    }
    if (!dev || slot < 0) {
        free(dev);
        munmap(view, (size_t)st.st_size);
        close(fd);
        return fail_with_info(ppInfo, FALSE, "DEVICE: ERROR: too many open devices");
    }
    dev->magic = DEVICE_MAGIC;
    dev->fd = fd;
    dev->view = view;
    dev->cbFile = (QWORD)st.st_size;
    dev->fWritable = fWritable;
    dev->fVolatile = fVolatile;
    if (g_nextMemMap) {
        int c = parse_memmap(g_nextMemMap, strlen(g_nextMemMap), dev->ranges, MAX_RANGES, "fakelc_set_memmap");
        dev->cRanges = c > 0 ? (DWORD)c : 0;
    } else {
        dev->ranges[0].pa = 0;
        dev->ranges[0].cb = (dev->cbFile + 0xfff) & ~0xfffull;
        dev->ranges[0].remap = 0;
        dev->cRanges = 1;
    }
    // paMax caps the map, as LeechCore's "max physical address" does.
    if (cfg->paMax) {
        QWORD paMax = (cfg->paMax + 0xfff) & ~0xfffull;
        DWORD kept = 0;
        for (DWORD i = 0; i < dev->cRanges; i++) {
            RANGE r = dev->ranges[i];
            if (r.pa >= paMax) { continue; }
            if (r.cb > paMax - r.pa) { r.cb = paMax - r.pa; }
            dev->ranges[kept++] = r;
        }
        dev->cRanges = kept;
    }
    dev->cOptions = g_cNextOptions;
    memcpy(dev->optionIds, g_nextOptionIds, sizeof(g_nextOptionIds));
    memcpy(dev->optionValues, g_nextOptionValues, sizeof(g_nextOptionValues));
    g_devices[slot] = dev;
    cfg->paMax = dev->cRanges ? dev->ranges[dev->cRanges - 1].pa + dev->ranges[dev->cRanges - 1].cb : 0;
    cfg->fVolatile = fVolatile;
    cfg->fWritable = fWritable;
    cfg->fRemote = FALSE;
    snprintf(cfg->szDeviceName, sizeof(cfg->szDeviceName), "file");
    note("LcCreateEx opened %s (%s) as handle %p", cfg->szDevice, path, (void *)dev);
    return dev;
}

EXPORT void *LcCreateEx(LC_CONFIG *cfg, LC_CONFIG_ERRORINFO **ppInfo)
{
    void *result = NULL;
    pthread_mutex_lock(&g_lock);
    g_stats[7]++;
    if (ppInfo) { *ppInfo = NULL; }
    if (!cfg) { violation("LcCreateEx: pLcCreateConfig is NULL"); goto done; }
    if (cfg->dwVersion != LC_CONFIG_VERSION) {
        violation("LcCreateEx: LC_CONFIG.dwVersion is 0x%08x; LC_CONFIG_VERSION is 0x%08x", cfg->dwVersion, LC_CONFIG_VERSION);
        goto done;
    }
    if (!memchr(cfg->szDevice, 0, MAX_PATH) || !memchr(cfg->szRemote, 0, MAX_PATH)) {
        violation("LcCreateEx: LC_CONFIG.szDevice or szRemote is not NUL-terminated within MAX_PATH (260) bytes");
        goto done;
    }
    if (cfg->dwPrintfVerbosity & ~LC_CONFIG_PRINTF_ALL) {
        violation("LcCreateEx: LC_CONFIG.dwPrintfVerbosity 0x%x has bits beyond LC_CONFIG_PRINTF_*", cfg->dwPrintfVerbosity);
        goto done;
    }
    memcpy(g_lastDevice, cfg->szDevice, MAX_PATH);
    memcpy(g_lastRemote, cfg->szRemote, MAX_PATH);
    g_lastVerbosity = cfg->dwPrintfVerbosity;
    g_lastPaMax = cfg->paMax;
    note("LcCreateEx device='%s' remote='%s' verbosity=0x%x paMax=0x%llx", cfg->szDevice, cfg->szRemote, cfg->dwPrintfVerbosity,
        (unsigned long long)cfg->paMax);
    if (cfg->szRemote[0]) {
        result = fail_with_info(ppInfo, FALSE, "remote connections (%s) are not served by the test library", cfg->szRemote);
        goto done;
    }
    for (DWORD i = 0; i < g_cAliases; i++) {
        if (!strcmp(g_aliasDevice[i], cfg->szDevice)) {
            result = open_file_device(cfg, ppInfo, g_aliasFile[i], FALSE, TRUE);
            goto done;
        }
    }
    if (!strncasecmp(cfg->szDevice, "file://", 7)) {
        char path[MAX_PATH], flag[16];
        if (!device_parameter(cfg->szDevice, "file", path, sizeof(path))) {
            result = fail_with_info(ppInfo, FALSE, "DEVICE: ERROR: no file= in '%s'", cfg->szDevice);
            goto done;
        }
        BOOL fWritable = device_parameter(cfg->szDevice, "write", flag, sizeof(flag)) && strtoull(flag, NULL, 0) != 0;
        BOOL fVolatile = device_parameter(cfg->szDevice, "volatile", flag, sizeof(flag)) && strtoull(flag, NULL, 0) != 0;
        result = open_file_device(cfg, ppInfo, path, fWritable, fVolatile);
        goto done;
    }
    if (!strncasecmp(cfg->szDevice, "hvmm://", 7) && strstr(cfg->szDevice, "listvm") && g_vmList) {
        // LiveCloudKd answers hvmm://listvm with its VM list as user text, one "[id = N] name" line per VM.
        char text[3000];
        size_t o = (size_t)snprintf(text, sizeof(text), "Please, select ID of the virtual machine\n");
        int id = 0;
        for (const char *p = g_vmList; *p && o < sizeof(text);) {
            size_t cch = strcspn(p, "\n");
            o += (size_t)snprintf(text + o, sizeof(text) - o, "[id = %d] %.*s\n", id++, (int)cch, p);
            p += cch;
            if (*p) { p++; }
        }
        result = fail_with_info(ppInfo, TRUE, "%s", text);
        goto done;
    }
    result = fail_with_info(ppInfo, FALSE, "the test library serves file:// devices only; '%s' is not one", cfg->szDevice);
done:
    pthread_mutex_unlock(&g_lock);
    return result;
}

EXPORT void *LcCreate(LC_CONFIG *cfg)
{
    return LcCreateEx(cfg, NULL);
}

EXPORT void LcClose(void *h)
{
    if (!h) { return; }
    pthread_mutex_lock(&g_lock);
    DEVICE *dev = device_of(h, "LcClose");
    if (dev) {
        for (int i = 0; i < MAX_DEVICES; i++) {
            if (g_devices[i] == dev) { g_devices[i] = NULL; }
        }
        munmap(dev->view, (size_t)dev->cbFile);
        close(dev->fd);
        dev->magic = 0;
        free(dev);
        note("LcClose %p", h);
    }
    pthread_mutex_unlock(&g_lock);
}

EXPORT void LcMemFree(void *pv)
{
    if (!pv) { return; }
    pthread_mutex_lock(&g_lock);
    if (!tracked_release(pv)) {
        violation("LcMemFree: %p was not allocated by the library, or was freed already", pv);
    }
    pthread_mutex_unlock(&g_lock);
}

EXPORT BOOL LcAllocScatter1(DWORD cMEMs, MEM_SCATTER ***pppMEMs)
{
    BOOL result = FALSE;
    pthread_mutex_lock(&g_lock);
    if (!pppMEMs) { violation("LcAllocScatter1: pppMEMs is NULL"); goto done; }
    *pppMEMs = NULL;
    if (!cMEMs || cMEMs > 0x01000000) { goto done; }
    BYTE *block = tracked_alloc((size_t)cMEMs * (sizeof(MEM_SCATTER *) + sizeof(MEM_SCATTER) + 0x1000));
    if (!block) { goto done; }
    MEM_SCATTER **ppMEMs = (MEM_SCATTER **)block;
    MEM_SCATTER *pMEMs = (MEM_SCATTER *)(block + (size_t)cMEMs * sizeof(MEM_SCATTER *));
    BYTE *pbData = (BYTE *)(pMEMs + cMEMs);
    for (DWORD i = 0; i < cMEMs; i++) {
        ppMEMs[i] = &pMEMs[i];
        pMEMs[i].version = MEM_SCATTER_VERSION;
        pMEMs[i].cb = 0x1000;
        pMEMs[i].pb = pbData + (size_t)i * 0x1000;
    }
    *pppMEMs = ppMEMs;
    result = TRUE;
done:
    pthread_mutex_unlock(&g_lock);
    return result;
}

typedef struct SPAN {
    uintptr_t start;
    uintptr_t end;
    DWORD index;
} SPAN;

static int compare_spans(const void *a, const void *b)
{
    const SPAN *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start ? 1 : 0;
}

// Checks a scatter call's entries; on any violation clears every f and returns FALSE.
static BOOL check_scatter(const char *function, DWORD cMEMs, MEM_SCATTER **ppMEMs)
{
    BOOL ok = TRUE;
    if (!cMEMs) { return TRUE; }
    if (!ppMEMs) { violation("%s: ppMEMs is NULL with cMEMs=%u", function, cMEMs); return FALSE; }
    SPAN *spans = malloc((size_t)cMEMs * sizeof(SPAN));
    DWORD cSpans = 0;
    for (DWORD i = 0; i < cMEMs; i++) {
        MEM_SCATTER *pMEM = ppMEMs[i];
        if (!pMEM) { violation("%s: ppMEMs[%u] is NULL", function, i); ok = FALSE; continue; }
        if (pMEM->version != MEM_SCATTER_VERSION) {
            violation("%s: MEM %u has version 0x%08x; MEM_SCATTER_VERSION is 0x%08x", function, i, pMEM->version, MEM_SCATTER_VERSION);
            ok = FALSE;
        }
        if (pMEM->f) {
            violation("%s: MEM %u (0x%llx) has f=TRUE on entry: f must be reset before an entry is reused", function, i,
                (unsigned long long)pMEM->qwA);
            ok = FALSE;
        }
        if (pMEM->iStack > MEM_SCATTER_STACK_SIZE - 2) {
            violation("%s: MEM %u has iStack=%u; at most %u", function, i, pMEM->iStack, MEM_SCATTER_STACK_SIZE - 2);
            ok = FALSE;
        }
        if (pMEM->qwA == MEM_SCATTER_ADDR_INVALID) { continue; }
        if (pMEM->cb < 8 || pMEM->cb > 0x1000) {
            violation("%s: MEM %u (0x%llx) has cb=%u; cb must be 8..0x1000", function, i, (unsigned long long)pMEM->qwA, pMEM->cb);
            ok = FALSE;
        }
        if ((pMEM->qwA & 3) || (pMEM->cb & 3)) {
            violation("%s: MEM %u (0x%llx, cb=%u) is not DWORD aligned", function, i, (unsigned long long)pMEM->qwA, pMEM->cb);
            ok = FALSE;
        }
        if ((pMEM->qwA & 0xfff) + pMEM->cb > 0x1000) {
            violation("%s: MEM %u (0x%llx, cb=%u) crosses a 0x1000 page boundary", function, i, (unsigned long long)pMEM->qwA, pMEM->cb);
            ok = FALSE;
        }
        if (!pMEM->pb) { violation("%s: MEM %u (0x%llx) has pb=NULL", function, i, (unsigned long long)pMEM->qwA); ok = FALSE; continue; }
        if (spans) {
            spans[cSpans].start = (uintptr_t)pMEM->pb;
            spans[cSpans].end = (uintptr_t)pMEM->pb + pMEM->cb;
            spans[cSpans].index = i;
            cSpans++;
        }
    }
    if (spans) {
        qsort(spans, cSpans, sizeof(SPAN), compare_spans);
        for (DWORD i = 1; i < cSpans; i++) {
            if (spans[i].start < spans[i - 1].end) {
                violation("%s: the buffers of MEM %u and MEM %u overlap", function, spans[i - 1].index, spans[i].index);
                ok = FALSE;
                break;
            }
        }
        free(spans);
    }
    if (!ok) {
        for (DWORD i = 0; i < cMEMs; i++) {
            if (ppMEMs[i]) { ppMEMs[i]->f = FALSE; }
        }
    }
    return ok;
}

static void scatter(void *h, DWORD cMEMs, MEM_SCATTER **ppMEMs, BOOL fWrite)
{
    const char *function = fWrite ? "LcWriteScatter" : "LcReadScatter";
    pthread_mutex_lock(&g_lock);
    DEVICE *dev = device_of(h, function);
    g_stats[fWrite ? 3 : 0]++;
    if (cMEMs > g_stats[fWrite ? 4 : 1]) { g_stats[fWrite ? 4 : 1] = cMEMs; }
    if (!fWrite) { g_stats[2] += cMEMs; }
    if (!check_scatter(function, cMEMs, ppMEMs) || !dev) {
        if (ppMEMs) {
            for (DWORD i = 0; i < cMEMs; i++) {
                if (ppMEMs[i]) { ppMEMs[i]->f = FALSE; }
            }
        }
        goto done;
    }
    if (fWrite && !dev->fWritable) {
        violation("LcWriteScatter: the device is read-only (LC_CONFIG.fWritable was FALSE)");
        goto done;
    }
    for (DWORD i = 0; i < cMEMs; i++) {
        MEM_SCATTER *pMEM = ppMEMs[i];
        if (pMEM->qwA == MEM_SCATTER_ADDR_INVALID) { continue; }
        // LeechCore keeps the caller's address on the entry's stack while the device works on it.
        DWORD iStack = pMEM->iStack;
        QWORD qwA = pMEM->qwA;
        pMEM->vStack[pMEM->iStack++] = qwA;
        pMEM->f = fWrite ? device_write(dev, qwA, pMEM->cb, pMEM->pb) : device_read(dev, qwA, pMEM->cb, pMEM->pb);
        pMEM->qwA = pMEM->vStack[--pMEM->iStack];
        if (pMEM->iStack != iStack) { violation("%s: MEM %u's stack was not balanced", function, i); }
    }
done:
    pthread_mutex_unlock(&g_lock);
}

EXPORT void LcReadScatter(void *h, DWORD cMEMs, MEM_SCATTER **ppMEMs)
{
    scatter(h, cMEMs, ppMEMs, FALSE);
}

EXPORT void LcWriteScatter(void *h, DWORD cMEMs, MEM_SCATTER **ppMEMs)
{
    scatter(h, cMEMs, ppMEMs, TRUE);
}

// LcRead and LcWrite take any address and length: the library cuts them into pages itself.
static BOOL contiguous(void *h, QWORD pa, DWORD cb, BYTE *pb, BOOL fWrite)
{
    const char *function = fWrite ? "LcWrite" : "LcRead";
    BOOL result = FALSE;
    pthread_mutex_lock(&g_lock);
    g_stats[fWrite ? 6 : 5]++;
    DEVICE *dev = device_of(h, function);
    if (!dev) { goto done; }
    if (!cb) { result = TRUE; goto done; }
    if (!pb) { violation("%s: pb is NULL with cb=%u", function, cb); goto done; }
    if (fWrite && !dev->fWritable) { violation("LcWrite: the device is read-only (LC_CONFIG.fWritable was FALSE)"); goto done; }
    if (pa + (cb - 1) < pa) { goto done; }
    result = TRUE;
    for (QWORD o = 0; o < cb;) {
        DWORD cbPage = (DWORD)(0x1000 - ((pa + o) & 0xfff));
        if (cbPage > cb - o) { cbPage = (DWORD)(cb - o); }
        BOOL f = fWrite ? device_write(dev, pa + o, cbPage, pb + o) : device_read(dev, pa + o, cbPage, pb + o);
        if (!f) { result = FALSE; }
        o += cbPage;
    }
done:
    pthread_mutex_unlock(&g_lock);
    return result;
}

EXPORT BOOL LcRead(void *h, QWORD pa, DWORD cb, BYTE *pb)
{
    return contiguous(h, pa, cb, pb, FALSE);
}

EXPORT BOOL LcWrite(void *h, QWORD pa, DWORD cb, BYTE *pb)
{
    return contiguous(h, pa, cb, pb, TRUE);
}

EXPORT BOOL LcGetOption(void *h, QWORD fOption, QWORD *pqwValue)
{
    BOOL result = FALSE;
    pthread_mutex_lock(&g_lock);
    DEVICE *dev = device_of(h, "LcGetOption");
    if (!pqwValue) { violation("LcGetOption: pqwValue is NULL"); goto done; }
    *pqwValue = 0;
    if (!dev) { goto done; }
    switch (fOption) {
        case LC_OPT_CORE_VERSION_MAJOR: *pqwValue = 2; result = TRUE; goto done;
        case LC_OPT_CORE_VERSION_MINOR: *pqwValue = 23; result = TRUE; goto done;
        case LC_OPT_CORE_VERSION_REVISION: *pqwValue = 0; result = TRUE; goto done;
        case LC_OPT_CORE_ADDR_MAX:
            *pqwValue = dev->cRanges ? dev->ranges[dev->cRanges - 1].pa + dev->ranges[dev->cRanges - 1].cb : 0x0000ffffffffffffull;
            result = TRUE;
            goto done;
        case LC_OPT_CORE_VOLATILE: *pqwValue = dev->fVolatile; result = TRUE; goto done;
        case LC_OPT_CORE_READONLY: *pqwValue = !dev->fWritable; result = TRUE; goto done;
    }
    // Memory-info options answer as LeechCore's file device does: VALID always, ARCH and DTB when
    // known, the crash-dump ones only when VALID is 1.
    if (fOption == LC_OPT_MEMORYINFO_VALID) {
        QWORD valid = 0;
        device_option(dev, fOption, &valid);
        *pqwValue = valid;
        result = TRUE;
        goto done;
    }
    if ((fOption >> 56) == 0x02) {
        QWORD valid = 0;
        device_option(dev, LC_OPT_MEMORYINFO_VALID, &valid);
        if (fOption != LC_OPT_MEMORYINFO_ARCH && fOption != LC_OPT_MEMORYINFO_OS_DTB && !valid) { goto done; }
        result = device_option(dev, fOption, pqwValue);
    }
done:
    pthread_mutex_unlock(&g_lock);
    return result;
}

EXPORT BOOL LcSetOption(void *h, QWORD fOption, QWORD qwValue)
{
    BOOL result = FALSE;
    pthread_mutex_lock(&g_lock);
    DEVICE *dev = device_of(h, "LcSetOption");
    if (dev) {
        note("LcSetOption 0x%llx = 0x%llx", (unsigned long long)fOption, (unsigned long long)qwValue);
        result = fOption == LC_OPT_CORE_PRINTF_ENABLE || fOption == LC_OPT_CORE_VERBOSE || fOption == LC_OPT_CORE_VERBOSE_EXTRA ||
            fOption == LC_OPT_CORE_VERBOSE_EXTRA_TLP;
    }
    pthread_mutex_unlock(&g_lock);
    return result;
}

EXPORT BOOL LcCommand(void *h, QWORD fCommand, DWORD cbDataIn, BYTE *pbDataIn, BYTE **ppbDataOut, DWORD *pcbDataOut)
{
    BOOL result = FALSE;
    pthread_mutex_lock(&g_lock);
    g_stats[8]++;
    if (ppbDataOut) { *ppbDataOut = NULL; }
    if (pcbDataOut) { *pcbDataOut = 0; }
    DEVICE *dev = device_of(h, "LcCommand");
    if (!dev) { goto done; }
    if (cbDataIn && !pbDataIn) { violation("LcCommand: pbDataIn is NULL with cbDataIn=%u", cbDataIn); goto done; }
    if (fCommand == LC_CMD_MEMMAP_GET) {
        if (!ppbDataOut || !dev->cRanges) { goto done; }
        // LeechCore's own text form: index, base, top and remap, fixed width, the buffer NUL-padded.
        DWORD cb = dev->cRanges * (4 + 1 + 16 + 3 + 16 + 4 + 16 + 1);
        char *text = tracked_alloc(cb);
        if (!text) { goto done; }
        DWORD o = 0;
        for (DWORD i = 0; i < dev->cRanges; i++) {
            int n = snprintf(text + o, cb - o, "%04x %16llx - %16llx -> %16llx\n", i, (unsigned long long)dev->ranges[i].pa,
                (unsigned long long)(dev->ranges[i].pa + dev->ranges[i].cb - 1), (unsigned long long)dev->ranges[i].remap);
            if (n > 0) { o += (DWORD)n; }
        }
        text[cb - 1] = 0;
        *ppbDataOut = (BYTE *)text;
        if (pcbDataOut) { *pcbDataOut = cb; }
        result = TRUE;
        goto done;
    }
    if (fCommand == LC_CMD_MEMMAP_SET) {
        if (!pbDataIn || !cbDataIn) { goto done; }
        RANGE *ranges = malloc(sizeof(RANGE) * MAX_RANGES);
        if (!ranges) { goto done; }
        unsigned before = g_violations;
        int c = parse_memmap((const char *)pbDataIn, cbDataIn, ranges, MAX_RANGES, "LcCommand(LC_CMD_MEMMAP_SET)");
        if (c >= 0 && g_violations == before) {
            memcpy(dev->ranges, ranges, sizeof(RANGE) * (size_t)c);
            dev->cRanges = (DWORD)c;
            note("LcCommand(LC_CMD_MEMMAP_SET): %d ranges", c);
            result = TRUE;
        }
        free(ranges);
        goto done;
    }
    note("LcCommand: command 0x%llx is not served by the test library", (unsigned long long)fCommand);
done:
    pthread_mutex_unlock(&g_lock);
    return result;
}

// ---- What the tests use to set up and inspect the library. ----

static void clear_knobs(void)
{
    free(g_nextMemMap);
    g_nextMemMap = NULL;
    g_cNextOptions = 0;
    g_cFailPages = 0;
    free(g_vmList);
    g_vmList = NULL;
    for (DWORD i = 0; i < g_cAliases; i++) {
        free(g_aliasDevice[i]);
        free(g_aliasFile[i]);
    }
    g_cAliases = 0;
}

EXPORT void fakelc_reset(void)
{
    pthread_mutex_lock(&g_lock);
    g_logLength = 0;
    g_log[0] = 0;
    g_violations = 0;
    memset(g_stats, 0, sizeof(g_stats));
    g_lastDevice[0] = g_lastRemote[0] = 0;
    g_lastVerbosity = 0;
    g_lastPaMax = 0;
    clear_knobs();
    pthread_mutex_unlock(&g_lock);
}

EXPORT unsigned fakelc_violations(void)
{
    pthread_mutex_lock(&g_lock);
    unsigned c = g_violations;
    pthread_mutex_unlock(&g_lock);
    return c;
}

EXPORT size_t fakelc_log(char *buffer, size_t cb)
{
    pthread_mutex_lock(&g_lock);
    size_t n = g_logLength;
    if (buffer && cb) {
        size_t c = n < cb - 1 ? n : cb - 1;
        memcpy(buffer, g_log, c);
        buffer[c] = 0;
    }
    pthread_mutex_unlock(&g_lock);
    return n;
}

EXPORT int fakelc_outstanding_allocations(void)
{
    pthread_mutex_lock(&g_lock);
    int c = (int)g_cAllocations;
    pthread_mutex_unlock(&g_lock);
    return c;
}

EXPORT int fakelc_open_devices(void)
{
    int c = 0;
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < MAX_DEVICES; i++) {
        if (g_devices[i]) { c++; }
    }
    pthread_mutex_unlock(&g_lock);
    return c;
}

EXPORT void fakelc_stats(QWORD *values, int count)
{
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < count && i < STATS; i++) { values[i] = g_stats[i]; }
    pthread_mutex_unlock(&g_lock);
}

EXPORT void fakelc_last_create(char *device, char *remote, DWORD *verbosity, QWORD *paMax)
{
    pthread_mutex_lock(&g_lock);
    memcpy(device, g_lastDevice, MAX_PATH);
    memcpy(remote, g_lastRemote, MAX_PATH);
    *verbosity = g_lastVerbosity;
    *paMax = g_lastPaMax;
    pthread_mutex_unlock(&g_lock);
}

EXPORT void fakelc_set_memmap(const char *text)
{
    pthread_mutex_lock(&g_lock);
    free(g_nextMemMap);
    g_nextMemMap = text ? strdup(text) : NULL;
    pthread_mutex_unlock(&g_lock);
}

EXPORT void fakelc_set_option(QWORD id, QWORD value)
{
    pthread_mutex_lock(&g_lock);
    if (g_cNextOptions < MAX_OPTIONS) {
        g_nextOptionIds[g_cNextOptions] = id;
        g_nextOptionValues[g_cNextOptions] = value;
        g_cNextOptions++;
    }
    pthread_mutex_unlock(&g_lock);
}

EXPORT void fakelc_fail_page(QWORD pa)
{
    pthread_mutex_lock(&g_lock);
    if (g_cFailPages < MAX_FAIL_PAGES) { g_failPages[g_cFailPages++] = pa & ~0xfffull; }
    pthread_mutex_unlock(&g_lock);
}

EXPORT void fakelc_set_vm_list(const char *names)
{
    pthread_mutex_lock(&g_lock);
    free(g_vmList);
    g_vmList = names ? strdup(names) : NULL;
    pthread_mutex_unlock(&g_lock);
}

EXPORT void fakelc_alias(const char *device, const char *file)
{
    pthread_mutex_lock(&g_lock);
    if (g_cAliases < MAX_ALIASES) {
        g_aliasDevice[g_cAliases] = strdup(device);
        g_aliasFile[g_cAliases] = strdup(file);
        g_cAliases++;
    }
    pthread_mutex_unlock(&g_lock);
}
