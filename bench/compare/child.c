/*
 * child.c - one measurement, in a process of its own: the driver runs
 * this program again with --child PHASE PEER ..., reads the "R name value"
 * and "C kind hops sum" lines it prints, and compares every checksum with
 * the oracle's.  A fresh process per cold measurement is the point: no
 * peer keeps anything in its own memory between build and walk, and peak
 * RSS (VmHWM) belongs to one phase.
 *
 * Phases:
 *   build            build the graph and make it durable (persistent peers);
 *                    for the in-memory peer: build, then warm and sample
 *                    walks in the same process
 *   cold T [1]       open, full walk with T threads (the timed part includes
 *                    the open); with T = 1 then warm walks with 1, 2, 4 threads
 *                    (unless the second argument is 1: for profiling)
 *   sample           open, random walk of n/100 steps from the root
 *   update K         K random counter increments, one durable transaction
 *                    each; reopen and verify every counter
 *   ltm BUDGET STEPS open with a memory budget, random walk of STEPS steps
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "compare.h"

void report(const char *name, double value)
{
    printf("R %s %.17g\n", name, value);
    fflush(stdout);
}

void report_walk(const char *kind, walk_sum ws)
{
    printf("C %s %" PRIu64 " %" PRIu64 "\n", kind, ws.hops, ws.sum);
    fflush(stdout);
}

_Noreturn void die(const char *peer, const char *what, const char *detail)
{
    fprintf(stderr, "compare: %s: %s: %s\n", peer, what, detail);
    exit(2);
}

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A number from a "Name: value" line of a /proc file, or 0. */
static uint64_t proc_field(const char *file, const char *field)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return 0;
    char line[256];
    size_t fl = strlen(field);
    uint64_t v = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
            v = strtoull(line + fl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static uint64_t peak_rss_kb(void)
{
    return proc_field("/proc/self/status", "VmHWM");
}

/* Bytes this process caused to be written to storage (all its threads,
 * flushers included), page-granular: 0 where I/O accounting is off. */
static uint64_t written_bytes(void)
{
    return proc_field("/proc/self/io", "write_bytes");
}

uint64_t dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    uint64_t sum = 0;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) != 0)
            continue;
        sum += S_ISDIR(st.st_mode) ? dir_bytes(p) : (uint64_t)st.st_blocks * 512;
    }
    closedir(d);
    return sum;
}

struct walker {
    const peer_ops *P;
    void *h;
    int part, nparts;
    walk_sum ws;
};

static void *walker_main(void *arg)
{
    struct walker *w = arg;
    void *r = w->P->reader_begin(w->h);
    w->ws = w->P->walk_full(r, w->part, w->nparts);
    w->P->reader_end(r);
    return NULL;
}

/* The full walk split among T threads; the checksums add up. */
static walk_sum walk_threads(const peer_ops *P, void *h, int T)
{
    pthread_t th[MAX_THREADS];
    struct walker w[MAX_THREADS];
    for (int i = 0; i < T; i++) {
        w[i] = (struct walker){P, h, i, T, {0, 0}};
        if (pthread_create(&th[i], NULL, walker_main, &w[i]) != 0)
            die(P->name, "pthread_create", "");
    }
    walk_sum total = {0, 0};
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        total.hops += w[i].ws.hops;
        total.sum += w[i].ws.sum;
    }
    return total;
}

