/*
 * test_crossprocess.c - a million-node binary search tree built and
 * committed in one process that dies without closing the store (so the
 * next open must recover it from the log), checked node by node in
 * another; then grown by a third process that closes properly, and
 * checked again; then a process that commits one change and dies inside
 * a second, uncommitted transaction.
 *
 * The writers are this binary re-executed ("--child ..."): fresh
 * processes without cmocka, whose per-test SIGSEGV/SIGBUS handlers would
 * otherwise be what cairn chains foreign faults to in a forked child, and
 * whose assertions cannot report from a child.
 */
#define _GNU_SOURCE
#include "testutil.h"
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct node {
    int64_t key;
    struct node *left, *right;
    int64_t value;
};

#define N_FIRST 1000000
#define N_APPEND 250000
#define BATCH 250000 /* nodes per transaction in the first build */

/* The value a key has after each phase. */
static int64_t value_built(int64_t k)
{
    return k * 3 + 1;
}
static int64_t value_after_append(int64_t k)
{
    return k < N_FIRST && k % 1000 == 0 ? k * 3 + 2 : k * 3 + 1;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ */
/* Child side (no cmocka): exit 0 on success, 90/91 on a failure       */
/* ------------------------------------------------------------------ */

static cairn_store *cs;
static cairn_txn *ctx;
static cairn_type node_type;
static uint64_t built;

static void child_options(cairn_options *o)
{
    tu_options(o);
    /* No background checkpoint: what the builder commits stays in the log. */
    o->checkpoint_bytes = (uint64_t)1 << 40;
}

static void child_register(void)
{
    size_t ptrs[] = {offsetof(struct node, left), offsetof(struct node, right)};
    CHILD_OK(cairn_type_register(cs, "xp.node", sizeof(struct node), ptrs, 2, &node_type));
}

/* Balanced subtree over [lo, hi], preorder; a transaction rolls over every
 * BATCH nodes (before any write of the new node). */
static struct node *build(int64_t lo, int64_t hi)
{
    if (lo > hi)
        return NULL;
    if (built && built % BATCH == 0) {
        CHILD_OK(cairn_txn_commit(ctx));
        CHILD_OK(cairn_txn_begin(cs, &ctx));
    }
    struct node *n;
    int64_t mid = lo + (hi - lo) / 2;
    CHILD_OK(cairn_alloc(ctx, node_type, 1, (void **)&n));
    built++;
    n->key = mid;
    n->value = value_built(mid);
    struct node *l = build(lo, mid - 1);
    struct node *r = build(mid + 1, hi);
    n->left = l;
    n->right = r;
    return n;
}

/* Build N_FIRST nodes, commit, and die without cairn_close. */
static void child_build(const char *dir)
{
    cairn_options o;
    child_options(&o);
    double t0 = now();
    CHILD_OK(cairn_open(dir, &o, &cs));
    child_register();
    CHILD_OK(cairn_txn_begin(cs, &ctx));
    struct node *root = build(0, N_FIRST - 1);
    CHILD_OK(cairn_root_set(ctx, "tree", root));
    CHILD_OK(cairn_txn_commit(ctx));
    cairn_stats st;
    CHILD_OK(cairn_stats_get(cs, &st));
    printf("built=%" PRIu64 " commits=%" PRIu64 " checkpoints=%" PRIu64 " wal=%" PRIu64 " seconds=%.3f\n", built,
           st.commits, st.checkpoints, st.wal_bytes, now() - t0);
    fflush(stdout);
    _exit(0); /* no cairn_close: the next open recovers from the log */
}

/* Hang a balanced tree of N_APPEND new keys under the rightmost node,
 * change the value of every 1000th old key, commit, close. */
static void child_append(const char *dir)
{
    cairn_options o;
    child_options(&o);
    double t0 = now();
    struct node *root;
    CHILD_OK(cairn_open(dir, &o, &cs));
    child_register();
    CHILD_OK(cairn_root_get(cs, "tree", (void **)&root));
    CHILD_OK(cairn_txn_begin(cs, &ctx));
    struct node *n = root;
    while (n->right)
        n = n->right;
    CHILD_CHECK(n->key == N_FIRST - 1);
    built = 1; /* no rollover inside this build: one transaction */
    struct node *sub = build(N_FIRST, N_FIRST + N_APPEND - 1);
    CHILD_CHECK(built == 1 + N_APPEND);
    n->right = sub;
    /* In-order walk, changing old values. */
    struct node *stack[128];
    int sp = 0;
    int64_t changed = 0;
    for (n = root; n || sp;) {
        while (n) {
            CHILD_CHECK(sp < 128);
            stack[sp++] = n;
            n = n->left;
        }
        n = stack[--sp];
        if (n->key < N_FIRST && n->key % 1000 == 0) {
            n->value = value_after_append(n->key);
            changed++;
        }
        n = n->right;
    }
    CHILD_CHECK(changed == N_FIRST / 1000);
    CHILD_OK(cairn_txn_commit(ctx));
    CHILD_OK(cairn_close(cs));
    printf("appended=%d changed=%" PRId64 " seconds=%.3f\n", N_APPEND, changed, now() - t0);
    fflush(stdout);
    _exit(0);
}

/* Commit one change, then die inside a second transaction that changed
 * many nodes and allocated more. */
static void child_dirty_exit(const char *dir)
{
    cairn_options o;
    child_options(&o);
    struct node *root;
    CHILD_OK(cairn_open(dir, &o, &cs));
    child_register();
    CHILD_OK(cairn_root_get(cs, "tree", (void **)&root));
    CHILD_OK(cairn_txn_begin(cs, &ctx));
    root->value = -12345;
    CHILD_OK(cairn_txn_commit(ctx));
    CHILD_OK(cairn_txn_begin(cs, &ctx));
    struct node *stack[128];
    int sp = 0;
    int64_t changed = 0;
    for (struct node *n = root; n || sp;) {
        while (n) {
            CHILD_CHECK(sp < 128);
            stack[sp++] = n;
            n = n->left;
        }
        n = stack[--sp];
        if (n->key % 7 == 3) {
            n->value = -1;
            changed++;
        }
        n = n->right;
    }
    /* A dangling new subtree hung under the leftmost node. */
    struct node *m = root;
    while (m->left)
        m = m->left;
    built = 1;
    m->left = build(-50000, -1);
    root->value = -999;
    printf("uncommitted-changes=%" PRId64 "\n", changed);
    fflush(stdout);
    _exit(0); /* the transaction is neither committed nor aborted */
}

static int child_main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: --child build|append|dirty_exit DIR\n");
        _exit(2);
    }
    if (strcmp(argv[0], "build") == 0)
        child_build(argv[1]);
    else if (strcmp(argv[0], "append") == 0)
        child_append(argv[1]);
    else if (strcmp(argv[0], "dirty_exit") == 0)
        child_dirty_exit(argv[1]);
    fprintf(stderr, "unknown child %s\n", argv[0]);
    _exit(2);
}

