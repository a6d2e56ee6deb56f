/*
 * test_recovery.c - end-to-end crash recovery through the public API.
 *
 * A child process (this test binary, re-executed with "child" arguments,
 * so that it starts clean: no cmocka state, no inherited store) opens a
 * store and runs a deterministic workload, telling the parent through a
 * pipe each transaction number after cairn_txn_commit returned.  The
 * parent kills it with SIGKILL, reopens the store (recovery) and checks
 * that the store holds exactly the state after some transaction n, with
 * n at least the last acknowledged one: a prefix of the commits, never a
 * partial transaction.
 *
 * The workload is the list model of tests/lib/prefix_model.h (shared with
 * the power-loss harness), with a 20-page hdr->wide: the state after
 * transaction n is a function of n alone, which verify_store() checks in
 * full.
 *
 * Set CAIRN_TEST_SEED to replay a run; the seed is printed.
 */
#define _GNU_SOURCE
#include "testutil.h"
#include "store/test_control.h"
#include "files.h"
#include "prefix_model.h"
#include "splitmix.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pager/layout.h"

/* The list model (tests/lib/prefix_model.c) with a 20-page hdr->wide. */
static struct list_model model = {.wide_pages = 20};

/* ---- the child ---- */

enum { MSG_START = 1, MSG_ACK, MSG_DONE, MSG_OPENED };

struct msg {
    int32_t kind, pad;
    int64_t txn;
    uint64_t wal_bytes;
    uint64_t checkpoints; /* stats.checkpoints of the child's session */
};

static void child_send(int fd, int kind, int64_t txn, uint64_t wal_bytes, uint64_t checkpoints)
{
    struct msg m = {.kind = kind, .txn = txn, .wal_bytes = wal_bytes, .checkpoints = checkpoints};
    if (write(fd, &m, sizeof m) != (ssize_t)sizeof m)
        _exit(90);
}

static void child_fail(const char *what, int64_t i, int rc, cairn_store *s, const char *err)
{
    fprintf(stderr, "child: %s (txn %lld): %d (%s) %s %s\n", what, (long long)i, rc, cairn_strerror(rc),
            s ? cairn_errmsg(s) : "", err ? err : "");
    _exit(80);
}

/* argv: exe child DIR FD SYNC CKPT_BYTES CKPT_EVERY MAX_TXNS OPEN_ONLY */
static int child_main(int argc, char **argv)
{
    if (argc != 9)
        _exit(99);
    const char *dir = argv[2];
    int fd = atoi(argv[3]);
    cairn_options o;
    tu_options(&o);
    o.sync = atoi(argv[4]);
    o.checkpoint_bytes = strtoull(argv[5], NULL, 10);
    int64_t ckpt_every = atoll(argv[6]), max_txns = atoll(argv[7]);
    int open_only = atoi(argv[8]);

    child_send(fd, MSG_START, -1, 0, 0);
    cairn_store *s;
    int rc = cairn_open(dir, &o, &s);
    if (rc)
        child_fail("cairn_open", -1, rc, NULL, NULL);
    if (open_only) {
        child_send(fd, MSG_OPENED, -1, 0, 0);
        for (;;)
            pause();
    }
    rc = list_register(&model, s);
    if (rc)
        child_fail("register types", -1, rc, s, NULL);
    int64_t n;
    rc = list_current(s, &n);
    if (rc)
        child_fail("setup", 0, rc, s, NULL);
    cairn_stats st;
    char err[256] = "";
    if (n < 0) { /* a new store: transaction 0 creates the root */
        rc = list_txn(&model, s, 0, err, sizeof err);
        if (rc)
            child_fail("setup", 0, rc, s, err);
        n = 0;
        cairn_stats_get(s, &st);
        child_send(fd, MSG_ACK, 0, st.wal_bytes, st.checkpoints);
    }
    for (int64_t i = n + 1; i <= n + max_txns; i++) {
        rc = list_txn(&model, s, i, err, sizeof err);
        if (rc)
            child_fail("transaction", i, rc, s, err);
        cairn_stats_get(s, &st);
        child_send(fd, MSG_ACK, i, st.wal_bytes, st.checkpoints);
        if (ckpt_every && i % ckpt_every == 0) {
            rc = cairn_checkpoint(s);
            if (rc)
                child_fail("checkpoint", i, rc, s, NULL);
        }
    }
    child_send(fd, MSG_DONE, n + max_txns, 0, 0);
    for (;;)
        pause();
}

