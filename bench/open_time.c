/*
 * open_time.c - what opening a store costs: against the store's size when
 * it was closed cleanly, against the log's size after a crash.
 *
 *   open_time [BIG_GIB]
 *
 * Builds two stores side by side, 64 MiB and BIG_GIB (default 10) GiB of
 * objects with data in every extent, then:
 *   - clean open: cairn_open + cairn_close of each store, ten times, page
 *     cache warm; and once after dropping the page cache when we may
 *     (root), which is the cold figure;
 *   - crash open: a child process commits transactions of 64 random-page
 *     updates each until the log holds L bytes, then exits without closing
 *     (no checkpoint ran: checkpoint_bytes is set past L); the parent times
 *     the cairn_open that recovers it.  L = 1, 8, 64 MiB, on both stores.
 *     Recovery rewrites every extent the log touches (load, apply,
 *     compress, one LMDB transaction), so the figure printed beside the
 *     time is the number of distinct extents the log wrote, and after it
 *     the process's peak RSS so far (recovery holds at most 4,096 extent
 *     images at a time).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define CHUNK_PAGES 65536 /* objects of 256 MiB */

static void options(cairn_options *o, uint64_t bytes)
{
    cairn_options_init(o);
    o->max_bytes = bytes + bytes / 16 + ((uint64_t)64 << 20); /* room for descriptors */
    o->cache_bytes = (uint64_t)256 << 20;
    o->checkpoint_bytes = (uint64_t)1 << 40; /* no background checkpoint */
}

/* Objects covering `bytes`, the first word of every extent's first page
 * written, one transaction and one checkpoint per 256 MiB. */
static void build(const char *path, uint64_t bytes)
{
    cairn_options o;
    options(&o, bytes);
    cairn_store *s;
    cairn_txn *t;
    bench_check(cairn_open(path, &o, &s), "open");
    uint64_t chunk = bytes / 4096 < CHUNK_PAGES ? bytes / 4096 : CHUNK_PAGES;
    for (uint64_t done = 0; done < bytes; done += chunk * 4096) {
        uint64_t *obj;
        bench_check(cairn_txn_begin(s, &t), "begin");
        bench_check(cairn_alloc_bytes(t, (size_t)chunk * 4096, (void **)&obj), "alloc");
        for (uint64_t i = 0; i < chunk; i += 16)
            obj[i * 512] = done / 4096 + i + 1;
        if (done == 0)
            bench_check(cairn_root_set(t, "first", obj), "root");
        bench_check(cairn_txn_commit(t), "commit");
        bench_check(cairn_checkpoint(s), "checkpoint");
    }
    bench_check(cairn_close(s), "close");
}

static double open_close(const char *path, uint64_t bytes, double *close_s)
{
    cairn_options o;
    options(&o, bytes);
    cairn_store *s;
    double t0 = bench_now();
    bench_check(cairn_open(path, &o, &s), "open");
    double t = bench_now() - t0;
    t0 = bench_now();
    bench_check(cairn_close(s), "close");
    if (close_s)
        *close_s = bench_now() - t0;
    return t;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Child: commit random updates until the log holds log_bytes, then die
 * without closing.  Returns the number of distinct extents written. */
static uint64_t crash_with_log(const char *path, uint64_t bytes, uint64_t log_bytes)
{
    int fds[2];
    if (pipe(fds) != 0)
        exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        cairn_options o;
        options(&o, bytes);
        o.cache_bytes = 0;
        cairn_store *s;
        cairn_txn *t;
        uint64_t *first;
        bench_check(cairn_open(path, &o, &s), "open");
        bench_check(cairn_root_get(s, "first", (void **)&first), "root");
        uint64_t pages = bytes / 4096, x = 0x9E3779B97F4A7C15ull, extents = 0;
        unsigned char *seen = calloc(pages / 16 + 1, 1);
        cairn_stats st;
        do {
            bench_check(cairn_txn_begin(s, &t), "begin");
            for (int i = 0; i < 64; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                uint64_t page = x % pages;
                first[page * 512 + 1 + (x >> 40) % 511] = x;
                extents += !seen[page / 16];
                seen[page / 16] = 1;
            }
            bench_check(cairn_txn_commit(t), "commit");
            bench_check(cairn_stats_get(s, &st), "stats");
        } while (st.wal_bytes < log_bytes);
        if (write(fds[1], &extents, sizeof extents) != sizeof extents)
            _exit(1);
        _exit(0); /* a crash: no close, no checkpoint */
    }
    close(fds[1]);
    uint64_t extents = 0;
    if (read(fds[0], &extents, sizeof extents) != sizeof extents)
        extents = 0;
    close(fds[0]);
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "open_time: crashing child failed\n");
        exit(1);
    }
    return extents;
}

static uint64_t file_size(const char *dir, const char *name)
{
    char p[8500];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

int main(int argc, char **argv)
{
    uint64_t big_gib = argc > 1 ? (uint64_t)atoll(argv[1]) : 10;
    char *dir = bench_tempdir("open");
    char paths[2][4200];
    uint64_t sizes[2] = {(uint64_t)64 << 20, big_gib << 30};
    snprintf(paths[0], sizeof paths[0], "%s/small", dir);
    snprintf(paths[1], sizeof paths[1], "%s/big", dir);
    for (int i = 0; i < 2; i++) {
        double t0 = bench_now();
        build(paths[i], sizes[i]);
        printf("open_time: built %" PRIu64 " MiB of objects in %.1f s, data.mdb %.1f MiB\n", sizes[i] >> 20,
               bench_now() - t0, file_size(paths[i], "data.mdb") / 1048576.0);
    }

    printf("clean open (cairn_open; median of 10, page cache warm | once after dropping the page cache):\n");
    for (int i = 0; i < 2; i++) {
        double t[10], close_s;
        for (int r = 0; r < 10; r++)
            t[r] = open_close(paths[i], sizes[i], &close_s);
        qsort(t, 10, sizeof *t, by_value);
        char cold[32] = "not measured (not root)";
        if (bench_drop_page_cache())
            snprintf(cold, sizeof cold, "%.2f ms", open_close(paths[i], sizes[i], NULL) * 1e3);
        printf("  %6" PRIu64 " MiB store: %.2f ms warm | %s cold; close %.2f ms\n", sizes[i] >> 20, t[5] * 1e3, cold,
               close_s * 1e3);
    }

    printf("open after a crash (recovery of the log; page cache warm):\n");
    uint64_t logs[] = {1 << 20, 8 << 20, 64 << 20};
    for (int i = 0; i < 2; i++) {
        for (int l = 0; l < 3; l++) {
            uint64_t extents = crash_with_log(paths[i], sizes[i], logs[l]);
            uint64_t wal = file_size(paths[i], "wal");
            double t = open_close(paths[i], sizes[i], NULL);
            printf("  %6" PRIu64 " MiB store, log %5.1f MiB writing %6" PRIu64 " extents: open %7.1f ms "
                   "(%.1f ms per MiB of log, %.1f us per extent); peak RSS so far %ld MiB\n",
                   sizes[i] >> 20, wal / 1048576.0, extents, t * 1e3, t * 1e3 / (wal / 1048576.0),
                   t * 1e6 / (double)extents, bench_proc_kib("/proc/self/status", "VmHWM") >> 10);
        }
    }
    return bench_rmdir(dir);
}
