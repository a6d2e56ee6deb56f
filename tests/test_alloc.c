/* test_alloc.c - the persistent allocator: placement, zeroing, pointer
 * arrays, free, a randomized model check, and a full address range. */
#define _GNU_SOURCE
#include "testutil.h"
#include "storeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- patterns: position-dependent bytes, different per seed ---- */

#define PAT_CHUNK 65536
static unsigned char pat_table[2 * PAT_CHUNK];

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static uint64_t rnd_below(uint64_t n)
{
    return rnd() % n;
}

static void pat_init(void)
{
    static int done;
    if (done)
        return;
    uint64_t saved = rng_state;
    rng_state = 0x1234567887654321ull;
    for (size_t i = 0; i < sizeof pat_table; i++)
        pat_table[i] = (unsigned char)(rnd() >> 56);
    rng_state = saved;
    done = 1;
}

static const unsigned char *pat_src(uint64_t seed, size_t off)
{
    return pat_table + ((seed * 0x9e3779b1u + (off / PAT_CHUNK) * 7919u) % PAT_CHUNK);
}

static void pat_fill(void *p, size_t n, uint64_t seed)
{
    pat_init();
    for (size_t off = 0; off < n; off += PAT_CHUNK) {
        size_t len = n - off < PAT_CHUNK ? n - off : PAT_CHUNK;
        memcpy((char *)p + off, pat_src(seed, off), len);
    }
}

/* 0 if p holds the pattern, else 1 + the index of the first wrong byte. */
static size_t pat_check(const void *p, size_t n, uint64_t seed)
{
    pat_init();
    for (size_t off = 0; off < n; off += PAT_CHUNK) {
        size_t len = n - off < PAT_CHUNK ? n - off : PAT_CHUNK;
        const unsigned char *a = (const unsigned char *)p + off, *b = pat_src(seed, off);
        if (memcmp(a, b, len) != 0) {
            for (size_t k = 0; k < len; k++)
                if (a[k] != b[k])
                    return off + k + 1;
        }
    }
    return 0;
}

static void assert_pattern(const void *p, size_t n, uint64_t seed, const char *what)
{
    size_t bad = pat_check(p, n, seed);
    if (bad) {
        size_t k = bad - 1;
        fail_msg("%s (%p, %zu bytes): byte %zu is 0x%02x, want 0x%02x", what, p, n, k, ((const unsigned char *)p)[k],
                 pat_src(seed, k)[k % PAT_CHUNK]);
    }
}

static void assert_zero(const void *p, size_t n, const char *what)
{
    const unsigned char *c = p;
    for (size_t k = 0; k < n; k++)
        if (c[k])
            fail_msg("%s (%p, %zu bytes): byte %zu is 0x%02x, want 0", what, p, n, k, c[k]);
}

/* ---- store helpers ---- */

static void range_of(cairn_store *s, char **base, size_t *len)
{
    void *b;
    size_t l;
    assert_cairn_ok(cairn_range(s, &b, &l));
    *base = b;
    if (len)
        *len = l;
}

/* Check what every new object must be. */
static void assert_fresh(cairn_store *s, const void *p, size_t size, const char *what)
{
    char *base;
    size_t len;
    range_of(s, &base, &len);
    if (!p)
        fail_msg("%s: NULL", what);
    if ((uintptr_t)p % 16)
        fail_msg("%s: %p is not 16-byte aligned", what, p);
    if ((const char *)p < base || (const char *)p + size > base + len || (const char *)p + size < (const char *)p)
        fail_msg("%s: [%p, +%zu) is not inside the store range [%p, +%zu)", what, p, size, (void *)base, len);
    assert_zero(p, size, what);
}

struct span {
    size_t off, size;
};

