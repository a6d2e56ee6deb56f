/*
 * walk.c - objects, pointer words, roots and reachability of a store,
 * read from its committed bytes (see walk.h).
 *
 * Small objects do not record their type on disk: a slab page holds one
 * size class, shared by every type.  Their type is recovered from the
 * pointer bits the allocator set from the layout at allocation: when
 * exactly one registered type (repeated k times, k >= 1, rounded to the
 * page's size class) produces the slot's bits, that is the type.  A slot
 * without pointer bits is raw bytes when no registered type is pointer-
 * free; otherwise it is reported as unknown.  Large objects record their
 * type in their head descriptor.
 *
 * Damaged data never crashes a walk: offsets, run lengths and classes
 * are bounds-checked, and an extent that fails to decode is an error
 * returned to the caller.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "walk.h"

static int bit(const uint64_t *bits, uint64_t i)
{
    return (bits[i / 64] >> (i % 64)) & 1;
}

int walk_committed_extent(const struct extent_source *src, uint64_t e, void *raw)
{
    if (src->snap)
        return snapshot_read_extent(src->snap, e, raw);
    struct pager *p = src->p;
    int in_memory = p && XS_STATE(atomic_load(&p->ext_state[e])) == XS_RESIDENT;
    for (uint64_t i = 0; in_memory && i < PAGES_PER_EXTENT; i++) {
        int rc = pager_read_committed(p, e * PAGES_PER_EXTENT + i, (unsigned char *)raw + i * PAGE_BYTES);
        if (rc < 0)
            return rc;
        in_memory = rc == 0; /* evicted meanwhile: LMDB has the same bytes */
    }
    if (in_memory)
        return 0;
    return replay_lmdb_image(&src->s->cat, src->txn, src->s->dctx, e, raw);
}

int walk_page(struct walk *w, uint64_t n, const unsigned char **out)
{
    if (n >= w->layout.pages)
        return CAIRN_CORRUPT;
    uint64_t e = n / PAGES_PER_EXTENT;
    unsigned slot = e < w->layout.data_start / PAGES_PER_EXTENT
                        ? (unsigned)(e % WALK_CACHE_META)
                        : WALK_CACHE_META + (unsigned)(e % (WALK_CACHE - WALK_CACHE_META));
    if (w->cache[slot].e != e + 1) {
        if (!w->cache[slot].raw && !(w->cache[slot].raw = malloc(BYTES_PER_EXTENT)))
            return ENOMEM;
        w->cache[slot].e = 0;
        int rc = walk_committed_extent(&w->src, e, w->cache[slot].raw);
        if (rc == CAIRN_CORRUPT && (w->flags & WALK_CHECK)) {
            memset(w->cache[slot].raw, 0, BYTES_PER_EXTENT);
            rc = 0;
        }
        if (rc) {
            store_set_error(w->s, "%s: extent %llu (pages %llu..%llu) cannot be read: %s", w->s->path,
                            (unsigned long long)e, (unsigned long long)(e * PAGES_PER_EXTENT),
                            (unsigned long long)(e * PAGES_PER_EXTENT + PAGES_PER_EXTENT - 1), cairn_strerror(rc));
            return rc;
        }
        w->cache[slot].e = e + 1;
    }
    *out = w->cache[slot].raw + (n % PAGES_PER_EXTENT) * PAGE_BYTES;
    return 0;
}

int walk_desc(struct walk *w, uint64_t n, struct page_desc *out)
{
    const unsigned char *pg;
    int rc = walk_page(w, layout_desc_page(n), &pg);
    if (rc == 0)
        memcpy(out, pg + layout_desc_offset(n), sizeof *out);
    return rc;
}

static int walk_init(struct walk *w)
{
    for (uint32_t t = 1; t < w->s->n_types; t++)
        if (w->s->types[t].name && w->s->types[t].n_ptrs == 0)
            w->has_plain_types = 1;
    const unsigned char *pg;
    int rc = walk_page(w, LAYOUT_SUPER_PAGE, &pg);
    if (rc)
        return rc;
    memcpy(&w->sb, pg, sizeof w->sb);
    w->ds = w->layout.data_start;
    w->np = w->ds;
    if (w->sb.magic == 0)
        return 0; /* nothing allocated yet */
    if (!walk_superblock_sound(&w->sb, &w->layout)) {
        if (w->flags & WALK_CHECK)
            return 0;
        store_set_error(w->s, "%s: allocator superblock damaged", w->s->path);
        return CAIRN_CORRUPT;
    }
    w->np = w->sb.next_page;
    if (w->flags & WALK_CHECK)
        return 0;
    w->seen = calloc((w->np - w->ds) * (PAGE_BYTES / 16) / 64 + 1, 8);
    return w->seen ? 0 : ENOMEM;
}

