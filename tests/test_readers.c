/*
 * test_readers.c - read-only handles beside a writer: each one an isolated
 * snapshot of the last commit before it opened, whatever the writer does
 * afterwards (uncommitted changes, commits, checkpoints, log resets, its
 * close); a writer that opens while readers hold the store; a reader
 * killed with SIGKILL leaves nothing that stops the writer or later
 * readers, and LMDB reclaims its slot.
 *
 * The readers of another process are this binary re-executed ("--child
 * reader DIR"): fresh processes without cmocka.  The parent talks to one
 * through two pipes, one byte a step.
 */
#define _GNU_SOURCE
#include "testutil.h"
#include "child.h"
#include "files.h"
#include "storeutil.h"
#include "store/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The graph: root "state" -> a header naming a version and an array of
 * ITEMS words, each a hash of the version and its index (incompressible,
 * so that every checkpoint writes whole extents).  ITEMS spans many
 * extents, so a reader that touches the array late loads pages the writer
 * has rewritten since. */
#define ITEMS (64 * 1024) /* 512 KiB: 8 extents */

struct state {
    int64_t version;
    int64_t *items;
};

static const size_t state_ptrs[] = {offsetof(struct state, items)};

static int64_t item(int64_t v, size_t i)
{
    uint64_t x = (uint64_t)v * 0x9E3779B97F4A7C15u + i;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9u;
    return (int64_t)(x ^ (x >> 29));
}

static cairn_type state_type(cairn_store *s)
{
    cairn_type t;
    if (cairn_type_register(s, "state", sizeof(struct state), state_ptrs, 1, &t) != 0)
        return 0;
    return t;
}

/* Version of the state the store shows: -1 if the array disagrees with
 * the header anywhere (a torn or mixed view). */
static int64_t read_state(cairn_store *s)
{
    struct state *st;
    if (cairn_root_get(s, "state", (void **)&st) != 0)
        return -2;
    int64_t v = st->version;
    for (size_t i = 0; i < ITEMS; i++)
        if (st->items[i] != item(v, i))
            return -1;
    return v;
}

/* The header only, leaving the array untouched (not yet loaded). */
static int64_t read_version(cairn_store *s)
{
    struct state *st;
    if (cairn_root_get(s, "state", (void **)&st) != 0)
        return -2;
    return st->version;
}

/* ------------------------------------------------------------------ */
/* Child side (no cmocka)                                             */
/* ------------------------------------------------------------------ */

static void send_i64(int fd, int64_t v)
{
    if (write(fd, &v, sizeof v) != sizeof v)
        _exit(92);
}

static char wait_byte(int fd)
{
    char c;
    if (read(fd, &c, 1) != 1)
        _exit(93);
    return c;
}

/* A reader: open read-only, report the header's version; then for every
 * byte the parent sends: 'v' reports the header again, 's' reads the whole
 * state (header and array) and reports it, 'r' refreshes and reports the
 * whole state, 'q' closes and exits. */
static void child_reader(const char *dir, int in, int out)
{
    cairn_options o;
    tu_options(&o);
    o.flags = CAIRN_RDONLY;
    cairn_store *s;
    CHILD_OK(cairn_open(dir, &o, &s));
    send_i64(out, read_version(s));
    for (;;) {
        char c = wait_byte(in);
        if (c == 'v')
            send_i64(out, read_version(s));
        else if (c == 's')
            send_i64(out, read_state(s));
        else if (c == 'r') {
            CHILD_OK(cairn_refresh(s));
            send_i64(out, read_state(s));
        } else if (c == 'q')
            break;
    }
    CHILD_OK(cairn_close(s));
    _exit(0);
}

static int child_main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[0], "reader") == 0)
        child_reader(argv[1], atoi(argv[2]), atoi(argv[3]));
    fprintf(stderr, "usage: --child reader DIR IN OUT\n");
    _exit(2);
}

/* ------------------------------------------------------------------ */
/* Parent side                                                         */
/* ------------------------------------------------------------------ */

struct reader {
    pid_t pid;
    int to, from; /* our ends of the two pipes */
};

static struct reader start_reader(const char *dir)
{
    int down[2], up[2];
    assert_int_equal(pipe(down), 0);
    assert_int_equal(pipe(up), 0);
    char in[16], out[16];
    snprintf(in, sizeof in, "%d", down[0]);
    snprintf(out, sizeof out, "%d", up[1]);
    char *argv[] = {"test_readers", "--child", "reader", (char *)dir, in, out, NULL};
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(down[1]);
        close(up[0]);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(down[0]);
    close(up[1]);
    return (struct reader){pid, down[1], up[0]};
}

