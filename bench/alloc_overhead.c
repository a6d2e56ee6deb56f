/*
 * alloc_overhead.c - space the allocator uses per byte requested, against
 * glibc malloc in the same run.
 *
 *   alloc_overhead
 *
 * For each object size, allocate about 16 MiB of objects in a fresh store
 * (one transaction), and report pages taken (high-water mark, including
 * the descriptor pages the objects need) / bytes requested; then the same
 * with malloc, measured by mallinfo2() (bytes in use incl. chunk headers).
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

int main(void)
{
    static const size_t sizes[] = {8,    16,   24,   32,   48,   64,   100,   200,   500,
                                   1000, 1500, 2000, 2049, 3000, 5000, 10000, 100000};
    printf("%8s %10s %14s %14s %14s\n", "size", "objects", "cairn bytes/B", "malloc bytes/B", "cairn/malloc");
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t sz = sizes[i], n = (16u << 20) / sz;
        char *dir = bench_tempdir("alloc");
        cairn_options o;
        cairn_options_init(&o);
        o.max_bytes = (uint64_t)4 << 30;
        cairn_store *s;
        cairn_txn *t;
        bench_check(cairn_open(dir, &o, &s), "open");
        bench_check(cairn_txn_begin(s, &t), "begin");
        for (size_t k = 0; k < n; k++) {
            void *p;
            bench_check(cairn_alloc_bytes(t, sz, &p), "alloc");
        }
        bench_check(cairn_txn_commit(t), "commit");
        cairn_stats st;
        cairn_stats_get(s, &st);
        /* descriptors: 128 bytes per page used */
        double cairn_bytes = (double)st.pages_allocated * (4096 + 128);
        bench_check(cairn_close(s), "close");
        if (bench_rmdir(dir))
            return 1;

        struct mallinfo2 a = mallinfo2();
        void **ptrs = malloc(n * sizeof *ptrs);
        for (size_t k = 0; k < n; k++)
            ptrs[k] = malloc(sz);
        struct mallinfo2 b = mallinfo2();
        double malloc_bytes = (double)(b.uordblks - a.uordblks) + (double)(b.hblkhd - a.hblkhd) - n * sizeof *ptrs;
        for (size_t k = 0; k < n; k++)
            free(ptrs[k]);
        free(ptrs);
        double req = (double)n * sz;
        printf("%8zu %10zu %14.3f %14.3f %14.2f\n", sz, n, cairn_bytes / req, malloc_bytes / req,
               cairn_bytes / malloc_bytes);
    }
    return 0;
}