static int span_cmp(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Sorts spans in place. */
static void assert_disjoint(struct span *v, size_t n)
{
    qsort(v, n, sizeof *v, span_cmp);
    for (size_t i = 1; i < n; i++)
        if (v[i - 1].off + v[i - 1].size > v[i].off)
            fail_msg("objects overlap: [+%zu, +%zu) and [+%zu, +%zu)", v[i - 1].off, v[i - 1].off + v[i - 1].size,
                     v[i].off, v[i].off + v[i].size);
}

/* ---- every size ---- */

#define SMALL_MAX 2048
static const size_t large_sizes[] = {2049, 4095, 4096, 4097, 8192 + 16, 1 << 20, 20 << 20};
#define NLARGE (sizeof large_sizes / sizeof large_sizes[0])
#define NALL (SMALL_MAX + NLARGE)

static void every_size_distinct_zeroed_aligned(void **state)
{
    const char *dir = *state;
    cairn_store *s = tu_open(dir, 0);
    static struct span objs[NALL], sorted[NALL];
    char *base;
    range_of(s, &base, NULL);
    cairn_txn *t;
    char what[96];
    assert_cairn_ok(cairn_txn_begin(s, &t));
    size_t n = 0;
    /* Every small size in turn; after every 256th, one of the large ones. */
    for (size_t size = 1, li = 0; size <= SMALL_MAX || li < NLARGE; size++) {
        for (int k = 0; k < 2; k++) {
            size_t want;
            if (k == 0 && size <= SMALL_MAX)
                want = size;
            else if (k == 1 && li < NLARGE && (size % 256 == 0 || size > SMALL_MAX))
                want = large_sizes[li++];
            else
                continue;
            void *p;
            assert_cairn_ok(cairn_alloc_bytes(t, want, &p));
            snprintf(what, sizeof what, "new object #%zu of %zu bytes", n, want);
            assert_fresh(s, p, want, what);
            objs[n].off = (size_t)((char *)p - base);
            objs[n].size = want;
            pat_fill(p, want, n + 1);
            n++;
        }
    }
    assert_int_equal(n, NALL);
    memcpy(sorted, objs, sizeof objs);
    assert_disjoint(sorted, n);
    for (size_t i = 0; i < n; i++) {
        snprintf(what, sizeof what, "object #%zu before commit", i);
        assert_pattern(base + objs[i].off, objs[i].size, i + 1, what);
    }
    assert_cairn_ok(cairn_txn_commit(t));
    for (size_t i = 0; i < n; i++) {
        snprintf(what, sizeof what, "object #%zu after commit", i);
        assert_pattern(base + objs[i].off, objs[i].size, i + 1, what);
    }
    assert_cairn_ok(cairn_close(s));

    s = tu_open(dir, 0);
    range_of(s, &base, NULL);
    for (size_t i = 0; i < n; i++) {
        snprintf(what, sizeof what, "object #%zu after reopen", i);
        assert_pattern(base + objs[i].off, objs[i].size, i + 1, what);
    }
    /* New objects after reopen do not collide with the old ones either. */
    assert_cairn_ok(cairn_txn_begin(s, &t));
    static struct span more[NALL + 64];
    memcpy(more, objs, sizeof objs);
    size_t m = n;
    for (size_t i = 0; i < 64; i++) {
        size_t want = i < 60 ? 1 + i * 37 : 5000 * i;
        void *p;
        assert_cairn_ok(cairn_alloc_bytes(t, want, &p));
        assert_fresh(s, p, want, "object allocated after reopen");
        more[m].off = (size_t)((char *)p - base);
        more[m].size = want;
        m++;
    }
    assert_disjoint(more, m);
    cairn_txn_abort(t);
    assert_cairn_ok(cairn_close(s));
}

/* ---- arrays of a pointer type ---- */

struct link {
    struct link *p; /* pointer */
    int64_t x;
    uint64_t raw;   /* an address stored as an integer: never swizzled */
    uint64_t heap;  /* a malloc'd address as an integer: not a pointer field */
    struct link *q; /* pointer, at offset 32: crosses pages in arrays */
};
static const size_t link_ptrs[] = {offsetof(struct link, p), offsetof(struct link, q)};

static const size_t array_counts[] = {1, 2, 3, 20, 102, 103, 1000, 50000};
#define NARR (sizeof array_counts / sizeof array_counts[0])

static void set_links(struct link *const *arr, int gen, uint64_t heap)
{
    for (size_t a = 0; a < NARR; a++) {
        size_t n = array_counts[a];
        struct link *v = arr[a];
        for (size_t i = 0; i < n; i++) {
            v[i].p = &v[(i * 7 + 1 + (size_t)gen) % n];
            v[i].q = (i + (size_t)gen) % 5 == 0 ? NULL : &arr[(a + i + (size_t)gen) % NARR][0];
            v[i].x = (int64_t)(i * 1000 + a + (size_t)gen);
            v[i].raw = (uint64_t)(uintptr_t)&v[i];
            v[i].heap = heap;
        }
    }
}

/* raw_old: the base the raw fields were written under. */
static void check_links(struct link *const *arr, int gen, uint64_t heap, const char *old_base, const char *base,
                        const char *when)
{
    for (size_t a = 0; a < NARR; a++) {
        size_t n = array_counts[a];
        struct link *v = arr[a];
        for (size_t i = 0; i < n; i++) {
            struct link *wp = &v[(i * 7 + 1 + (size_t)gen) % n];
            struct link *wq = (i + (size_t)gen) % 5 == 0 ? NULL : &arr[(a + i + (size_t)gen) % NARR][0];
            uint64_t wraw = (uint64_t)(uintptr_t)(old_base + ((char *)&v[i] - base));
            if (v[i].p != wp || v[i].q != wq || v[i].x != (int64_t)(i * 1000 + a + (size_t)gen) || v[i].raw != wraw ||
                v[i].heap != heap)
                fail_msg("%s: array %zu (count %zu) element %zu: p=%p (want %p) q=%p (want %p) x=%lld raw=%#llx "
                         "(want %#llx) heap=%#llx (want %#llx)",
                         when, a, n, i, (void *)v[i].p, (void *)wp, (void *)v[i].q, (void *)wq, (long long)v[i].x,
                         (unsigned long long)v[i].raw, (unsigned long long)wraw, (unsigned long long)v[i].heap,
                         (unsigned long long)heap);
        }
    }
}

static void get_arrays(cairn_store *s, struct link **arr)
{
    char name[16];
    for (size_t a = 0; a < NARR; a++) {
        snprintf(name, sizeof name, "arr%zu", a);
        assert_cairn_ok(cairn_root_get(s, name, (void **)&arr[a]));
    }
}

static void pointer_arrays_swizzle(void **state)
{
    const char *dir = *state;
    cairn_store *s = tu_open(dir, 0);
    cairn_type lt;
    assert_int_equal(sizeof(struct link), 40);
    assert_cairn_ok(cairn_type_register(s, "link", sizeof(struct link), link_ptrs, 2, &lt));
    struct link *arr[NARR];
    void *heap = malloc(32);
    assert_non_null(heap);
    uint64_t h = (uint64_t)(uintptr_t)heap;
    char *base;
    range_of(s, &base, NULL);
    cairn_txn *t;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    for (size_t a = 0; a < NARR; a++) {
        char name[16];
        assert_cairn_ok(cairn_alloc(t, lt, array_counts[a], (void **)&arr[a]));
        assert_fresh(s, arr[a], array_counts[a] * sizeof(struct link), "new link array");
        snprintf(name, sizeof name, "arr%zu", a);
        assert_cairn_ok(cairn_root_set(t, name, arr[a]));
    }
    set_links(arr, 0, h);
    assert_cairn_ok(cairn_txn_commit(t)); /* heap and raw are plain integers: accepted */
    check_links(arr, 0, h, base, base, "after commit");

    char *old_base = base;
    struct tu_blocker b = tu_close_and_block(s);
    s = tu_open(dir, 0);
    range_of(s, &base, NULL);
    assert_ptr_not_equal(base, old_base);
    get_arrays(s, arr);
    check_links(arr, 0, h, old_base, base, "after reopen");

    /* Rewrite every pointer under the new base, reopen again. */
    assert_cairn_ok(cairn_txn_begin(s, &t));
    set_links(arr, 1, h);
    assert_cairn_ok(cairn_txn_commit(t));
    check_links(arr, 1, h, base, base, "after second commit");
    char *base2 = base;
    assert_cairn_ok(cairn_close(s));
    tu_unblock(b);
    s = tu_open(dir, 0);
    range_of(s, &base, NULL);
    get_arrays(s, arr);
    check_links(arr, 1, h, base2, base, "after second reopen");

    /* Freeing an array clears its pointer words: the slots reused for raw
     * bytes read back as written, not swizzled, after another reopen. */
    assert_cairn_ok(cairn_txn_begin(s, &t));
    size_t big = NARR - 2; /* 1000 elements, 10 pages */
    size_t bytes = array_counts[big] * sizeof(struct link);
    char *old = (char *)arr[big];
    assert_cairn_ok(cairn_root_set(t, "arr6", NULL));
    for (size_t a = 0; a < NARR; a++)
        for (size_t i = 0; i < array_counts[a]; i++)
            if (arr[a][i].q == arr[big])
                arr[a][i].q = NULL;
    assert_cairn_ok(cairn_free(t, arr[big]));
    assert_zero(old, bytes, "freed link array");
    unsigned char *raw;
    assert_cairn_ok(cairn_alloc_bytes(t, bytes, (void **)&raw));
    assert_ptr_equal(raw, old); /* first fit: the same pages */
    /* Words that look like store pointers (into arr[7], 2 MB), in the
     * former pointer fields and everywhere else.  Stale pointer bits would
     * make them swizzle to a new value when the store moves. */
    uint64_t *w = (uint64_t *)raw;
    char *target = (char *)arr[NARR - 1];
    for (size_t i = 0; i < bytes / 8; i++)
        w[i] = (uint64_t)(uintptr_t)(target + 8 * i);
    assert_cairn_ok(cairn_root_set(t, "raw", raw));
    assert_cairn_ok(cairn_txn_commit(t));
    size_t raw_off = (size_t)((char *)raw - base);
    b = tu_close_and_block(s);
    s = tu_open(dir, 0);
    char *base3 = base;
    range_of(s, &base, NULL);
    assert_ptr_not_equal(base, base3);
    assert_cairn_ok(cairn_root_get(s, "raw", (void **)&raw));
    assert_ptr_equal(raw, base + raw_off);
    w = (uint64_t *)raw;
    for (size_t i = 0; i < bytes / 8; i++)
        if (w[i] != (uint64_t)(uintptr_t)(target + 8 * i))
            fail_msg("raw word %zu changed across reopen: %#llx, want %#llx", i, (unsigned long long)w[i],
                     (unsigned long long)(uintptr_t)(target + 8 * i));
    /* The other arrays are intact. */
    for (size_t a = 0; a < NARR; a++) {
        if (a == big)
            continue;
        char name[16];
        snprintf(name, sizeof name, "arr%zu", a);
        struct link *v;
        assert_cairn_ok(cairn_root_get(s, name, (void **)&v));
        for (size_t i = 0; i < array_counts[a]; i++)
            if (v[i].p != &v[(i * 7 + 2) % array_counts[a]])
                fail_msg("array %zu element %zu: p=%p after the neighbour was freed", a, i, (void *)v[i].p);
    }
    assert_cairn_ok(cairn_close(s));
    tu_unblock(b);
    free(heap);
}

/* ---- free ---- */

static void free_reuse_and_errors(void **state)
{
    const char *dir = *state;
    cairn_store *s = tu_open(dir, 0);
    char *base;
    size_t len;
    range_of(s, &base, &len);
    cairn_txn *t;
    enum { N = 10 };
    unsigned char *sm[N], *lg[3];
    assert_cairn_ok(cairn_txn_begin(s, &t));
    for (int i = 0; i < N; i++) {
        assert_cairn_ok(cairn_alloc_bytes(t, 64, (void **)&sm[i]));
        memset(sm[i], 0xff, 64);
    }
    for (int i = 0; i < 3; i++) {
        assert_cairn_ok(cairn_alloc_bytes(t, 3 * 4096, (void **)&lg[i]));
        memset(lg[i], 0xff, 3 * 4096);
    }
    unsigned char *odd;
    assert_cairn_ok(cairn_alloc_bytes(t, 20, (void **)&odd)); /* class 32 */
    memset(odd, 0xff, 20);
    assert_cairn_ok(cairn_txn_commit(t));

    /* NULL is fine. */
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_free(t, NULL));
    /* Not the start of a live object. */
    assert_cairn_rc(cairn_free(t, sm[3] + 16), CAIRN_INVALID);
    assert_cairn_rc(cairn_free(t, sm[3] + 1), CAIRN_INVALID);
    assert_cairn_rc(cairn_free(t, sm[N - 1] + 64), CAIRN_INVALID); /* next slot, never allocated */
    assert_cairn_rc(cairn_free(t, lg[1] + 16), CAIRN_INVALID);
    assert_cairn_rc(cairn_free(t, lg[1] + 4096), CAIRN_INVALID); /* second page of a large object */
    assert_cairn_rc(cairn_free(t, lg[1] + 2 * 4096 + 32), CAIRN_INVALID);
    assert_cairn_rc(cairn_free(t, base + len - 4096), CAIRN_INVALID); /* never allocated */
    assert_cairn_rc(cairn_free(t, base + 4096), CAIRN_INVALID);       /* allocator metadata */
    assert_cairn_rc(cairn_free(t, base), CAIRN_INVALID);
    void *heap = malloc(64);
    assert_cairn_rc(cairn_free(t, heap), CAIRN_INVALID);
    free(heap);
    /* Refused frees changed nothing. */
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 64; k++)
            assert_int_equal(sm[i][k], 0xff);
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3 * 4096; k++)
            if (lg[i][k] != 0xff)
                fail_msg("large object %d byte %d changed by a refused free", i, k);

    /* Free zeroes, double free is refused, the slot is reused. */
    assert_cairn_ok(cairn_free(t, sm[3]));
    assert_zero(sm[3], 64, "freed small object");
    assert_cairn_rc(cairn_free(t, sm[3]), CAIRN_INVALID);
    assert_cairn_ok(cairn_free(t, lg[0]));
    assert_zero(lg[0], 3 * 4096, "freed large object");
    assert_cairn_rc(cairn_free(t, lg[0]), CAIRN_INVALID);
    assert_cairn_ok(cairn_free(t, odd));
    assert_zero(odd, 32, "freed 20-byte object (its whole 32-byte slot)");
    void *p;
    assert_cairn_ok(cairn_alloc_bytes(t, 64, &p));
    assert_ptr_equal(p, sm[3]); /* within the transaction */
    assert_zero(p, 64, "reused slot");
    assert_cairn_ok(cairn_txn_commit(t));

    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_rc(cairn_free(t, lg[0]), CAIRN_INVALID); /* freed in an earlier txn */
    assert_cairn_ok(cairn_alloc_bytes(t, 3 * 4096, &p));
    assert_ptr_equal(p, lg[0]); /* first fit */
    assert_zero(p, 3 * 4096, "reused pages");
    assert_cairn_ok(cairn_alloc_bytes(t, 32, &p));
    assert_ptr_equal(p, odd);
    assert_zero(p, 32, "reused 32-byte slot");
    assert_cairn_ok(cairn_free(t, sm[5]));
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_ok(cairn_close(s));

    /* The same after reopen: sm[5] is free, its neighbours are not. */
    size_t off5 = (size_t)((char *)sm[5] - base), off6 = (size_t)((char *)sm[6] - base);
    s = tu_open(dir, 0);
    range_of(s, &base, &len);
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_rc(cairn_free(t, base + off5), CAIRN_INVALID);
    assert_cairn_ok(cairn_alloc_bytes(t, 50, &p)); /* class 64 */
    assert_ptr_equal(p, base + off5);
    assert_cairn_ok(cairn_free(t, base + off6));
    assert_cairn_ok(cairn_txn_commit(t));

    /* Freed memory is reused: the same working set allocated and freed
     * over and over does not grow the address range used (beyond a few
     * pages of fragmentation; without reuse it would grow by ~80 pages a
     * round). */
    assert_cairn_ok(cairn_txn_begin(s, &t));
    enum { W = 300 };
    static void *ws[W];
    size_t hi_first = 0;
    const size_t slack = 16 * 4096;
    for (int round = 0; round < 40; round++) {
        size_t hi = 0;
        for (int i = 0; i < W; i++) {
            size_t want = i % 50 == 49 ? 9000 : 16 + (size_t)i * 5;
            assert_cairn_ok(cairn_alloc_bytes(t, want, &ws[i]));
            size_t end = (size_t)((char *)ws[i] - base) + want;
            hi = end > hi ? end : hi;
        }
        for (int i = 0; i < W; i++)
            assert_cairn_ok(cairn_free(t, ws[(i * 7) % W]));
        if (round == 0)
            hi_first = hi;
        else if (hi > hi_first + slack)
            fail_msg("round %d: objects reach +%zu, the first round reached +%zu", round, hi, hi_first);
        if (round % 5 == 4) {
            assert_cairn_ok(cairn_txn_commit(t));
            assert_cairn_ok(cairn_txn_begin(s, &t));
        }
    }
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_ok(cairn_close(s));
}