static int64_t ask(struct reader *r, char what)
{
    if (what)
        assert_int_equal(write(r->to, &what, 1), 1);
    int64_t v;
    ssize_t n = read(r->from, &v, sizeof v);
    if (n != (ssize_t)sizeof v)
        fail_msg("reader %d answered nothing (%zd)", (int)r->pid, n);
    return v;
}

static void stop_reader(struct reader *r)
{
    char q = 'q';
    assert_int_equal(write(r->to, &q, 1), 1);
    int status;
    assert_int_equal(waitpid(r->pid, &status, 0), r->pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("reader exited with status %#x", status);
    close(r->to);
    close(r->from);
}

/* Commit version v: the header and every word of the array. */
static void commit_version(cairn_store *s, int64_t v)
{
    cairn_txn *t;
    struct state *st;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    if (cairn_root_get(s, "state", (void **)&st) != 0) {
        assert_cairn_ok(cairn_alloc(t, state_type(s), 1, (void **)&st));
        assert_cairn_ok(cairn_alloc_bytes(t, ITEMS * sizeof(int64_t), (void **)&st->items));
        assert_cairn_ok(cairn_root_set(t, "state", st));
    }
    st->version = v;
    for (size_t i = 0; i < ITEMS; i++)
        st->items[i] = item(v, i);
    assert_cairn_ok(cairn_txn_commit(t));
}

/* A reader in another process keeps the snapshot of its open: never the
 * writer's open transaction, never a commit after its open, neither after
 * a checkpoint and a log reset nor after the writer's close, and pages it
 * touches only afterwards come from its snapshot too. */
static void reader_of_another_process_keeps_its_snapshot(void **state)
{
    const char *dir = *state;
    cairn_store *w = tu_open(dir, 0);
    commit_version(w, 1);

    /* Uncommitted bytes are not what a reader sees. */
    cairn_txn *t;
    struct state *st;
    assert_cairn_ok(cairn_txn_begin(w, &t));
    assert_cairn_ok(cairn_root_get(w, "state", (void **)&st));
    st->version = 100;
    st->items[ITEMS - 1] = item(100, ITEMS - 1);
    struct reader r = start_reader(dir);
    assert_int_equal(ask(&r, 0), 1);
    cairn_txn_abort(t);

    /* Commits, a checkpoint (LMDB rewritten, the log reset), more commits
     * left in the log: the reader, touching the array only now, sees 1. */
    commit_version(w, 2);
    assert_cairn_ok(cairn_checkpoint(w));
    commit_version(w, 3);
    assert_int_equal(ask(&r, 's'), 1);

    /* A second reader opened now sees 3: the committed log replayed. */
    struct reader r2 = start_reader(dir);
    assert_int_equal(ask(&r2, 's'), 3);

    /* The writer closes (its close checkpoints and resets the log) and
     * another opens and commits: both readers stay where they were. */
    assert_cairn_ok(cairn_close(w));
    w = tu_open(dir, 0);
    commit_version(w, 4);
    assert_int_equal(ask(&r, 's'), 1);
    assert_int_equal(ask(&r2, 's'), 3);
    stop_reader(&r);
    stop_reader(&r2);
    assert_int_equal(read_state(w), 4);
    assert_cairn_ok(cairn_close(w));
}

/* A read-write open succeeds while readers of other processes hold the
 * store, and commits do not wait for them. */
static void writer_opens_while_readers_hold_the_store(void **state)
{
    const char *dir = *state;
    cairn_store *w = tu_open(dir, 0);
    commit_version(w, 7);
    assert_cairn_ok(cairn_close(w));
    struct reader r[3];
    for (int i = 0; i < 3; i++) {
        r[i] = start_reader(dir);
        assert_int_equal(ask(&r[i], 0), 7);
    }
    w = tu_open(dir, 0);
    for (int v = 8; v < 20; v++) {
        commit_version(w, v);
        if (v % 4 == 0)
            assert_cairn_ok(cairn_checkpoint(w));
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ask(&r[i], 's'), 7);
        stop_reader(&r[i]);
    }
    assert_cairn_ok(cairn_close(w));
}

/* A reader killed with SIGKILL leaves nothing behind that stops the writer
 * or later readers, and its LMDB reader slot is reclaimed: the pages its
 * snapshot held are reused, so data.mdb stops growing. */
