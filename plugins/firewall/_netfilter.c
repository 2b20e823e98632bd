/* One pass over a block of kern.log lines: the netfilter LOG lines of the usual shape counted
 * per distinct value, every other line handed back whole for the general way.
 *
 * Why C: the fast path's bytes pattern (parse._NETFILTER_LINE) costs CPython's `re` ~13,400
 * instructions a line, and the targets of issues 12 and 15 leave ~2,400 for everything
 * (bench/README.md, bench_firewall). This file is that pattern written out as a forward-only walk
 * over each line, with the counting done here too, so that Python runs once per distinct value.
 *
 * `scan(data: bytes)` returns exactly what parse.netfilter_scan_py returns (the reference, built
 * on `_NETFILTER_LINE.findall`, and the fallback when this module is not built):
 *
 *   (minutes, stamps, packets, v4, v6, others)
 *   minutes: set[bytes]                   RFC 3164 minutes, b"Nov 23 07:25"
 *   stamps:  set[tuple[bytes, bytes]]     RFC 3339 minutes and offsets, (b"2026-11-23T07:25", b"+01:00")
 *   packets: dict[tuple[bytes, bytes, bytes], int]   (head, PROTO, DPT or b"") -> lines
 *   v4:      Nets                         lines per (head, IPv4 source /24 as a number), /24s of
 *                                         valid addresses only (the reference: {head: {/24: lines}},
 *                                         which Nets.as_dict() gives; NetRows.add reads a Nets)
 *   v6:      dict[bytes, dict[bytes, int]]  head -> IPv6 source -> lines
 *   others:  bytes                        the other non-empty lines, each ended by b"\n"
 *
 * or None when the block holds b"NETFILTER_CFG" anywhere (the general way reads such a block
 * whole: parse._linux_line takes any line holding it for an audit record). Found from its "_"
 * with memchr, it costs ~30 instructions a line; `bytes.__contains__` took ~250 us a 1 MiB block.
 *
 * where head is the log prefix with IN= and OUT= (group 4 of the pattern). Why the walk below is
 * the pattern, step by step (each place where `re` could backtrack has one way to match only):
 * - the stamp, host, kernel time stamp, IN=/OUT= values, MAC=, DST=, LEN=, the numbers and PROTO=
 *   are possessive or fixed, or optional parts whose first bytes differ from what follows
 *   (`(?:CE |)(?:DF |)(?:MF |)PROTO=`, `(?:MAC=…|)SRC=`); the kernel time stamp `[12.5] ` holds
 *   no "=", so taking it or leaving it to the prefix finds the same IN=, and `re` takes it;
 * - the prefix `[ -<>-~]*IN=` holds no "=": the only IN= it can reach is the one whose "=" is the
 *   first byte outside that class;
 * - an RFC 3339 fraction `(?:\.[0-9]{1,6}|)` before `(Z|[+-]…)`: all its digits, 1 to 6;
 * - the IPv4 source: three octets of 1-3 digits, a last octet 0-255 without a leading zero, then
 *   " DST="; else the IPv6 alternative `[0-9a-f:]++` then " DST=" (no "." in it: the two cannot
 *   both match);
 * - after PROTO's value: " SPT=digits DPT=digits" then a space or the line's end; else a space
 *   not followed by "SPT=", or the line's end.
 *
 * Bounds: every read is checked against the block's end (a line is walked without looking for its
 * end first: see match_line), but for runs of digits, which stop at the NUL CPython keeps after
 * the block's last byte; nothing is copied from the input but into
 * `bytes` objects sized for it and into a table entry's room for a short key (length checked).
 * Counts are kept in open-addressing tables keyed by spans of the input (no Python object per
 * line), hashed by a mix seeded from CPython's randomised bytes hash, or by that hash itself (a
 * log line is written by whoever sends packets: no chosen collisions). Memory: a table entry per
 * distinct value and a span per other line, both at most one per line of the block.
 *
 * `NetRows` counts a backlog's blocked packets per (UTC day, /24) across blocks, from a scan's
 * Nets or filterlog's packed counts, and names its rows once per batch (parse.NetRowsPy is its
 * definition; see "Nets and NetRows" below).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#define INLINE static inline __attribute__((always_inline))
#else
#define INLINE static inline
#endif

#include "_words.h"

typedef struct {
    Py_ssize_t off, len;
} Span;

#define SHORT_KEY 24 /* bytes: a key this short is kept in its entry (compared and copied out from there) */

typedef struct {
    uint64_t hash;
    Py_ssize_t tag; /* head index (packets, sources); 0 elsewhere */
    Span a, b;      /* where the key is in the input; b.len == 0 where unused */
    uint64_t key[SHORT_KEY / 8]; /* a's bytes then b's, if they fit (else unused) */
    Py_ssize_t value; /* count, or the head's index in the heads table */
} Entry;

/* Entries in the order they came (dense, what the results are built from), found through an
 * open-addressing index of 8-byte slots: the entry's number + 1 in the low 32 bits (0: empty),
 * the hash's high 32 bits above, so that a probe touches an entry only when its hash matches. */
typedef struct {
    uint64_t *slots;
    size_t mask; /* slots - 1, a power of two */
    Entry *entries;
    size_t n, cap;
} Table;

typedef struct {
    Span *items;
    Py_ssize_t n, cap;
} Spans;

