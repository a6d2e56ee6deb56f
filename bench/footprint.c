/*
 * footprint.c - what the pager's own bookkeeping costs on a 16 GiB store,
 * and whether the mapping count stays put.
 *
 *   footprint [FRACTION_DENOMINATOR] [CACHE_MIB]
 *
 * Opens a store of 4M pages (16 GiB logical) and touches one word in a
 * random 1/D of its object pages (default D = 4: a quarter), with a cache
 * budget (default 256 MiB) so that memory stays bounded.  Reports the
 * process's anonymous memory (the pager's state arrays and pools) before
 * and after, per page of the store and per page touched, the shared
 * memory held (the cache), and the number of lines of /proc/self/maps.
 * Never-touched parts of the state arrays cost nothing: they are
 * MAP_NORESERVE anonymous memory.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static int map_lines(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    int n = 0, c;
    while (f && (c = fgetc(f)) != EOF)
        n += c == '\n';
    if (f)
        fclose(f);
    return n;
}

int main(int argc, char **argv)
{
    uint64_t denom = argc > 1 ? (uint64_t)atoll(argv[1]) : 4;
    uint64_t cache_mib = argc > 2 ? (uint64_t)atoll(argv[2]) : 256;
    char *dir = bench_tempdir("footprint");
    char path[4200];
    snprintf(path, sizeof path, "%s/store", dir);
    cairn_options o;
    cairn_options_init(&o);
    o.max_bytes = (uint64_t)16 << 30;
    o.cache_bytes = cache_mib << 20;

    long anon0 = bench_proc_kib("/proc/self/status", "RssAnon");
    int maps0 = map_lines();
    cairn_store *s;
    double t0 = bench_now();
    bench_check(cairn_open(path, &o, &s), "open");
    double t_open = bench_now() - t0;
    long anon1 = bench_proc_kib("/proc/self/status", "RssAnon");
    int maps1 = map_lines();
    char *base;
    size_t len;
    cairn_range(s, (void **)&base, &len);
    uint64_t pages = len / 4096, first = pages / 32 + 64; /* past the descriptor pages */
    uint64_t touch = (pages - first) / denom, x = 88172645463325252ull;
    t0 = bench_now();
    for (uint64_t i = 0; i < touch; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t n = first + x % (pages - first);
        *(volatile char *)(base + n * 4096 + 8);
    }
    double t_touch = bench_now() - t0;
    long anon2 = bench_proc_kib("/proc/self/status", "RssAnon"),
         shmem2 = bench_proc_kib("/proc/self/status", "RssShmem");
    int maps2 = map_lines();
    cairn_stats st;
    cairn_stats_get(s, &st);
    printf("footprint: %" PRIu64 " pages (%.0f GiB logical), budget %" PRIu64 " MiB, %s backend\n", pages,
           len / 1073741824.0, cache_mib, st.backend == CAIRN_BACKEND_UFFD ? "userfaultfd" : "mprotect");
    printf("  open: %.2f ms; anonymous memory +%ld KiB (pools, one-off), %.4f bytes per store page\n", t_open * 1e3,
           anon1 - anon0, (anon1 - anon0) * 1024.0 / pages);
    printf("  touched %" PRIu64 " random pages (1/%" PRIu64 ") in %.1f s: %" PRIu64 " extents loaded, %" PRIu64
           " evictions, %" PRIu64 " pages resident\n",
           touch, denom, t_touch, st.extents_loaded, st.evictions, st.pages_resident);
    printf("  state arrays: anonymous memory +%ld KiB = %.2f bytes per store page, %.2f per page touched\n",
           anon2 - anon1, (anon2 - anon1) * 1024.0 / pages, (anon2 - anon1) * 1024.0 / touch);
    printf("  shared memory (the cache): %ld KiB; mappings (/proc/self/maps lines): %d before open, %d after open, "
           "%d after touching\n",
           shmem2, maps0, maps1, maps2);
    bench_check(cairn_close(s), "close");
    return bench_rmdir(dir);
}