static void killed_reader_leaves_nothing_behind(void **state)
{
    const char *dir = *state;
    cairn_store *w = tu_open(dir, 0);
    commit_version(w, 1);
    assert_cairn_ok(cairn_checkpoint(w));
    for (int round = 0; round < 5; round++) {
        struct reader r = start_reader(dir);
        assert_int_equal(ask(&r, 's'), round + 1);
        kill(r.pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(r.pid, &status, 0), r.pid);
        close(r.to);
        close(r.from);
        commit_version(w, round + 2);
        assert_cairn_ok(cairn_checkpoint(w));
    }
    /* Each checkpoint rewrites the same extents.  Were the dead readers'
     * snapshots still held, every one would keep a copy of them. */
    long before = tu_file_size(dir, "data.mdb");
    for (int v = 10; v < 40; v++) {
        commit_version(w, v);
        assert_cairn_ok(cairn_checkpoint(w));
    }
    long after = tu_file_size(dir, "data.mdb");
    if (after > before + before / 2)
        fail_msg("data.mdb grew from %ld to %ld bytes over 30 checkpoints of the same extents", before, after);
    struct reader r = start_reader(dir);
    assert_int_equal(ask(&r, 's'), 39);
    stop_reader(&r);
    assert_cairn_ok(cairn_close(w));
    w = tu_open(dir, 0);
    assert_int_equal(read_state(w), 39);
    assert_cairn_ok(cairn_close(w));
}

static cairn_store *open_reader(const char *dir)
{
    cairn_options o;
    tu_options(&o);
    o.flags = CAIRN_RDONLY;
    cairn_store *r;
    assert_cairn_ok(cairn_open(dir, &o, &r));
    return r;
}

/* The same in one process: read-only handles beside the writer (one
 * environment shared), each its own address range and its own snapshot;
 * a second read-write handle is still refused. */
static void readers_beside_the_writer_in_this_process(void **state)
{
    const char *dir = *state;
    cairn_store *w = tu_open(dir, 0);
    commit_version(w, 1);
    cairn_txn *t;
    struct state *st;
    assert_cairn_ok(cairn_txn_begin(w, &t));
    assert_cairn_ok(cairn_root_get(w, "state", (void **)&st));
    st->version = 100;
    st->items[0] = item(100, 0);
    cairn_store *r1 = open_reader(dir);
    assert_int_equal(read_state(r1), 1);
    void *wb, *rb;
    assert_cairn_ok(cairn_range(w, &wb, NULL));
    assert_cairn_ok(cairn_range(r1, &rb, NULL));
    assert_ptr_not_equal(wb, rb);
    cairn_txn_abort(t);

    commit_version(w, 2);
    assert_cairn_ok(cairn_checkpoint(w));
    commit_version(w, 3);
    cairn_store *r2 = open_reader(dir);
    cairn_options o;
    tu_options(&o);
    cairn_store *w2 = NULL;
    assert_cairn_rc(cairn_open(dir, &o, &w2), CAIRN_BUSY);
    assert_cairn_ok(cairn_close(w));
    assert_int_equal(read_state(r1), 1);
    assert_int_equal(read_state(r2), 3);

    /* A writer opens while the readers are open, recovers nothing (the
     * close checkpointed), commits; the readers stay. */
    w = tu_open(dir, 0);
    commit_version(w, 4);
    assert_cairn_ok(cairn_checkpoint(w));
    assert_int_equal(read_state(r1), 1);
    assert_int_equal(read_state(r2), 3);
    cairn_check_report rep;
    assert_cairn_ok(cairn_check(r1, &rep));
    assert_cairn_ok(cairn_close(r1));
    assert_cairn_ok(cairn_close(r2));
    assert_int_equal(read_state(w), 4);
    assert_cairn_ok(cairn_close(w));
}

/* A read-only open of a crashed store (committed transactions left in the
 * log, no writer) replays them in memory, and a writer that opens while
 * it is open recovers them for real; both see the same state. */
