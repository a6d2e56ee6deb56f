/*
 * test_ioerr.c - I/O error injection.
 *
 * Every I/O operation the library makes during one phase -- a commit, a
 * checkpoint, a close (which checkpoints), an open that recovers a log, an
 * open that creates a store -- is failed in turn: the k-th operation, for
 * every k, once or persistently (every later one too, until the phase
 * ends), with EIO, ENOSPC, a short transfer or EINTR, and for LMDB with
 * MDB_MAP_FULL.  A first run of each scenario, without injection, counts
 * the operations (and prints them); then k goes over all of them, for each
 * kind, once and persistent.  Each case then checks:
 *   - the call returns an error code (no crash; ASan/LSan find leaks on the
 *     error paths; no file descriptor is left open);
 *   - the documented failure policy: a failed log write or sync makes every
 *     later commit return CAIRN_IOERR until the store is reopened; ENOSPC
 *     on the log write returns CAIRN_FULL, the transaction can be aborted
 *     (or retried) and the store stays usable (ENOSPC from fdatasync may
 *     be either that or the sticky CAIRN_IOERR); a failed checkpoint is
 *     sticky when LMDB failed, except a full map/disk (CAIRN_FULL);
 *   - an injected write or sync error is never swallowed (a commit that
 *     returns CAIRN_OK must be durable), and a short transfer or EINTR on a
 *     read/write, which a retry absorbs, does not fail the phase;
 *   - the state, in memory, in a crash image (the store's files copied
 *     while it is open, as a crash would leave them) and after a clean
 *     reopen, is exactly the last commit that returned CAIRN_OK, and
 *     cairn_check() is clean; after reopening, commits work again.
 *
 * Which states may a reopen show after a failed commit?  txn.c writes the
 * whole batch with one pwrite loop, then fdatasyncs.  When the write
 * completes but the sync fails (EIO), the records are in the file (at least
 * in the page cache) and recovery replays them: the commit that returned
 * CAIRN_IOERR may appear.  Its outcome is unknown to the caller, as after
 * any failed fsync, and "the transaction is still open and unchanged" only
 * describes memory.  So after CAIRN_IOERR both "without it" and "with it"
 * are accepted.  CAIRN_FULL is different: it tells the caller to abort and
 * go on, so a transaction that got CAIRN_FULL and was aborted must never
 * appear.
 *
 * How the faults get in.  This executable is linked with -Wl,--wrap=SYM for
 * the system calls and LMDB functions that libcairn.a calls (list in
 * CMakeLists.txt): the references from the library objects go to the
 * __wrap_ functions below, which count and fail them.  LMDB's own pwrite/
 * fsync calls happen inside liblmdb.so and cannot be wrapped this way; a
 * failure of LMDB's I/O is emulated at its API boundary instead: mdb_put,
 * mdb_del and mdb_txn_commit return EIO, ENOSPC or MDB_MAP_FULL (a failing
 * mdb_txn_commit aborts the transaction first, as LMDB does), and "EIO
 * late" commits for real and then reports EIO (LMDB's final fsync failed
 * after the meta page was written).  `write` is not wrapped: the library
 * only uses it for the fault handler's message on stderr.
 *
 * The wrappers run on any thread and mdb_get also inside the fault
 * handler (pager/fault.c), so they only touch atomics and plain data
 * written while disarmed: no malloc, no stdio, no locks.
 *
 * Fault kinds (which operations each applies to: see applies()):
 *   EIO       the call fails with EIO; a pwrite first writes half the
 *             buffer (a torn write), then fails
 *   ENOSPC    the same with ENOSPC (open/openat only with O_CREAT)
 *   SHORT     pwrite/pread transfer half of what was asked and say so
 *   EINTR     the call fails with EINTR, nothing done; "persistent" is a
 *             signal storm: every call from the k-th on is interrupted
 *             INTR_STORM times in a row, then one gets through
 *   MAPFULL   mdb_put/mdb_del/mdb_txn_commit return MDB_MAP_FULL
 *   EIO-late  the operation takes effect, then EIO is reported (pwrite
 *             writes everything, fdatasync/fsync sync, renameat renames,
 *             mdb_txn_commit commits)
 *
 * Scenarios (phase/scenario in the case names):
 *   commit/log-holds-txns      base history [1,2,3], 2 and 3 only in the log;
 *                              commit 4 fails, is retried at once, then
 *                              aborted (or it committed), then commit 5
 *   commit/log-empty           the same with everything checkpointed
 *   commit/sync-off            CAIRN_SYNC_OFF: no fdatasync
 *   commit/log-empty-abort-close  no retry: abort, close, reopen
 *   checkpoint/idle, /txn-open the checkpoint fails (with a transaction
 *                              open and changed); then commit, checkpoint
 *   checkpoint/map-cannot-grow MDB_MAP_FULL while growing the map fails the
 *                              way it does when the address space cannot
 *                              hold the larger map
 *   close/idle, /txn-open      cairn_close's checkpoint fails
 *   register/new-type          cairn_type_register's LMDB transaction fails;
 *                              then other types register, are used, persist
 *   recovery/log-holds-txns, /torn-tail (last commit record cut),
 *   /log-not-reset (LMDB has it all, the log was not reset)
 *                              open replays the log
 *   create/new-store           open creates the directory and the store
 *
 * Each case runs in a forked child: a crash, a hang (CASE_TIMEOUT_S) or a
 * sanitizer report fails that case only, and LeakSanitizer checks each
 * case on its own when the child exits.  Failed cases are listed as
 * "[FAIL] phase/scenario KIND k=i/n once|persistent [operation]" with the
 * failed checks under them; each phase ends with a table of cases per kind.
 * The phase's directories (templates, one per case) are made in the test's
 * scratch directory (tests/lib/tempdir.h), which its teardown removes
 * whatever happened.
 *
 * Environment: CAIRN_IOERR_FILTER=substring runs only the cases whose name
 * contains it (e.g. "checkpoint/idle EIO k=9/"; baselines always run);
 * CAIRN_IOERR_VERBOSE=1 prints every case; CAIRN_IOERR_NOFORK=1 runs the
 * cases in the test process (for a debugger; a crash then ends the run).
 */
#define _GNU_SOURCE
#include "testutil.h"
#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* The fault plan                                                      */
/* ------------------------------------------------------------------ */

enum op {
    OP_PWRITE,
    OP_PREAD,
    OP_FDATASYNC,
    OP_FSYNC,
    OP_OPEN,
    OP_OPENAT,
    OP_MKDIR,
    OP_RENAMEAT,
    OP_FTRUNCATE,
    OP_FSTAT,
    OP_LSEEK,
    OP_MDB_ENV_OPEN,
    OP_MDB_TXN_BEGIN,
    OP_MDB_TXN_COMMIT,
    OP_MDB_PUT,
    OP_MDB_DEL,
    OP_MDB_GET,
    OP_MDB_DBI_OPEN,
    OP_MDB_CURSOR_OPEN,
    OP_MDB_CURSOR_GET,
    OP_N
};

static const char *const op_name[OP_N] = {
    "pwrite",  "pread",        "fdatasync",     "fsync",           "open",
    "openat",  "mkdir",        "renameat",      "ftruncate",       "fstat",
    "lseek",   "mdb_env_open", "mdb_txn_begin", "mdb_txn_commit",  "mdb_put",
    "mdb_del", "mdb_get",      "mdb_dbi_open",  "mdb_cursor_open", "mdb_cursor_get",
};

enum kind { K_EIO, K_ENOSPC, K_SHORT, K_EINTR, K_MAPFULL, K_EIO_LATE, K_N };
static const char *const kind_name[K_N] = {"EIO", "ENOSPC", "SHORT", "EINTR", "MAPFULL", "EIO-late"};

/* Facts about one call that decide what can fail. */
#define F_CREAT 1u /* open/openat with O_CREAT */

static bool applies(enum op op, enum kind k, unsigned f)
{
    switch (k) {
    case K_EIO:
        return true;
    case K_ENOSPC:
        switch (op) {
        case OP_PWRITE:
        case OP_FDATASYNC:
        case OP_FSYNC:
        case OP_MKDIR:
        case OP_RENAMEAT:
        case OP_MDB_ENV_OPEN:
        case OP_MDB_PUT:
        case OP_MDB_DEL:
        case OP_MDB_TXN_COMMIT:
            return true;
        case OP_OPEN:
        case OP_OPENAT:
            return f & F_CREAT;
        default:
            return false;
        }
    case K_SHORT:
        return op == OP_PWRITE || op == OP_PREAD;
    case K_EINTR:
        return op == OP_PWRITE || op == OP_PREAD || op == OP_FDATASYNC || op == OP_FSYNC || op == OP_OPEN ||
               op == OP_OPENAT || op == OP_FTRUNCATE;
    case K_MAPFULL:
        return op == OP_MDB_PUT || op == OP_MDB_DEL || op == OP_MDB_TXN_COMMIT;
    case K_EIO_LATE:
        return op == OP_PWRITE || op == OP_FDATASYNC || op == OP_FSYNC || op == OP_RENAMEAT || op == OP_MDB_TXN_COMMIT;
    default:
        return false;
    }
}

/* Operations whose failure loses durability if ignored. */
static bool write_class(int op, unsigned f)
{
    switch (op) {
    case OP_PWRITE:
    case OP_FDATASYNC:
    case OP_FSYNC:
    case OP_MKDIR:
    case OP_RENAMEAT:
    case OP_MDB_ENV_OPEN:
    case OP_MDB_PUT:
    case OP_MDB_DEL:
    case OP_MDB_TXN_COMMIT:
        return true;
    case OP_OPEN:
    case OP_OPENAT:
        return f & F_CREAT;
    default:
        return false;
    }
}

static bool is_mdb(int op)
{
    return op >= OP_MDB_ENV_OPEN;
}

struct plan {
    enum kind kind;
    long k;           /* fail the k-th operation the kind applies to; 0 = count only */
    int persistent;   /* and every later one, until the phase ends */
    uint32_t op_mask; /* if not 0: only these operations are counted */
    int grow_fails;   /* growing the LMDB map fails (see __wrap_mdb_env_set_mapsize) */
};

#define INTR_STORM 8
#define SPIN_LIMIT 20000 /* injections in one phase: more means a retry loop spins */
#define SEQ_MAX 512