/* ---- randomized model check ---- */

/* A model object: raw bytes holding a pattern, or (count > 0) an array
 * of struct selfref whose pointer field points at the element itself and
 * whose other word is derived from the seed. */
struct selfref {
    struct selfref *self;
    uint64_t v;
};
static const size_t selfref_ptrs[] = {offsetof(struct selfref, self)};

struct mobj {
    size_t off, size;
    uint64_t seed;
    size_t count;
};

static uint64_t mix(uint64_t seed, uint64_t i)
{
    uint64_t x = seed ^ (i * 0x9e3779b97f4a7c15ull);
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    return x ^ (x >> 29);
}

static void mobj_fill(char *base, const struct mobj *o)
{
    if (!o->count) {
        pat_fill(base + o->off, o->size, o->seed);
        return;
    }
    struct selfref *e = (struct selfref *)(base + o->off);
    for (size_t i = 0; i < o->count; i++) {
        e[i].self = &e[i];
        e[i].v = mix(o->seed, i);
    }
}

/* 0 if it holds what the model says, else 1 + the first wrong byte. */
static size_t mobj_check(char *base, const struct mobj *o)
{
    if (!o->count)
        return pat_check(base + o->off, o->size, o->seed);
    struct selfref *e = (struct selfref *)(base + o->off);
    for (size_t i = 0; i < o->count; i++) {
        if (e[i].self != &e[i])
            return i * sizeof *e + 1;
        if (e[i].v != mix(o->seed, i))
            return i * sizeof *e + 8 + 1;
    }
    return 0;
}

