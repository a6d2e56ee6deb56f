/*
 * commit_rate.c - durable one-update transactions, cairn against LMDB,
 * side by side in one run.
 *
 *   commit_rate [-k COMMITS] [-r RUNS]
 *
 * What a program that makes every small change durable gets: each thread
 * loops COMMITS times (default 2000) { begin; change one 8-byte word;
 * commit }, fully synced, with 1 and with 4 committing threads:
 *   cairn     a fresh store (default options, CAIRN_SYNC_FULL); each
 *             thread's counter on its own 4 KiB page.  One write
 *             transaction per store, so threads queue in cairn_txn_begin;
 *             what 4 threads can win is shared log syncs (group commit),
 *             shown as commits per log sync from cairn_stats;
 *   LMDB      a fresh environment, default flags (synced), one database;
 *             a put of key = thread id, value = counter per transaction.
 *             Threads queue on LMDB's writer lock: the peer as it is;
 *   cairn, 1 thread, checkpoints running
 *             a 16 MiB region, each commit changes a word on a random
 *             page, while another thread checkpoints every 5 ms, so that
 *             checkpoints have work and commits that wait for one show
 *             in the latency tail.
 * Each commit is timed from begin to commit's return.  Per workload: the
 * rate of all threads together (median of RUNS runs, default 3, with
 * min..max), latency percentiles pooled over the runs, and for cairn the
 * commits per log sync.  Runs alternate the order of the peers (cairn
 * first, then LMDB first, ...), every run in fresh directories.  The
 * ceiling any synced log has, 1 / fdatasync of a 128-byte append on the
 * same file system, is measured in the same run; the ratios are printed
 * beside the targets they are meant to meet (never asserted: timing on a
 * shared machine is not a test).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "bench.h"

#define PAGE 4096
#define MAX_THREADS 4
#define RANDOM_PAGES 4096 /* the checkpoint variant's region: 16 MiB */
#define SYNC_SAMPLES 200

enum workload { CAIRN_1, CAIRN_4, CAIRN_CKPT, LMDB_1, LMDB_4, WORKLOADS };

static const struct {
    const char *name;
    int threads, lmdb, checkpoints;
} workload[WORKLOADS] = {
    [CAIRN_1] = {"cairn, 1 thread", 1, 0, 0},
    [CAIRN_4] = {"cairn, 4 threads", 4, 0, 0},
    [CAIRN_CKPT] = {"cairn, 1 thread, checkpoints running", 1, 0, 1},
    [LMDB_1] = {"LMDB, 1 thread", 1, 1, 0},
    [LMDB_4] = {"LMDB, 4 threads", 4, 1, 0},
};

/* What one workload gathered over all runs. */
struct result {
    double *rate;         /* commits/s of each run */
    double *lat;          /* every commit's latency, runs * threads * k */
    uint64_t commits;     /* cairn: summed over the runs' timed parts */
    uint64_t syncs;       /* cairn: log syncs over the same */
    uint64_t checkpoints; /* cairn: checkpoints over the same */
};

/* One run of one workload, shared by its threads. */
struct ctx {
    long k;
    int threads;
    pthread_barrier_t barrier; /* threads + the main thread */
    cairn_store *s;
    char *region; /* page-aligned; thread i's counter at region + i * PAGE */
    int random_pages;
    MDB_env *env;
    MDB_dbi dbi;
    atomic_int stop; /* tells the checkpointer to stop */
};

struct worker {
    struct ctx *c;
    int id;
    double *lat; /* k latencies */
    double t0, t1;
};

/* Stop on an LMDB error, as bench_check does for cairn's. */
static void lmdb_check(int rc, const char *what)
{
    if (rc != MDB_SUCCESS) {
        fprintf(stderr, "benchmark: lmdb %s: %s\n", what, mdb_strerror(rc));
        exit(1);
    }
}

/* Stop on a failed system or pthread call (rc is an errno value). */
static void sys_check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "benchmark: %s: %s\n", what, strerror(rc));
        exit(1);
    }
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n values (sorts them). */
static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, by_value);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Nearest-rank percentile of n sorted values. */
static double percentile(const double *sorted, size_t n, double p)
{
    size_t rank = (size_t)(p * n + 0.999999);
    return sorted[rank ? (rank > n ? n : rank) - 1 : 0];
}

/* A fixed-seed generator (splitmix64): the random pages are the same
 * sequence in every run, so runs differ only in timing. */
