/*
 * bench.h - what every benchmark needs: a clock, a stop on error, a scratch
 * directory, and a few readings of /proc.
 */
#ifndef CAIRN_BENCH_H
#define CAIRN_BENCH_H

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Stop the benchmark on any error: a figure after a failure means nothing. */
static inline void bench_check(int rc, const char *what)
{
    if (rc != CAIRN_OK) {
        fprintf(stderr, "benchmark: %s: %s\n", what, cairn_strerror(rc));
        exit(1);
    }
}

/* A fresh directory $TMPDIR/cairn-NAME-XXXXXX (or under /tmp); stops the
 * benchmark if it cannot be made.  Free it with bench_rmdir. */
static inline char *bench_tempdir(const char *name)
{
    const char *t = getenv("TMPDIR");
    char *dir = malloc(4096);
    if (!dir)
        exit(1);
    snprintf(dir, 4096, "%s/cairn-%s-XXXXXX", t && *t ? t : "/tmp", name);
    if (!mkdtemp(dir)) {
        perror(dir);
        exit(1);
    }
    return dir;
}

static inline int bench_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* Remove what bench_tempdir made, with everything in it; 0 on success, so
 * that main can return it. */
static inline int bench_rmdir(char *dir)
{
    int rc = nftw(dir, bench_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    if (rc)
        fprintf(stderr, "could not remove %s\n", dir);
    free(dir);
    return rc ? 1 : 0;
}

/* A "Field:  N kB" line of a /proc file (/proc/self/status, /proc/meminfo),
 * in KiB; -1 if absent. */
static inline long bench_proc_kib(const char *file, const char *field)
{
    FILE *f = fopen(file, "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            v = atol(line + n + 1);
    if (f)
        fclose(f);
    return v;
}

/* Drop the page cache (needs root); 1 if it was dropped. */
static inline int bench_drop_page_cache(void)
{
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd < 0)
        return 0;
    int ok = write(fd, "3\n", 2) == 2;
    close(fd);
    return ok;
}

#endif
