/* Structures with known layouts. The tests compile this with clang-cl and link it with lld-link into a PDB, then
   compare the PDB's sizes and field offsets with what clang's own record layout dump gives for the same file. */

typedef unsigned long long u64;

struct Inner {
    short a;
    char b;
};

/* Bit fields: runs in one storage unit, a zero-width field that closes a unit, a change of the declared type (which
   starts a new unit under the Microsoft ABI), and 64-bit units. */
struct Flags {
    unsigned int ready : 1;
    unsigned int mode : 3;
    unsigned int count : 12;
    unsigned int : 0;
    unsigned int high : 5;
    unsigned char small : 2;
    u64 wide : 40;
    u64 rest : 24;
    int last : 7;
};

union Value {
    int i;
    float f;
    u64 q;
    unsigned char bytes[8];
    struct Inner inner;
};

struct Outer {
    int x;
    struct Inner in;
    union Value value;
    struct Flags flags;
    struct {
        int nx;
        short ny;
    } named_anon;
    union {
        int ui;
        char uc;
    };
    struct {
        u64 sa;
        unsigned int sb : 4;
    };
    struct Outer *next;
    int matrix[3][4];
    struct Inner inners[2];
    char tail;
};

#pragma pack(push, 1)
struct Packed {
    char c;
    int i;
    short s;
    struct Inner in;
};
#pragma pack(pop)

struct __declspec(align(32)) Aligned {
    int a;
    char b;
};

struct Nested3 {
    struct Outer outer;
    struct Packed packed;
    struct Aligned aligned;
    union Value values[3];
};

typedef struct _LIST_ENTRY {
    struct _LIST_ENTRY *Flink;
    struct _LIST_ENTRY *Blink;
} LIST_ENTRY;

enum Color { Red, Green = 5, Blue };

struct Kernelish {
    LIST_ENTRY Links;
    volatile long Lock;
    const void *Owner;
    enum Color color;
    union {
        struct {
            unsigned long Low : 12;
            unsigned long Mid : 20;
        };
        unsigned long All;
    } Bits;
    struct _LIST_ENTRY *Heads[4];
};

struct Outer g_outer;
struct Flags g_flags;
union Value g_value;
struct Packed g_packed;
struct Aligned g_aligned;
struct Nested3 g_nested;
struct Kernelish g_kernelish;
LIST_ENTRY g_list;

static int helper(int value)
{
    return value * 3 + g_flags.mode;
}

/* Clang lays out (and so dumps) only the records an expression needs. */
static int sizes(void)
{
    return (int)(sizeof(struct Inner) + sizeof(struct Flags) + sizeof(union Value) + sizeof(struct Outer) + sizeof(struct Packed)
        + sizeof(struct Aligned) + sizeof(struct Nested3) + sizeof(LIST_ENTRY) + sizeof(struct Kernelish));
}

int entry(void)
{
    return helper((int)sizeof(g_outer)) + g_kernelish.Bits.Mid + sizes();
}
