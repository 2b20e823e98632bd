/* The filterlog fast path's scan of a block, in one forward pass over the bytes.
 *
 * scan(data: bytes) -> (days, counts, v4, v6, others), exactly what parse.py's
 * ``_filterlog_scan_py`` (built on the ``_FILTERLOG_LINE`` pattern) returns for the same bytes:
 *
 *   days    list of the distinct receive days (``b"2026-11-23"``) of the lines of the fast shape,
 *           in the order first seen;
 *   counts  {(sender, rfc3164 host, rfc5424 host, action, direction, protocol, port): lines};
 *   v4      the lines that are no pass per source /24, packed (see nets_packed; parse.py's
 *           reference gives {/24 as a number: lines}), /24s of valid addresses only;
 *   v6      {IPv6 source: lines}, lines that are no pass and have one;
 *   others  every other line that is not empty, joined by "\n" (for the general way).
 *
 * Dicts are in the order of first appearance. Why C: the pattern costs re ~13,000 instructions a
 * line, and the targets of issues 12 and 15 leave a whole line ~2,400 (bench/README.md,
 * bench_firewall.py). The matcher below is that pattern taken apart by hand: every repeat in it
 * is possessive or can take only one length (each is followed by a byte the repeat cannot take),
 * and the alternatives start with different bytes, so a line matches in exactly one way or not at
 * all and nothing needs to backtrack. The one place where re does backtrack, the optional RFC 3164
 * host before "filterlog", is decided up front (see there). The block is read forward only,
 * every index checked against the block's end (a line is walked without looking for its end
 * first: see match_line) or stopped by the byte after the block (see run); keys are spans of the
 * block (which outlives the call) counted in hash tables of our own, the usual key as three words
 * (see keys_add), so Python objects are made once per distinct value.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef const unsigned char *cursor;

/* The matcher's small helpers are called once per field of every line: no call for them. */
#if defined(__GNUC__)
#define INLINE static inline __attribute__((always_inline))
#else
#define INLINE static inline
#endif

#include "_words.h"

/* Byte classes of the pattern. */
enum { C_DIGIT = 1, C_PRINT = 2, C_FIELD = 4, C_HOST = 8 };
static unsigned char classes[256];

static void init_classes(void) {
    for (int c = 0; c < 256; c++) {
        unsigned char k = 0;
        if (c >= '0' && c <= '9') k |= C_DIGIT;
        if (c >= '!' && c <= '~') k |= C_PRINT;                 /* [!-~] */
        if (c >= '!' && c <= '~' && c != ',') k |= C_FIELD;     /* [!-+\--~] */
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')
            k |= C_HOST;                                        /* [A-Za-z0-9._-] */
        classes[c] = k;
    }
}

#define IS(c, k) (classes[(unsigned char)(c)] & (k))

/* The end of the run of bytes of class k from p (possessive: as many as there are). No bound
 * is checked: a run stops at its line's end by itself, because the byte there is in no class —
 * the '\n' that ends the line, or for the block's last line that '\n' or the NUL that CPython
 * keeps after every bytes object's last byte (documented for PyBytes_AsString). */
INLINE cursor run(cursor p, unsigned char k) {
    while (IS(*p, k)) p++;
    return p;
}

/* The end of the run of [!-~] from p. */
INLINE cursor run_print(cursor p) {
    return run(p, C_PRINT);
}

/* The end of the run of CSV field bytes ([!-+\--~]: [!-~] but a comma) from p. */
INLINE cursor run_field(cursor p) {
    return run(p, C_FIELD);
}

/* p + n bytes, all digits? */
INLINE int digits(cursor p, cursor e, Py_ssize_t n) {
    if (e - p < n) return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!IS(p[i], C_DIGIT)) return 0;
    return 1;
}

/* Does the literal s of n bytes start at p? n is a constant where inlined: a literal of 4 to 16
 * bytes is compared as two loads of the input that overlap in its middle (its first and last 4
 * or 8 bytes), each with the same bytes of the literal (constants once inlined), no byte beyond
 * p[n - 1] read; a shorter one byte by byte (a loop the compiler unrolls). */
INLINE int lit(cursor p, cursor e, const char *s, Py_ssize_t n) {
    if (e - p < n) return 0;
    if (n >= 8 && n <= 16) return load64(p) == load64(s) && load64(p + n - 8) == load64(s + n - 8);
    if (n >= 4 && n < 8) return load32(p) == load32(s) && load32(p + n - 4) == load32(s + n - 4);
    for (Py_ssize_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)s[i]) return 0;
    return 1;
}

typedef struct {
    cursor p;
    Py_ssize_t n;
} span;

enum { K_SENDER, K_HOST3, K_HOST5, K_ACTION, K_DIRECTION, K_PROTO, K_PORT, NKEY };

typedef struct {
    span day;
    span key[NKEY];
    span prefix; /* IPv4 source /24 (empty for IPv6) */
    int32_t net; /* that /24 as a number (a << 16 | b << 8 | c), or -1: IPv6, or an octet that is
                  * no octet of an address (above 255, or a leading zero: what ipaddress refuses) */
    span src6;   /* IPv6 source (empty for IPv4) */
    int pass;
    int action;    /* which of block, reject, pass K_ACTION is (0, 1, 2) */
    int direction; /* which of in, out K_DIRECTION is (0, 1) */
} line_groups;

