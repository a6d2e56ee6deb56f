/*
 * backend_mprotect.c - the fallback fault backend (pager_backend_mprotect),
 * for kernels or sandboxes that refuse userfaultfd: the client view is
 * mapped PROT_NONE, a touch raises SIGSEGV, and mprotect opens an extent
 * read-only, then read-write on the first write.
 *
 * Every protection boundary splits a mapping, and a process may have at
 * most vm.max_map_count (65530 by default) of them.  Working per 64 KiB
 * extent instead of per page, and letting the kernel merge neighbours of
 * equal protection, keeps ordinary workloads far below that.  When the
 * limit is hit anyway mprotect fails with ENOMEM and that error is
 * returned (the fault path reports it and stops): never a retry loop.
 *
 * Protection is per extent, so the extent state carries XS_WRITABLE: set
 * when the extent is opened read-write (all 16 pages DIRTY), cleared when
 * commit or abort protects it again.
 *
 * Every op but setup and teardown is async-signal-safe: mprotect and
 * atomics only.
 */
#include <errno.h>
#include <sys/mman.h>

#include "pager.h"

/* Signal-safe. */
static int mprot_set(struct pager *p, uint64_t first, uint64_t n, int prot)
{
    if (mprotect(p->base + first * PAGE_BYTES, n * PAGE_BYTES, prot) != 0)
        return errno;
    return 0;
}

/* Not signal context.  pager_open maps the client view PROT_NONE, which
 * is all this backend needs. */
static int mprot_setup(struct pager *p)
{
    (void)p;
    return 0;
}

/* Not signal context.  Nothing beyond the mapping, which pager_close
 * unmaps. */
static void mprot_teardown(struct pager *p)
{
    (void)p;
}

/* Signal-safe.  The whole extent, whatever was touched: one protection
 * change per extent keeps the mappings few. */
static int mprot_publish(struct pager *p, uint64_t e, uint64_t touched)
{
    (void)touched;
    return mprot_set(p, e * PAGES_PER_EXTENT, PAGES_PER_EXTENT, PROT_READ);
}

/* Signal-safe.  Another thread published the extent after our trap, or an
 * eviction backed off after before_punch. */
static int mprot_remap(struct pager *p, uint64_t n)
{
    uint64_t e = n / PAGES_PER_EXTENT;
    int prot = (atomic_load(&p->ext_state[e]) & XS_WRITABLE) ? PROT_READ | PROT_WRITE : PROT_READ;
    return mprot_set(p, e * PAGES_PER_EXTENT, PAGES_PER_EXTENT, prot);
}

/* Signal-safe.  Per extent, so that the number of mappings stays bounded
 * by extents written, not pages: every page of the extent gets its
 * before-image before any of them becomes writable. */
static int mprot_make_writable(struct pager *p, uint64_t n)
{
    uint64_t e = n / PAGES_PER_EXTENT, first = e * PAGES_PER_EXTENT;
    int rc;
    if (atomic_load_explicit(&p->ext_state[e], memory_order_acquire) & XS_WRITABLE)
        return mprot_set(p, first, PAGES_PER_EXTENT, PROT_READ | PROT_WRITE); /* raced with another writer */
    for (uint64_t i = 0; i < PAGES_PER_EXTENT; i++) {
        rc = fault_snapshot_page(p, first + i);
        if (rc)
            return rc;
    }
    rc = mprot_set(p, first, PAGES_PER_EXTENT, PROT_READ | PROT_WRITE);
    if (rc == 0)
        atomic_fetch_or_explicit(&p->ext_state[e], XS_WRITABLE, memory_order_release);
    return rc;
}

/* Signal-safe.  Every extent of the range that was opened read-write. */
static int mprot_write_protect(struct pager *p, uint64_t first, uint64_t count)
{
    int rc = 0;
    for (uint64_t e = first / PAGES_PER_EXTENT; e <= (first + count - 1) / PAGES_PER_EXTENT; e++) {
        if (!(atomic_load(&p->ext_state[e]) & XS_WRITABLE))
            continue;
        int r = mprot_set(p, e * PAGES_PER_EXTENT, PAGES_PER_EXTENT, PROT_READ);
        rc = rc ? rc : r;
        atomic_fetch_and(&p->ext_state[e], (uint8_t)~XS_WRITABLE);
    }
    return rc;
}

/* Signal-safe.  The hand does not unmap here (PROT_NONE islands would
 * split the mapping once per resident extent and run into
 * vm.max_map_count), so XS_REF is set only by loads: the clock degrades to
 * FIFO with a second chance for recently loaded extents. */
static void mprot_sample(struct pager *p, uint64_t e)
{
    (void)p, (void)e;
}

/* Signal-safe.  PROT_NONE first: a published extent stays mapped through
 * the punch, and an access would read the hole as zeros. */
static int mprot_before_punch(struct pager *p, uint64_t e)
{
    return mprot_set(p, e * PAGES_PER_EXTENT, PAGES_PER_EXTENT, PROT_NONE);
}

const struct fault_backend pager_backend_mprotect = {
    .id = CAIRN_BACKEND_MPROTECT,
    .setup = mprot_setup,
    .teardown = mprot_teardown,
    .publish = mprot_publish,
    .remap = mprot_remap,
    .make_writable = mprot_make_writable,
    .write_protect = mprot_write_protect,
    .sample = mprot_sample,
    .before_punch = mprot_before_punch,
};
