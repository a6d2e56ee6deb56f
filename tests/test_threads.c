/*
 * test_threads.c - many threads inside one store: writing in one
 * transaction, reading cold pages while commits and checkpoints run.
 */
#define _GNU_SOURCE
#include "testutil.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        tu_dir_test(threads_write_one_transaction),
        tu_dir_test(readers_during_commits_and_checkpoints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
