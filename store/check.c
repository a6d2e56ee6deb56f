/*
 * check.c - cairn_check: verify the committed state of a store.
 *
 * Works on committed bytes only, unswizzled (offsets, not addresses),
 * read through the heap walker (walk.c) in its checking mode: an extent
 * that is resident is read from memory as of the last commit, any other
 * from LMDB, decoded and checksummed; one that fails to decode reads as
 * zero after pass 1 has counted it.
 * It holds the transaction slot (no writer) and the log mutex (no commit
 * or checkpoint moves pages between memory and LMDB meanwhile) and never
 * touches the client view, so damaged data can only ever become a
 * counted problem, never a fault.
 *
 * check_snapshot runs the same passes on a snapshot (snapshot.c) for the
 * command-line tool: extents the log changed come from the snapshot's
 * replayed images, the rest from its LMDB read transaction.
 *
 * Passes:
 *   1. every value in the LMDB "extents" database decodes;
 *   2. superblock and descriptors of the object pages below the
 *      high-water mark: kinds, slot counts, runs, pointer bits inside live
 *      objects, typed objects matching their catalog layout, no page
 *      belonging to nothing (leaked) or to two things;
 *   3. the partial-slab lists and the free-run list: every member has the
 *      right kind, links agree both ways, no cycle, nobody missing;
 *   4. every pointer word of every object page, and every root, is NULL
 *      or points into a live object; free memory is zero.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "walk.h"
#include "heap.h"
#include "store_internal.h"

struct checker {
    struct walk w; /* committed pages and descriptors, damaged extents as zero */
    const struct inspect_hooks *hooks;
    cairn_check_report *r;
    int err;             /* first error that stops the passes (not a problem) */
    uint64_t live_bytes; /* as the superblock counts them (FORMAT.md) */
};

static void problem(struct checker *c, uint64_t *counter, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void problem(struct checker *c, uint64_t *counter, const char *fmt, ...)
{
    ++*counter;
    c->r->problems++;
    if (c->r->first_problem[0] && !(c->hooks && c->hooks->problem))
        return;
    char msg[sizeof c->r->first_problem];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!c->r->first_problem[0])
        memcpy(c->r->first_problem, msg, sizeof msg);
    if (c->hooks && c->hooks->problem)
        c->hooks->problem(c->hooks->arg, msg);
}

static void progress(struct checker *c, const char *pass, uint64_t done, uint64_t total)
{
    if (c->hooks && c->hooks->progress)
        c->hooks->progress(c->hooks->arg, pass, done, total);
}

/* The descriptor of page n of [ds, np) into *d; an error that is not a
 * problem (memory, I/O) is kept in c->err and *d reads as unused. */
static void desc_of(struct checker *c, uint64_t n, struct page_desc *d)
{
    int rc = c->err ? c->err : walk_desc(&c->w, n, d);
    if (rc) {
        c->err = rc;
        memset(d, 0, sizeof *d);
    }
}

static int in_heap(const struct checker *c, uint64_t n)
{
    return n >= c->w.ds && n < c->w.np;
}

static int pass_lmdb_values(struct checker *c)
{
    cairn_store *s = c->w.s;
    MDB_txn *txn = c->w.txn;
    /* LMDB's own pages first: a damaged page can hide extents from the
     * cursor below and still look sound to it. */
    char why[200];
    int rc = lmdb_verify(txn, why, sizeof why);
    if (rc == CAIRN_CORRUPT)
        problem(c, &c->r->corrupt_extents, "data.mdb: %s", why);
    else if (rc)
        return rc;
    unsigned char *raw = malloc(BYTES_PER_EXTENT);
    if (!raw)
        return ENOMEM;
    MDB_cursor *cur;
    rc = mdb_cursor_open(txn, s->cat.extents, &cur);
    if (rc) {
        free(raw);
        return lmdb_to_cairn(rc);
    }
    MDB_stat ms;
    uint64_t total = mdb_stat(txn, s->cat.extents, &ms) == 0 ? ms.ms_entries : 0;
    const char *map = lmdb_map_base(mdb_txn_env(txn));
    MDB_val k, v;
    for (rc = lmdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = lmdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint64_t e;
        if (++c->r->extents_checked % 64 == 0)
            progress(c, "extents", c->r->extents_checked, total);
        if (k.mv_size != sizeof e) {
            problem(c, &c->r->corrupt_extents, "extents database: key of %zu bytes", k.mv_size);
            continue;
        }
        memcpy(&e, k.mv_data, sizeof e);
        if (e >= c->w.layout.pages / PAGES_PER_EXTENT)
            problem(c, &c->r->corrupt_extents, "extent %llu is beyond the store", (unsigned long long)e);
        else if (lmdb_value_check(txn, map, &v) != 0) /* a writer would refuse to replace it */
            problem(c, &c->r->corrupt_extents, "extent %llu: its LMDB overflow page header is damaged",
                    (unsigned long long)e);
        else if (extent_decode(raw, v.mv_data, v.mv_size, e, s->cat.seed, s->dctx) != 0)
            problem(c, &c->r->corrupt_extents, "extent %llu fails to decode (header, zstd or checksum)",
                    (unsigned long long)e);
    }
    mdb_cursor_close(cur);
    free(raw);
    return rc == MDB_NOTFOUND ? 0 : lmdb_to_cairn(rc);
}

