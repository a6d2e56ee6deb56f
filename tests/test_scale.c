/*
 * test_scale.c - a large store with data in every extent, touched at random
 * pages under a small cache budget: every value read is right, shared
 * memory stays within the budget, and under userfaultfd the number of
 * mappings in the store's range does not move.
 *
 * Sized for the test suite: a 2 GiB store (512K pages), 1/64 of its pages
 * touched.  `./build.sh scale` runs the size the scale requirement names,
 * CAIRN_SCALE_GIB=16 (4M pages) with CAIRN_SCALE_FRACTION=4 (a random
 * quarter of the pages): about four minutes, most of it building the store.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

#define BUDGET ((uint64_t)64 << 20) /* 1,024 extents */
#define CHUNK_PAGES 65536           /* one allocation: 256 MiB */
#define STAMP_EVERY 16              /* one stamped page per extent */

static uint64_t env_or(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    return v && atoll(v) > 0 ? (uint64_t)atoll(v) : dflt;
}

static uint64_t stamp_of(uint64_t page)
{
    return page * 0x9E3779B97F4A7C15ull | 1;
}

/* Fill the store with objects of 256 MiB, then smaller ones down to one
 * extent, until it is full, stamping the first page of every extent with a
 * value derived from its page number.  One transaction and one checkpoint
 * per object keep the log and the dirty pages bounded.  Returns the number
 * of pages in objects. */
static uint64_t build(const char *dir, const cairn_options *o)
{
    cairn_store *s;
    cairn_txn *t;
    assert_cairn_ok(cairn_open(dir, o, &s));
    char *base;
    size_t len;
    assert_cairn_ok(cairn_range(s, (void **)&base, &len));
    assert_true(len >= o->max_bytes);
    uint64_t in_objects = 0, chunk = CHUNK_PAGES;
    while (chunk >= STAMP_EVERY) {
        char *obj;
        assert_cairn_ok(cairn_txn_begin(s, &t));
        int rc = cairn_alloc_bytes(t, (size_t)chunk * 4096, (void **)&obj);
        if (rc == CAIRN_FULL) {
            cairn_txn_abort(t);
            chunk /= 2;
            continue;
        }
        assert_cairn_ok(rc);
        uint64_t first = (uint64_t)(obj - base) / 4096;
        for (uint64_t i = 0; i < chunk; i++)
            if ((first + i) % STAMP_EVERY == 0)
                *(uint64_t *)(obj + i * 4096) = stamp_of(first + i);
        assert_cairn_ok(cairn_txn_commit(t));
        assert_cairn_ok(cairn_checkpoint(s));
        in_objects += chunk;
    }
    cairn_stats st;
    assert_cairn_ok(cairn_stats_get(s, &st));
    assert_true(st.pages_allocated >= in_objects);
    assert_cairn_ok(cairn_close(s));
    return in_objects;
}

static void random_touches_on_a_large_store(void **state)
{
    const char *dir = *state;
    uint64_t denom = env_or("CAIRN_SCALE_FRACTION", 64), gib = env_or("CAIRN_SCALE_GIB", 2);
    cairn_options o;
    cairn_options_init(&o);
    o.max_bytes = gib << 30;
    o.cache_bytes = BUDGET;
    uint64_t in_objects = build(dir, &o);
    /* All but the allocator's descriptors (1/32) and the first pages. */
    assert_true(in_objects * 4096 >= o.max_bytes / 100 * 96);

    cairn_store *s;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    cairn_stats st;
    assert_cairn_ok(cairn_stats_get(s, &st));
    char *base;
    size_t len;
    assert_cairn_ok(cairn_range(s, (void **)&base, &len));
    uint64_t pages = len / 4096;
    assert_true(pages >= o.max_bytes / 4096);
    uint64_t first = s->pager->layout.data_start, span = st.pages_allocated; /* pages in use from first on */
    assert_true(span >= in_objects);

    int maps_before = tu_map_lines(base, len);
    uint64_t touches = pages / denom, x = 0x2545F4914F6CDD1Dull, peak = 0;
    for (uint64_t i = 0; i < touches; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t n = first + x % span;
        uint64_t v = *(volatile uint64_t *)(base + n * 4096);
        uint64_t want = n % STAMP_EVERY == 0 ? stamp_of(n) : 0;
        if (v != want)
            fail_msg("page %llu holds %llx, want %llx", (unsigned long long)n, (unsigned long long)v,
                     (unsigned long long)want);
        if (i % 4096 == 0) {
            uint64_t b = tu_shmem_bytes(s);
            peak = b > peak ? b : peak;
        }
    }
    int maps_after = tu_map_lines(base, len);
    assert_cairn_ok(cairn_stats_get(s, &st));
    printf("scale: %llu pages, %llu random touches (1/%llu), %llu extents loaded, %llu evicted, "
           "peak shared memory %llu KiB (budget %llu KiB), mappings %d -> %d\n",
           (unsigned long long)pages, (unsigned long long)touches, (unsigned long long)denom,
           (unsigned long long)st.extents_loaded, (unsigned long long)st.evictions, (unsigned long long)(peak >> 10),
           (unsigned long long)(BUDGET >> 10), maps_before, maps_after);
    assert_true(st.evictions > 0);
    /* Budget, extents 0 and 1, one extent in flight. */
    if (peak > BUDGET + 3 * 65536)
        fail_msg("peak shared memory %llu over budget", (unsigned long long)peak);
    if (st.backend == CAIRN_BACKEND_UFFD)
        assert_int_equal(maps_after, maps_before);
    else /* islands of resident extents: bounded by the budget */
        assert_true(maps_after <= maps_before + 2 * (int)(BUDGET / 65536) + 4);
    assert_cairn_ok(cairn_close(s));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        tu_dir_test(random_touches_on_a_large_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