static void readonly_open_of_a_crashed_store(void **state)
{
    const char *dir = *state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        cairn_options o;
        tu_options(&o);
        o.checkpoint_bytes = (uint64_t)1 << 40;
        cairn_store *s;
        CHILD_OK(cairn_open(dir, &o, &s));
        cairn_type ty;
        CHILD_OK(cairn_type_register(s, "state", sizeof(struct state), state_ptrs, 1, &ty));
        cairn_txn *t;
        struct state *st;
        for (int v = 1; v <= 3; v++) {
            CHILD_OK(cairn_txn_begin(s, &t));
            if (v == 1) {
                CHILD_OK(cairn_alloc(t, ty, 1, (void **)&st));
                CHILD_OK(cairn_alloc_bytes(t, ITEMS * sizeof(int64_t), (void **)&st->items));
                CHILD_OK(cairn_root_set(t, "state", st));
            }
            st->version = v;
            for (size_t i = 0; i < ITEMS; i++)
                st->items[i] = item(v, i);
            CHILD_OK(cairn_txn_commit(t));
        }
        _exit(0); /* no close: the commits stay in the log */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(tu_log_end(dir) > 3 * ITEMS * sizeof(int64_t));
    cairn_store *r = open_reader(dir);
    assert_int_equal(read_state(r), 3);
    cairn_store *w = tu_open(dir, 0);
    assert_int_equal(read_state(w), 3);
    commit_version(w, 4);
    assert_cairn_ok(cairn_close(w));
    assert_int_equal(read_state(r), 3);
    assert_cairn_ok(cairn_close(r));
}

/* A second object beside the state, untouched by the writer after v1. */
#define OTHER_BYTES (256 * 1024)

/* cairn_refresh moves a handle to the newest commit - one still in the
 * log, or one a checkpoint and a log reset moved into LMDB - keeping the
 * address of every object, and the extents that did not change stay
 * loaded.  On a read-write handle it is CAIRN_INVALID. */
static void refresh_moves_to_the_newest_commit(void **state)
{
    const char *dir = *state;
    cairn_store *w = tu_open(dir, 0);
    commit_version(w, 1);
    cairn_txn *t;
    unsigned char *other;
    assert_cairn_ok(cairn_txn_begin(w, &t));
    assert_cairn_ok(cairn_alloc_bytes(t, OTHER_BYTES, (void **)&other));
    memset(other, 0x5a, OTHER_BYTES);
    assert_cairn_ok(cairn_root_set(t, "other", other));
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_rc(cairn_refresh(w), CAIRN_INVALID);

    cairn_store *r = open_reader(dir);
    struct state *st0;
    unsigned char *o0;
    assert_cairn_ok(cairn_root_get(r, "state", (void **)&st0));
    assert_cairn_ok(cairn_root_get(r, "other", (void **)&o0));
    for (size_t i = 0; i < OTHER_BYTES; i++)
        assert_int_equal(o0[i], 0x5a);
    assert_int_equal(read_state(r), 1);

    commit_version(w, 2); /* in the log only */
    assert_int_equal(read_state(r), 1);
    cairn_stats before, after;
    assert_cairn_ok(cairn_stats_get(r, &before));
    assert_cairn_ok(cairn_refresh(r));
    assert_int_equal(read_state(r), 2);
    struct state *st1;
    assert_cairn_ok(cairn_root_get(r, "state", (void **)&st1));
    assert_ptr_equal(st0, st1);
    for (size_t i = 0; i < OTHER_BYTES; i++)
        assert_int_equal(o0[i], 0x5a);
    assert_cairn_ok(cairn_stats_get(r, &after));
    /* The state's extents (and the root and superblock extents) loaded
     * again; "other" did not. */
    uint64_t reloaded = after.extents_loaded - before.extents_loaded;
    if (reloaded > ITEMS * sizeof(int64_t) / (64 * 1024) + 4)
        fail_msg("refresh reloaded %llu extents", (unsigned long long)reloaded);

    /* Checkpoints and a log reset between two refreshes. */
    commit_version(w, 3);
    assert_cairn_ok(cairn_checkpoint(w));
    commit_version(w, 4);
    assert_cairn_ok(cairn_checkpoint(w));
    commit_version(w, 5);
    assert_int_equal(read_state(r), 2);
    assert_cairn_ok(cairn_refresh(r));
    assert_int_equal(read_state(r), 5);
    for (size_t i = 0; i < OTHER_BYTES; i++)
        assert_int_equal(o0[i], 0x5a);
    cairn_check_report rep;
    assert_cairn_ok(cairn_check(r, &rep));
    assert_cairn_ok(cairn_close(w));
    assert_cairn_ok(cairn_refresh(r)); /* the close checkpointed: nothing new */
    assert_int_equal(read_state(r), 5);
    assert_cairn_ok(cairn_close(r));
}

/* Freshness across processes: after the writer's commit of v returned (it
 * says so through the pipe), the reader's refresh shows v. */
