/*
 * pager.c - one store's address range, its views and page states.
 *
 * Design note
 * -----------
 * Memory.  All pages of a store live in one memfd of P pages, mapped
 * twice, plus a second memfd:
 *   client view   the address range the application sees, placed with
 *                 MAP_FIXED over our own PROT_NONE reservation (the Linux
 *                 form of replacing a placeholder: the range is never free
 *                 for another mapping to take).  It is mapped PROT_NONE;
 *                 the fault backend's setup makes every access trap
 *                 (userfaultfd: read-write, registered MISSING|MINOR|WP;
 *                 mprotect: left PROT_NONE).
 *   private view  the same memfd, read-write, never registered: the
 *                 library's own reads and writes of pages (pointer maps,
 *                 before-images, commit, abort, checkpoint) go through
 *                 here, so they never fault.
 *   shadow        a second memfd holding, for each page written in the
 *                 open transaction, its before-image at the same offset.
 * Page n is at base + n*4096 in the client view, priv + n*4096 in the
 * private view and shadow + n*4096 in the shadow.  All three are marked
 * MADV_DONTFORK: a forked child has none of them.
 *
 * Loading (fault.c) decodes and swizzles an extent in a load slot's
 * buffer and pwrites it into the memfd (not through the private view: the
 * pages then count once in RSS); only then does the backend publish it in
 * the client view.  How pages are published and protected is the
 * backend's: p->ops (pager.h) is one of two tables, chosen in pager_open,
 * and no other code asks which.
 *
 * States.  Per extent (ext_state, one byte):
 *
 *   ABSENT --load_extent (CAS)--> LOADING --ops->publish--> RESIDENT
 *     ^ ^                            |                       |   ^
 *     | +------- load failed --------+      clock_step (CAS) |   | busy, pinned,
 *     |                                                      v   | or no punch
 *     +----- punched, all page locks held (clock_step) --- EVICTING
 *
 * Flags beside the state: XS_REF (loaded or touched since the clock hand
 * passed; clock_step clears it and calls ops->sample), XS_WRITABLE
 * (mprotect backend only: the extent is mapped read-write).
 * Per page (page_state, one byte of flags):
 *      clean --first write (ops->make_writable)--> DIRTY
 *      DIRTY --commit (pager_txn_committed)--> UNFLUSHED, write-protected
 *      DIRTY --abort (pager_txn_rolled_back)--> previous flags, bytes restored
 *      UNFLUSHED --checkpoint (pager_checkpoint_done; a page committed
 *          again while the checkpoint ran stays UNFLUSHED)--> clean
 * A page can be DIRTY|UNFLUSHED: written again before its last commit
 * reached LMDB; the checkpoint then takes its before-image, which is the
 * committed state.
 *
 * Invariants.
 *  1. A page is visible in the client view only when its extent is
 *     RESIDENT (or EVICTING, until the punch), and then it holds the
 *     complete, swizzled page.
 *  2. A page is writable in the client view only if it is DIRTY (under
 *     mprotect: only if its extent has XS_WRITABLE, and then every page
 *     of the extent is DIRTY).
 *  3. A DIRTY page's before-image is in the shadow, taken before the page
 *     became writable - or, for a page that was PS_ZERO then, the hole
 *     its shadow page is (a page's shadow is a hole while it is not
 *     DIRTY: forget_before_images punches it).
 *  7. A page is PS_ZERO only if it holds zeros and its committed state
 *     is zeros: set when its extent loads as never written, cleared at
 *     its first write and at every other load.  An extent that is not
 *     resident is a hole in the memfd (evict.c, a failed load), so a
 *     never-written one loads with fallocate, no copy.
 *  4. The bytes of a page that is not DIRTY in the private view are its
 *     committed state.
 *  5. An UNFLUSHED or DIRTY page is never dropped from memory; neither is
 *     an extent pinned by cairn_prefault, nor extents 0 and 1.
 *  6. Whoever reads a page through the private view holds its page lock
 *     with its extent RESIDENT or EVICTING (fault_hold_page); the evictor
 *     punches only with all of the extent's page locks held, so no reader
 *     copies a hole.
 *
 * Locks.  The fault path takes none (see fault.c).  The functions below
 * that run at commit, abort and checkpoint are called with the store's
 * log mutex held and never touch the client view, so they never fault
 * while holding it.  The lock order is stated once, beside the store
 * handle (store/store_internal.h); the page lock (PS_LOCK, a spin bit
 * held for one copy) is its innermost.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pager.h"

static void *map_anon(size_t len)
{
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    madvise(m, len, MADV_DONTFORK);
    return m;
}

/* The fault backend: cairn_options.backend if not AUTO, else
 * CAIRN_FAULT_BACKEND=uffd|mprotect (the store passes it as requested),
 * else userfaultfd if the kernel grants
 * it, else mprotect.  An explicit userfaultfd that fails is
 * CAIRN_UNSUPPORTED, not a fallback. */
