/*
 * alloc.c - the persistent allocator, and the root directory.
 *
 * All allocator state lives in store pages (layout.h): the superblock
 * (page 1) and one 128-byte descriptor per page.  It is read and written
 * through the client view like any object, so the fault path tracks it,
 * the log records it and abort restores it: after commit or abort there
 * is no leaked and no doubly-allocated object without any allocator-
 * specific undo code.
 *
 * Small objects (up to 2048 bytes) live in slab pages: one size class per
 * page, a slot bitmap in the descriptor, and per class a doubly-linked
 * list of slabs with free slots.  Larger objects get a run of whole pages
 * (first fit over a list of free runs, else the high-water mark).  Freed
 * memory is zeroed, so free slots and free runs are always zero, and the
 * pointer bits of freed words are cleared.
 *
 * Every pointer word of a new object gets its bit in the page's pointer
 * bitmap, from the type's layout; the pager swizzles exactly those words.
 *
 * Locking: alloc_mutex serialises allocator and root updates.  It is held
 * while touching the client view, which is allowed because the fault path
 * never takes it.
 */
#include <errno.h>
#include <string.h>

#include "heap.h"
#include "store_internal.h"

const uint16_t heap_class_size[NCLASSES] = {16,  32,  48,  64,  80,  96,  112, 128,  160,  192, 224,
                                            256, 320, 384, 448, 512, 640, 768, 1024, 1360, 2048};

static struct superblock *super(struct pager *p)
{
    return (struct superblock *)(p->base + LAYOUT_SUPER_PAGE * PAGE_BYTES);
}

static struct page_desc *desc(struct pager *p, uint64_t n)
{
    return (struct page_desc *)(p->base + layout_desc_page(n) * PAGE_BYTES + layout_desc_offset(n));
}

static unsigned class_of(uint64_t bytes)
{
    unsigned c = 0;
    while (heap_class_size[c] < bytes)
        c++;
    return c;
}

static void list_push(struct pager *p, uint64_t *head, uint64_t n)
{
    struct page_desc *d = desc(p, n);
    d->prev = 0;
    d->next = (uint32_t)*head;
    if (*head)
        desc(p, *head)->prev = (uint32_t)n;
    *head = n;
}

static void list_remove(struct pager *p, uint64_t *head, uint64_t n)
{
    struct page_desc *d = desc(p, n);
    if (d->prev)
        desc(p, d->prev)->next = d->next;
    else
        *head = d->next;
    if (d->next)
        desc(p, d->next)->prev = d->prev;
    d->next = d->prev = 0;
}

/* A free run is marked on its first page (FREE_RUN, npages) and, when
 * longer than a page, on its last (FREE_RUN_END, next = first), so that a
 * run being freed finds both neighbours in O(1). */
static void run_mark(struct pager *p, struct superblock *sb, uint64_t n, uint64_t count)
{
    struct page_desc *d = desc(p, n);
    d->kind = DESC_FREE_RUN;
    d->npages = (uint32_t)count;
    if (count > 1) {
        struct page_desc *end = desc(p, n + count - 1);
        end->kind = DESC_FREE_RUN_END;
        end->next = (uint32_t)n;
    }
    list_push(p, &sb->free_runs, n);
}

static uint64_t run_unmark(struct pager *p, struct superblock *sb, uint64_t n)
{
    struct page_desc *d = desc(p, n);
    uint64_t count = d->npages;
    list_remove(p, &sb->free_runs, n);
    if (count > 1)
        memset(desc(p, n + count - 1), 0, sizeof(struct page_desc));
    memset(d, 0, sizeof *d);
    return count;
}

static int take_pages(struct pager *p, struct superblock *sb, uint64_t want, uint64_t *out)
{
    for (uint64_t r = sb->free_runs; r; r = desc(p, r)->next) {
        if (desc(p, r)->npages < want)
            continue;
        uint64_t have = run_unmark(p, sb, r);
        if (have > want)
            run_mark(p, sb, r + want, have - want);
        *out = r;
        return 0;
    }
    if (want > p->layout.pages - sb->next_page)
        return CAIRN_FULL;
    *out = sb->next_page;
    sb->next_page += want;
    return 0;
}

/* Return pages [n, n+count), already zero with clear descriptors: merge
 * with the free runs on both sides, and give the high-water mark back when
 * the run reaches it, so free space never fragments into neighbouring runs. */