static int bit(const uint64_t *bits, uint64_t i)
{
    return (bits[i / 64] >> (i % 64)) & 1;
}

static void check_slab(struct checker *c, uint64_t n, const struct page_desc *d)
{
    if (d->size_class >= NCLASSES) {
        problem(c, &c->r->alloc_errors, "page %llu: slab of unknown size class %u", (unsigned long long)n,
                d->size_class);
        return;
    }
    uint64_t sz = heap_class_size[d->size_class], nslots = PAGE_BYTES / sz, live = 0;
    for (uint64_t i = 0; i < 256; i++) {
        if (!bit(d->slot_bits, i))
            continue;
        if (i >= nslots)
            problem(c, &c->r->alloc_errors, "page %llu: slot bit %llu beyond %llu slots", (unsigned long long)n,
                    (unsigned long long)i, (unsigned long long)nslots);
        live++;
    }
    if (live != d->live || live == 0)
        problem(c, &c->r->alloc_errors, "page %llu: slab counts %u live, bitmap has %llu", (unsigned long long)n,
                d->live, (unsigned long long)live);
    c->r->objects += live;
    c->live_bytes += live * sz;
    for (uint64_t w = 0; w < PAGE_WORDS; w++) {
        uint64_t slot = w * 8 / sz;
        if (bit(d->ptr_bits, w) && (slot >= nslots || !bit(d->slot_bits, slot)))
            problem(c, &c->r->alloc_errors, "page %llu: pointer bit on word %llu outside a live slot",
                    (unsigned long long)n, (unsigned long long)w);
    }
}

/* Pointer bits of the large object at page n: inside the object and,
 * for a typed object (ti not NULL), exactly the catalog layout
 * repeated. */
static void check_large_bits(struct checker *c, uint64_t n, const struct page_desc *d, const struct type_info *ti)
{
    struct page_desc t = *d;
    for (uint64_t w = 0; w < d->npages * PAGE_WORDS; w++) {
        if (w % PAGE_WORDS == 0 && w)
            desc_of(c, n + w / PAGE_WORDS, &t);
        int set = bit(t.ptr_bits, w % PAGE_WORDS);
        if (set && w * 8 >= d->obj_bytes) {
            problem(c, &c->r->alloc_errors, "page %llu: pointer bit past the end of the object",
                    (unsigned long long)(n + w / PAGE_WORDS));
            continue;
        }
        if (!ti || w * 8 >= d->obj_bytes)
            continue;
        /* Is word w a pointer field of element w*8 / size? */
        uint64_t in = w * 8 % ti->size;
        int want = 0;
        for (uint32_t k = 0; k < ti->n_ptrs && !want; k++)
            want = ti->ptr_offsets[k] == in;
        if (set != want) {
            problem(c, &c->r->type_errors, "object at page %llu: pointer map of word %llu disagrees with type %s",
                    (unsigned long long)n, (unsigned long long)w, ti->name);
            return;
        }
    }
}

