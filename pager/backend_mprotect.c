/*
 * backend_mprotect.c - the fallback for kernels or sandboxes that refuse
 * userfaultfd: the client view is mapped PROT_NONE, a touch raises
 * SIGSEGV, and mprotect opens an extent read-only, then read-write on the
 * first write.
 *
 * Every protection boundary splits a mapping, and a process may have at
 * most vm.max_map_count (65530 by default) of them.  Working per 64 KiB
 * extent instead of per page, and letting the kernel merge neighbours of
 * equal protection, keeps ordinary workloads far below that.  When the
 * limit is hit anyway mprotect fails with ENOMEM and that error is
 * returned (the fault path reports it and stops): never a retry loop.
 */
#include <errno.h>
#include <sys/mman.h>

#include "pager.h"

int mprot_setup(struct pager *p)
{
    (void)p; /* pager_open maps the client view PROT_NONE already */
    return 0;
}

/* Signal-safe. */
int mprot_set(struct pager *p, uint64_t first, uint64_t n, int prot)
{
    if (mprotect(p->base + first * PAGE_BYTES, n * PAGE_BYTES, prot) != 0)
        return errno;
    return 0;
}
