/*
 * test_files.c - the files of a store, and what happens when they do not
 * belong together, are missing, damaged, or are inherited by a child:
 *   - data.mdb, the catalog and the log are bound by store id and
 *     positions: a stale, newer or foreign data.mdb, or one whose LMDB fell
 *     back to its older meta page, is refused, and refusing changes no file;
 *   - a missing data.mdb is never recreated over a log, and a store is
 *     created only in an empty or missing directory;
 *   - a truncated data.mdb is CAIRN_CORRUPT, at open and on a later load,
 *     never SIGBUS;
 *   - creation on a full file system returns ENOSPC and leaves nothing;
 *   - a forked child (with or without exec) does not hold the store.
 */
#define _GNU_SOURCE
#include "testutil.h"
#include "files.h"
#include "storeutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct counter {
    uint64_t n;
};

/* Commit `count` transactions that each increment the counter root. */
static void bump(cairn_store *s, int count)
{
    for (int i = 0; i < count; i++) {
        cairn_txn *t;
        struct counter *c = NULL;
        assert_cairn_ok(cairn_txn_begin(s, &t));
        if (cairn_root_get(s, "counter", (void **)&c) == CAIRN_NOT_FOUND) {
            assert_cairn_ok(cairn_alloc_bytes(t, sizeof *c, (void **)&c));
            assert_cairn_ok(cairn_root_set(t, "counter", c));
        }
        c->n++;
        assert_cairn_ok(cairn_txn_commit(t));
    }
}

static uint64_t counter_of(cairn_store *s)
{
    struct counter *c = NULL;
    if (cairn_root_get(s, "counter", (void **)&c) == CAIRN_NOT_FOUND)
        return 0;
    return c->n;
}

/* Object contents: a pattern from (object, word), incompressible enough
 * that data.mdb spans many LMDB pages. */
static uint64_t pattern(uint64_t obj, uint64_t word)
{
    uint64_t x = (obj << 20 | word) * 0x9E3779B97F4A7C15ull;
    return x ^ (x >> 29);
}

#define OBJS 600
#define OBJ_WORDS 128 /* 1 KiB objects */

/* A store of OBJS patterned objects under root "objs" (an array of
 * pointers), in transactions of 50; with crash_tail, the last 100
 * objects are committed only to the log (the process dies). */
static void build_store(const char *dir, int crash_tail)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        cairn_options o;
        tu_options(&o);
        cairn_store *s;
        cairn_txn *t;
        uint64_t **arr;
        if (cairn_open(dir, &o, &s) != CAIRN_OK)
            _exit(1);
        size_t off0[] = {0};
        cairn_type ptr_t;
        if (cairn_type_register(s, "ptr", 8, off0, 1, &ptr_t) || cairn_txn_begin(s, &t) ||
            cairn_alloc(t, ptr_t, OBJS, (void **)&arr) || cairn_root_set(t, "objs", arr) || cairn_txn_commit(t))
            _exit(2);
        for (int i = 0; i < OBJS; i += 50) {
            if (crash_tail && i == OBJS - 100 && cairn_checkpoint(s) != CAIRN_OK)
                _exit(3);
            if (cairn_txn_begin(s, &t))
                _exit(4);
            for (int k = i; k < i + 50; k++) {
                if (cairn_alloc_bytes(t, OBJ_WORDS * 8, (void **)&arr[k]))
                    _exit(5);
                for (uint64_t w = 0; w < OBJ_WORDS; w++)
                    arr[k][w] = pattern((uint64_t)k, w);
            }
            if (cairn_txn_commit(t))
                _exit(6);
        }
        if (crash_tail)
            _exit(0); /* no close: the tail stays in the log */
        _exit(cairn_close(s) == CAIRN_OK ? 0 : 7);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("building the store failed: status %#x", status);
}

static void corrupt_exit(cairn_store *s, void *addr, int rc, void *arg)
{
    (void)s, (void)addr, (void)arg;
    _exit(rc == CAIRN_CORRUPT ? 20 : 21);
}

/* In a child: open dir and read every object.  Exit 0 if all is there
 * and right, 1 if the open was refused with CAIRN_CORRUPT, 20 if a page
 * load reported CAIRN_CORRUPT; anything else is wrong: 2 another open
 * error, 4 wrong data, 21 another load error, a signal a crash. */
static int open_and_read(const char *dir)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        cairn_options o;
        tu_options(&o);
        o.fault_error = corrupt_exit;
        cairn_store *s;
        int rc = cairn_open(dir, &o, &s);
        if (rc != CAIRN_OK)
            _exit(rc == CAIRN_CORRUPT ? 1 : 2);
        uint64_t **arr;
        if (cairn_root_get(s, "objs", (void **)&arr) != CAIRN_OK)
            _exit(4);
        for (int k = 0; k < OBJS; k++)
            for (uint64_t w = 0; w < OBJ_WORDS; w++)
                if (!arr[k] || arr[k][w] != pattern((uint64_t)k, w))
                    _exit(4);
        cairn_check_report r;
        rc = cairn_check(s, &r);
        if (rc != CAIRN_OK)
            _exit(rc == CAIRN_CORRUPT ? 1 : 2);
        _exit(cairn_close(s) == CAIRN_OK ? 0 : 2);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        return 1000 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

