/*
 * backup.c - a consistent copy of a store (`cairn backup`), also while
 * another process has it open and commits.
 *
 * What is consistent.  The store's state is its LMDB extents at some
 * checkpoint C plus the log's committed transactions after C.  So:
 *   1. copy LMDB with mdb_env_copyfd2 (an LMDB read transaction: a
 *      snapshot, whatever the writer does meanwhile) to DEST/data.mdb.tmp;
 *   2. read C from the copy itself (its catalog, checksum validated);
 *   3. only then open STORE/wal: a log opened after the snapshot holds
 *      every commit after C unless a checkpoint ran in between and reset
 *      it; that shows as a start LSN above C + 1 (or a log of another
 *      store), and the whole copy is retried;
 *   4. copy the log from that descriptor to its end.  A reset renames a
 *      new file over "wal" but never rewrites the one we hold, and the
 *      writer only appends, so we read a prefix of the log.  Recovery
 *      applies a transaction only if its commit record validates, so a
 *      prefix cut at any byte opens as the state after some commit.
 * DEST becomes a store only at the last step, when data.mdb is renamed
 * into place (as creation does), after the log and the directory are
 * synced.  The copy is compacted by LMDB (free pages left out).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy.h"
#include "snapshot.h"

#define BACKUP_RETRIES 50

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno : EIO;
        p += n, len -= (size_t)n;
    }
    return 0;
}

/* The catalog of the LMDB file at path (no lock file: nobody else has it). */
static int copied_catalog(const char *path, struct catalog *c)
{
    MDB_txn *txn;
    int rc = mdb_env_create(&c->env);
    if (rc)
        return lmdb_to_cairn(rc);
    mdb_env_set_maxdbs(c->env, 4);
    rc = mdb_env_open(c->env, path, MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK, 0644);
    if (rc == 0)
        rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0 && (rc = lmdb_file_check(c->env, NULL, NULL)) != 0)
        mdb_txn_abort(txn);
    if (rc) {
        catalog_close_env(c);
        return lmdb_to_cairn(rc);
    }
    rc = catalog_read(c, txn);
    mdb_txn_abort(txn);
    catalog_close_env(c);
    return rc;
}

/* Steps 3-4: copy the log if it continues checkpoint ckpt: 0, 1 = retry,
 * or an error (negated) with the message. */
static int copy_log(int srcdir, int dstdir, const struct catalog *copy, uint64_t *bytes, char *err, size_t errlen)
{
    int in = openat(srcdir, "wal", O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        int rc = errno;
        copy_error(err, errlen, "wal: %s", strerror(rc));
        return -rc;
    }
    struct wal w;
    int rc = wal_open(&w, srcdir, copy->store_id, 0, 1); /* validates the header */
    if (rc == 0) {
        /* Use our own descriptor, opened before wal_open's: compare both. */
        struct stat a, b;
        int same = fstat(in, &a) == 0 && fstat(w.fd, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
        uint64_t start = w.start_lsn;
        wal_close(&w);
        if (!same || start > copy->ckpt_lsn + 1) {
            close(in);
            return 1; /* a checkpoint reset the log after our snapshot */
        }
    } else {
        /* A log is complete and synced before it is renamed into place, so
         * a bad header is damage, not a race. */
        copy_error(err, errlen, "wal: %s", rc == CAIRN_CORRUPT ? "header damaged or from another store" : strerror(rc));
        close(in);
        return rc == CAIRN_CORRUPT ? -EIO : -rc;
    }
    int out = openat(dstdir, "wal", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        rc = errno;
        copy_error(err, errlen, "wal in the destination: %s", strerror(rc));
        close(in);
        return -rc;
    }
    static char buf[1 << 16];
    *bytes = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (n > 0 && (rc = write_all(out, buf, (size_t)n)) != 0)) {
            rc = n < 0 ? errno : rc;
            copy_error(err, errlen, "copying the log: %s", strerror(rc));
            close(in), close(out);
            return -rc;
        }
        if (n == 0)
            break;
        *bytes += (uint64_t)n;
    }
    close(in);
    rc = fsync(out) == 0 ? 0 : errno;
    close(out);
    if (rc) {
        copy_error(err, errlen, "syncing the copied log: %s", strerror(rc));
        return -rc;
    }
    return 0;
}