static void refresh_in_another_process_sees_every_acknowledged_commit(void **state)
{
    const char *dir = *state;
    cairn_store *w = tu_open(dir, 0);
    commit_version(w, 1);
    struct reader r = start_reader(dir);
    assert_int_equal(ask(&r, 0), 1);
    for (int v = 2; v < 30; v++) {
        commit_version(w, v);
        if (v % 7 == 0)
            assert_cairn_ok(cairn_checkpoint(w));
        assert_int_equal(ask(&r, 'r'), v);
    }
    stop_reader(&r);
    assert_cairn_ok(cairn_close(w));
}

/* In a child that has become the user nobody: open read-only, expect
 * `want` from the open (and version v, and a clean check, on success). */
static int read_as_nobody(const char *dir, int want, int64_t v)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(80);
        cairn_options o;
        tu_options(&o);
        o.flags = CAIRN_RDONLY;
        cairn_store *s;
        int rc = cairn_open(dir, &o, &s);
        if (rc != want) {
            fprintf(stderr, "child: open gave %d (%s), want %d\n", rc, cairn_errmsg(NULL), want);
            _exit(81);
        }
        if (rc)
            _exit(0);
        CHILD_CHECK(read_state(s) == v);
        cairn_check_report r;
        CHILD_OK(cairn_check(s, &r));
        CHILD_OK(cairn_close(s));
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A user who may read the store but write none of its files (not even
 * LMDB's lock file) reads it: without an LMDB reader slot, so only while
 * no writer holds the store (it then gets CAIRN_BUSY), and it changes no
 * file. */
static void a_user_who_can_only_read_the_store_reads_it(void **state)
{
    const char *dir = *state;
    if (geteuid() != 0)
        skip(); /* needs root to become another user; CI runs as root */
    cairn_store *w = tu_open(dir, 0);
    commit_version(w, 3);
    commit_version(w, 4); /* the close checkpoints it */
    assert_cairn_ok(cairn_close(w));
    char *parent = strdup(dir);
    *strrchr(parent, '/') = 0;
    assert_int_equal(chmod(parent, 0755), 0);
    free(parent);
    size_t dlen, llen;
    unsigned char *data = tu_file_read(dir, "data.mdb", &dlen), *lock = tu_file_read(dir, "lock.mdb", &llen);
    assert_int_equal(read_as_nobody(dir, CAIRN_OK, 4), 0);
    size_t dlen2, llen2;
    unsigned char *data2 = tu_file_read(dir, "data.mdb", &dlen2), *lock2 = tu_file_read(dir, "lock.mdb", &llen2);
    assert_int_equal(dlen, dlen2);
    assert_memory_equal(data, data2, dlen);
    assert_int_equal(llen, llen2);
    assert_memory_equal(lock, lock2, llen);
    free(data), free(data2), free(lock), free(lock2);
    w = tu_open(dir, 0);
    assert_int_equal(read_as_nobody(dir, CAIRN_BUSY, 0), 0);
    assert_cairn_ok(cairn_close(w));
}

/* A reader process killed at random instants - while it opens, refreshes
 * or reads - in a loop, beside a committing writer: nothing it leaves
 * stops the writer or the next reader, and data.mdb stays bounded. */
static void readers_killed_at_random_instants(void **state)
{
    const char *dir = *state;
    cairn_store *w = tu_open(dir, 0);
    commit_version(w, 1);
    assert_cairn_ok(cairn_checkpoint(w));
    uint64_t x = 0x9E3779B97F4A7C15u;
    long first = 0;
    for (int round = 0; round < 40; round++) {
        struct reader r = start_reader(dir);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (round % 2)
            (void)!write(r.to, "rrrrrrrrrrrrrrrr", 16); /* refreshes in flight when it dies */
        usleep((useconds_t)(x % 30000));
        kill(r.pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(r.pid, &status, 0), r.pid);
        close(r.to);
        close(r.from);
        commit_version(w, round + 2);
        if (round % 4 == 3)
            assert_cairn_ok(cairn_checkpoint(w));
        if (round == 10)
            first = tu_file_size(dir, "data.mdb");
    }
    long last = tu_file_size(dir, "data.mdb");
    if (last > 2 * first)
        fail_msg("data.mdb grew from %ld to %ld bytes over 30 rounds", first, last);
    struct reader r = start_reader(dir);
    assert_int_equal(ask(&r, 's'), 41);
    stop_reader(&r);
    assert_cairn_ok(cairn_close(w));
}

/* A writer killed while a reader reads leaves the reader on its snapshot;
 * the next writer recovers as always, and a refresh then sees it. */
static void writer_killed_under_a_reader(void **state)
{
    const char *dir = *state;
    cairn_store *w = tu_open(dir, 0);
    commit_version(w, 1);
    assert_cairn_ok(cairn_close(w));
    cairn_store *r = open_reader(dir);
    assert_int_equal(read_version(r), 1);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        cairn_options o;
        tu_options(&o);
        cairn_store *s;
        CHILD_OK(cairn_open(dir, &o, &s));
        for (int64_t v = 2; v < 6; v++) {
            cairn_txn *t;
            struct state *st;
            CHILD_OK(cairn_txn_begin(s, &t));
            CHILD_OK(cairn_root_get(s, "state", (void **)&st));
            st->version = v;
            for (size_t i = 0; i < ITEMS; i++)
                st->items[i] = item(v, i);
            CHILD_OK(cairn_txn_commit(t));
        }
        kill(getpid(), SIGKILL);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(read_state(r), 1);
    w = tu_open(dir, 0);
    assert_int_equal(read_state(w), 5);
    assert_int_equal(read_state(r), 1);
    assert_cairn_ok(cairn_refresh(r));
    assert_int_equal(read_state(r), 5);
    assert_cairn_ok(cairn_close(w));
    assert_cairn_ok(cairn_close(r));
}

/* A reader whose snapshot holds a damaged extent gets CAIRN_CORRUPT from
 * cairn_check and from cairn_prefault, as a writer would. */
static void reader_of_a_damaged_extent_gets_corrupt(void **state)
{
    const char *dir = *state;
    cairn_store *w = tu_open(dir, 0);
    commit_version(w, 1);
    assert_cairn_ok(cairn_close(w));
    tu_flip_extent_byte(dir, TU_LAST_EXTENT);
    cairn_store *r = open_reader(dir);
    cairn_check_report rep;
    assert_cairn_rc(cairn_check(r, &rep), CAIRN_CORRUPT);
    assert_true(rep.corrupt_extents > 0);
    void *base;
    size_t len;
    assert_cairn_ok(cairn_range(r, &base, &len));
    struct state *st;
    assert_cairn_ok(cairn_root_get(r, "state", (void **)&st));
    assert_cairn_rc(cairn_prefault(r, st->items, ITEMS * sizeof(int64_t), 0), CAIRN_CORRUPT);
    assert_cairn_ok(cairn_close(r));
}

/* The command's snapshot (no pager) opened first in a process, a writer
 * after it, the snapshot closed: the writer's LMDB environment (shared)
 * keeps its database handles, and it commits and checkpoints on. */
static void a_snapshot_closing_beside_a_writer_leaves_it_working(void **state)
{
    const char *dir = *state;
    cairn_store *w = tu_open(dir, 0);
    commit_version(w, 1);
    assert_cairn_ok(cairn_close(w));
    struct snapshot *sn;
    char err[512];
    cairn_options o;
    tu_options(&o); /* the test's small map (the sanitizers' address space is small) */
    assert_cairn_ok(snapshot_open_readers(dir, 0, &o, &sn, err, sizeof err));
    w = tu_open(dir, 0);
    snapshot_close(sn);
    commit_version(w, 2);
    assert_cairn_ok(cairn_checkpoint(w));
    commit_version(w, 3);
    assert_cairn_ok(cairn_close(w));
    w = tu_open(dir, 0);
    assert_int_equal(read_state(w), 3);
    cairn_check_report rep;
    assert_cairn_ok(cairn_check(w, &rep));
    assert_cairn_ok(cairn_close(w));
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--child") == 0)
        return child_main(argc - 2, argv + 2);
    const struct CMUnitTest tests[] = {
        tu_dir_test(reader_of_another_process_keeps_its_snapshot),
        tu_dir_test(writer_opens_while_readers_hold_the_store),
        tu_dir_test(killed_reader_leaves_nothing_behind),
        tu_dir_test(readers_beside_the_writer_in_this_process),
        tu_dir_test(readonly_open_of_a_crashed_store),
        tu_dir_test(refresh_moves_to_the_newest_commit),
        tu_dir_test(refresh_in_another_process_sees_every_acknowledged_commit),
        tu_dir_test(a_user_who_can_only_read_the_store_reads_it),
        tu_dir_test(readers_killed_at_random_instants),
        tu_dir_test(writer_killed_under_a_reader),
        tu_dir_test(reader_of_a_damaged_extent_gets_corrupt),
        tu_dir_test(a_snapshot_closing_beside_a_writer_leaves_it_working),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