/* ---- the parent's side of a child ---- */

struct child_cfg {
    int sync;
    uint64_t ckpt_bytes; /* 0 = default */
    int64_t ckpt_every;  /* explicit cairn_checkpoint every so many txns; 0 = never */
    int64_t max_txns;    /* then the child waits to be killed */
    int open_only;       /* only open the store (recovery), then wait */
};

enum stop_how {
    STOP_DELAY, /* kill `param` microseconds after the child started */
    STOP_ACK,   /* kill when txn `param` is acknowledged (then wait extra_us) */
    STOP_DONE,  /* kill when the child has run all its transactions */
    STOP_OPENED /* kill when the child has opened the store */
};

struct run {
    int64_t last_ack; /* -1: none */
    int64_t nacks;
    int started, opened, done;
    int64_t open_us;      /* START to OPENED, if seen */
    uint64_t checkpoints; /* checkpoints the child had run by its last ack */
    /* wal size after each acknowledged txn, indexed by txn number */
    uint64_t *wal_after;
    size_t wal_cap;
};

static void run_free(struct run *r)
{
    free(r->wal_after);
    memset(r, 0, sizeof *r);
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* 1: got one, 0: timeout, -1: EOF. */
static int read_msg(int fd, struct msg *m, int64_t timeout_us)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int ms = timeout_us < 0 ? -1 : (int)((timeout_us + 999) / 1000);
    int rc = poll(&pfd, 1, ms);
    if (rc < 0 && errno == EINTR)
        return 0;
    assert_true(rc >= 0);
    if (rc == 0)
        return 0;
    size_t got = 0;
    while (got < sizeof *m) {
        ssize_t n = read(fd, (char *)m + got, sizeof *m - got);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n >= 0);
        if (n == 0) {
            assert_int_equal(got, 0); /* messages are written whole */
            return -1;
        }
        got += (size_t)n;
    }
    return 1;
}

static void note(struct run *r, const struct msg *m, int64_t t0)
{
    switch (m->kind) {
    case MSG_START:
        r->started = 1;
        break;
    case MSG_OPENED:
        r->opened = 1;
        r->open_us = now_us() - t0;
        break;
    case MSG_DONE:
        r->done = 1;
        break;
    case MSG_ACK:
        if (r->last_ack >= 0 && m->txn != r->last_ack + 1)
            fail_msg("child acknowledged txn %lld after %lld", (long long)m->txn, (long long)r->last_ack);
        r->last_ack = m->txn;
        r->nacks++;
        if ((size_t)m->txn >= r->wal_cap) {
            size_t cap = r->wal_cap ? r->wal_cap : 256;
            while (cap <= (size_t)m->txn)
                cap *= 2;
            r->wal_after = realloc(r->wal_after, cap * sizeof *r->wal_after);
            assert_non_null(r->wal_after);
            memset(r->wal_after + r->wal_cap, 0, (cap - r->wal_cap) * sizeof *r->wal_after);
            r->wal_cap = cap;
        }
        r->wal_after[m->txn] = m->wal_bytes;
        r->checkpoints = m->checkpoints;
        break;
    default:
        fail_msg("bad message %d from the child", m->kind);
    }
}

