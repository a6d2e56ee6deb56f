/*
 * log_sync.c - what making one log record durable costs on this file
 * system, three ways, in one run.
 *
 *   log_sync [-n N] [-d DIR]
 *
 * A commit is only as fast as the sync of its log record, and what a sync
 * costs depends on what else it has to make durable besides the 128 bytes:
 *   a. append     pwrite at the end of a growing file, then fdatasync: the
 *                 size changes every time, so the sync also journals the
 *                 inode (and, every few records, a new block);
 *   b. overwrite  of a file written full of zeros (and synced) beforehand:
 *                 blocks allocated and size final, so the sync writes data
 *                 only;
 *   c. fallocate  overwrite of a file whose N*128 bytes were fallocate'd:
 *                 blocks allocated but unwritten, so each sync may journal
 *                 the unwritten-to-written conversion of its extent.
 * Each N times (default 2000) in a file in DIR (default a fresh scratch
 * directory).  The three are interleaved in 3 rounds (a, b, c, a, b, c,
 * ...), each round with fresh files, and every figure printed is the
 * median of the rounds, so that one noisy period does not decide.  Per
 * method: the median and p99 of one record's pwrite+fdatasync, and the
 * rate (1 / mean); then the ratios of the rates, b/a and c/a.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define RECORD 128
#define ROUNDS 3

enum method { APPEND, OVERWRITE, FALLOCATED, METHODS };

static const char *method_name[METHODS] = {"a. append (size grows)", "b. overwrite, pre-written",
                                           "c. overwrite, fallocate'd"};

/* One method's figures, one of each per round. */
struct figures {
    double median[ROUNDS], p99[ROUNDS], rate[ROUNDS];
};

/* Stop on a failed system call: a sync that failed measured nothing. */
static void check_sys(int failed, const char *what)
{
    if (failed) {
        fprintf(stderr, "log_sync: %s: %s\n", what, strerror(errno));
        exit(1);
    }
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Round r's median and p99 (nearest rank) of t, and its rate 1/mean;
 * sorts t. */
static void summarize(double *t, long n, struct figures *f, int r)
{
    double sum = 0;
    for (long i = 0; i < n; i++)
        sum += t[i];
    qsort(t, (size_t)n, sizeof *t, by_value);
    long r99 = (long)(0.99 * n + 0.999999) - 1;
    f->median[r] = t[n / 2];
    f->p99[r] = t[r99 < 0 ? 0 : r99];
    f->rate[r] = n / sum;
}

/* Prepare the file for a method: empty for an append; its final size
 * already written with zeros and synced for an overwrite; fallocate'd and
 * synced for the third, so that the preparation's own metadata is durable
 * before timing and only the records' cost is measured.  Returns 0, or -1
 * if the file system cannot fallocate. */
static int prepare(int fd, enum method m, long n)
{
    off_t size = (off_t)n * RECORD;
    if (m == OVERWRITE) {
        static char zeros[1 << 16];
        for (off_t off = 0; off < size;) {
            size_t len = size - off < (off_t)sizeof zeros ? (size_t)(size - off) : sizeof zeros;
            ssize_t w = pwrite(fd, zeros, len, off);
            check_sys(w <= 0, "pwrite zeros");
            off += w;
        }
    } else if (m == FALLOCATED) {
        if (fallocate(fd, 0, 0, size) != 0) {
            check_sys(errno != EOPNOTSUPP, "fallocate");
            return -1;
        }
    }
    check_sys(fdatasync(fd) != 0, "fdatasync");
    return 0;
}

/* One method, one round, on a fresh file: N records of 128 bytes at
 * increasing offsets, each made durable before the next is written (as a
 * commit would), each timed from pwrite to fdatasync's return. */
static int measure(const char *dir, enum method m, long n, int round, double *t, struct figures *out)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/log-%d-%d", dir, (int)m, round);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    check_sys(fd < 0, "open");
    int rc = prepare(fd, m, n);
    if (rc == 0) {
        char rec[RECORD];
        for (long i = 0; i < n; i++) {
            memset(rec, (int)(i % 255) + 1, sizeof rec); /* never the zeros already there */
            double t0 = bench_now();
            check_sys(pwrite(fd, rec, sizeof rec, (off_t)i * RECORD) != (ssize_t)sizeof rec, "pwrite");
            check_sys(fdatasync(fd) != 0, "fdatasync");
            t[i] = bench_now() - t0;
        }
        summarize(t, n, out, round);
    }
    check_sys(close(fd) != 0, "close");
    check_sys(unlink(path) != 0, "unlink");
    return rc;
}

/* The median of one figure's rounds (ROUNDS is odd): what a single
 * noisy round cannot move. */
static double median_of_rounds(const double *per_round)
{
    double v[ROUNDS];
    memcpy(v, per_round, sizeof v);
    qsort(v, ROUNDS, sizeof *v, by_value);
    return v[ROUNDS / 2];
}

static void usage(void)
{
    fprintf(stderr, "usage: log_sync [-n N] [-d DIR]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    long n = 2000;
    const char *dir_arg = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "n:d:")) != -1) {
        if (opt == 'n')
            n = atol(optarg);
        else if (opt == 'd')
            dir_arg = optarg;
        else
            usage();
    }
    if (n < 1 || optind != argc)
        usage();
    char *tmp = dir_arg ? NULL : bench_tempdir("log_sync");
    const char *dir = dir_arg ? dir_arg : tmp;
    double *t = malloc((size_t)n * sizeof *t);
    check_sys(!t, "malloc");

    struct figures f[METHODS];
    int supported[METHODS] = {1, 1, 1};
    for (int r = 0; r < ROUNDS; r++)
        for (int m = 0; m < METHODS; m++)
            if (supported[m] && measure(dir, (enum method)m, n, r, t, &f[m]) != 0)
                supported[m] = 0;
    free(t);

    printf("log_sync: %d-byte records made durable (pwrite + fdatasync), %ld per method, in %s\n", RECORD, n, dir);
    printf("%d rounds interleaved, fresh files each round; medians of the rounds\n", ROUNDS);
    printf("%-28s %12s %12s %12s\n", "method", "median us", "p99 us", "ops/s");
    double rate[METHODS] = {0};
    for (int m = 0; m < METHODS; m++) {
        if (!supported[m]) {
            printf("%-28s %12s %12s %12s  (fallocate not supported here)\n", method_name[m], "-", "-", "-");
            continue;
        }
        rate[m] = median_of_rounds(f[m].rate);
        printf("%-28s %12.1f %12.1f %12.0f\n", method_name[m], median_of_rounds(f[m].median) * 1e6,
               median_of_rounds(f[m].p99) * 1e6, rate[m]);
    }
    printf("rate ratios: b/a %.2fx", rate[OVERWRITE] / rate[APPEND]);
    if (supported[FALLOCATED])
        printf(", c/a %.2fx", rate[FALLOCATED] / rate[APPEND]);
    printf("\n");
    return tmp ? bench_rmdir(tmp) : 0;
}