static inline span mkspan(cursor a, cursor b) {
    span s = {a, b - a};
    return s;
}

/* Whether p is where its line ends: at the line's "\n", or at the block's end `e`. */
#define AT_END(p, e) ((p) == (e) || *(p) == '\n')

/* ``(?:,FIELD(?:,(FIELD)(?:,[!-~]*+)?)?)?(?=\n|\Z)`` after the destination: the port group;
 * where the line ends, or NULL. */
INLINE cursor tail(cursor p, cursor e, span *port) {
    port->p = p;
    port->n = 0;
    if (AT_END(p, e)) return p;
    if (*p != ',') return NULL;
    p = run_field(p + 1); /* source port */
    if (AT_END(p, e)) return p;
    if (*p != ',') return NULL;
    cursor q = p + 1;
    p = run_field(q); /* destination port */
    *port = mkspan(q, p);
    if (AT_END(p, e)) return p;
    if (*p != ',') return NULL;
    p = run_print(p + 1);
    return AT_END(p, e) ? p : NULL;
}

/* n CSV fields, each followed by a comma; the position after, or NULL.
 *
 * ``(FIELD,){n}`` with FIELD ``[!-+\--~]*+``: the bytes up to the n-th comma are all in [!-~]
 * (a field takes every one of them but the comma, which ends it). So eight bytes at a time
 * (SWAR): a mask of the bytes outside [!-~] and one of the commas, each exact in every byte
 * (each test adds within a byte, the bytes' high bits taken off first, so that nothing carries
 * into the next); the commas below the first byte outside are counted, and the n-th one found
 * among them. A field's end is no longer a branch per byte taken or not (the field lengths vary
 * line by line: the ID, a port). The last bytes of a line (fewer than eight before `e`) go a
 * byte at a time. */
INLINE cursor fields(cursor p, cursor e, int n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && defined(__GNUC__)
    while (e - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t x = w & ~HIGHS;
        uint64_t bad = (w | ~(x + (0x80 - 0x21) * ONES) | (x + ONES)) & HIGHS; /* >= 0x80, < "!", 0x7F */
        uint64_t z = x ^ (0x2C * ONES);                                             /* 0 where a "," */
        uint64_t commas = ~((z + 0x7F * ONES) | z) & HIGHS & ~bad;
        if (bad) commas &= (bad & -bad) - 1; /* those below the first byte outside [!-~] */
        int found = (int)(((commas >> 7) * ONES) >> 56);
        if (found >= n) {
            for (int i = 1; i < n; i++) commas &= commas - 1;
            return p + (__builtin_ctzll(commas) >> 3) + 1;
        }
        if (bad) return NULL; /* a byte outside [!-~] before the n-th comma */
        n -= found;
        p += 8;
    }
#endif
    for (int i = 0; i < n; i++) {
        p = run_field(p);
        if (p == e || *p != ',') return NULL;
        p++;
    }
    return p;
}

/* A month's name (three bytes at p, which the caller checked are there), as the pattern spells it. */
INLINE int month(cursor p) {
    uint32_t m = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
#define M(a, b, c) ((uint32_t)(a) << 16 | (uint32_t)(b) << 8 | (uint32_t)(c))
    switch (m) {
    case M('J', 'a', 'n'): case M('F', 'e', 'b'): case M('M', 'a', 'r'): case M('A', 'p', 'r'):
    case M('M', 'a', 'y'): case M('J', 'u', 'n'): case M('J', 'u', 'l'): case M('A', 'u', 'g'):
    case M('S', 'e', 'p'): case M('O', 'c', 't'): case M('N', 'o', 'v'): case M('D', 'e', 'c'):
        return 1;
    default:
        return 0;
    }
#undef M
}

/* Does the line at s match ``_FILTERLOG_LINE``'s first alternative whole? Where it ends (its
 * "\n", or `e`), or NULL; its groups in g.
 *
 * `e` is the end of the block, not of the line: the line's end is not looked for first (a
 * memchr over every line, a pass of its own: 9 % of the scan), because no byte class or literal
 * of the pattern takes a "\n": every run and every comparison stops at the line's "\n" as it
 * would at the line's end, and where the pattern asks for the line's end (the tail) a "\n" is
 * that end (AT_END). So a line that matches is walked once, to its end, and only one that does
 * not is searched for its "\n" (by the caller). */