static void run_child(const char *dir, const struct child_cfg *c, enum stop_how how, int64_t param, int64_t extra_us,
                      struct run *r)
{
    memset(r, 0, sizeof *r);
    r->last_ack = -1;
    int p[2];
    assert_int_equal(pipe(p), 0);
    char fdbuf[16], sync[16], ckb[32], cke[32], maxt[32], oo[8];
    snprintf(fdbuf, sizeof fdbuf, "%d", p[1]);
    snprintf(sync, sizeof sync, "%d", c->sync);
    snprintf(ckb, sizeof ckb, "%llu", (unsigned long long)c->ckpt_bytes);
    snprintf(cke, sizeof cke, "%lld", (long long)c->ckpt_every);
    snprintf(maxt, sizeof maxt, "%lld", (long long)(c->max_txns ? c->max_txns : 1000000000));
    snprintf(oo, sizeof oo, "%d", c->open_only);
    char *argv[] = {"test_recovery", "child", (char *)dir, fdbuf, sync, ckb, cke, maxt, oo, NULL};
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        execv("/proc/self/exe", argv);
        _exit(98);
    }
    close(p[1]);
    int fd = p[0];
    struct msg m;
    int eof = 0;

    /* The child is running once it says so. */
    int got = read_msg(fd, &m, 30 * 1000000);
    if (got != 1 || m.kind != MSG_START) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("child did not start");
    }
    int64_t t0 = now_us();
    note(r, &m, t0);
    int64_t deadline = how == STOP_DELAY ? t0 + param : t0 + 120 * 1000000;
    for (;;) {
        int64_t left = deadline - now_us();
        if (how == STOP_ACK && r->last_ack >= param)
            break;
        if ((how == STOP_DONE && r->done) || (how == STOP_OPENED && r->opened))
            break;
        if (left <= 0) {
            if (how != STOP_DELAY) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                fail_msg("child did not get there in time (stop %d, param %lld, last ack %lld)", how, (long long)param,
                         (long long)r->last_ack);
            }
            break;
        }
        got = read_msg(fd, &m, left);
        if (got < 0) {
            eof = 1;
            break;
        }
        if (got > 0)
            note(r, &m, t0);
    }
    if (extra_us > 0 && !eof)
        usleep((useconds_t)extra_us);
    kill(pid, SIGKILL);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
        close(fd);
        if (WIFEXITED(status))
            fail_msg("child exited with status %d before it was killed (see its stderr)", WEXITSTATUS(status));
        fail_msg("child died of signal %d before it was killed", WTERMSIG(status));
    }
    /* Everything it wrote before dying. */
    while ((got = read_msg(fd, &m, -1)) == 1)
        note(r, &m, t0);
    close(fd);
}

/* ---- checking a store ---- */

static void open_store(const char *dir, cairn_store **s)
{
    cairn_options o;
    tu_options(&o);
    int rc = cairn_open(dir, &o, s);
    if (rc)
        fail_msg("cairn_open(%s): %d (%s)", dir, rc, cairn_strerror(rc));
    /* Every recovered store must pass the integrity check. */
    cairn_check_report r;
    rc = cairn_check(*s, &r);
    if (rc)
        fail_msg("cairn_check(%s) after recovery: %d (%s): %llu problems, first: %s", dir, rc, cairn_strerror(rc),
                 (unsigned long long)r.problems, r.first_problem);
}

static void close_store(cairn_store *s)
{
    int rc = cairn_close(s);
    if (rc)
        fail_msg("cairn_close: %d (%s)", rc, cairn_strerror(rc));
}

/* The store must hold the state after txn n for some n in [lo, hi];
 * lo = -1 allows the empty store.  Returns n. */
static int64_t verify_store(cairn_store *s, int64_t lo, int64_t hi)
{
    int64_t n;
    char err[512];
    if (list_verify(&model, s, lo, hi, &n, err, sizeof err))
        fail_msg("%s", err);
    return n;
}

/* Transaction i of the model, committed. */
static void run_txn(cairn_store *s, int64_t i)
{
    char err[256] = "";
    int rc = list_txn(&model, s, i, err, sizeof err);
    if (rc)
        fail_msg("txn %lld: %d (%s) %s", (long long)i, rc, cairn_strerror(rc), err);
}

/* Both stores hold the same state and the same bytes in every page up to
 * the allocator's high-water mark (pointers compared as offsets). */
static void compare_stores(cairn_store *a, cairn_store *b, int64_t n)
{
    assert_int_equal(verify_store(a, n, n), n);
    assert_int_equal(verify_store(b, n, n), n);
    void *ba, *bb;
    size_t la, lb;
    assert_cairn_ok(cairn_range(a, &ba, &la));
    assert_cairn_ok(cairn_range(b, &bb, &lb));
    assert_int_equal(la, lb);
    cairn_stats sa, sb;
    assert_cairn_ok(cairn_stats_get(a, &sa));
    assert_cairn_ok(cairn_stats_get(b, &sb));
    assert_true(sa.pages_allocated > 0);
    assert_int_equal(sa.pages_allocated, sb.pages_allocated);
    struct layout l;
    layout_init(&l, la / PAGE_BYTES);
    size_t words = (size_t)((l.data_start + sa.pages_allocated) * PAGE_WORDS);
    const uint64_t *wa = ba, *wb = bb;
    uintptr_t ua = (uintptr_t)ba, ub = (uintptr_t)bb;
    for (size_t w = PAGE_WORDS; w < words; w++) {
        uint64_t x = wa[w], y = wb[w];
        if (x == y)
            continue;
        if (x >= ua && x < ua + la && y >= ub && y < ub + lb && x - ua == y - ub)
            continue;
        fail_msg("stores differ at page %zu word %zu: %#llx vs %#llx", w / PAGE_WORDS, w % PAGE_WORDS,
                 (unsigned long long)x, (unsigned long long)y);
    }
}

