/* The access parser's byte scans in C: plugins/access/parse.py's scan_lines, exactly.
 *
 * scan(data: bytes, hour: Callable[[bytes], tuple] | None)
 *     -> (list of (start, end), dropped: int, FastRead tuple or None, heads or None)
 *
 * scan_lines (parse.py) is the reference and the fallback where this module was not built; the
 * tests hold the two to the same answer on every input they draw. Why C: the scans are memchr
 * passes with Python per hit of a rare byte, and sshd's plain Failed/Accepted lines (most of the
 * lines that count on a server under attack) are matched by a `re` pattern and aggregated by
 * dictionary work per line; here the same matches and the same aggregation cost a few hundred
 * instructions a line, and Python gets one row per distinct (day, account), (day, address).
 *
 * Rules kept: forward scans over the buffer with every index checked against its size, no
 * recursion, no buffer filled from the input, no strlen/sscanf on the input; the GIL is held
 * throughout (the scan calls `hour` once per distinct stamp hour).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef Py_ssize_t Idx;

/* found[start]'s marks, as in scan_lines: an "Accepted" line the fast path read (_READ), and a
 * line it took out of the candidates (found.pop). Real ends are >= 0. */
#define READ_MARK ((Idx)-1)
#define POPPED ((Idx)-2)

/* ------------------------------------------------------------------------------------------ */
/* bytes methods, as Python's (positions are checked against the size, never trusted) */

typedef struct {
    const unsigned char *d;
    Idx n;
} Buf;

static Idx find_byte(const Buf *b, unsigned char c, Idx from)
{
    if (from < 0)
        from = 0;
    if (from >= b->n)
        return -1;
    const unsigned char *hit = memchr(b->d + from, c, (size_t)(b->n - from));
    return hit == NULL ? -1 : (Idx)(hit - b->d);
}

/* data.rfind(c, lo, hi) */
static Idx rfind_byte(const Buf *b, unsigned char c, Idx lo, Idx hi)
{
    if (hi > b->n)
        hi = b->n;
    if (lo < 0)
        lo = 0;
    for (Idx i = hi - 1; i >= lo; i--)
        if (b->d[i] == c)
            return i;
    return -1;
}

/* The line's start: data.rfind(b"\n", 0, p) + 1 */
static Idx line_start(const Buf *b, Idx p)
{
    return rfind_byte(b, '\n', 0, p) + 1;
}

/* The line's end: data.find(b"\n", p), or the size */
static Idx line_end(const Buf *b, Idx p)
{
    Idx e = find_byte(b, '\n', p);
    return e < 0 ? b->n : e;
}

/* data.startswith(lit, p) for 0 <= p (a negative p is never asked: see the callers) */
static int starts(const Buf *b, Idx p, const char *lit, Idx len)
{
    return p >= 0 && p <= b->n && b->n - p >= len && memcmp(b->d + p, lit, (size_t)len) == 0;
}

/* data.endswith(lit, lo, hi) with 0 <= lo <= hi <= size */
static int ends(const Buf *b, Idx lo, Idx hi, const char *lit, Idx len)
{
    return hi - lo >= len && memcmp(b->d + hi - len, lit, (size_t)len) == 0;
}

/* data.find(lit, lo, hi) */
static Idx find_lit(const Buf *b, Idx lo, Idx hi, const char *lit, Idx len)
{
    if (hi > b->n)
        hi = b->n;
    if (lo < 0)
        lo = 0;
    for (Idx i = lo; i + len <= hi; i++) {
        const unsigned char *hit = memchr(b->d + i, (unsigned char)lit[0], (size_t)(hi - len + 1 - i));
        if (hit == NULL)
            return -1;
        i = (Idx)(hit - b->d);
        if (memcmp(b->d + i, lit, (size_t)len) == 0)
            return i;
    }
    return -1;
}

#define LIT(s) s, (Idx)(sizeof(s) - 1)
#define STARTS(b, p, s) starts(b, p, LIT(s))
#define ENDS(b, lo, hi, s) ends(b, lo, hi, LIT(s))

/* ------------------------------------------------------------------------------------------ */
/* Hash tables: an index of slots into an array of entries kept in insertion order (as a dict's),
 * keyed by up to three spans of the buffer and a number. The hash is seeded per process (from
 * Python's own randomised hash), so that names an attacker picks cannot be made to collide. */

static uint64_t hash_seed = 0x9e3779b97f4a7c15u;

typedef struct {
    Idx off[3];
    Idx len[3];
    long long num;
} Key;

typedef struct {
    Key key;
    uint64_t hash;
    Idx n;            /* rows: lines; found: the end; hours: state */
    double first;     /* rows: earliest time; hours: the hour's epoch */
    double last;      /* rows: latest time */
    long long day;    /* hours: the UTC day */
    int day_known;    /* hours: the day holds for every time of the hour */
} Entry;

typedef struct {
    Entry *entries;
    Idx count, cap;
    Idx *slots; /* -1: empty */
    Idx mask;   /* slots - 1, slots a power of two */
    int spans;  /* how many spans a key uses */
} Table;

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53u;
    h ^= h >> 33;
    return h;
}

