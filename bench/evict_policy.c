/*
 * evict_policy.c - the clock against random eviction, same store, same
 * access sequence, same budget, in one run.
 *
 *   evict_policy [ACCESSES]
 *
 * A store of 1024 extents (64 MiB), budget 128 extents (8 MiB).  Each
 * access reads one cell: 90% from a hot set of 96 extents, 10% uniformly
 * from the whole store.  Reported: extent loads (misses), time.  Random
 * eviction is selected with CAIRN_EVICT_POLICY=random, a knob that exists
 * for this measurement.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define N_EXTENTS 1024
#define HOT 96

static volatile uint64_t sink;

static void run(const char *path, const char *policy, long accesses, uint64_t offset0)
{
    setenv("CAIRN_EVICT_POLICY", policy, 1);
    cairn_options o;
    cairn_options_init(&o);
    o.max_bytes = (uint64_t)1 << 30;
    o.cache_bytes = (uint64_t)128 * 65536;
    cairn_store *s;
    bench_check(cairn_open(path, &o, &s), "open");
    char *base;
    size_t len;
    cairn_range(s, (void **)&base, &len);
    uint64_t x = 12345;
    cairn_stats a, b;
    cairn_stats_get(s, &a);
    double t0 = bench_now();
    for (long i = 0; i < accesses; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t e = (x % 10) ? (x >> 8) % HOT * (N_EXTENTS / HOT) : (x >> 8) % N_EXTENTS;
        uint64_t word = (x >> 20) % 8192;
        sink += *(volatile uint64_t *)(base + offset0 + e * 65536 + word * 8);
    }
    double t1 = bench_now();
    cairn_stats_get(s, &b);
    printf("  %-6s %8llu extent loads for %ld accesses (miss rate %.3f), %.0f ms\n", policy,
           (unsigned long long)(b.extents_loaded - a.extents_loaded), accesses,
           (double)(b.extents_loaded - a.extents_loaded) / accesses, (t1 - t0) * 1e3);
    bench_check(cairn_close(s), "close");
}

int main(int argc, char **argv)
{
    long accesses = argc > 1 ? atol(argv[1]) : 200000;
    char *dir = bench_tempdir("evict");
    char path[4200];
    snprintf(path, sizeof path, "%s/store", dir);
    cairn_options o;
    cairn_options_init(&o);
    o.max_bytes = (uint64_t)1 << 30;
    cairn_store *s;
    cairn_txn *t;
    uint64_t *data;
    bench_check(cairn_open(path, &o, &s), "open");
    bench_check(cairn_txn_begin(s, &t), "begin");
    bench_check(cairn_alloc_bytes(t, (size_t)N_EXTENTS * 65536, (void **)&data), "alloc");
    for (size_t i = 0; i < (size_t)N_EXTENTS * 8192; i++)
        data[i] = i * 2654435761u;
    bench_check(cairn_root_set(t, "data", data), "root");
    bench_check(cairn_txn_commit(t), "commit");
    char *base;
    size_t len;
    cairn_range(s, (void **)&base, &len);
    uint64_t off = (uint64_t)((char *)data - base);
    bench_check(cairn_close(s), "close");
    printf("evict_policy: 1024 extents, budget 128, 90%% of accesses to %d hot extents\n", HOT);
    run(path, "clock", accesses, off);
    run(path, "random", accesses, off);
    return bench_rmdir(dir);
}