static int open_backend(struct pager *p, int requested)
{
    int rc;
    if (requested != CAIRN_BACKEND_MPROTECT) {
        rc = pager_backend_uffd.setup(p);
        if (rc == 0) {
            p->ops = &pager_backend_uffd;
            return 0;
        }
        if (requested == CAIRN_BACKEND_UFFD)
            return CAIRN_UNSUPPORTED;
    }
    rc = pager_backend_mprotect.setup(p);
    if (rc == 0)
        p->ops = &pager_backend_mprotect;
    return rc;
}

/* The client view, PROT_NONE until the backend's setup. */
static int map_client_view(struct pager *p)
{
    /* Reserve, then replace the reservation in place with the memfd. */
    void *res = mmap(NULL, p->bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (res == MAP_FAILED)
        return errno;
    void *client = mmap(res, p->bytes, PROT_NONE, MAP_SHARED | MAP_FIXED | MAP_NORESERVE, p->memfd, 0);
    if (client == MAP_FAILED) {
        int rc = errno;
        munmap(res, p->bytes);
        return rc;
    }
    p->base = client;
    madvise(p->base, p->bytes, MADV_DONTFORK);
    return 0;
}

int pager_open(struct pager **out, const struct pager_config *cfg)
{
    struct pager *p = calloc(1, sizeof *p);
    if (p)
        pthread_mutex_init(&p->ckpt_lock, NULL);
    if (!p)
        return ENOMEM;
    int rc;
    layout_init(&p->layout, cfg->pages);
    p->bytes = cfg->pages * PAGE_BYTES;
    p->memfd = p->shadow_fd = p->uffd = -1;
    p->pid = getpid();
    p->pagestore = cfg->pagestore;
    p->checksum_seed = cfg->checksum_seed;
    p->store = cfg->store;
    p->fault_error = cfg->fault_error;
    p->fault_error_arg = cfg->fault_error_arg;
    p->name = cfg->name;

    p->memfd = memfd_create("cairn-pages", MFD_CLOEXEC);
    p->shadow_fd = memfd_create("cairn-shadow", MFD_CLOEXEC);
    if (p->memfd < 0 || p->shadow_fd < 0 || ftruncate(p->memfd, (off_t)p->bytes) != 0 ||
        ftruncate(p->shadow_fd, (off_t)p->bytes) != 0) {
        rc = errno;
        goto fail;
    }
    p->priv = mmap(NULL, p->bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, p->memfd, 0);
    p->shadow = mmap(NULL, p->bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, p->shadow_fd, 0);
    if (p->priv == MAP_FAILED || p->shadow == MAP_FAILED) {
        rc = errno;
        goto fail;
    }
    madvise(p->priv, p->bytes, MADV_DONTFORK);
    madvise(p->shadow, p->bytes, MADV_DONTFORK);

    p->ext_state = map_anon(cfg->pages / PAGES_PER_EXTENT);
    p->ext_pins = map_anon(cfg->pages / PAGES_PER_EXTENT * sizeof(uint32_t));
    /* Kept only so that bench/evict_policy can measure the clock against
     * its alternative. */
    p->evict_random = cfg->evict_random;
    if (cfg->cache_bytes) {
        /* At least 8 extents besides the two never evicted. */
        p->budget_extents = cfg->cache_bytes / BYTES_PER_EXTENT;
        if (p->budget_extents < 10)
            p->budget_extents = 10;
    }
    p->page_state = map_anon(cfg->pages);
    p->dirty = map_anon(cfg->pages * sizeof(uint32_t));
    if (!p->ext_state || !p->ext_pins || !p->page_state || !p->dirty) {
        rc = ENOMEM;
        goto fail;
    }

    int nslots = 0;
    for (int i = 0; i < PAGER_SLOTS; i++, nslots++) {
        rc = p->pagestore->ops->reader_open(p->pagestore, &p->slots[i].reader);
        if (rc == CAIRN_FULL && i > 0) {
            rc = 0;
            break; /* the page store's readers are all taken */
        }
        if (rc)
            goto fail;
        p->slots[i].dctx = ZSTD_createDCtx();
        p->slots[i].buf = aligned_alloc(PAGE_BYTES, BYTES_PER_EXTENT);
        if (!p->slots[i].dctx || !p->slots[i].buf) {
            rc = ENOMEM;
            goto fail;
        }
    }
    p->slots_free = nslots == 32 ? 0xffffffffu : (1u << nslots) - 1;

    rc = map_client_view(p);
    if (rc)
        goto fail;
    p->publish_page_only = cfg->publish_page_only; /* read by the uffd backend's publish */
    rc = open_backend(p, cfg->backend);
    if (rc)
        goto fail;

    rc = signal_register(p);
    if (rc)
        goto fail;
    *out = p;
    return 0;
fail:
    pager_close(p);
    return rc;
}

void pager_close(struct pager *p)
{
    if (!p)
        return;
    signal_unregister(p);
    if (p->ops)
        p->ops->teardown(p);
    if (p->base)
        munmap(p->base, p->bytes);
    if (p->priv && p->priv != MAP_FAILED)
        munmap(p->priv, p->bytes);
    if (p->shadow && p->shadow != MAP_FAILED)
        munmap(p->shadow, p->bytes);
    if (p->ext_state)
        munmap((void *)p->ext_state, p->layout.pages / PAGES_PER_EXTENT);
    if (p->page_state)
        munmap((void *)p->page_state, p->layout.pages);
    if (p->ext_pins)
        munmap((void *)p->ext_pins, p->layout.pages / PAGES_PER_EXTENT * sizeof(uint32_t));
    if (p->dirty)
        munmap(p->dirty, p->layout.pages * sizeof(uint32_t));
    for (int i = 0; i < PAGER_SLOTS; i++) {
        if (p->slots[i].reader)
            p->pagestore->ops->reader_close(p->slots[i].reader);
        ZSTD_freeDCtx(p->slots[i].dctx);
        free(p->slots[i].buf);
    }
    if (p->memfd >= 0)
        close(p->memfd);
    if (p->shadow_fd >= 0)
        close(p->shadow_fd);
    free(p->unflushed);
    free(p->saved_key);
    free(p->saved_at);
    free(p->saved_img);
    pthread_mutex_destroy(&p->ckpt_lock);
    free(p);
}

int pager_backend(const struct pager *p)
{
    return p->ops->id;
}

/* Load extent e if absent, in the caller's (non-signal) context. */
static int ensure_loaded(struct pager *p, uint64_t e)
{
    uint8_t st = atomic_load_explicit(&p->ext_state[e], memory_order_acquire);
    if (XS_STATE(st) == XS_RESIDENT)
        return 0;
    atomic_fetch_add_explicit(&p->faults_read, 1, memory_order_relaxed);
    return fault_load_extent(p, e);
}

static int range_pages(struct pager *p, const void *addr, size_t len, uint64_t *first, uint64_t *last)
{
    uintptr_t a = (uintptr_t)addr, b = (uintptr_t)p->base;
    if (len == 0)
        return 1;
    if (a < b || a - b >= p->bytes || len > p->bytes - (a - b))
        return CAIRN_EXTERNAL_POINTER;
    *first = (a - b) / PAGE_BYTES;
    *last = (a - b + len - 1) / PAGE_BYTES;
    return 0;
}

static void unpin(struct pager *p, uint64_t first, uint64_t last)
{
    for (uint64_t e = first / PAGES_PER_EXTENT; e <= last / PAGES_PER_EXTENT; e++) {
        uint32_t v = atomic_load(&p->ext_pins[e]);
        while (v && !atomic_compare_exchange_weak(&p->ext_pins[e], &v, v - 1))
            ;
    }
}

int pager_prefault(struct pager *p, const void *addr, size_t len, int for_write)
{
    uint64_t first, last;
    int rc = range_pages(p, addr, len, &first, &last);
    if (rc)
        return rc < 0 ? rc : 0;
    if (for_write && !atomic_load(&p->txn_open))
        return CAIRN_INVALID;
    /* Pin first, so that what we load stays until cairn_release. */
    for (uint64_t e = first / PAGES_PER_EXTENT; e <= last / PAGES_PER_EXTENT; e++)
        atomic_fetch_add(&p->ext_pins[e], 1);
    for (uint64_t n = first; n <= last; n++) {
        rc = ensure_loaded(p, n / PAGES_PER_EXTENT);
        if (rc == 0 && for_write)
            rc = fault_make_writable(p, n);
        if (rc) {
            unpin(p, first, last);
            return rc;
        }
    }
    return 0;
}

int pager_release(struct pager *p, const void *addr, size_t len)
{
    uint64_t first, last;
    int rc = range_pages(p, addr, len, &first, &last);
    if (rc)
        return rc < 0 ? rc : 0;
    unpin(p, first, last);
    if (p->budget_extents)
        evict_for_room(p, UINT64_MAX);
    return 0;
}

void pager_txn_begin(struct pager *p)
{
    atomic_store(&p->ndirty, 0);
    atomic_store_explicit(&p->txn_open, 1, memory_order_release);
}

/* ---- the images a checkpoint in flight reads (under ckpt_lock) ---- */

static size_t saved_slot(const struct pager *p, uint64_t n)
{
    size_t mask = p->saved_slots - 1, i = (size_t)(n * 0x9E3779B97F4A7C15ull >> 32) & mask;
    while (p->saved_key[i] != UINT32_MAX && p->saved_key[i] != n)
        i = (i + 1) & mask;
    return i;
}

/* Page n's image as of the checkpoint's start, if a commit saved it. */
static const unsigned char *saved_image(const struct pager *p, uint64_t n)
{
    if (!p->n_saved)
        return NULL;
    size_t i = saved_slot(p, n);
    return p->saved_key[i] == n ? p->saved_img + (size_t)p->saved_at[i] * PAGE_BYTES : NULL;
}

/* Room for `more` saved images, so that saving cannot fail at commit. */
static int reserve_saved(struct pager *p, size_t more)
{
    size_t need = p->n_saved + more;
    if (need > p->cap_saved) {
        size_t cap = p->cap_saved ? p->cap_saved : 64;
        while (cap < need)
            cap *= 2;
        unsigned char *img = realloc(p->saved_img, cap * PAGE_BYTES);
        if (!img)
            return ENOMEM;
        p->saved_img = img;
        p->cap_saved = cap;
    }
    if (2 * need >= p->saved_slots) {
        size_t slots = p->saved_slots ? p->saved_slots : 256;
        while (2 * need >= slots)
            slots *= 2;
        uint32_t *key = malloc(slots * sizeof *key), *at = malloc(slots * sizeof *at);
        if (!key || !at) {
            free(key);
            free(at);
            return ENOMEM;
        }
        memset(key, 0xff, slots * sizeof *key);
        uint32_t *old_key = p->saved_key, *old_at = p->saved_at;
        size_t old_slots = p->saved_slots;
        p->saved_key = key;
        p->saved_at = at;
        p->saved_slots = slots;
        for (size_t i = 0; i < old_slots; i++)
            if (old_key[i] != UINT32_MAX) {
                size_t j = saved_slot(p, old_key[i]);
                key[j] = old_key[i];
                at[j] = old_at[i];
            }
        free(old_key);
        free(old_at);
    }
    return 0;
}

/* Commit, before the before-images go: keep the committed state of every
 * page written that the checkpoint in flight has not got saved yet. */
static void save_for_checkpoint(struct pager *p)
{
    pthread_mutex_lock(&p->ckpt_lock);
    uint64_t nd = atomic_load(&p->ndirty);
    for (uint64_t k = 0; k < nd; k++) {
        uint64_t n = p->dirty[k];
        size_t i = saved_slot(p, n);
        if (p->saved_key[i] == n)
            continue;
        p->saved_key[i] = (uint32_t)n;
        p->saved_at[i] = (uint32_t)p->n_saved;
        /* The before-image: the shadow page, a hole reading as zeros for a
         * page that was PS_ZERO. */
        memcpy(p->saved_img + p->n_saved * PAGE_BYTES, p->shadow + n * PAGE_BYTES, PAGE_BYTES);
        p->n_saved++;
    }
    pthread_mutex_unlock(&p->ckpt_lock);
}

void pager_checkpoint_begin(struct pager *p)
{
    pthread_mutex_lock(&p->ckpt_lock);
    p->ckpt_active = 1;
    pthread_mutex_unlock(&p->ckpt_lock);
}

void pager_checkpoint_done(struct pager *p, size_t n)
{
    pthread_mutex_lock(&p->ckpt_lock);
    /* A page committed again while the checkpoint ran has changes LMDB
     * does not hold: it stays unflushed (and in the list, once). */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t page = p->unflushed[i];
        if (saved_image(p, page))
            p->unflushed[kept++] = page;
        else
            atomic_fetch_and(&p->page_state[page], (uint8_t)~PS_UNFLUSHED);
    }
    if (n) /* unflushed is NULL until the first commit */
        memmove(p->unflushed + kept, p->unflushed + n, (p->n_unflushed - n) * sizeof *p->unflushed);
    p->n_unflushed -= n - kept;
    p->ckpt_active = 0;
    /* The images go with the checkpoint: what it held stays bounded by the
     * pages committed while it ran. */
    free(p->saved_key);
    free(p->saved_at);
    free(p->saved_img);
    p->saved_key = p->saved_at = NULL;
    p->saved_img = NULL;
    p->saved_slots = p->n_saved = p->cap_saved = 0;
    pthread_mutex_unlock(&p->ckpt_lock);
    /* What was held back for want of a checkpoint may go now. */
    if (p->budget_extents)
        evict_for_room(p, UINT64_MAX);
}