/* ---- randomness ---- */

static uint64_t rng;

/* One seed per run (printed); each test mixes its name in. */
static void seed_rng(const char *test)
{
    static uint64_t seed;
    if (!seed) {
        const char *e = getenv("CAIRN_TEST_SEED");
        seed = e && *e ? strtoull(e, NULL, 0) : ((uint64_t)time(NULL) * 2654435761u) ^ (uint64_t)getpid();
        if (!seed)
            seed = 1;
    }
    rng = seed;
    for (const char *c = test; *c; c++)
        rng = (rng ^ (unsigned char)*c) * 0x100000001B3ull;
    print_message("%s: CAIRN_TEST_SEED=%llu\n", test, (unsigned long long)seed);
}

static uint64_t rnd(uint64_t bound)
{
    return tu_splitmix_below(&rng, bound);
}

/* ---- tests ---- */

/* Rounds of kill-at-a-random-moment on one store that lives on. */
static void kill_rounds(const char *dir, int sync, int rounds)
{
    int64_t prev = -1;
    int beyond_ack = 0, with_acks = 0;
    uint64_t bg_checkpoints = 0;
    for (int r = 0; r < rounds; r++) {
        struct child_cfg c = {.sync = sync};
        const char *kind = "plain";
        if (r % 3 == 1) {
            c.ckpt_bytes = 16384; /* the background flusher checkpoints all the time */
            kind = "background checkpoints";
        } else if (r % 3 == 2) {
            c.ckpt_every = 1 + (int64_t)rnd(8); /* explicit checkpoints */
            kind = "explicit checkpoints";
        }
        int64_t delay = r % 5 == 0 ? (int64_t)rnd(8000) : (int64_t)rnd(150000);
        struct run run;
        run_child(dir, &c, STOP_DELAY, delay, 0, &run);
        int64_t lo = prev > run.last_ack ? prev : run.last_ack;
        cairn_store *s;
        open_store(dir, &s);
        int64_t n = verify_store(s, lo, lo + 1);
        close_store(s);
        /* Recovery left nothing to do the second time. */
        open_store(dir, &s);
        assert_int_equal(verify_store(s, n, n), n);
        close_store(s);
        print_message("round %2d (%s, kill after %6lld us): %3lld acks, %2llu checkpoints, last ack %lld, "
                      "state %lld\n",
                      r, kind, (long long)delay, (long long)run.nacks, (unsigned long long)run.checkpoints,
                      (long long)run.last_ack, (long long)n);
        if (r % 3 == 1)
            bg_checkpoints += run.checkpoints;
        beyond_ack += n > run.last_ack && run.last_ack >= 0;
        with_acks += run.nacks > 0;
        prev = n;
        run_free(&run);
    }
    print_message("%d rounds kept a commit the child had not acknowledged yet\n", beyond_ack);
    /* The rounds did work: most of them committed something.  On a loaded
     * machine (sanitizers, other suites) the child can take longer to open
     * than the random delays; then rounds that live longer are added, each
     * killed and verified as the others, until half the rounds committed. */
    for (int extra = 0; (with_acks < rounds / 2 || prev < rounds) && extra < rounds; extra++) {
        struct child_cfg c = {.sync = sync};
        struct run run;
        run_child(dir, &c, STOP_DELAY, 200000 + (int64_t)rnd(300000), 0, &run);
        int64_t lo = prev > run.last_ack ? prev : run.last_ack;
        cairn_store *s;
        open_store(dir, &s);
        prev = verify_store(s, lo, lo + 1);
        close_store(s);
        with_acks += run.nacks > 0;
        print_message("extra round %d (plain): %lld acks, state %lld\n", extra, (long long)run.nacks, (long long)prev);
        run_free(&run);
    }
    assert_true(with_acks >= rounds / 2);
    assert_true(prev >= rounds);
    /* The background flusher did checkpoint in the rounds meant for it.
     * Random kill times on a loaded machine can stop every one of them
     * before the flusher runs; then rounds that live longer are added
     * (still killed, still verified) until one checkpoints. */
    for (int extra = 0; bg_checkpoints == 0 && extra < 20; extra++) {
        struct child_cfg c = {.sync = sync, .ckpt_bytes = 16384};
        struct run run;
        run_child(dir, &c, STOP_DELAY, 300000 + (int64_t)rnd(200000), 0, &run);
        int64_t lo = prev > run.last_ack ? prev : run.last_ack;
        cairn_store *s;
        open_store(dir, &s);
        prev = verify_store(s, lo, lo + 1);
        close_store(s);
        bg_checkpoints += run.checkpoints;
        print_message("extra round %d (background checkpoints): %llu checkpoints\n", extra,
                      (unsigned long long)run.checkpoints);
        run_free(&run);
    }
    assert_true(bg_checkpoints > 0);
}

