/*
 * bench.h - the two helpers every benchmark uses.
 */
#ifndef CAIRN_BENCH_H
#define CAIRN_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cairn.h"

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Stop the benchmark on any error: a figure after a failure means nothing. */
static inline void bench_check(int rc, const char *what)
{
    if (rc != CAIRN_OK) {
        fprintf(stderr, "benchmark: %s: %s\n", what, cairn_strerror(rc));
        exit(1);
    }
}

#endif
