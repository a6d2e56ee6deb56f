/*
 * tempdir.c - see tempdir.h.
 */
#define _GNU_SOURCE
#include "tempdir.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* The running test's scratch directory and the process that made it. */
static char *scratch;
static pid_t scratch_pid;

static char *make_dir_under(const char *parent, const char *prefix)
{
    char *path;
    if (asprintf(&path, "%s/%sXXXXXX", parent, prefix) < 0)
        abort();
    if (!mkdtemp(path)) {
        perror(path);
        abort();
    }
    return path;
}

static const char *tmp_root(void)
{
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

char *tu_tempdir(void)
{
    return scratch ? make_dir_under(scratch, "dir-") : make_dir_under(tmp_root(), "cairn-test-");
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

void tu_rmdir(char *path)
{
    if (!path)
        return;
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT); /* never into a file system mounted there */
    free(path);
}

int tu_scratch_begin(void)
{
    if (scratch)
        return -1;
    char *path;
    if (asprintf(&path, "%s/cairn-test-XXXXXX", tmp_root()) < 0)
        return -1;
    if (!mkdtemp(path)) {
        perror(path);
        free(path);
        return -1;
    }
    scratch = path;
    scratch_pid = getpid();
    return 0;
}

static int keep_scratch(void)
{
    const char *k = getenv("CAIRN_TEST_KEEP");
    return k && *k && strcmp(k, "0") != 0;
}

void tu_scratch_end(void)
{
    if (!scratch)
        return;
    if (getpid() != scratch_pid) {
        free(scratch);
    } else if (keep_scratch()) {
        fprintf(stderr, "CAIRN_TEST_KEEP: kept %s\n", scratch);
        free(scratch);
    } else {
        tu_rmdir(scratch);
    }
    scratch = NULL;
}

int tu_dir_setup(void **state)
{
    char *store = NULL;
    if (tu_scratch_begin() != 0)
        return -1;
    if (asprintf(&store, "%s/store", scratch) < 0) {
        store = NULL;
        goto out_scratch;
    }
    if (mkdir(store, 0755) != 0) {
        perror(store);
        goto out_scratch;
    }
    *state = store;
    return 0;
out_scratch:
    free(store);
    tu_scratch_end();
    return -1;
}

int tu_dir_teardown(void **state)
{
    free(*state);
    *state = NULL;
    tu_scratch_end();
    return 0;
}