static void kill_rounds_sync_full(void **state)
{
    seed_rng("kill_rounds_sync_full");
    kill_rounds(*state, CAIRN_SYNC_FULL, 30);
}

static void kill_rounds_sync_off(void **state)
{
    seed_rng("kill_rounds_sync_off");
    kill_rounds(*state, CAIRN_SYNC_OFF, 15);
}

/* A store in dir, killed with many commits still in its log. */
static void killed_store(const char *dir, int64_t min_txns, int64_t *last_ack, struct run *out)
{
    struct child_cfg c = {.sync = CAIRN_SYNC_FULL};
    struct run run;
    int64_t target = min_txns + (int64_t)rnd((uint64_t)min_txns);
    run_child(dir, &c, STOP_ACK, target, (int64_t)rnd(3000), &run);
    assert_true(run.last_ack >= target);
    *last_ack = run.last_ack;
    assert_true(tu_log_end(dir) > 64 * 20); /* the commits are in the log only */
    if (out)
        *out = run;
    else
        run_free(&run);
}

/* A copy of orig recovered once, and closed; *n the state it holds (at
 * least ack, the last acknowledged commit). */
static char *recovered_copy(const char *orig, int64_t ack, int64_t *n)
{
    char *b = tu_copy_store(orig);
    cairn_store *sb;
    open_store(b, &sb);
    *n = verify_store(sb, ack, ack + 1);
    close_store(sb);
    return b;
}

/* Copies of orig whose recovery is killed at a random moment (all but the
 * first, whose recovery runs to the end to time it), each then recovered
 * by open_store and compared with ref (state n).  batched: the killed
 * recoveries write a batch per transaction (store_test_control("recover_batch=1")),
 * and every other copy finishes in one batch what was left. */
static void kill_recoveries(const char *orig, cairn_store *ref, int64_t n, int runs, int batched)
{
    int64_t open_us = 0;
    int killed_early = 0;
    for (int i = 0; i < runs; i++) {
        char *d = tu_copy_store(orig);
        struct child_cfg cc = {.open_only = 1};
        struct run run;
        if (i == 0)
            run_child(d, &cc, STOP_OPENED, 0, 0, &run); /* measure how long recovery takes */
        else
            run_child(d, &cc, STOP_DELAY, (int64_t)rnd((uint64_t)(open_us + open_us / 2 + 1)), 0, &run);
        if (i == 0) {
            assert_true(run.opened);
            open_us = run.open_us;
        }
        killed_early += !run.opened;
        cairn_store *sd;
        if (batched && i % 2)
            assert_int_equal(store_test_control(""), 0);
        open_store(d, &sd);
        if (batched)
            assert_int_equal(store_test_control("recover_batch=1"), 0);
        compare_stores(sd, ref, n);
        close_store(sd);
        tu_rmdir(d);
        run_free(&run);
    }
    print_message("%srecovery takes %lld us; %d of %d kills landed before it finished\n", batched ? "batched " : "",
                  (long long)open_us, killed_early, runs - 1);
}

/* A recovered store, closed and opened again, is what one recovery made:
 * the second open finds nothing to do. */
