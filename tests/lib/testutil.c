/*
 * testutil.c - see testutil.h.
 */
#define _GNU_SOURCE
#include "testutil.h"
#include "store/store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void tu_options(cairn_options *o)
{
    cairn_options_init(o);
    o->max_bytes = (uint64_t)1 << 30; /* 1 GiB: quick to set up */
}

int tu_in_child(void (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        abort();
    if (pid == 0) {
        fn(arg);
        _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        ;
    return status;
}

uint64_t tu_shmem_bytes(cairn_store *s)
{
    struct stat st;
    if (fstat(s->pager->memfd, &st) != 0)
        abort();
    return (uint64_t)st.st_blocks * 512;
}

int tu_map_lines(const void *base, size_t len)
{
    FILE *f = fopen("/proc/self/maps", "r");
    uintptr_t lo = (uintptr_t)base, hi = lo + len;
    unsigned long start, end;
    char line[512];
    int n = 0;
    if (!f)
        abort();
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%lx-%lx", &start, &end) == 2 && start < hi && end > lo)
            n++;
    fclose(f);
    return n;
}

size_t tu_lmdb_used(const unsigned char *img, size_t len)
{
    while (len && img[len - 1] == 0)
        len--;
    return (len + 4095) / 4096 * 4096; /* the last page starts with its nonzero number */
}
