/*
 * readahead.c - what a fault should bring in: the whole extent or just the
 * page, and whether reading ahead of a sequential walk pays.
 *
 *   readahead [EXTENTS]
 *
 * Builds a store of EXTENTS extents (default 4096 = 256 MiB) of
 * compressible data, then after a fresh open each time reads it:
 *   seq     one word per page, in order;
 *   random  one word in each of a random 1/16 of the pages (as many
 *           touches as there are extents; most extents are hit once).
 * under four settings, each with the page cache warm and (as root) after
 * dropping it:
 *   extent            a fault publishes all 16 pages of its extent (the
 *                     default);
 *   page              CAIRN_PUBLISH=page: a fault maps only its page; the
 *                     other 15 are loaded too (decompression works on the
 *                     whole extent) but each costs a trap of its own;
 *   extent, no RA     the default with the kernel's readahead on LMDB's
 *                     map switched off (CAIRN_LMDB_READAHEAD=0);
 *   extent + ahead    the default plus read-ahead done by the application:
 *                     a second thread runs cairn_prefault on the extents
 *                     after the walker's, up to 8 ahead (seq only).
 * The knobs exist only for this measurement.  userfaultfd backend.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static size_t g_pages;
static const char *g_path;
static char *g_data;
static atomic_size_t g_walker; /* page the walker is at */
static atomic_int g_stop;

static cairn_store *open_store(void)
{
    cairn_options o;
    cairn_options_init(&o);
    o.max_bytes = (uint64_t)4 << 30;
    cairn_store *s;
    bench_check(cairn_open(g_path, &o, &s), "open");
    bench_check(cairn_root_get(s, "data", (void **)&g_data), "root");
    return s;
}

/* The application's read-ahead: keep up to 8 extents prefaulted ahead of
 * the walker, releasing them behind it. */
static void *ahead(void *arg)
{
    cairn_store *s = arg;
    size_t next = 0; /* next page to prefault, a multiple of 16 */
    while (!atomic_load(&g_stop) && next < g_pages) {
        size_t at = atomic_load(&g_walker);
        /* Never work on the walker's own extent: both would load it, one
         * waiting for the other, and then move on in lockstep. */
        if (next <= at)
            next = at / 16 * 16 + 16;
        if (next >= at + 8 * 16) {
            sched_yield();
            continue;
        }
        bench_check(cairn_prefault(s, g_data + next * 4096, 16 * 4096, 0), "prefault");
        bench_check(cairn_release(s, g_data + next * 4096, 16 * 4096), "release");
        next += 16;
    }
    return NULL;
}

static double walk(int random, int with_ahead, uint64_t *sum)
{
    cairn_store *s = open_store();
    pthread_t th;
    atomic_store(&g_walker, 0);
    atomic_store(&g_stop, 0);
    double t0 = bench_now();
    if (with_ahead)
        pthread_create(&th, NULL, ahead, s);
    uint64_t x = 0x2545F4914F6CDD1Dull, acc = 0;
    if (random) {
        for (size_t i = 0; i < g_pages / 16; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            acc += *(volatile uint64_t *)(g_data + (x % g_pages) * 4096 + 8);
        }
    } else {
        for (size_t i = 0; i < g_pages; i++) {
            acc += *(volatile uint64_t *)(g_data + i * 4096 + 8);
            if ((i & 15) == 0)
                atomic_store_explicit(&g_walker, i, memory_order_relaxed);
        }
    }
    atomic_store(&g_stop, 1);
    if (with_ahead)
        pthread_join(th, NULL);
    double t = bench_now() - t0;
    *sum += acc;
    bench_check(cairn_close(s), "close");
    return t;
}

int main(int argc, char **argv)
{
    size_t extents = argc > 1 ? (size_t)atol(argv[1]) : 4096;
    g_pages = extents * 16;
    char *dir = bench_tempdir("readahead");
    char path[4200];
    snprintf(path, sizeof path, "%s/store", dir);
    g_path = path;
    setenv("CAIRN_FAULT_BACKEND", "uffd", 1);
    {
        cairn_options o;
        cairn_options_init(&o);
        o.max_bytes = (uint64_t)4 << 30;
        cairn_store *s;
        cairn_txn *t;
        uint64_t *d;
        bench_check(cairn_open(path, &o, &s), "open");
        bench_check(cairn_txn_begin(s, &t), "begin");
        bench_check(cairn_alloc_bytes(t, g_pages * 4096, (void **)&d), "alloc");
        for (size_t i = 0; i < g_pages * 512; i++)
            d[i] = i * 0x9E3779B97F4A7C15ull >> 20;
        bench_check(cairn_root_set(t, "data", d), "root");
        bench_check(cairn_txn_commit(t), "commit");
        bench_check(cairn_close(s), "close");
    }
    int can_drop = bench_drop_page_cache();
    printf("readahead: %zu extents (%zu MiB), userfaultfd; ms per pass, best of 3%s\n", extents, g_pages >> 8,
           can_drop ? "" : " (cold-disk column not measured: not root)");
    printf("  %-16s %12s %12s %12s %12s\n", "setting", "seq warm", "seq cold", "random warm", "random cold");
    struct {
        const char *name, *publish, *ra;
        int ahead;
    } settings[] = {
        {"extent", "extent", "1", 0},
        {"page", "page", "1", 0},
        {"extent, no RA", "extent", "0", 0},
        {"extent + ahead", "extent", "1", 1},
    };
    uint64_t sum = 0;
    for (size_t k = 0; k < sizeof settings / sizeof *settings; k++) {
        setenv("CAIRN_PUBLISH", settings[k].publish, 1);
        setenv("CAIRN_LMDB_READAHEAD", settings[k].ra, 1);
        double best[4] = {1e9, 1e9, 1e9, 1e9};
        for (int r = 0; r < 3; r++) {
            for (int c = 0; c < 4; c++) {
                int random = c >= 2, cold = c & 1;
                if (random && settings[k].ahead)
                    continue;
                if (cold && (!can_drop || !bench_drop_page_cache()))
                    continue;
                double t = walk(random, settings[k].ahead, &sum);
                best[c] = t < best[c] ? t : best[c];
            }
        }
        printf("  %-16s", settings[k].name);
        for (int c = 0; c < 4; c++) {
            if (best[c] < 1e9)
                printf(" %12.0f", best[c] * 1e3);
            else
                printf(" %12s", "-");
        }
        printf("\n");
    }
    printf("  (checksum %llx)\n", (unsigned long long)sum);
    return bench_rmdir(dir);
}