struct model {
    struct mobj *v;
    size_t n, cap;
};

static void model_add(struct model *m, struct mobj o)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 256;
        m->v = realloc(m->v, m->cap * sizeof *m->v);
        assert_non_null(m->v);
    }
    m->v[m->n++] = o;
}

static void model_copy(struct model *dst, const struct model *src)
{
    if (dst->cap < src->n) {
        dst->cap = src->cap;
        dst->v = realloc(dst->v, dst->cap * sizeof *dst->v);
        assert_non_null(dst->v);
    }
    if (src->n)
        memcpy(dst->v, src->v, src->n * sizeof *src->v);
    dst->n = src->n;
}

static void model_verify(cairn_store *s, const struct model *m, const char *when, long step)
{
    char *base;
    size_t len;
    range_of(s, &base, &len);
    struct span *sp = malloc((m->n ? m->n : 1) * sizeof *sp);
    assert_non_null(sp);
    for (size_t i = 0; i < m->n; i++) {
        const struct mobj *o = &m->v[i];
        if (o->off + o->size > len)
            fail_msg("step %ld %s: model object +%zu outside the range", step, when, o->off);
        size_t bad = mobj_check(base, o);
        if (bad)
            fail_msg("step %ld %s: object +%zu (%zu bytes, %zu typed elements, seed %llu): byte %zu is wrong "
                     "(0x%02x)",
                     step, when, o->off, o->size, o->count, (unsigned long long)o->seed, bad - 1,
                     (unsigned char)base[o->off + bad - 1]);
        sp[i].off = o->off;
        sp[i].size = o->size;
    }
    assert_disjoint(sp, m->n);
    free(sp);
}