int pager_reserve_unflushed(struct pager *p)
{
    uint64_t nd = atomic_load(&p->ndirty);
    if (p->ckpt_active) { /* set and cleared under the log mutex, which we hold */
        pthread_mutex_lock(&p->ckpt_lock);
        int rc = reserve_saved(p, nd);
        pthread_mutex_unlock(&p->ckpt_lock);
        if (rc)
            return rc;
    }
    size_t need = p->n_unflushed + nd;
    if (need <= p->cap_unflushed)
        return 0;
    size_t cap = p->cap_unflushed ? p->cap_unflushed : 1024;
    while (cap < need)
        cap *= 2;
    uint32_t *u = realloc(p->unflushed, cap * sizeof *u);
    if (!u)
        return ENOMEM;
    p->unflushed = u;
    p->cap_unflushed = cap;
    return 0;
}

/* Write-protect the pages written in the transaction again, coalescing
 * neighbours into one call. */
static int protect_dirty(struct pager *p)
{
    uint64_t nd = atomic_load(&p->ndirty);
    int rc = 0;
    for (uint64_t i = 0; i < nd;) {
        uint64_t n = p->dirty[i], run = 1;
        while (i + run < nd && p->dirty[i + run] == n + run)
            run++;
        int r = p->ops->write_protect(p, n, run);
        rc = rc ? rc : r;
        i += run;
    }
    return rc;
}

