/*
 * files.c - see files.h.
 */
#define _GNU_SOURCE
#include "files.h"
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *tu_path(const char *dir, const char *name)
{
    char *p;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        abort();
    return p;
}

unsigned char *tu_file_read(const char *dir, const char *name, size_t *len)
{
    char *p = tu_path(dir, name);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail_msg("open %s: %s", p, strerror(errno));
    free(p);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    unsigned char *buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    close(fd);
    *len = got;
    return buf;
}

void tu_file_write(const char *dir, const char *name, const void *buf, size_t len)
{
    char *p = tu_path(dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        fail_msg("create %s: %s", p, strerror(errno));
    free(p);
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)done);
        assert_true(n > 0);
        done += (size_t)n;
    }
    close(fd);
}

off_t tu_file_size(const char *dir, const char *name)
{
    char *p = tu_path(dir, name);
    struct stat st;
    int rc = stat(p, &st);
    free(p);
    return rc == 0 ? st.st_size : -1;
}

unsigned char *tu_log_read(const char *dir, size_t *len)
{
    size_t size;
    unsigned char *f = tu_file_read(dir, "wal", &size);
    size_t at = 64; /* the header */
    while (at + 32 <= size) {
        uint32_t kind, plen;
        memcpy(&kind, f + at, 4);
        memcpy(&plen, f + at + 4, 4);
        if (kind == 0)
            break;
        at = (at + 32 + plen + 7) & ~(size_t)7;
    }
    if (at > size)
        fail_msg("%s/wal: the last record runs past the end of the file (%zu > %zu)", dir, at, size);
    for (size_t i = at; i < size; i++)
        if (f[i])
            fail_msg("%s/wal: byte %zu past the records (which end at %zu) is %#x, not zero", dir, i, at, f[i]);
    *len = at;
    return f;
}

size_t tu_log_end(const char *dir)
{
    size_t len;
    free(tu_log_read(dir, &len));
    return len;
}

void tu_same_file(const char *dir1, const char *name1, const char *dir2, const char *name2)
{
    size_t l1, l2;
    unsigned char *a = tu_file_read(dir1, name1, &l1), *b = tu_file_read(dir2, name2, &l2);
    if (l1 != l2 || memcmp(a, b, l1) != 0)
        fail_msg("%s/%s and %s/%s differ", dir1, name1, dir2, name2);
    free(a);
    free(b);
}

char *tu_copy_store(const char *src)
{
    char *dst = tu_tempdir();
    DIR *d = opendir(src);
    assert_non_null(d);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "lock") || !strcmp(e->d_name, "lock.mdb"))
            continue;
        char *p = tu_path(src, e->d_name);
        struct stat st;
        int rc = stat(p, &st);
        free(p);
        if (rc != 0 || !S_ISREG(st.st_mode))
            continue;
        size_t len;
        unsigned char *buf = tu_file_read(src, e->d_name, &len);
        tu_file_write(dst, e->d_name, buf, len);
        free(buf);
        files++;
    }
    closedir(d);
    assert_true(files >= 2); /* data.mdb and wal at least */
    return dst;
}
