/*
 * hugepages.c - what transparent huge pages would buy a warm traversal,
 * and whether the store's memory can have them.
 *
 *   hugepages [MIB]
 *
 * A random cyclic chase through MIB (default 512) MiB of 64-byte cells,
 * one hop = one dependent load to a random cell, so nearly every hop
 * misses the TLB with 4 KiB pages:
 *   malloc 4K     the cells in malloc'd memory, MADV_NOHUGEPAGE;
 *   malloc THP    the same, MADV_HUGEPAGE (needs THP "madvise" or
 *                 "always"): the most huge pages can buy here;
 *   cairn         the same cells in a store, reopened, walked once to load
 *                 everything, then timed.  Whether the page memfd gets huge
 *                 folios depends on /sys/kernel/mm/transparent_hugepage/
 *                 shmem_enabled (printed), and the ShmemHugePages and
 *                 ShmemPmdMapped lines of /proc/meminfo say whether it did
 *                 and whether the client view maps them with huge entries.
 * Run it under each shmem_enabled setting to compare.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"

struct cell {
    struct cell *next;
    uint64_t pad[7];
}; /* 64 bytes */

#define HOPS 20000000

static void sysfs(const char *path, char *out, size_t len)
{
    FILE *f = fopen(path, "r");
    out[0] = 0;
    if (f && fgets(out, (int)len, f))
        out[strcspn(out, "\n")] = 0;
    if (f)
        fclose(f);
}

/* A random cyclic order of n cells (Sattolo's shuffle). */
static uint32_t *cycle(size_t n)
{
    uint32_t *o = malloc(n * sizeof *o);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < n; i++)
        o[i] = (uint32_t)i;
    for (size_t i = n - 1; i > 0; i--) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t j = x % i;
        uint32_t t = o[i];
        o[i] = o[j];
        o[j] = t;
    }
    return o;
}

static void link_cells(struct cell *c, const uint32_t *o, size_t n)
{
    for (size_t i = 0; i < n; i++)
        c[o[i]].next = &c[o[(i + 1) % n]];
}

static double chase(struct cell *c)
{
    double t0 = bench_now();
    for (long i = 0; i < HOPS; i++)
        c = c->next;
    double t = bench_now() - t0;
    if (!c)
        abort();
    return t / HOPS * 1e9;
}

static double best_chase(struct cell *c)
{
    double best = 1e9;
    for (int r = 0; r < 3; r++) {
        double t = chase(c);
        best = t < best ? t : best;
    }
    return best;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 512;
    size_t bytes = mib << 20, n = bytes / sizeof(struct cell);
    uint32_t *order = cycle(n);
    char thp[128], shmem[128];
    sysfs("/sys/kernel/mm/transparent_hugepage/enabled", thp, sizeof thp);
    sysfs("/sys/kernel/mm/transparent_hugepage/shmem_enabled", shmem, sizeof shmem);
    printf("hugepages: random chase over %zu MiB of 64-byte cells, ns per hop (best of 3)\n", mib);
    printf("  THP enabled: %s; shmem_enabled: %s\n", thp, shmem);

    double ns[2];
    for (int huge = 0; huge < 2; huge++) {
        struct cell *c = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (c == MAP_FAILED)
            return 1;
        madvise(c, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
        long before = bench_proc_kib("/proc/meminfo", "AnonHugePages");
        link_cells(c, order, n);
        long got = bench_proc_kib("/proc/meminfo", "AnonHugePages") - before;
        ns[huge] = best_chase(c);
        printf("  %-12s %6.1f ns  (AnonHugePages +%ld MiB)\n", huge ? "malloc THP" : "malloc 4K", ns[huge], got >> 10);
        munmap(c, bytes);
    }

    char *dir = bench_tempdir("huge");
    char path[4200];
    snprintf(path, sizeof path, "%s/store", dir);
    cairn_options o;
    cairn_options_init(&o);
    o.max_bytes = bytes * 2 + ((uint64_t)256 << 20);
    cairn_store *s;
    cairn_txn *t;
    struct cell *c;
    size_t ptrs[] = {0};
    cairn_type ct;
    bench_check(cairn_open(path, &o, &s), "open");
    bench_check(cairn_type_register(s, "cell", sizeof(struct cell), ptrs, 1, &ct), "type");
    bench_check(cairn_txn_begin(s, &t), "begin");
    bench_check(cairn_alloc(t, ct, n, (void **)&c), "alloc");
    link_cells(c, order, n);
    bench_check(cairn_root_set(t, "cells", c), "root");
    bench_check(cairn_txn_commit(t), "commit");
    bench_check(cairn_close(s), "close");

    long huge0 = bench_proc_kib("/proc/meminfo", "ShmemHugePages"),
         pmd0 = bench_proc_kib("/proc/meminfo", "ShmemPmdMapped");
    bench_check(cairn_open(path, &o, &s), "reopen");
    bench_check(cairn_root_get(s, "cells", (void **)&c), "root");
    double t0 = bench_now();
    chase(c); /* loads everything the chase reaches: all of it */
    double load = bench_now() - t0;
    long huge1 = bench_proc_kib("/proc/meminfo", "ShmemHugePages"),
         pmd1 = bench_proc_kib("/proc/meminfo", "ShmemPmdMapped");
    double cairn_ns = best_chase(c);
    cairn_stats st;
    bench_check(cairn_stats_get(s, &st), "stats");
    printf("  %-12s %6.1f ns  (ShmemHugePages +%ld MiB, ShmemPmdMapped +%ld MiB; %s backend; "
           "first pass, loading everything, %.2f s)\n",
           "cairn", cairn_ns, (huge1 - huge0) >> 10, (pmd1 - pmd0) >> 10,
           st.backend == CAIRN_BACKEND_UFFD ? "userfaultfd" : "mprotect", load);
    printf("  ratios: malloc THP / malloc 4K %.2f; cairn / malloc 4K %.2f\n", ns[1] / ns[0], cairn_ns / ns[0]);
    bench_check(cairn_close(s), "close");
    free(order);
    return bench_rmdir(dir);
}
