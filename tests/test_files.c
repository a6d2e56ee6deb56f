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

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct counter {
    uint64_t n;
};

static cairn_store *open_ok(const char *dir, unsigned flags)
{
    cairn_options o;
    tu_options(&o);
    o.flags = flags;
    cairn_store *s = NULL;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    return s;
}

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

/* ------------------------------------------------------------------ */
/* fork and exec                                                       */
/* ------------------------------------------------------------------ */

/* A child that only sleeps does not keep the store locked: the parent
 * closes and reopens while the child lives. */
static void fork_child_does_not_hold_the_store(void **state)
{
    (void)state;
    char *dir = tu_tempdir();
    cairn_store *s = open_ok(dir, 0);
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
    s = open_ok(dir, 0); /* was CAIRN_BUSY until the child exited */
    assert_int_equal(counter_of(s), 3);
    assert_cairn_ok(cairn_close(s));
    s = open_ok(dir, CAIRN_RDONLY);
    assert_cairn_ok(cairn_close(s));
    close(go[1]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    tu_rmdir(dir);
}

/* In the child: the parent's handle is dead; once the parent closed, the
 * child opens the store itself, read-only and then read-write. */
static void fork_child_opens_after_parent_closed(void **state)
{
    (void)state;
    char *dir = tu_tempdir();
    cairn_store *s = open_ok(dir, 0);
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
    s = open_ok(dir, 0);
    assert_int_equal(counter_of(s), 100);
    assert_cairn_ok(cairn_close(s));
    tu_rmdir(dir);
}

/* No descriptor of the store reaches a program the application execs. */
static void exec_inherits_no_descriptor(void **state)
{
    (void)state;
    char *dir = tu_tempdir();
    cairn_store *s = open_ok(dir, 0);
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
    s = open_ok(dir, 0);
    assert_int_equal(counter_of(s), 2);
    assert_cairn_ok(cairn_close(s));
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    tu_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fork_child_does_not_hold_the_store),
        cmocka_unit_test(fork_child_opens_after_parent_closed),
        cmocka_unit_test(exec_inherits_no_descriptor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
