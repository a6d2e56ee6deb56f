/*
 * copy.c - making a new store directory from files staged in it, for
 * backup (backup.c) and compact (compact.c); see copy.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy.h"

void copy_error(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int copy_dest_prepare(const char *dest, char *err, size_t errlen)
{
    if (mkdir(dest, 0755) != 0 && errno != EEXIST) {
        int rc = errno;
        copy_error(err, errlen, "%s: cannot create: %s", dest, strerror(rc));
        return -rc;
    }
    int fd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int rc = errno;
        copy_error(err, errlen, "%s: %s", dest, strerror(rc));
        return -rc;
    }
    static const char *ours[] = {"data.mdb", "wal", "lock.mdb"};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) {
        if (faccessat(fd, ours[i], F_OK, 0) == 0) {
            copy_error(err, errlen, "%s: already holds %s; refusing to overwrite", dest, ours[i]);
            close(fd);
            return -EEXIST;
        }
    }
    return fd;
}

int copy_dest_finish(int dirfd, const char *dest, const char *staged, char *err, size_t errlen)
{
    int fd = openat(dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0)
        close(fd);
    if (fd < 0 || fsync(dirfd) != 0 || renameat(dirfd, staged, dirfd, "data.mdb") != 0 || fsync(dirfd) != 0) {
        int rc = errno;
        copy_error(err, errlen, "%s: finishing the store files: %s", dest, strerror(rc));
        return rc ? rc : EIO;
    }
    return 0;
}
