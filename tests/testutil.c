#define _GNU_SOURCE
#include "testutil.h"
#include "store/store_internal.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

char *tu_tempdir(void)
{
    const char *t = getenv("TMPDIR");
    char *path;
    if (asprintf(&path, "%s/cairn-test-XXXXXX", t && *t ? t : "/tmp") < 0)
        abort();
    if (!mkdtemp(path))
        abort();
    return path;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

void tu_rmdir(char *path)
{
    if (!path)
        return;
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(path);
}

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
