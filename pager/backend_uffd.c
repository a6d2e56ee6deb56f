/*
 * backend_uffd.c - publish and write-protect pages with userfaultfd.
 *
 * The client view is registered MISSING|MINOR|WP on a userfaultfd opened
 * with UFFD_USER_MODE_ONLY (works unprivileged) and UFFD_FEATURE_SIGBUS,
 * so a fault is delivered as SIGBUS to the faulting thread itself: no
 * handler thread, no cross-CPU wake-up.  UFFDIO_CONTINUE maps a page that
 * the private view already filled, with write protection in the same
 * step; UFFDIO_WRITEPROTECT toggles protection on page-table entries.
 * Neither splits the mapping, so the number of VMAs stays constant.
 *
 * Functions called from the fault path are async-signal-safe (ioctl only).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
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

int uffd_setup(struct pager *p)
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
    struct uffdio_register reg = {
        .range = {(uintptr_t)p->base, p->bytes},
        .mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR | UFFDIO_REGISTER_MODE_WP,
    };
    if (ioctl(fd, UFFDIO_REGISTER, &reg) != 0) {
        rc = errno;
        goto out_close;
    }
    uint64_t need = ((uint64_t)1 << _UFFDIO_CONTINUE) | ((uint64_t)1 << _UFFDIO_WRITEPROTECT);
    if ((reg.ioctls & need) != need) {
        rc = ENOTSUP;
        goto out_close;
    }
    p->uffd = fd;
    return 0;
out_close:
    close(fd);
    return rc;
}

/* Signal-safe.  Set write protection on pages [first, first+n). */
int uffd_set_writable(struct pager *p, uint64_t first, uint64_t n, int writable)
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
int uffd_publish(struct pager *p, uint64_t first, uint64_t n, int writable)
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