static void forget_before_images(struct pager *p)
{
    uint64_t nd = atomic_load(&p->ndirty), lo = UINT64_MAX, hi = 0;
    for (uint64_t i = 0; i < nd; i++) {
        lo = p->dirty[i] < lo ? p->dirty[i] : lo;
        hi = p->dirty[i] > hi ? p->dirty[i] : hi;
    }
    if (nd)
        fallocate(p->shadow_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(lo * PAGE_BYTES),
                  (off_t)((hi - lo + 1) * PAGE_BYTES));
    atomic_store(&p->ndirty, 0);
    atomic_store_explicit(&p->txn_open, 0, memory_order_release);
}

int pager_txn_committed(struct pager *p)
{
    /* Protection first: once txn_open drops, a stray write must trap. */
    int rc = protect_dirty(p);
    /* Before a page's before-image goes and its new bytes count as
     * committed, a checkpoint in flight gets the old state. */
    if (p->ckpt_active)
        save_for_checkpoint(p);
    uint64_t nd = atomic_load(&p->ndirty);
    for (uint64_t i = 0; i < nd; i++) {
        uint64_t n = p->dirty[i];
        uint8_t old = atomic_fetch_or(&p->page_state[n], PS_UNFLUSHED);
        atomic_fetch_and(&p->page_state[n], (uint8_t)~PS_DIRTY);
        if (!(old & PS_UNFLUSHED))
            p->unflushed[p->n_unflushed++] = (uint32_t)n;
    }
    forget_before_images(p);
    return rc;
}