static cursor match_line(cursor s, cursor e, line_groups *g) {
    cursor p = s, q;
    /* ([0-9]{4}-[01][0-9]-[0-3][0-9])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9] */
    if (e - p < 19) return NULL;
    if (LITTLE_ENDIAN_LOADS) { /* three words, each byte against its place's range; the hour 20-23 also by itself */
        if (!(lanes_in(load64(p), LANES('0', '0', '0', '0', '-', '0', '0', '-'), LANES('9', '9', '9', '9', '-', '1', '9', '-')) &&
              lanes_in(load64(p + 8), LANES('0', '0', 'T', '0', '0', ':', '0', '0'), LANES('3', '9', 'T', '2', '9', ':', '5', '9')) &&
              lanes_in(load64(p + 11), LANES('0', '0', ':', '0', '0', ':', '0', '0'), LANES('2', '9', ':', '5', '9', ':', '5', '9')) &&
              !(p[11] == '2' && p[12] > '3')))
            return NULL;
    } else {
        if (!digits(p, e, 4) || p[4] != '-' || (p[5] != '0' && p[5] != '1') || !IS(p[6], C_DIGIT) || p[7] != '-' ||
            p[8] < '0' || p[8] > '3' || !IS(p[9], C_DIGIT) || p[10] != 'T')
            return NULL;
        if (!(((p[11] == '0' || p[11] == '1') && IS(p[12], C_DIGIT)) || (p[11] == '2' && p[12] >= '0' && p[12] <= '3')))
            return NULL;
        if (p[13] != ':' || p[14] < '0' || p[14] > '5' || !IS(p[15], C_DIGIT) || p[16] != ':' || p[17] < '0' || p[17] > '5' ||
            !IS(p[18], C_DIGIT))
            return NULL;
    }
    g->day = mkspan(p, p + 10);
    p += 19;
    /* (?:\.[0-9]{1,6})?Z  */
    if (p < e && *p == '.') {
        q = run(p + 1, C_DIGIT);
        if (q - (p + 1) < 1 || q - (p + 1) > 6) return NULL;
        p = q;
    }
    if (!lit(p, e, "Z ", 2)) return NULL;
    p += 2;
    /* ([!-~]++) < */
    q = run_print(p);
    if (q == p || !lit(q, e, " <", 2)) return NULL;
    g->key[K_SENDER] = mkspan(p, q);
    p = q + 2;
    /* (?:1[0-8][0-9]|19[01]|0?[0-9]?[0-9])> */
    q = run(p, C_DIGIT);
    switch (q - p) {
    case 1:
    case 2:
        break;
    case 3:
        if (!(p[0] == '0' || (p[0] == '1' && p[1] <= '8') || (p[0] == '1' && p[1] == '9' && p[2] <= '1'))) return NULL;
        break;
    default:
        return NULL;
    }
    if (q == e || *q != '>') return NULL;
    p = q + 1;
    g->key[K_HOST3] = mkspan(p, p);
    g->key[K_HOST5] = mkspan(p, p);
    if (p < e && *p == '1') {
        /* 1 (?:-|stamp) ([A-Za-z0-9._-]++) filterlog [!-~]++ [!-~]++ -  */
        if (!lit(p, e, "1 ", 2)) return NULL;
        p += 2;
        if (p < e && *p == '-') {
            p++;
        } else {
            /* [0-9]{4}-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9] */
            if (e - p < 19) return NULL;
            if (!digits(p, e, 4) || p[4] != '-' || !digits(p + 5, e, 2) || p[7] != '-' || !digits(p + 8, e, 2) ||
                p[10] != 'T' || !digits(p + 11, e, 2) || p[13] != ':' || !digits(p + 14, e, 2) || p[16] != ':' ||
                !digits(p + 17, e, 2))
                return NULL;
            p += 19;
            /* (?:\.[0-9]{1,9})? */
            if (p < e && *p == '.') {
                q = run(p + 1, C_DIGIT);
                if (q - (p + 1) < 1 || q - (p + 1) > 9) return NULL;
                p = q;
            }
            /* (?:Z|[+-][0-9][0-9]:[0-9][0-9])? */
            if (p < e && *p == 'Z') {
                p++;
            } else if (p < e && (*p == '+' || *p == '-')) {
                if (e - p < 6 || !digits(p + 1, e, 2) || p[3] != ':' || !digits(p + 4, e, 2)) return NULL;
                p += 6;
            }
        }
        if (p == e || *p != ' ') return NULL;
        p++;
        q = run(p, C_HOST);
        if (q == p || !lit(q, e, " filterlog ", 11)) return NULL;
        g->key[K_HOST5] = mkspan(p, q);
        p = q + 11;
        q = run_print(p); /* procid */
        if (q == p || q == e || *q != ' ') return NULL;
        p = q + 1;
        q = run_print(p); /* msgid */
        if (q == p || !lit(q, e, " - ", 3)) return NULL;
        p = q + 3;
    } else {
        /* (?:Jan|...|Dec) [ 0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]  */
        if (e - p < 16) return NULL;
        if (LITTLE_ENDIAN_LOADS) { /* the month by name, the rest as two words (byte 4 also by itself) */
            if (!(month(p) &&
                  lanes_in(load64(p), LANES('A', 'a', 'a', ' ', ' ', '0', ' ', '0'), LANES('Z', 'z', 'z', ' ', '9', '9', ' ', '9')) &&
                  lanes_in(load64(p + 8), LANES('0', ':', '0', '0', ':', '0', '0', ' '), LANES('9', ':', '9', '9', ':', '9', '9', ' ')) &&
                  (p[4] == ' ' || IS(p[4], C_DIGIT))))
                return NULL;
        } else if (!month(p) || p[3] != ' ' || (p[4] != ' ' && !IS(p[4], C_DIGIT)) || !IS(p[5], C_DIGIT) || p[6] != ' ' ||
                   !digits(p + 7, e, 2) || p[9] != ':' || !digits(p + 10, e, 2) || p[12] != ':' || !digits(p + 13, e, 2) ||
                   p[15] != ' ') {
            return NULL;
        }
        p += 16;
        /* (?:([A-Za-z0-9._-]++) )?filterlog: with the host, its run must end in a space; without
         * it "filterlog" must be followed by '[' or ':', and then the host's run is "filterlog"
         * ended by that byte. Exactly one of the two can go on. */
        if (lit(p, e, "filterlog", 9) && e - p > 9 && (p[9] == '[' || p[9] == ':')) {
            p += 9;
        } else {
            q = run(p, C_HOST);
            if (q == p || !lit(q, e, " filterlog", 10)) return NULL;
            g->key[K_HOST3] = mkspan(p, q);
            p = q + 10;
        }
        /* (?:\[[0-9]++\])?:  */
        if (p < e && *p == '[') {
            q = run(p + 1, C_DIGIT);
            if (q == p + 1 || q == e || *q != ']') return NULL;
            p = q + 1;
        }
        if (!lit(p, e, ": ", 2)) return NULL;
        p += 2;
    }
    /* (FIELD,){6}(block|reject|pass),(in|out), */
    p = fields(p, e, 6);
    if (p == NULL) return NULL;
    if (lit(p, e, "block,", 6)) {
        q = p + 5;
        g->pass = 0;
        g->action = 0;
    } else if (lit(p, e, "reject,", 7)) {
        q = p + 6;
        g->pass = 0;
        g->action = 1;
    } else if (lit(p, e, "pass,", 5)) {
        q = p + 4;
        g->pass = 1;
        g->action = 2;
    } else {
        return NULL;
    }
    g->key[K_ACTION] = mkspan(p, q);
    p = q + 1;
    if (lit(p, e, "in,", 3)) {
        q = p + 2;
        g->direction = 0;
    } else if (lit(p, e, "out,", 4)) {
        q = p + 3;
        g->direction = 1;
    } else {
        return NULL;
    }
    g->key[K_DIRECTION] = mkspan(p, q);
    p = q + 1;
    if (lit(p, e, "4,", 2)) {
        p = fields(p + 2, e, 7);
        if (p == NULL) return NULL;
        q = run_field(p);
        if (q == e || *q != ',') return NULL;
        g->key[K_PROTO] = mkspan(p, q);
        p = fields(q + 1, e, 1);
        if (p == NULL) return NULL;
        /* ([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9]), */
        cursor a = p;
        int32_t net = 0, canonical = 1;
        for (int i = 0; i < 3; i++) {
            /* 1 to 3 digits and a ".", the octet's value read as it goes: no second pass */
            cursor o = p;
            int32_t value = 0; /* at most 9999 */
            while (IS(*p, C_DIGIT) && p - o < 4) value = value * 10 + (*p++ - '0');
            if (p == o || p - o > 3 || p == e || *p != '.') return NULL;
            if (value > 255 || (p - o > 1 && *o == '0')) canonical = 0;
            net = net << 8 | (value & 0xFF);
            if (i < 2) p++;
        }
        g->prefix = mkspan(a, p);
        g->net = canonical ? net : -1;
        p++;
        q = run(p, C_DIGIT);
        switch (q - p) {
        case 1:
            break;
        case 2:
            if (p[0] == '0') return NULL;
            break;
        case 3:
            if (!(p[0] == '1' || (p[0] == '2' && p[1] <= '4') || (p[0] == '2' && p[1] == '5' && p[2] <= '5'))) return NULL;
            break;
        default:
            return NULL;
        }
        if (q == e || *q != ',') return NULL;
        g->src6 = mkspan(q, q);
        p = run_field(q + 1); /* destination */
        return tail(p, e, &g->key[K_PORT]);
    }
    if (lit(p, e, "6,", 2)) {
        p = fields(p + 2, e, 3);
        if (p == NULL) return NULL;
        q = run_field(p);
        if (q == e || *q != ',') return NULL;
        g->key[K_PROTO] = mkspan(p, q);
        p = fields(q + 1, e, 2);
        if (p == NULL) return NULL;
        q = run_field(p);
        if (q == e || *q != ',') return NULL;
        g->src6 = mkspan(p, q);
        g->prefix = mkspan(p, p);
        g->net = -1;
        p = run_field(q + 1); /* destination */
        return tail(p, e, &g->key[K_PORT]);
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Counting spans: entries in the order first seen, found through open addressing. */

typedef struct {
    int width;           /* spans in a key */
    span *keys;          /* width spans per entry */
    Py_ssize_t *counts;
    uint64_t *hashes;
    Py_ssize_t len, cap; /* entries */
    Py_ssize_t *slots;   /* index + 1 of an entry; 0: empty */
    size_t mask;         /* slots - 1 (a power of two) */
} table;

INLINE uint64_t mix(uint64_t h, uint64_t w) {
    h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 32);
}

INLINE uint64_t hash_spans(const span *key, int width) {
    uint64_t h = 0x243F6A8885A308D3ULL;
    for (int i = 0; i < width; i++) {
        cursor p = key[i].p;
        Py_ssize_t n = key[i].n;
        if (n < 8) { /* the bytes and the length in one word */
            uint64_t w = (uint64_t)n << 56;
            for (Py_ssize_t j = 0; j < n; j++) w |= (uint64_t)p[j] << (8 * j);
            h = mix(h, w);
            continue;
        }
        h = mix(h, (uint64_t)n);
        for (; n >= 8; p += 8, n -= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            h = mix(h, w);
        }
        if (n) {
            uint64_t w = 0;
            for (Py_ssize_t j = 0; j < n; j++) w |= (uint64_t)p[j] << (8 * j);
            h = mix(h, w);
        }
    }
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ULL;
    return h ^ (h >> 32);
}

INLINE int same_bytes(cursor a, cursor b, Py_ssize_t n) {
    if (a == b) return 1;
    for (; n >= 8; a += 8, b += 8, n -= 8) {
        uint64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y) return 0;
    }
    for (; n > 0; n--)
        if (*a++ != *b++) return 0;
    return 1;
}

