/*
 * lmdb_guard.c - LMDB calls that survive a damaged data.mdb.
 *
 * LMDB trusts its pages: it checks a page number against its meta page
 * and a page's kind, but follows node offsets, sizes and child pointers
 * of a damaged branch or leaf page wherever they lead, and LMDB 0.9.24
 * dereferences a NULL page on some damaged trees (tests/fuzz/known).
 * cairn's promise is that damage is an error code, never a crash, so
 * every LMDB call that reads pages goes through a wrapper here: the
 * wrapper sets a per-thread recovery point (sigsetjmp) and the process's
 * SIGSEGV/SIGBUS handler (signal.c), finding a fault outside every store
 * while a recovery point is set, jumps back to it.  The call then returns
 * MDB_CORRUPTED.
 *
 * What is left after a jump: LMDB's state of that call is abandoned on the
 * stack.  A read transaction is only a reader slot and a snapshot, so
 * aborting or resetting it is safe.  A write transaction may hold pages
 * LMDB half changed in memory: it must be aborted, never committed; the
 * wrappers of write calls mark nothing, so callers abort on any error, as
 * they already do.  A jump out of mdb_txn_commit aborts the transaction
 * here, since LMDB would otherwise keep its writer lock.
 *
 * LMDB's own assertions (it checks some invariants of its pages and
 * aborts) take the same way out: lmdb_assert is the environment's assert
 * callback.
 *
 * Async-signal-safe (the fault path uses lmdb_get in a signal handler):
 * sigsetjmp/siglongjmp and a thread-local pointer.  The handler must be
 * installed: lmdb_guard_install() (at every environment open).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>

#include "pager.h"

struct guard {
    sigjmp_buf jb;
    struct guard *prev;
};

static __thread struct guard *volatile guard_top __attribute__((tls_model("initial-exec")));

void lmdb_guard_trap(void)
{
    struct guard *g = guard_top;
    if (!g)
        return;
    guard_top = g->prev;
    siglongjmp(g->jb, 1);
}

/* Each wrapper: set the point, call, unset.  sigsetjmp saves the signal
 * mask, so a jump from a handler leaves the signal unblocked again. */
#define GUARDED(call)                                                                                                  \
    do {                                                                                                               \
        struct guard g;                                                                                                \
        g.prev = guard_top;                                                                                            \
        if (sigsetjmp(g.jb, 1))                                                                                        \
            return MDB_CORRUPTED;                                                                                      \
        guard_top = &g;                                                                                                \
        atomic_signal_fence(memory_order_seq_cst);                                                                     \
        int rc_ = (call);                                                                                              \
        atomic_signal_fence(memory_order_seq_cst);                                                                     \
        guard_top = g.prev;                                                                                            \
        return rc_;                                                                                                    \
    } while (0)

void lmdb_assert(MDB_env *env, const char *msg)
{
    (void)env, (void)msg;
    lmdb_guard_trap(); /* back into the guarded call, if any; else LMDB aborts */
}

int lmdb_get(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val)
{
    GUARDED(mdb_get(txn, dbi, key, val));
}

int lmdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val, unsigned flags)
{
    GUARDED(mdb_put(txn, dbi, key, val, flags));
}

int lmdb_del(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val)
{
    GUARDED(mdb_del(txn, dbi, key, val));
}

int lmdb_cursor_get(MDB_cursor *cur, MDB_val *key, MDB_val *val, MDB_cursor_op op)
{
    GUARDED(mdb_cursor_get(cur, key, val, op));
}

int lmdb_dbi_open(MDB_txn *txn, const char *name, unsigned flags, MDB_dbi *dbi)
{
    GUARDED(mdb_dbi_open(txn, name, flags, dbi));
}

int lmdb_env_copyfd2(MDB_env *env, int fd, unsigned flags)
{
    GUARDED(mdb_env_copyfd2(env, fd, flags));
}

int lmdb_txn_commit(MDB_txn *txn)
{
    struct guard g;
    g.prev = guard_top;
    if (sigsetjmp(g.jb, 1)) {
        mdb_txn_abort(txn);
        return MDB_CORRUPTED;
    }
    guard_top = &g;
    atomic_signal_fence(memory_order_seq_cst);
    int rc = mdb_txn_commit(txn);
    atomic_signal_fence(memory_order_seq_cst);
    guard_top = g.prev;
    return rc;
}

/* The one mapping of LMDB codes onto cairn's.  Signal-safe. */
int lmdb_to_cairn(int rc)
{
    if (rc == 0 || rc > 0 || (rc <= CAIRN_CORRUPT && rc >= CAIRN_CORRUPT - 99))
        return rc; /* errno, or one of ours already */
    if (rc == MDB_MAP_FULL || rc == MDB_TXN_FULL)
        return CAIRN_FULL;
    if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH ||
        rc == MDB_BAD_VALSIZE)
        return CAIRN_CORRUPT;
    return CAIRN_IOERR;
}
