/*
 * test_evict.c - the cache budget: walks far larger than the budget stay
 * within it, written and pinned pages are never evicted, threads race
 * eviction safely.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store_internal.h"

#define CELL_PAYLOAD 13

struct cell {
    struct cell *next;
    uint64_t id;
    uint64_t payload[CELL_PAYLOAD];
}; /* 120 bytes: class 128, 32 per page */

#define BUDGET ((uint64_t)4 << 20)         /* 4 MiB = 64 extents */
#define STORE_CELLS (8 * BUDGET / 128 + 1) /* 8x the budget */

static void build(const char *dir, const cairn_options *o)
{
    cairn_store *s;
    cairn_txn *t;
    cairn_type ct;
    size_t ptrs[] = {0};
    assert_cairn_ok(cairn_open(dir, o, &s));
    assert_cairn_ok(cairn_type_register(s, "cell", sizeof(struct cell), ptrs, 1, &ct));
    struct cell *head = NULL;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    for (uint64_t i = 0; i < STORE_CELLS; i++) {
        struct cell *c;
        if (i % 20000 == 19999) { /* keep transactions moderate */
            assert_cairn_ok(cairn_root_set(t, "head", head));
            assert_cairn_ok(cairn_txn_commit(t));
            assert_cairn_ok(cairn_checkpoint(s));
            assert_cairn_ok(cairn_txn_begin(s, &t));
        }
        assert_cairn_ok(cairn_alloc(t, ct, 1, (void **)&c));
        c->next = head;
        c->id = i;
        for (int k = 0; k < CELL_PAYLOAD; k++)
            c->payload[k] = i * 31 + (uint64_t)k;
        head = c;
    }
    assert_cairn_ok(cairn_root_set(t, "head", head));
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_ok(cairn_close(s));
}

static void walk_eight_times_the_budget(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    build(dir, &o);
    o.cache_bytes = BUDGET;
    cairn_store *s;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    struct cell *c;
    assert_cairn_ok(cairn_root_get(s, "head", (void **)&c));
    uint64_t expect = STORE_CELLS - 1, peak = 0, steps = 0;
    for (int round = 0; round < 2; round++) {
        assert_cairn_ok(cairn_root_get(s, "head", (void **)&c));
        expect = STORE_CELLS - 1;
        for (; c; c = c->next, expect--, steps++) {
            if (c->id != expect || c->payload[7] != expect * 31 + 7)
                fail_msg("cell %llu wrong", (unsigned long long)expect);
            if (steps % 512 == 0) {
                uint64_t b = tu_shmem_bytes(s);
                peak = b > peak ? b : peak;
            }
        }
        assert_int_equal(expect, (uint64_t)-1);
    }
    cairn_stats st;
    assert_cairn_ok(cairn_stats_get(s, &st));
    /* Budget plus the two never-evicted extents plus one extent in
     * flight per thread. */
    uint64_t allowed = BUDGET + 3 * 65536;
    print_message("8x walk: store %llu KiB, budget %llu KiB, peak shared memory %llu KiB\n",
                  (unsigned long long)(st.pages_allocated * 4), (unsigned long long)(BUDGET >> 10),
                  (unsigned long long)(peak >> 10));
    if (peak > allowed)
        fail_msg("peak shared memory %llu > allowed %llu", (unsigned long long)peak, (unsigned long long)allowed);
    assert_true(st.evictions > 0);
    assert_true(st.pages_resident * 4096 <= allowed);
    /* The store really is 8x the budget. */
    assert_true(st.pages_allocated * 4096 >= 8 * BUDGET);
    cairn_check_report r;
    assert_cairn_ok(cairn_check(s, &r));
    assert_cairn_ok(cairn_close(s));
}