void pager_txn_rolled_back(struct pager *p)
{
    uint64_t nd = atomic_load(&p->ndirty);
    for (uint64_t i = 0; i < nd; i++) {
        uint64_t n = p->dirty[i];
        memcpy(p->priv + n * PAGE_BYTES, p->shadow + n * PAGE_BYTES, PAGE_BYTES);
    }
    protect_dirty(p);
    /* A checkpoint in flight may be copying a before-image as the
     * committed state: not while it goes. */
    if (p->ckpt_active)
        pthread_mutex_lock(&p->ckpt_lock);
    for (uint64_t i = 0; i < nd; i++)
        atomic_fetch_and(&p->page_state[p->dirty[i]], (uint8_t)~PS_DIRTY);
    forget_before_images(p);
    if (p->ckpt_active)
        pthread_mutex_unlock(&p->ckpt_lock);
    if (p->budget_extents)
        evict_for_room(p, UINT64_MAX);
}

/* Which state of a page to read: as it is now (the open transaction's
 * writes included), as of the last commit, or as of the start of the
 * checkpoint in flight (caller holds ckpt_lock). */
enum page_state_of { NOW, COMMITTED, CHECKPOINTED };

/* The pointer map of page n in the state `of`, from its descriptor page
 * in that state. */
static int ptr_map_of(struct pager *p, uint64_t n, enum page_state_of of, uint64_t map[PAGE_WORDS / 64])
{
    if (n < p->layout.data_start) {
        swizzle_ptr_map(p, n, NULL, map);
        return 0;
    }
    uint64_t d = layout_desc_page(n);
    const unsigned char *saved = of == CHECKPOINTED ? saved_image(p, d) : NULL;
    if (saved) {
        const struct page_desc *desc = (const struct page_desc *)(saved + layout_desc_offset(n));
        memcpy(map, desc->ptr_bits, sizeof desc->ptr_bits);
        return 0;
    }
    int rc = fault_hold_page(p, d);
    if (rc)
        return rc;
    int dirty = atomic_load(&p->page_state[d]) & PS_DIRTY;
    swizzle_ptr_map(p, n, of != NOW && dirty ? p->shadow : p->priv, map);
    fault_unlock_page(p, d);
    return 0;
}