static size_t random_count(void)
{
    uint64_t r = rnd_below(100);
    if (r < 70)
        return 1 + rnd_below(8);
    if (r < 95)
        return 9 + rnd_below(300);
    return 300 + rnd_below(5000);
}

static size_t random_size(void)
{
    uint64_t r = rnd_below(100);
    if (r < 70)
        return 1 + rnd_below(256);
    if (r < 94)
        return 257 + rnd_below(SMALL_MAX - 256);
    if (r < 99)
        return SMALL_MAX + 1 + rnd_below(40000);
    return 40000 + rnd_below(300000);
}

struct model_cfg {
    uint64_t seed;
    long steps;
    size_t max_live;
    uint64_t checkpoint_bytes; /* 0: default */
};

static void run_model(const char *dir, const struct model_cfg *cfg)
{
    cairn_options o;
    tu_options(&o);
    o.checkpoint_bytes = cfg->checkpoint_bytes;
    cairn_store *s = tu_open_with(dir, &o);
    cairn_type srt;
    assert_cairn_ok(cairn_type_register(s, "selfref", sizeof(struct selfref), selfref_ptrs, 1, &srt));
    rng_state = cfg->seed;
    print_message("model seed %#llx, %ld steps\n", (unsigned long long)cfg->seed, cfg->steps);
    struct model cur = {0}, committed = {0};
    char *base;
    size_t len;
    range_of(s, &base, &len);
    cairn_txn *t;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    long commits = 0, aborts = 0, reopens = 0, frees = 0, allocs = 0;
    char what[128];
    for (long step = 0; step < cfg->steps; step++) {
        uint64_t r = rnd_below(1000);
        if (cur.n >= cfg->max_live && r < 450)
            r = 450 + rnd_below(250); /* free instead of allocating */
        if (r < 450) {                /* alloc */
            size_t count = rnd_below(5) == 0 ? random_count() : 0;
            size_t size = count ? count * sizeof(struct selfref) : random_size();
            void *p;
            int rc = count ? cairn_alloc(t, srt, count, &p) : cairn_alloc_bytes(t, size, &p);
            if (rc != CAIRN_OK)
                fail_msg("step %ld: alloc %zu: %d (%s)", step, size, rc, cairn_strerror(rc));
            snprintf(what, sizeof what, "step %ld: new object of %zu bytes", step, size);
            assert_fresh(s, p, size, what);
            struct mobj ob = {(size_t)((char *)p - base), size, rnd(), count};
            for (size_t i = 0; i < cur.n; i++)
                if (ob.off < cur.v[i].off + cur.v[i].size && cur.v[i].off < ob.off + ob.size)
                    fail_msg("step %ld: new object [+%zu, +%zu) overlaps live [+%zu, +%zu)", step, ob.off,
                             ob.off + size, cur.v[i].off, cur.v[i].off + cur.v[i].size);
            mobj_fill(base, &ob);
            model_add(&cur, ob);
            allocs++;
        } else if (r < 700) { /* free */
            if (!cur.n)
                continue;
            size_t i = rnd_below(cur.n);
            struct mobj ob = cur.v[i];
            int rc = cairn_free(t, base + ob.off);
            if (rc != CAIRN_OK)
                fail_msg("step %ld: free +%zu (%zu bytes): %d (%s)", step, ob.off, ob.size, rc, cairn_strerror(rc));
            snprintf(what, sizeof what, "step %ld: freed object", step);
            assert_zero(base + ob.off, ob.size, what);
            cur.v[i] = cur.v[--cur.n];
            if (rnd_below(8) == 0)
                assert_cairn_rc(cairn_free(t, base + ob.off), CAIRN_INVALID);
            frees++;
        } else if (r < 850) { /* rewrite */
            if (!cur.n)
                continue;
            struct mobj *ob = &cur.v[rnd_below(cur.n)];
            ob->seed = rnd();
            mobj_fill(base, ob);
        } else if (r < 870) { /* interior pointer */
            if (!cur.n)
                continue;
            struct mobj *ob = &cur.v[rnd_below(cur.n)];
            if (ob->size > 16)
                assert_cairn_rc(cairn_free(t, base + ob->off + 16), CAIRN_INVALID);
        } else if (r < 940) { /* commit */
            assert_cairn_ok(cairn_txn_commit(t));
            model_copy(&committed, &cur);
            model_verify(s, &cur, "after commit", step);
            assert_cairn_ok(cairn_txn_begin(s, &t));
            commits++;
        } else if (r < 990) { /* abort */
            cairn_txn_abort(t);
            model_copy(&cur, &committed);
            model_verify(s, &cur, "after abort", step);
            assert_cairn_ok(cairn_txn_begin(s, &t));
            aborts++;
        } else if (r < 996) { /* checkpoint while the transaction is open */
            assert_cairn_ok(cairn_checkpoint(s));
        } else { /* close (aborting the open txn) and reopen elsewhere */
            struct tu_blocker b = tu_close_and_block(s);
            model_copy(&cur, &committed);
            s = tu_open_with(dir, &o);
            tu_unblock(b);
            char *old_base = base;
            range_of(s, &base, &len);
            assert_ptr_not_equal(base, old_base);
            model_verify(s, &cur, "after reopen", step);
            assert_cairn_ok(cairn_txn_begin(s, &t));
            reopens++;
        }
    }
    assert_cairn_ok(cairn_txn_commit(t));
    model_copy(&committed, &cur);
    model_verify(s, &cur, "after the last commit", cfg->steps);
    assert_cairn_ok(cairn_close(s));
    s = tu_open_with(dir, &o);
    model_verify(s, &committed, "after the last reopen", cfg->steps);
    /* Free everything: the store takes it all back. */
    range_of(s, &base, &len);
    assert_cairn_ok(cairn_txn_begin(s, &t));
    for (size_t i = 0; i < committed.n; i++)
        assert_cairn_ok(cairn_free(t, base + committed.v[i].off));
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_ok(cairn_close(s));
    print_message("model: %ld allocs, %ld frees, %ld commits, %ld aborts, %ld reopens, %zu live at the end\n", allocs,
                  frees, commits, aborts, reopens, committed.n);
    assert_true(commits > 10 && aborts > 10 && reopens > 0);
    free(cur.v);
    free(committed.v);
}