/* Returns the number of pages the object covers (at least 1). */
static uint64_t check_large(struct checker *c, uint64_t n, const struct page_desc *d)
{
    uint64_t np = d->npages;
    if (np == 0 || np > c->w.np - n || d->obj_bytes == 0 || d->obj_bytes > np * PAGE_BYTES) {
        problem(c, &c->r->alloc_errors, "page %llu: large object of %llu pages, %llu bytes does not fit",
                (unsigned long long)n, (unsigned long long)np, (unsigned long long)d->obj_bytes);
        return 1;
    }
    c->r->objects++;
    c->live_bytes += d->obj_bytes;
    for (uint64_t i = 1; i < np; i++) {
        struct page_desc t;
        desc_of(c, n + i, &t);
        if (t.kind != DESC_LARGE_TAIL || t.next != n)
            problem(c, &c->r->alloc_errors, "page %llu: should continue the object at page %llu",
                    (unsigned long long)(n + i), (unsigned long long)n);
    }
    /* Raw bytes (type 0) have no pointer words. */
    struct type_info ti = {.name = "bytes", .size = 1};
    int typed = 1;
    if (d->type != 0 && (types_get(c->w.s, d->type, &ti) != 0 || d->obj_bytes % ti.size)) {
        problem(c, &c->r->type_errors, "page %llu: object of type %u (%llu bytes) disagrees with the catalog",
                (unsigned long long)n, d->type, (unsigned long long)d->obj_bytes);
        typed = 0;
    }
    check_large_bits(c, n, d, typed ? &ti : NULL);
    return np;
}

static uint64_t check_free_run(struct checker *c, uint64_t n, const struct page_desc *d, uint64_t *runs)
{
    uint64_t np = d->npages;
    if (np == 0 || np > c->w.np - n) {
        problem(c, &c->r->alloc_errors, "page %llu: free run of %llu pages does not fit", (unsigned long long)n,
                (unsigned long long)np);
        return 1;
    }
    ++*runs;
    for (uint64_t i = 0; i < np; i++) {
        struct page_desc t;
        desc_of(c, n + i, &t);
        static const uint64_t zero[8];
        int end_ok =
            i == np - 1 && i > 0 ? t.kind == DESC_FREE_RUN_END && t.next == n : (i == 0 || t.kind == DESC_UNUSED);
        if (!end_ok || memcmp(t.ptr_bits, zero, sizeof zero) != 0)
            problem(c, &c->r->alloc_errors, "page %llu: inside a free run but in use or mismarked",
                    (unsigned long long)(n + i));
    }
    /* Free runs are always merged with their neighbours and never touch
     * the high-water mark. */
    struct page_desc after;
    if (n + np == c->w.np) {
        problem(c, &c->r->alloc_errors, "free run at page %llu ends at the high-water mark", (unsigned long long)n);
        return np;
    }
    desc_of(c, n + np, &after);
    if (after.kind == DESC_FREE_RUN)
        problem(c, &c->r->alloc_errors, "free runs at pages %llu and %llu are not merged", (unsigned long long)n,
                (unsigned long long)(n + np));
    return np;
}

static void pass_descriptors(struct checker *c, uint64_t *runs, uint64_t partial_slabs[NCLASSES])
{
    for (uint64_t n = c->w.ds; n < c->w.np && !c->err;) {
        struct page_desc d;
        desc_of(c, n, &d);
        if (n % 1024 == 0)
            progress(c, "descriptors", n - c->w.ds, c->w.np - c->w.ds);
        uint64_t k = 1;
        switch (d.kind) {
        case DESC_SLAB:
            check_slab(c, n, &d);
            if (d.size_class < NCLASSES && d.live < PAGE_BYTES / heap_class_size[d.size_class])
                partial_slabs[d.size_class]++;
            break;
        case DESC_LARGE_HEAD:
            k = check_large(c, n, &d);
            break;
        case DESC_FREE_RUN:
            k = check_free_run(c, n, &d, runs);
            break;
        case DESC_LARGE_TAIL:
            problem(c, &c->r->alloc_errors, "page %llu: continues an object that does not cover it",
                    (unsigned long long)n);
            break;
        default:
            problem(c, &c->r->alloc_errors, "page %llu: below the high-water mark but owned by nothing (leaked)",
                    (unsigned long long)n);
            break;
        }
        c->r->pages_checked += k;
        n += k;
    }
}

