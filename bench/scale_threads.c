/*
 * scale_threads.c - cold reads from one thread against two, same store,
 * same run.
 *
 *   scale_threads [EXTENTS] [ROUNDS]
 *
 * Builds a store of EXTENTS extents of pointer-free data, then, each time
 * after a fresh reopen (everything cold): one thread touches one word per
 * page of the whole store; two threads each touch one half.  The two are
 * interleaved for ROUNDS rounds (default 5).  Prints the best and median
 * times, the speed-up of each, and the CPU time the process used: on a
 * machine where something else runs, the two-thread wall time stops being
 * half the CPU time, and the figure says so instead of hiding it.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

static double cpu_seconds(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Wall time of one cold pass; *cpu gets the CPU time it used. */
static double run(const char *path, uint64_t off, size_t pages, int threads, double *cpu)
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
    double c0 = cpu_seconds(), t0 = bench_now();
    for (int i = 0; i < threads; i++) {
        parts[i] = (struct part){base + off + (size_t)i * (pages / threads) * 4096, pages / threads, 0};
        pthread_create(&th[i], NULL, touch, &parts[i]);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    double t = bench_now() - t0;
    *cpu = cpu_seconds() - c0;
    bench_check(cairn_close(s), "close");
    return t;
}

int main(int argc, char **argv)
{
    size_t extents = argc > 1 ? (size_t)atol(argv[1]) : 4096;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    if (rounds < 1 || rounds > 64)
        rounds = 5;
    size_t pages = extents * 16;
    char *dir = bench_tempdir("scale");
    char path[4200];
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
    char load[64] = "?";
    FILE *la = fopen("/proc/loadavg", "r");
    if (la && fgets(load, sizeof load, la))
        load[strcspn(load, " ")] = 0;
    if (la)
        fclose(la);
    double t1[64], t2[64], cpu1 = 0, cpu2 = 0;
    for (int r = 0; r < rounds; r++) {
        double c;
        t1[r] = run(path, off, pages, 1, &c);
        cpu1 += c;
        t2[r] = run(path, off, pages, 2, &c);
        cpu2 += c;
    }
    qsort(t1, rounds, sizeof *t1, by_value);
    qsort(t2, rounds, sizeof *t2, by_value);
    printf("scale_threads: %zu extents (%zu MiB) cold, %d rounds, %ld cores online, load average %s at start\n",
           extents, pages * 4096 >> 20, rounds, sysconf(_SC_NPROCESSORS_ONLN), load);
    printf("  1 thread:  best %.0f ms, median %.0f ms, CPU %.0f ms per pass\n", t1[0] * 1e3, t1[rounds / 2] * 1e3,
           cpu1 / rounds * 1e3);
    printf("  2 threads: best %.0f ms, median %.0f ms, CPU %.0f ms per pass\n", t2[0] * 1e3, t2[rounds / 2] * 1e3,
           cpu2 / rounds * 1e3);
    printf("  speed-up: %.2fx best, %.2fx median\n", t1[0] / t2[0], t1[rounds / 2] / t2[rounds / 2]);
    return bench_rmdir(dir);
}