static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The ceiling of any synced log here: the median of SYNC_SAMPLES appends
 * of 128 bytes, each followed by fdatasync, in dir's file system.  In
 * seconds per sync. */
static double fdatasync_seconds(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/sync-probe", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        sys_check(errno, "open");
    char rec[128];
    memset(rec, 0x5a, sizeof rec);
    double t[SYNC_SAMPLES];
    for (int i = 0; i < SYNC_SAMPLES; i++) {
        double t0 = bench_now();
        if (pwrite(fd, rec, sizeof rec, (off_t)i * (off_t)sizeof rec) != (ssize_t)sizeof rec)
            sys_check(errno ? errno : EIO, "pwrite");
        if (fdatasync(fd) != 0)
            sys_check(errno, "fdatasync");
        t[i] = bench_now() - t0;
    }
    close(fd);
    unlink(path);
    return median(t, SYNC_SAMPLES);
}

/* The word a cairn thread changes next: its own page's counter, or a
 * word on a random page of the region for the checkpoint variant. */
static uint64_t *cairn_target(struct ctx *c, int id, uint64_t *rng)
{
    size_t page = c->random_pages ? splitmix64(rng) % RANDOM_PAGES : (size_t)id;
    return (uint64_t *)(c->region + page * PAGE);
}

/* A cairn committer: one warm commit (its page loaded and written once,
 * its thread's first-use costs paid), then, after every thread is ready
 * and the main thread has read the counters, k timed commits. */
static void *cairn_worker(void *arg)
{
    struct worker *w = arg;
    struct ctx *c = w->c;
    uint64_t rng = 42 + (uint64_t)w->id;
    cairn_txn *tx;
    if (!c->random_pages) { /* the checkpoint variant warmed every page in setup */
        bench_check(cairn_txn_begin(c->s, &tx), "begin");
        (*cairn_target(c, w->id, &rng))++;
        bench_check(cairn_txn_commit(tx), "commit");
    }
    pthread_barrier_wait(&c->barrier); /* ready */
    pthread_barrier_wait(&c->barrier); /* go */
    w->t0 = bench_now();
    for (long i = 0; i < c->k; i++) {
        double t0 = bench_now();
        bench_check(cairn_txn_begin(c->s, &tx), "begin");
        (*cairn_target(c, w->id, &rng))++;
        bench_check(cairn_txn_commit(tx), "commit");
        w->lat[i] = bench_now() - t0;
    }
    w->t1 = bench_now();
    return NULL;
}

/* One put of (thread id, counter) in its own synced write transaction. */
static void lmdb_commit(struct ctx *c, uint64_t key, uint64_t value)
{
    MDB_txn *t;
    MDB_val k = {sizeof key, &key}, v = {sizeof value, &value};
    lmdb_check(mdb_txn_begin(c->env, NULL, 0, &t), "txn_begin");
    lmdb_check(mdb_put(t, c->dbi, &k, &v, 0), "put");
    lmdb_check(mdb_txn_commit(t), "txn_commit");
}

/* An LMDB committer: one warm transaction, then k timed ones. */
static void *lmdb_worker(void *arg)
{
    struct worker *w = arg;
    struct ctx *c = w->c;
    uint64_t counter = 0;
    lmdb_commit(c, (uint64_t)w->id, ++counter);
    pthread_barrier_wait(&c->barrier);
    pthread_barrier_wait(&c->barrier);
    w->t0 = bench_now();
    for (long i = 0; i < c->k; i++) {
        double t0 = bench_now();
        lmdb_commit(c, (uint64_t)w->id, ++counter);
        w->lat[i] = bench_now() - t0;
    }
    w->t1 = bench_now();
    return NULL;
}

/* The checkpoint variant's other thread: a checkpoint, 5 ms of sleep,
 * again, until told to stop; each checkpoint writes back the pages
 * committed since the last. */
static void *checkpointer(void *arg)
{
    struct ctx *c = arg;
    const struct timespec pause = {0, 5 * 1000 * 1000};
    while (!atomic_load(&c->stop)) {
        bench_check(cairn_checkpoint(c->s), "checkpoint");
        nanosleep(&pause, NULL);
    }
    return NULL;
}

/* A fresh cairn store in dir with the region the workload writes: one
 * page per thread (plus one, to align it to a page), or RANDOM_PAGES
 * pages written once each and checkpointed, so the timed commits neither
 * load pages nor find a log left by the setup. */