/* Written only while disarmed; read by the wrappers while armed. */
static struct plan fp;
static _Atomic int fp_armed;
static _Atomic long fp_seen[K_N];
static _Atomic long fp_ops[OP_N];
static _Atomic long fp_fired;
static _Atomic int fp_first_op = -1;
static _Atomic unsigned fp_first_flags;
static _Atomic long fp_first_index; /* position of the first injection among all operations */
static _Atomic uint32_t fp_hit_ops; /* every operation injected into */
static _Atomic long fp_storm;
static _Atomic int fp_spun;
static _Atomic long fp_grow_failed;
/* Per kind, the operation at each position (for the baseline's listing
 * and to check that injection runs see the same sequence). */
static _Atomic signed char fp_seq[K_N][SEQ_MAX];

/* Returns the kind to inject into this call, or -1. */
static int decide(enum op op, unsigned f)
{
    if (!atomic_load(&fp_armed))
        return -1;
    atomic_fetch_add(&fp_ops[op], 1);
    if (fp.op_mask && !(fp.op_mask & (1u << op)))
        return -1;
    int hit = -1;
    for (int k = 0; k < K_N; k++) {
        if (!applies(op, (enum kind)k, f))
            continue;
        long n = atomic_fetch_add(&fp_seen[k], 1) + 1;
        if (n <= SEQ_MAX)
            atomic_store(&fp_seq[k][n - 1], (signed char)op);
        if (k == (int)fp.kind && fp.k > 0 && (n == fp.k || (fp.persistent && n > fp.k)))
            hit = k;
    }
    if (hit < 0)
        return -1;
    if (hit == K_EINTR && fp.persistent) {
        if (atomic_fetch_add(&fp_storm, 1) >= INTR_STORM) {
            atomic_store(&fp_storm, 0);
            return -1;
        }
    }
    if (atomic_fetch_add(&fp_fired, 1) >= SPIN_LIMIT) {
        atomic_store(&fp_spun, 1);
        return -1;
    }
    int none = -1;
    if (atomic_compare_exchange_strong(&fp_first_op, &none, (int)op)) {
        atomic_store(&fp_first_flags, f);
        atomic_store(&fp_first_index, atomic_load(&fp_seen[K_EIO])); /* EIO applies to all */
    }
    atomic_fetch_or(&fp_hit_ops, 1u << op);
    return hit;
}

struct report {
    long fired;
    int first_op;
    unsigned first_flags;
    long first_index; /* 1-based position among all operations of the phase */
    uint32_t hit_ops;
    int spun;
    long grow_failed;
    long seen[K_N];
    long ops[OP_N];
    signed char seq[K_N][SEQ_MAX];
};

static void phase_begin(const struct plan *pl)
{
    fp = *pl;
    for (int k = 0; k < K_N; k++) {
        atomic_store(&fp_seen[k], 0);
        for (int i = 0; i < SEQ_MAX; i++)
            atomic_store(&fp_seq[k][i], -1);
    }
    for (int i = 0; i < OP_N; i++)
        atomic_store(&fp_ops[i], 0);
    atomic_store(&fp_fired, 0);
    atomic_store(&fp_first_op, -1);
    atomic_store(&fp_first_flags, 0);
    atomic_store(&fp_first_index, 0);
    atomic_store(&fp_hit_ops, 0);
    atomic_store(&fp_storm, 0);
    atomic_store(&fp_spun, 0);
    atomic_store(&fp_grow_failed, 0);
    atomic_store(&fp_armed, 1);
}

static struct report phase_end(void)
{
    struct report r;
    atomic_store(&fp_armed, 0);
    r.fired = atomic_load(&fp_fired);
    r.first_op = atomic_load(&fp_first_op);
    r.first_flags = atomic_load(&fp_first_flags);
    r.first_index = atomic_load(&fp_first_index);
    r.hit_ops = atomic_load(&fp_hit_ops);
    r.spun = atomic_load(&fp_spun);
    r.grow_failed = atomic_load(&fp_grow_failed);
    for (int k = 0; k < K_N; k++) {
        r.seen[k] = atomic_load(&fp_seen[k]);
        for (int i = 0; i < SEQ_MAX; i++)
            r.seq[k][i] = atomic_load(&fp_seq[k][i]);
    }
    for (int i = 0; i < OP_N; i++)
        r.ops[i] = atomic_load(&fp_ops[i]);
    return r;
}

/* ------------------------------------------------------------------ */
/* The wrappers                                                        */
/* ------------------------------------------------------------------ */

ssize_t __real_pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t __real_pread(int fd, void *buf, size_t n, off_t off);
int __real_fdatasync(int fd);
int __real_fsync(int fd);
int __real_open(const char *path, int flags, ...);
int __real_openat(int dirfd, const char *path, int flags, ...);
int __real_mkdir(const char *path, mode_t mode);
int __real_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
int __real_ftruncate(int fd, off_t len);
int __real_fstat(int fd, struct stat *st);
off_t __real_lseek(int fd, off_t off, int whence);
int __real_mdb_env_open(MDB_env *env, const char *path, unsigned int flags, mdb_mode_t mode);
int __real_mdb_txn_begin(MDB_env *env, MDB_txn *parent, unsigned int flags, MDB_txn **txn);
int __real_mdb_txn_commit(MDB_txn *txn);
int __real_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data, unsigned int flags);
int __real_mdb_del(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data);
int __real_mdb_get(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data);
int __real_mdb_dbi_open(MDB_txn *txn, const char *name, unsigned int flags, MDB_dbi *dbi);
int __real_mdb_cursor_open(MDB_txn *txn, MDB_dbi dbi, MDB_cursor **cursor);
int __real_mdb_cursor_get(MDB_cursor *cursor, MDB_val *key, MDB_val *data, MDB_cursor_op op);
int __real_mdb_env_set_mapsize(MDB_env *env, size_t size);

ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t __wrap_pread(int fd, void *buf, size_t n, off_t off);
int __wrap_fdatasync(int fd);
int __wrap_fsync(int fd);
int __wrap_open(const char *path, int flags, ...);
int __wrap_openat(int dirfd, const char *path, int flags, ...);
int __wrap_mkdir(const char *path, mode_t mode);
int __wrap_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
int __wrap_ftruncate(int fd, off_t len);
int __wrap_fstat(int fd, struct stat *st);
off_t __wrap_lseek(int fd, off_t off, int whence);
int __wrap_mdb_env_open(MDB_env *env, const char *path, unsigned int flags, mdb_mode_t mode);
int __wrap_mdb_txn_begin(MDB_env *env, MDB_txn *parent, unsigned int flags, MDB_txn **txn);
int __wrap_mdb_txn_commit(MDB_txn *txn);
int __wrap_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data, unsigned int flags);
int __wrap_mdb_del(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data);
int __wrap_mdb_get(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data);
int __wrap_mdb_dbi_open(MDB_txn *txn, const char *name, unsigned int flags, MDB_dbi *dbi);
int __wrap_mdb_cursor_open(MDB_txn *txn, MDB_dbi dbi, MDB_cursor **cursor);
int __wrap_mdb_cursor_get(MDB_cursor *cursor, MDB_val *key, MDB_val *data, MDB_cursor_op op);
int __wrap_mdb_env_set_mapsize(MDB_env *env, size_t size);

static int fail_with(int e)
{
    errno = e;
    return -1;
}

static const int kind_errno[K_N] = {EIO, ENOSPC, 0, EINTR, 0, EIO};

ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    int k = decide(OP_PWRITE, 0);
    switch (k) {
    case K_EIO:
    case K_ENOSPC:
        /* A torn write: part of the buffer reached the file, then the error. */
        if (n >= 2)
            (void)__real_pwrite(fd, buf, n / 2, off);
        return fail_with(kind_errno[k]);
    case K_EINTR:
        return fail_with(EINTR);
    case K_SHORT:
        if (n >= 2)
            return __real_pwrite(fd, buf, n / 2, off);
        break;
    case K_EIO_LATE: {
        size_t done = 0;
        while (done < n) {
            ssize_t w = __real_pwrite(fd, (const char *)buf + done, n - done, off + (off_t)done);
            if (w <= 0)
                break;
            done += (size_t)w;
        }
        return fail_with(EIO);
    }
    default:
        break;
    }
    return __real_pwrite(fd, buf, n, off);
}

ssize_t __wrap_pread(int fd, void *buf, size_t n, off_t off)
{
    int k = decide(OP_PREAD, 0);
    if (k == K_SHORT && n >= 2)
        return __real_pread(fd, buf, n / 2, off);
    if (k == K_EIO || k == K_EINTR)
        return fail_with(kind_errno[k]);
    return __real_pread(fd, buf, n, off);
}

static int sync_like(enum op op, int fd, int (*real)(int))
{
    int k = decide(op, 0);
    if (k == K_EIO_LATE) {
        (void)real(fd);
        return fail_with(EIO);
    }
    if (k == K_EIO || k == K_ENOSPC || k == K_EINTR)
        return fail_with(kind_errno[k]);
    return real(fd);
}

int __wrap_fdatasync(int fd)
{
    return sync_like(OP_FDATASYNC, fd, __real_fdatasync);
}

int __wrap_fsync(int fd)
{
    return sync_like(OP_FSYNC, fd, __real_fsync);
}

int __wrap_open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | __O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    int k = decide(OP_OPEN, (flags & O_CREAT) ? F_CREAT : 0);
    if (k == K_EIO || k == K_ENOSPC || k == K_EINTR)
        return fail_with(kind_errno[k]);
    return __real_open(path, flags, mode);
}

int __wrap_openat(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | __O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    int k = decide(OP_OPENAT, (flags & O_CREAT) ? F_CREAT : 0);
    if (k == K_EIO || k == K_ENOSPC || k == K_EINTR)
        return fail_with(kind_errno[k]);
    return __real_openat(dirfd, path, flags, mode);
}

int __wrap_mkdir(const char *path, mode_t mode)
{
    int k = decide(OP_MKDIR, 0);
    if (k == K_EIO || k == K_ENOSPC)
        return fail_with(kind_errno[k]);
    return __real_mkdir(path, mode);
}

int __wrap_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
    int k = decide(OP_RENAMEAT, 0);
    if (k == K_EIO_LATE) {
        (void)__real_renameat(olddirfd, oldpath, newdirfd, newpath);
        return fail_with(EIO);
    }
    if (k == K_EIO || k == K_ENOSPC)
        return fail_with(kind_errno[k]);
    return __real_renameat(olddirfd, oldpath, newdirfd, newpath);
}

int __wrap_ftruncate(int fd, off_t len)
{
    int k = decide(OP_FTRUNCATE, 0);
    if (k == K_EIO || k == K_EINTR)
        return fail_with(kind_errno[k]);
    return __real_ftruncate(fd, len);
}

int __wrap_fstat(int fd, struct stat *st)
{
    if (decide(OP_FSTAT, 0) == K_EIO)
        return fail_with(EIO);
    return __real_fstat(fd, st);
}