int walk_init_snapshot(struct walk *w, struct snapshot *snap, unsigned flags)
{
    memset(w, 0, sizeof *w);
    w->flags = flags;
    w->s = &snap->st;
    w->snap = snap;
    w->txn = snap->txn;
    w->src = (struct extent_source){.s = w->s, .snap = snap, .txn = snap->txn};
    w->layout = snap->layout;
    return walk_init(w);
}

int walk_init_store(struct walk *w, cairn_store *s, MDB_txn *txn, unsigned flags)
{
    memset(w, 0, sizeof *w);
    w->flags = flags;
    w->s = s;
    w->p = s->pager;
    w->txn = txn;
    w->src = (struct extent_source){.s = s, .p = s->pager, .txn = txn};
    w->layout = s->pager->layout;
    return walk_init(w);
}

void walk_fini(struct walk *w)
{
    for (unsigned i = 0; i < WALK_CACHE; i++)
        free(w->cache[i].raw);
    free(w->seen);
    w->seen = NULL;
}

int walk_open(struct snapshot *snap, struct walk **out)
{
    struct walk *w = malloc(sizeof *w);
    if (!w)
        return ENOMEM;
    int rc = walk_init_snapshot(w, snap, 0);
    if (rc) {
        walk_fini(w);
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

void walk_close(struct walk *w)
{
    if (w) {
        walk_fini(w);
        free(w);
    }
}

int walk_read(struct walk *w, uint64_t off, void *buf, uint64_t len)
{
    unsigned char *to = buf;
    for (uint64_t at = 0; at < len;) {
        const unsigned char *pg;
        uint64_t v = off + at;
        int rc = walk_page(w, v / PAGE_BYTES, &pg);
        if (rc)
            return rc;
        uint64_t chunk = PAGE_BYTES - v % PAGE_BYTES;
        if (chunk > len - at)
            chunk = len - at;
        memcpy(to + at, pg + v % PAGE_BYTES, chunk);
        at += chunk;
    }
    return 0;
}

const char *walk_type_name(struct walk *w, uint32_t t)
{
    if (t == 0)
        return "bytes";
    return t < w->s->n_types ? w->s->types[t].name : NULL;
}

static uint64_t round16(uint64_t n)
{
    return (n + 15) & ~(uint64_t)15;
}

static int class_of(uint64_t bytes)
{
    for (int c = 0; c < NCLASSES; c++)
        if (heap_class_size[c] >= bytes)
            return c;
    return -1;
}

/* Fill in the type of the small object o from its pointer bits. */
static void infer_small_type(struct walk *w, const struct page_desc *d, struct walk_object *o)
{
    uint64_t first = (o->off % PAGE_BYTES) / 8, words = heap_class_size[d->size_class] / 8;
    uint64_t rel[256], nb = 0;
    for (uint64_t i = 0; i < words; i++)
        if (bit(d->ptr_bits, first + i))
            rel[nb++] = i;
    o->type_known = 0;
    if (nb == 0) {
        if (!w->has_plain_types)
            o->type = 0, o->type_known = 1;
        return;
    }
    int found = 0;
    for (uint32_t t = 1; t < w->s->n_types; t++) {
        const struct type_info *ti = &w->s->types[t];
        if (!ti->name || ti->n_ptrs == 0 || nb % ti->n_ptrs)
            continue;
        uint64_t k = nb / ti->n_ptrs;
        if (k > words || class_of(round16(ti->size * k)) != d->size_class)
            continue;
        int match = 1;
        for (uint64_t i = 0; i < nb && match; i++)
            match = rel[i] == (i / ti->n_ptrs) * (ti->size / 8) + ti->ptr_offsets[i % ti->n_ptrs] / 8;
        if (match) {
            if (found++)
                break;
            o->type = t;
            o->bytes = ti->size * k;
        }
    }
    o->type_known = found == 1;
    if (!o->type_known)
        o->bytes = heap_class_size[d->size_class];
}

static void small_object(struct walk *w, uint64_t n, const struct page_desc *d, uint64_t slot, struct walk_object *o)
{
    uint64_t sz = heap_class_size[d->size_class];
    o->off = n * PAGE_BYTES + slot * sz;
    o->bytes = sz;
    o->size_class = d->size_class;
    o->class_bytes = (uint32_t)sz;
    infer_small_type(w, d, o);
}

static void large_object(struct walk *w, uint64_t n, const struct page_desc *d, struct walk_object *o)
{
    o->off = n * PAGE_BYTES;
    o->bytes = d->obj_bytes;
    o->size_class = -1;
    o->class_bytes = 0;
    o->type = d->type;
    o->type_known = walk_type_name(w, d->type) != NULL;
}

static int large_fits(const struct walk *w, uint64_t n, const struct page_desc *d)
{
    return d->npages > 0 && d->npages <= w->np - n && d->obj_bytes > 0 && d->obj_bytes <= d->npages * PAGE_BYTES;
}

/* The descriptor of page n in the walker's cache, or NULL (*rc says why).
 * Valid until the next walk call. */
static const struct page_desc *desc_ref(struct walk *w, uint64_t n, int *rc)
{
    const unsigned char *pg;
    *rc = walk_page(w, layout_desc_page(n), &pg);
    return *rc ? NULL : (const struct page_desc *)(pg + layout_desc_offset(n));
}

/* The live object holding offset v: 1 with *dp the descriptor that
 * describes it (its slab page's, or its large head's; valid until the
 * next walk call) and *start its first byte; 0 if v is in no live object.
 * Per pointer of a check or a mark, so it reads descriptors in place. */
static int live_object(struct walk *w, uint64_t v, const struct page_desc **dp, uint64_t *start)
{
    uint64_t n = v / PAGE_BYTES;
    if (n < w->ds || n >= w->np)
        return 0;
    int rc;
    const struct page_desc *d = desc_ref(w, n, &rc);
    if (!d)
        return rc;
    *start = heap_object_start(d, v);
    if (d->kind == DESC_SLAB && *start) {
        uint64_t slot = (*start % PAGE_BYTES) / heap_class_size[d->size_class];
        *dp = d;
        return slot < PAGE_BYTES / heap_class_size[d->size_class] && bit(d->slot_bits, slot);
    }
    uint64_t head = *start / PAGE_BYTES;
    if (d->kind == DESC_LARGE_TAIL) {
        if (head < w->ds || head >= n)
            return 0;
        if (!(d = desc_ref(w, head, &rc)))
            return rc;
    }
    *dp = d;
    return d->kind == DESC_LARGE_HEAD && large_fits(w, head, d) && v - head * PAGE_BYTES < d->obj_bytes;
}

int walk_live(struct walk *w, uint64_t v)
{
    const struct page_desc *d = NULL;
    uint64_t start = 0;
    return live_object(w, v, &d, &start);
}

int walk_object_at(struct walk *w, uint64_t v, struct walk_object *o)
{
    const struct page_desc *d = NULL;
    uint64_t start = 0;
    int rc = live_object(w, v, &d, &start);
    if (rc != 1)
        return rc;
    if (d->kind == DESC_SLAB)
        small_object(w, start / PAGE_BYTES, d, (start % PAGE_BYTES) / heap_class_size[d->size_class], o);
    else
        large_object(w, start / PAGE_BYTES, d, o);
    return 1;
}

int walk_objects(struct walk *w, walk_object_fn fn, void *arg)
{
    for (uint64_t n = w->ds; n < w->np;) {
        struct page_desc d;
        int rc = walk_desc(w, n, &d);
        if (rc)
            return rc;
        uint64_t step = 1;
        if (d.kind == DESC_SLAB && d.size_class < NCLASSES) {
            uint64_t nslots = PAGE_BYTES / heap_class_size[d.size_class];
            for (uint64_t i = 0; i < nslots; i++) {
                if (!bit(d.slot_bits, i))
                    continue;
                struct walk_object o;
                small_object(w, n, &d, i, &o);
                if ((rc = fn(arg, &o)) != 0)
                    return rc;
            }
        } else if (d.kind == DESC_LARGE_HEAD && large_fits(w, n, &d)) {
            struct walk_object o;
            large_object(w, n, &d, &o);
            if ((rc = fn(arg, &o)) != 0)
                return rc;
            step = d.npages;
        } else if (d.kind == DESC_FREE_RUN && d.npages > 0 && d.npages <= w->np - n) {
            step = d.npages;
        }
        n += step;
    }
    return 0;
}

int walk_words(struct walk *w, const struct walk_object *o, uint64_t max_bytes, walk_word_fn fn, void *arg)
{
    uint64_t len = max_bytes && max_bytes < o->bytes ? max_bytes : o->bytes;
    uint64_t page = UINT64_MAX;
    struct page_desc d;
    for (uint64_t at = 0; at < len; at += 8) {
        uint64_t v = o->off + at, n = v / PAGE_BYTES;
        int rc;
        if (n != page) {
            if ((rc = walk_desc(w, n, &d)) != 0)
                return rc;
            page = n;
        }
        const unsigned char *pg;
        if ((rc = walk_page(w, n, &pg)) != 0)
            return rc;
        uint64_t value;
        memcpy(&value, pg + v % PAGE_BYTES, 8);
        if ((rc = fn(arg, at, value, bit(d.ptr_bits, (v % PAGE_BYTES) / 8))) != 0)
            return rc;
    }
    return 0;
}

int walk_roots(struct walk *w, walk_root_fn fn, void *arg)
{
    for (uint64_t n = LAYOUT_ROOT_PAGE; n < LAYOUT_ROOT_PAGE + LAYOUT_ROOT_PAGES; n++) {
        const unsigned char *pg;
        int rc = walk_page(w, n, &pg);
        if (rc)
            return rc;
        for (uint64_t i = 0; i < PAGE_BYTES / LAYOUT_ROOT_ENTRY; i++) {
            const unsigned char *e = pg + i * LAYOUT_ROOT_ENTRY;
            if (e[0] == 0)
                continue;
            char name[LAYOUT_ROOT_NAME];
            memcpy(name, e, sizeof name);
            name[sizeof name - 1] = 0; /* a damaged name is cut, never overrun */
            uint64_t v;
            memcpy(&v, e + LAYOUT_ROOT_NAME, 8);
            if ((rc = fn(arg, name, v)) != 0)
                return rc;
        }
    }
    return 0;
}

static uint64_t granule(const struct walk *w, uint64_t off)
{
    return (off - w->ds * PAGE_BYTES) / 16;
}

int walk_visit(struct walk *w, uint64_t off)
{
    uint64_t g = granule(w, off);
    if (bit(w->seen, g))
        return 0;
    w->seen[g / 64] |= (uint64_t)1 << (g % 64);
    return 1;
}

int walk_seen(const struct walk *w, uint64_t off)
{
    return bit(w->seen, granule(w, off));
}

struct mark_state {
    struct walk *w;
    uint64_t *stack;
    size_t n, cap;
    uint64_t objects, bytes;
    const char *root;
};

/* Queue the object holding v if it is live and not seen yet. */
static int reach(struct mark_state *m, uint64_t v)
{
    struct walk_object o = {0};
    int rc = v ? walk_object_at(m->w, v, &o) : 0;
    if (rc <= 0)
        return rc;
    if (!walk_visit(m->w, o.off))
        return 0;
    m->objects++;
    m->bytes += o.bytes;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 4096;
        uint64_t *s = realloc(m->stack, cap * sizeof *s);
        if (!s)
            return ENOMEM;
        m->stack = s, m->cap = cap;
    }
    m->stack[m->n++] = o.off;
    return 0;
}

static int mark_root(void *arg, const char *name, uint64_t v)
{
    struct mark_state *m = arg;
    if (m->root && strcmp(m->root, name) != 0)
        return 0;
    return reach(m, v);
}

static int mark_word(void *arg, uint64_t at, uint64_t value, int is_pointer)
{
    (void)at;
    return is_pointer ? reach(arg, value) : 0;
}

int walk_mark(struct walk *w, const char *root, uint64_t *objects, uint64_t *bytes)
{
    struct mark_state m = {.w = w, .root = root};
    int rc = walk_roots(w, mark_root, &m);
    while (rc == 0 && m.n > 0) {
        struct walk_object o;
        rc = walk_object_at(w, m.stack[--m.n], &o);
        if (rc == 1)
            rc = walk_words(w, &o, 0, mark_word, &m);
    }
    free(m.stack);
    *objects = m.objects;
    *bytes = m.bytes;
    return rc;
}