static void written_pages_stay_until_checkpointed(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    build(dir, &o);
    o.cache_bytes = BUDGET;
    o.checkpoint_bytes = (uint64_t)1 << 40; /* no background checkpoint */
    cairn_store *s;
    cairn_txn *t;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    struct cell *c;
    assert_cairn_ok(cairn_root_get(s, "head", (void **)&c));
    /* Write every 4th cell of the whole store (2x the budget of pages
     * dirty), in one transaction: nothing written may be evicted. */
    assert_cairn_ok(cairn_txn_begin(s, &t));
    uint64_t n = 0;
    for (struct cell *x = c; x; x = x->next, n++)
        if (n % 4 == 0)
            x->payload[0] = x->id + 1000000;
    cairn_stats st;
    assert_cairn_ok(cairn_stats_get(s, &st));
    assert_true(st.pages_dirty * 4096 > BUDGET);
    assert_cairn_ok(cairn_txn_commit(t));
    /* Committed but not checkpointed: still not evictable; walk again and
     * read every value (the unwritten ones come back from LMDB). */
    for (int round = 0; round < 2; round++) {
        n = 0;
        for (struct cell *x = c; x; x = x->next, n++)
            assert_int_equal(x->payload[0], n % 4 == 0 ? x->id + 1000000 : x->id * 31);
    }
    assert_cairn_ok(cairn_stats_get(s, &st));
    assert_true(st.pages_unflushed * 4096 > BUDGET);
    assert_true(st.pages_resident >= st.pages_unflushed);
    /* After a checkpoint they may go, and the walk still reads right. */
    assert_cairn_ok(cairn_checkpoint(s));
    n = 0;
    for (struct cell *x = c; x; x = x->next, n++)
        assert_int_equal(x->payload[0], n % 4 == 0 ? x->id + 1000000 : x->id * 31);
    assert_cairn_ok(cairn_stats_get(s, &st));
    assert_true(st.pages_resident * 4096 <= BUDGET + 3 * 65536);
    cairn_check_report r;
    assert_cairn_ok(cairn_check(s, &r));
    assert_cairn_ok(cairn_close(s));
}

static void prefaulted_pages_stay_until_released(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    build(dir, &o);
    o.cache_bytes = BUDGET;
    cairn_store *s;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    struct cell *head, *c;
    assert_cairn_ok(cairn_root_get(s, "head", (void **)&head));
    assert_cairn_ok(cairn_prefault(s, head, sizeof *head, 0));
    int p[2];
    assert_int_equal(pipe(p), 0);
    for (int round = 0; round < 2; round++) {
        for (c = head; c; c = c->next)
            ;
        /* Still resident: the kernel may read it. */
        assert_int_equal(write(p[1], head, sizeof *head), (ssize_t)sizeof *head);
        struct cell copy;
        assert_int_equal(read(p[0], &copy, sizeof copy), (ssize_t)sizeof copy);
        assert_int_equal(copy.id, STORE_CELLS - 1);
    }
    assert_cairn_ok(cairn_release(s, head, sizeof *head));
    for (c = head; c; c = c->next)
        ;
    /* Released and walked past: it may be gone now, and then a system
     * call gets EFAULT rather than zeros. */
    ssize_t w = write(p[1], head, sizeof *head);
    if (w < 0)
        assert_int_equal(errno, EFAULT);
    else
        assert_int_equal(w, (ssize_t)sizeof *head);
    close(p[0]);
    close(p[1]);
    assert_cairn_ok(cairn_close(s));
}

struct walker {
    cairn_store *s;
    int id;
    _Atomic int *failed;
};

static void *walk_thread(void *arg)
{
    struct walker *w = arg;
    struct cell *c;
    if (cairn_root_get(w->s, "head", (void **)&c))
        return (void *)1;
    uint64_t expect = STORE_CELLS - 1;
    /* Each thread starts at a different depth so they race on different
     * and on the same extents. */
    for (uint64_t skip = (uint64_t)w->id * (STORE_CELLS / 8); skip && c; skip--, expect--)
        c = c->next;
    for (; c; c = c->next, expect--) {
        if (c->id != expect || c->payload[3] != expect * 31 + 3) {
            atomic_store(w->failed, 1);
            return (void *)1;
        }
    }
    return NULL;
}

static void threads_race_eviction(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    build(dir, &o);
    o.cache_bytes = BUDGET;
    cairn_store *s;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    _Atomic int failed = 0;
    pthread_t th[4];
    struct walker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct walker){s, i, &failed};
        pthread_create(&th[i], NULL, walk_thread, &w[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&failed), 0);
    cairn_stats st;
    assert_cairn_ok(cairn_stats_get(s, &st));
    assert_true(st.evictions > 0);
    assert_cairn_ok(cairn_close(s));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        tu_dir_test(walk_eight_times_the_budget),
        tu_dir_test(written_pages_stay_until_checkpointed),
        tu_dir_test(prefaulted_pages_stay_until_released),
        tu_dir_test(threads_race_eviction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
