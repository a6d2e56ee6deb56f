/*
 * fault.c - the fault path: load an extent on first touch, record a page's
 * before-image on first write.
 *
 * EVERYTHING IN THIS FILE RUNS INSIDE A SIGNAL HANDLER (SIGBUS from
 * userfaultfd, SIGSEGV from mprotect) on whatever thread touched the page,
 * possibly while that thread was inside malloc, stdio, or our own library.
 * So: no malloc, no stdio, no mutex, no call that may take a lock the
 * interrupted code may hold.  What is used:
 *   - atomics on the per-extent and per-page state bytes;
 *   - the load slots (a page-store reader, whose read_begin, get and
 *     read_end are signal-safe by the contract of pagestore.h, a zstd
 *     decompression context and a one-extent buffer), prepared at open;
 *   - the backend's signal-safe ops (p->ops: ioctl on the userfaultfd,
 *     or mprotect);
 *   - syscalls: pwrite and fallocate on the memfd, sched_yield.
 * Nothing here touches the client view (no nested faults): an extent is
 * decoded and swizzled in a load slot's buffer and written into the memfd
 * with pwrite; before-images are copied from the private view to the
 * shadow.
 *
 * Waiting.  A thread that finds an extent LOADING or a page LOCKed spins
 * and yields.  That is safe because every holder runs a bounded step that
 * never waits on anything a waiter could hold:
 *   - LOADING is held by a loader, which may wait only for the extent of
 *     its descriptor page (descriptor extents load without dependencies,
 *     so the wait graph is a forest of depth one) and for a load slot
 *     (every slot holder finishes without waiting for a slot);
 *   - PS_LOCK is held around one 4 KiB copy (here, at checkpoint, commit).
 *
 * Interleaving that the publish order prevents: thread A loads extent E
 * and thread B touches E meanwhile.  B sees LOADING and waits; A prepares
 * all of E in the memfd, publishes it read-only (p->ops->publish: one
 * ioctl or one mprotect), and only then stores RESIDENT.  B returns from
 * its handler, its load retries and sees the complete page.  No thread
 * ever observes a half-prepared page, because the client view has no
 * mapping for E until the publish.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "pager.h"

void fault_relax(unsigned *spins)
{
    if (++*spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        return;
    }
    sched_yield();
}

void fault_lock_page(struct pager *p, uint64_t n)
{
    unsigned spins = 0;
    for (;;) {
        uint8_t st = atomic_load_explicit(&p->page_state[n], memory_order_relaxed);
        if (!(st & PS_LOCK) && atomic_compare_exchange_weak_explicit(&p->page_state[n], &st, st | PS_LOCK,
                                                                     memory_order_acquire, memory_order_relaxed))
            return;
        fault_relax(&spins);
    }
}

void fault_unlock_page(struct pager *p, uint64_t n)
{
    atomic_fetch_and_explicit(&p->page_state[n], (uint8_t)~PS_LOCK, memory_order_release);
}

static int slot_claim(struct pager *p)
{
    unsigned spins = 0;
    for (;;) {
        uint32_t f = atomic_load_explicit(&p->slots_free, memory_order_relaxed);
        if (f) {
            int i = __builtin_ctz(f);
            if (atomic_compare_exchange_weak_explicit(&p->slots_free, &f, f & ~(1u << i), memory_order_acquire,
                                                      memory_order_relaxed))
                return i;
            continue;
        }
        fault_relax(&spins);
    }
}

static void slot_release(struct pager *p, int i)
{
    atomic_fetch_or_explicit(&p->slots_free, 1u << i, memory_order_release);
}

/* Put a prepared extent into the memfd.  pwrite, not a store through the
 * private view: the pages enter the page cache without being mapped in
 * this process a second time, so they count once in RSS and need no TLB
 * shootdown to unmap again.  (Cold loads from two threads still do not
 * scale: pwrite takes the shmem inode lock, but stores through the view
 * measured no better; see docs/DESIGN.md.) */