/* Put the saved files back into a fresh dir, data.mdb cut to len. */
static void restore(const char *dir, const unsigned char *mdb, size_t len, const unsigned char *wal, size_t wal_len)
{
    char *p = tu_path(dir, "lock.mdb");
    unlink(p);
    free(p);
    tu_file_write(dir, "data.mdb", mdb, len);
    tu_file_write(dir, "wal", wal, wal_len);
}

static void truncations(const char *dir, int crash_tail)
{
    build_store(dir, crash_tail);
    size_t mdb_len, wal_len;
    unsigned char *mdb = tu_file_read(dir, "data.mdb", &mdb_len);
    unsigned char *wal = tu_file_read(dir, "wal", &wal_len);
    assert_true(mdb_len > 64 * 4096);
    assert_int_equal(open_and_read(dir), 0);
    size_t used = tu_lmdb_used(mdb, mdb_len);
    assert_true(used <= mdb_len && used + (1 << 20) >= mdb_len); /* LMDB_FILE_SLACK */
    size_t cuts[80];
    int n = 0;
    static const size_t fixed[] = {0, 1, 100, 4095, 4096, 4097, 8191, 8192, 8193, 12288};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        cuts[n++] = fixed[i];
    for (int i = 1; i <= 60; i++)
        cuts[n++] = used * (size_t)i / 61;
    cuts[n++] = used - 4096;
    cuts[n++] = used - 1;
    int refused = 0, load_errors = 0;
    for (int i = 0; i < n; i++) {
        restore(dir, mdb, cuts[i], wal, wal_len);
        int got = open_and_read(dir);
        if (got != 1 && got != 20)
            fail_msg("data.mdb cut to %zu of %zu bytes: %s %d", cuts[i], mdb_len, got >= 1000 ? "signal" : "exit",
                     got >= 1000 ? got - 1000 : got);
        refused += got == 1;
        load_errors += got == 20;
        /* The log is never touched by a refused open. */
        size_t l2;
        unsigned char *w2 = tu_file_read(dir, "wal", &l2);
        if (got == 1 && (l2 != wal_len || memcmp(w2, wal, wal_len) != 0))
            fail_msg("data.mdb cut to %zu: the refused open changed the log", cuts[i]);
        free(w2);
    }
    print_message("%d truncations of a %zu-byte data.mdb (log of %zu bytes): %d refused at open, %d at a load\n", n,
                  mdb_len, wal_len, refused, load_errors);
    /* And the whole file still opens. */
    restore(dir, mdb, mdb_len, wal, wal_len);
    assert_int_equal(open_and_read(dir), 0);
    free(mdb);
    free(wal);
}

/* data.mdb cut at many sizes, the log empty: CAIRN_CORRUPT, never a signal. */
static void truncated_data_mdb(void **state)
{
    truncations(*state, 0);
}

/* The same with committed transactions in the log, which recovery would
 * replay onto the cut file. */
static void truncated_data_mdb_with_log(void **state)
{
    truncations(*state, 1);
}

/* Cut while the store is open: the next load reports CAIRN_CORRUPT
 * through fault_error, not SIGBUS. */
