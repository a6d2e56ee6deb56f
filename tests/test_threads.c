/*
 * test_threads.c - many threads inside one store: writing in one
 * transaction, reading cold pages while commits and checkpoints run,
 * committing side by side (group commit) and failing together when the
 * shared log sync fails.
 */
#define _GNU_SOURCE
#include "testutil.h"
#include "store/test_control.h"
#include "files.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define PER_THREAD 3000

struct item {
    struct item *next;
    uint64_t owner, seq, check;
};

struct shared {
    cairn_store *s;
    cairn_txn *t;
    cairn_type type;
    struct item *heads[THREADS];
    pthread_barrier_t go;
    _Atomic int stop;
    _Atomic uint64_t reads;
    struct item **roots;
};

struct arg {
    struct shared *sh;
    int id;
};

static void *writer(void *p)
{
    struct arg *a = p;
    struct shared *sh = a->sh;
    pthread_barrier_wait(&sh->go);
    struct item *prev = NULL;
    for (uint64_t i = 0; i < PER_THREAD; i++) {
        struct item *it;
        int rc = cairn_alloc(sh->t, sh->type, 1, (void **)&it);
        if (rc)
            return (void *)(intptr_t)rc;
        it->next = prev;
        it->owner = (uint64_t)a->id;
        it->seq = i;
        it->check = (uint64_t)a->id * 1000003u + i;
        prev = it;
    }
    sh->heads[a->id] = prev;
    return NULL;
}

static void verify_chains(cairn_store *s)
{
    for (int id = 0; id < THREADS; id++) {
        char name[16];
        struct item *it;
        snprintf(name, sizeof name, "t%d", id);
        assert_cairn_ok(cairn_root_get(s, name, (void **)&it));
        for (int64_t i = PER_THREAD - 1; i >= 0; i--) {
            assert_non_null(it);
            assert_int_equal(it->owner, (uint64_t)id);
            assert_int_equal(it->seq, (uint64_t)i);
            assert_int_equal(it->check, (uint64_t)id * 1000003u + (uint64_t)i);
            it = it->next;
        }
        assert_null(it);
    }
}

static void threads_write_one_transaction(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    struct shared sh;
    memset(&sh, 0, sizeof sh);
    size_t ptrs[] = {0};
    assert_cairn_ok(cairn_open(dir, &o, &sh.s));
    assert_cairn_ok(cairn_type_register(sh.s, "item", sizeof(struct item), ptrs, 1, &sh.type));
    assert_cairn_ok(cairn_txn_begin(sh.s, &sh.t));
    pthread_barrier_init(&sh.go, NULL, THREADS);
    pthread_t th[THREADS];
    struct arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct arg){&sh, i};
        pthread_create(&th[i], NULL, writer, &args[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    for (int i = 0; i < THREADS; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        assert_cairn_ok(cairn_root_set(sh.t, name, sh.heads[i]));
    }
    assert_cairn_ok(cairn_txn_commit(sh.t));
    verify_chains(sh.s);
    assert_cairn_ok(cairn_close(sh.s));
    assert_cairn_ok(cairn_open(dir, &o, &sh.s));
    verify_chains(sh.s);
    cairn_check_report r;
    assert_cairn_ok(cairn_check(sh.s, &r));
    assert_int_equal(r.objects, THREADS * PER_THREAD);
    assert_cairn_ok(cairn_close(sh.s));
    pthread_barrier_destroy(&sh.go);
}

/* Readers walk cold chains (faulting extents in) while the main thread
 * commits to other objects and checkpoints. */
static void *reader(void *p)
{
    struct arg *a = p;
    struct shared *sh = a->sh;
    pthread_barrier_wait(&sh->go);
    while (!atomic_load(&sh->stop)) {
        for (int id = 0; id < THREADS; id++) {
            const struct item *it = sh->roots[(id + a->id) % THREADS];
            uint64_t expect = PER_THREAD - 1;
            for (; it; it = it->next, expect--) {
                if (it->seq != expect || it->check != it->owner * 1000003u + it->seq)
                    return (void *)1;
            }
        }
        atomic_fetch_add(&sh->reads, 1);
    }
    return NULL;
}

static void readers_during_commits_and_checkpoints(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    o.checkpoint_bytes = 64 * 1024; /* keep the flusher busy too */
    struct shared sh;
    memset(&sh, 0, sizeof sh);
    size_t ptrs[] = {0};
    /* Build, then reopen so everything is cold. */
    assert_cairn_ok(cairn_open(dir, &o, &sh.s));
    assert_cairn_ok(cairn_type_register(sh.s, "item", sizeof(struct item), ptrs, 1, &sh.type));
    assert_cairn_ok(cairn_txn_begin(sh.s, &sh.t));
    for (int id = 0; id < THREADS; id++) {
        struct item *prev = NULL;
        for (uint64_t i = 0; i < PER_THREAD; i++) {
            struct item *it;
            assert_cairn_ok(cairn_alloc(sh.t, sh.type, 1, (void **)&it));
            *it = (struct item){prev, (uint64_t)id, i, (uint64_t)id * 1000003u + i};
            prev = it;
        }
        char name[16];
        snprintf(name, sizeof name, "t%d", id);
        assert_cairn_ok(cairn_root_set(sh.t, name, prev));
    }
    uint64_t *counter;
    assert_cairn_ok(cairn_alloc_bytes(sh.t, 64 * 4096, (void **)&counter));
    assert_cairn_ok(cairn_root_set(sh.t, "counter", counter));
    assert_cairn_ok(cairn_txn_commit(sh.t));
    assert_cairn_ok(cairn_close(sh.s));

    assert_cairn_ok(cairn_open(dir, &o, &sh.s));
    struct item *roots[THREADS];
    for (int id = 0; id < THREADS; id++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", id);
        assert_cairn_ok(cairn_root_get(sh.s, name, (void **)&roots[id]));
    }
    sh.roots = roots;
    assert_cairn_ok(cairn_root_get(sh.s, "counter", (void **)&counter));
    pthread_barrier_init(&sh.go, NULL, THREADS + 1);
    pthread_t th[THREADS];
    struct arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct arg){&sh, i};
        pthread_create(&th[i], NULL, reader, &args[i]);
    }
    pthread_barrier_wait(&sh.go);
    for (uint64_t round = 1; round <= 200; round++) {
        cairn_txn *t;
        assert_cairn_ok(cairn_txn_begin(sh.s, &t));
        for (int k = 0; k < 64; k++)
            counter[k * 512 + round % 512] = round;
        assert_cairn_ok(cairn_txn_commit(t));
        if (round % 50 == 0)
            assert_cairn_ok(cairn_checkpoint(sh.s));
    }
    atomic_store(&sh.stop, 1);
    for (int i = 0; i < THREADS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    assert_true(atomic_load(&sh.reads) > 0);
    cairn_check_report r;
    assert_cairn_ok(cairn_check(sh.s, &r));
    assert_cairn_ok(cairn_close(sh.s));
    pthread_barrier_destroy(&sh.go);
}