/* Walk a list; every member must belong to it; count them. */
static void pass_list(struct checker *c, const char *name, uint64_t head, int kind, int size_class, uint64_t expect)
{
    uint64_t count = 0, prev = 0;
    for (uint64_t n = head; n && !c->err;) {
        struct page_desc d = {0};
        if (in_heap(c, n))
            desc_of(c, n, &d);
        if (!in_heap(c, n) || d.kind != kind || (kind == DESC_SLAB && d.size_class != size_class) || d.prev != prev) {
            problem(c, &c->r->alloc_errors, "%s list: page %llu does not belong (or bad back link)", name,
                    (unsigned long long)n);
            return;
        }
        if (kind == DESC_SLAB && d.live >= PAGE_BYTES / heap_class_size[size_class])
            problem(c, &c->r->alloc_errors, "%s list: page %llu is full", name, (unsigned long long)n);
        if (++count > c->w.np) {
            problem(c, &c->r->alloc_errors, "%s list: cycle", name);
            return;
        }
        prev = n;
        n = d.next;
    }
    if (count != expect && !c->err)
        problem(c, &c->r->alloc_errors, "%s list holds %llu pages, %llu qualify", name, (unsigned long long)count,
                (unsigned long long)expect);
}

static void check_pointer(struct checker *c, uint64_t v, uint64_t n, uint64_t w)
{
    c->r->pointers++;
    int rc = walk_live(&c->w, v);
    if (rc < 0 || rc > 1)
        c->err = c->err ? c->err : rc;
    else if (rc == 0)
        problem(c, &c->r->bad_pointers, "page %llu word %llu: pointer to offset %#llx, not a live object",
                (unsigned long long)n, (unsigned long long)w, (unsigned long long)v);
}

/* A copy of page n: checking its pointers reads other pages through the
 * walker's cache, which may drop the one walk_page returned. */
static void copy_page(struct checker *c, uint64_t n, uint64_t words[PAGE_WORDS])
{
    const unsigned char *pg;
    int rc = c->err ? c->err : walk_page(&c->w, n, &pg);
    if (rc) {
        c->err = rc;
        memset(words, 0, PAGE_BYTES);
    } else {
        memcpy(words, pg, PAGE_BYTES);
    }
}

static void check_free_slots(struct checker *c, uint64_t n, const struct page_desc *d, const uint64_t *words)
{
    /* Free memory is zero: the allocator hands it out unwritten. */
    uint64_t sz = heap_class_size[d->size_class];
    for (uint64_t s = 0; s < PAGE_BYTES / sz; s++) {
        if (bit(d->slot_bits, s))
            continue;
        for (uint64_t b = s * sz / 8; b < (s + 1) * sz / 8; b++) {
            if (words[b]) {
                problem(c, &c->r->alloc_errors, "page %llu: free slot %llu is not zero", (unsigned long long)n,
                        (unsigned long long)s);
                break;
            }
        }
    }
}

static void check_roots(struct checker *c, uint64_t n, const uint64_t *words)
{
    const unsigned char *pg = (const unsigned char *)words;
    for (uint64_t i = 0; i < PAGE_BYTES / LAYOUT_ROOT_ENTRY; i++) {
        const unsigned char *e = pg + i * LAYOUT_ROOT_ENTRY;
        unsigned long long slot = (n - LAYOUT_ROOT_PAGE) * (PAGE_BYTES / LAYOUT_ROOT_ENTRY) + i;
        uint64_t v;
        memcpy(&v, e + LAYOUT_ROOT_NAME, 8);
        if (e[0] == 0) {
            if (v)
                problem(c, &c->r->alloc_errors, "root slot %llu: pointer without a name", slot);
            continue;
        }
        if (memchr(e, 0, LAYOUT_ROOT_NAME) == NULL)
            problem(c, &c->r->alloc_errors, "root slot %llu: name not terminated", slot);
        if (v)
            check_pointer(c, v, n, i * LAYOUT_ROOT_ENTRY / 8 + LAYOUT_ROOT_NAME / 8);
    }
}

static void pass_pointers(struct checker *c)
{
    uint64_t words[PAGE_WORDS];
    for (uint64_t n = c->w.ds; n < c->w.np && !c->err; n++) {
        if (n % 1024 == 0)
            progress(c, "pointers", n - c->w.ds, c->w.np - c->w.ds);
        struct page_desc d;
        desc_of(c, n, &d);
        copy_page(c, n, words);
        for (uint64_t w = 0; w < PAGE_WORDS; w++) {
            if (bit(d.ptr_bits, w) && words[w])
                check_pointer(c, words[w], n, w);
        }
        if (d.kind == DESC_SLAB && d.size_class < NCLASSES)
            check_free_slots(c, n, &d, words);
    }
    for (uint64_t n = LAYOUT_ROOT_PAGE; n < LAYOUT_ROOT_PAGE + LAYOUT_ROOT_PAGES && !c->err; n++) {
        copy_page(c, n, words);
        check_roots(c, n, words);
    }
}