int backup_store(const char *src, const char *dest, const struct inspect_hooks *hooks, struct backup_result *res,
                 char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    struct knobs knobs;
    knobs_read(&knobs);
    /* The source, read-only, without the store's lock: LMDB readers of
     * other processes coexist with the writer. */
    struct catalog_msg msg = {err, errlen};
    struct catalog st = {.path = src, .error = catalog_msg_sink, .error_arg = &msg};
    err[0] = 0;
    int srcdir = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (srcdir < 0 || faccessat(srcdir, "data.mdb", R_OK, 0) != 0) {
        int rc = errno;
        copy_error(err, errlen, "%s%s: %s", src, srcdir < 0 ? "" : "/data.mdb", strerror(rc));
        if (srcdir >= 0)
            close(srcdir);
        return rc;
    }
    int rc = catalog_open_env(&st, src, MDB_RDONLY, 0, STORE_DEFAULT_MAX_BYTES);
    if (rc) {
        err[0] = 0;
        copy_error(err, errlen, "%s/data.mdb: LMDB cannot open it: %s", src, cairn_strerror(rc));
        close(srcdir);
        return rc;
    }
    int dstdir = copy_dest_prepare(dest, err, errlen);
    if (dstdir < 0) {
        catalog_close_env(&st);
        close(srcdir);
        return -dstdir;
    }
    char *staged_path;
    if (asprintf(&staged_path, "%s/data.mdb.tmp", dest) < 0)
        abort();
    int attempt;
    rc = EIO;
    struct catalog copy;
    for (attempt = 0; attempt < BACKUP_RETRIES; attempt++) {
        if (hooks && hooks->progress)
            hooks->progress(hooks->arg, "backup", (uint64_t)attempt, BACKUP_RETRIES);
        int fd = openat(dstdir, "data.mdb.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            rc = errno;
            copy_error(err, errlen, "%s: %s", staged_path, strerror(rc));
            break;
        }
        rc = lmdb_env_copyfd2(st.env, fd, MDB_CP_COMPACT);
        if (rc == 0 && fsync(fd) != 0)
            rc = errno;
        close(fd);
        if (rc) {
            copy_error(err, errlen, "copying %s/data.mdb: %s", src, mdb_strerror(rc));
            rc = lmdb_to_cairn(rc);
            break;
        }
        char why[512] = "";
        struct catalog_msg copy_msg = {why, sizeof why};
        copy = (struct catalog){.path = staged_path, .error = catalog_msg_sink, .error_arg = &copy_msg};
        rc = copied_catalog(staged_path, &copy);
        if (rc) {
            copy_error(err, errlen, "%s: %s", src, why[0] ? why : cairn_strerror(rc));
            break;
        }
        /* Tests widen the window between the snapshot and the log so that
         * a checkpoint lands in it and the retry is exercised. */
        if (knobs.test.backup_pause_ms && attempt == 0)
            usleep(knobs.test.backup_pause_ms * 1000u);
        rc = copy_log(srcdir, dstdir, &copy, &res->log_bytes, err, errlen);
        if (rc < 0) {
            rc = -rc;
            break;
        }
        if (rc == 0) {
            rc = copy_dest_finish(dstdir, dest, "data.mdb.tmp", err, errlen);
            break;
        }
        usleep(1000u << (attempt < 6 ? attempt : 6));
    }
    res->retries = attempt;
    if (attempt == BACKUP_RETRIES) {
        copy_error(err, errlen, "%s: the store checkpointed during each of %d attempts", src, BACKUP_RETRIES);
        rc = CAIRN_BUSY;
    }
    if (rc)
        unlinkat(dstdir, "data.mdb.tmp", 0);
    catalog_close_env(&st);
    close(srcdir);
    close(dstdir);
    free(staged_path);
    return rc;
}