static void give_pages(struct pager *p, struct superblock *sb, uint64_t n, uint64_t count)
{
    if (n > p->layout.data_start) {
        struct page_desc *before = desc(p, n - 1);
        uint64_t head = before->kind == DESC_FREE_RUN ? n - 1 : before->kind == DESC_FREE_RUN_END ? before->next : 0;
        if (head && desc(p, head)->kind == DESC_FREE_RUN && head + desc(p, head)->npages == n) {
            count += run_unmark(p, sb, head);
            n = head;
        }
    }
    uint64_t after = n + count;
    if (after < sb->next_page && desc(p, after)->kind == DESC_FREE_RUN)
        count += run_unmark(p, sb, after);
    if (n + count == sb->next_page) {
        sb->next_page = n;
        return;
    }
    run_mark(p, sb, n, count);
}

/* Set the pointer bits of count elements starting at byte off of page n
 * (a large object may cross pages: word w of the object is on page
 * n + w / PAGE_WORDS). */
static void mark_pointers(struct pager *p, uint64_t n, uint64_t off, uint64_t elem_size, const uint64_t *ptr_offsets,
                          uint32_t n_ptrs, size_t count)
{
    for (size_t e = 0; e < count; e++) {
        for (uint32_t i = 0; i < n_ptrs; i++) {
            uint64_t w = (off + e * elem_size + ptr_offsets[i]) / 8;
            struct page_desc *d = desc(p, n + w / PAGE_WORDS);
            w %= PAGE_WORDS;
            d->ptr_bits[w / 64] |= (uint64_t)1 << (w % 64);
        }
    }
}

static void clear_pointers(struct page_desc *d, uint64_t off, uint64_t len)
{
    for (uint64_t w = off / 8; w < (off + len) / 8; w++)
        d->ptr_bits[w / 64] &= ~((uint64_t)1 << (w % 64));
}

static struct superblock *super_ready(struct pager *p)
{
    struct superblock *sb = super(p);
    if (sb->magic != SUPER_MAGIC) {
        sb->magic = SUPER_MAGIC;
        sb->next_page = p->layout.data_start;
    }
    return sb;
}

static int alloc_small(struct pager *p, struct superblock *sb, uint64_t bytes, void **obj, uint64_t *page,
                       uint64_t *off)
{
    unsigned c = class_of(bytes);
    uint64_t sz = heap_class_size[c], nslots = PAGE_BYTES / sz;
    uint64_t n = sb->partial[c];
    if (!n) {
        int rc = take_pages(p, sb, 1, &n);
        if (rc)
            return rc;
        struct page_desc *d = desc(p, n);
        memset(d, 0, sizeof *d);
        d->kind = DESC_SLAB;
        d->size_class = (uint8_t)c;
        list_push(p, &sb->partial[c], n);
    }
    struct page_desc *d = desc(p, n);
    uint64_t slot = 0;
    for (unsigned i = 0; i < 4; i++) {
        if (~d->slot_bits[i]) {
            slot = i * 64 + (uint64_t)__builtin_ctzll(~d->slot_bits[i]);
            break;
        }
    }
    d->slot_bits[slot / 64] |= (uint64_t)1 << (slot % 64);
    if (++d->live == nslots)
        list_remove(p, &sb->partial[c], n);
    *page = n;
    *off = slot * sz;
    *obj = p->base + n * PAGE_BYTES + slot * sz;
    memset(*obj, 0, sz); /* free slots are zero already; this keeps the promise even if not */
    return 0;
}