static void truncated_while_open(void **state)
{
    const char *dir = *state;
    build_store(dir, 0);
    size_t mdb_len;
    unsigned char *mdb = tu_file_read(dir, "data.mdb", &mdb_len);
    size_t used = tu_lmdb_used(mdb, mdb_len);
    free(mdb);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        cairn_options o;
        tu_options(&o);
        o.fault_error = corrupt_exit;
        cairn_store *s;
        if (cairn_open(dir, &o, &s) != CAIRN_OK)
            _exit(1);
        uint64_t **arr;
        if (cairn_root_get(s, "objs", (void **)&arr) != CAIRN_OK)
            _exit(4);
        char *p = tu_path(dir, "data.mdb");
        if (truncate(p, (off_t)(used / 2)) != 0)
            _exit(5);
        uint64_t sum = 0;
        for (int k = 0; k < OBJS; k++)
            sum += arr[k][0];
        _exit(sum == 1 ? 6 : 7); /* not reached: a load must fail */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 20)
        fail_msg("status %#x (%s %d), want exit 20 (CAIRN_CORRUPT from a load)", status,
                 WIFSIGNALED(status) ? "signal" : "exit", WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

/* ------------------------------------------------------------------ */
/* data.mdb and the log belong together                                */
/* ------------------------------------------------------------------ */

struct saved {
    unsigned char *mdb, *wal;
    size_t mdb_len, wal_len;
};

static struct saved save_files(const char *dir)
{
    struct saved v;
    v.mdb = tu_file_read(dir, "data.mdb", &v.mdb_len);
    v.wal = tu_file_read(dir, "wal", &v.wal_len);
    assert_non_null(v.mdb);
    assert_non_null(v.wal);
    return v;
}

static void free_saved(struct saved *v)
{
    free(v->mdb);
    free(v->wal);
}

/* Are dir's data.mdb and wal byte for byte v? */
static void assert_files_are(const char *dir, const struct saved *v, const char *when)
{
    struct saved now = save_files(dir);
    if (now.mdb_len != v->mdb_len || memcmp(now.mdb, v->mdb, v->mdb_len) != 0)
        fail_msg("%s: data.mdb changed", when);
    if (now.wal_len != v->wal_len || memcmp(now.wal, v->wal, v->wal_len) != 0)
        fail_msg("%s: the log changed (%zu -> %zu bytes)", when, v->wal_len, now.wal_len);
    free_saved(&now);
}

/* Open dir expecting rc, with a message containing what. */
static void open_refused(const char *dir, int want, const char *what)
{
    cairn_options o;
    tu_options(&o);
    cairn_store *s = NULL;
    int rc = cairn_open(dir, &o, &s);
    if (rc != want)
        fail_msg("open: got %d (%s), want %d (%s); message \"%s\"", rc, cairn_strerror(rc), want, cairn_strerror(want),
                 cairn_errmsg(NULL));
    if (!strstr(cairn_errmsg(NULL), what))
        fail_msg("open refused, but the message \"%s\" does not say \"%s\"", cairn_errmsg(NULL), what);
    print_message("refused: %s\n", cairn_errmsg(NULL));
}

/* In a child: open dir, commit n increments (a checkpoint after the
 * first ckpt_after of them, if not 0), then die without closing, so the
 * rest stays in the log only. */
static void commit_and_crash(const char *dir, int n, int ckpt_after)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        cairn_options o;
        tu_options(&o);
        cairn_store *s;
        if (cairn_open(dir, &o, &s) != CAIRN_OK)
            _exit(1);
        for (int i = 0; i < n; i++) {
            if (ckpt_after && i == ckpt_after && cairn_checkpoint(s) != CAIRN_OK)
                _exit(2);
            cairn_txn *t;
            struct counter *c = NULL;
            if (cairn_txn_begin(s, &t))
                _exit(3);
            if (cairn_root_get(s, "counter", (void **)&c) == CAIRN_NOT_FOUND &&
                (cairn_alloc_bytes(t, sizeof *c, (void **)&c) || cairn_root_set(t, "counter", c)))
                _exit(4);
            c->n++;
            if (cairn_txn_commit(t))
                _exit(5);
        }
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void expect_counter(const char *dir, uint64_t want)
{
    cairn_store *s = tu_open(dir, 0);
    assert_int_equal(counter_of(s), want);
    cairn_check_report r;
    assert_cairn_ok(cairn_check(s, &r));
    assert_cairn_ok(cairn_close(s));
}

/* Commit 1..150, close, keep data.mdb; commit 151..300, close; put the old
 * data.mdb back: refused, nothing changed; the right one opens at 300. */
static void stale_data_mdb_empty_log(void **state)
{
    const char *dir = *state;
    cairn_store *s = tu_open(dir, 0);
    bump(s, 150);
    assert_cairn_ok(cairn_close(s));
    struct saved old = save_files(dir);
    s = tu_open(dir, 0);
    bump(s, 150);
    assert_cairn_ok(cairn_close(s));
    struct saved cur = save_files(dir);
    tu_file_write(dir, "data.mdb", old.mdb, old.mdb_len);
    struct saved mixed = save_files(dir);
    open_refused(dir, CAIRN_CORRUPT, "older than the log");
    assert_files_are(dir, &mixed, "refused open");
    open_refused(dir, CAIRN_CORRUPT, "older than the log"); /* and again: still refused */
    tu_file_write(dir, "data.mdb", cur.mdb, cur.mdb_len);
    expect_counter(dir, 300);
    free_saved(&old);
    free_saved(&cur);
    free_saved(&mixed);
}

/* The same with committed transactions in the log: they are not replayed
 * onto the old data.mdb. */
static void stale_data_mdb_with_records(void **state)
{
    const char *dir = *state;
    cairn_store *s = tu_open(dir, 0);
    bump(s, 150);
    assert_cairn_ok(cairn_close(s));
    struct saved old = save_files(dir);
    commit_and_crash(dir, 150, 100); /* 151..250 checkpointed, 251..300 only logged */
    struct saved cur = save_files(dir);
    assert_true(cur.wal_len > 64);
    tu_file_write(dir, "data.mdb", old.mdb, old.mdb_len);
    struct saved mixed = save_files(dir);
    open_refused(dir, CAIRN_CORRUPT, "older than the log");
    assert_files_are(dir, &mixed, "refused open");
    /* A read-only open and the command's reader apply the same rule. */
    cairn_options o;
    tu_options(&o);
    o.flags = CAIRN_RDONLY;
    cairn_store *r;
    assert_cairn_rc(cairn_open(dir, &o, &r), CAIRN_CORRUPT);
    assert_files_are(dir, &mixed, "refused read-only open");
    tu_file_write(dir, "data.mdb", cur.mdb, cur.mdb_len);
    expect_counter(dir, 300);
    free_saved(&old);
    free_saved(&cur);
    free_saved(&mixed);
}

/* A log older than data.mdb: data.mdb is the newer file. */
static void newer_data_mdb_empty_log(void **state)
{
    const char *dir = *state;
    cairn_store *s = tu_open(dir, 0);
    bump(s, 150);
    assert_cairn_ok(cairn_close(s));
    struct saved old = save_files(dir);
    s = tu_open(dir, 0);
    bump(s, 150);
    assert_cairn_ok(cairn_close(s));
    struct saved cur = save_files(dir);
    tu_file_write(dir, "wal", old.wal, old.wal_len);
    struct saved mixed = save_files(dir);
    open_refused(dir, CAIRN_CORRUPT, "newer than the log");
    assert_files_are(dir, &mixed, "refused open");
    tu_file_write(dir, "wal", cur.wal, cur.wal_len);
    expect_counter(dir, 300);
    free_saved(&old);
    free_saved(&cur);
    free_saved(&mixed);
}

/* An old log with committed records, beside a data.mdb that went on past
 * them. */
static void newer_data_mdb_with_records(void **state)
{
    const char *dir = *state;
    commit_and_crash(dir, 150, 0); /* all 150 only in the log */
    struct saved old = save_files(dir);
    assert_true(old.wal_len > 64);
    expect_counter(dir, 150); /* recovers, checkpoints, resets */
    cairn_store *s = tu_open(dir, 0);
    bump(s, 150);
    assert_cairn_ok(cairn_close(s));
    struct saved cur = save_files(dir);
    tu_file_write(dir, "wal", old.wal, old.wal_len);
    struct saved mixed = save_files(dir);
    open_refused(dir, CAIRN_CORRUPT, "newer than the log");
    assert_files_are(dir, &mixed, "refused open");
    tu_file_write(dir, "wal", cur.wal, cur.wal_len);
    expect_counter(dir, 300);
    free_saved(&old);
    free_saved(&cur);
    free_saved(&mixed);
}

/* Store b's data.mdb beside store a's log (with records in it or not):
 * refused, nothing changed; both stores intact afterwards. */
static void foreign_data_mdb_refused(const char *a, int records)
{
    char *b = tu_tempdir();
    cairn_store *s = tu_open(b, 0);
    bump(s, 7);
    assert_cairn_ok(cairn_close(s));
    if (records) {
        commit_and_crash(a, 20, 0);
    } else {
        s = tu_open(a, 0);
        bump(s, 20);
        assert_cairn_ok(cairn_close(s));
    }
    struct saved va = save_files(a), vb = save_files(b);
    tu_file_write(a, "data.mdb", vb.mdb, vb.mdb_len);
    struct saved mixed = save_files(a);
    open_refused(a, CAIRN_CORRUPT, "the log is of store");
    assert_files_are(a, &mixed, "refused open");
    tu_file_write(a, "data.mdb", va.mdb, va.mdb_len);
    expect_counter(a, 20);
    expect_counter(b, 7);
    free_saved(&va);
    free_saved(&vb);
    free_saved(&mixed);
    tu_rmdir(b);
}

/* Another store's data.mdb, with an empty log. */
static void foreign_data_mdb_refused_empty_log(void **state)
{
    foreign_data_mdb_refused(*state, 0);
}

/* Another store's data.mdb, with records in the log. */
static void foreign_data_mdb_refused_with_records(void **state)
{
    foreign_data_mdb_refused(*state, 1);
}

/* LMDB's newest meta page damaged, so that LMDB falls back to the older
 * one (the previous checkpoint): refused, nothing changed; with the right
 * data.mdb back the store opens with everything. */
static void meta_fallback_refused(const char *dir, int records)
{
    cairn_store *s = tu_open(dir, 0);
    bump(s, 150);
    assert_cairn_ok(cairn_close(s));
    if (records) {
        commit_and_crash(dir, 150, 100);
    } else {
        s = tu_open(dir, 0);
        bump(s, 150);
        assert_cairn_ok(cairn_close(s));
    }
    struct saved cur = save_files(dir);
    /* LMDB 0.9 meta pages: pages 0 and 1; the transaction id is at
     * byte 144 of each (16-byte page header, then the meta fields);
     * LMDB uses the one with the larger id. */
    uint64_t t0, t1, zero = 0;
    memcpy(&t0, cur.mdb + 144, 8);
    memcpy(&t1, cur.mdb + 4096 + 144, 8);
    unsigned char *damaged = malloc(cur.mdb_len);
    memcpy(damaged, cur.mdb, cur.mdb_len);
    memcpy(damaged + (t0 > t1 ? 0 : 4096) + 144, &zero, 8);
    tu_file_write(dir, "data.mdb", damaged, cur.mdb_len);
    struct saved mixed = save_files(dir);
    open_refused(dir, CAIRN_CORRUPT, "older than the log");
    assert_files_are(dir, &mixed, "refused open");
    tu_file_write(dir, "data.mdb", cur.mdb, cur.mdb_len);
    expect_counter(dir, 300);
    free(damaged);
    free_saved(&cur);
    free_saved(&mixed);
}

/* The older meta page, with an empty log. */
static void lmdb_meta_fallback_refused_empty_log(void **state)
{
    meta_fallback_refused(*state, 0);
}

/* The older meta page, with records in the log. */
static void lmdb_meta_fallback_refused_with_records(void **state)
{
    meta_fallback_refused(*state, 1);
}

/* ------------------------------------------------------------------ */
/* a missing data.mdb; where a store may be created                    */
/* ------------------------------------------------------------------ */

/* The names in dir, sorted, one string ("a b c"). */
static char *listing(const char *dir)
{
    char cmd[4200], *out = calloc(1, 8192);
    snprintf(cmd, sizeof cmd, "ls -A %s 2>/dev/null | tr '\\n' ' '", dir);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, 8191, f);
    out[n] = 0;
    pclose(f);
    return out;
}

