/*
 * cmd_backup.c - `cairn backup STORE DEST`: a consistent copy, also while
 * another process has STORE open and commits.
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
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cmd.h"

#define BACKUP_RETRIES 50

static const char backup_usage[] = "usage: cairn backup [--check] STORE DEST\n"
                                   "\n"
                                   "Copy STORE to the new directory DEST (missing or empty): the LMDB snapshot\n"
                                   "plus the part of the log that continues it.  Works while another process has\n"
                                   "STORE open and commits; DEST holds the state after some committed transaction.\n"
                                   "\n"
                                   "  --check   run the integrity check on DEST afterwards (exit 1 on problems)\n"
                                   "  --help    this text\n";

int dest_prepare(const char *sub, const char *dest)
{
    if (mkdir(dest, 0755) != 0 && errno != EEXIST) {
        cmd_error(sub, "%s: cannot create: %s", dest, strerror(errno));
        return -1;
    }
    int fd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        cmd_error(sub, "%s: %s", dest, strerror(errno));
        return -1;
    }
    static const char *ours[] = {"data.mdb", "wal", "lock.mdb"};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) {
        if (faccessat(fd, ours[i], F_OK, 0) == 0) {
            cmd_error(sub, "%s: already holds %s; refusing to overwrite", dest, ours[i]);
            close(fd);
            return -1;
        }
    }
    return fd;
}

int dest_finish(const char *sub, int dirfd, const char *dest, const char *staged)
{
    int fd = openat(dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0)
        close(fd);
    if (fd < 0 || fsync(dirfd) != 0 || renameat(dirfd, staged, dirfd, "data.mdb") != 0 || fsync(dirfd) != 0) {
        cmd_error(sub, "%s: finishing the store files: %s", dest, strerror(errno));
        return -1;
    }
    return 0;
}

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
static int copied_catalog(const char *path, cairn_store *s)
{
    MDB_txn *txn;
    int rc = mdb_env_create(&s->env);
    if (rc)
        return lmdb_to_cairn(rc);
    mdb_env_set_maxdbs(s->env, 4);
    rc = mdb_env_open(s->env, path, MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK, 0644);
    if (rc == 0)
        rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0 && (rc = lmdb_file_check(s->env, NULL, NULL)) != 0)
        mdb_txn_abort(txn);
    if (rc) {
        mdb_env_close(s->env);
        s->env = NULL;
        return lmdb_to_cairn(rc);
    }
    rc = store_read_catalog(s, txn);
    mdb_txn_abort(txn);
    types_free(s);
    mdb_env_close(s->env);
    s->env = NULL;
    return rc;
}

/* Steps 3-4: copy the log if it continues checkpoint ckpt; 1 = retry. */
static int copy_log(const char *sub, int srcdir, int dstdir, const cairn_store *copy, uint64_t *bytes)
{
    int in = openat(srcdir, "wal", O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        cmd_error(sub, "wal: %s", strerror(errno));
        return -1;
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
        cmd_error(sub, "wal: %s", rc == CAIRN_CORRUPT ? "header damaged or from another store" : strerror(rc));
        close(in);
        return -1;
    }
    int out = openat(dstdir, "wal", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        cmd_error(sub, "wal in the destination: %s", strerror(errno));
        close(in);
        return -1;
    }
    static char buf[1 << 16];
    *bytes = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (n > 0 && (rc = write_all(out, buf, (size_t)n)) != 0)) {
            cmd_error(sub, "copying the log: %s", strerror(n < 0 ? errno : rc));
            close(in), close(out);
            return -1;
        }
        if (n == 0)
            break;
        *bytes += (uint64_t)n;
    }
    close(in);
    rc = fsync(out);
    close(out);
    if (rc) {
        cmd_error(sub, "syncing the copied log: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int cmd_backup(int argc, char **argv)
{
    static const struct option opts[] = {{"check", no_argument, 0, 'c'}, {"help", no_argument, 0, 'h'}, {0}};
    int check = 0, c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'c')
            check = 1;
        else if (c == 'h')
            return fputs(backup_usage, stdout), CMD_OK;
        else
            return fputs(backup_usage, stderr), CMD_FAIL;
    }
    if (optind != argc - 2)
        return fputs(backup_usage, stderr), CMD_FAIL;
    const char *src = argv[optind], *dest = argv[optind + 1];

    /* The source, read-only, without the store's lock: LMDB readers of
     * other processes coexist with the writer. */
    cairn_store st;
    memset(&st, 0, sizeof st);
    cairn_options_init(&st.opt);
    pthread_mutex_init(&st.err_mutex, NULL);
    pthread_rwlock_init(&st.types_lock, NULL);
    st.path = (char *)src;
    int srcdir = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (srcdir < 0 || faccessat(srcdir, "data.mdb", R_OK, 0) != 0) {
        cmd_error("backup", "%s%s: %s", src, srcdir < 0 ? "" : "/data.mdb", strerror(errno));
        if (srcdir >= 0)
            close(srcdir);
        return CMD_FAIL;
    }
    MDB_env *env;
    int rc = store_open_env(&st, src, MDB_RDONLY, 0, &env);
    if (rc) {
        cmd_error("backup", "%s/data.mdb: LMDB cannot open it: %s", src, cairn_strerror(rc));
        close(srcdir);
        return cmd_exit_for(rc);
    }
    int dstdir = dest_prepare("backup", dest);
    if (dstdir < 0) {
        mdb_env_close(env);
        close(srcdir);
        return CMD_FAIL;
    }
    char *staged_path;
    if (asprintf(&staged_path, "%s/data.mdb.tmp", dest) < 0)
        abort();
    struct progress pr;
    progress_begin(&pr, "backup");
    int result = CMD_FAIL, attempt;
    uint64_t log_bytes = 0;
    cairn_store copy;
    for (attempt = 0; attempt < BACKUP_RETRIES; attempt++) {
        progress_show(&pr, (uint64_t)attempt, BACKUP_RETRIES);
        int fd = openat(dstdir, "data.mdb.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            cmd_error("backup", "%s: %s", staged_path, strerror(errno));
            break;
        }
        rc = lmdb_env_copyfd2(env, fd, MDB_CP_COMPACT);
        if (rc == 0 && fsync(fd) != 0)
            rc = errno;
        close(fd);
        if (rc) {
            cmd_error("backup", "copying %s/data.mdb: %s", src, mdb_strerror(rc));
            break;
        }
        memset(&copy, 0, sizeof copy);
        cairn_options_init(&copy.opt);
        pthread_mutex_init(&copy.err_mutex, NULL);
        pthread_rwlock_init(&copy.types_lock, NULL);
        copy.path = staged_path;
        rc = copied_catalog(staged_path, &copy);
        if (rc) {
            cmd_error("backup", "%s: %s", src, copy.errmsg[0] ? copy.errmsg : cairn_strerror(rc));
            result = cmd_exit_for(rc);
            break;
        }
        /* Tests widen the window between the snapshot and the log so that
         * a checkpoint lands in it and the retry is exercised. */
        const char *pause = getenv("CAIRN_TEST_BACKUP_PAUSE_MS");
        if (pause && attempt == 0)
            usleep((useconds_t)atoi(pause) * 1000u);
        rc = copy_log("backup", srcdir, dstdir, &copy, &log_bytes);
        if (rc < 0)
            break;
        if (rc == 0) {
            result = dest_finish("backup", dstdir, dest, "data.mdb.tmp") == 0 ? CMD_OK : CMD_FAIL;
            break;
        }
        usleep(1000u << (attempt < 6 ? attempt : 6));
    }
    progress_end(&pr);
    if (attempt == BACKUP_RETRIES)
        cmd_error("backup", "%s: the store checkpointed during each of %d attempts", src, BACKUP_RETRIES);
    if (result != CMD_OK)
        unlinkat(dstdir, "data.mdb.tmp", 0);
    mdb_env_close(env);
    close(srcdir);
    close(dstdir);
    free(staged_path);
    if (result != CMD_OK)
        return result;

    /* The copy must open: catalog, log header, replay. */
    struct snapshot *sn;
    rc = cmd_snapshot("backup", dest, &sn);
    if (rc)
        return cmd_exit_for(rc);
    printf("%s -> %s: checkpoint LSN %llu, log %llu bytes (%llu transactions after it), %d retries\n", src, dest,
           (unsigned long long)sn->st.ckpt_lsn, (unsigned long long)log_bytes, (unsigned long long)sn->log_txns,
           attempt);
    if (check) {
        cairn_check_report r;
        rc = check_snapshot(sn, &r, NULL);
        printf("%s: %s%s\n", dest, rc == 0 ? "clean" : "PROBLEMS: ", rc == 0 ? "" : r.first_problem);
        result = rc == 0 ? CMD_OK : cmd_exit_for(rc);
    }
    snapshot_close(sn);
    return result;
}
