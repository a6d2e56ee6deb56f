/*
 * test_checkpoint.c - writing committed pages back to LMDB (store/checkpoint.c)
 * and the background flusher.
 */
#define _GNU_SOURCE
#include "testutil.h"
#include "files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store_internal.h"

static uint64_t *make_counter(cairn_store *s, uint64_t v)
{
    cairn_txn *t;
    uint64_t *c;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc_bytes(t, 4096 * 3, (void **)&c));
    for (int i = 0; i < 3 * 512; i++)
        c[i] = v;
    assert_cairn_ok(cairn_root_set(t, "counter", c));
    assert_cairn_ok(cairn_txn_commit(t));
    return c;
}

static void checkpoint_empties_log_and_keeps_data(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    cairn_stats st;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    uint64_t *c = make_counter(s, 5);
    assert_cairn_ok(cairn_stats_get(s, &st));
    assert_true(st.wal_bytes > 64);
    assert_true(st.pages_unflushed > 0);
    uint64_t before = st.checkpoints;
    assert_cairn_ok(cairn_checkpoint(s));
    assert_cairn_ok(cairn_stats_get(s, &st));
    assert_int_equal(st.wal_bytes, 64);
    assert_int_equal(st.pages_unflushed, 0);
    assert_int_equal(st.checkpoints, before + 1);
    assert_int_equal(c[1000], 5);
    /* What is in LMDB alone (the log is empty) is the committed state. */
    char *copy = tu_copy_store(dir);
    cairn_store *s2;
    assert_cairn_ok(cairn_open(copy, &o, &s2));
    uint64_t *c2;
    assert_cairn_ok(cairn_root_get(s2, "counter", (void **)&c2));
    for (int i = 0; i < 3 * 512; i++)
        assert_int_equal(c2[i], 5);
    assert_cairn_ok(cairn_close(s2));
    assert_cairn_ok(cairn_close(s));
    tu_rmdir(copy);
}

static void checkpoint_during_open_txn_writes_committed_state(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    cairn_txn *t;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    uint64_t *c = make_counter(s, 1);
    assert_cairn_ok(cairn_txn_begin(s, &t));
    for (int i = 0; i < 3 * 512; i++)
        c[i] = 2; /* uncommitted */
    assert_cairn_ok(cairn_checkpoint(s));
    char *copy = tu_copy_store(dir);
    for (int i = 0; i < 3 * 512; i++)
        assert_int_equal(c[i], 2); /* the open transaction still sees its writes */
    assert_cairn_ok(cairn_txn_commit(t));

    cairn_store *s2;
    uint64_t *c2;
    assert_cairn_ok(cairn_open(copy, &o, &s2));
    assert_cairn_ok(cairn_root_get(s2, "counter", (void **)&c2));
    for (int i = 0; i < 3 * 512; i++)
        assert_int_equal(c2[i], 1);
    assert_cairn_ok(cairn_close(s2));
    assert_cairn_ok(cairn_close(s));

    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_cairn_ok(cairn_root_get(s, "counter", (void **)&c));
    for (int i = 0; i < 3 * 512; i++)
        assert_int_equal(c[i], 2);
    assert_cairn_ok(cairn_close(s));
    tu_rmdir(copy);
}

static void flusher_checkpoints_when_log_grows(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    o.checkpoint_bytes = 1; /* every commit leaves the log over the limit */
    cairn_store *s;
    cairn_stats st;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    make_counter(s, 9);
    for (int i = 0; i < 50; i++) {
        assert_cairn_ok(cairn_stats_get(s, &st));
        if (st.checkpoints > 0)
            break;
        usleep(100000);
    }
    assert_true(st.checkpoints > 0);
    assert_cairn_ok(cairn_close(s));
}

static void many_cycles_of_commit_and_checkpoint(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    cairn_txn *t;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    uint64_t **objs = calloc(200, sizeof *objs);
    for (int round = 0; round < 200; round++) {
        assert_cairn_ok(cairn_txn_begin(s, &t));
        assert_cairn_ok(cairn_alloc_bytes(t, (size_t)(round % 7 + 1) * 1000, (void **)&objs[round]));
        objs[round][0] = (uint64_t)round;
        if (round)
            objs[round - 1][1] = (uint64_t)round * 10;
        assert_cairn_ok(cairn_txn_commit(t));
        if (round % 10 == 0)
            assert_cairn_ok(cairn_checkpoint(s));
    }
    void *base;
    size_t len;
    cairn_range(s, &base, &len);
    uint64_t *offs = calloc(200, sizeof *offs);
    for (int i = 0; i < 200; i++)
        offs[i] = (uint64_t)((char *)objs[i] - (char *)base);
    assert_cairn_ok(cairn_close(s));
    assert_cairn_ok(cairn_open(dir, &o, &s));
    cairn_range(s, &base, &len);
    for (int i = 0; i < 200; i++) {
        uint64_t *p = (uint64_t *)((char *)base + offs[i]);
        assert_int_equal(p[0], (uint64_t)i);
        assert_int_equal(p[1], i < 199 ? (uint64_t)(i + 1) * 10 : 0);
    }
    assert_cairn_ok(cairn_close(s));
    free(objs);
    free(offs);
}

/* MDB_MAP_FULL at checkpoint: the map grows and the checkpoint succeeds. */
static void checkpoint_grows_a_full_map(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    cairn_txn *t;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    /* Shrink the map to what is in use (LMDB clamps it up to that). */
    assert_int_equal(mdb_env_set_mapsize(s->cat.env, 65536), 0);
    MDB_envinfo before, after;
    mdb_env_info(s->cat.env, &before);
    uint64_t *big;
    size_t words = (8u << 20) / 8;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc_bytes(t, words * 8, (void **)&big));
    uint64_t x = 88172645463325252ull; /* xorshift: incompressible */
    for (size_t i = 0; i < words; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        big[i] = x;
    }
    assert_cairn_ok(cairn_root_set(t, "big", big));
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_ok(cairn_checkpoint(s));
    mdb_env_info(s->cat.env, &after);
    assert_true(after.me_mapsize > before.me_mapsize);
    assert_true(after.me_mapsize >= (8u << 20));
    assert_cairn_ok(cairn_close(s));

    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_cairn_ok(cairn_root_get(s, "big", (void **)&big));
    x = 88172645463325252ull;
    for (size_t i = 0; i < words; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (big[i] != x)
            fail_msg("word %zu differs after growing the map", i);
    }
    cairn_check_report r;
    assert_cairn_ok(cairn_check(s, &r));
    assert_cairn_ok(cairn_close(s));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        tu_dir_test(checkpoint_empties_log_and_keeps_data),
        tu_dir_test(checkpoint_during_open_txn_writes_committed_state),
        tu_dir_test(flusher_checkpoints_when_log_grows),
        tu_dir_test(many_cycles_of_commit_and_checkpoint),
        tu_dir_test(checkpoint_grows_a_full_map),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