INLINE int same(const span *a, const span *b, int width) {
    for (int i = 0; i < width; i++)
        if (a[i].n != b[i].n || !same_bytes(a[i].p, b[i].p, a[i].n)) return 0;
    return 1;
}

static void table_free(table *t) {
    PyMem_Free(t->keys);
    PyMem_Free(t->counts);
    PyMem_Free(t->hashes);
    PyMem_Free(t->slots);
    t->keys = NULL;
    t->counts = NULL;
    t->hashes = NULL;
    t->slots = NULL;
}

/* An empty table with room for about ``expected`` entries before it grows. */
static int table_init(table *t, int width, Py_ssize_t expected) {
    size_t slots = 64;
    while (slots < 1u << 20 && (Py_ssize_t)slots < 2 * expected) slots *= 2;
    t->width = width;
    t->len = 0;
    t->cap = (Py_ssize_t)slots / 2;
    t->mask = slots - 1;
    t->keys = PyMem_Malloc(sizeof(span) * (size_t)width * (size_t)t->cap);
    t->counts = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)t->cap);
    t->hashes = PyMem_Malloc(sizeof(uint64_t) * (size_t)t->cap);
    t->slots = PyMem_Calloc(slots, sizeof(Py_ssize_t));
    if (t->keys == NULL || t->counts == NULL || t->hashes == NULL || t->slots == NULL) {
        table_free(t);
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* Twice the entries and slots, the entries put back into the slots. */
static int table_grow(table *t) {
    size_t slots = (t->mask + 1) * 2;
    size_t cap = (size_t)t->cap * 2;
    if (slots > (size_t)PY_SSIZE_T_MAX / sizeof(span) / (size_t)t->width) {
        PyErr_NoMemory();
        return -1;
    }
    span *keys = PyMem_Realloc(t->keys, sizeof(span) * (size_t)t->width * cap);
    if (keys == NULL) goto nomemory;
    t->keys = keys;
    Py_ssize_t *counts = PyMem_Realloc(t->counts, sizeof(Py_ssize_t) * cap);
    if (counts == NULL) goto nomemory;
    t->counts = counts;
    uint64_t *hashes = PyMem_Realloc(t->hashes, sizeof(uint64_t) * cap);
    if (hashes == NULL) goto nomemory;
    t->hashes = hashes;
    t->cap = (Py_ssize_t)cap;
    Py_ssize_t *table = PyMem_Calloc(slots, sizeof(Py_ssize_t));
    if (table == NULL) goto nomemory;
    size_t mask = slots - 1;
    for (Py_ssize_t i = 0; i < t->len; i++) {
        size_t at = (size_t)t->hashes[i] & mask;
        while (table[at]) at = (at + 1) & mask;
        table[at] = i + 1;
    }
    PyMem_Free(t->slots);
    t->slots = table;
    t->mask = mask;
    return 0;
nomemory:
    PyErr_NoMemory();
    return -1;
}

static PyObject *span_bytes(span s) {
    return PyBytes_FromStringAndSize((const char *)s.p, s.n);
}

/* The table as a dict {bytes or tuple of bytes: int}. */
static PyObject *table_dict(const table *t) {
    PyObject *out = PyDict_New();
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < t->len; i++) {
        const span *spans = t->keys + (size_t)i * (size_t)t->width;
        PyObject *key;
        if (t->width == 1) {
            key = span_bytes(spans[0]);
        } else {
            key = PyTuple_New(t->width);
            for (int j = 0; key != NULL && j < t->width; j++) {
                PyObject *part = span_bytes(spans[j]);
                if (part == NULL) {
                    Py_CLEAR(key);
                    break;
                }
                PyTuple_SET_ITEM(key, j, part);
            }
        }
        PyObject *count = key == NULL ? NULL : PyLong_FromSsize_t(t->counts[i]);
        if (count == NULL || PyDict_SetItem(out, key, count) < 0) {
            Py_XDECREF(key);
            Py_XDECREF(count);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(key);
        Py_DECREF(count);
    }
    return out;
}

/* The entry of key in t (made with a count of 0 if new): its index, or -1 with MemoryError set. */
static Py_ssize_t table_index(table *t, const span *key) {
    int width = t->width;
    uint64_t h = hash_spans(key, width);
    size_t at = (size_t)h & t->mask;
    Py_ssize_t i;
    while ((i = t->slots[at]) != 0) {
        i--;
        if (t->hashes[i] == h && same(t->keys + (size_t)i * (size_t)width, key, width)) return i;
        at = (at + 1) & t->mask;
    }
    i = t->len;
    memcpy(t->keys + (size_t)i * (size_t)width, key, sizeof(span) * (size_t)width);
    t->counts[i] = 0;
    t->hashes[i] = h;
    t->slots[at] = ++t->len;
    if (t->len == t->cap && table_grow(t) < 0) return -1;
    return i;
}

/* Add n to the count of key. */
static int table_add(table *t, const span *key, Py_ssize_t n) {
    Py_ssize_t i = table_index(t, key);
    if (i < 0) return -1;
    t->counts[i] += n;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The lines per 7-span key (sender, RFC 3164 host, RFC 5424 host, action, direction, protocol,
 * port), without hashing and comparing seven spans of bytes per line (a third of the scan's
 * instructions, bench/README.md). The three that name the device rarely vary: they become the
 * device's number (`devices`: its spans compared with the two devices seen last, else looked up
 * in a table of their own); action and direction are known from which literal matched; protocol
 * and port are short (tcp, 443): each one's bytes as one word. So the usual key is three words,
 * hashed with two multiplies and compared as words. Equal words are equal spans, and only equal
 * spans: the device's number is its spans' own entry, action and direction are the literal's
 * number, and a word holds its span's bytes and its length. A protocol or port longer than eight
 * bytes makes a key hashed and compared span by span (`whole`), marked so in its first word, so
 * that the two kinds never meet. Entries in the order first seen, as in `table` (whose arrays
 * hold the spans of a key's first line, its count, hash and slots). */

typedef struct {
    uint64_t w0, w1, w2;
} packed_key;

typedef struct {
    table t;            /* the keys' spans (first line seen), counts, hashes and slots */
    packed_key *packed; /* per entry, room for t.cap */
    uint64_t seed;      /* from CPython's randomised hash: no chosen collisions */
} key_table;

#define WHOLE_KEY (1ULL << 63)

static int keys_init(key_table *k) {
    if (table_init(&k->t, NKEY, 0) < 0) return -1;
    k->packed = PyMem_Malloc(sizeof(packed_key) * (size_t)k->t.cap);
    if (k->packed == NULL) {
        table_free(&k->t);
        PyErr_NoMemory();
        return -1;
    }
    k->seed = (uint64_t)_Py_HashBytes("normagent._filterlog.keys", 25);
    return 0;
}

static void keys_free(key_table *k) {
    table_free(&k->t);
    PyMem_Free(k->packed);
    k->packed = NULL;
}

/* The n (<= 8) bytes at p as one little-endian word, zero above them; `limit`: the block's end
 * (no byte at or beyond it is read). */
INLINE uint64_t word_of(cursor p, Py_ssize_t n, cursor limit) {
    if (limit - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        return n == 8 ? w : w & ((1ULL << (8 * n)) - 1);
    }
    uint64_t w = 0;
    for (Py_ssize_t j = 0; j < n; j++) w |= (uint64_t)p[j] << (8 * j);
    return w;
}

INLINE uint64_t hash_packed(packed_key k, uint64_t seed) {
    uint64_t h = (k.w0 ^ seed) * 0x9E3779B97F4A7C15ULL;
    h = (h ^ k.w1) * 0xC2B2AE3D27D4EB4FULL;
    h = (h ^ k.w2) * 0x165667B19E3779F9ULL;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ULL;
    return h ^ (h >> 32);
}

/* Add a line to the count of g's key, its device numbered `device`; -1 with MemoryError set. */
INLINE int keys_add(key_table *k, const line_groups *g, Py_ssize_t device, cursor limit) {
    table *t = &k->t;
    const span *key = g->key;
    span proto = key[K_PROTO], port = key[K_PORT];
    packed_key pk;
    pk.w0 = (uint64_t)device | (uint64_t)g->action << 32 | (uint64_t)g->direction << 34;
    uint64_t h;
    int whole = proto.n > 8 || port.n > 8;
    if (whole) {
        pk.w0 |= WHOLE_KEY;
        pk.w1 = pk.w2 = 0;
        h = hash_spans(key, NKEY) ^ k->seed;
    } else {
        pk.w0 |= (uint64_t)proto.n << 40 | (uint64_t)port.n << 48;
        pk.w1 = word_of(proto.p, proto.n, limit);
        pk.w2 = word_of(port.p, port.n, limit);
        h = hash_packed(pk, k->seed);
    }
    size_t at = (size_t)h & t->mask;
    Py_ssize_t i;
    while ((i = t->slots[at]) != 0) {
        i--;
        const packed_key *x = &k->packed[i];
        if (t->hashes[i] == h && x->w0 == pk.w0 && x->w1 == pk.w1 && x->w2 == pk.w2 &&
            (!whole || same(t->keys + (size_t)i * NKEY, key, NKEY))) {
            t->counts[i]++;
            return 0;
        }
        at = (at + 1) & t->mask;
    }
    i = t->len;
    memcpy(t->keys + (size_t)i * NKEY, key, sizeof(span) * NKEY);
    k->packed[i] = pk;
    t->counts[i] = 1;
    t->hashes[i] = h;
    t->slots[at] = ++t->len;
    if (t->len == t->cap) { /* at most half the slots taken; room for the packed keys first */
        packed_key *packed = PyMem_Realloc(k->packed, sizeof(packed_key) * (size_t)t->cap * 2);
        if (packed == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        k->packed = packed;
        return table_grow(t);
    }
    return 0;
}

/* The number of g's device (sender, RFC 3164 host, RFC 5424 host: its entry in `devices`), or
 * -1 with MemoryError set. The two devices seen last are compared first, the last at [0]: a hit
 * on [1] swaps them, so that two senders taking turns line by line hit [1] every time (a branch
 * that goes the same way). */
typedef struct {
    span spans[2][3];
    Py_ssize_t number[2]; /* -1: none */
} recent_devices;

INLINE Py_ssize_t device_of(table *devices, recent_devices *r, const span *key) {
    if (r->number[0] >= 0 && same(r->spans[0], key, 3)) return r->number[0];
    Py_ssize_t n;
    if (r->number[1] >= 0 && same(r->spans[1], key, 3)) {
        n = r->number[1];
    } else {
        n = table_index(devices, key);
        if (n < 0) return -1;
    }
    memcpy(r->spans[1], r->spans[0], sizeof(r->spans[0]));
    r->number[1] = r->number[0];
    memcpy(r->spans[0], key, sizeof(r->spans[0]));
    r->number[0] = n;
    return n;
}

/* The lines per source /24 of a block, keyed by the /24 as a number: no look at the block's
 * bytes again per line (a span key is compared with its first sighting, a read at a random place
 * of the 1 MiB block: most of the scan's table time on a log of thousands of networks). Entries
 * in the order first seen, found through open-addressing slots (entry + 1, 0: empty) at most half
 * full; keys mixed with a seed from CPython's randomised hash, so that sources chosen by whoever
 * sends packets cannot be made to collide. */
typedef struct {
    uint64_t *keys;
    int64_t *counts;
    Py_ssize_t len, cap;
    Py_ssize_t *slots;
    size_t mask;
    uint64_t seed;
} nets;

INLINE uint64_t fmix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    return k ^ (k >> 33);
}

static void nets_free(nets *t) {
    PyMem_Free(t->keys);
    PyMem_Free(t->counts);
    PyMem_Free(t->slots);
    t->keys = NULL;
    t->counts = NULL;
    t->slots = NULL;
}

static int nets_init(nets *t, Py_ssize_t expected) {
    size_t slots = 64;
    while (slots < 1u << 20 && (Py_ssize_t)slots < 2 * expected) slots *= 2;
    t->len = 0;
    t->cap = (Py_ssize_t)slots / 2;
    t->mask = slots - 1;
    t->seed = (uint64_t)_Py_HashBytes("normagent._filterlog.nets", 25); /* randomised per process */
    t->keys = PyMem_Malloc(sizeof(uint64_t) * (size_t)t->cap);
    t->counts = PyMem_Malloc(sizeof(int64_t) * (size_t)t->cap);
    t->slots = PyMem_Calloc(slots, sizeof(Py_ssize_t));
    if (t->keys == NULL || t->counts == NULL || t->slots == NULL) {
        nets_free(t);
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* Twice the entries and slots, the entries put back into the slots. */
static int nets_grow(nets *t) {
    size_t slots = (t->mask + 1) * 2, cap = (size_t)t->cap * 2;
    if (slots > (size_t)PY_SSIZE_T_MAX / sizeof(uint64_t) / 2) {
        PyErr_NoMemory();
        return -1;
    }
    uint64_t *keys = PyMem_Realloc(t->keys, sizeof(uint64_t) * cap);
    if (keys == NULL) goto nomemory;
    t->keys = keys;
    int64_t *counts = PyMem_Realloc(t->counts, sizeof(int64_t) * cap);
    if (counts == NULL) goto nomemory;
    t->counts = counts;
    Py_ssize_t *table = PyMem_Calloc(slots, sizeof(Py_ssize_t));
    if (table == NULL) goto nomemory;
    t->cap = (Py_ssize_t)cap;
    size_t mask = slots - 1;
    for (Py_ssize_t i = 0; i < t->len; i++) {
        size_t at = (size_t)fmix(t->keys[i] ^ t->seed) & mask;
        while (table[at]) at = (at + 1) & mask;
        table[at] = i + 1;
    }
    PyMem_Free(t->slots);
    t->slots = table;
    t->mask = mask;
    return 0;
nomemory:
    PyErr_NoMemory();
    return -1;
}

/* One more line of the /24 numbered key. */
static int nets_add(nets *t, uint64_t key) {
    size_t at = (size_t)fmix(key ^ t->seed) & t->mask;
    Py_ssize_t i;
    while ((i = t->slots[at]) != 0) {
        if (t->keys[i - 1] == key) {
            t->counts[i - 1]++;
            return 0;
        }
        at = (at + 1) & t->mask;
    }
    i = t->len;
    t->keys[i] = key;
    t->counts[i] = 1;
    t->slots[at] = ++t->len;
    if (t->len == t->cap) return nets_grow(t); /* at most half the slots taken */
    return 0;
}

/* The /24s of a block as packed records in the order first seen: per /24 its number and its
 * lines, as two native 64-bit integers (what _netfilter.NetRows.add_packed reads). One bytes
 * object for the block's networks instead of a dict with a key per network. */
static PyObject *nets_packed(const nets *t) {
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(16 * (size_t)t->len));
    if (out == NULL) return NULL;
    char *w = PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < t->len; i++) {
        memcpy(w + 16 * i, &t->keys[i], 8);
        memcpy(w + 16 * i + 8, &t->counts[i], 8);
    }
    return out;
}

/* ------------------------------------------------------------------------------------------ */
/* The other lines, joined. */

typedef struct {
    char *data;
    size_t len, cap;
} buffer;

static int buffer_put(buffer *b, int newline, cursor p, Py_ssize_t n) {
    size_t need = (size_t)n + (newline ? 1 : 0);
    if (need > (size_t)PY_SSIZE_T_MAX - b->len) {
        PyErr_NoMemory();
        return -1;
    }
    if (b->len + need > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + need) cap = cap > (size_t)PY_SSIZE_T_MAX / 2 ? (size_t)PY_SSIZE_T_MAX : cap * 2;
        char *data = PyMem_Realloc(b->data, cap);
        if (data == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        b->data = data;
        b->cap = cap;
    }
    if (newline) b->data[b->len++] = '\n';
    memcpy(b->data + b->len, p, (size_t)n);
    b->len += (size_t)n;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

static PyObject *scan(PyObject *module, PyObject *arg) {
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "scan() takes bytes, not %.200s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    cursor s = (cursor)PyBytes_AS_STRING(arg);
    cursor end = s + PyBytes_GET_SIZE(arg);
    if (end > s && end[-1] == '\n') end--; /* the block's last newline ends its last line */

    table days, devices, v6;
    key_table counts;
    recent_devices recent = {.number = {-1, -1}};
    nets v4 = {0};
    buffer others = {NULL, 0, 0};
    PyObject *result = NULL, *day_list = NULL, *count_dict = NULL, *v4_dict = NULL, *v6_dict = NULL, *rest = NULL;
    int ready = 0;
    /* A line of the fast shape is over 100 bytes: room for the distinct sources of a block of
     * them, so that the tables rarely grow. */
    Py_ssize_t lines = (end - s) / 128;
    if (table_init(&days, 1, 0) < 0) return NULL;
    ready = 1;
    if (keys_init(&counts) < 0) goto done;
    ready = 2;
    if (nets_init(&v4, lines) < 0) goto done;
    ready = 3;
    if (table_init(&v6, 1, 0) < 0) goto done;
    ready = 4;
    if (table_init(&devices, 3, 0) < 0) goto done;
    ready = 5;
    cursor limit = s + PyBytes_GET_SIZE(arg);

    span last_day = {NULL, -1};
    cursor p = s;
    for (;;) {
        line_groups g;
        cursor e = match_line(p, end, &g);
        if (e != NULL) {
            if (g.day.n != last_day.n || !same_bytes(g.day.p, last_day.p, g.day.n)) {
                if (table_add(&days, &g.day, 0) < 0) goto done;
                last_day = g.day;
            }
            Py_ssize_t device = device_of(&devices, &recent, g.key);
            if (device < 0 || keys_add(&counts, &g, device, limit) < 0) goto done;
            if (!g.pass) {
                if (g.net >= 0 && nets_add(&v4, (uint64_t)g.net) < 0) goto done; /* a /24 that is no network: counted nowhere */
                if (g.src6.n && table_add(&v6, &g.src6, 1) < 0) goto done;
            }
        } else {
            e = memchr(p, '\n', (size_t)(end - p));
            if (e == NULL) e = end;
            if (e > p && buffer_put(&others, others.len > 0, p, e - p) < 0) goto done;
        }
        if (e == end) break;
        p = e + 1;
    }

    day_list = PyList_New(days.len);
    if (day_list == NULL) goto done;
    for (Py_ssize_t i = 0; i < days.len; i++) {
        PyObject *day = span_bytes(days.keys[i]);
        if (day == NULL) goto done;
        PyList_SET_ITEM(day_list, i, day);
    }
    if ((count_dict = table_dict(&counts.t)) == NULL) goto done;
    if ((v4_dict = nets_packed(&v4)) == NULL) goto done;
    if ((v6_dict = table_dict(&v6)) == NULL) goto done;
    if ((rest = PyBytes_FromStringAndSize(others.data ? others.data : "", (Py_ssize_t)others.len)) == NULL) goto done;
    result = PyTuple_Pack(5, day_list, count_dict, v4_dict, v6_dict, rest);

done:
    Py_XDECREF(day_list);
    Py_XDECREF(count_dict);
    Py_XDECREF(v4_dict);
    Py_XDECREF(v6_dict);
    Py_XDECREF(rest);
    PyMem_Free(others.data);
    if (ready >= 5) table_free(&devices);
    if (ready >= 4) table_free(&v6);
    if (ready >= 3) nets_free(&v4);
    if (ready >= 2) keys_free(&counts);
    if (ready >= 1) table_free(&days);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_O,
     "scan(data: bytes) -> (days, counts, v4, v6, others): the filterlog spool lines of a block counted "
     "per distinct value, as parse._filterlog_scan_py counts them."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_filterlog", "The filterlog fast path's scan of a block, in C (see parse._filterlog_scan_py).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__filterlog(void) {
    init_classes();
    return PyModule_Create(&module_def);
}