static int read_unswizzled(struct pager *p, uint64_t n, enum page_state_of of, void *out)
{
    uint64_t map[PAGE_WORDS / 64];
    int rc = ptr_map_of(p, n, of, map);
    if (rc)
        return rc;
    const unsigned char *saved = of == CHECKPOINTED ? saved_image(p, n) : NULL;
    if (saved) {
        memcpy(out, saved, PAGE_BYTES);
    } else {
        fault_lock_page(p, n);
        uint8_t st = XS_STATE(atomic_load(&p->ext_state[n / PAGES_PER_EXTENT]));
        if (st != XS_RESIDENT && st != XS_EVICTING) {
            fault_unlock_page(p, n);
            return 1;
        }
        int dirty = atomic_load(&p->page_state[n]) & PS_DIRTY;
        memcpy(out, (dirty ? p->shadow : p->priv) + n * PAGE_BYTES, PAGE_BYTES);
        fault_unlock_page(p, n);
    }
    /* Committed pages passed the external-pointer check at commit. */
    unswizzle_page(out, out, map, (uintptr_t)p->base, p->layout.data_start * PAGE_BYTES, p->bytes, NULL);
    return 0;
}

int pager_read_committed(struct pager *p, uint64_t n, void *out)
{
    return read_unswizzled(p, n, COMMITTED, out);
}

int pager_read_checkpoint(struct pager *p, uint64_t n, void *out)
{
    /* Held across the copy: a commit saving this page (or its descriptor)
     * waits, so the bytes read are either the saved image or the page
     * before that commit made its new bytes the committed ones. */
    pthread_mutex_lock(&p->ckpt_lock);
    int rc = read_unswizzled(p, n, CHECKPOINTED, out);
    pthread_mutex_unlock(&p->ckpt_lock);
    return rc;
}

int pager_read_dirty(struct pager *p, uint64_t n, void *cur, void *old, uintptr_t *bad)
{
    uint64_t map_cur[PAGE_WORDS / 64], map_old[PAGE_WORDS / 64];
    uintptr_t base = (uintptr_t)p->base;
    uint64_t lo = p->layout.data_start * PAGE_BYTES;
    unsigned w = 0;
    int rc = ptr_map_of(p, n, NOW, map_cur);
    if (rc == 0)
        rc = ptr_map_of(p, n, COMMITTED, map_old);
    if (rc)
        return rc;
    rc = unswizzle_page(cur, (const uint64_t *)(p->priv + n * PAGE_BYTES), map_cur, base, lo, p->bytes, &w);
    if (rc) {
        *bad = base + n * PAGE_BYTES + (uintptr_t)w * 8;
        return rc;
    }
    unswizzle_page(old, (const uint64_t *)(p->shadow + n * PAGE_BYTES), map_old, base, lo, p->bytes, NULL);
    return 0;
}