off_t __wrap_lseek(int fd, off_t off, int whence)
{
    if (decide(OP_LSEEK, 0) == K_EIO)
        return fail_with(EIO);
    return __real_lseek(fd, off, whence);
}

/* LMDB: errors at the API boundary stand in for LMDB's own I/O failing. */
static int mdb_code(int k)
{
    return k == K_MAPFULL ? MDB_MAP_FULL : kind_errno[k];
}

int __wrap_mdb_env_open(MDB_env *env, const char *path, unsigned int flags, mdb_mode_t mode)
{
    int k = decide(OP_MDB_ENV_OPEN, 0);
    if (k == K_EIO || k == K_ENOSPC)
        return mdb_code(k);
    return __real_mdb_env_open(env, path, flags, mode);
}

int __wrap_mdb_txn_begin(MDB_env *env, MDB_txn *parent, unsigned int flags, MDB_txn **txn)
{
    if (decide(OP_MDB_TXN_BEGIN, 0) == K_EIO)
        return EIO;
    return __real_mdb_txn_begin(env, parent, flags, txn);
}

int __wrap_mdb_txn_commit(MDB_txn *txn)
{
    int k = decide(OP_MDB_TXN_COMMIT, 0);
    if (k == K_EIO_LATE) {
        int rc = __real_mdb_txn_commit(txn);
        return rc ? rc : EIO;
    }
    if (k == K_EIO || k == K_ENOSPC || k == K_MAPFULL) {
        mdb_txn_abort(txn); /* a failed commit frees the transaction, as LMDB's does */
        return mdb_code(k);
    }
    return __real_mdb_txn_commit(txn);
}

int __wrap_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data, unsigned int flags)
{
    int k = decide(OP_MDB_PUT, 0);
    if (k == K_EIO || k == K_ENOSPC || k == K_MAPFULL)
        return mdb_code(k);
    return __real_mdb_put(txn, dbi, key, data, flags);
}

int __wrap_mdb_del(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data)
{
    int k = decide(OP_MDB_DEL, 0);
    if (k == K_EIO || k == K_ENOSPC || k == K_MAPFULL)
        return mdb_code(k);
    return __real_mdb_del(txn, dbi, key, data);
}

/* Also called inside the fault handler: decide() is async-signal-safe. */
int __wrap_mdb_get(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data)
{
    if (decide(OP_MDB_GET, 0) == K_EIO)
        return EIO;
    return __real_mdb_get(txn, dbi, key, data);
}

int __wrap_mdb_dbi_open(MDB_txn *txn, const char *name, unsigned int flags, MDB_dbi *dbi)
{
    if (decide(OP_MDB_DBI_OPEN, 0) == K_EIO)
        return EIO;
    return __real_mdb_dbi_open(txn, name, flags, dbi);
}

int __wrap_mdb_cursor_open(MDB_txn *txn, MDB_dbi dbi, MDB_cursor **cursor)
{
    if (decide(OP_MDB_CURSOR_OPEN, 0) == K_EIO)
        return EIO;
    return __real_mdb_cursor_open(txn, dbi, cursor);
}

int __wrap_mdb_cursor_get(MDB_cursor *cursor, MDB_val *key, MDB_val *data, MDB_cursor_op op)
{
    if (decide(OP_MDB_CURSOR_GET, 0) == K_EIO)
        return EIO;
    return __real_mdb_cursor_get(cursor, key, data, op);
}

/* Growing the map fails the way it does when the address space cannot hold
 * the larger map (RLIMIT_AS, ThreadSanitizer's smaller application range,
 * 32-bit): the real call, asked for more than any mmap can give. */
int __wrap_mdb_env_set_mapsize(MDB_env *env, size_t size)
{
    if (atomic_load(&fp_armed) && fp.grow_fails) {
        atomic_fetch_add(&fp_grow_failed, 1);
        return __real_mdb_env_set_mapsize(env, (size_t)1 << 62);
    }
    return __real_mdb_env_set_mapsize(env, size);
}

/* ------------------------------------------------------------------ */
/* Cases: names, soft checks, tallies                                  */
/* ------------------------------------------------------------------ */

#define MAX_PRINTED 40

static struct {
    char name[256];
    int failures;
} cur_case;
static int printed_in_phase;
static bool verbose, nofork;
static const char *filter;

static void case_start(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void case_start(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cur_case.name, sizeof cur_case.name, fmt, ap);
    va_end(ap);
    cur_case.failures = 0;
}

static void case_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void case_note(const char *fmt, ...)
{
    size_t at = strlen(cur_case.name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cur_case.name + at, sizeof cur_case.name - at, fmt, ap);
    va_end(ap);
}

static void case_fail(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void case_fail(int line, const char *fmt, ...)
{
    cur_case.failures++;
    if (cur_case.failures == 1)
        printf("[FAIL] %s\n", cur_case.name); /* always: the list of failed cases is complete */
    if (printed_in_phase >= MAX_PRINTED)
        return; /* details of the first MAX_PRINTED failed cases per phase only */
    printf("       line %d: ", line);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* Soft check: records the failure and goes on; evaluates to cond. */
#define CHECK(cond, ...)                                                                                               \
    __extension__({                                                                                                    \
        bool ok_ = (cond);                                                                                             \
        if (!ok_)                                                                                                      \
            case_fail(__LINE__, __VA_ARGS__);                                                                          \
        ok_;                                                                                                           \
    })

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own */
}

/* ------------------------------------------------------------------ */
/* The data: a history of committed tags                               */
/* ------------------------------------------------------------------ */

struct node {
    uint64_t tag, seq;
    struct node *next;
    uint64_t pad[5];
};

struct meta {
    uint64_t n, last_tag;
    struct node *list;
    uint64_t *blob;
    uint64_t *tmp;
    uint64_t tmp_words;
};

#define BLOB_PAGES 18 /* spans at least two extents */
#define BLOB_WORDS (BLOB_PAGES * 4096 / 8)

struct types {
    cairn_type node, meta;
};

#define HIST_MAX 16
struct hist {
    int n;
    uint64_t tag[HIST_MAX];
};

static struct hist hist_of(int n, ...)
{
    struct hist h = {.n = n};
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        h.tag[i] = va_arg(ap, unsigned long long); /* callers pass 1ull, ... */
    va_end(ap);
    return h;
}

static struct hist hist_plus(struct hist h, uint64_t tag)
{
    h.tag[h.n++] = tag;
    return h;
}

static const char *hist_str(const struct hist *h, char *buf, size_t len)
{
    size_t at = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < h->n && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%llu", i ? "," : "", (unsigned long long)h->tag[i]);
    if (at < len)
        snprintf(buf + at, len - at, "]");
    return buf;
}

static uint64_t blob_word(uint64_t tag, size_t i)
{
    return tag * 1000003u + i;
}

static size_t tmp_words(uint64_t tag)
{
    return 100 + (size_t)(tag % 4) * 300; /* 800..8000 bytes: slab and page runs */
}

static int register_types(cairn_store *s, struct types *ty)
{
    size_t node_ptrs[] = {offsetof(struct node, next)};
    size_t meta_ptrs[] = {offsetof(struct meta, list), offsetof(struct meta, blob), offsetof(struct meta, tmp)};
    int rc = cairn_type_register(s, "node", sizeof(struct node), node_ptrs, 1, &ty->node);
    if (rc == 0)
        rc = cairn_type_register(s, "meta", sizeof(struct meta), meta_ptrs, 3, &ty->meta);
    return rc;
}

/* The changes of transaction `tag`, inside open transaction t. */
static int mutate(cairn_store *s, cairn_txn *t, const struct types *ty, uint64_t tag)
{
    struct meta *m;
    int rc = cairn_root_get(s, "meta", (void **)&m);
    if (rc == CAIRN_NOT_FOUND) {
        rc = cairn_alloc(t, ty->meta, 1, (void **)&m);
        if (rc == 0)
            rc = cairn_alloc_bytes(t, BLOB_WORDS * 8, (void **)&m->blob);
        if (rc == 0)
            rc = cairn_root_set(t, "meta", m);
    }
    if (rc)
        return rc;
    struct node *nd;
    rc = cairn_alloc(t, ty->node, 1, (void **)&nd);
    if (rc)
        return rc;
    nd->tag = tag;
    nd->seq = m->n + 1;
    nd->next = m->list;
    m->list = nd;
    m->n++;
    m->last_tag = tag;
    for (size_t i = 0; i < BLOB_WORDS; i++)
        m->blob[i] = blob_word(tag, i);
    size_t words = tmp_words(tag);
    uint64_t *tmp;
    rc = cairn_alloc_bytes(t, words * 8, (void **)&tmp);
    if (rc)
        return rc;
    for (size_t i = 0; i < words; i++)
        tmp[i] = tag * 7 + i;
    if (m->tmp) {
        rc = cairn_free(t, m->tmp);
        if (rc)
            return rc;
    }
    m->tmp = tmp;
    m->tmp_words = words;
    return 0;
}

/* 0 if s shows exactly history h; else -1 and why. Reads through
 * cairn_prefault so that a page that cannot load is an error, not a crash. */
static int verify_state(cairn_store *s, const struct hist *h, char *why, size_t wl)
{
    struct meta *m = NULL;
    int rc = cairn_root_get(s, "meta", (void **)&m);
    if (h->n == 0) {
        if (rc == CAIRN_NOT_FOUND)
            return 0;
        snprintf(why, wl, "root \"meta\" present (rc %d), expected an empty store", rc);
        return -1;
    }
    if (rc) {
        snprintf(why, wl, "root \"meta\": %d (%s)", rc, cairn_strerror(rc));
        return -1;
    }
    if ((rc = cairn_prefault(s, m, sizeof *m, 0))) {
        snprintf(why, wl, "prefault meta: %d (%s)", rc, cairn_strerror(rc));
        return -1;
    }
    uint64_t last = h->tag[h->n - 1];
    if (m->n != (uint64_t)h->n || m->last_tag != last) {
        snprintf(why, wl, "holds %llu transactions ending with tag %llu", (unsigned long long)m->n,
                 (unsigned long long)m->last_tag);
        return -1;
    }
    const struct node *nd = m->list;
    for (int i = h->n; i >= 1; i--) {
        if (!nd) {
            snprintf(why, wl, "list ends before seq %d", i);
            return -1;
        }
        if ((rc = cairn_prefault(s, nd, sizeof *nd, 0))) {
            snprintf(why, wl, "prefault node %d: %d (%s)", i, rc, cairn_strerror(rc));
            return -1;
        }
        if (nd->seq != (uint64_t)i || nd->tag != h->tag[i - 1]) {
            snprintf(why, wl, "list node %d: seq %llu tag %llu", i, (unsigned long long)nd->seq,
                     (unsigned long long)nd->tag);
            return -1;
        }
        nd = nd->next;
    }
    if (nd) {
        snprintf(why, wl, "list longer than %d", h->n);
        return -1;
    }
    if ((rc = cairn_prefault(s, m->blob, BLOB_WORDS * 8, 0))) {
        snprintf(why, wl, "prefault blob: %d (%s)", rc, cairn_strerror(rc));
        return -1;
    }
    for (size_t i = 0; i < BLOB_WORDS; i++) {
        if (m->blob[i] != blob_word(last, i)) {
            snprintf(why, wl, "blob word %zu is %llu, want %llu (tag %llu)", i, (unsigned long long)m->blob[i],
                     (unsigned long long)blob_word(last, i), (unsigned long long)last);
            return -1;
        }
    }
    size_t tw = tmp_words(last);
    if (m->tmp_words != tw || !m->tmp) {
        snprintf(why, wl, "tmp object: %llu words, want %zu", (unsigned long long)m->tmp_words, tw);
        return -1;
    }
    if ((rc = cairn_prefault(s, m->tmp, tw * 8, 0))) {
        snprintf(why, wl, "prefault tmp: %d (%s)", rc, cairn_strerror(rc));
        return -1;
    }
    for (size_t i = 0; i < tw; i++) {
        if (m->tmp[i] != last * 7 + i) {
            snprintf(why, wl, "tmp word %zu wrong", i);
            return -1;
        }
    }
    return 0;
}

/* Which of the candidate histories s shows; -1 (and a failure) if none.
 * With check set, cairn_check must also be clean (no transaction may be
 * open: cairn_check waits for it). */
static int expect_state(cairn_store *s, const struct hist *cands, int ncands, bool check, const char *what)
{
    if (check) {
        cairn_check_report r;
        int rc = cairn_check(s, &r);
        CHECK(rc == CAIRN_OK, "%s: cairn_check returned %d (%s): %s", what, rc, cairn_strerror(rc), r.first_problem);
    }
    char why[256] = "", hb[96], all[256] = "";
    for (int i = 0; i < ncands; i++) {
        char w[256];
        if (verify_state(s, &cands[i], w, sizeof w) == 0)
            return i;
        if (i == 0)
            snprintf(why, sizeof why, "%s", w);
        size_t at = strlen(all);
        snprintf(all + at, sizeof all - at, "%s%s", i ? " or " : "", hist_str(&cands[i], hb, sizeof hb));
    }
    CHECK(false, "%s: state is not %s: %s", what, all, why);
    return -1;
}

static int open_store(const char *dir, int sync, cairn_store **s, struct types *ty)
{
    cairn_options o;
    tu_options(&o);
    o.sync = sync;
    int rc = cairn_open(dir, &o, s);
    if (rc)
        return rc;
    rc = register_types(*s, ty);
    if (rc) {
        cairn_close(*s);
        *s = NULL;
    }
    return rc;
}

static bool commit_tag(cairn_store *s, const struct types *ty, uint64_t tag)
{
    cairn_txn *t;
    int rc = cairn_txn_begin(s, &t);
    if (!CHECK(rc == 0, "setup: begin for tag %llu: %d (%s)", (unsigned long long)tag, rc, cairn_strerror(rc)))
        return false;
    rc = mutate(s, t, ty, tag);
    if (!CHECK(rc == 0, "setup: changes of tag %llu: %d (%s)", (unsigned long long)tag, rc, cairn_strerror(rc))) {
        cairn_txn_abort(t);
        return false;
    }
    rc = cairn_txn_commit(t);
    if (!CHECK(rc == 0, "setup: commit of tag %llu: %d (%s)", (unsigned long long)tag, rc, cairn_strerror(rc))) {
        cairn_txn_abort(t);
        return false;
    }
    return true;
}

/* History [1,2,3]: 1 checkpointed into LMDB; 2 and 3 in the log, or also
 * checkpointed (log empty) when !log_holds. */
static bool build_base(cairn_store *s, const struct types *ty, bool log_holds)
{
    if (!commit_tag(s, ty, 1))
        return false;
    int rc = cairn_checkpoint(s);
    if (!CHECK(rc == 0, "setup: checkpoint: %d (%s)", rc, cairn_strerror(rc)))
        return false;
    if (!commit_tag(s, ty, 2) || !commit_tag(s, ty, 3))
        return false;
    if (!log_holds) {
        rc = cairn_checkpoint(s);
        if (!CHECK(rc == 0, "setup: checkpoint: %d (%s)", rc, cairn_strerror(rc)))
            return false;
    }
    return true;
}

static int copy_file(const char *from_dir, const char *to_dir, const char *name)
{
    char a[PATH_MAX], b[PATH_MAX], buf[65536];
    snprintf(a, sizeof a, "%s/%s", from_dir, name);
    snprintf(b, sizeof b, "%s/%s", to_dir, name);
    int in = open(a, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return errno;
    int out = open(b, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        int e = errno;
        close(in);
        return e;
    }
    int rc = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = errno;
            break;
        }
        if (n == 0)
            break;
        if (write(out, buf, (size_t)n) != n) {
            rc = EIO;
            break;
        }
    }
    close(in);
    close(out);
    return rc;
}