/* ---- group commit ---- */

/* Each committing thread bumps its own counter (a page of its own) and
 * the shared total in every transaction, so every transaction reads the
 * one before it: after any reopen total == the sum of the counters. */
#define COMMITTERS 4
#define COUNTER_STRIDE 512 /* words: a page apart */

struct committer {
    cairn_store *s;
    uint64_t *counters; /* [COMMITTERS * COUNTER_STRIDE], total at [0] of the last page */
    int id, per_thread;
    pthread_barrier_t *go;
    uint64_t acked, attempted;
    int commit_ioerr, begin_ioerr, other;
};

static uint64_t *total_of(uint64_t *counters)
{
    return &counters[COMMITTERS * COUNTER_STRIDE];
}

static void *committer(void *p)
{
    struct committer *c = p;
    pthread_barrier_wait(c->go);
    for (int i = 0; c->per_thread == 0 || i < c->per_thread; i++) {
        cairn_txn *t;
        int rc = cairn_txn_begin(c->s, &t);
        if (rc) {
            if (rc == CAIRN_IOERR)
                c->begin_ioerr++;
            else
                c->other = rc;
            break;
        }
        c->counters[c->id * COUNTER_STRIDE]++;
        (*total_of(c->counters))++;
        c->attempted++;
        rc = cairn_txn_commit(t);
        if (rc == 0) {
            c->acked++;
            continue;
        }
        cairn_txn_abort(t);
        if (rc == CAIRN_IOERR)
            c->commit_ioerr++;
        else
            c->other = rc;
        /* A failed store fails the next begin too (sticky). */
    }
    return NULL;
}

static void make_counters(const char *dir, const cairn_options *o)
{
    cairn_store *s;
    cairn_txn *t;
    uint64_t *counters;
    assert_cairn_ok(cairn_open(dir, o, &s));
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc_bytes(t, (COMMITTERS + 1) * COUNTER_STRIDE * 8, (void **)&counters));
    assert_cairn_ok(cairn_root_set(t, "counters", counters));
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_ok(cairn_close(s));
}

static void run_committers(cairn_store *s, struct committer *c, int per_thread)
{
    uint64_t *counters;
    assert_cairn_ok(cairn_root_get(s, "counters", (void **)&counters));
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, COMMITTERS);
    pthread_t th[COMMITTERS];
    for (int i = 0; i < COMMITTERS; i++) {
        c[i] = (struct committer){.s = s, .counters = counters, .id = i, .per_thread = per_thread, .go = &go};
        assert_int_equal(pthread_create(&th[i], NULL, committer, &c[i]), 0);
    }
    for (int i = 0; i < COMMITTERS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
}

/* The reopened store holds, per thread, at least every acknowledged commit
 * and at most every attempted one, and the total agrees with the counters
 * (no transaction survived without the ones it read). */