static void cairn_setup(struct ctx *c, const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/store", dir);
    cairn_options o;
    cairn_options_init(&o);
    bench_check(cairn_open(path, &o, &c->s), "open");
    size_t pages = c->random_pages ? RANDOM_PAGES : (size_t)c->threads;
    cairn_txn *tx;
    void *p;
    bench_check(cairn_txn_begin(c->s, &tx), "begin");
    bench_check(cairn_alloc_bytes(tx, (pages + 1) * PAGE, &p), "alloc");
    bench_check(cairn_root_set(tx, "counters", p), "root");
    bench_check(cairn_txn_commit(tx), "commit");
    c->region = (char *)(((uintptr_t)p + PAGE - 1) & ~(uintptr_t)(PAGE - 1));
    if (c->random_pages) {
        bench_check(cairn_txn_begin(c->s, &tx), "begin");
        for (size_t i = 0; i < pages; i++)
            (*(uint64_t *)(c->region + i * PAGE))++;
        bench_check(cairn_txn_commit(tx), "commit");
        bench_check(cairn_checkpoint(c->s), "checkpoint");
    }
}

/* A fresh LMDB environment in dir: default (synced) flags, 64 MiB map,
 * the unnamed database. */
static void lmdb_setup(struct ctx *c, const char *dir)
{
    MDB_txn *t;
    lmdb_check(mdb_env_create(&c->env), "env_create");
    lmdb_check(mdb_env_set_mapsize(c->env, (size_t)64 << 20), "set_mapsize");
    lmdb_check(mdb_env_open(c->env, dir, 0, 0644), "env_open");
    lmdb_check(mdb_txn_begin(c->env, NULL, 0, &t), "txn_begin");
    lmdb_check(mdb_dbi_open(t, NULL, 0, &c->dbi), "dbi_open");
    lmdb_check(mdb_txn_commit(t), "txn_commit");
}

/* One run of workload wl in fresh directories: its rate goes to the
 * run's slot, its latencies to their place in the pool, cairn's counters
 * (between the warm-up and the end of the timed part) to the sums. */
static void run_workload(enum workload wl, long k, int run, struct result *res)
{
    char *dir = bench_tempdir("commit_rate");
    struct ctx c = {.k = k, .threads = workload[wl].threads, .random_pages = workload[wl].checkpoints};
    atomic_init(&c.stop, 0);
    if (workload[wl].lmdb)
        lmdb_setup(&c, dir);
    else
        cairn_setup(&c, dir);
    sys_check(pthread_barrier_init(&c.barrier, NULL, (unsigned)c.threads + 1), "barrier");
    pthread_t th[MAX_THREADS], ckpt;
    struct worker w[MAX_THREADS];
    for (int i = 0; i < c.threads; i++) {
        w[i] = (struct worker){&c, i, res->lat + ((size_t)run * c.threads + i) * k, 0, 0};
        sys_check(pthread_create(&th[i], NULL, workload[wl].lmdb ? lmdb_worker : cairn_worker, &w[i]),
                  "pthread_create");
    }
    pthread_barrier_wait(&c.barrier); /* every thread warmed */
    cairn_stats before = {0}, after = {0};
    if (!workload[wl].lmdb)
        bench_check(cairn_stats_get(c.s, &before), "stats");
    if (workload[wl].checkpoints)
        sys_check(pthread_create(&ckpt, NULL, checkpointer, &c), "pthread_create");
    pthread_barrier_wait(&c.barrier); /* go */
    double t0 = 1e300, t1 = 0;
    for (int i = 0; i < c.threads; i++) {
        sys_check(pthread_join(th[i], NULL), "pthread_join");
        t0 = w[i].t0 < t0 ? w[i].t0 : t0;
        t1 = w[i].t1 > t1 ? w[i].t1 : t1;
    }
    if (workload[wl].checkpoints) {
        atomic_store(&c.stop, 1);
        sys_check(pthread_join(ckpt, NULL), "pthread_join");
    }
    res->rate[run] = (double)c.threads * k / (t1 - t0);
    pthread_barrier_destroy(&c.barrier);
    if (workload[wl].lmdb) {
        mdb_env_close(c.env);
    } else {
        bench_check(cairn_stats_get(c.s, &after), "stats");
        res->commits += after.commits - before.commits;
        res->syncs += after.log_syncs - before.log_syncs;
        res->checkpoints += after.checkpoints - before.checkpoints;
        bench_check(cairn_close(c.s), "close");
    }
    if (bench_rmdir(dir) != 0)
        exit(1);
}

/* One line of the table: rate median (min..max), pooled latency
 * percentiles, commits per sync for cairn. */