static void random_model(void **state)
{
    struct model_cfg cfg = {.seed = 0xc0ffee1234ull, .steps = 6000, .max_live = 400};
    run_model(*state, &cfg);
}

/* The same with a background flusher checkpointing all the time. */
static void random_model_busy_flusher(void **state)
{
    struct model_cfg cfg = {.seed = 0xfeedbeef42ull, .steps = 4000, .max_live = 300, .checkpoint_bytes = 128 << 10};
    run_model(*state, &cfg);
}

/* ---- exhaustion ---- */

/* More than the whole range, on a 1 GiB store: CAIRN_FULL (or, for sizes
 * that overflow, CAIRN_INVALID), and the transaction goes on. */
static void alloc_beyond_the_range_fails(void **state)
{
    const char *dir = *state;
    cairn_txn *t;
    void *p;

    cairn_store *s = tu_open(dir, 0);
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_rc(cairn_alloc_bytes(t, (size_t)2 << 30, &p), CAIRN_FULL);
    assert_cairn_rc(cairn_alloc_bytes(t, (size_t)1 << 30, &p), CAIRN_FULL);
    int rc = cairn_alloc_bytes(t, SIZE_MAX, &p);
    if (rc != CAIRN_FULL && rc != CAIRN_INVALID)
        fail_msg("alloc SIZE_MAX bytes: %d (%s)", rc, cairn_strerror(rc));
    cairn_type big;
    assert_cairn_ok(cairn_type_register(s, "big", 64, NULL, 0, &big));
    assert_cairn_rc(cairn_alloc(t, big, SIZE_MAX / 32, &p), CAIRN_INVALID); /* count * size overflows */
    assert_cairn_ok(cairn_alloc_bytes(t, 100, &p));
    cairn_txn_abort(t);
    assert_cairn_ok(cairn_close(s));
}