/* 20 transactions, then data.mdb removed: the open is refused (read-write
 * and read-only), the log keeps every byte, no file appears or goes. */
static void missing_data_mdb_refused(const char *dir, int closed)
{
    if (closed) {
        cairn_store *s = tu_open(dir, 0);
        bump(s, 20);
        assert_cairn_ok(cairn_close(s));
    } else {
        commit_and_crash(dir, 20, 0);
    }
    char *p = tu_path(dir, "data.mdb");
    assert_int_equal(unlink(p), 0);
    free(p);
    size_t wal_len;
    unsigned char *wal = tu_file_read(dir, "wal", &wal_len);
    assert_true(closed || wal_len > 64);
    char *before = listing(dir);
    for (int ro = 0; ro < 2; ro++) {
        cairn_options o;
        tu_options(&o);
        o.flags = ro ? CAIRN_RDONLY : 0;
        cairn_store *s = NULL;
        int rc = cairn_open(dir, &o, &s);
        if (rc != CAIRN_CORRUPT)
            fail_msg("open%s without data.mdb: %d (%s), want CAIRN_CORRUPT; \"%s\"", ro ? " read-only" : "", rc,
                     cairn_strerror(rc), cairn_errmsg(NULL));
        assert_non_null(strstr(cairn_errmsg(NULL), "data.mdb is missing"));
        size_t l2;
        unsigned char *w2 = tu_file_read(dir, "wal", &l2);
        assert_int_equal(l2, wal_len);
        assert_memory_equal(w2, wal, wal_len);
        free(w2);
        char *after = listing(dir);
        assert_string_equal(after, before);
        free(after);
    }
    print_message("refused: %s\n", cairn_errmsg(NULL));
    free(before);
    free(wal);
}

