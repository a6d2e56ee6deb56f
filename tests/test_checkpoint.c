/*
 * test_checkpoint.c - writing committed pages back to LMDB (store/checkpoint.c)
 * and the background flusher.
 */
#define _GNU_SOURCE
#include "testutil.h"
#include "files.h"
#include "storeutil.h"

#include <pthread.h>
#include <stdatomic.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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

/*
 * Commits while a checkpoint is in flight (the test hook pauses it after
 * its start and after its LMDB write).  They must neither wait for it nor
 * leak into it, and what they committed must survive any crash: the log
 * the checkpoint starts carries them on.
 */
struct inflight {
    cairn_store *s;
    _Atomic int done;
    int rc;
};

static void *checkpoint_thread(void *arg)
{
    struct inflight *f = arg;
    f->rc = cairn_checkpoint(f->s);
    atomic_store(&f->done, 1);
    return NULL;
}

#define PAUSE_MS 400
#define PAUSE_HOOK "checkpoint_pause_ms=400"
#define LINKS 300

/* A store with the 3-page counter at 1 and a list of LINKS links whose
 * values are 1, all committed and in the log, none checkpointed. */
static struct tu_link *build(cairn_store *s, uint64_t **counter)
{
    *counter = make_counter(s, 1);
    cairn_type lt = tu_link_type(s);
    cairn_txn *t;
    struct tu_link *head = NULL;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    for (int i = 0; i < LINKS; i++) {
        struct tu_link *l;
        assert_cairn_ok(cairn_alloc(t, lt, 1, (void **)&l));
        l->next = head;
        l->val = 1;
        head = l;
    }
    assert_cairn_ok(cairn_root_set(t, "list", head));
    assert_cairn_ok(cairn_txn_commit(t));
    return head;
}

/* During the checkpoint: rewrite pages it covers (the counter, every
 * other link's value, the list cut in two) and add pages it does not
 * (new links with pointers, so descriptor pages change too). */
static void commit_meanwhile(cairn_store *s, uint64_t *c, struct tu_link *old)
{
    cairn_type lt = tu_link_type(s);
    struct tu_link *head = old;
    for (int round = 2; round <= 4; round++) {
        cairn_txn *t;
        assert_cairn_ok(cairn_txn_begin(s, &t));
        for (int i = 0; i < 3 * 512; i++)
            c[i] = (uint64_t)round;
        int k = 0;
        for (struct tu_link *l = old; l; l = l->next, k++)
            if (k % 2 == 0)
                l->val = (uint64_t)round;
        struct tu_link *fresh;
        assert_cairn_ok(cairn_alloc(t, lt, 1, (void **)&fresh));
        fresh->next = head;
        fresh->val = 100 + (uint64_t)round;
        head = fresh;
        assert_cairn_ok(cairn_root_set(t, "list", head));
        assert_cairn_ok(cairn_txn_commit(t));
    }
}

/* The state after commit_meanwhile: 3 new links (104, 103, 102), then the
 * old ones with values 4 and 1 alternating; the counter at 4. */
static void verify_meanwhile(cairn_store *s)
{
    uint64_t *c;
    struct tu_link *l;
    assert_cairn_ok(cairn_root_get(s, "counter", (void **)&c));
    for (int i = 0; i < 3 * 512; i++)
        assert_int_equal(c[i], 4);
    assert_cairn_ok(cairn_root_get(s, "list", (void **)&l));
    for (int i = 4; i >= 2; i--, l = l->next)
        assert_int_equal(l->val, 100 + (uint64_t)i);
    int k = 0;
    for (; l; l = l->next, k++)
        assert_int_equal(l->val, k % 2 == 0 ? 4 : 1);
    assert_int_equal(k, LINKS);
    cairn_check_report r;
    assert_cairn_ok(cairn_check(s, &r));
}