/* The store's files as a crash right now would leave them (the page cache
 * survives a process crash). */
static char *snapshot(const char *dir)
{
    char *copy = tu_tempdir();
    int rc = copy_file(dir, copy, "data.mdb");
    if (rc == 0)
        rc = copy_file(dir, copy, "wal");
    if (!CHECK(rc == 0, "copying the store files failed: %s", strerror(rc))) {
        tu_rmdir(copy);
        return NULL;
    }
    return copy;
}

/* Open a crash image of dir and check it shows one of cands. */
static void crash_check(const char *dir, const struct hist *cands, int ncands, const char *what)
{
    char *copy = snapshot(dir);
    if (!copy)
        return;
    cairn_store *s;
    struct types ty;
    char msg[160];
    snprintf(msg, sizeof msg, "crash image %s", what);
    int rc = open_store(copy, CAIRN_SYNC_FULL, &s, &ty);
    if (CHECK(rc == 0, "%s: open failed: %d (%s)", msg, rc, cairn_strerror(rc))) {
        expect_state(s, cands, ncands, true, msg);
        rc = cairn_close(s);
        CHECK(rc == 0, "%s: close: %d (%s)", msg, rc, cairn_strerror(rc));
    }
    tu_rmdir(copy);
}

/* Reopen dir without injection: it must open, show one of cands, pass
 * cairn_check, take a commit of next_tag (0: none), and show that after
 * another reopen. */
static void reopen_and_use(const char *dir, int sync, const struct hist *cands, int ncands, uint64_t next_tag)
{
    cairn_store *s;
    struct types ty;
    int rc = open_store(dir, sync, &s, &ty);
    if (!CHECK(rc == 0, "reopen without injection failed: %d (%s)", rc, cairn_strerror(rc)))
        return;
    int which = expect_state(s, cands, ncands, true, "after reopen");
    struct hist h = cands[which >= 0 ? which : 0];
    bool committed = false;
    if (next_tag && which >= 0) {
        committed = commit_tag(s, &ty, next_tag);
        h = hist_plus(h, next_tag);
    }
    rc = cairn_close(s);
    CHECK(rc == 0, "close after reopen: %d (%s)", rc, cairn_strerror(rc));
    if (!committed)
        return;
    rc = open_store(dir, sync, &s, &ty);
    if (!CHECK(rc == 0, "second reopen failed: %d (%s)", rc, cairn_strerror(rc)))
        return;
    expect_state(s, &h, 1, true, "after a commit on the reopened store and another reopen");
    rc = cairn_close(s);
    CHECK(rc == 0, "close: %d (%s)", rc, cairn_strerror(rc));
}

/* Common checks on the phase's report. */
static void check_report(const struct plan *pl, const struct report *rep, const signed char *baseline_seq)
{
    if (pl->k > 0) {
        case_note(" [%s%s]", rep->first_op >= 0 ? op_name[rep->first_op] : "-",
                  rep->first_op >= 0 && (rep->first_flags & F_CREAT) ? " O_CREAT" : "");
        CHECK(rep->fired > 0,
              "the %ld-th %s-able operation never happened (the baseline saw %s there): the "
              "phase is not deterministic",
              pl->k, kind_name[pl->kind],
              baseline_seq && pl->k <= SEQ_MAX && baseline_seq[pl->k - 1] >= 0 ? op_name[baseline_seq[pl->k - 1]]
                                                                               : "?");
        if (rep->fired > 0 && baseline_seq && pl->k <= SEQ_MAX && baseline_seq[pl->k - 1] >= 0)
            CHECK(rep->first_op == baseline_seq[pl->k - 1],
                  "injected into %s, but the baseline's operation %ld was %s: the phase is not deterministic",
                  op_name[rep->first_op], pl->k, op_name[baseline_seq[pl->k - 1]]);
    }
    CHECK(!rep->spun, "more than %d injected failures in one phase: a retry loop spins on %s", SPIN_LIMIT,
          rep->first_op >= 0 ? op_name[rep->first_op] : "?");
}

/* What the checks below need to know about the injected failure. */
struct hitinfo {
    bool fired;
    enum kind kind;
    int persistent;
    int op;
    bool write_op; /* an operation whose failure must not be swallowed */
    bool hard;     /* EIO, ENOSPC or EIO-late on such an operation */
    bool benign;   /* SHORT, or EINTR on pread/pwrite: a retry absorbs it */
};

static struct hitinfo hit_of(const struct plan *pl, const struct report *rep)
{
    struct hitinfo h = {.fired = rep->fired > 0, .kind = pl->kind, .persistent = pl->persistent, .op = rep->first_op};
    if (!h.fired)
        return h;
    h.write_op = write_class(rep->first_op, rep->first_flags);
    h.hard = h.write_op && (pl->kind == K_EIO || pl->kind == K_ENOSPC || pl->kind == K_EIO_LATE);
    /* Benign only if every call interrupted was a read or write (a
     * persistent EINTR storm also reaches fdatasync, which may fail). */
    h.benign =
        pl->kind == K_SHORT || (pl->kind == K_EINTR && (rep->hit_ops & ~((1u << OP_PWRITE) | (1u << OP_PREAD))) == 0);
    return h;
}

static bool error_code(int rc)
{
    return rc > 0 || rc == CAIRN_IOERR || rc == CAIRN_FULL;
}