/* The 20 transactions only in the log (the writer died). */
static void missing_data_mdb_keeps_the_log_of_a_crash(void **state)
{
    missing_data_mdb_refused(*state, 0);
}

/* The store was closed: the log is empty, and lock.mdb tells the store
 * was there. */
static void missing_data_mdb_keeps_the_log_of_a_closed_store(void **state)
{
    missing_data_mdb_refused(*state, 1);
}

/* A directory that is not a store and not empty (a user's own file named
 * wal among others) is refused with ENOTEMPTY and left exactly as it was:
 * no lock, no staging, the files untouched. */
static void no_store_over_a_users_directory(void **state)
{
    (void)state;
    static const char *const names[] = {"wal", "notes.txt", "data.mdb.bak"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *dir = tu_tempdir();
        const char text[] = "my own file, not a log\n";
        tu_file_write(dir, names[i], text, sizeof text);
        char *before = listing(dir);
        cairn_options o;
        tu_options(&o);
        cairn_store *s = NULL;
        int rc = cairn_open(dir, &o, &s);
        if (rc != ENOTEMPTY)
            fail_msg("open of a directory holding %s: %d (%s), want ENOTEMPTY; \"%s\"", names[i], rc,
                     cairn_strerror(rc), cairn_errmsg(NULL));
        char *after = listing(dir);
        assert_string_equal(after, before);
        size_t len;
        unsigned char *got = tu_file_read(dir, names[i], &len);
        assert_int_equal(len, sizeof text);
        assert_memory_equal(got, text, len);
        free(got);
        free(after);
        free(before);
        tu_rmdir(dir);
    }
}

/* What an interrupted creation leaves (the lock, the staging directory,
 * a log never written to) does not stop the next creation. */
static void creation_after_an_interrupted_one(void **state)
{
    const char *dir = *state;
    cairn_store *s = tu_open(dir, 0); /* a fresh store: its log is unused */
    assert_cairn_ok(cairn_close(s));
    char *p = tu_path(dir, "data.mdb");
    assert_int_equal(unlink(p), 0);
    free(p);
    p = tu_path(dir, "lock.mdb");
    unlink(p); /* as if the crash came before the rename of data.mdb */
    free(p);
    p = tu_path(dir, "new.tmp");
    assert_int_equal(mkdir(p, 0755), 0);
    free(p);
    s = tu_open(dir, 0);
    bump(s, 3);
    assert_cairn_ok(cairn_close(s));
    expect_counter(dir, 3);
}

/* A read-only open of a missing directory creates nothing. */
static void readonly_open_of_a_missing_directory_creates_nothing(void **state)
{
    cairn_store *s;
    char *missing = tu_path(*state, "nothing-here");
    cairn_options o;
    tu_options(&o);
    o.flags = CAIRN_RDONLY;
    assert_cairn_rc(cairn_open(missing, &o, &s), CAIRN_READONLY);
    struct stat st;
    assert_int_equal(stat(missing, &st), -1);
    free(missing);
}

/* ------------------------------------------------------------------ */
/* creation on a full file system                                      */
/* ------------------------------------------------------------------ */

/* In a child: create a store at path; exit 0 if it opened (and closed),
 * 28 if it failed with ENOSPC, 3 with anything else. */
static int create_in_child(const char *path)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        cairn_options o;
        tu_options(&o);
        cairn_store *s;
        int rc = cairn_open(path, &o, &s);
        if (rc == CAIRN_OK)
            _exit(cairn_close(s) == CAIRN_OK ? 0 : 4);
        if (rc != ENOSPC)
            fprintf(stderr, "create: %d (%s): %s\n", rc, cairn_strerror(rc), cairn_errmsg(NULL));
        _exit(rc == ENOSPC ? 28 : 3);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFSIGNALED(status) ? 1000 + WTERMSIG(status) : WEXITSTATUS(status);
}