static int write_extent(struct pager *p, const unsigned char *buf, uint64_t first)
{
    size_t done = 0;
    while (done < BYTES_PER_EXTENT) {
        ssize_t n = pwrite(p->memfd, buf + done, BYTES_PER_EXTENT - done, (off_t)(first * PAGE_BYTES + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno : EIO;
        done += (size_t)n;
    }
    return 0;
}

/* An extent the page store never had: zero pages, allocated by the kernel
 * (cheaper than writing 64 KiB of zeros: no copy).  The range is a hole
 * while the extent is not resident (evict.c and a failed load punch it),
 * so what fallocate allocates is zeros. */
static int zero_extent(struct pager *p, uint64_t first)
{
    for (;;) {
        if (fallocate(p->memfd, 0, (off_t)(first * PAGE_BYTES), (off_t)BYTES_PER_EXTENT) == 0)
            return 0;
        if (errno != EINTR)
            return errno;
    }
}

/* Mark the pages of the extent at first as zero pages (PS_ZERO) or not. */
static void mark_zero(struct pager *p, uint64_t first, int zero)
{
    for (uint64_t i = 0; i < PAGES_PER_EXTENT; i++) {
        if (zero)
            atomic_fetch_or_explicit(&p->page_state[first + i], PS_ZERO, memory_order_relaxed);
        else
            atomic_fetch_and_explicit(&p->page_state[first + i], (uint8_t)~PS_ZERO, memory_order_relaxed);
    }
}

/* Read extent e from the page store (or zeros), swizzle it in a load slot's buffer,
 * and put it into the memfd.  Nothing is visible to the client view yet. */
static int prepare_extent(struct pager *p, uint64_t e)
{
    uint64_t first = e * PAGES_PER_EXTENT;
    int rc;
    /* Pointer maps first, before taking a load slot (the descriptor extent
     * may need loading, which takes a slot of its own): fixed for metadata
     * pages; for object pages copied from the descriptor page while
     * holding it, so eviction cannot punch it under us. */
    uint64_t maps[PAGES_PER_EXTENT][PAGE_WORDS / 64];
    if (first >= p->layout.data_start) {
        uint64_t d = layout_desc_page(first);
        rc = fault_hold_page(p, d);
        if (rc)
            return rc;
        for (uint64_t i = 0; i < PAGES_PER_EXTENT; i++)
            swizzle_ptr_map(p, first + i, p->priv, maps[i]);
        fault_unlock_page(p, d);
    } else {
        for (uint64_t i = 0; i < PAGES_PER_EXTENT; i++)
            swizzle_ptr_map(p, first + i, NULL, maps[i]);
    }

    int slot = slot_claim(p);
    struct load_slot *s = &p->slots[slot];
    const struct pagestore_ops *ps = p->pagestore->ops;
    int never_written = 0;
    rc = ps->read_begin(s->reader);
    if (rc == 0) {
        const void *val;
        size_t len;
        rc = ps->get(s->reader, e, &val, &len);
        if (rc == CAIRN_NOT_FOUND) {
            never_written = 1;
            rc = 0;
        } else if (rc == PAGESTORE_IMAGE) {
            memcpy(s->buf, val, BYTES_PER_EXTENT);
            rc = 0;
        } else if (rc == 0) {
            rc = extent_decode(s->buf, val, len, e, p->checksum_seed, s->dctx);
        }
        ps->read_end(s->reader);
    }

    uintptr_t base = (uintptr_t)p->base;
    uint64_t lo = p->layout.data_start * PAGE_BYTES, hi = p->layout.pages * PAGE_BYTES;
    for (uint64_t i = 0; rc == 0 && !never_written && i < PAGES_PER_EXTENT; i++)
        rc = swizzle_page((uint64_t *)(s->buf + i * PAGE_BYTES), maps[i], base, lo, hi);
    if (rc == 0)
        rc = never_written ? zero_extent(p, first) : write_extent(p, s->buf, first);
    slot_release(p, slot);
    if (rc == 0)
        mark_zero(p, first, never_written);
    return rc;
}

/* Load extent e, which the caller moved to LOADING.  touched: the page
 * whose fault caused the load, or UINT64_MAX. */
static int load_owned_extent(struct pager *p, uint64_t e, uint64_t touched)
{
    uint64_t first = e * PAGES_PER_EXTENT;
    /* prepare_extent loads the descriptor extent first when it needs it:
     * descriptor extents have no pointers, so that goes one level deep. */
    int rc = prepare_extent(p, e);
    if (rc == 0)
        rc = p->ops->publish(p, e, touched);
    if (rc) {
        /* Nothing of a page that failed is ever shown: drop what was prepared. */
        fallocate(p->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(first * PAGE_BYTES),
                  (off_t)BYTES_PER_EXTENT);
        return rc;
    }
    atomic_fetch_add_explicit(&p->extents_loaded, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->extents_resident, 1, memory_order_relaxed);
    uint64_t hwm = atomic_load(&p->ext_hwm);
    while (e + 1 > hwm && !atomic_compare_exchange_weak(&p->ext_hwm, &hwm, e + 1))
        ;
    return 0;
}

static int load_extent(struct pager *p, uint64_t e, uint64_t touched)
{
    unsigned spins = 0;
    for (;;) {
        uint8_t st = atomic_load_explicit(&p->ext_state[e], memory_order_acquire);
        if (XS_STATE(st) == XS_RESIDENT)
            return 0;
        if (XS_STATE(st) == XS_ABSENT) {
            if (atomic_compare_exchange_weak_explicit(&p->ext_state[e], &st, XS_LOADING, memory_order_acquire,
                                                      memory_order_relaxed))
                break;
            continue;
        }
        fault_relax(&spins);
    }
    int rc = load_owned_extent(p, e, touched);
    atomic_store_explicit(&p->ext_state[e], rc ? XS_ABSENT : XS_RESIDENT | XS_REF, memory_order_release);
    if (rc == 0 && p->budget_extents)
        evict_for_room(p, e);
    return rc;
}

int fault_load_extent(struct pager *p, uint64_t e)
{
    return load_extent(p, e, UINT64_MAX);
}

int fault_hold_page(struct pager *p, uint64_t n)
{
    uint64_t e = n / PAGES_PER_EXTENT;
    for (;;) {
        int rc = fault_load_extent(p, e);
        if (rc)
            return rc;
        fault_lock_page(p, n);
        /* EVICTING is fine: the evictor cannot punch before it has our lock. */
        uint8_t st = XS_STATE(atomic_load(&p->ext_state[e]));
        if (st == XS_RESIDENT || st == XS_EVICTING)
            return 0;
        fault_unlock_page(p, n);
    }
}

/* Caller holds no lock.  Once DIRTY, the extent can no longer be evicted. */
int fault_snapshot_page(struct pager *p, uint64_t n)
{
    int rc = fault_hold_page(p, n);
    if (rc)
        return rc;
    uint8_t st = atomic_load_explicit(&p->page_state[n], memory_order_relaxed);
    if (!(st & PS_DIRTY)) {
        /* A zero page's before-image is the hole its shadow page is. */
        if (!(st & PS_ZERO))
            memcpy(p->shadow + n * PAGE_BYTES, p->priv + n * PAGE_BYTES, PAGE_BYTES);
        uint64_t i = atomic_fetch_add_explicit(&p->ndirty, 1, memory_order_relaxed);
        p->dirty[i] = (uint32_t)n;
        atomic_fetch_and_explicit(&p->page_state[n], (uint8_t)~PS_ZERO, memory_order_relaxed);
        atomic_fetch_or_explicit(&p->page_state[n], PS_DIRTY, memory_order_relaxed);
        atomic_fetch_add_explicit(&p->faults_write, 1, memory_order_relaxed);
    }
    fault_unlock_page(p, n);
    return 0;
}

/* The backend decides how much becomes writable (a page, or the extent)
 * and takes the before-images of all of it first. */
int fault_make_writable(struct pager *p, uint64_t n)
{
    return p->ops->make_writable(p, n);
}

int fault_handle(struct pager *p, uintptr_t addr, int is_write)
{
    uint64_t n = (addr - (uintptr_t)p->base) >> PAGE_BYTES_LOG2;
    uint64_t e = n / PAGES_PER_EXTENT;
    if (is_write) {
        if (!atomic_load_explicit(&p->txn_open, memory_order_acquire))
            return CAIRN_READONLY;
        return fault_make_writable(p, n);
    }
    uint8_t st = atomic_load_explicit(&p->ext_state[e], memory_order_acquire);
    if (XS_STATE(st) == XS_RESIDENT) {
        /* Already loaded, but this page is not mapped (or not readable) in
         * the client view: another thread published it after our trap, the
         * clock hand unmapped it to sample use, the backend published only
         * part of the extent, or the kernel dropped the page-table entry.
         * Map it again, with the protection it should have, under the page
         * lock so it cannot be evicted meanwhile. */
        atomic_fetch_or(&p->ext_state[e], XS_REF);
        int rc = fault_hold_page(p, n);
        if (rc)
            return rc;
        rc = p->ops->remap(p, n);
        fault_unlock_page(p, n);
        return rc;
    }
    atomic_fetch_add_explicit(&p->faults_read, 1, memory_order_relaxed);
    return load_extent(p, e, n);
}