/* ------------------------------------------------------------------ */
/* Phase: commit                                                       */
/* ------------------------------------------------------------------ */

struct commit_scen {
    const char *name;
    int sync;
    bool log_holds;   /* the log holds committed transactions when C commits */
    bool abort_close; /* after a failure: no retry; abort, close, reopen */
};

static const signed char *g_baseline_seq; /* the baseline's sequence for the kind being injected */
static const signed char *g_baseline_all; /* and of all operations */

static void run_commit(const void *arg, const struct plan *pl, struct report *rep_out)
{
    const struct commit_scen *sc = arg;
    const struct hist B = hist_of(3, 1ull, 2ull, 3ull), BC = hist_plus(B, 4);
    char *dir = tu_tempdir();
    cairn_store *s = NULL;
    struct types ty;
    cairn_txn *t = NULL;
    int rc = open_store(dir, sc->sync, &s, &ty);
    if (!CHECK(rc == 0, "setup: open: %d (%s)", rc, cairn_strerror(rc)))
        goto out;
    if (!build_base(s, &ty, sc->log_holds))
        goto out_close;
    rc = cairn_txn_begin(s, &t);
    if (!CHECK(rc == 0, "setup: begin: %d", rc))
        goto out_close;
    rc = mutate(s, t, &ty, 4);
    if (!CHECK(rc == 0, "setup: changes: %d", rc)) {
        cairn_txn_abort(t);
        goto out_close;
    }

    /* The phase: the commit, and at once a retry if it failed. */
    phase_begin(pl);
    int rc1 = cairn_txn_commit(t), rc2 = INT_MIN;
    char first_msg[512];
    snprintf(first_msg, sizeof first_msg, "%s", cairn_errmsg(s));
    if (rc1 != 0 && !sc->abort_close)
        rc2 = cairn_txn_commit(t);
    struct report rep = phase_end();
    *rep_out = rep;
    check_report(pl, &rep, g_baseline_seq);
    struct hitinfo h = hit_of(pl, &rep);

    CHECK(rc1 == 0 || rc1 == CAIRN_IOERR || rc1 == CAIRN_FULL,
          "commit returned %d (%s); documented: CAIRN_OK, CAIRN_IOERR, CAIRN_FULL", rc1, cairn_strerror(rc1));
    if (!h.fired)
        CHECK(rc1 == 0, "commit without injection returned %d (%s)", rc1, cairn_strerror(rc1));
    if (h.hard)
        CHECK(rc1 != 0, "commit returned CAIRN_OK although %s failed with %s", op_name[h.op], kind_name[h.kind]);
    /* ENOSPC from the log write is CAIRN_FULL.  From fdatasync it may also be
     * the sticky CAIRN_IOERR (writeback failed: the fsync argument applies);
     * if it is CAIRN_FULL, the transaction must never reappear (below). */
    if (h.fired && h.kind == K_ENOSPC && h.op == OP_PWRITE)
        CHECK(rc1 == CAIRN_FULL, "ENOSPC on %s: commit returned %d (%s), want CAIRN_FULL", op_name[h.op], rc1,
              cairn_strerror(rc1));
    if (h.fired && h.kind == K_ENOSPC && h.op != OP_PWRITE)
        CHECK(rc1 == CAIRN_FULL || rc1 == CAIRN_IOERR,
              "ENOSPC on %s: commit returned %d (%s), want CAIRN_FULL or "
              "CAIRN_IOERR",
              op_name[h.op], rc1, cairn_strerror(rc1));
    if (h.fired && (h.kind == K_EIO || h.kind == K_EIO_LATE))
        CHECK(rc1 == CAIRN_IOERR, "%s on %s: commit returned %d (%s), want CAIRN_IOERR", kind_name[h.kind],
              op_name[h.op], rc1, cairn_strerror(rc1));
    if (h.benign)
        CHECK(rc1 == 0, "%s on %s (a retry absorbs it): commit returned %d (%s)", kind_name[h.kind], op_name[h.op], rc1,
              cairn_strerror(rc1));
    if (h.fired && h.kind == K_EINTR && !h.benign)
        CHECK(rc1 == 0 || rc1 == CAIRN_IOERR, "EINTR on %s: commit returned %d (%s)", op_name[h.op], rc1,
              cairn_strerror(rc1));
    if (rc1 == CAIRN_IOERR && !sc->abort_close) {
        CHECK(rc2 == CAIRN_IOERR, "sticky failure: the retried commit returned %d (%s), want CAIRN_IOERR", rc2,
              cairn_strerror(rc2));
        /* The first cause stays the store's message (store_fail). */
        CHECK(strcmp(cairn_errmsg(s), first_msg) == 0,
              "sticky failure: the retried commit says \"%s\", the failure was \"%s\"", cairn_errmsg(s), first_msg);
    }
    if (rc1 == CAIRN_IOERR)
        CHECK(cairn_errmsg(s)[0] != 0, "CAIRN_IOERR without a cairn_errmsg");
    if (rc1 == CAIRN_FULL && !sc->abort_close) {
        if (pl->persistent)
            CHECK(rc2 == CAIRN_FULL, "disk still full: the retried commit returned %d (%s), want CAIRN_FULL", rc2,
                  cairn_strerror(rc2));
        else
            CHECK(rc2 == 0, "after a transient ENOSPC the retried commit returned %d (%s), want CAIRN_OK", rc2,
                  cairn_strerror(rc2));
    }
    bool committed = rc1 == 0 || rc2 == 0;
    bool sticky = rc1 == CAIRN_IOERR || rc2 == CAIRN_IOERR;
    struct hist cur = committed ? BC : B;
    /* After CAIRN_IOERR the outcome is unknown (the batch may be in the
     * file); after CAIRN_FULL it must be "not committed". */
    struct hist failed_cands[2] = {B, BC};
    int nfailed = sticky ? 2 : 1;

    if (committed) {
        t = NULL;
        expect_state(s, &cur, 1, true, "in memory after the commit returned OK");
        crash_check(dir, &cur, 1, "after the commit returned OK");
    } else {
        crash_check(dir, failed_cands, nfailed, "after the failed commit (transaction still open)");
        cairn_txn_abort(t);
        t = NULL;
        /* A commit whose log sync failed has released its pages already
         * (group commit): its bytes stay in memory in a failed store, and
         * only a failed fdatasync may leave them there. */
        bool sync_failed = sticky && (rep.hit_ops & (1u << OP_FDATASYNC));
        expect_state(s, failed_cands, sync_failed ? 2 : 1, true, "in memory after aborting the failed commit");
        crash_check(dir, failed_cands, nfailed, "after aborting the failed commit");
    }
    if (sc->abort_close && !committed) {
        /* The caller gives up after the failure: abort (done), close. */
    } else if (sticky) {
        rc = cairn_txn_begin(s, &t);
        if (rc == 0) {
            rc = mutate(s, t, &ty, 5);
            CHECK(rc == 0, "changes after IOERR: %d", rc);
            rc = cairn_txn_commit(t);
            CHECK(rc == CAIRN_IOERR, "sticky failure: a later commit returned %d (%s), want CAIRN_IOERR", rc,
                  cairn_strerror(rc));
            if (rc == 0)
                cur = hist_plus(cur, 5);
            else
                cairn_txn_abort(t);
            t = NULL;
        } else {
            CHECK(rc == CAIRN_IOERR, "begin after IOERR returned %d (%s)", rc, cairn_strerror(rc));
        }
        rc = cairn_checkpoint(s);
        CHECK(rc == CAIRN_IOERR, "sticky failure: checkpoint returned %d (%s), want CAIRN_IOERR", rc,
              cairn_strerror(rc));
    } else {
        if (commit_tag(s, &ty, 5)) {
            cur = hist_plus(cur, 5);
            crash_check(dir, &cur, 1, "after the next commit");
        }
    }
    rc = cairn_close(s);
    s = NULL;
    CHECK(rc == 0, "close: %d (%s)", rc, cairn_strerror(rc));
    if (sticky && cur.n == B.n)
        reopen_and_use(dir, sc->sync, failed_cands, 2, 6);
    else
        reopen_and_use(dir, sc->sync, &cur, 1, 6);
    goto out;
out_close:
    cairn_close(s);
out:
    tu_rmdir(dir);
}

/* ------------------------------------------------------------------ */
/* Phase: checkpoint (and close, which checkpoints)                    */
/* ------------------------------------------------------------------ */

struct ckpt_scen {
    const char *name;
    bool txn_open;   /* a transaction with uncommitted changes is open during the phase */
    bool grow_fails; /* growing the LMDB map fails */
    unsigned kinds;  /* fault kinds to run (bit per kind); 0 = all */
};

static void check_ckpt_rc(int rc, const struct hitinfo *h, const char *what, bool grow_fails)
{
    CHECK(rc == 0 || error_code(rc), "%s returned %d (%s): not an I/O error code", what, rc, cairn_strerror(rc));
    if (!h->fired)
        CHECK(rc == 0, "%s without injection returned %d (%s)", what, rc, cairn_strerror(rc));
    if (h->hard)
        CHECK(rc != 0, "%s returned CAIRN_OK although %s failed with %s", what, op_name[h->op], kind_name[h->kind]);
    if (h->fired && is_mdb(h->op) && h->kind == K_ENOSPC)
        CHECK(rc == CAIRN_FULL, "ENOSPC from %s: %s returned %d (%s), want CAIRN_FULL", op_name[h->op], what, rc,
              cairn_strerror(rc));
    if (h->fired && is_mdb(h->op) && (h->kind == K_EIO || h->kind == K_EIO_LATE))
        CHECK(rc == CAIRN_IOERR, "%s from %s: %s returned %d (%s), want CAIRN_IOERR (sticky)", kind_name[h->kind],
              op_name[h->op], what, rc, cairn_strerror(rc));
    if (h->fired && h->kind == K_MAPFULL && grow_fails) {
        /* The store probes the address space before growing; this case
         * makes LMDB's own remap fail after the probe, which leaves its
         * environment without a map: the store must stop (sticky IOERR)
         * rather than touch it again. */
        CHECK(rc == CAIRN_IOERR, "map lost while growing: %s returned %d (%s), want CAIRN_IOERR", what, rc,
              cairn_strerror(rc));
    } else if (h->fired && h->kind == K_MAPFULL) {
        if (h->persistent)
            CHECK(rc == CAIRN_FULL, "map full for good: %s returned %d (%s), want CAIRN_FULL", what, rc,
                  cairn_strerror(rc));
        else
            CHECK(rc == 0, "one MDB_MAP_FULL (the map grows and the write is retried): %s returned %d (%s)", what, rc,
                  cairn_strerror(rc));
    }
    if (h->benign)
        CHECK(rc == 0, "%s on %s (a retry absorbs it): %s returned %d (%s)", kind_name[h->kind], op_name[h->op], what,
              rc, cairn_strerror(rc));
}