/* A small tmpfs, filled to leave `room` bytes: creating a store there
 * returns ENOSPC (never SIGBUS) and leaves the file system as it was,
 * whether the store's directory was missing or existed empty. */
static const char *tmpfs_mnt;

/* The teardown: unmount the tmpfs (also when the test failed), then the
 * fixture's. */
static int unmount_tmpfs(void **state)
{
    if (tmpfs_mnt) {
        umount2(tmpfs_mnt, MNT_DETACH);
        tmpfs_mnt = NULL;
    }
    return tu_dir_teardown(state);
}

static void creation_on_a_full_file_system(void **state)
{
    const char *mnt = *state;
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=2m") == 0)
        tmpfs_mnt = mnt; /* unmount_tmpfs unmounts it, also if the test fails */
    else {
        print_message("skipped: cannot mount a tmpfs here (%s); run as root to test creation on a full disk\n",
                      strerror(errno));
        skip();
    }
    size_t rooms[64];
    size_t nrooms = 0;
    for (size_t r = 0; r <= 160 << 10; r += r < (56 << 10) ? 8192 : 2048) /* finer where creation starts to fit */
        rooms[nrooms++] = r;
    rooms[nrooms++] = 512 << 10;
    int enospc = 0, created = 0;
    for (size_t i = 0; i < nrooms; i++) {
        for (int pre = 0; pre < 2; pre++) {
            char *store = tu_path(mnt, "store");
            if (pre)
                assert_int_equal(mkdir(store, 0755), 0);
            /* Fill: write until full, then give back `room` bytes. */
            char *filler = tu_path(mnt, "filler");
            int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            assert_true(fd >= 0);
            static char block[4096];
            off_t size = 0;
            while (write(fd, block, sizeof block) == (ssize_t)sizeof block)
                size += sizeof block;
            assert_int_equal(ftruncate(fd, size > (off_t)rooms[i] ? size - (off_t)rooms[i] : 0), 0);
            close(fd);
            char *before = listing(mnt), *store_before = listing(store);
            int got = create_in_child(store);
            if (got != 0 && got != 28)
                fail_msg("creating with %zu bytes free (%s directory): %s %d", rooms[i], pre ? "empty" : "no",
                         got >= 1000 ? "signal" : "exit", got >= 1000 ? got - 1000 : got);
            if (got == 28) {
                enospc++;
                char *after = listing(mnt), *store_after = listing(store);
                assert_string_equal(after, before);
                assert_string_equal(store_after, store_before);
                free(after);
                free(store_after);
            } else {
                created++;
            }
            char cmd[4200];
            snprintf(cmd, sizeof cmd, "rm -rf %s", store);
            assert_int_equal(system(cmd), 0);
            unlink(filler);
            free(before);
            free(store_before);
            free(filler);
            free(store);
        }
    }
    print_message("creation on a full tmpfs: %d ENOSPC, %d created\n", enospc, created);
    assert_true(enospc >= 2 && created >= 2);
}

/* ------------------------------------------------------------------ */
/* fork and exec                                                       */
/* ------------------------------------------------------------------ */

/* A child that only sleeps does not keep the store locked: the parent
 * closes and reopens while the child lives. */