/* ------------------------------------------------------------------ */
/* Parent side                                                         */
/* ------------------------------------------------------------------ */

/* Run this binary with --child what dir; stdout into out. */
static int run_child(const char *what, const char *dir, char *out, size_t cap)
{
    int po[2];
    assert_int_equal(pipe2(po, O_CLOEXEC), 0);
    char *argv[] = {"test_crossprocess", "--child", (char *)what, (char *)dir, NULL};
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(po[1], 1);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(po[1]);
    size_t at = 0;
    ssize_t got;
    while ((got = read(po[0], out + at, cap - 1 - at)) != 0) {
        if (got < 0) {
            assert_int_equal(errno, EINTR);
            continue;
        }
        at += (size_t)got;
        if (at == cap - 1)
            break;
    }
    out[at] = 0;
    close(po[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    return status;
}

#define assert_child_ok(status, out)                                                                                   \
    do {                                                                                                               \
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)                                                            \
            fail_msg("child failed (status 0x%x); stdout: %s", (status), (out));                                       \
    } while (0)

/* Entries in the "extents" database of the store's LMDB environment. */
static size_t lmdb_extent_count(const char *dir)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_stat ms;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "extents", MDB_INTEGERKEY, &dbi), 0);
    assert_int_equal(mdb_stat(txn, dbi, &ms), 0);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return ms.ms_entries;
}

/*
 * In-order walk from the root: keys must be first, first+1, ... in order
 * and values as value_of says.  Returns the node count; *depth gets the
 * maximum depth.
 */