static void run_checkpoint(const void *arg, const struct plan *pl, struct report *rep_out)
{
    const struct ckpt_scen *sc = arg;
    const struct hist H = hist_of(3, 1ull, 2ull, 3ull), H4 = hist_plus(H, 4);
    char *dir = tu_tempdir();
    cairn_store *s = NULL;
    struct types ty;
    cairn_txn *t = NULL;
    int rc = open_store(dir, CAIRN_SYNC_FULL, &s, &ty);
    if (!CHECK(rc == 0, "setup: open: %d (%s)", rc, cairn_strerror(rc)))
        goto out;
    if (!build_base(s, &ty, true))
        goto out_close;
    if (sc->txn_open) {
        rc = cairn_txn_begin(s, &t);
        if (!CHECK(rc == 0, "setup: begin: %d", rc))
            goto out_close;
        rc = mutate(s, t, &ty, 4);
        if (!CHECK(rc == 0, "setup: changes: %d", rc))
            goto out_close;
    }

    struct plan p2 = *pl;
    p2.grow_fails = sc->grow_fails;
    phase_begin(&p2);
    rc = cairn_checkpoint(s);
    struct report rep = phase_end();
    *rep_out = rep;
    check_report(pl, &rep, g_baseline_seq);
    struct hitinfo h = hit_of(pl, &rep);
    check_ckpt_rc(rc, &h, "checkpoint", sc->grow_fails);
    if (sc->grow_fails && h.fired && h.kind == K_MAPFULL)
        CHECK(rep.grow_failed > 0, "MDB_MAP_FULL did not lead to growing the map");
    bool sticky = rc == CAIRN_IOERR;
    if (sticky)
        CHECK(cairn_errmsg(s)[0] != 0, "CAIRN_IOERR without a cairn_errmsg");
    if (sticky && sc->grow_fails) {
        /* LMDB is gone for this handle: no page may be loaded any more, so
         * only the files and a reopen can be checked. */
        crash_check(dir, &H, 1, "after losing the map");
        if (t)
            cairn_txn_abort(t);
        t = NULL;
        rc = cairn_checkpoint(s);
        CHECK(rc == CAIRN_IOERR, "sticky: checkpoint again returned %d (%s)", rc, cairn_strerror(rc));
        cairn_close(s);
        s = NULL;
        reopen_and_use(dir, CAIRN_SYNC_FULL, &H, 1, 6);
        goto out;
    }

    /* Memory: the committed state, plus the open transaction's changes. */
    expect_state(s, sc->txn_open ? &H4 : &H, 1, false, "in memory after the checkpoint call");
    crash_check(dir, &H, 1, "after the checkpoint call");
    struct hist final = H;
    if (sticky) {
        rc = cairn_checkpoint(s);
        CHECK(rc == CAIRN_IOERR, "sticky failure: checkpoint again returned %d (%s), want CAIRN_IOERR", rc,
              cairn_strerror(rc));
        if (!t) {
            rc = cairn_txn_begin(s, &t);
            if (rc == 0)
                CHECK(mutate(s, t, &ty, 4) == 0, "changes after IOERR failed");
            else
                CHECK(rc == CAIRN_IOERR, "begin after a failed checkpoint returned %d (%s)", rc, cairn_strerror(rc));
        }
        if (t) {
            rc = cairn_txn_commit(t);
            CHECK(rc == CAIRN_IOERR, "sticky failure: commit after the failed checkpoint returned %d (%s)", rc,
                  cairn_strerror(rc));
            if (rc == 0)
                final = H4;
            else
                cairn_txn_abort(t);
            t = NULL;
        }
    } else {
        if (!t) {
            rc = cairn_txn_begin(s, &t);
            if (CHECK(rc == 0, "begin after the checkpoint: %d (%s)", rc, cairn_strerror(rc)))
                CHECK(mutate(s, t, &ty, 4) == 0, "changes after the checkpoint failed");
        }
        if (t) {
            rc = cairn_txn_commit(t);
            if (CHECK(rc == 0, "commit after the checkpoint returned %d (%s); the store should be usable", rc,
                      cairn_strerror(rc))) {
                final = H4;
                crash_check(dir, &final, 1, "after a commit that followed the checkpoint");
            } else {
                cairn_txn_abort(t);
            }
            t = NULL;
        }
        rc = cairn_checkpoint(s);
        CHECK(rc == 0, "checkpoint again, without injection: %d (%s)", rc, cairn_strerror(rc));
        crash_check(dir, &final, 1, "after another checkpoint");
    }
    expect_state(s, &final, 1, true, "in memory at the end");
    rc = cairn_close(s);
    s = NULL;
    CHECK(rc == 0, "close: %d (%s)", rc, cairn_strerror(rc));
    reopen_and_use(dir, CAIRN_SYNC_FULL, &final, 1, 6);
    goto out;
out_close:
    if (t)
        cairn_txn_abort(t);
    cairn_close(s);
out:
    tu_rmdir(dir);
}

static void run_close(const void *arg, const struct plan *pl, struct report *rep_out)
{
    const struct ckpt_scen *sc = arg;
    const struct hist H = hist_of(3, 1ull, 2ull, 3ull);
    char *dir = tu_tempdir();
    cairn_store *s = NULL;
    struct types ty;
    cairn_txn *t = NULL;
    int rc = open_store(dir, CAIRN_SYNC_FULL, &s, &ty);
    if (!CHECK(rc == 0, "setup: open: %d (%s)", rc, cairn_strerror(rc)))
        goto out;
    if (!build_base(s, &ty, true)) {
        cairn_close(s);
        goto out;
    }
    if (sc->txn_open) {
        rc = cairn_txn_begin(s, &t);
        if (CHECK(rc == 0, "setup: begin: %d", rc))
            CHECK(mutate(s, t, &ty, 4) == 0, "setup: changes failed");
    }

    /* The phase: close aborts the open transaction, checkpoints, frees. */
    phase_begin(pl);
    rc = cairn_close(s);
    struct report rep = phase_end();
    *rep_out = rep;
    check_report(pl, &rep, g_baseline_seq);
    struct hitinfo h = hit_of(pl, &rep);
    check_ckpt_rc(rc, &h, "close", false);
    crash_check(dir, &H, 1, "after the close");
    reopen_and_use(dir, CAIRN_SYNC_FULL, &H, 1, 5);
out:
    tu_rmdir(dir);
}

/* ------------------------------------------------------------------ */
/* Phase: type registration (its own LMDB transaction)                 */
/* ------------------------------------------------------------------ */

struct extra {
    uint64_t v;
    struct extra *next;
};

static int register_extra(cairn_store *s, cairn_type *id)
{
    size_t ptrs[] = {offsetof(struct extra, next)};
    return cairn_type_register(s, "extra", sizeof(struct extra), ptrs, 1, id);
}

static int register_other(cairn_store *s, cairn_type *id)
{
    return cairn_type_register(s, "other", 24, NULL, 0, id);
}

static void run_register(const void *arg, const struct plan *pl, struct report *rep_out)
{
    (void)arg;
    const struct hist H1 = hist_of(1, 1ull), H2 = hist_plus(H1, 2);
    char *dir = tu_tempdir();
    cairn_store *s = NULL;
    struct types ty;
    cairn_type extra = 0, other = 0, e2, o2;
    int rc = open_store(dir, CAIRN_SYNC_FULL, &s, &ty);
    if (!CHECK(rc == 0, "setup: open: %d (%s)", rc, cairn_strerror(rc)))
        goto out;
    if (!commit_tag(s, &ty, 1)) {
        cairn_close(s);
        goto out;
    }

    phase_begin(pl);
    rc = register_extra(s, &extra);
    struct report rep = phase_end();
    *rep_out = rep;
    check_report(pl, &rep, g_baseline_seq);
    struct hitinfo h = hit_of(pl, &rep);
    CHECK(rc == 0 || error_code(rc), "type_register returned %d (%s): not an I/O error code", rc, cairn_strerror(rc));
    if (!h.fired)
        CHECK(rc == 0, "type_register without injection returned %d (%s)", rc, cairn_strerror(rc));
    if (h.hard)
        CHECK(rc != 0, "type_register returned CAIRN_OK although %s failed with %s", op_name[h.op], kind_name[h.kind]);
    if (h.fired && h.kind == K_MAPFULL && !h.persistent)
        CHECK(rc == 0, "one MDB_MAP_FULL (the map grows and the write is retried): type_register returned %d (%s)", rc,
              cairn_strerror(rc));

    /* Without injection: registration works again (it is not covered by
     * the sticky policy), ids stay distinct, the types can be used. */
    rc = register_other(s, &other);
    CHECK(rc == 0, "registering another type after the failure: %d (%s)", rc, cairn_strerror(rc));
    cairn_type first = extra;
    rc = register_extra(s, &extra);
    CHECK(rc == 0, "registering the type again after the failure: %d (%s)", rc, cairn_strerror(rc));
    if (first && rc == 0)
        CHECK(extra == first, "the type changed id: %u, then %u", first, extra);
    if (extra && other)
        CHECK(extra != other, "two types got the same id %u", extra);
    cairn_txn *t;
    rc = cairn_txn_begin(s, &t);
    if (CHECK(rc == 0, "begin: %d", rc)) {
        rc = mutate(s, t, &ty, 2);
        struct extra *x = NULL;
        void *o = NULL;
        if (rc == 0 && extra)
            rc = cairn_alloc(t, extra, 2, (void **)&x);
        if (rc == 0 && other)
            rc = cairn_alloc(t, other, 1, &o);
        if (rc == 0 && x) {
            x[0].v = 11, x[0].next = &x[1], x[1].v = 12;
            rc = cairn_root_set(t, "extra", x);
        }
        if (CHECK(rc == 0, "changes using the types: %d (%s)", rc, cairn_strerror(rc)))
            rc = cairn_txn_commit(t);
        if (!CHECK(rc == 0, "commit using the types: %d (%s)", rc, cairn_strerror(rc)))
            cairn_txn_abort(t);
    }
    rc = cairn_close(s);
    CHECK(rc == 0, "close: %d (%s)", rc, cairn_strerror(rc));
    rc = open_store(dir, CAIRN_SYNC_FULL, &s, &ty);
    if (!CHECK(rc == 0, "reopen: %d (%s)", rc, cairn_strerror(rc)))
        goto out;
    expect_state(s, &H2, 1, true, "after reopen");
    rc = register_extra(s, &e2);
    CHECK(rc == 0 && e2 == extra, "after reopen, \"extra\" registers as %d/%u, was %u", rc, e2, extra);
    rc = register_other(s, &o2);
    CHECK(rc == 0 && o2 == other, "after reopen, \"other\" registers as %d/%u, was %u", rc, o2, other);
    rc = cairn_close(s);
    CHECK(rc == 0, "close: %d (%s)", rc, cairn_strerror(rc));
out:
    tu_rmdir(dir);
}