static void fork_child_does_not_hold_the_store(void **state)
{
    const char *dir = *state;
    cairn_store *s = tu_open(dir, 0);
    bump(s, 3);
    int go[2];
    assert_int_equal(pipe(go), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char c;
        close(go[1]);
        ssize_t n = read(go[0], &c, 1); /* until the parent is done */
        (void)n;
        _exit(0);
    }
    close(go[0]);
    assert_cairn_ok(cairn_close(s));
    s = tu_open(dir, 0); /* was CAIRN_BUSY until the child exited */
    assert_int_equal(counter_of(s), 3);
    assert_cairn_ok(cairn_close(s));
    s = tu_open(dir, CAIRN_RDONLY);
    assert_cairn_ok(cairn_close(s));
    close(go[1]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* In the child: the parent's handle is dead; once the parent closed, the
 * child opens the store itself, read-only and then read-write. */
static void fork_child_opens_after_parent_closed(void **state)
{
    const char *dir = *state;
    cairn_store *s = tu_open(dir, 0);
    bump(s, 5);
    int go[2];
    assert_int_equal(pipe(go), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char c;
        close(go[1]);
        cairn_txn *t;
        if (cairn_txn_begin(s, &t) != CAIRN_INVALID || cairn_close(s) != CAIRN_INVALID ||
            cairn_checkpoint(s) != CAIRN_INVALID)
            _exit(10);
        if (read(go[0], &c, 1) != 1) /* the parent has closed */
            _exit(11);
        cairn_options o;
        tu_options(&o);
        o.flags = CAIRN_RDONLY;
        cairn_store *r;
        if (cairn_open(dir, &o, &r) != CAIRN_OK)
            _exit(12);
        if (counter_of(r) != 5)
            _exit(13);
        if (cairn_close(r) != CAIRN_OK)
            _exit(14);
        o.flags = 0;
        if (cairn_open(dir, &o, &r) != CAIRN_OK)
            _exit(15);
        struct counter *cnt;
        if (cairn_root_get(r, "counter", (void **)&cnt) != CAIRN_OK || cairn_txn_begin(r, &t) != CAIRN_OK)
            _exit(16);
        cnt->n = 100;
        if (cairn_txn_commit(t) != CAIRN_OK || cairn_close(r) != CAIRN_OK)
            _exit(17);
        _exit(0);
    }
    close(go[0]);
    assert_cairn_ok(cairn_close(s));
    assert_int_equal(write(go[1], "x", 1), 1);
    close(go[1]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("child failed: status %#x", status);
    s = tu_open(dir, 0);
    assert_int_equal(counter_of(s), 100);
    assert_cairn_ok(cairn_close(s));
}

/* No descriptor of the store reaches a program the application execs. */
static void exec_inherits_no_descriptor(void **state)
{
    const char *dir = *state;
    cairn_store *s = tu_open(dir, 0);
    bump(s, 2);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/bin/sleep", "sleep", "30", (char *)NULL);
        _exit(127);
    }
    /* Wait until the child runs sleep (its exe link changes). */
    char exe[64], target[4096];
    snprintf(exe, sizeof exe, "/proc/%d/exe", (int)pid);
    for (int i = 0; i < 500; i++) {
        ssize_t n = readlink(exe, target, sizeof target - 1);
        if (n > 0) {
            target[n] = 0;
            if (strstr(target, "sleep"))
                break;
        }
        usleep(10000);
    }
    char fddir[64];
    snprintf(fddir, sizeof fddir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(fddir);
    assert_non_null(d);
    struct dirent *de;
    int leaked = 0;
    while ((de = readdir(d))) {
        char link[600];
        snprintf(link, sizeof link, "%s/%s", fddir, de->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = 0;
        if (strstr(target, dir) || strstr(target, "cairn-") || strstr(target, "userfaultfd")) {
            print_message("inherited by exec: fd %s -> %s\n", de->d_name, target);
            leaked++;
        }
    }
    closedir(d);
    assert_int_equal(leaked, 0);
    assert_cairn_ok(cairn_close(s));
    s = tu_open(dir, 0);
    assert_int_equal(counter_of(s), 2);
    assert_cairn_ok(cairn_close(s));
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* A read-only open and cairn_check in a child: 0 clean, 1 problems
 * reported, 2 refused at open, else the exit or signal. */
static int check_read_only(const char *dir)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        cairn_options o;
        tu_options(&o);
        o.flags |= CAIRN_RDONLY;
        o.fault_error = corrupt_exit;
        cairn_store *s;
        if (cairn_open(dir, &o, &s) != CAIRN_OK)
            _exit(2);
        cairn_check_report r;
        int rc = cairn_check(s, &r);
        cairn_close(s);
        _exit(rc == CAIRN_OK && r.problems == 0 ? 0 : rc == CAIRN_CORRUPT && r.problems > 0 ? 1 : 3);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFSIGNALED(status) ? 1000 + WTERMSIG(status) : WEXITSTATUS(status);
}

/* Open, commit an allocation, checkpoint, close, in a child: 0 if all of
 * it succeeded. */
static int write_cycle(const char *dir)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        cairn_options o;
        tu_options(&o);
        o.fault_error = corrupt_exit;
        cairn_store *s;
        cairn_txn *t;
        void *b;
        if (cairn_open(dir, &o, &s) || cairn_txn_begin(s, &t) || cairn_alloc_bytes(t, 100000, &b))
            _exit(1);
        memset(b, 7, 100000);
        _exit(cairn_txn_commit(t) || cairn_checkpoint(s) || cairn_close(s) ? 2 : 0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFSIGNALED(status) ? 1000 + WTERMSIG(status) : WEXITSTATUS(status);
}

static uint16_t get16(const unsigned char *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static void put16(unsigned char *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

/* A store built in dir, its files kept to damage copies of. */
struct pristine {
    unsigned char *mdb, *img, *wal; /* img: the copy to damage */
    size_t len, wal_len, used;
};

static void pristine_build(const char *dir, struct pristine *v)
{
    build_store(dir, 0);
    v->mdb = tu_file_read(dir, "data.mdb", &v->len);
    v->img = malloc(v->len);
    assert_non_null(v->img);
    v->wal = tu_file_read(dir, "wal", &v->wal_len); /* a write cycle changes it */
    v->used = tu_lmdb_used(v->mdb, v->len);
    assert_int_equal(open_and_read(dir), 0);
}

static void pristine_free(struct pristine *v)
{
    free(v->img);
    free(v->mdb);
    free(v->wal);
}

/* LMDB's leaf pages damaged where its reads do not look but its writes do
 * (a leaf's bounds), where a page hides nodes, or carries another number:
 * a read-write open refuses the store before LMDB writes anything, a
 * read-only open's cairn_check reports it, nothing crashes. */
static void damaged_lmdb_leaf_pages_refused(void **state)
{
    const char *dir = *state;
    struct pristine v;
    pristine_build(dir, &v);
    int leaves = 0, cases = 0, detected[3] = {0};
    for (size_t pg = 2; pg < v.used / 4096 && leaves < 6; pg++) {
        unsigned char *p = v.mdb + pg * 4096;
        uint64_t num;
        memcpy(&num, p, 8);
        if (num != pg || get16(p + 10) != 0x02 || get16(p + 12) < 16 + 2 * 2)
            continue; /* not a leaf with two nodes or more */
        leaves++;
        for (int kind = 0; kind < 3; kind++) {
            memcpy(v.img, v.mdb, v.len);
            unsigned char *q = v.img + pg * 4096;
            const char *what = kind == 0 ? "lower above upper" : kind == 1 ? "a node hidden" : "another number";
            if (kind == 0)
                put16(q + 12, (uint16_t)(get16(q + 14) + 2));
            else if (kind == 1)
                put16(q + 12, (uint16_t)(get16(q + 12) - 2));
            else
                q[0] ^= 0x40;
            restore(dir, v.img, v.len, v.wal, v.wal_len);
            int rw = open_and_read(dir), ro = check_read_only(dir);
            if (rw == 1 && ro != 1 && ro != 2)
                fail_msg("leaf page %zu, %s: read-only open and check gave %d, want damage reported", pg, what, ro);
            if (rw == 0 && (ro != 0 || write_cycle(dir) != 0 || open_and_read(dir) != 0))
                fail_msg("leaf page %zu, %s: a clean open, but the read-only check gave %d or a write failed", pg, what,
                         ro);
            if (rw != 0 && rw != 1)
                fail_msg("leaf page %zu, %s: read-write open gave %d", pg, what, rw);
            /* Clean: a page the free list holds, rewritten before LMDB uses it. */
            detected[kind] += rw == 1;
            cases++;
        }
    }
    assert_true(leaves > 0);
    for (int kind = 0; kind < 3; kind++)
        assert_true(detected[kind] > 0);
    print_message("%d leaf pages, %d damaged copies: %d, %d, %d of each kind refused, the rest in free pages "
                  "and harmless\n",
                  leaves, cases, detected[0], detected[1], detected[2]);
    pristine_free(&v);
}

/* An overflow run's page count, which LMDB frees by when it replaces the
 * value: cairn_check reports it, a checkpoint refuses to replace it. */
static void damaged_overflow_page_count_reported(void **state)
{
    const char *dir = *state;
    struct pristine v;
    pristine_build(dir, &v);
    int runs = 0, runs_detected = 0;
    for (size_t pg = 2; pg < v.used / 4096 && runs < 6; pg++) {
        unsigned char *p = v.mdb + pg * 4096;
        uint64_t num;
        memcpy(&num, p, 8);
        if (num != pg || !(get16(p + 10) & 0x04))
            continue;
        runs++;
        memcpy(v.img, v.mdb, v.len);
        v.img[pg * 4096 + 12] ^= 0x01; /* mp_pages */
        restore(dir, v.img, v.len, v.wal, v.wal_len);
        int rw = open_and_read(dir);
        if (rw == 0 && (write_cycle(dir) != 0 || open_and_read(dir) != 0))
            fail_msg("overflow page %zu, page count: a clean check, but a write cycle failed", pg);
        if (rw != 0 && rw != 1)
            fail_msg("overflow page %zu, page count: open and check gave %d", pg, rw);
        runs_detected += rw == 1;
    }
    assert_true(runs_detected > 0);
    print_message("%d of %d overflow page counts reported\n", runs_detected, runs);
    pristine_free(&v);
}

/* A meta page's page size of 0, which LMDB divides by: refused; the
 * undamaged file opens. */
static void zero_page_size_in_meta_refused(void **state)
{
    const char *dir = *state;
    struct pristine v;
    pristine_build(dir, &v);
    memcpy(v.img, v.mdb, v.len);
    memset(v.img + 40, 0, 4); /* meta page 0: mm_dbs[FREE_DBI].md_pad, the page size */
    restore(dir, v.img, v.len, v.wal, v.wal_len);
    assert_int_equal(open_and_read(dir), 1);
    restore(dir, v.mdb, v.len, v.wal, v.wal_len);
    assert_int_equal(open_and_read(dir), 0);
    pristine_free(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        tu_dir_test(stale_data_mdb_empty_log),
        tu_dir_test(stale_data_mdb_with_records),
        tu_dir_test(newer_data_mdb_empty_log),
        tu_dir_test(newer_data_mdb_with_records),
        tu_dir_test(foreign_data_mdb_refused_empty_log),
        tu_dir_test(foreign_data_mdb_refused_with_records),
        tu_dir_test(lmdb_meta_fallback_refused_empty_log),
        tu_dir_test(lmdb_meta_fallback_refused_with_records),
        tu_dir_test(missing_data_mdb_keeps_the_log_of_a_crash),
        tu_dir_test(missing_data_mdb_keeps_the_log_of_a_closed_store),
        tu_dir_test(no_store_over_a_users_directory),
        tu_dir_test(creation_after_an_interrupted_one),
        tu_dir_test(readonly_open_of_a_missing_directory_creates_nothing),
        cmocka_unit_test_setup_teardown(creation_on_a_full_file_system, tu_dir_setup, unmount_tmpfs),
        tu_dir_test(fork_child_does_not_hold_the_store),
        tu_dir_test(fork_child_opens_after_parent_closed),
        tu_dir_test(exec_inherits_no_descriptor),
        tu_dir_test(truncated_data_mdb),
        tu_dir_test(truncated_data_mdb_with_log),
        tu_dir_test(truncated_while_open),
        tu_dir_test(damaged_lmdb_leaf_pages_refused),
        tu_dir_test(damaged_overflow_page_count_reported),
        tu_dir_test(zero_page_size_in_meta_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