static void verify_counters(const char *dir, const cairn_options *o, const struct committer *c)
{
    cairn_store *s;
    uint64_t *counters;
    assert_cairn_ok(cairn_open(dir, o, &s));
    assert_cairn_ok(cairn_root_get(s, "counters", (void **)&counters));
    uint64_t sum = 0;
    for (int i = 0; i < COMMITTERS; i++) {
        uint64_t v = counters[i * COUNTER_STRIDE];
        if (v < c[i].acked || v > c[i].attempted)
            fail_msg("thread %d: counter %llu, acknowledged %llu, attempted %llu", i, (unsigned long long)v,
                     (unsigned long long)c[i].acked, (unsigned long long)c[i].attempted);
        sum += v;
    }
    assert_int_equal(*total_of(counters), sum);
    cairn_check_report r;
    assert_cairn_ok(cairn_check(s, &r));
    assert_cairn_ok(cairn_close(s));
}

/* Median time of a small append plus fdatasync in dir, in microseconds:
 * where it is next to nothing (tmpfs), a sync ends before another commit
 * can join it, and sharing cannot be required. */
static double fdatasync_us(const char *dir)
{
    char *path = tu_path(dir, "sync-probe");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    double t[9];
    char buf[128] = {0};
    for (int i = 0; i < 9; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        assert_int_equal(write(fd, buf, sizeof buf), (ssize_t)sizeof buf);
        assert_int_equal(fdatasync(fd), 0);
        clock_gettime(CLOCK_MONOTONIC, &b);
        t[i] = (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3;
    }
    close(fd);
    unlink(path);
    free(path);
    for (int i = 1; i < 9; i++) /* insertion sort: nine numbers */
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    return t[4];
}

static void threads_commit_together(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    make_counters(dir, &o);
    cairn_store *s;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    cairn_stats before, after;
    assert_cairn_ok(cairn_stats_get(s, &before));
    struct committer c[COMMITTERS];
    enum { PER = 150 };
    run_committers(s, c, PER);
    assert_cairn_ok(cairn_stats_get(s, &after));
    for (int i = 0; i < COMMITTERS; i++) {
        assert_int_equal(c[i].other, 0);
        assert_int_equal(c[i].commit_ioerr + c[i].begin_ioerr, 0);
        assert_int_equal(c[i].acked, PER);
    }
    uint64_t commits = after.commits - before.commits, syncs = after.log_syncs - before.log_syncs;
    assert_int_equal(commits, COMMITTERS * PER);
    assert_true(syncs >= 1 && syncs <= commits + after.checkpoints - before.checkpoints);
    double us = fdatasync_us(dir);
    print_message("group commit: %llu commits, %llu log syncs (fdatasync here: %.0f us)\n", (unsigned long long)commits,
                  (unsigned long long)syncs, us);
    if (us >= 50)
        assert_true(syncs < commits); /* some commits shared a sync */
    else
        print_message("group commit: fdatasync is nearly free here; sharing not required\n");
    assert_cairn_ok(cairn_close(s));
    verify_counters(dir, &o, c);
}

/* A sync that fails while other commits wait on it fails all of them, and
 * the store: every later begin returns CAIRN_IOERR.  The hook makes each
 * log sync after the first few slow (200 ms) and failing, so the other
 * threads write their records and wait on it meanwhile. */
static void failed_sync_fails_every_waiting_commit(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    make_counters(dir, &o);
    assert_int_equal(store_test_control("log_sync_fails_after=20"), 0);
    cairn_store *s;
    int rc = cairn_open(dir, &o, &s);
    assert_int_equal(store_test_control(""), 0);
    assert_cairn_ok(rc);
    struct committer c[COMMITTERS];
    run_committers(s, c, 0); /* until the store fails */
    int commit_failures = 0;
    uint64_t acked = 0;
    for (int i = 0; i < COMMITTERS; i++) {
        assert_int_equal(c[i].other, 0);
        /* Every thread stopped on the failure: its commit failed, and then
         * its begin, or its begin. */
        assert_int_equal(c[i].begin_ioerr, 1);
        assert_true(c[i].commit_ioerr <= 1);
        commit_failures += c[i].commit_ioerr;
        acked += c[i].acked;
    }
    /* The leader's commit and at least one waiting on its sync. */
    if (commit_failures < 2)
        fail_msg("%d commits failed on the sync; want the leader's and at least one follower's", commit_failures);
    assert_true(acked >= 10); /* the syncs before the failing ones succeeded */
    print_message("failed sync: %llu commits acknowledged, %d failed on the sync\n", (unsigned long long)acked,
                  commit_failures);
    cairn_txn *t;
    assert_int_equal(cairn_txn_begin(s, &t), CAIRN_IOERR);
    assert_int_equal(cairn_checkpoint(s), CAIRN_IOERR);
    assert_cairn_ok(cairn_close(s));
    verify_counters(dir, &o, c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        tu_dir_test(threads_write_one_transaction),
        tu_dir_test(readers_during_commits_and_checkpoints),
        tu_dir_test(threads_commit_together),
        tu_dir_test(failed_sync_fails_every_waiting_commit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