static uint64_t key_hash(const Buf *b, const Key *k, int spans)
{
    uint64_t h = hash_seed ^ (uint64_t)k->num * 0x100000001b3u;
    for (int s = 0; s < spans; s++) {
        const unsigned char *p = b->d + k->off[s];
        for (Idx i = 0; i < k->len[s]; i++)
            h = (h ^ p[i]) * 0x100000001b3u;
        h = mix(h ^ (uint64_t)k->len[s]);
    }
    return mix(h);
}

static int key_eq(const Buf *b, const Key *x, const Key *y, int spans)
{
    if (x->num != y->num)
        return 0;
    for (int s = 0; s < spans; s++)
        if (x->len[s] != y->len[s] || memcmp(b->d + x->off[s], b->d + y->off[s], (size_t)x->len[s]) != 0)
            return 0;
    return 1;
}

static void table_free(Table *t)
{
    PyMem_Free(t->entries);
    PyMem_Free(t->slots);
    t->entries = NULL;
    t->slots = NULL;
}

static int table_rehash(Table *t, Idx nslots)
{
    Idx *slots = PyMem_New(Idx, (size_t)nslots);
    if (slots == NULL)
        return -1;
    for (Idx i = 0; i < nslots; i++)
        slots[i] = -1;
    Idx mask = nslots - 1;
    for (Idx e = 0; e < t->count; e++) {
        Idx i = (Idx)(t->entries[e].hash & (uint64_t)mask);
        while (slots[i] >= 0)
            i = (i + 1) & mask;
        slots[i] = e;
    }
    PyMem_Free(t->slots);
    t->slots = slots;
    t->mask = mask;
    return 0;
}

