/*
 * evict.c - keeping resident memory within cache_bytes.
 *
 * RUNS IN A SIGNAL HANDLER (after a load on the fault path) as well as in
 * ordinary context: atomics, page-lock spins and syscalls only.
 *
 * Policy: a clock (second chance) over extents [0, ext_hwm).  An extent
 * gets XS_REF when it is loaded and whenever it is touched after the
 * hand passed it.  The hand clears XS_REF and lets the backend sample the
 * extent (p->ops->sample): userfaultfd unmaps it from the client view
 * without freeing it, so the next touch is a cheap minor fault that sets
 * XS_REF again; mprotect does nothing, so there the clock is FIFO with a
 * second chance for recently loaded extents.  An extent the hand finds
 * without XS_REF is evicted: punched out of the memfd, so the next touch
 * loads it from LMDB.
 *
 * Never evicted: the extent whose load made room necessary (the loader
 * is about to use it), extents 0 and 1 (superblock and roots), extents with a
 * DIRTY or UNFLUSHED page (their bytes are not in LMDB yet), extents
 * pinned by cairn_prefault.  If everything resident is one of those the
 * budget is exceeded rather than anything spinning.
 *
 * The eviction itself, as an interleaving argument:
 *   1. CAS RESIDENT -> EVICTING.  Loads and faults now wait.
 *   2. Lock the 16 pages.  Anyone reading a page through the private view
 *      (fault_hold_page) or taking a before-image holds its lock, so after
 *      this nobody is in the middle of such a copy.  A page that became
 *      DIRTY before we got its lock makes us back off (state RESIDENT).
 *   3. p->ops->before_punch: make sure no access can reach the hole and
 *      read zeros (mprotect: PROT_NONE first; userfaultfd: nothing, the
 *      punch drops the page-table entries and an access without one
 *      traps).  If it fails, back off.
 *   4. Punch the 16 pages out of the memfd: every mapping of them goes.
 *   5. Unlock, store ABSENT.  A thread that faulted meanwhile waited at
 *      EVICTING and now loads the extent again, from LMDB, which holds its
 *      bytes because the extent had no DIRTY or UNFLUSHED page.
 */
#define _GNU_SOURCE
#include <fcntl.h>

#include "pager.h"

#define NEVER_EVICT 2 /* extents 0 and 1: superblock and roots */

static int busy(struct pager *p, uint64_t first)
{
    for (uint64_t i = 0; i < PAGES_PER_EXTENT; i++)
        if (atomic_load(&p->page_state[first + i]) & (PS_DIRTY | PS_UNFLUSHED))
            return 1;
    return 0;
}

static int evict_one(struct pager *p, uint64_t e, uint8_t st, int keep_pinned);

/* One step of the hand at extent e: 1 if it was evicted. */
static int clock_step(struct pager *p, uint64_t e, uint64_t keep)
{
    uint8_t st = atomic_load(&p->ext_state[e]);
    uint64_t first = e * PAGES_PER_EXTENT;
    if (XS_STATE(st) != XS_RESIDENT || (st & XS_WRITABLE) || e < NEVER_EVICT || e == keep ||
        atomic_load(&p->ext_pins[e]) || busy(p, first))
        return 0;
    if ((st & XS_REF) && !p->evict_random) {
        if (atomic_compare_exchange_strong(&p->ext_state[e], &st, st & ~XS_REF))
            p->ops->sample(p, e);
        return 0;
    }
    return evict_one(p, e, st, 1);
}

/* Steps 1-5 on extent e, whose state the caller read as st (RESIDENT):
 * 1 if it was evicted.  keep_pinned: back off from a pinned extent. */
static int evict_one(struct pager *p, uint64_t e, uint8_t st, int keep_pinned)
{
    uint64_t first = e * PAGES_PER_EXTENT;
    if (!atomic_compare_exchange_strong(&p->ext_state[e], &st, XS_EVICTING))
        return 0;
    for (uint64_t i = 0; i < PAGES_PER_EXTENT; i++)
        fault_lock_page(p, first + i);
    int ok = !busy(p, first) && !(keep_pinned && atomic_load(&p->ext_pins[e]));
    if (ok)
        ok = p->ops->before_punch(p, e) == 0;
    if (ok)
        ok = fallocate(p->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(first * PAGE_BYTES),
                       (off_t)BYTES_PER_EXTENT) == 0;
    atomic_store(&p->ext_state[e], ok ? XS_ABSENT : XS_RESIDENT | XS_REF);
    for (uint64_t i = 0; i < PAGES_PER_EXTENT; i++)
        fault_unlock_page(p, first + i);
    if (!ok)
        return 0;
    atomic_fetch_sub(&p->extents_resident, 1);
    atomic_fetch_add(&p->evictions, PAGES_PER_EXTENT);
    return 1;
}

/*
 * When everything resident is dirty, unflushed or pinned, a sweep finds
 * nothing and the budget is exceeded.  Sweeping again on every load would
 * cost two turns of the hand over the whole store per load (a transaction
 * that writes more than the budget made each later load take milliseconds
 * on a 16 GiB store), so after a fruitless sweep loads sweep again only
 * once another budget/8 extents have come in; those are clean and are what
 * the next sweep evicts.  Checkpoint, abort and release (keep ==
 * UINT64_MAX) make extents evictable and always sweep.
 */
void evict_for_room(struct pager *p, uint64_t keep)
{
    uint64_t stall = atomic_load(&p->evict_stall);
    if (keep != UINT64_MAX && stall && atomic_load(&p->extents_resident) < stall + p->budget_extents / 8 + 1)
        return;
    uint64_t hwm = atomic_load(&p->ext_hwm);
    /* Two full turns clear every reference bit; past that, what is left
     * cannot be evicted and the budget is exceeded. */
    for (uint64_t tries = 0; tries < 2 * hwm + PAGES_PER_EXTENT; tries++) {
        if (atomic_load(&p->extents_resident) <= p->budget_extents) {
            atomic_store(&p->evict_stall, 0);
            return;
        }
        uint64_t h = atomic_fetch_add(&p->clock_hand, 1);
        if (p->evict_random) /* a hash of the hand: a fixed pseudo-random order */
            h = (h + 1) * 0x9E3779B97F4A7C15ull >> 17;
        clock_step(p, h % hwm, keep);
    }
    atomic_store(&p->evict_stall, atomic_load(&p->extents_resident));
}

int evict_extent(struct pager *p, uint64_t e)
{
    uint8_t st = atomic_load(&p->ext_state[e]);
    if (XS_STATE(st) != XS_RESIDENT || (st & XS_WRITABLE))
        return 0;
    return evict_one(p, e, st, 0);
}