static void reopen_after_recovery_changes_nothing(void **state)
{
    const char *orig = *state;
    seed_rng("reopen_after_recovery_changes_nothing");
    int64_t ack, n;
    killed_store(orig, 60, &ack, NULL);
    char *a = tu_copy_store(orig), *b = recovered_copy(orig, ack, &n);
    cairn_store *sa, *sb;
    open_store(a, &sa);
    assert_int_equal(verify_store(sa, n, n), n);
    close_store(sa);
    open_store(a, &sa);
    open_store(b, &sb);
    compare_stores(sa, sb, n);
    close_store(sa);
    close_store(sb);
    tu_rmdir(a);
    tu_rmdir(b);
}

/* Recovered, then the old log put back, as if the process had died between
 * the checkpoint commit and the log reset: its records are all at or below
 * the checkpoint and are not applied again. */
static void old_log_after_recovery_is_not_replayed(void **state)
{
    const char *orig = *state;
    seed_rng("old_log_after_recovery_is_not_replayed");
    int64_t ack, n;
    killed_store(orig, 60, &ack, NULL);
    char *b = recovered_copy(orig, ack, &n), *c = tu_copy_store(orig);
    cairn_store *sb, *sc;
    open_store(c, &sc);
    close_store(sc);
    size_t wlen;
    unsigned char *wal = tu_file_read(orig, "wal", &wlen);
    tu_file_write(c, "wal", wal, wlen);
    free(wal);
    open_store(c, &sc);
    open_store(b, &sb);
    compare_stores(sc, sb, n);
    close_store(sc);
    close_store(sb);
    tu_rmdir(b);
    tu_rmdir(c);
}

/* Recovery itself killed at a random moment, then run again, ends where
 * one recovery does. */
static void killed_recovery_recovers_the_same(void **state)
{
    const char *orig = *state;
    seed_rng("killed_recovery_recovers_the_same");
    int64_t ack, n;
    killed_store(orig, 60, &ack, NULL);
    char *b = recovered_copy(orig, ack, &n);
    cairn_store *sb;
    open_store(b, &sb);
    kill_recoveries(orig, sb, n, 10, 0);
    close_store(sb);
    tu_rmdir(b);
}

/* Recovery writing a batch after every transaction (each batch an
 * ordinary checkpoint of a prefix of the log) ends where recovery in one
 * batch does. */
static void recover_in_batches_ends_where_one_batch_does(void **state)
{
    const char *orig = *state;
    seed_rng("recover_in_batches_ends_where_one_batch_does");
    int64_t ack, n;
    killed_store(orig, 60, &ack, NULL);
    char *a = recovered_copy(orig, ack, &n), *b = tu_copy_store(orig);
    cairn_store *sa, *sb;
    open_store(a, &sa);
    assert_int_equal(store_test_control("recover_batch=1"), 0);
    open_store(b, &sb); /* a batch per transaction */
    assert_int_equal(store_test_control(""), 0);
    compare_stores(sb, sa, n);
    close_store(sb);
    close_store(sa);
    tu_rmdir(a);
    tu_rmdir(b);
}

/* Batched recovery killed between batches and run again (in batches, or in
 * one batch) ends where recovery in one batch does. */
static void recover_in_batches_killed_between_batches_ends_the_same(void **state)
{
    const char *orig = *state;
    seed_rng("recover_in_batches_killed_between_batches_ends_the_same");
    int64_t ack, n;
    killed_store(orig, 60, &ack, NULL);
    char *a = recovered_copy(orig, ack, &n);
    cairn_store *sa;
    open_store(a, &sa);
    assert_int_equal(store_test_control("recover_batch=1"), 0);
    kill_recoveries(orig, sa, n, 8, 1);
    assert_int_equal(store_test_control(""), 0);
    close_store(sa);
    tu_rmdir(a);
}

/* The test-control call takes the hooks it knows and refuses the rest,
 * changing nothing when it refuses. */
static void test_control_takes_known_hooks_and_refuses_others(void **state)
{
    (void)state;
    assert_int_equal(store_test_control("recover_batch=3,backup_pause_ms=0"), 0);
    assert_string_equal(getenv(TEST_CONTROL_VAR), "recover_batch=3,backup_pause_ms=0");
    assert_int_equal(store_test_control("recover_batches=1"), CAIRN_INVALID);
    assert_int_equal(store_test_control("recover_batch="), CAIRN_INVALID);
    assert_int_equal(store_test_control("recover_batch=1x"), CAIRN_INVALID);
    assert_int_equal(store_test_control("recover_batch"), CAIRN_INVALID);
    assert_int_equal(store_test_control("recover_batch=1,"), 0);
    assert_int_equal(store_test_control(",recover_batch=1"), CAIRN_INVALID);
    assert_string_equal(getenv(TEST_CONTROL_VAR), "recover_batch=1,");
    assert_int_equal(store_test_control(""), 0);
    assert_null(getenv(TEST_CONTROL_VAR));
}