static void commits_go_on_while_a_checkpoint_runs(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    cairn_stats st;
    assert_cairn_ok(store_test_control(PAUSE_HOOK));
    assert_cairn_ok(cairn_open(dir, &o, &s));
    uint64_t *c;
    struct tu_link *head = build(s, &c);
    struct inflight f = {.s = s};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, checkpoint_thread, &f), 0);
    usleep(PAUSE_MS * 1000 / 4);
    commit_meanwhile(s, c, head);
    /* Three durable commits while the checkpoint slept: they did not wait
     * for it. */
    assert_false(atomic_load(&f.done));
    pthread_join(th, NULL);
    assert_cairn_ok(f.rc);
    assert_cairn_ok(cairn_stats_get(s, &st));
    assert_int_equal(st.checkpoints, 1);
    /* The pages committed meanwhile are not in LMDB yet, and their records
     * are in the new log. */
    assert_true(st.pages_unflushed >= 4);
    assert_true(st.wal_bytes > 64);
    verify_meanwhile(s);
    assert_cairn_ok(cairn_close(s));
    assert_cairn_ok(store_test_control(""));
    assert_cairn_ok(cairn_open(dir, &o, &s));
    verify_meanwhile(s);
    assert_cairn_ok(cairn_close(s));
}

/* A child commits during a checkpoint and dies at a chosen moment without
 * closing; whatever it acknowledged must come back. */
struct crash_plan {
    const char *dir;
    int die_after_ms; /* from the checkpoint's start; 0: once it returned */
};

static void commit_and_die(void *arg)
{
    const struct crash_plan *plan = arg;
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    if (cairn_open(plan->dir, &o, &s) != CAIRN_OK)
        _exit(90);
    uint64_t *c;
    struct tu_link *head = build(s, &c);
    struct inflight f = {.s = s};
    pthread_t th;
    if (pthread_create(&th, NULL, checkpoint_thread, &f) != 0)
        _exit(91);
    usleep(PAUSE_MS * 1000 / 4);
    commit_meanwhile(s, c, head);
    if (plan->die_after_ms) {
        pthread_detach(th); /* dies with the process, mid-checkpoint */
        usleep((useconds_t)(plan->die_after_ms - PAUSE_MS / 4) * 1000);
    } else {
        pthread_join(th, NULL);
        if (f.rc != CAIRN_OK)
            _exit(92);
    }
    _exit(0); /* no close: as if killed */
}

static void acknowledged_commits_survive_a_crash_in_a_checkpoint(void **state)
{
    const char *dir = *state;
    /* Before its LMDB write; after it, before the new log (the LMDB write
     * of a few extents takes far less than half a pause); after all. */
    static const int die_after[] = {PAUSE_MS / 2, PAUSE_MS * 3 / 2, 0};
    for (size_t i = 0; i < sizeof die_after / sizeof *die_after; i++) {
        assert_cairn_ok(store_test_control(PAUSE_HOOK));
        char sub[64];
        snprintf(sub, sizeof sub, "case%zu", i);
        char *d = tu_path(dir, sub);
        struct crash_plan plan = {.dir = d, .die_after_ms = die_after[i]};
        int status = tu_in_child(commit_and_die, &plan);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_cairn_ok(store_test_control(""));
        cairn_options o;
        tu_options(&o);
        cairn_store *s;
        assert_cairn_ok(cairn_open(d, &o, &s));
        verify_meanwhile(s);
        assert_cairn_ok(cairn_close(s));
        free(d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        tu_dir_test(checkpoint_empties_log_and_keeps_data),
        tu_dir_test(checkpoint_during_open_txn_writes_committed_state),
        tu_dir_test(flusher_checkpoints_when_log_grows),
        tu_dir_test(many_cycles_of_commit_and_checkpoint),
        tu_dir_test(checkpoint_grows_a_full_map),
        tu_dir_test(commits_go_on_while_a_checkpoint_runs),
        tu_dir_test(acknowledged_commits_survive_a_crash_in_a_checkpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