int alloc_object(cairn_txn *t, cairn_type type, uint64_t elem_size, const uint64_t *ptr_offsets, uint32_t n_ptrs,
                 size_t count, void **out)
{
    cairn_store *s = t->s;
    struct pager *p = s->pager;
    if (count == 0 || elem_size == 0 || count > UINT64_MAX / elem_size)
        return CAIRN_INVALID;
    uint64_t bytes = (elem_size * count + 15) & ~(uint64_t)15;
    if (bytes < elem_size * count || bytes / PAGE_BYTES >= p->layout.pages) {
        store_set_error(s, "allocation of %zu x %llu bytes: larger than the store", count,
                        (unsigned long long)elem_size);
        return CAIRN_FULL;
    }
    void *obj;
    uint64_t n, off = 0, counted = elem_size * count;
    int rc;
    pthread_mutex_lock(&s->alloc_mutex);
    struct superblock *sb = super_ready(p);
    if (bytes <= SMALL_MAX) {
        rc = alloc_small(p, sb, bytes, &obj, &n, &off);
        counted = heap_class_size[class_of(bytes)]; /* freed at that size too */
    } else {
        uint64_t np = (bytes + PAGE_BYTES - 1) / PAGE_BYTES;
        rc = take_pages(p, sb, np, &n);
        if (rc == 0) {
            struct page_desc *d = desc(p, n);
            memset(d, 0, sizeof *d);
            d->kind = DESC_LARGE_HEAD;
            d->npages = (uint32_t)np;
            d->type = type;
            d->obj_bytes = elem_size * count;
            for (uint64_t i = 1; i < np; i++) {
                struct page_desc *tail = desc(p, n + i);
                memset(tail, 0, sizeof *tail);
                tail->kind = DESC_LARGE_TAIL;
                tail->next = (uint32_t)n;
            }
            obj = p->base + n * PAGE_BYTES;
        }
    }
    if (rc == 0) {
        mark_pointers(p, n, off, elem_size, ptr_offsets, n_ptrs, count);
        sb->live_objects++;
        sb->live_bytes += counted;
    }
    pthread_mutex_unlock(&s->alloc_mutex);
    if (rc == CAIRN_FULL)
        store_set_error(s, "allocation of %llu bytes: store address range is full",
                        (unsigned long long)(elem_size * count));
    if (rc == 0)
        *out = obj; /* may fault: out can be store memory, and no lock is held */
    return rc;
}

int alloc_free(cairn_txn *t, void *obj)
{
    cairn_store *s = t->s;
    struct pager *p = s->pager;
    uintptr_t a = (uintptr_t)obj, b = (uintptr_t)p->base;
    if (!obj)
        return 0;
    if (a < b + p->layout.data_start * PAGE_BYTES || a >= b + p->bytes) {
        store_set_error(s, "free(%p): not an object of this store", obj);
        return CAIRN_INVALID;
    }
    uint64_t n = (a - b) / PAGE_BYTES, off = (a - b) % PAGE_BYTES;
    int rc = CAIRN_INVALID;
    pthread_mutex_lock(&s->alloc_mutex);
    struct superblock *sb = super_ready(p);
    if (n >= sb->next_page)
        goto out;
    struct page_desc *d = desc(p, n);
    if (d->kind == DESC_SLAB) {
        uint64_t sz = heap_class_size[d->size_class], nslots = PAGE_BYTES / sz, slot = off / sz;
        if (off % sz || slot >= nslots || !(d->slot_bits[slot / 64] & ((uint64_t)1 << (slot % 64))))
            goto out;
        memset(obj, 0, sz);
        clear_pointers(d, off, sz);
        d->slot_bits[slot / 64] &= ~((uint64_t)1 << (slot % 64));
        if (d->live-- == nslots)
            list_push(p, &sb->partial[d->size_class], n);
        if (d->live == 0) {
            list_remove(p, &sb->partial[d->size_class], n);
            memset(d, 0, sizeof *d);
            give_pages(p, sb, n, 1);
        }
        sb->live_objects--;
        sb->live_bytes -= sz; /* slab objects count at their class size */
        rc = 0;
    } else if (d->kind == DESC_LARGE_HEAD && off == 0) {
        uint64_t np = d->npages, bytes = d->obj_bytes;
        memset(obj, 0, (bytes + 7) & ~(uint64_t)7);
        for (uint64_t i = 0; i < np; i++)
            memset(desc(p, n + i), 0, sizeof(struct page_desc));
        give_pages(p, sb, n, np);
        sb->live_objects--;
        sb->live_bytes -= bytes;
        rc = 0;
    }
out:
    pthread_mutex_unlock(&s->alloc_mutex);
    if (rc)
        store_set_error(s, "free(%p): not the start of a live object", obj);
    return rc;
}

/* For messages at commit (log mutex held): read through the private view
 * only, so this never faults. */
uintptr_t alloc_object_start(cairn_store *s, uintptr_t addr)
{
    struct pager *p = s->pager;
    uintptr_t b = (uintptr_t)p->base;
    uint64_t n = (addr - b) / PAGE_BYTES, d = layout_desc_page(n);
    if (n < p->layout.data_start || n >= p->layout.pages || fault_hold_page(p, d) != 0)
        return 0;
    struct page_desc desc;
    memcpy(&desc, p->priv + d * PAGE_BYTES + layout_desc_offset(n), sizeof desc);
    fault_unlock_page(p, d);
    uint64_t off = heap_object_start(&desc, addr - b);
    return off ? b + off : 0;
}