/* Every pass, on a walk the caller set up with WALK_CHECK. */
static int check_passes(struct checker *c)
{
    cairn_check_report *r = c->r;
    const struct superblock *sb = &c->w.sb;
    uint64_t runs = 0, partial[NCLASSES] = {0};
    int rc = pass_lmdb_values(c);
    if (rc)
        return rc;
    if (sb->magic != 0 && !walk_superblock_sound(sb, &c->w.layout))
        problem(c, &r->alloc_errors, "superblock damaged (magic %llx, high-water %llu)", (unsigned long long)sb->magic,
                (unsigned long long)sb->next_page);
    if (walk_superblock_sound(sb, &c->w.layout) && c->w.np > c->w.ds) {
        pass_descriptors(c, &runs, partial);
        for (unsigned k = 0; k < NCLASSES; k++) {
            char name[32];
            snprintf(name, sizeof name, "partial slab (class %u)", heap_class_size[k]);
            pass_list(c, name, sb->partial[k], DESC_SLAB, (int)k, partial[k]);
        }
        pass_list(c, "free run", sb->free_runs, DESC_FREE_RUN, 0, runs);
        if (c->err)
            return c->err;
        if (sb->live_objects != r->objects)
            problem(c, &r->alloc_errors, "superblock counts %llu live objects, pages hold %llu",
                    (unsigned long long)sb->live_objects, (unsigned long long)r->objects);
        if (sb->live_bytes != c->live_bytes)
            problem(c, &r->alloc_errors, "superblock counts %llu live bytes, pages hold %llu",
                    (unsigned long long)sb->live_bytes, (unsigned long long)c->live_bytes);
    }
    pass_pointers(c);
    return c->err;
}

int cairn_check(cairn_store *s, cairn_check_report *r)
{
    if (!s || !r)
        return CAIRN_INVALID;
    if (store_foreign(s))
        return CAIRN_INVALID;
    if (s->snap) { /* a read-only handle shows its snapshot: check that */
        /* One at a time, and not during a refresh: the snapshot's read
         * transaction and decoder serve one thread. */
        pthread_rwlock_wrlock(&s->lmdb_lock);
        int rc = check_snapshot(s->snap, r, NULL);
        pthread_rwlock_unlock(&s->lmdb_lock);
        return rc;
    }
    memset(r, 0, sizeof *r);
    struct checker c = {.r = r};

    /* Hold the transaction slot: nobody writes while we look. */
    cairn_txn self = {.s = s};
    int rc = txn_slot_claim(s, &self);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->ckpt_mutex); /* and no checkpoint in flight */
    pthread_mutex_lock(&s->log_mutex);

    pthread_rwlock_rdlock(&s->lmdb_lock);
    MDB_txn *txn = NULL;
    rc = pagestore_lmdb_is_lost(s->pagestore) ? CAIRN_IOERR : catalog_txn_begin(&s->cat, MDB_RDONLY, &txn);
    if (rc == 0)
        rc = walk_init_store(&c.w, s, txn, WALK_CHECK);
    if (rc == 0)
        rc = check_passes(&c);
    walk_fini(&c.w);
    if (txn)
        mdb_txn_abort(txn);
    pthread_rwlock_unlock(&s->lmdb_lock);

    pthread_mutex_unlock(&s->log_mutex);
    pthread_mutex_unlock(&s->ckpt_mutex);
    txn_slot_release(s);
    if (rc)
        return rc;
    return r->problems ? CAIRN_CORRUPT : CAIRN_OK;
}

/* The snapshot is private to the caller and LMDB's read transaction is
 * stable, so no lock is needed. */
int check_snapshot(struct snapshot *snap, cairn_check_report *r, const struct inspect_hooks *hooks)
{
    if (!snap || !r)
        return CAIRN_INVALID;
    memset(r, 0, sizeof *r);
    struct checker c = {.hooks = hooks, .r = r};
    int rc = walk_init_snapshot(&c.w, snap, WALK_CHECK);
    if (rc == 0)
        rc = check_passes(&c);
    walk_fini(&c.w);
    if (rc)
        return rc;
    return r->problems ? CAIRN_CORRUPT : CAIRN_OK;
}