static int table_init(Table *t, size_t slots)
{
    t->slots = PyMem_Calloc(slots, sizeof(uint64_t));
    if (t->slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    t->mask = slots - 1;
    t->entries = NULL;
    t->n = t->cap = 0;
    return 0;
}

static void table_free(Table *t)
{
    PyMem_Free(t->slots);
    PyMem_Free(t->entries);
    t->slots = NULL;
    t->entries = NULL;
}

/* Equal bytes, eight at a time (no library call for the short spans compared per line). */
INLINE int bytes_eq(const char *x, const char *y, Py_ssize_t n)
{
    for (; n >= 8; x += 8, y += 8, n -= 8) {
        uint64_t u, v;
        memcpy(&u, x, 8);
        memcpy(&v, y, 8);
        if (u != v)
            return 0;
    }
    for (; n > 0; x++, y++, n--)
        if (*x != *y)
            return 0;
    return 1;
}

INLINE int span_eq(const char *buf, Span x, Span y)
{
    return x.len == y.len && bytes_eq(buf + x.off, buf + y.off, x.len);
}

/* Room for one more entry: the index at most half full, the entries' array grown. */
static int table_room(Table *t)
{
    if (t->n >= 0xFFFFFFFEu) {
        PyErr_NoMemory();
        return -1;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        if (cap > ((size_t)PY_SSIZE_T_MAX) / sizeof(Entry)) {
            PyErr_NoMemory();
            return -1;
        }
        Entry *entries = PyMem_Realloc(t->entries, cap * sizeof(Entry));
        if (entries == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        t->entries = entries;
        t->cap = cap;
    }
    if ((t->n + 1) * 2 > t->mask + 1) {
        size_t size = (t->mask + 1) * 2;
        uint64_t *slots = PyMem_Calloc(size, sizeof(uint64_t));
        if (slots == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (size_t i = 0; i < t->n; i++) {
            size_t j = (size_t)t->entries[i].hash & (size - 1);
            while (slots[j])
                j = (j + 1) & (size - 1);
            slots[j] = (t->entries[i].hash & 0xFFFFFFFF00000000u) | (uint64_t)(i + 1);
        }
        PyMem_Free(t->slots);
        t->slots = slots;
        t->mask = size - 1;
    }
    return 0;
}

INLINE uint64_t fmix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53u;
    h ^= h >> 33;
    return h;
}

/* h with the n bytes at p mixed in: whole words loaded as such, the last few bytes gathered. */
INLINE uint64_t mix_span(uint64_t h, const char *p, Py_ssize_t n)
{
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = ((h << 31 | h >> 33) ^ w) * 0x9E3779B97F4A7C15u;
    }
    if (n > 0) {
        uint64_t w = 0;
        for (Py_ssize_t i = 0; i < n; i++)
            w |= (uint64_t)(unsigned char)p[i] << (8 * i);
        h = ((h << 31 | h >> 33) ^ w) * 0xC2B2AE3D27D4EB4Fu;
    }
    return h;
}

/* The entry of (tag, a, b), made with value `fresh` if new; NULL with MemoryError set.
 *
 * A short key (the usual: a /24, a protocol and port, a minute) is hashed by a mix seeded per
 * process (`seed`, from CPython's randomised bytes hash);
 * a long one (a head, an odd field) by CPython's bytes hash itself. Either way the hash depends
 * on a secret, so lines written by whoever sends packets cannot be made to collide. A new short
 * key is copied into its entry (its length checked against the entry's room). */
static Entry *table_get(Table *t, const char *buf, uint64_t seed, Py_ssize_t tag, Span a, Span b, Py_ssize_t fresh)
{
    if (table_room(t) < 0) /* before the probe: the empty slot it ends on is the one to fill */
        return NULL;
    int inline_key = a.len + b.len <= SHORT_KEY;
    uint64_t h = seed;
    if (inline_key) { /* the bytes of a, then of b, eight at a time (their lengths mixed in below) */
        h = mix_span(h, buf + a.off, a.len);
        h = mix_span(h, buf + b.off, b.len);
    } else {
        h = (uint64_t)_Py_HashBytes(buf + a.off, a.len) ^ fmix(h ^ (uint64_t)_Py_HashBytes(buf + b.off, b.len));
    }
    h = fmix(h ^ ((uint64_t)a.len << 40) ^ ((uint64_t)b.len << 52) ^ (uint64_t)tag);
    uint64_t high = h & 0xFFFFFFFF00000000u;
    size_t j = (size_t)h & t->mask;
    for (;;) {
        uint64_t slot = t->slots[j];
        if (slot == 0)
            break;
        if ((slot & 0xFFFFFFFF00000000u) == high) {
            Entry *e = &t->entries[(slot & 0xFFFFFFFFu) - 1];
            if (e->hash == h && e->tag == tag && e->a.len == a.len && e->b.len == b.len &&
                (inline_key ? bytes_eq((const char *)e->key, buf + a.off, a.len) &&
                                  bytes_eq((const char *)e->key + a.len, buf + b.off, b.len)
                            : span_eq(buf, e->a, a) && span_eq(buf, e->b, b)))
                return e;
        }
        j = (j + 1) & t->mask;
    }
    Entry *e = &t->entries[t->n];
    e->hash = h;
    e->tag = tag;
    e->a = a;
    e->b = b;
    if (inline_key) { /* a.len + b.len <= sizeof(e->key), checked above */
        memcpy((char *)e->key, buf + a.off, (size_t)a.len);
        memcpy((char *)e->key + a.len, buf + b.off, (size_t)b.len);
    }
    e->value = fresh;
    t->slots[j] = high | (uint64_t)(t->n + 1);
    t->n++;
    return e;
}

/* The bytes of an entry's key parts: from the entry when short (no read of a line long gone
 * from the cache), else from the input. */
static const char *part_a(const char *buf, Entry *x)
{
    return x->a.len + x->b.len <= SHORT_KEY ? (const char *)x->key : buf + x->a.off;
}

static const char *part_b(const char *buf, Entry *x)
{
    return x->a.len + x->b.len <= SHORT_KEY ? (const char *)x->key + x->a.len : buf + x->b.off;
}

static int spans_push(Spans *s, Span x)
{
    if (s->n == s->cap) {
        Py_ssize_t cap = s->cap ? s->cap * 2 : 64;
        if ((size_t)cap > ((size_t)PY_SSIZE_T_MAX) / sizeof(Span)) {
            PyErr_NoMemory();
            return -1;
        }
        Span *items = PyMem_Realloc(s->items, (size_t)cap * sizeof(Span));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        s->items = items;
        s->cap = cap;
    }
    s->items[s->n++] = x;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Counts per 64-bit key: a block's IPv4 sources per (head, /24) (`Nets`), a backlog's per (UTC
 * day, /24) (`NetRows`). Open addressing with linear probing over slots of (key, count); a count
 * of 0 marks an empty slot (a key is only ever added with a count of 1 or more). The slots are at
 * most 3/4 full (grown before an insert). Keys are mixed with a seed from CPython's randomised
 * hash, so that sources chosen by whoever sends packets cannot be made to collide. A copy is one
 * memcpy of the slots. */

typedef struct {
    uint64_t key;
    int64_t n;
} Slot;

typedef struct {
    Slot *slots; /* NULL: none yet */
    size_t mask; /* slots - 1, a power of two */
    size_t used;
    uint64_t seed;
} Counts;

#define NET_BITS 24
#define NET_MASK 0xFFFFFFu

static uint64_t counts_seed(void)
{
    return (uint64_t)_Py_HashBytes("normagent._netfilter.Counts", 27); /* randomised per process */
}

/* The slots doubled (or made): called by counts_room only. */
static int counts_grow(Counts *c)
{
    size_t size = c->slots ? c->mask + 1 : 0;
    size_t grown = size ? size * 2 : 64;
    if (grown > ((size_t)PY_SSIZE_T_MAX) / sizeof(Slot) / 2) {
        PyErr_NoMemory();
        return -1;
    }
    Slot *slots = PyMem_Calloc(grown, sizeof(Slot));
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < size; i++) {
        Slot x = c->slots[i];
        if (x.n) {
            size_t j = (size_t)fmix(x.key ^ c->seed) & (grown - 1);
            while (slots[j].n)
                j = (j + 1) & (grown - 1);
            slots[j] = x;
        }
    }
    PyMem_Free(c->slots);
    c->slots = slots;
    c->mask = grown - 1;
    return 0;
}

/* Slots made for about `expected` keys before the first grows (an empty Counts only): a block's
 * /24s are counted into a table that would otherwise double six times on the way to the ~3,500
 * networks of a 1 MiB block under a scan, each time putting every key back (4.5 % of the scan). */
static int counts_reserve(Counts *c, size_t expected)
{
    size_t slots = 64;
    while (slots < ((size_t)1 << 20) && slots / 4 * 3 < expected)
        slots *= 2;
    if (c->slots != NULL)
        return 0;
    c->slots = PyMem_Calloc(slots, sizeof(Slot));
    if (c->slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    c->mask = slots - 1;
    return 0;
}

/* Room for one more key: at most 3/4 of the slots used after it (the test inlined, per line). */
INLINE int counts_room(Counts *c)
{
    if (c->slots != NULL && (c->used + 1) * 4 <= (c->mask + 1) * 3)
        return 0;
    return counts_grow(c);
}

/* Add n (>= 1) to the count of key; -1 with MemoryError or OverflowError set. */
INLINE int counts_add(Counts *c, uint64_t key, int64_t n)
{
    if (counts_room(c) < 0)
        return -1;
    size_t j = (size_t)fmix(key ^ c->seed) & c->mask;
    for (;;) {
        Slot *x = &c->slots[j];
        if (x->n == 0) {
            x->key = key;
            x->n = n;
            c->used++;
            return 0;
        }
        if (x->key == key) {
            if (x->n > INT64_MAX - n) {
                PyErr_SetString(PyExc_OverflowError, "a count above 2**63");
                return -1;
            }
            x->n += n;
            return 0;
        }
        j = (j + 1) & c->mask;
    }
}

static void counts_free(Counts *c)
{
    PyMem_Free(c->slots);
    c->slots = NULL;
    c->used = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Byte classes and small steps; `p` is an index into the line, `e` its end (a "\n" or the end). */

#define DIGIT(c) ((c) >= '0' && (c) <= '9')
#define UPPER(c) ((c) >= 'A' && (c) <= 'Z')
#define LOWER(c) ((c) >= 'a' && (c) <= 'z')
#define GRAPH(c) ((c) >= '!' && (c) <= '~')                      /* [!-~] */
#define PREFIX(c) ((c) >= ' ' && (c) <= '~' && (c) != '=')         /* [ -<>-~] */
#define HOST(c) (UPPER(c) || LOWER(c) || DIGIT(c) || (c) == '.' || (c) == '_' || (c) == '-')
#define HEX6(c) (DIGIT(c) || ((c) >= 'a' && (c) <= 'f') || (c) == ':') /* [0-9a-f:] */
#define HEXUP(c) (DIGIT(c) || ((c) >= 'A' && (c) <= 'F'))              /* [0-9A-F] */

INLINE int lit(const unsigned char *s, Py_ssize_t p, Py_ssize_t e, const char *word, Py_ssize_t n)
{
    /* n is a constant where inlined. A word of 4 to 16 bytes is compared as two loads of the
     * input that overlap in its middle (its first and last 4 or 8 bytes), each with the same
     * bytes of the word (constants once inlined): no byte beyond s[p + n - 1] is read, and no
     * copy goes through the stack (a copy of n bytes into a zeroed buffer, loaded as a whole,
     * stalls the load on the partial stores: the walk's costliest steps before). */
    if (e - p < n)
        return 0;
    const unsigned char *x = s + p;
    if (n >= 8 && n <= 16)
        return load64(x) == load64(word) && load64(x + n - 8) == load64(word + n - 8);
    if (n >= 4 && n < 8)
        return load32(x) == load32(word) && load32(x + n - 4) == load32(word + n - 4);
    if (n < 4) {
        for (Py_ssize_t i = 0; i < n; i++)
            if (x[i] != (unsigned char)word[i])
                return 0;
        return 1;
    }
    return memcmp(x, word, (size_t)n) == 0;
}

#define LIT(word) lit(s, p, e, word, (Py_ssize_t)(sizeof(word) - 1))

INLINE int in_range(const unsigned char *s, Py_ssize_t p, Py_ssize_t e, char lo, char hi)
{
    return p < e && s[p] >= (unsigned char)lo && s[p] <= (unsigned char)hi;
}

#define RANGE(i, lo, hi) in_range(s, p + (i), e, lo, hi)

/* End of a run of digits from p (p itself when none). No bound is checked: `e` is the block's
 * end, where CPython keeps a NUL after every bytes object's last byte (PyBytes_AsString), and a
 * NUL is no digit (nor is the "\n" that ends a line). */
INLINE Py_ssize_t digits(const unsigned char *s, Py_ssize_t p, Py_ssize_t e)
{
    (void)e;
    while (DIGIT(s[p]))
        p++;
    return p;
}


/* Eight bytes at a time (SWAR): a mask with bit 7 set in each byte of `w` outside 0x21-0x7E
 * ([!-~]), or, with `prefix`, outside 0x20-0x7E or "=" ([ -<>-~]). Exact for the lowest set
 * byte, which is all the runs below use: each test adds within a byte without carrying into the
 * next, and the "=" test's borrows reach only bytes above a true match. */
INLINE uint64_t outside(uint64_t w, int prefix)
{
    uint64_t x = w & ~HIGHS;
    uint64_t bad = w & HIGHS;                                     /* >= 0x80 */
    bad |= ~(x + (0x80 - (prefix ? 0x20 : 0x21)) * ONES) & HIGHS; /* below the class */
    bad |= (x + ONES) & HIGHS;                                    /* 0x7F */
    if (prefix) {
        uint64_t z = x ^ (0x3D * ONES); /* "=" */
        bad |= (z - ONES) & ~z & HIGHS;
    }
    return bad;
}

INLINE Py_ssize_t run(const unsigned char *s, Py_ssize_t p, Py_ssize_t e, int prefix)
{
    while (e - p >= 8) {
        uint64_t w;
        memcpy(&w, s + p, 8);
        uint64_t bad = outside(w, prefix);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && defined(__GNUC__)
        if (bad)
            return p + (__builtin_ctzll(bad) >> 3);
        p += 8;
#else
        if (bad)
            break;
        p += 8;
#endif
    }
    if (prefix)
        while (p < e && PREFIX(s[p]))
            p++;
    else
        while (p < e && GRAPH(s[p]))
            p++;
    return p;
}

INLINE Py_ssize_t graphs(const unsigned char *s, Py_ssize_t p, Py_ssize_t e)
{
    return run(s, p, e, 0);
}

typedef struct {
    Span minute, stamp, offset, head, v4, v6, proto, dport;
    int32_t net; /* with v4: its /24 as a number (a << 16 | b << 8 | c), or -1 when an octet is no
                  * octet of an address (above 255, or a leading zero: what ipaddress refuses) */
    Py_ssize_t head_index; /* the head's number when it was one of the known heads, else -1 */
    Span host, mac;        /* " host kernel: " and "MAC=value " (len 0: none) */
} Line;

#define FEW_HEADS 8 /* distinct heads so far in a block: compared one by one, not hashed */

/* The block's first heads, as the walk found them (each at least "IN= OUT= ", 9 bytes): a line
 * whose bytes after the kernel's time stamp begin with one of them has that head, because the
 * walk over the same bytes ends in the same place (the prefix's run stops at the "=" of IN=,
 * the value runs at the spaces that follow them, all inside the head). So the walk over the
 * head, and the comparison with the heads after it, is one word compared per known head (and
 * the rest of the one whose word is equal): a log holds a few heads, taking turns line by line. */
typedef struct {
    uint64_t first[FEW_HEADS]; /* its first 8 bytes */
    const unsigned char *bytes[FEW_HEADS];
    Py_ssize_t len[FEW_HEADS];
    Py_ssize_t n;
    /* The same for two parts that rarely change from line to line, taken from the last line that
     * matched: " host kernel: " and "MAC=value " (the host's run stops at the space before
     * "kernel:", MAC's value at the space after it, both inside the part). NULL: none yet. */
    const unsigned char *host, *mac;
    Py_ssize_t host_len, mac_len;
} KnownHeads;

/* Whether the line at s is a LOG line of the usual shape (the main alternative of
 * _NETFILTER_LINE, matched at the line's start and ending at most at its end): where the match
 * ends (an offset from s), or -1; its groups in `m` (offsets relative to s).
 *
 * `e` is the end of the block (relative to s), not of the line: the line's end is not looked
 * for first (a memchr over every line, a pass of its own: 14 % of the scan), because no byte
 * class or literal of the pattern takes a "\n": every run and every comparison stops at the
 * line's "\n" as it would at the line's end, and the two places where the pattern asks for the
 * line's end (after PROTO's value or DPT's digits) take a "\n" as that end. So the walk never
 * passes the line's "\n", and the caller looks for it from where the match ended (only the few
 * fields after DPT= are left) or, for a line that does not match, from the line's start. */
static Py_ssize_t match_line(const unsigned char *s, Py_ssize_t e, Line *m, const KnownHeads *known)
{
    Py_ssize_t p = 0, q;
    const Span none = {0, 0};
    m->minute = m->stamp = m->offset = m->v4 = m->v6 = m->dport = none;
    /* The stamp: RFC 3164 "Nov 23 07:25:53" or RFC 3339 "2026-11-23T07:25:53[.f]Z|+01:00". */
    if (RANGE(0, 'A', 'Z')) {
        if (LITTLE_ENDIAN_LOADS && e >= 15) { /* two words, each byte against its place's range; byte 4 also by itself */
            if (!(lanes_in(load64(s), LANES('A', 'a', 'a', ' ', ' ', '0', ' ', '0'), LANES('Z', 'z', 'z', ' ', '9', '9', ' ', '2')) &&
                  lanes_in(load64(s + 7), LANES('0', '0', ':', '0', '0', ':', '0', '0'), LANES('2', '9', ':', '5', '9', ':', '5', '9')) &&
                  (s[4] == ' ' || DIGIT(s[4]))))
                return -1;
        } else if (!(RANGE(1, 'a', 'z') && RANGE(2, 'a', 'z') && RANGE(3, ' ', ' ') && (RANGE(4, ' ', ' ') || RANGE(4, '0', '9')) &&
              RANGE(5, '0', '9') && RANGE(6, ' ', ' ') && RANGE(7, '0', '2') && RANGE(8, '0', '9') && RANGE(9, ':', ':') &&
              RANGE(10, '0', '5') && RANGE(11, '0', '9') && RANGE(12, ':', ':') && RANGE(13, '0', '5') && RANGE(14, '0', '9')))
            return -1;
        m->minute = (Span){0, 12};
        p = 15;
    } else if (RANGE(0, '0', '9')) {
        if (!(RANGE(1, '0', '9') && RANGE(2, '0', '9') && RANGE(3, '0', '9') && RANGE(4, '-', '-') && RANGE(5, '0', '1') &&
              RANGE(6, '0', '9') && RANGE(7, '-', '-') && RANGE(8, '0', '3') && RANGE(9, '0', '9') && RANGE(10, 'T', 'T') &&
              RANGE(11, '0', '2') && RANGE(12, '0', '9') && RANGE(13, ':', ':') && RANGE(14, '0', '5') && RANGE(15, '0', '9') &&
              RANGE(16, ':', ':') && RANGE(17, '0', '5') && RANGE(18, '0', '9')))
            return -1;
        m->stamp = (Span){0, 16};
        p = 19;
        if (p < e && s[p] == '.') {
            q = digits(s, p + 1, e);
            if (q - (p + 1) < 1 || q - (p + 1) > 6)
                return -1;
            p = q;
        }
        if (RANGE(0, 'Z', 'Z')) {
            m->offset = (Span){p, 1};
            p += 1;
        } else if ((RANGE(0, '+', '+') || RANGE(0, '-', '-')) && RANGE(1, '0', '1') && RANGE(2, '0', '9') && RANGE(3, ':', ':') &&
                   RANGE(4, '0', '5') && RANGE(5, '0', '9')) {
            m->offset = (Span){p, 6};
            p += 6;
        } else {
            return -1;
        }
    } else {
        return -1;
    }
    /* " host kernel: ": the last line's, or walked */
    q = p;
    if (known->host != NULL && known->host_len <= e - p && bytes_eq((const char *)s + p, (const char *)known->host, known->host_len)) {
        p += known->host_len;
    } else {
        if (!LIT(" "))
            return -1;
        Py_ssize_t r = ++p;
        while (p < e && HOST(s[p]))
            p++;
        if (p == r || !LIT(" kernel: "))
            return -1;
        p += 9;
    }
    m->host = (Span){q, p - q};
    /* The kernel's time stamp "[ 12.5] ", if whole. */
    if (p < e && s[p] == '[') {
        q = p + 1;
        while (q < e && s[q] == ' ')
            q++;
        Py_ssize_t r = digits(s, q, e);
        if (r > q && r < e && s[r] == '.') {
            Py_ssize_t t = digits(s, r + 1, e);
            if (t > r + 1 && lit(s, t, e, "] ", 2))
                p = t + 2;
        }
    }
    /* The head: prefix (no "="), IN=value OUT=value and a space; one of the known heads, or walked. */
    Py_ssize_t h = p;
    m->head_index = -1;
    if (e - p >= 8) {
        uint64_t w = load64(s + p);
        for (Py_ssize_t i = 0; i < known->n; i++)
            if (known->first[i] == w && known->len[i] <= e - p && bytes_eq((const char *)s + p + 8, (const char *)known->bytes[i] + 8, known->len[i] - 8)) {
                m->head_index = i;
                p += known->len[i];
                m->head = (Span){h, p - h};
                goto mac;
            }
    }
    p = run(s, p, e, 1);
    if (!(p < e && s[p] == '=' && p - 2 >= h && s[p - 2] == 'I' && s[p - 1] == 'N'))
        return -1;
    p = graphs(s, p + 1, e);
    if (!LIT(" OUT="))
        return -1;
    p = graphs(s, p + 5, e);
    if (!LIT(" "))
        return -1;
    p += 1;
    m->head = (Span){h, p - h};
mac:
    m->mac = (Span){p, 0};
    if (known->mac != NULL && known->mac_len <= e - p && bytes_eq((const char *)s + p, (const char *)known->mac, known->mac_len)) {
        p += known->mac_len; /* the last line's MAC= and value */
        m->mac.len = known->mac_len;
    } else if (LIT("MAC=")) {
        p = graphs(s, p + 4, e);
        if (!LIT(" "))
            return -1;
        p += 1;
        m->mac.len = p - m->mac.off;
    }
    /* The source: an IPv4 address (its /24 kept) or the IPv6 alternative, then " DST=". */
    if (!LIT("SRC="))
        return -1;
    p += 4;
    {
        Py_ssize_t a = p, r = p, ok = 1;
        int32_t net = 0, canonical = 1;
        for (int i = 0; i < 3 && ok; i++) {
            /* 1-3 digits and a ".", the octet's value read as it goes (at most 999: no overflow) */
            int32_t octet = 0;
            Py_ssize_t t = r;
            while (t - r < 4 && DIGIT(s[t])) /* no bound: see digits() */
                octet = octet * 10 + (s[t++] - '0');
            if (t - r < 1 || t - r > 3 || t >= e || s[t] != '.') {
                ok = 0;
            } else {
                if (octet > 255 || (t - r > 1 && s[r] == '0'))
                    canonical = 0;
                net = net << 8 | (octet & 0xFF);
                r = t + 1;
            }
        }
        m->net = canonical ? net : -1;
        if (ok) {
            Py_ssize_t t = digits(s, r, e), n = t - r;
            ok = (n == 1) || (n == 2 && s[r] != '0') ||
                 (n == 3 && (s[r] == '1' || (s[r] == '2' && (s[r + 1] < '5' || (s[r + 1] == '5' && s[r + 2] <= '5')))));
            if (ok && lit(s, t, e, " DST=", 5)) {
                m->v4 = (Span){a, r - 1 - a};
                p = t;
            } else {
                ok = 0;
            }
        }
        if (!ok) {
            r = a;
            while (r < e && HEX6(s[r]))
                r++;
            if (r == a || !lit(s, r, e, " DST=", 5))
                return -1;
            m->v6 = (Span){a, r - a};
            p = r;
        }
    }
    /* " DST=x LEN=n " */
    q = graphs(s, p + 5, e);
    if (q == p + 5)
        return -1;
    p = q;
    if (!LIT(" LEN="))
        return -1;
    q = digits(s, p + 5, e);
    if (q == p + 5 || !lit(s, q, e, " ", 1))
        return -1;
    p = q + 1;
    /* IPv4's TOS= PREC= TTL= ID= [CE ][DF ][MF ], or IPv6's TC= HOPLIMIT= FLOWLBL= */
    if (LIT("TOS=0x")) {
        if (!(RANGE(6, '0', '9') || RANGE(6, 'A', 'F')) || !(RANGE(7, '0', '9') || RANGE(7, 'A', 'F')))
            return -1;
        p += 8;
        if (!LIT(" PREC=0x"))
            return -1;
        if (!(RANGE(8, '0', '9') || RANGE(8, 'A', 'F')) || !(RANGE(9, '0', '9') || RANGE(9, 'A', 'F')))
            return -1;
        p += 10;
        if (!LIT(" TTL="))
            return -1;
        q = digits(s, p + 5, e);
        if (q == p + 5)
            return -1;
        p = q;
        if (!LIT(" ID="))
            return -1;
        q = digits(s, p + 4, e);
        if (q == p + 4 || !lit(s, q, e, " ", 1))
            return -1;
        p = q + 1;
        if (LIT("CE "))
            p += 3;
        if (LIT("DF "))
            p += 3;
        if (LIT("MF "))
            p += 3;
    } else if (LIT("TC=")) {
        q = digits(s, p + 3, e);
        if (q == p + 3)
            return -1;
        p = q;
        if (!LIT(" HOPLIMIT="))
            return -1;
        q = digits(s, p + 10, e);
        if (q == p + 10)
            return -1;
        p = q;
        if (!LIT(" FLOWLBL="))
            return -1;
        q = digits(s, p + 9, e);
        if (q == p + 9 || !lit(s, q, e, " ", 1))
            return -1;
        p = q + 1;
    } else {
        return -1;
    }
    /* PROTO=x, then " SPT=n DPT=n" before a space or the end, or no SPT= at all. */
    if (!LIT("PROTO="))
        return -1;
    q = graphs(s, p + 6, e);
    if (q == p + 6)
        return -1;
    m->proto = (Span){p + 6, q - (p + 6)};
    p = q;
    if (LIT(" SPT=")) {
        q = digits(s, p + 5, e);
        if (q == p + 5 || !lit(s, q, e, " DPT=", 5))
            return -1;
        Py_ssize_t t = digits(s, q + 5, e);
        if (t == q + 5 || !(t == e || s[t] == ' ' || s[t] == '\n'))
            return -1;
        m->dport = (Span){q + 5, t - (q + 5)};
        return t;
    }
    return p == e || s[p] == ' ' || s[p] == '\n' ? p : -1;
}

/* ------------------------------------------------------------------------------------------ */
/* The packets' entries of the usual keys found without hashing spans of bytes: a line's (head,
 * PROTO, DPT) is looked up in `packets` (a span hash, a probe, the spans compared: ~190
 * instructions a line) only when this direct-mapped cache does not hold it. A key whose PROTO
 * and DPT are up to 8 bytes each is three words: the head's number and both lengths, PROTO's
 * bytes, DPT's bytes (zero above them). Equal words are equal keys and only equal keys, so a slot
 * holding the same words holds the entry `table_get` would find. A block has a few dozen such
 * keys; two that share a slot take turns in it (each miss goes to the table, never wrong). */

#define PACKET_SLOTS 256

typedef struct {
    uint64_t w0, w1, w2; /* w0 == 0: an empty slot (a key's w0 has bit 63 set) */
    size_t entry;        /* its entry's index in `packets` */
} PacketSlot;

typedef struct {
    PacketSlot slots[PACKET_SLOTS];
} PacketCache;

/* The n (<= 8) bytes at buf[off] as one little-endian word, zero above them; no byte at or
 * beyond buf[size] is read. */
INLINE uint64_t word_at(const char *buf, Py_ssize_t off, Py_ssize_t n, Py_ssize_t size)
{
    uint64_t w = 0;
    if (size - off >= 8) {
        memcpy(&w, buf + off, 8);
        return n == 8 ? w : w & ((1ULL << (8 * n)) - 1);
    }
    for (Py_ssize_t i = 0; i < n; i++)
        w |= (uint64_t)(unsigned char)buf[off + i] << (8 * i);
    return w;
}

/* ------------------------------------------------------------------------------------------ */

typedef struct {
    Table minutes, stamps, heads, packets, v6;
    Counts v4; /* (head index << 24 | /24) -> lines */
    Spans heads_by_index, others;
    uint64_t seed;
    Py_ssize_t size; /* the block's */
    PacketCache recent;
    KnownHeads known; /* heads_by_index's first FEW_HEADS */
} Scan;

static void scan_free(Scan *sc)
{
    table_free(&sc->minutes);
    table_free(&sc->stamps);
    table_free(&sc->heads);
    table_free(&sc->packets);
    counts_free(&sc->v4);
    table_free(&sc->v6);
    PyMem_Free(sc->heads_by_index.items);
    PyMem_Free(sc->others.items);
}

static PyObject *bytes_of(const char *buf, Span x)
{
    return PyBytes_FromStringAndSize(buf + x.off, x.len);
}

/* The dict at outer[key], made if missing (borrowed); NULL with an exception set. */
static PyObject *dict_at(PyObject *outer, PyObject *key)
{
    PyObject *inner = PyDict_GetItemWithError(outer, key);
    if (inner != NULL || PyErr_Occurred())
        return inner;
    inner = PyDict_New();
    if (inner == NULL)
        return NULL;
    int rc = PyDict_SetItem(outer, key, inner);
    Py_DECREF(inner); /* the dict holds it */
    return rc < 0 ? NULL : inner;
}

/* d[key] += n (0 when missing); -1 with an exception set. */
static int add_to(PyObject *d, PyObject *key, int64_t n)
{
    PyObject *count = PyLong_FromLongLong(n);
    if (count == NULL)
        return -1;
    PyObject *had = PyDict_GetItemWithError(d, key); /* borrowed */
    if (had == NULL && PyErr_Occurred()) {
        Py_DECREF(count);
        return -1;
    }
    if (had != NULL) {
        PyObject *sum = PyNumber_Add(had, count);
        Py_DECREF(count);
        if (sum == NULL)
            return -1;
        count = sum;
    }
    int rc = PyDict_SetItem(d, key, count);
    Py_DECREF(count);
    return rc;
}

/* head -> {source: lines} for the sources table `t`. */
static PyObject *sources_dict(const char *buf, Table *t, PyObject *heads)
{
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < t->n; i++) {
        Entry *x = &t->entries[i];
        PyObject *inner = dict_at(out, PyList_GET_ITEM(heads, x->tag));
        PyObject *key = inner ? PyBytes_FromStringAndSize(part_a(buf, x), x->a.len) : NULL;
        int rc = key ? add_to(inner, key, (int64_t)x->value) : -1;
        Py_XDECREF(key);
        if (rc < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

/* ------------------------------------------------------------------------------------------ */
/* Nets and NetRows: IPv4 source /24s counted without a Python object per network.
 *
 * A backlog of blocked packets from a scan brings thousands of distinct networks to every 1 MiB
 * block (~3,470 of ~4,300 lines in bench_firewall's log). Handing each block's /24s to Python as
 * `bytes` keys of a dict, and adding them to the carried rows under their pseudonyms per block,
 * was ~1,300 instructions a line (bench/README.md). Instead a block's sources stay in the scan's
 * table (`Nets`), are added in C to the backlog's rows per (UTC day, /24) (`NetRows`), and become
 * pseudonyms once per distinct network when a batch is committed (`unnamed`, `named`).
 * parse.NetRowsPy is NetRows' definition, and with parse.netfilter_scan_py the fallback. */

typedef struct {
    PyObject_HEAD
    Counts counts;   /* (head index << 24 | /24) -> lines */
    PyObject *heads; /* list of bytes: the block's heads by index */
} Nets;

typedef struct {
    PyObject_HEAD
    Counts counts; /* (UTC day's ordinal << 24 | /24) -> lines */
} NetRows;

static PyTypeObject NetsType, NetRowsType;

#define MAX_DAY 3652059 /* date.max.toordinal() */

static void nets_dealloc(PyObject *self)
{
    Nets *nets = (Nets *)self;
    counts_free(&nets->counts);
    Py_XDECREF(nets->heads);
    Py_TYPE(self)->tp_free(self);
}

static Py_ssize_t nets_len(PyObject *self)
{
    return (Py_ssize_t)((Nets *)self)->counts.used;
}

/* {head: {/24: lines}}: what parse.netfilter_scan_py gives for v4 (for tests). */
static PyObject *nets_as_dict(PyObject *self, PyObject *unused)
{
    (void)unused;
    Nets *nets = (Nets *)self;
    Counts *c = &nets->counts;
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    for (size_t i = 0; c->slots != NULL && i <= c->mask; i++) {
        Slot x = c->slots[i];
        if (x.n == 0)
            continue;
        uint64_t head = x.key >> NET_BITS;
        if (head >= (uint64_t)PyList_GET_SIZE(nets->heads)) {
            PyErr_SetString(PyExc_SystemError, "Nets: a head index out of range");
            goto fail;
        }
        PyObject *inner = dict_at(out, PyList_GET_ITEM(nets->heads, (Py_ssize_t)head));
        PyObject *net = inner ? PyLong_FromUnsignedLongLong(x.key & NET_MASK) : NULL;
        int rc = net ? add_to(inner, net, x.n) : -1;
        Py_XDECREF(net);
        if (rc < 0)
            goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *netrows_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "NetRows() takes no arguments");
        return NULL;
    }
    NetRows *self = (NetRows *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->counts.slots = NULL;
    self->counts.mask = 0;
    self->counts.used = 0;
    self->counts.seed = counts_seed();
    return (PyObject *)self;
}

static void netrows_dealloc(PyObject *self)
{
    counts_free(&((NetRows *)self)->counts);
    Py_TYPE(self)->tp_free(self);
}

static Py_ssize_t netrows_len(PyObject *self)
{
    return (Py_ssize_t)((NetRows *)self)->counts.used;
}

/* copy() -> NetRows: the same rows in a table of their own (one memcpy). */
static PyObject *netrows_copy(PyObject *self, PyObject *unused)
{
    (void)unused;
    Counts *c = &((NetRows *)self)->counts;
    NetRows *copy = (NetRows *)NetRowsType.tp_alloc(&NetRowsType, 0);
    if (copy == NULL)
        return NULL;
    copy->counts = *c;
    if (c->slots != NULL) {
        copy->counts.slots = PyMem_Malloc((c->mask + 1) * sizeof(Slot));
        if (copy->counts.slots == NULL) {
            copy->counts.used = 0;
            Py_DECREF(copy);
            return PyErr_NoMemory();
        }
        memcpy(copy->counts.slots, c->slots, (c->mask + 1) * sizeof(Slot));
    }
    return (PyObject *)copy;
}

/* add(nets, day, heads): the lines of each /24 of `nets` whose head is in `heads` (a
 * container), added to the rows of UTC day `day` (a date's ordinal). On an exception the rows
 * may hold part of it: the caller adds to a copy it drops then (parse.Tally). */
static PyObject *netrows_add(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyObject_TypeCheck(args[0], &NetsType)) {
        PyErr_SetString(PyExc_TypeError, "add() takes a scan's Nets, a day's ordinal and the heads to count");
        return NULL;
    }
    Nets *nets = (Nets *)args[0];
    long long day = PyLong_AsLongLong(args[1]);
    if (day == -1 && PyErr_Occurred())
        return NULL;
    if (day < 1 || day > MAX_DAY) {
        PyErr_Format(PyExc_ValueError, "add(): %lld is no date's ordinal", day);
        return NULL;
    }
    Py_ssize_t heads = PyList_GET_SIZE(nets->heads);
    size_t *pick = NULL;
    char *take = PyMem_Calloc((size_t)heads + 1, 1);
    if (take == NULL)
        return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < heads; i++) {
        int rc = PySequence_Contains(args[2], PyList_GET_ITEM(nets->heads, i));
        if (rc < 0)
            goto fail;
        take[i] = (char)rc;
    }
    Counts *c = &nets->counts, *rows = &((NetRows *)self)->counts;
    /* The slots to add picked first without a branch per slot (a block's table is about half
     * empty, in no order: a branch on each slot went the wrong way a third of the time, half of
     * this call's time), then added. take[heads] is 0: a head out of range picks nothing. */
    size_t size = c->slots != NULL ? c->mask + 1 : 0, picked = 0;
    pick = PyMem_Malloc((size ? size : 1) * sizeof(size_t));
    if (pick == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (size_t i = 0; i < size; i++) {
        Slot x = c->slots[i];
        uint64_t head = x.key >> NET_BITS;
        size_t at = head < (uint64_t)heads ? (size_t)head : (size_t)heads;
        pick[picked] = i;
        picked += (size_t)((x.n != 0) & (take[at] != 0));
    }
    for (size_t j = 0; j < picked; j++) {
        Slot x = c->slots[pick[j]];
        if (counts_add(rows, (uint64_t)day << NET_BITS | (x.key & NET_MASK), x.n) < 0)
            goto fail;
    }
    PyMem_Free(pick);
    PyMem_Free(take);
    Py_RETURN_NONE;
fail:
    PyMem_Free(pick);
    PyMem_Free(take);
    return NULL;
}

/* add_packed(counts, day): lines per /24 added to the rows of UTC day `day`; `counts` is either
 * packed records of two native 64-bit integers, (/24, lines) (what _filterlog.scan gives), or a
 * dict {/24: lines} (what its Python reference gives). A /24 above 2**24 - 1 or lines below 1
 * are refused (ValueError); on an exception the rows may hold part of it (see add). */
static PyObject *netrows_add_packed(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "add_packed() takes the counts and a day's ordinal");
        return NULL;
    }
    long long day = PyLong_AsLongLong(args[1]);
    if (day == -1 && PyErr_Occurred())
        return NULL;
    if (day < 1 || day > MAX_DAY) {
        PyErr_Format(PyExc_ValueError, "add_packed(): %lld is no date's ordinal", day);
        return NULL;
    }
    Counts *rows = &((NetRows *)self)->counts;
    PyObject *counts = args[0];
    if (PyBytes_Check(counts)) {
        const char *r = PyBytes_AS_STRING(counts);
        Py_ssize_t size = PyBytes_GET_SIZE(counts);
        if (size % 16) {
            PyErr_SetString(PyExc_ValueError, "add_packed(): packed counts are records of 16 bytes");
            return NULL;
        }
        for (Py_ssize_t at = 0; at < size; at += 16) {
            uint64_t net;
            int64_t n;
            memcpy(&net, r + at, 8);
            memcpy(&n, r + at + 8, 8);
            if (net > NET_MASK || n < 1) {
                PyErr_SetString(PyExc_ValueError, "add_packed(): a record that is no count of a /24");
                return NULL;
            }
            if (counts_add(rows, (uint64_t)day << NET_BITS | net, n) < 0)
                return NULL;
        }
        Py_RETURN_NONE;
    }
    if (!PyDict_Check(counts)) {
        PyErr_SetString(PyExc_TypeError, "add_packed() takes packed bytes or a dict");
        return NULL;
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(counts, &pos, &key, &value)) {
        long long net = PyLong_AsLongLong(key), n = net == -1 && PyErr_Occurred() ? -1 : PyLong_AsLongLong(value);
        if (PyErr_Occurred())
            return NULL;
        if (net < 0 || net > (long long)NET_MASK || n < 1) {
            PyErr_SetString(PyExc_ValueError, "add_packed(): a count that is no count of a /24");
            return NULL;
        }
        if (counts_add(rows, (uint64_t)day << NET_BITS | (uint64_t)net, n) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

/* unnamed(names) -> list[int]: the /24s of the rows that `names` (a dict) holds no key for, each
 * once per day it has rows on. */
static PyObject *netrows_unnamed(PyObject *self, PyObject *names)
{
    if (!PyDict_Check(names)) {
        PyErr_SetString(PyExc_TypeError, "unnamed() takes a dict");
        return NULL;
    }
    Counts *c = &((NetRows *)self)->counts;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; c->slots != NULL && i <= c->mask; i++) {
        if (c->slots[i].n == 0)
            continue;
        PyObject *net = PyLong_FromUnsignedLongLong(c->slots[i].key & NET_MASK);
        int rc = net ? PyDict_Contains(names, net) : -1;
        if (rc == 0)
            rc = PyList_Append(out, net);
        Py_XDECREF(net);
        if (rc < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

/* named(names) -> {day: {name: lines}}: the rows under the names `names` (a dict) gives their
 * /24s (rows whose /24s share a name add up); KeyError for a /24 it does not name. */
static PyObject *netrows_named(PyObject *self, PyObject *names)
{
    if (!PyDict_Check(names)) {
        PyErr_SetString(PyExc_TypeError, "named() takes a dict");
        return NULL;
    }
    Counts *c = &((NetRows *)self)->counts;
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    uint64_t last_day = 0;
    PyObject *inner = NULL; /* borrowed: the dict of last_day */
    for (size_t i = 0; c->slots != NULL && i <= c->mask; i++) {
        Slot x = c->slots[i];
        if (x.n == 0)
            continue;
        uint64_t day = x.key >> NET_BITS;
        if (inner == NULL || day != last_day) {
            PyObject *key = PyLong_FromUnsignedLongLong(day);
            inner = key ? dict_at(out, key) : NULL;
            Py_XDECREF(key);
            if (inner == NULL)
                goto fail;
            last_day = day;
        }
        PyObject *net = PyLong_FromUnsignedLongLong(x.key & NET_MASK);
        if (net == NULL)
            goto fail;
        PyObject *name = PyDict_GetItemWithError(names, net); /* borrowed */
        if (name == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetObject(PyExc_KeyError, net);
            Py_DECREF(net);
            goto fail;
        }
        Py_DECREF(net);
        if (add_to(inner, name, x.n) < 0)
            goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

/* {(day, /24): lines} (for tests). */
static PyObject *netrows_as_dict(PyObject *self, PyObject *unused)
{
    (void)unused;
    Counts *c = &((NetRows *)self)->counts;
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    for (size_t i = 0; c->slots != NULL && i <= c->mask; i++) {
        Slot x = c->slots[i];
        if (x.n == 0)
            continue;
        PyObject *key = Py_BuildValue("(KK)", (unsigned long long)(x.key >> NET_BITS), (unsigned long long)(x.key & NET_MASK));
        int rc = key ? add_to(out, key, x.n) : -1;
        Py_XDECREF(key);
        if (rc < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

static PySequenceMethods nets_sequence = {.sq_length = nets_len};
static PySequenceMethods netrows_sequence = {.sq_length = netrows_len};

static PyMethodDef nets_methods[] = {
    {"as_dict", nets_as_dict, METH_NOARGS, "as_dict() -> {head: {/24: lines}} (what netfilter_scan_py gives)."},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef netrows_methods[] = {
    {"copy", netrows_copy, METH_NOARGS, "copy() -> NetRows: the same rows, in a table of their own."},
    {"add", (PyCFunction)(void (*)(void))netrows_add, METH_FASTCALL,
     "add(nets, day, heads): the lines of each /24 of a scan's Nets whose head is in heads, added to day's rows."},
    {"add_packed", (PyCFunction)(void (*)(void))netrows_add_packed, METH_FASTCALL,
     "add_packed(counts, day): lines per /24 (packed records or a dict) added to day's rows."},
    {"unnamed", netrows_unnamed, METH_O, "unnamed(names) -> list[int]: the /24s names has no key for."},
    {"named", netrows_named, METH_O, "named(names) -> {day: {name: lines}}: the rows under their names."},
    {"as_dict", netrows_as_dict, METH_NOARGS, "as_dict() -> {(day, /24): lines}."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject NetsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "normagent.plugins.firewall._netfilter.Nets",
    .tp_basicsize = sizeof(Nets),
    .tp_dealloc = nets_dealloc,
    .tp_as_sequence = &nets_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A block's IPv4 sources: lines per (head, /24), as scan() found them (made by scan() only).",
    .tp_methods = nets_methods,
};

static PyTypeObject NetRowsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "normagent.plugins.firewall._netfilter.NetRows",
    .tp_basicsize = sizeof(NetRows),
    .tp_dealloc = netrows_dealloc,
    .tp_as_sequence = &netrows_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Lines per (UTC day, IPv4 /24) of a backlog's blocked packets (parse.NetRowsPy is its definition).",
    .tp_methods = netrows_methods,
    .tp_new = netrows_new,
};

static PyObject *scan_result(const char *buf, Scan *sc)
{
    PyObject *heads = NULL, *minutes = NULL, *stamps = NULL, *packets = NULL, *v4 = NULL, *v6 = NULL, *others = NULL, *result;
    heads = PyList_New(sc->heads_by_index.n);
    if (heads == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < sc->heads_by_index.n; i++) {
        PyObject *head = bytes_of(buf, sc->heads_by_index.items[i]);
        if (head == NULL)
            goto fail;
        PyList_SET_ITEM(heads, i, head);
    }
    if ((minutes = PySet_New(NULL)) == NULL || (stamps = PySet_New(NULL)) == NULL || (packets = PyDict_New()) == NULL)
        goto fail;
    for (size_t i = 0; i < sc->minutes.n; i++) {
        Entry *x = &sc->minutes.entries[i];
        PyObject *minute = PyBytes_FromStringAndSize(part_a(buf, x), x->a.len);
        int rc = minute ? PySet_Add(minutes, minute) : -1;
        Py_XDECREF(minute);
        if (rc < 0)
            goto fail;
    }
    for (size_t i = 0; i < sc->stamps.n; i++) {
        Entry *x = &sc->stamps.entries[i];
        PyObject *pair = Py_BuildValue("(y#y#)", part_a(buf, x), x->a.len, part_b(buf, x), x->b.len);
        int rc = pair ? PySet_Add(stamps, pair) : -1;
        Py_XDECREF(pair);
        if (rc < 0)
            goto fail;
    }
    for (size_t i = 0; i < sc->packets.n; i++) {
        Entry *x = &sc->packets.entries[i];
        PyObject *key = Py_BuildValue("(Oy#y#)", PyList_GET_ITEM(heads, x->tag), part_a(buf, x), x->a.len, part_b(buf, x), x->b.len);
        PyObject *n = key ? PyLong_FromSsize_t(x->value) : NULL;
        int rc = n ? PyDict_SetItem(packets, key, n) : -1;
        Py_XDECREF(key);
        Py_XDECREF(n);
        if (rc < 0)
            goto fail;
    }
    {
        Nets *nets = PyObject_New(Nets, &NetsType);
        if (nets == NULL)
            goto fail;
        nets->counts = sc->v4; /* taken over */
        memset(&sc->v4, 0, sizeof(sc->v4));
        nets->heads = Py_NewRef(heads);
        v4 = (PyObject *)nets;
    }
    if ((v6 = sources_dict(buf, &sc->v6, heads)) == NULL)
        goto fail;
    {
        Py_ssize_t size = 0;
        for (Py_ssize_t i = 0; i < sc->others.n; i++)
            size += sc->others.items[i].len + 1; /* each line and its "\n": at most the input's size + 1 */
        others = PyBytes_FromStringAndSize(NULL, size);
        if (others == NULL)
            goto fail;
        char *out = PyBytes_AS_STRING(others);
        for (Py_ssize_t i = 0; i < sc->others.n; i++) {
            Span x = sc->others.items[i];
            memcpy(out, buf + x.off, (size_t)x.len);
            out += x.len;
            *out++ = '\n';
        }
    }
    Py_CLEAR(heads);
    result = PyTuple_New(6);
    if (result == NULL)
        goto fail;
    PyTuple_SET_ITEM(result, 0, minutes);
    PyTuple_SET_ITEM(result, 1, stamps);
    PyTuple_SET_ITEM(result, 2, packets);
    PyTuple_SET_ITEM(result, 3, v4);
    PyTuple_SET_ITEM(result, 4, v6);
    PyTuple_SET_ITEM(result, 5, others);
    return result;
fail:
    Py_XDECREF(heads);
    Py_XDECREF(minutes);
    Py_XDECREF(stamps);
    Py_XDECREF(packets);
    Py_XDECREF(v4);
    Py_XDECREF(v6);
    Py_XDECREF(others);
    return NULL;
}

static int count_line(const char *buf, Py_ssize_t start, Py_ssize_t end, Line *matched, Scan *sc, Span *last_head,
                      Py_ssize_t *last_index, Span *last_minute)
{
    const Span none = {0, 0};
    if (matched == NULL) {
        if (end > start)
            return spans_push(&sc->others, (Span){start, end - start});
        return 0;
    }
    Line m = *matched;
    /* offsets relative to the buffer */
    m.minute.off += start;
    m.stamp.off += start;
    m.offset.off += start;
    m.head.off += start;
    m.v4.off += start;
    m.v6.off += start;
    m.proto.off += start;
    m.dport.off += start;
    if (m.minute.len) {
        if (!span_eq(buf, m.minute, *last_minute)) {
            if (table_get(&sc->minutes, buf, sc->seed, 0, m.minute, none, 0) == NULL)
                return -1;
            *last_minute = m.minute;
        }
    } else if (table_get(&sc->stamps, buf, sc->seed, 0, m.stamp, m.offset, 0) == NULL) {
        return -1;
    }
    Py_ssize_t head = -1;
    if (m.head_index >= 0) {
        head = m.head_index;
    } else if (last_head->len && span_eq(buf, m.head, *last_head)) {
        head = *last_index;
    } else if (sc->heads_by_index.n <= FEW_HEADS) {
        /* A log holds a few heads (LOG prefixes with their interfaces), ~25 bytes each, taking
         * turns line by line: comparing with each is cheaper than hashing it (bench/README.md). */
        for (Py_ssize_t i = 0; i < sc->heads_by_index.n; i++)
            if (span_eq(buf, m.head, sc->heads_by_index.items[i])) {
                head = i;
                break;
            }
    }
    if (head >= 0) {
        *last_head = m.head;
        *last_index = head;
    } else {
        Entry *x = table_get(&sc->heads, buf, sc->seed, 0, m.head, none, sc->heads_by_index.n);
        if (x == NULL)
            return -1;
        if (x->value == sc->heads_by_index.n) {
            if (spans_push(&sc->heads_by_index, m.head) < 0)
                return -1;
            KnownHeads *known = &sc->known;
            if (known->n < FEW_HEADS && m.head.len >= 8) { /* always: a head is 9 bytes or more */
                known->first[known->n] = load64(buf + m.head.off);
                known->bytes[known->n] = (const unsigned char *)buf + m.head.off;
                known->len[known->n] = m.head.len;
                known->n++;
            }
        }
        head = x->value;
        *last_head = m.head;
        *last_index = head;
    }
    Entry *x;
    if (m.proto.len <= 8 && m.dport.len <= 8) {
        uint64_t w0 = 1ULL << 63 | (uint64_t)head | (uint64_t)m.proto.len << 40 | (uint64_t)m.dport.len << 48;
        uint64_t w1 = word_at(buf, m.proto.off, m.proto.len, sc->size), w2 = word_at(buf, m.dport.off, m.dport.len, sc->size);
        uint64_t h = ((w0 * 0x9E3779B97F4A7C15u) ^ w1) * 0xC2B2AE3D27D4EB4Fu;
        h = (h ^ w2) * 0x165667B19E3779F9u;
        PacketSlot *slot = &sc->recent.slots[h >> 56];
        if (slot->w0 == w0 && slot->w1 == w1 && slot->w2 == w2) {
            x = &sc->packets.entries[slot->entry];
        } else {
            x = table_get(&sc->packets, buf, sc->seed, head, m.proto, m.dport, 0);
            if (x == NULL)
                return -1;
            *slot = (PacketSlot){w0, w1, w2, (size_t)(x - sc->packets.entries)};
        }
    } else {
        x = table_get(&sc->packets, buf, sc->seed, head, m.proto, m.dport, 0);
        if (x == NULL)
            return -1;
    }
    x->value++;
    if (m.v4.len) /* a /24 that is no network is counted nowhere (it has no pseudonym) */
        return m.net < 0 ? 0 : counts_add(&sc->v4, (uint64_t)head << NET_BITS | (uint64_t)m.net, 1);
    x = table_get(&sc->v6, buf, sc->seed, head, m.v6, none, 0);
    if (x == NULL)
        return -1;
    x->value++;
    return 0;
}

/* Whether b"NETFILTER_CFG" is in buf: found from its "_" (memchr, vectorised; a kern.log holds
 * few), then the bytes around it compared. ~4x fewer instructions than memmem on these logs. */
static int holds_netfilter_cfg(const char *buf, Py_ssize_t size)
{
    Py_ssize_t at = 9; /* "NETFILTER" before the "_", "CFG" after it */
    while (size - at >= 4) {
        const char *u = memchr(buf + at, '_', (size_t)(size - 3 - at));
        if (u == NULL)
            return 0;
        if (memcmp(u - 9, "NETFILTER", 9) == 0 && memcmp(u + 1, "CFG", 3) == 0)
            return 1;
        at = u - buf + 1;
    }
    return 0;
}

static PyObject *scan(PyObject *module, PyObject *arg)
{
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "scan() takes bytes, not %.100s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    const char *buf = PyBytes_AS_STRING(arg);
    Py_ssize_t size = PyBytes_GET_SIZE(arg);
    if (holds_netfilter_cfg(buf, size))
        Py_RETURN_NONE;
    Scan sc;
    memset(&sc, 0, sizeof(sc));
    sc.size = size;
    sc.seed = (uint64_t)_Py_HashBytes("normagent._netfilter", 20); /* randomised per process */
    sc.v4.seed = counts_seed();
    /* a usual LOG line is over 200 bytes: at most one new /24 per 256 bytes of a block, mostly fewer */
    if (counts_reserve(&sc.v4, (size_t)(size / 256)) < 0 || table_init(&sc.minutes, 64) < 0 || table_init(&sc.stamps, 64) < 0 || table_init(&sc.heads, 16) < 0 ||
        table_init(&sc.packets, 64) < 0 || table_init(&sc.v6, 16) < 0)
        goto fail;
    Span last_head = {0, 0}, last_minute = {0, 0};
    Py_ssize_t last_index = -1;
    /* The lines of `data`: split at "\n", without the empty one after a final "\n" (but one
     * empty line for b"" and for b"\n"), as the pattern sees b"\n" + data[:-1] or b"\n" + data. */
    Py_ssize_t start = 0;
    for (;;) {
        Line m;
        Py_ssize_t stop = match_line((const unsigned char *)buf + start, size - start, &m, &sc.known);
        Py_ssize_t from = stop < 0 ? start : start + stop; /* the line's "\n" is not before it */
        if (stop >= 0) { /* its host and MAC parts for the lines after it */
            sc.known.host = (const unsigned char *)buf + start + m.host.off;
            sc.known.host_len = m.host.len;
            if (m.mac.len) {
                sc.known.mac = (const unsigned char *)buf + start + m.mac.off;
                sc.known.mac_len = m.mac.len;
            }
        }
        const char *nl = size > from ? memchr(buf + from, '\n', (size_t)(size - from)) : NULL;
        Py_ssize_t end = nl ? nl - buf : size;
        if (count_line(buf, start, end, stop < 0 ? NULL : &m, &sc, &last_head, &last_index, &last_minute) < 0)
            goto fail;
        if (nl == NULL || end + 1 == size)
            break;
        start = end + 1;
    }
    PyObject *result = scan_result(buf, &sc);
    scan_free(&sc);
    return result;
fail:
    scan_free(&sc);
    return NULL;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_O,
     "scan(data: bytes) -> (minutes, stamps, packets, v4, v6, others): the netfilter LOG lines of\n"
     "the usual shape in a block, counted per distinct value, and the other lines (see\n"
     "normagent.plugins.firewall.parse.netfilter_scan_py, the reference)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_netfilter", "The netfilter fast path's scan of a block, in C.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__netfilter(void)
{
    if (PyType_Ready(&NetsType) < 0 || PyType_Ready(&NetRowsType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Nets", (PyObject *)&NetsType) < 0 || PyModule_AddObjectRef(m, "NetRows", (PyObject *)&NetRowsType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