/* The teardown of the batched-recovery tests: no later test recovers in
 * batches, whatever happened to this one. */
static int unset_batch_teardown(void **state)
{
    assert_int_equal(store_test_control(""), 0);
    return tu_dir_teardown(state);
}

static void missing_log_refused(void **state)
{
    const char *dir = *state;
    seed_rng("missing_log_refused");
    int64_t ack;
    killed_store(dir, 20, &ack, NULL);
    size_t wlen, dlen;
    unsigned char *wal = tu_file_read(dir, "wal", &wlen);
    unsigned char *data = tu_file_read(dir, "data.mdb", &dlen);
    char *p = tu_path(dir, "wal");
    assert_int_equal(unlink(p), 0);
    free(p);

    cairn_options o;
    tu_options(&o);
    cairn_store *s = NULL;
    assert_cairn_rc(cairn_open(dir, &o, &s), CAIRN_CORRUPT);
    assert_null(s);
    /* No new empty log was made (that would lose the commits for good),
     * and LMDB is untouched. */
    assert_int_equal(tu_file_size(dir, "wal"), -1);
    size_t dlen2;
    unsigned char *data2 = tu_file_read(dir, "data.mdb", &dlen2);
    assert_int_equal(dlen, dlen2);
    assert_memory_equal(data, data2, dlen);
    free(data2);
    /* Read-only as well. */
    o.flags = CAIRN_RDONLY;
    assert_cairn_rc(cairn_open(dir, &o, &s), CAIRN_CORRUPT);
    assert_int_equal(tu_file_size(dir, "wal"), -1);

    /* The log put back: every acknowledged commit is there. */
    tu_file_write(dir, "wal", wal, wlen);
    open_store(dir, &s);
    verify_store(s, ack, ack + 1);
    close_store(s);
    free(wal);
    free(data);
}

static void foreign_log_refused(void **state)
{
    const char *x = *state;
    char *y = tu_tempdir();
    seed_rng("foreign_log_refused");
    int64_t ack_x, ack_y;
    killed_store(x, 20, &ack_x, NULL);
    killed_store(y, 10, &ack_y, NULL);
    char *keep = tu_copy_store(x); /* X's own files, for comparison */
    size_t ylen;
    unsigned char *ywal = tu_file_read(y, "wal", &ylen);
    tu_file_write(x, "wal", ywal, ylen);

    cairn_options o;
    tu_options(&o);
    cairn_store *s = NULL;
    assert_cairn_rc(cairn_open(x, &o, &s), CAIRN_CORRUPT);
    assert_null(s);
    /* Nothing was replayed, reset or written. */
    tu_same_file(x, "wal", y, "wal");
    tu_same_file(x, "data.mdb", keep, "data.mdb");
    o.flags = CAIRN_RDONLY;
    assert_cairn_rc(cairn_open(x, &o, &s), CAIRN_CORRUPT);
    tu_same_file(x, "wal", y, "wal");
    tu_same_file(x, "data.mdb", keep, "data.mdb");

    /* The right log back: X opens with all its data; Y is unharmed. */
    size_t xlen;
    unsigned char *xwal = tu_file_read(keep, "wal", &xlen);
    tu_file_write(x, "wal", xwal, xlen);
    open_store(x, &s);
    verify_store(s, ack_x, ack_x + 1);
    close_store(s);
    open_store(y, &s);
    verify_store(s, ack_y, ack_y + 1);
    close_store(s);
    free(xwal);
    free(ywal);
    tu_rmdir(y);
    tu_rmdir(keep);
}