static double report(enum workload wl, struct result *res, int runs, long k)
{
    double lo = res->rate[0], hi = res->rate[0];
    for (int r = 1; r < runs; r++) {
        lo = res->rate[r] < lo ? res->rate[r] : lo;
        hi = res->rate[r] > hi ? res->rate[r] : hi;
    }
    double rate = median(res->rate, (size_t)runs);
    size_t n = (size_t)runs * workload[wl].threads * k;
    qsort(res->lat, n, sizeof *res->lat, by_value);
    char range[64], per_sync[64] = "-";
    snprintf(range, sizeof range, "%.0f (%.0f..%.0f)", rate, lo, hi);
    if (!workload[wl].lmdb && res->syncs)
        snprintf(per_sync, sizeof per_sync, "%.2f", (double)res->commits / res->syncs);
    printf("%-38s %-24s %8.1f %8.1f %8.1f %8.1f %10s\n", workload[wl].name, range, percentile(res->lat, n, 0.50) * 1e6,
           percentile(res->lat, n, 0.99) * 1e6, percentile(res->lat, n, 0.999) * 1e6, res->lat[n - 1] * 1e6, per_sync);
    return rate;
}

static void usage(void)
{
    fprintf(stderr, "usage: commit_rate [-k COMMITS per thread] [-r RUNS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    long k = 2000;
    int runs = 3, opt;
    while ((opt = getopt(argc, argv, "k:r:")) != -1) {
        if (opt == 'k')
            k = atol(optarg);
        else if (opt == 'r')
            runs = atoi(optarg);
        else
            usage();
    }
    if (k < 1 || runs < 1 || optind != argc)
        usage();

    char *probe = bench_tempdir("commit_rate");
    double sync_s = fdatasync_seconds(probe);
    if (bench_rmdir(probe) != 0)
        return 1;

    struct result res[WORKLOADS] = {{0}};
    for (int wl = 0; wl < WORKLOADS; wl++) {
        res[wl].rate = calloc((size_t)runs, sizeof(double));
        res[wl].lat = calloc((size_t)runs * workload[wl].threads * k, sizeof(double));
        if (!res[wl].rate || !res[wl].lat)
            sys_check(ENOMEM, "calloc");
    }
    /* Even runs: cairn's workloads first; odd runs: LMDB's first. */
    static const enum workload order[2][WORKLOADS] = {{CAIRN_1, CAIRN_4, CAIRN_CKPT, LMDB_1, LMDB_4},
                                                      {LMDB_1, LMDB_4, CAIRN_1, CAIRN_4, CAIRN_CKPT}};
    for (int r = 0; r < runs; r++)
        for (int i = 0; i < WORKLOADS; i++)
            run_workload(order[r % 2][i], k, r, &res[order[r % 2][i]]);

    printf("commit_rate: durable one-update transactions, %ld commits per thread, %d runs (peer order alternating)\n",
           k, runs);
    printf("1/fdatasync (128 B append, median of %d): %.0f /s (%.1f us)\n", SYNC_SAMPLES, 1 / sync_s, sync_s * 1e6);
    printf("%-38s %-24s %8s %8s %8s %8s %10s\n", "workload", "commits/s (min..max)", "p50 us", "p99 us", "p99.9 us",
           "max us", "commits/sync");
    double rate[WORKLOADS];
    for (int wl = 0; wl < WORKLOADS; wl++)
        rate[wl] = report((enum workload)wl, &res[wl], runs, k);
    printf("checkpoints beside the checkpoint variant's commits: %.0f per run (its log syncs include theirs)\n",
           (double)res[CAIRN_CKPT].checkpoints / runs);

    printf("ratios (median rates):\n");
    printf("  cairn 4 threads / cairn 1 thread   %6.2fx   (target >= 3x)\n", rate[CAIRN_4] / rate[CAIRN_1]);
    printf("  cairn 1 thread / LMDB 1 thread     %6.2fx   (target >= 1.5x)\n", rate[CAIRN_1] / rate[LMDB_1]);
    printf("  cairn 4 threads / LMDB 4 threads   %6.2fx   (target >= 4x)\n", rate[CAIRN_4] / rate[LMDB_4]);
    printf("  cairn 1 thread / (1/fdatasync)     %6.2f    (target >= 0.80)\n", rate[CAIRN_1] * sync_s);
    for (int wl = 0; wl < WORKLOADS; wl++) {
        free(res[wl].rate);
        free(res[wl].lat);
    }
    return 0;
}