static int64_t check_tree(const struct node *root, int64_t first, int64_t (*value_of)(int64_t), int *depth)
{
    const struct node *stack[128];
    int level[128];
    int sp = 0, maxd = 0, d = 1;
    int64_t expect = first, count = 0;
    for (const struct node *n = root; n || sp;) {
        while (n) {
            if (sp >= 128)
                fail_msg("tree deeper than 128 at key %" PRId64, n->key);
            maxd = d > maxd ? d : maxd;
            level[sp] = d++;
            stack[sp++] = n;
            n = n->left;
        }
        n = stack[--sp];
        d = level[sp] + 1; /* the right child is one below n */
        if (n->key != expect)
            fail_msg("in-order key %" PRId64 " where %" PRId64 " was expected", n->key, expect);
        if (n->value != value_of(n->key))
            fail_msg("key %" PRId64 ": value %" PRId64 ", expected %" PRId64, n->key, n->value, value_of(n->key));
        expect++;
        count++;
        n = n->right;
    }
    *depth = maxd;
    return count;
}

static int64_t value_after_dirty_exit(int64_t k)
{
    return k == N_FIRST / 2 - 1 ? -12345 : value_after_append(k);
}

static void million_nodes_across_processes(void **state)
{
    const char *dir = *state;
    char out[4096];
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    struct node *root;
    cairn_stats st;
    int depth;
    double t0 = now();

    /* 1. Build in a child that dies without closing. */
    int status = run_child("build", dir, out, sizeof out);
    assert_child_ok(status, out);
    double t1 = now();
    print_message("build child: %s", out);
    assert_non_null(strstr(out, "built=1000000 "));
    assert_non_null(strstr(out, " checkpoints=0 "));
    /* Nothing reached LMDB: all of it is in the log. */
    assert_int_equal(lmdb_extent_count(dir), 0);
    struct stat wst;
    char *wal;
    assert_true(asprintf(&wal, "%s/wal", dir) > 0);
    assert_int_equal(stat(wal, &wst), 0);
    assert_true(wst.st_size > (off_t)N_FIRST * 16); /* at least key and value of every node */

    /* 2. Reopen here: recovery, then a lazy, complete walk. */
    assert_cairn_ok(cairn_open(dir, &o, &s));
    double t2 = now();
    assert_cairn_ok(cairn_stats_get(s, &st));
    /* Recovery loaded nothing; the stats call loads the superblock. */
    assert_int_equal(st.extents_loaded, 1);
    assert_int_equal(st.pages_resident, 16);
    assert_true(st.wal_bytes < 4096); /* the log was replayed and reset */
    assert_cairn_ok(cairn_root_get(s, "tree", (void **)&root));
    assert_int_equal(root->key, N_FIRST / 2 - 1);
    assert_int_equal(check_tree(root, 0, value_built, &depth), N_FIRST);
    assert_in_range(depth, 20, 20); /* balanced: ceil(log2(1000001)) */
    assert_cairn_ok(cairn_stats_get(s, &st));
    assert_true(st.pages_resident >= N_FIRST * sizeof(struct node) / 4096);
    assert_cairn_ok(cairn_close(s));
    assert_true(lmdb_extent_count(dir) > 0);
    double t3 = now();

    /* 3. A second child grows the tree and closes properly. */
    status = run_child("append", dir, out, sizeof out);
    assert_child_ok(status, out);
    print_message("append child: %s", out);
    assert_non_null(strstr(out, "appended=250000 changed=1000 "));
    double t4 = now();
    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_cairn_ok(cairn_root_get(s, "tree", (void **)&root));
    assert_int_equal(check_tree(root, 0, value_after_append, &depth), N_FIRST + N_APPEND);
    /* the old 20 levels down the right spine, plus the new subtree's 18 */
    assert_true(depth <= 20 + 18);
    assert_cairn_ok(cairn_close(s));
    double t5 = now();

    /* 4. A child commits one change and dies inside another transaction:
     *    only the committed change survives. */
    status = run_child("dirty_exit", dir, out, sizeof out);
    assert_child_ok(status, out);
    assert_non_null(strstr(out, "uncommitted-changes="));
    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_cairn_ok(cairn_root_get(s, "tree", (void **)&root));
    assert_int_equal(root->value, -12345);
    assert_int_equal(check_tree(root, 0, value_after_dirty_exit, &depth), N_FIRST + N_APPEND);
    assert_cairn_ok(cairn_close(s));
    double t6 = now();

    print_message("timings: build child %.2f s, recover+walk %.2f s (open %.3f s), append child %.2f s, "
                  "walk %.2f s, dirty-exit phase %.2f s; total %.2f s\n",
                  t1 - t0, t3 - t1, t2 - t1, t4 - t3, t5 - t4, t6 - t5, t6 - t0);
    free(wal);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--child") == 0)
        return child_main(argc - 2, argv + 2);
    const struct CMUnitTest tests[] = {
        tu_dir_test(million_nodes_across_processes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