static void torn_tail(void **state)
{
    const char *orig = *state;
    seed_rng("torn_tail");
    enum { K = 30 };
    struct child_cfg c = {.sync = CAIRN_SYNC_FULL, .max_txns = K};
    struct run run;
    run_child(orig, &c, STOP_DONE, 0, 0, &run);
    assert_int_equal(run.last_ack, K);
    assert_true(run.done);
    /* No checkpoint ran: the log holds transactions 0..K, and ends with K. */
    uint64_t end = run.wal_after[K], start = run.wal_after[K - 1];
    assert_int_equal(tu_log_end(orig), end);
    assert_true(start < end && end - start > 100);

    struct {
        uint64_t cut;
        int64_t want;
    } cuts[32];
    size_t nc = 0;
    uint64_t inside[] = {start + 1, start + 7, start + 8, start + 31, start + 32, start + 33, start + (end - start) / 2,
                         end - 41,  end - 40,  end - 39,  end - 8,    end - 3,    end - 2,    end - 1};
    cuts[nc].cut = start, cuts[nc++].want = K - 1;
    for (size_t i = 0; i < sizeof inside / sizeof inside[0]; i++)
        cuts[nc].cut = inside[i], cuts[nc++].want = K - 1;
    /* Cuts further back: at a transaction boundary, and just past one. */
    static const int back[] = {3, 10, 25};
    for (size_t i = 0; i < sizeof back / sizeof back[0]; i++) {
        cuts[nc].cut = run.wal_after[K - back[i]], cuts[nc++].want = K - back[i];
        cuts[nc].cut = run.wal_after[K - back[i]] + 1 + rnd(40), cuts[nc++].want = K - back[i];
    }
    cuts[nc].cut = end, cuts[nc++].want = K;

    for (size_t i = 0; i < nc; i++) {
        char *d = tu_copy_store(orig);
        char *w = tu_path(d, "wal");
        assert_int_equal(truncate(w, (off_t)cuts[i].cut), 0);
        free(w);
        cairn_store *s;
        open_store(d, &s);
        int64_t n = verify_store(s, cuts[i].want, cuts[i].want);
        /* The store goes on from there: the next commit replaces the torn tail. */
        int64_t cur;
        assert_cairn_ok(list_register(&model, s));
        assert_cairn_ok(list_current(s, &cur));
        assert_int_equal(cur, n);
        run_txn(s, n + 1);
        run_txn(s, n + 2);
        close_store(s);
        open_store(d, &s);
        verify_store(s, n + 2, n + 2);
        close_store(s);
        tu_rmdir(d);
    }
    run_free(&run);
}

/* A torn tail after commits made with CAIRN_SYNC_OFF: the same prefix rule. */
static void torn_tail_sync_off(void **state)
{
    const char *orig = *state;
    seed_rng("torn_tail_sync_off");
    enum { K = 20 };
    struct child_cfg c = {.sync = CAIRN_SYNC_OFF, .max_txns = K};
    struct run run;
    run_child(orig, &c, STOP_DONE, 0, 0, &run);
    assert_int_equal(run.last_ack, K);
    uint64_t end = run.wal_after[K];
    assert_int_equal(tu_log_end(orig), end);
    for (int i = 0; i < 6; i++) {
        uint64_t start = run.wal_after[K - 1];
        uint64_t cut = start + rnd(end - start);
        char *d = tu_copy_store(orig);
        char *w = tu_path(d, "wal");
        assert_int_equal(truncate(w, (off_t)cut), 0);
        free(w);
        cairn_store *s;
        open_store(d, &s);
        verify_store(s, K - 1, K - 1);
        close_store(s);
        tu_rmdir(d);
    }
    run_free(&run);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "child") == 0)
        return child_main(argc, argv);
    const struct CMUnitTest tests[] = {
        tu_dir_test(kill_rounds_sync_full),
        tu_dir_test(kill_rounds_sync_off),
        tu_dir_test(reopen_after_recovery_changes_nothing),
        tu_dir_test(old_log_after_recovery_is_not_replayed),
        tu_dir_test(killed_recovery_recovers_the_same),
        cmocka_unit_test_setup_teardown(recover_in_batches_ends_where_one_batch_does, tu_dir_setup,
                                        unset_batch_teardown),
        cmocka_unit_test_setup_teardown(recover_in_batches_killed_between_batches_ends_the_same, tu_dir_setup,
                                        unset_batch_teardown),
        cmocka_unit_test(test_control_takes_known_hooks_and_refuses_others),
        tu_dir_test(missing_log_refused),
        tu_dir_test(foreign_log_refused),
        tu_dir_test(torn_tail),
        tu_dir_test(torn_tail_sync_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