/* The smallest store (16 MiB) filled with 1 MiB objects: CAIRN_FULL with a
 * message, still consistent (a free makes room for exactly one more), and
 * an abort gives it all back, twice the same, with the store usable and
 * its committed data intact after a reopen. */
static void filled_store_gives_everything_back_on_abort(void **state)
{
    const char *dir = *state;
    cairn_txn *t;
    void *p;
    int rc;
    cairn_options o;
    tu_options(&o);
    o.max_bytes = (uint64_t)16 << 20;
    cairn_store *s = tu_open_with(dir, &o);
    unsigned char *keep;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc_bytes(t, 1000, (void **)&keep));
    pat_fill(keep, 1000, 99);
    assert_cairn_ok(cairn_root_set(t, "keep", keep));
    assert_cairn_ok(cairn_txn_commit(t));

    enum { MAXCH = 32 };
    void *chunk[MAXCH];
    int nchunk[2] = {0, 0};
    for (int pass = 0; pass < 2; pass++) {
        assert_cairn_ok(cairn_txn_begin(s, &t));
        int n = 0;
        for (;;) {
            if (n == MAXCH)
                fail_msg("pass %d: %d MiB allocated in a 16 MiB store", pass, n);
            rc = cairn_alloc_bytes(t, 1 << 20, &chunk[n]);
            if (rc == CAIRN_FULL) {
                assert_true(strlen(cairn_errmsg(s)) > 0);
                break;
            }
            assert_cairn_ok(rc);
            memset(chunk[n], 0x5a, 4096); /* touch it */
            n++;
        }
        nchunk[pass] = n;
        if (n < 12)
            fail_msg("pass %d: only %d MiB fit in a 16 MiB store", pass, n);
        /* Still consistent: a free makes room for exactly one more. */
        assert_cairn_ok(cairn_free(t, chunk[3]));
        assert_cairn_ok(cairn_alloc_bytes(t, 1 << 20, &p));
        assert_ptr_equal(p, chunk[3]);
        assert_cairn_rc(cairn_alloc_bytes(t, 1 << 20, &p), CAIRN_FULL);
        cairn_txn_abort(t);
    }
    /* The abort gave everything back: the second pass fit as much. */
    assert_int_equal(nchunk[0], nchunk[1]);

    /* Usable after the abort. */
    assert_pattern(keep, 1000, 99, "object committed before the store filled up");
    assert_cairn_ok(cairn_txn_begin(s, &t));
    unsigned char *more;
    assert_cairn_ok(cairn_alloc_bytes(t, 3 << 20, (void **)&more));
    pat_fill(more, 3 << 20, 7);
    assert_cairn_ok(cairn_root_set(t, "more", more));
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_ok(cairn_close(s));
    s = tu_open_with(dir, &o);
    assert_cairn_ok(cairn_root_get(s, "keep", (void **)&keep));
    assert_cairn_ok(cairn_root_get(s, "more", (void **)&more));
    assert_pattern(keep, 1000, 99, "object after reopen");
    assert_pattern(more, 3 << 20, 7, "object allocated after the full abort, after reopen");
    assert_cairn_ok(cairn_close(s));
}