/* Warm walks with 1, 2, 4 threads: best of up to three, within ~2 s. */
static void warm_walks(const peer_ops *P, void *h)
{
    static const int threads[] = {1, 2, 4};
    for (int k = 0; k < 3; k++) {
        int T = threads[k];
        double best = 1e300, spent = 0;
        walk_sum ws = {0, 0};
        for (int rep = 0; rep < 3 && (rep == 0 || spent < 2.0); rep++) {
            double t0 = now_s();
            ws = walk_threads(P, h, T);
            double t = now_s() - t0;
            spent += t;
            best = t < best ? t : best;
        }
        char name[32];
        snprintf(name, sizeof name, "warm_T%d", T);
        report(name, ws.hops / best);
        report_walk("full", ws);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void phase_update(const peer_ops *P, const char *dir, const graph *g, uint64_t K)
{
    uint64_t *ids = malloc(K * sizeof *ids);
    uint64_t rng = g_rand_seed(g->seed ^ SEED_UPDATE);
    for (uint64_t k = 0; k < K; k++)
        ids[k] = g_rand(&rng) % g->n;
    void *h = P->open(dir, g, 0);
    uint64_t w0 = written_bytes(), l0 = P->log_bytes ? P->log_bytes(h) : 0;
    double t0 = now_s();
    for (uint64_t k = 0; k < K; k++)
        P->update(h, ids[k]);
    double t = now_s() - t0;
    uint64_t w1 = written_bytes(), l1 = P->log_bytes ? P->log_bytes(h) : 0;
    report("upd_rate", K / t);
    report("upd_written_per", (double)(w1 - w0) / K);
    if (P->log_bytes)
        report("upd_log_per", (double)(l1 - l0) / K);
    P->close(h);
    report("upd_rss_kb", (double)peak_rss_kb());

    /* Reopened: every counter holds the number of times its node was
     * incremented, and nothing else moved (the walks verify the rest). */
    h = P->open(dir, g, 0);
    qsort(ids, K, sizeof *ids, cmp_u64);
    for (uint64_t k = 0; k < K;) {
        uint64_t j = k;
        while (j < K && ids[j] == ids[k])
            j++;
        if (P->counter(h, ids[k]) != j - k)
            g_fail("counter after reopen differs from the updates made", ids[k]);
        k = j;
    }
    P->close(h);
    free(ids);
}

int child_main(int argc, char **argv)
{
    /* --child PHASE PEER N SEED DIR [ARG [ARG]] */
    if (argc < 7)
        die("child", "usage", "--child PHASE PEER N SEED DIR [ARGS]");
    const char *phase = argv[2];
    const peer_ops *P = peer_by_name(argv[3]);
    graph g = {strtoull(argv[4], NULL, 10), strtoull(argv[5], NULL, 10)};
    const char *dir = argv[6];
    uint64_t a1 = argc > 7 ? strtoull(argv[7], NULL, 10) : 0;
    uint64_t a2 = argc > 8 ? strtoull(argv[8], NULL, 10) : 0;
    if (!P)
        die("child", "unknown peer", argv[3]);

    if (strcmp(phase, "build") == 0) {
        double logical = (double)g_logical_bytes(&g);
        uint64_t w0 = written_bytes();
        double t0 = now_s();
        void *h = NULL;
        if (P->persistent)
            P->build(dir, &g);
        else
            h = P->open(dir, &g, 0);
        double t = now_s() - t0;
        report("load_rate", g.n / t);
        report("load_mbs", logical / t / 1e6);
        report("load_s", t);
        report("load_rss_kb", (double)peak_rss_kb());
        if (P->persistent) {
            report("load_written", (double)(written_bytes() - w0));
            report("disk_bytes", (double)dir_bytes(dir));
        } else {
            warm_walks(P, h);
            void *r = P->reader_begin(h);
            t0 = now_s();
            walk_sum ws = P->walk_random(r, g.seed ^ SEED_SAMPLE, g.n / 100);
            report("sample_warm_rate", ws.hops / (now_s() - t0));
            report_walk("sample", ws);
            if (a2) { /* the larger-than-memory walk, for its checksum */
                ws = P->walk_random(r, g.seed ^ SEED_LTM, a2);
                report_walk("ltm", ws);
            }
            P->reader_end(r);
            P->close(h);
        }
    } else if (strcmp(phase, "cold") == 0) {
        int T = (int)a1;
        if (T < 1 || T > MAX_THREADS)
            die("child", "threads", "1..4");
        double t0 = now_s();
        void *h = P->open(dir, &g, 0);
        walk_sum ws = walk_threads(P, h, T);
        double t = now_s() - t0;
        char name[32];
        snprintf(name, sizeof name, "cold_T%d", T);
        report(name, ws.hops / t);
        snprintf(name, sizeof name, "cold_s_T%d", T);
        report(name, t);
        report_walk("full", ws);
        if (T == 1 && a2 == 0) { /* a2 = 1: the cold walk alone, for profiling */
            report("cold_rss_kb", (double)peak_rss_kb());
            warm_walks(P, h);
            report("warm_rss_kb", (double)peak_rss_kb());
        }
        P->close(h);
    } else if (strcmp(phase, "sample") == 0) {
        double t0 = now_s();
        void *h = P->open(dir, &g, 0);
        void *r = P->reader_begin(h);
        walk_sum ws = P->walk_random(r, g.seed ^ SEED_SAMPLE, g.n / 100);
        double t = now_s() - t0;
        report("sample_rate", ws.hops / t);
        report("sample_s", t);
        report("sample_rss_kb", (double)peak_rss_kb());
        report_walk("sample", ws);
        P->reader_end(r);
        P->close(h);
    } else if (strcmp(phase, "update") == 0) {
        phase_update(P, dir, &g, a1);
    } else if (strcmp(phase, "ltm") == 0) {
        double t0 = now_s();
        void *h = P->open(dir, &g, a1);
        void *r = P->reader_begin(h);
        walk_sum ws = P->walk_random(r, g.seed ^ SEED_LTM, a2);
        double t = now_s() - t0;
        report("ltm_rate", ws.hops / t);
        report("ltm_rss_kb", (double)peak_rss_kb());
        report_walk("ltm", ws);
        P->reader_end(r);
        P->close(h);
    } else {
        die("child", "unknown phase", phase);
    }
    return 0;
}