/* ------------------------------------------------------------------ */
/* Phase: open (recovery, creation)                                    */
/* ------------------------------------------------------------------ */

struct open_scen {
    const char *name;
    int variant; /* 0: log holds 2 txns; 1: torn tail; 2: checkpointed, log not reset; 3: new store */
    char *template_dir;
    struct hist expect;
};

static void check_open_rc(int rc, cairn_store *s, cairn_store *sentinel, const struct hitinfo *h, bool map_grows)
{
    if (rc == 0)
        CHECK(s && s != sentinel, "open returned OK without a store");
    else
        CHECK(s == sentinel, "open failed (%d) but wrote *out", rc);
    CHECK(rc == 0 || error_code(rc),
          "open returned %d (%s) for an injected %s on %s: an I/O error must come back as an errno value, "
          "CAIRN_IOERR or CAIRN_FULL, not as a damaged store",
          rc, cairn_strerror(rc), h->fired ? kind_name[h->kind] : "-", h->fired ? op_name[h->op] : "-");
    if (!h->fired)
        CHECK(rc == 0, "open without injection returned %d (%s)", rc, cairn_strerror(rc));
    if (h->hard)
        CHECK(rc != 0, "open returned CAIRN_OK although %s failed with %s", op_name[h->op], kind_name[h->kind]);
    if (h->benign)
        CHECK(rc == 0, "%s on %s (a retry absorbs it): open returned %d (%s)", kind_name[h->kind], op_name[h->op], rc,
              cairn_strerror(rc));
    if (h->fired && h->kind == K_MAPFULL && !h->persistent && map_grows)
        CHECK(rc == 0, "one MDB_MAP_FULL (the map grows and the write is retried): open returned %d (%s)", rc,
              cairn_strerror(rc));
}

/* Is the first injection inside a catalog transaction at open (up to its
 * mdb_txn_commit)?  Those do not grow the map on MDB_MAP_FULL: a catalog of
 * a few hundred bytes cannot fill a map of at least 1 GiB, so CAIRN_FULL is
 * accepted there; recovery's LMDB transaction does grow it.  Opening an
 * existing store commits twice before recovery (the read transaction that
 * makes the databases' handles the environment's, then the catalog read);
 * creating one once more before those (the new catalog in the staging
 * environment). */
static bool in_catalog_txn(const struct report *rep, int catalog_commits)
{
    if (!g_baseline_all || rep->first_index <= 0)
        return false;
    for (long i = 0, seen = 0; i < SEQ_MAX && g_baseline_all[i] >= 0; i++)
        if (g_baseline_all[i] == OP_MDB_TXN_COMMIT && ++seen == catalog_commits)
            return rep->first_index <= i + 1;
    return false;
}

static void run_open(const void *arg, const struct plan *pl, struct report *rep_out)
{
    const struct open_scen *sc = arg;
    char *top = tu_tempdir();
    char dir[PATH_MAX];
    if (sc->variant == 3) {
        snprintf(dir, sizeof dir, "%s/store", top); /* missing: open creates it */
    } else {
        snprintf(dir, sizeof dir, "%s", top);
        int rc = copy_file(sc->template_dir, dir, "data.mdb");
        if (rc == 0)
            rc = copy_file(sc->template_dir, dir, "wal");
        if (!CHECK(rc == 0, "setup: copy template: %s", strerror(rc)))
            goto out;
    }
    cairn_options o;
    tu_options(&o);
    static char sentinel_mem[16]; /* never dereferenced; only its address */
    cairn_store *sentinel = (cairn_store *)(void *)sentinel_mem, *s = sentinel;

    phase_begin(pl);
    int rc = cairn_open(dir, &o, &s);
    struct report rep = phase_end();
    *rep_out = rep;
    check_report(pl, &rep, g_baseline_seq);
    struct hitinfo h = hit_of(pl, &rep);
    check_open_rc(rc, s, sentinel, &h, !in_catalog_txn(&rep, sc->variant == 3 ? 3 : 2));
    if (rc == 0 && s && s != sentinel) {
        struct types ty;
        int r2 = register_types(s, &ty);
        CHECK(r2 == 0, "register types: %d (%s)", r2, cairn_strerror(r2));
        expect_state(s, &sc->expect, 1, true, "right after the open");
        r2 = cairn_close(s);
        CHECK(r2 == 0, "close: %d (%s)", r2, cairn_strerror(r2));
    }
    reopen_and_use(dir, CAIRN_SYNC_FULL, &sc->expect, 1, 7);
out:
    tu_rmdir(top);
}

static bool build_template(struct open_scen *sc)
{
    sc->template_dir = NULL;
    if (sc->variant == 3) {
        sc->expect = hist_of(0);
        return true;
    }
    char *dir = tu_tempdir();
    cairn_store *s;
    struct types ty;
    int rc = open_store(dir, CAIRN_SYNC_FULL, &s, &ty);
    if (!CHECK(rc == 0, "template: open: %d (%s)", rc, cairn_strerror(rc))) {
        tu_rmdir(dir);
        return false;
    }
    bool ok = build_base(s, &ty, true);
    sc->expect = hist_of(3, 1ull, 2ull, 3ull);
    if (ok && sc->variant == 2) {
        /* LMDB gets everything, but the log reset fails: its records are
         * all at or below the checkpoint LSN. */
        struct plan pl = {.kind = K_EIO, .k = 1, .op_mask = 1u << OP_OPENAT};
        phase_begin(&pl);
        rc = cairn_checkpoint(s);
        struct report rep = phase_end();
        ok = CHECK(rep.fired == 1 && rc != 0, "template: failing the log reset did not work (rc %d, fired %ld)", rc,
                   rep.fired);
    }
    if (ok) {
        sc->template_dir = snapshot(dir);
        ok = sc->template_dir != NULL;
    }
    cairn_close(s);
    tu_rmdir(dir);
    if (ok && sc->variant == 1) {
        /* Tear the last transaction's commit record. */
        char path[PATH_MAX];
        size_t end = tu_log_end(sc->template_dir); /* the records, before the zeros ahead */
        snprintf(path, sizeof path, "%s/wal", sc->template_dir);
        ok = CHECK(end > 64 + 64 && truncate(path, (off_t)end - 12) == 0, "template: tearing the log failed");
        sc->expect = hist_of(2, 1ull, 2ull);
    }
    return ok;
}

/* ------------------------------------------------------------------ */
/* The driver                                                          */
/* ------------------------------------------------------------------ */

typedef void (*case_fn)(const void *scen, const struct plan *pl, struct report *rep);

struct tally {
    long cases[K_N][2], failed[K_N][2];
    long baseline_failed;
};

static bool selected(const char *name)
{
    return !filter || strstr(name, filter);
}

/*
 * Every case runs in a forked child, so that a crash or a hang is reported
 * as that case's failure and the other cases still run, and so that the
 * sanitizers judge each case alone: the child leaves with exit(), which
 * runs LeakSanitizer's check (ASan builds; exit status 23 on a leak) and
 * makes ThreadSanitizer exit with 66 if it reported anything.  The parent
 * holds no store open when it forks, so it is single-threaded then.
 */
struct shared_result {
    int done, failures;
    struct report rep;
};
static struct shared_result *shm;
static struct sigaction orig_segv, orig_bus; /* before cmocka installed its handlers */

#define CASE_TIMEOUT_S 120

static void child_main(case_fn fn, const void *scen, const struct plan *pl, const char *case_dir)
{
    /* Everything the case creates goes under case_dir, which the parent
     * removes even if the case crashed: out of the test's scratch
     * directory (the parent's to remove), and into case_dir. */
    tu_scratch_end();
    setenv("TMPDIR", case_dir, 1);
    /* A crash must kill the child, not be caught by cmocka's handler (the
     * library chains to whatever handler it finds when a store opens). */
    sigaction(SIGSEGV, &orig_segv, NULL);
    sigaction(SIGBUS, &orig_bus, NULL);
    signal(SIGABRT, SIG_DFL);
    signal(SIGILL, SIG_DFL);
    signal(SIGFPE, SIG_DFL);
    int fds0 = count_fds();
    fn(scen, pl, &shm->rep);
    int fds = count_fds();
    CHECK(fds == fds0, "%d file descriptors open after the case, %d before: a descriptor leaked", fds, fds0);
    shm->failures = cur_case.failures;
    shm->done = 1;
    fflush(stdout);
    fflush(stderr);
    exit(0);
}

/* Run one case; false if it failed. */
static bool run_case(case_fn fn, const void *scen, const struct plan *pl, struct report *rep)
{
    memset(shm, 0, sizeof *shm);
    fflush(stdout);
    fflush(stderr);
    char *case_dir = NULL;
    if (nofork) { /* for debuggers: no isolation */
        fn(scen, pl, &shm->rep);
        goto out;
    }
    case_dir = tu_tempdir();
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0)
        child_main(fn, scen, pl, case_dir);
    int status = 0;
    struct timespec nap = {0, 200000};
    long waited_us = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            fail_msg("waitpid: %s", strerror(errno));
        if (waited_us > (long)CASE_TIMEOUT_S * 1000000) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            cur_case.failures = shm->failures;
            CHECK(false, "the case did not finish in %d s (hang or spinning retry loop); killed", CASE_TIMEOUT_S);
            goto out;
        }
        nanosleep(&nap, NULL);
        waited_us += 200;
    }
    cur_case.failures = shm->failures;
    if (pl->k > 0 && shm->rep.first_op >= 0)
        case_note(" [%s]", op_name[shm->rep.first_op]);
    if (WIFSIGNALED(status))
        CHECK(false, "the case crashed: signal %d (%s)%s", WTERMSIG(status), strsignal(WTERMSIG(status)),
              shm->done ? " after it finished (at exit)" : "");
    else if (WEXITSTATUS(status) != 0)
        CHECK(false,
              "the case's process exited with status %d: a sanitizer reported (see above: LeakSanitizer "
              "or AddressSanitizer exit with 1, ThreadSanitizer with 66)",
              WEXITSTATUS(status));
    else if (!shm->done)
        CHECK(false, "the case's process exited without finishing");