/* The entry of key k (its fields zero and *fresh set if it is new), or NULL on MemoryError. */
static Entry *table_get(Table *t, const Buf *b, const Key *k, int *fresh)
{
    if (t->slots == NULL || (t->count + 1) * 2 > t->mask + 1) {
        Idx nslots = t->slots == NULL ? 64 : (t->mask + 1) * 2;
        if (nslots > PY_SSIZE_T_MAX / (Idx)sizeof(Entry) || table_rehash(t, nslots) < 0) {
            PyErr_NoMemory();
            return NULL;
        }
    }
    uint64_t h = key_hash(b, k, t->spans);
    Idx i = (Idx)(h & (uint64_t)t->mask);
    while (t->slots[i] >= 0) {
        Entry *e = &t->entries[t->slots[i]];
        if (e->hash == h && key_eq(b, &e->key, k, t->spans)) {
            *fresh = 0;
            return e;
        }
        i = (i + 1) & t->mask;
    }
    if (t->count == t->cap) {
        Idx cap = t->cap == 0 ? 32 : t->cap * 2;
        Entry *grown = PyMem_Resize(t->entries, Entry, (size_t)cap);
        if (grown == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        t->entries = grown;
        t->cap = cap;
    }
    Entry *e = &t->entries[t->count];
    memset(e, 0, sizeof *e);
    e->key = *k;
    e->hash = h;
    t->slots[i] = t->count++;
    *fresh = 1;
    return e;
}

/* found: line start -> end or mark */
static int found_set(Table *found, const Buf *b, Idx start, Idx end)
{
    Key k = {{0}, {0}, start};
    int fresh;
    Entry *e = table_get(found, b, &k, &fresh);
    if (e == NULL)
        return -1;
    e->n = end;
    return 0;
}

/* if start not in found: found[start] = end (a popped line is not in found) */
static int found_add(Table *found, const Buf *b, Idx start, Idx end)
{
    Key k = {{0}, {0}, start};
    int fresh;
    Entry *e = table_get(found, b, &k, &fresh);
    if (e == NULL)
        return -1;
    if (fresh || e->n == POPPED)
        e->n = end;
    return 0;
}

/* found.pop(start, None) */
static int found_pop(Table *found, const Buf *b, Idx start)
{
    return found_set(found, b, start, POPPED);
}

/* _found(data, p, found): record the line around p; where to look next for the byte at p. */
static Idx found_line(Table *found, const Buf *b, Idx p, int *err)
{
    Idx start = line_start(b, p), end = line_end(b, p);
    if (found_add(found, b, start, end) < 0) {
        *err = 1;
        return -1;
    }
    return find_byte(b, b->d[p], end);
}

/* ------------------------------------------------------------------------------------------ */
/* sshd's fast patterns (_FAST_HEAD, _FAST_FAILED, _FAST_ACCEPTED), matched from a line's start */

typedef struct {
    Idx start, end;       /* the line (end: its newline or the size) */
    Idx key1, key1_len;   /* the stamp to the hour: classic, or RFC 3339 */
    Idx key2, key2_len;   /* RFC 3339's offset (empty for classic) */
    Idx ms;               /* "MM:SS" */
    Idx method, method_len;
    int invalid;          /* "invalid user " or "illegal user " */
    Idx user, user_len;
    Idx addr, addr_len;
    Idx port, port_len;
} Match;

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_print(unsigned char c) { return c >= 0x21 && c <= 0x7e; }
/* [\x21-\x39\x3b-\x5a\x5c\x5e-\x7e]: printable, no ":", "[" or "]" */
static int is_host(unsigned char c) { return is_print(c) && c != ':' && c != '[' && c != ']'; }

static int at(const Buf *b, Idx i, unsigned char c) { return i < b->n && b->d[i] == c; }
static int digit_at(const Buf *b, Idx i) { return i < b->n && is_digit(b->d[i]); }

/* A run of printable bytes from i (its end) */
static Idx print_run(const Buf *b, Idx i)
{
    while (i < b->n && is_print(b->d[i]))
        i++;
    return i;
}

/* After the stamp's hour (m->key1): ":MM:SS", and for RFC 3339 the fraction and the offset; the
 * position after them, or -1 */
static Idx match_stamp_rest(const Buf *b, Idx i, Match *m)
{
    /* :(\d\d:\d\d) */
    if (!(at(b, i, ':') && digit_at(b, i + 1) && digit_at(b, i + 2) && at(b, i + 3, ':') && digit_at(b, i + 4) &&
          digit_at(b, i + 5)))
        return -1;
    m->ms = i + 1;
    i += 6;
    m->key2 = i;
    m->key2_len = 0;
    if (m->key1_len == 13) {
        /* (?:[.,]\d+)?([+-]\d\d:\d\d) */
        if (at(b, i, '.') || at(b, i, ',')) {
            Idx j = i + 1;
            while (digit_at(b, j))
                j++;
            if (j == i + 1)
                return -1; /* no digit: the group fails, and "[.,]" is no "[+-]" */
            i = j;
        }
        if (!((at(b, i, '+') || at(b, i, '-')) && digit_at(b, i + 1) && digit_at(b, i + 2) && at(b, i + 3, ':') &&
              digit_at(b, i + 4) && digit_at(b, i + 5)))
            return -1;
        m->key2 = i;
        m->key2_len = 6;
        i += 6;
    }
    return i;
}

/* The stamp of _FAST_HEAD (groups 1 to 4) at start: the position after it, or -1 */
static Idx match_stamp(const Buf *b, Idx start, Match *m)
{
    Idx i = start;
    if (i < b->n && b->d[i] >= 'A' && b->d[i] <= 'Z') {
        /* [A-Z][a-z]{2} [ \d]\d \d\d */
        if (b->n - i < 9)
            return -1;
        const unsigned char *s = b->d + i;
        if (!(s[1] >= 'a' && s[1] <= 'z' && s[2] >= 'a' && s[2] <= 'z' && s[3] == ' ' &&
              (s[4] == ' ' || is_digit(s[4])) && is_digit(s[5]) && s[6] == ' ' && is_digit(s[7]) && is_digit(s[8])))
            return -1;
        m->key1 = i;
        m->key1_len = 9;
        i += 9;
    } else if (i < b->n && is_digit(b->d[i])) {
        /* \d{4}-\d\d-\d\dT\d\d */
        if (b->n - i < 13)
            return -1;
        const unsigned char *s = b->d + i;
        if (!(is_digit(s[1]) && is_digit(s[2]) && is_digit(s[3]) && s[4] == '-' && is_digit(s[5]) && is_digit(s[6]) &&
              s[7] == '-' && is_digit(s[8]) && is_digit(s[9]) && s[10] == 'T' && is_digit(s[11]) && is_digit(s[12])))
            return -1;
        m->key1 = i;
        m->key1_len = 13;
        i += 13;
    } else {
        return -1;
    }
    return match_stamp_rest(b, i, m);
}

/* _FAST_HEAD at start: the position after "]: ", or -1 */
static Idx match_head(const Buf *b, Idx start, Match *m)
{
    Idx i = match_stamp(b, start, m);
    if (i < 0)
        return -1;
    /* " " host " sshd" */
    if (!at(b, i, ' '))
        return -1;
    i++;
    Idx host = i;
    while (i < b->n && is_host(b->d[i]))
        i++;
    if (i == host || !STARTS(b, i, " sshd"))
        return -1;
    i += 5;
    /* (?:-session|-auth)?\[\d+\]: */
    if (STARTS(b, i, "-session["))
        i += 8;
    else if (STARTS(b, i, "-auth["))
        i += 5;
    if (!at(b, i, '['))
        return -1;
    i++;
    Idx digits = i;
    while (digit_at(b, i))
        i++;
    if (i == digits || !STARTS(b, i, "]: "))
        return -1;
    return i + 3;
}

/* "<method> for " from i: the position after it, or -1 */
static Idx match_method(const Buf *b, Idx i, Match *m)
{
    Idx e = print_run(b, i);
    if (e == i || !STARTS(b, e, " for "))
        return -1;
    m->method = i;
    m->method_len = e - i;
    return e + 5;
}

/* " from <addr> port <n> ssh2" at i: the position after it, or -1 */
static Idx match_addr(const Buf *b, Idx i, Match *m)
{
    if (!STARTS(b, i, " from "))
        return -1;
    i += 6;
    Idx e = print_run(b, i);
    /* [\x21-\x7e]*[\x21-\x39\x3b-\x7e]: at least one byte, the last no ":" */
    if (e == i || b->d[e - 1] == ':' || !STARTS(b, e, " port "))
        return -1;
    m->addr = i;
    m->addr_len = e - i;
    i = e + 6;
    e = i;
    while (digit_at(b, e))
        e++;
    if (e == i || !STARTS(b, e, " ssh2"))
        return -1;
    m->port = i;
    m->port_len = e - i;
    return e + 5;
}

/* \r?$ at i (the line's end is m->end) */
static int at_end(const Buf *b, Idx i, const Match *m)
{
    return i == m->end || (i + 1 == m->end && b->d[i] == '\r');
}

/* _FAST_FAILED from the line's start */
static int match_failed(const Buf *b, Match *m)
{
    Idx i = match_head(b, m->start, m);
    if (i < 0 || !STARTS(b, i, "Failed ") || STARTS(b, i + 7, "none "))
        return 0;
    i = match_method(b, i + 7, m);
    if (i < 0)
        return 0;
    /* Without "invalid user " the name would be "invalid", followed by " user ": no " from ". */
    m->invalid = STARTS(b, i, "invalid user ") || STARTS(b, i, "illegal user ");
    if (m->invalid)
        i += 13;
    Idx e = print_run(b, i);
    m->user = i;
    m->user_len = e - i;
    i = match_addr(b, e, m);
    if (i < 0)
        return 0;
    if (at_end(b, i, m))
        return 1;
    if (!STARTS(b, i, ": "))
        return 0;
    /* an invalid user's key info must not hold " from " (the general way would read it) */
    return !m->invalid || find_lit(b, i + 2, m->end, LIT(" from ")) < 0;
}

/* _FAST_ACCEPTED from the line's start */
static int match_accepted(const Buf *b, Match *m)
{
    Idx i = match_head(b, m->start, m);
    if (i < 0 || !STARTS(b, i, "Accepted "))
        return 0;
    i = match_method(b, i + 9, m);
    if (i < 0)
        return 0;
    m->invalid = 0;
    Idx e = print_run(b, i);
    if (e == i)
        return 0;
    m->user = i;
    m->user_len = e - i;
    i = match_addr(b, e, m);
    if (i < 0)
        return 0;
    return at_end(b, i, m) || STARTS(b, i, ": ");
}

typedef struct {
    Match *items;
    Idx count, cap;
} Matches;

static int matches_add(Matches *ms, const Match *m)
{
    if (ms->count == ms->cap) {
        Idx cap = ms->cap == 0 ? 64 : ms->cap * 2;
        Match *grown = PyMem_Resize(ms->items, Match, (size_t)cap);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        ms->items = grown;
        ms->cap = cap;
    }
    ms->items[ms->count++] = *m;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The scans (scan_lines' order and rules) */

static const char *const OWN_VERDICT_PAM[] = {
    "pam_unix(sshd:auth): authentication failure", "pam_unix(sudo:auth): authentication failure",
    "pam_unix(su:auth): authentication failure", "pam_unix(su-l:auth): authentication failure",
    "pam_unix(login:auth): authentication failure",
};
static const char *const OWN_VERDICT_TAGS[] = {"sshd", "sshd-session", "sshd-auth", "sudo", "su", "login"};

static int ends_own_verdict_pam(const Buf *b, Idx lo, Idx hi)
{
    for (size_t k = 0; k < sizeof OWN_VERDICT_PAM / sizeof OWN_VERDICT_PAM[0]; k++)
        if (ends(b, lo, hi, OWN_VERDICT_PAM[k], (Idx)strlen(OWN_VERDICT_PAM[k])))
            return 1;
    return 0;
}

/* _own_verdict_pam(data, start, semicolon) */
static int own_verdict_pam(const Buf *b, Idx start, Idx semi)
{
    if (ends_own_verdict_pam(b, start, semi))
        return 1;
    Idx more = find_lit(b, start, semi, LIT("]: PAM "));
    if (more < 0) {
        more = find_lit(b, start, semi, LIT(": PAM "));
        if (more < 0 || !ENDS(b, start, more, " sudo"))
            return 0;
        return ENDS(b, start, semi, "authentication failures") || ENDS(b, start, semi, "authentication failure");
    }
    Idx tag = rfind_byte(b, ' ', start, more);
    if (tag < 0)
        return 0; /* data[0:-1] holds "]: PAM ": no tag */
    Idx name_end = find_lit(b, tag, more, LIT("["));
    if (name_end < 0)
        return 0; /* the slice would run to the block's end, past "]: PAM " */
    int own = 0;
    for (size_t k = 0; k < sizeof OWN_VERDICT_TAGS / sizeof OWN_VERDICT_TAGS[0]; k++) {
        Idx len = (Idx)strlen(OWN_VERDICT_TAGS[k]);
        if (name_end - (tag + 1) == len && memcmp(b->d + tag + 1, OWN_VERDICT_TAGS[k], (size_t)len) == 0)
            own = 1;
    }
    return own && (ENDS(b, start, semi, "authentication failures") || ENDS(b, start, semi, "authentication failure"));
}

typedef struct {
    Buf b;
    Table found;
    Matches fails, oks;
    Idx dropped;
} Scan;

static int scan_semicolons(Scan *s)
{
    const Buf *b = &s->b;
    Idx p = find_byte(b, ';', 0);
    while (p >= 0) {
        /* The first ";" of a line is the anchor's or none is: go on from the next line. */
        Idx end = line_end(b, p);
        if (STARTS(b, p, "; logname=") || STARTS(b, p, "; TTY=")) {
            int logname = b->d[p + 2] == 'l';
            if (logname && ends_own_verdict_pam(b, 0, p)) {
                s->dropped++;
            } else {
                Idx start = line_start(b, p);
                if (logname && own_verdict_pam(b, start, p))
                    s->dropped++;
                else if (found_add(&s->found, b, start, end) < 0)
                    return -1;
            }
        }
        p = find_byte(b, ';', end);
    }
    return 0;
}

static int scan_others(Scan *s)
{
    const Buf *b = &s->b;
    int err = 0;
    Idx p = find_byte(b, 'k', 0);
    while (p >= 0) {
        if ((STARTS(b, p, "k(") && ENDS(b, 0, p, "pam_failloc")) ||
            (!STARTS(b, p, "k(") && STARTS(b, p, "k): password changed") && ENDS(b, 0, p, "chauthto")))
            p = found_line(&s->found, b, p, &err);
        else
            p = find_byte(b, 'k', p + 1);
    }
    p = find_byte(b, ',', 0);
    while (p >= 0) {
        if (STARTS(b, p, ", deny "))
            p = found_line(&s->found, b, p, &err);
        else
            p = find_byte(b, ',', p + 1);
    }
    p = find_byte(b, '\'', 0);
    while (p >= 0) {
        if (STARTS(b, p, "' changed by '") || ENDS(b, 0, p, "change user "))
            p = found_line(&s->found, b, p, &err);
        else
            p = find_byte(b, '\'', p + 1);
    }
    return err ? -1 : 0;
}

static int scan_accepted(Scan *s, int fast)
{
    const Buf *b = &s->b;
    int err = 0;
    Idx p = find_byte(b, 'A', 0);
    while (p >= 0 && !err) {
        if (STARTS(b, p, "Accepted ")) {
            Idx start = line_start(b, p), end = line_end(b, p);
            if (fast) {
                Match m = {.start = start, .end = end};
                if (match_accepted(b, &m)) {
                    if (matches_add(&s->oks, &m) < 0 || found_set(&s->found, b, start, READ_MARK) < 0)
                        return -1;
                    p = find_byte(b, 'A', end);
                    continue;
                }
            }
            if (found_add(&s->found, b, start, end) < 0)
                return -1;
            p = find_byte(b, 'A', end);
        } else if (p >= 1 && (STARTS(b, p - 1, "BAD SU ") || STARTS(b, p - 1, "PAM: ") || STARTS(b, p - 1, "MANY LOGIN TRIES")) &&
                   (b->d[p - 1] != 'M' || (p >= 5 && STARTS(b, p - 5, "TOO MANY LOGIN TRIES")))) {
            p = found_line(&s->found, b, p, &err);
        } else {
            p = find_byte(b, 'A', p + 1);
        }
    }
    return err ? -1 : 0;
}

static int scan_failed(Scan *s, int fast)
{
    const Buf *b = &s->b;
    Idx p = find_byte(b, 'F', 0);
    while (p >= 0) {
        if (STARTS(b, p, "Failed ") || STARTS(b, p, "FAILED ")) {
            Idx start = line_start(b, p), end = line_end(b, p);
            if (fast && b->d[p + 1] == 'a') {
                Match m = {.start = start, .end = end};
                if (match_failed(b, &m)) {
                    if (matches_add(&s->fails, &m) < 0 || found_pop(&s->found, b, start) < 0)
                        return -1;
                    p = find_byte(b, 'F', end);
                    continue;
                }
            }
            if (found_add(&s->found, b, start, end) < 0)
                return -1;
            p = find_byte(b, 'F', end);
        } else {
            p = find_byte(b, 'F', p + 1);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The fast lines' aggregation (_read_fast) */

typedef struct {
    Table hours;   /* stamp key -> hour */
    Table by_account, by_network, ok_by_network;  /* (day, bytes) -> n, first, last */
    Table sessions;  /* (user, address, port) */
    PyObject *offers; /* list */
    Idx lines, bad_password, unknown_user;
} Read;

/* Python's float floor division by 86400 (float_floor_div), then int(). */
static long long floor_day(double when)
{
    double wx = 86400.0, mod = fmod(when, wx), div = (when - mod) / wx, floordiv;
    if (mod != 0.0 && ((wx < 0) != (mod < 0)))
        div -= 1.0;
    if (div != 0.0) {
        floordiv = floor(div);
        if (div - floordiv > 0.5)
            floordiv += 1.0;
    } else {
        floordiv = copysign(0.0, when / wx);
    }
    return (long long)floordiv;
}

/* The hour of a match's stamp, asking `hour` once per distinct key; NULL with an exception set. */
static Entry *hour_of(Read *r, const Buf *b, const Match *m, PyObject *hour)
{
    Key k = {{m->key1, m->key2, 0}, {m->key1_len, m->key2_len, 0}, 0};
    int fresh;
    Entry *e = table_get(&r->hours, b, &k, &fresh);
    if (e == NULL || !fresh)
        return e;
    e->n = -1; /* no time, unless the answer says otherwise */
    PyObject *key = PyBytes_FromStringAndSize(NULL, m->key1_len + m->key2_len);
    if (key == NULL)
        return NULL;
    memcpy(PyBytes_AS_STRING(key), b->d + m->key1, (size_t)m->key1_len);
    memcpy(PyBytes_AS_STRING(key) + m->key1_len, b->d + m->key2, (size_t)m->key2_len);
    PyObject *answer = PyObject_CallOneArg(hour, key);
    Py_DECREF(key);
    if (answer == NULL)
        return NULL;
    if (!PyTuple_Check(answer) || PyTuple_GET_SIZE(answer) != 2) {
        PyErr_SetString(PyExc_TypeError, "hour() must return a (base, day) tuple");
        Py_DECREF(answer);
        return NULL;
    }
    PyObject *base = PyTuple_GET_ITEM(answer, 0), *day = PyTuple_GET_ITEM(answer, 1);
    if (base != Py_None) {
        e->first = PyFloat_AsDouble(base);
        if (e->first == -1.0 && PyErr_Occurred()) {
            Py_DECREF(answer);
            return NULL;
        }
        e->n = 1;
        if (day != Py_None) {
            e->day = PyLong_AsLongLong(day);
            if (e->day == -1 && PyErr_Occurred()) {
                Py_DECREF(answer);
                return NULL;
            }
            e->day_known = 1;
        }
    }
    Py_DECREF(answer);
    return e;
}

static int row_add(Table *t, const Buf *b, long long day, Idx off, Idx len, double when)
{
    Key k = {{off, 0, 0}, {len, 0, 0}, day};
    int fresh;
    Entry *e = table_get(t, b, &k, &fresh);
    if (e == NULL)
        return -1;
    if (fresh) {
        e->n = 1;
        e->first = e->last = when;
    } else {
        e->n++;
        if (when > e->last)
            e->last = when;
        else if (when < e->first)
            e->first = when;
    }
    return 0;
}

static int session_add(Table *t, const Buf *b, const Match *m)
{
    Key k = {{m->user, m->addr, m->port}, {m->user_len, m->addr_len, m->port_len}, 0};
    int fresh;
    return table_get(t, b, &k, &fresh) == NULL ? -1 : 0;
}

static PyObject *span_bytes(const Buf *b, Idx off, Idx len)
{
    return PyBytes_FromStringAndSize((const char *)b->d + off, len);
}

/* One fast line: counted into r, or (no time) back into the candidates. */
static int read_one(Read *r, Scan *s, const Match *m, PyObject *hour, int failed)
{
    const Buf *b = &s->b;
    Entry *h = hour_of(r, b, m, hour);
    if (h == NULL)
        return -1;
    if (h->n < 0) /* a stamp that is no time: the general way decides */
        return found_set(&s->found, b, m->start, m->end);
    const unsigned char *ms = b->d + m->ms;
    int into = ((ms[0] - '0') * 10 + (ms[1] - '0')) * 60 + (ms[3] - '0') * 10 + (ms[4] - '0');
    double when = h->first + (double)into;
    long long day = h->day_known ? h->day : floor_day(when);
    r->lines++;
    if (!failed) {
        if (session_add(&r->sessions, b, m) < 0)
            return -1;
        return row_add(&r->ok_by_network, b, day, m->addr, m->addr_len, when);
    }
    if (m->invalid) {
        r->unknown_user++;
    } else if ((m->method_len == 9 && memcmp(b->d + m->method, "publickey", 9) == 0) ||
               (m->method_len == 9 && memcmp(b->d + m->method, "hostbased", 9) == 0)) {
        PyObject *offer = Py_BuildValue("(dNNN)", when, span_bytes(b, m->user, m->user_len),
                                        span_bytes(b, m->addr, m->addr_len), span_bytes(b, m->port, m->port_len));
        if (offer == NULL)
            return -1;
        int failed_append = PyList_Append(r->offers, offer);
        Py_DECREF(offer);
        return failed_append;
    } else {
        r->bad_password++;
    }
    if (row_add(&r->by_account, b, day, m->user, m->user_len, when) < 0)
        return -1;
    return row_add(&r->by_network, b, day, m->addr, m->addr_len, when);
}

/* {(day, bytes): [n, first, last]} in insertion order */
static PyObject *rows_dict(const Table *t, const Buf *b)
{
    PyObject *rows = PyDict_New();
    if (rows == NULL)
        return NULL;
    for (Idx i = 0; i < t->count; i++) {
        const Entry *e = &t->entries[i];
        PyObject *key = Py_BuildValue("(LN)", e->key.num, span_bytes(b, e->key.off[0], e->key.len[0]));
        PyObject *row = key == NULL ? NULL : Py_BuildValue("[ndd]", e->n, e->first, e->last);
        if (row == NULL || PyDict_SetItem(rows, key, row) < 0) {
            Py_XDECREF(key);
            Py_XDECREF(row);
            Py_DECREF(rows);
            return NULL;
        }
        Py_DECREF(key);
        Py_DECREF(row);
    }
    return rows;
}

static PyObject *sessions_set(const Table *t, const Buf *b)
{
    PyObject *set = PySet_New(NULL);
    if (set == NULL)
        return NULL;
    for (Idx i = 0; i < t->count; i++) {
        const Key *k = &t->entries[i].key;
        PyObject *item = Py_BuildValue("(NNN)", span_bytes(b, k->off[0], k->len[0]), span_bytes(b, k->off[1], k->len[1]),
                                       span_bytes(b, k->off[2], k->len[2]));
        if (item == NULL || PySet_Add(set, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(set);
            return NULL;
        }
        Py_DECREF(item);
    }
    return set;
}

static PyObject *read_tuple(Read *r, const Buf *b)
{
    PyObject *by_account = rows_dict(&r->by_account, b);
    PyObject *by_network = by_account == NULL ? NULL : rows_dict(&r->by_network, b);
    PyObject *ok_by_network = by_network == NULL ? NULL : rows_dict(&r->ok_by_network, b);
    PyObject *sessions = ok_by_network == NULL ? NULL : sessions_set(&r->sessions, b);
    if (sessions == NULL) {
        Py_XDECREF(by_account);
        Py_XDECREF(by_network);
        Py_XDECREF(ok_by_network);
        return NULL;
    }
    Py_INCREF(r->offers);
    return Py_BuildValue("(nnnNNNNN)", r->lines, r->bad_password, r->unknown_user, by_account, by_network,
                         ok_by_network, r->offers, sessions);
}

/* ------------------------------------------------------------------------------------------ */
/* The other candidates' stamp and tag (_LINE_HEAD, _split_bytes) */

/* [\x21-\x27\x2a-\x39\x3b-\x5a\x5c\x5e-\x7e]: printable, no "(", ")", ":", "[" or "]" */
static int is_tag(unsigned char c) { return is_host(c) && c != '(' && c != ')'; }

/* _LINE_HEAD on data[start:end]: the message's start, or -1; the tag in *tag, *tag_end */
static Idx match_line_head(const Buf *whole, Match *m, Idx *tag, Idx *tag_end)
{
    Buf b = {whole->d, m->end}; /* the pattern sees the line only (endpos) */
    /* _FAST_HEAD up to " sshd": the stamp, " ", the host */
    Idx i = match_stamp(&b, m->start, m);
    if (i < 0 || !at(&b, i, ' '))
        return -1;
    i++;
    Idx host = i;
    while (i < b.n && is_host(b.d[i]))
        i++;
    if (i == host || !at(&b, i, ' '))
        return -1;
    i++;
    /* " (tag)(?:\[\d+\]|\])?: " */
    *tag = i;
    while (i < b.n && is_tag(b.d[i]))
        i++;
    if (i == *tag)
        return -1;
    *tag_end = i;
    if (at(&b, i, '[')) {
        Idx digits = i + 1, j = i + 1;
        while (digit_at(&b, j))
            j++;
        if (j == digits || !at(&b, j, ']'))
            return -1; /* "[" is neither "]" nor ":" */
        i = j + 1;
    } else if (at(&b, i, ']')) {
        i++;
    }
    if (!(at(&b, i, ':') && at(&b, i + 1, ' ')))
        return -1;
    return i + 2;
}

/* For each span: (time, tag, the message's start), or None where _LINE_HEAD does not match or the
 * stamp is no time (split_line decides). */
static PyObject *heads_list(Read *r, const Buf *b, PyObject *spans, PyObject *hour)
{
    Py_ssize_t n = PyList_GET_SIZE(spans);
    PyObject *heads = PyList_New(n);
    if (heads == NULL)
        return NULL;
    PyObject *last_tag = NULL; /* the tags repeat: one str while they do */
    Idx last_start = 0, last_len = -1;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *span = PyList_GET_ITEM(spans, k);
        Match m = {0};
        m.start = PyLong_AsSsize_t(PyTuple_GET_ITEM(span, 0));
        m.end = PyLong_AsSsize_t(PyTuple_GET_ITEM(span, 1));
        Idx tag = 0, tag_end = 0;
        Idx msg = match_line_head(b, &m, &tag, &tag_end);
        PyObject *head = NULL;
        if (msg >= 0) {
            Entry *h = hour_of(r, b, &m, hour);
            if (h == NULL)
                goto fail;
            if (h->n >= 0) {
                if (last_tag == NULL || last_len != tag_end - tag ||
                    memcmp(b->d + last_start, b->d + tag, (size_t)last_len) != 0) {
                    Py_XDECREF(last_tag);
                    last_tag = PyUnicode_DecodeASCII((const char *)b->d + tag, tag_end - tag, NULL);
                    if (last_tag == NULL)
                        goto fail;
                    last_start = tag;
                    last_len = tag_end - tag;
                }
                const unsigned char *ms = b->d + m.ms;
                int into = ((ms[0] - '0') * 10 + (ms[1] - '0')) * 60 + (ms[3] - '0') * 10 + (ms[4] - '0');
                head = Py_BuildValue("(dOn)", h->first + (double)into, last_tag, msg);
                if (head == NULL)
                    goto fail;
            }
        }
        PyList_SET_ITEM(heads, k, head == NULL ? Py_NewRef(Py_None) : head);
    }
    Py_XDECREF(last_tag);
    return heads;
fail:
    Py_XDECREF(last_tag);
    Py_DECREF(heads); /* the items not set yet are NULL: list_dealloc skips them */
    return NULL;
}

typedef struct {
    Idx start, end;
} Span;

static int by_start(const void *x, const void *y)
{
    Idx a = ((const Span *)x)->start, c = ((const Span *)y)->start;
    return (a > c) - (a < c);
}

static PyObject *spans_list(const Table *found)
{
    Span *spans = PyMem_New(Span, (size_t)(found->count ? found->count : 1));
    if (spans == NULL)
        return PyErr_NoMemory();
    Idx n = 0;
    for (Idx i = 0; i < found->count; i++)
        if (found->entries[i].n >= 0) {
            spans[n].start = found->entries[i].key.num;
            spans[n].end = found->entries[i].n;
            n++;
        }
    qsort(spans, (size_t)n, sizeof *spans, by_start);
    PyObject *list = PyList_New(n);
    if (list != NULL)
        for (Idx i = 0; i < n; i++) {
            PyObject *item = Py_BuildValue("(nn)", spans[i].start, spans[i].end);
            if (item == NULL) {
                Py_CLEAR(list);
                break;
            }
            PyList_SET_ITEM(list, i, item);
        }
    PyMem_Free(spans);
    return list;
}

static PyObject *scan(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *data, *hour;
    if (!PyArg_ParseTuple(args, "O!O:scan", &PyBytes_Type, &data, &hour))
        return NULL;
    int fast = hour != Py_None;
    if (fast && !PyCallable_Check(hour)) {
        PyErr_SetString(PyExc_TypeError, "scan: hour must be callable or None");
        return NULL;
    }
    Scan s = {0};
    s.b.d = (const unsigned char *)PyBytes_AS_STRING(data);
    s.b.n = PyBytes_GET_SIZE(data);
    s.found.spans = 0;
    Read r = {0};
    r.hours.spans = 2;
    r.by_account.spans = r.by_network.spans = r.ok_by_network.spans = 1;
    r.sessions.spans = 3;
    PyObject *result = NULL, *spans = NULL, *read = NULL, *heads = NULL;
    Py_INCREF(data); /* the spans point into it while `hour` runs */

    if (scan_semicolons(&s) < 0 || scan_others(&s) < 0 || scan_accepted(&s, fast) < 0 || scan_failed(&s, fast) < 0)
        goto done;
    if (fast) {
        r.offers = PyList_New(0);
        if (r.offers == NULL)
            goto done;
        for (Idx i = 0; i < s.fails.count; i++)
            if (read_one(&r, &s, &s.fails.items[i], hour, 1) < 0)
                goto done;
        for (Idx i = 0; i < s.oks.count; i++)
            if (read_one(&r, &s, &s.oks.items[i], hour, 0) < 0)
                goto done;
        read = read_tuple(&r, &s.b);
        if (read == NULL)
            goto done;
    } else {
        read = Py_NewRef(Py_None);
    }
    spans = spans_list(&s.found);
    if (spans == NULL)
        goto done;
    heads = fast ? heads_list(&r, &s.b, spans, hour) : Py_NewRef(Py_None);
    if (heads == NULL)
        goto done;
    result = Py_BuildValue("(NnNN)", spans, s.dropped, read, heads);
    spans = read = heads = NULL; /* stolen, even on failure */
done:
    Py_XDECREF(spans);
    Py_XDECREF(read);
    Py_XDECREF(heads);
    Py_XDECREF(r.offers);
    table_free(&s.found);
    table_free(&r.hours);
    table_free(&r.by_account);
    table_free(&r.by_network);
    table_free(&r.ok_by_network);
    table_free(&r.sessions);
    PyMem_Free(s.fails.items);
    PyMem_Free(s.oks.items);
    Py_DECREF(data);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(data, hour) -> (spans, dropped, read, heads): plugins/access/parse.py's scan_lines, compiled."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_candidates", "The access parser's byte scans (scan_lines), compiled.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__candidates(void)
{
    /* The seed follows Python's own randomised hash of bytes (PYTHONHASHSEED). */
    PyObject *probe = PyBytes_FromString("normagent.plugins.access._candidates");
    if (probe == NULL)
        return NULL;
    Py_hash_t h = PyObject_Hash(probe);
    Py_DECREF(probe);
    if (h == -1 && PyErr_Occurred())
        return NULL;
    hash_seed = mix((uint64_t)h ^ 0x9e3779b97f4a7c15u);
    return PyModule_Create(&module_def);
}