/* The superblock's live counters (docs/FORMAT.md, page 1), read through
 * the client view. */
static void live_counts(cairn_store *s, uint64_t *objects, uint64_t *bytes)
{
    char *base;
    size_t len;
    range_of(s, &base, &len);
    memcpy(objects, base + 4096 + 24, 8);
    memcpy(bytes, base + 4096 + 32, 8);
}

/* Every request size from 1 to 3 pages, and a typed array, allocated then
 * freed: the live counters return exactly to where they were (they used to
 * wrap when a small object's size was not its slot size), cairn_check
 * agrees at every step, and across a reopen. */
static void live_bytes_exact(void **state)
{
    const char *dir = *state;
    cairn_store *s = tu_open(dir, 0);
    cairn_txn *t;
    uint64_t objs, bytes;
    cairn_check_report r;
    static const size_t sizes[] = {1,    7,    8,    15,   16,   17,   20,   24,   33,   47,   63,
                                   65,   100,  129,  200,  255,  300,  400,  500,  513,  700,  1000,
                                   1025, 1361, 2000, 2047, 2048, 2049, 4095, 4096, 4097, 8191, 12288};
    enum { NS = sizeof sizes / sizeof sizes[0], PER = 3 };
    void *obj[NS][PER];
    for (size_t i = 0; i < NS; i++) {
        assert_cairn_ok(cairn_txn_begin(s, &t));
        for (int k = 0; k < PER; k++)
            assert_cairn_ok(cairn_alloc_bytes(t, sizes[i], &obj[i][k]));
        assert_cairn_ok(cairn_txn_commit(t));
    }
    live_counts(s, &objs, &bytes);
    assert_int_equal(objs, NS * PER);
    assert_cairn_ok(cairn_check(s, &r));
    /* Free them one size at a time, oldest first, checking as we go. */
    for (size_t i = 0; i < NS; i++) {
        assert_cairn_ok(cairn_txn_begin(s, &t));
        for (int k = 0; k < PER; k++)
            assert_cairn_ok(cairn_free(t, obj[i][k]));
        assert_cairn_ok(cairn_txn_commit(t));
        uint64_t b2;
        live_counts(s, &objs, &b2);
        assert_int_equal(objs, (NS - 1 - i) * PER);
        if (b2 > bytes)
            fail_msg("live bytes grew from %llu to %llu freeing %zu-byte objects", (unsigned long long)bytes,
                     (unsigned long long)b2, sizes[i]);
        bytes = b2;
        int rc = cairn_check(s, &r);
        if (rc != CAIRN_OK)
            fail_msg("after freeing the %zu-byte objects: %s", sizes[i], r.first_problem);
    }
    assert_int_equal(bytes, 0);
    /* A typed array: counted and freed at the same size. */
    cairn_type odd;
    assert_cairn_ok(cairn_type_register(s, "odd", 12, NULL, 0, &odd));
    void *arr;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc(t, odd, 9, &arr)); /* 108 bytes: slot of 112 */
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_ok(cairn_close(s));
    s = tu_open(dir, 0);
    assert_cairn_ok(cairn_check(s, &r));
    live_counts(s, &objs, &bytes);
    assert_int_equal(objs, 1);
    assert_int_equal(bytes, 112);
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_free(t, arr));
    assert_cairn_ok(cairn_txn_commit(t));
    live_counts(s, &objs, &bytes);
    assert_int_equal(objs, 0);
    assert_int_equal(bytes, 0);
    assert_cairn_ok(cairn_check(s, &r));
    assert_cairn_ok(cairn_close(s));
}

/* A type no object could ever have is refused. */
static void absurd_type_sizes(void **state)
{
    const char *dir = *state;
    cairn_store *s = tu_open(dir, 0);
    char *base;
    size_t len;
    range_of(s, &base, &len);
    cairn_type ty;
    size_t ptr0[] = {0};
    assert_cairn_rc(cairn_type_register(s, "max", SIZE_MAX, NULL, 0, &ty), CAIRN_INVALID);
    assert_cairn_rc(cairn_type_register(s, "maxp", SIZE_MAX & ~(size_t)7, ptr0, 1, &ty), CAIRN_INVALID);
    assert_cairn_rc(cairn_type_register(s, "range+1", len + 1, NULL, 0, &ty), CAIRN_INVALID);
    assert_cairn_rc(cairn_type_register(s, "zero", 0, NULL, 0, &ty), CAIRN_INVALID);
    assert_cairn_ok(cairn_type_register(s, "whole", len, NULL, 0, &ty)); /* fits, in principle */
    assert_cairn_ok(cairn_close(s));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        tu_dir_test(every_size_distinct_zeroed_aligned),
        tu_dir_test(pointer_arrays_swizzle),
        tu_dir_test(free_reuse_and_errors),
        tu_dir_test(random_model),
        tu_dir_test(random_model_busy_flusher),
        tu_dir_test(alloc_beyond_the_range_fails),
        tu_dir_test(filled_store_gives_everything_back_on_abort),
        tu_dir_test(live_bytes_exact),
        tu_dir_test(absurd_type_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