out:
    tu_rmdir(case_dir);
    if (rep)
        memcpy(rep, &shm->rep, sizeof *rep);
    if (verbose)
        printf("[%s] %s\n", cur_case.failures ? "FAIL" : " ok ", cur_case.name);
    if (cur_case.failures)
        printed_in_phase++;
    return cur_case.failures == 0;
}

static void drive(const char *phase, const char *scen_name, const void *scen, case_fn fn, struct tally *t,
                  unsigned kinds)
{
    static struct report base; /* large: keep it off the stack */
    char prefix[96];
    snprintf(prefix, sizeof prefix, "%s/%s", phase, scen_name);

    /* Baseline: no injection, count the operations. */
    struct plan pl = {.kind = K_EIO, .k = 0};
    case_start("%s baseline (no injection)", prefix);
    g_baseline_seq = g_baseline_all = NULL;
    memset(&base, 0, sizeof base);
    if (!run_case(fn, scen, &pl, &base))
        t->baseline_failed++;
    if (base.seen[K_EIO] == 0) {
        printf("[FAIL] %s: no wrapped operation seen in the phase: is --wrap in effect?\n", prefix);
        t->baseline_failed++;
        return;
    }

    printf("%s: operations in the phase:", prefix);
    for (long i = 0; i < base.seen[K_EIO] && i < SEQ_MAX; i++)
        printf(" %s", op_name[base.seq[K_EIO][i]]);
    printf("\n%s: applicable per kind:", prefix);
    for (int k = 0; k < K_N; k++)
        printf(" %s %ld", kind_name[k], base.seen[k]);
    printf("\n");
    fflush(stdout);

    for (int k = 0; k < K_N; k++) {
        long n = base.seen[k] < SEQ_MAX ? base.seen[k] : SEQ_MAX;
        if (kinds && !(kinds & (1u << k)))
            continue;
        for (int persistent = 0; persistent < 2; persistent++) {
            for (long i = 1; i <= n; i++) {
                char name[256];
                snprintf(name, sizeof name, "%s %s k=%ld/%ld %s", prefix, kind_name[k], i, n,
                         persistent ? "persistent" : "once");
                if (!selected(name))
                    continue;
                case_start("%s", name);
                pl = (struct plan){.kind = (enum kind)k, .k = i, .persistent = persistent};
                g_baseline_seq = base.seq[k];
                g_baseline_all = base.seq[K_EIO];
                t->cases[k][persistent]++;
                if (!run_case(fn, scen, &pl, NULL))
                    t->failed[k][persistent]++;
            }
        }
    }
    g_baseline_seq = g_baseline_all = NULL;
}

static long grand_cases, grand_failed;

static void summarize(const char *phase, const struct tally *t)
{
    long cases = 0, failed = 0;
    printf("== %s: injected-error cases per kind (once / persistent), failed in parentheses\n", phase);
    for (int k = 0; k < K_N; k++) {
        printf("   %-9s %4ld (%ld) / %4ld (%ld)%s\n", kind_name[k], t->cases[k][0], t->failed[k][0], t->cases[k][1],
               t->failed[k][1],
               t->cases[k][0] + t->cases[k][1] || filter ? "" : "   n/a: no operation of this phase fails so");
        cases += t->cases[k][0] + t->cases[k][1];
        failed += t->failed[k][0] + t->failed[k][1];
    }
    printf("   total %ld cases, %ld failed; baselines failed: %ld\n", cases, failed, t->baseline_failed);
    fflush(stdout);
    grand_cases += cases;
    grand_failed += failed;
    if (failed || t->baseline_failed)
        fail_msg("%s: %ld of %ld injected-error cases failed, %ld baselines failed (see [FAIL] lines above)", phase,
                 failed, cases, t->baseline_failed);
    if (!filter && cases == 0)
        fail_msg("%s: no case ran", phase);
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */

/* The wrapping reaches the library's I/O (if the library moves to other
 * calls, this fails instead of the injection silently missing them). */
static void wrapping_reaches_library_io(void **state)
{
    const char *dir = *state;
    cairn_store *s;
    struct types ty;
    struct plan count = {.kind = K_EIO, .k = 0};
    phase_begin(&count);
    assert_cairn_ok(open_store(dir, CAIRN_SYNC_FULL, &s, &ty));
    struct report r = phase_end();
    assert_true(r.ops[OP_OPENAT] > 0 && r.ops[OP_PWRITE] > 0 && r.ops[OP_FDATASYNC] > 0 && r.ops[OP_FSYNC] > 0 &&
                r.ops[OP_RENAMEAT] > 0 && r.ops[OP_MDB_ENV_OPEN] > 0 && r.ops[OP_MDB_TXN_BEGIN] > 0 &&
                r.ops[OP_MDB_PUT] > 0 && r.ops[OP_MDB_TXN_COMMIT] > 0 && r.ops[OP_MDB_DBI_OPEN] > 0);
    assert_true(commit_tag(s, &ty, 1));
    assert_cairn_ok(cairn_checkpoint(s));
    cairn_txn *t;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(mutate(s, t, &ty, 2));
    phase_begin(&count);
    assert_cairn_ok(cairn_txn_commit(t));
    r = phase_end();
    assert_true(r.ops[OP_PWRITE] >= 1);
    assert_int_equal(r.ops[OP_FDATASYNC], 1);
    phase_begin(&count);
    assert_cairn_ok(cairn_checkpoint(s));
    r = phase_end();
    assert_true(r.ops[OP_MDB_TXN_BEGIN] >= 1 && r.ops[OP_MDB_PUT] >= 2 && r.ops[OP_MDB_TXN_COMMIT] >= 1 &&
                r.ops[OP_OPENAT] >= 1 && r.ops[OP_RENAMEAT] == 1 && r.ops[OP_FSYNC] >= 1);
    assert_cairn_ok(cairn_close(s));
    /* And an injected failure reaches the caller. */
    assert_cairn_ok(open_store(dir, CAIRN_SYNC_FULL, &s, &ty));
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(mutate(s, t, &ty, 3));
    struct plan fail_sync = {.kind = K_EIO, .k = 1, .op_mask = 1u << OP_FDATASYNC};
    phase_begin(&fail_sync);
    int rc = cairn_txn_commit(t);
    r = phase_end();
    assert_int_equal(r.fired, 1);
    assert_cairn_rc(rc, CAIRN_IOERR);
    cairn_txn_abort(t);
    assert_cairn_ok(cairn_close(s));
}

static void ioerr_commit(void **state)
{
    (void)state;
    static const struct commit_scen scens[] = {
        {"log-holds-txns", CAIRN_SYNC_FULL, true, false},
        {"log-empty", CAIRN_SYNC_FULL, false, false},
        {"sync-off", CAIRN_SYNC_OFF, true, false},
        {"log-empty-abort-close", CAIRN_SYNC_FULL, false, true},
    };
    struct tally t;
    memset(&t, 0, sizeof t);
    printed_in_phase = 0;
    for (size_t i = 0; i < sizeof scens / sizeof *scens; i++)
        drive("commit", scens[i].name, &scens[i], run_commit, &t, 0);
    summarize("commit", &t);
}

static void ioerr_checkpoint(void **state)
{
    (void)state;
    static const struct ckpt_scen scens[] = {
        {"idle", false, false, 0},
        {"txn-open", true, false, 0},
        {"map-cannot-grow", false, true, 1u << K_MAPFULL},
    };
    struct tally t;
    memset(&t, 0, sizeof t);
    printed_in_phase = 0;
    for (size_t i = 0; i < sizeof scens / sizeof *scens; i++)
        drive("checkpoint", scens[i].name, &scens[i], run_checkpoint, &t, scens[i].kinds);
    summarize("checkpoint", &t);
}

static void ioerr_close(void **state)
{
    (void)state;
    static const struct ckpt_scen scens[] = {{"idle", false, false, 0}, {"txn-open", true, false, 0}};
    struct tally t;
    memset(&t, 0, sizeof t);
    printed_in_phase = 0;
    for (size_t i = 0; i < sizeof scens / sizeof *scens; i++)
        drive("close", scens[i].name, &scens[i], run_close, &t, 0);
    summarize("close", &t);
}

static void ioerr_register(void **state)
{
    (void)state;
    struct tally t;
    memset(&t, 0, sizeof t);
    printed_in_phase = 0;
    drive("register", "new-type", NULL, run_register, &t, 0);
    summarize("register", &t);
}

static void ioerr_open(const char *phase, struct open_scen *scens, size_t n)
{
    struct tally t;
    memset(&t, 0, sizeof t);
    printed_in_phase = 0;
    for (size_t i = 0; i < n; i++) {
        case_start("%s/%s template", phase, scens[i].name);
        if (!build_template(&scens[i])) {
            t.baseline_failed++;
            continue;
        }
        drive(phase, scens[i].name, &scens[i], run_open, &t, 0);
        if (scens[i].template_dir)
            tu_rmdir(scens[i].template_dir);
        scens[i].template_dir = NULL;
    }
    summarize(phase, &t);
}

static void ioerr_recovery(void **state)
{
    (void)state;
    struct open_scen scens[] = {
        {.name = "log-holds-txns", .variant = 0},
        {.name = "torn-tail", .variant = 1},
        {.name = "log-not-reset", .variant = 2},
    };
    ioerr_open("recovery", scens, sizeof scens / sizeof *scens);
}

static void ioerr_create(void **state)
{
    (void)state;
    struct open_scen scens[] = {{.name = "new-store", .variant = 3}};
    ioerr_open("create", scens, 1);
}

static void final_summary(void **state)
{
    (void)state;
    printf("== all phases: %ld injected-error cases, %ld failed\n", grand_cases, grand_failed);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    sigaction(SIGSEGV, NULL, &orig_segv);
    sigaction(SIGBUS, NULL, &orig_bus);
    shm = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shm == MAP_FAILED)
        abort();
    filter = getenv("CAIRN_IOERR_FILTER");
    if (filter && !*filter)
        filter = NULL;
    const char *v = getenv("CAIRN_IOERR_VERBOSE");
    verbose = v && *v && *v != '0';
    v = getenv("CAIRN_IOERR_NOFORK");
    nofork = v && *v && *v != '0';
    const struct CMUnitTest tests[] = {
        tu_dir_test(wrapping_reaches_library_io),
        tu_dir_test(ioerr_commit),
        tu_dir_test(ioerr_checkpoint),
        tu_dir_test(ioerr_close),
        tu_dir_test(ioerr_register),
        tu_dir_test(ioerr_recovery),
        tu_dir_test(ioerr_create),
        cmocka_unit_test(final_summary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
