/*
 * backend_uffd.c - the userfaultfd fault backend (pager_backend_uffd).
 *
 * The client view is registered MISSING|MINOR|WP on a userfaultfd opened
 * with UFFD_USER_MODE_ONLY (works unprivileged) and UFFD_FEATURE_SIGBUS,
 * so a fault is delivered as SIGBUS to the faulting thread itself: no
 * handler thread, no cross-CPU wake-up.  UFFDIO_CONTINUE maps a page that
 * is in the memfd already, with write protection in the same step;
 * UFFDIO_WRITEPROTECT toggles protection on page-table entries.  Neither
 * splits the mapping, so the number of VMAs stays constant, and the
 * granularity is the page: a first write opens one page, commit protects
 * exactly the pages written.
 *
 * A page-table entry of the client view comes into being only through
 * UFFDIO_CONTINUE here; the kernel never fills one on its own (MISSING and
 * MINOR faults both trap).  So dropping entries is free of hazards:
 * punching the memfd or MADV_DONTNEED on the view just makes the next
 * access trap.
 *
 * Every op but setup and teardown is async-signal-safe: ioctl and madvise
 * only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pager.h"

/* Debian 12's kernel headers predate these (Linux 6.3 / 5.11). */
#ifndef UFFDIO_CONTINUE_MODE_WP
#define UFFDIO_CONTINUE_MODE_WP ((__u64)1 << 1)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

/* Not signal context. */
static int uffd_setup(struct pager *p)
{
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    if (fd < 0)
        return errno ? errno : ENOSYS;
    uint64_t want = UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_SIGBUS;
    struct uffdio_api api = {.api = UFFD_API, .features = want};
    int rc = 0;
    if (ioctl(fd, UFFDIO_API, &api) != 0) {
        rc = errno;
        goto out_close;
    }
    if ((api.features & want) != want) {
        rc = ENOTSUP;
        goto out_close;
    }
    /* Protection lives in the page-table entries here, so the mapping
     * itself is read-write. */
    if (mprotect(p->base, p->bytes, PROT_READ | PROT_WRITE) != 0) {
        rc = errno;
        goto out_close;
    }
    struct uffdio_register reg = {
        .range = {(uintptr_t)p->base, p->bytes},
        .mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR | UFFDIO_REGISTER_MODE_WP,
    };
    if (ioctl(fd, UFFDIO_REGISTER, &reg) != 0) {
        rc = errno;
        goto out_protect;
    }
    uint64_t need = ((uint64_t)1 << _UFFDIO_CONTINUE) | ((uint64_t)1 << _UFFDIO_WRITEPROTECT);
    if ((reg.ioctls & need) != need) {
        rc = ENOTSUP;
        goto out_protect;
    }
    p->uffd = fd;
    /* Kept only so that bench/readahead can measure whole-extent publishing
     * against its alternative. */
    return 0;
out_protect:
    mprotect(p->base, p->bytes, PROT_NONE);
out_close:
    close(fd); /* also unregisters */
    return rc;
}

/* Not signal context. */
static void uffd_teardown(struct pager *p)
{
    close(p->uffd);
    p->uffd = -1;
}

/* Signal-safe.  Set or clear write protection on pages [first, first+n). */
static int uffd_set_writable(struct pager *p, uint64_t first, uint64_t n, int writable)
{
    struct uffdio_writeprotect wp = {
        .range = {(uintptr_t)p->base + first * PAGE_BYTES, n * PAGE_BYTES},
        .mode = writable ? 0 : UFFDIO_WRITEPROTECT_MODE_WP,
    };
    while (ioctl(p->uffd, UFFDIO_WRITEPROTECT, &wp) != 0) {
        if (errno != EAGAIN && errno != EINTR)
            return errno;
    }
    return 0;
}

/*
 * Signal-safe.  Map pages [first, first+n), already filled in the memfd,
 * into the client view: read-only (write-protected) unless writable.  A
 * page that is mapped already (another thread got there, or it was never
 * unmapped) is left as it is, except that writable=1 clears its protection.
 */
static int uffd_continue(struct pager *p, uint64_t first, uint64_t n, int writable)
{
    uintptr_t addr = (uintptr_t)p->base + first * PAGE_BYTES;
    uintptr_t end = addr + n * PAGE_BYTES;
    while (addr < end) {
        struct uffdio_continue c = {
            .range = {addr, end - addr},
            .mode = writable ? 0 : UFFDIO_CONTINUE_MODE_WP,
        };
        if (ioctl(p->uffd, UFFDIO_CONTINUE, &c) == 0)
            return 0;
        int err = errno;
        uintptr_t done = c.mapped > 0 ? (uintptr_t)c.mapped : 0;
        addr += done;
        if (err == EAGAIN || err == EINTR)
            continue;
        if (err != EEXIST)
            return err;
        if (writable) {
            int rc = uffd_set_writable(p, (addr - (uintptr_t)p->base) / PAGE_BYTES, 1, 1);
            if (rc)
                return rc;
        }
        addr += PAGE_BYTES;
    }
    return 0;
}

/* Signal-safe.  All 16 pages in one ioctl, so that the pages a reader
 * touches next cost no trap.  Under CAIRN_PUBLISH=page only the touched
 * page (none for a load outside a fault); the rest trap once each and
 * go through uffd_remap. */
static int uffd_publish(struct pager *p, uint64_t e, uint64_t touched)
{
    if (!p->publish_page_only)
        return uffd_continue(p, e * PAGES_PER_EXTENT, PAGES_PER_EXTENT, 0);
    if (touched / PAGES_PER_EXTENT != e)
        return 0;
    return uffd_continue(p, touched, 1, 0);
}

/* Signal-safe.  The entry was never made (CAIRN_PUBLISH=page), another
 * thread mapped it after our trap, the clock hand dropped it, or the kernel
 * did; a DIRTY page is writable, any other write-protected. */
static int uffd_remap(struct pager *p, uint64_t n)
{
    return uffd_continue(p, n, 1, atomic_load(&p->page_state[n]) & PS_DIRTY);
}

/* Signal-safe.  Per page: only the page written gets a before-image. */
static int uffd_make_writable(struct pager *p, uint64_t n)
{
    int rc = fault_snapshot_page(p, n);
    return rc ? rc : uffd_continue(p, n, 1, 1);
}

/* Signal-safe. */
static int uffd_write_protect(struct pager *p, uint64_t first, uint64_t count)
{
    return uffd_set_writable(p, first, count, 0);
}

/* Signal-safe.  Drop e's page-table entries without freeing its pages
 * (MADV_DONTNEED on a shared mapping leaves the memfd as it is): the next
 * touch is a minor fault that sets XS_REF again. */
static void uffd_sample(struct pager *p, uint64_t e)
{
    madvise(p->base + e * PAGES_PER_EXTENT * PAGE_BYTES, BYTES_PER_EXTENT, MADV_DONTNEED);
}

/* Signal-safe.  Nothing to do: the punch removes e's entries from the
 * client view, and an access to a page without one traps (MISSING or
 * MINOR) and waits at EVICTING. */
static int uffd_before_punch(struct pager *p, uint64_t e)
{
    (void)p, (void)e;
    return 0;
}

const struct fault_backend pager_backend_uffd = {
    .id = CAIRN_BACKEND_UFFD,
    .setup = uffd_setup,
    .teardown = uffd_teardown,
    .publish = uffd_publish,
    .remap = uffd_remap,
    .make_writable = uffd_make_writable,
    .write_protect = uffd_write_protect,
    .sample = uffd_sample,
    .before_punch = uffd_before_punch,
};
