/*
 * scale_threads.c - cold reads from one thread against two, same store,
 * same run.
 *
 *   scale_threads [EXTENTS]
 *
 * Builds a store of EXTENTS extents of pointer-free data, then, each time
 * after a fresh reopen (everything cold): one thread touches one word per
 * page of the whole store; two threads each touch one half.  Prints both
 * times and the speed-up.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

struct part {
    const char *from;
    size_t pages;
    uint64_t sum;
};

static void *touch(void *arg)
{
    struct part *p = arg;
    for (size_t i = 0; i < p->pages; i++)
        p->sum += *(volatile const uint64_t *)(p->from + i * 4096 + 8);
    return NULL;
}

static double run(const char *path, uint64_t off, size_t pages, int threads)
{
    cairn_store *s;
    cairn_options o;
    cairn_options_init(&o);
    o.max_bytes = (uint64_t)4 << 30;
    bench_check(cairn_open(path, &o, &s), "open");
    char *base;
    size_t len;
    cairn_range(s, (void **)&base, &len);
    pthread_t th[2];
    struct part parts[2];
    double t0 = bench_now();
    for (int i = 0; i < threads; i++) {
        parts[i] = (struct part){base + off + (size_t)i * (pages / threads) * 4096, pages / threads, 0};
        pthread_create(&th[i], NULL, touch, &parts[i]);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    double t = bench_now() - t0;
    bench_check(cairn_close(s), "close");
    return t;
}

int main(int argc, char **argv)
{
    size_t extents = argc > 1 ? (size_t)atol(argv[1]) : 4096;
    size_t pages = extents * 16;
    char dir[] = "/tmp/cairn-scale-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char path[64];
    snprintf(path, sizeof path, "%s/store", dir);
    cairn_options o;
    cairn_options_init(&o);
    o.max_bytes = (uint64_t)4 << 30;
    cairn_store *s;
    cairn_txn *t;
    uint64_t *data;
    bench_check(cairn_open(path, &o, &s), "open");
    bench_check(cairn_txn_begin(s, &t), "begin");
    bench_check(cairn_alloc_bytes(t, pages * 4096, (void **)&data), "alloc");
    for (size_t i = 0; i < pages * 512; i++)
        data[i] = i * 0x9E3779B97F4A7C15ull >> 20;
    bench_check(cairn_root_set(t, "data", data), "root");
    bench_check(cairn_txn_commit(t), "commit");
    char *base;
    size_t len;
    cairn_range(s, (void **)&base, &len);
    uint64_t off = (uint64_t)((char *)data - base);
    bench_check(cairn_close(s), "close");
    double best1 = 1e9, best2 = 1e9;
    for (int r = 0; r < 3; r++) {
        double a = run(path, off, pages, 1), b = run(path, off, pages, 2);
        best1 = a < best1 ? a : best1;
        best2 = b < best2 ? b : best2;
    }
    printf("scale_threads: %zu extents (%zu MiB) cold: 1 thread %.0f ms, 2 threads %.0f ms, speed-up %.2fx "
           "(best of 3; %ld cores online)\n",
           extents, pages * 4096 >> 20, best1 * 1e3, best2 * 1e3, best1 / best2, sysconf(_SC_NPROCESSORS_ONLN));
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