/* ---- public entry points ---- */

static int check_txn(cairn_txn *t)
{
    if (!t)
        return CAIRN_INVALID;
    cairn_store *s = t->s;
    pthread_mutex_lock(&s->txn_mutex);
    int ok = s->txn == t;
    pthread_mutex_unlock(&s->txn_mutex);
    return ok ? 0 : CAIRN_INVALID;
}

int cairn_alloc(cairn_txn *t, cairn_type type, size_t count, void **out)
{
    int rc = check_txn(t);
    if (rc)
        return rc;
    if (!out)
        return CAIRN_INVALID;
    if (type == CAIRN_TYPE_BYTES)
        return alloc_object(t, type, 1, NULL, 0, count, out);
    struct type_info ti;
    rc = types_get(t->s, type, &ti);
    if (rc)
        return rc;
    return alloc_object(t, type, ti.size, ti.ptr_offsets, ti.n_ptrs, count, out);
}

int cairn_alloc_bytes(cairn_txn *t, size_t size, void **out)
{
    return cairn_alloc(t, CAIRN_TYPE_BYTES, size, out);
}

int cairn_free(cairn_txn *t, void *obj)
{
    int rc = check_txn(t);
    return rc ? rc : alloc_free(t, obj);
}

/* ---- roots: pages 2..17, entries of name[56] + pointer ---- */

/* A root entry (cairn_format.h) as the client view shows it: swizzled. */
struct root_slot {
    char name[LAYOUT_ROOT_NAME];
    void *ptr;
};
_Static_assert(sizeof(struct root_slot) == sizeof(struct root_entry), "root entry");

static struct root_slot *roots(struct pager *p)
{
    return (struct root_slot *)(p->base + LAYOUT_ROOT_PAGE * PAGE_BYTES);
}

static int root_name_ok(const char *name)
{
    size_t n = name ? strnlen(name, LAYOUT_ROOT_NAME) : 0;
    return n > 0 && n < LAYOUT_ROOT_NAME;
}

int cairn_root_set(cairn_txn *t, const char *name, void *obj)
{
    int rc = check_txn(t);
    if (rc)
        return rc;
    if (!root_name_ok(name))
        return CAIRN_INVALID;
    cairn_store *s = t->s;
    struct pager *p = s->pager;
    uintptr_t a = (uintptr_t)obj, b = (uintptr_t)p->base;
    if (obj && (a < b + p->layout.data_start * PAGE_BYTES || a >= b + p->bytes)) {
        store_set_error(s, "root \"%s\": %p is outside the store", name, obj);
        return CAIRN_EXTERNAL_POINTER;
    }
    struct root_slot *r = roots(p), *slot = NULL;
    rc = obj ? CAIRN_FULL : 0; /* removing a name that is not there: nothing to do */
    pthread_mutex_lock(&s->alloc_mutex);
    for (size_t i = 0; i < LAYOUT_ROOTS; i++) {
        if (r[i].name[0] == 0) {
            if (!slot)
                slot = &r[i];
        } else if (strncmp(r[i].name, name, LAYOUT_ROOT_NAME) == 0) {
            slot = &r[i];
            break;
        }
    }
    if (slot) {
        if (obj) {
            if (strncmp(slot->name, name, LAYOUT_ROOT_NAME) != 0) {
                memset(slot->name, 0, sizeof slot->name);
                strcpy(slot->name, name);
            }
            slot->ptr = obj;
        } else if (slot->name[0]) {
            memset(slot, 0, sizeof *slot);
        }
        rc = 0;
    }
    pthread_mutex_unlock(&s->alloc_mutex);
    return rc;
}

int cairn_root_get(cairn_store *s, const char *name, void **out)
{
    if (!s || !out || !root_name_ok(name))
        return CAIRN_INVALID;
    const struct root_slot *r = roots(s->pager);
    for (size_t i = 0; i < LAYOUT_ROOTS; i++) {
        if (r[i].name[0] && strncmp(r[i].name, name, LAYOUT_ROOT_NAME) == 0) {
            *out = r[i].ptr;
            return 0;
        }
    }
    return CAIRN_NOT_FOUND;
}
