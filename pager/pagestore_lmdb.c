/*
 * pagestore_lmdb.c - the page store in LMDB (pagestore.h): one database,
 * extent number -> extent record, and the checkpoint position written in
 * the same LMDB transaction as the records it covers.
 *
 * Reads (the fault path).  Each reader is an LMDB read transaction made
 * once and kept reset between reads; renewing it reuses its reader slot
 * and takes no LMDB lock (the environment is MDB_NOTLS), and every page
 * read goes through the guarded calls of lmdb_guard.c, so a damaged
 * data.mdb is CAIRN_CORRUPT, never a fault.  Before reading, the file is
 * checked against its meta page (lmdb_file_check): LMDB would fault on a
 * truncated one.
 *
 * The gate.  LMDB can grow its map only with no transaction active in the
 * process.  Reads enter a gate (a count of readers inside and a closed
 * flag); pagestore_lmdb_quiesce closes it and waits for the readers
 * inside to leave, which they do in a bounded step.  A reader at a closed
 * gate spins: the grower waits for nothing a faulting thread holds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "pager.h"
#include "pagestore.h"

struct lmdb_store {
    struct pagestore ps;
    struct pagestore_lmdb_config cfg;
    _Atomic int closed, inside;
    _Atomic int lost; /* the map could not be restored: every read fails */
};

struct pagestore_reader {
    struct lmdb_store *ls;
    MDB_txn *txn;
};

static struct lmdb_store *lmdb_store_of(struct pagestore *ps)
{
    return (struct lmdb_store *)ps;
}

static int gate_enter(struct lmdb_store *ls)
{
    unsigned spins = 0;
    for (;;) {
        while (atomic_load(&ls->closed))
            fault_relax(&spins);
        atomic_fetch_add(&ls->inside, 1);
        if (!atomic_load(&ls->closed))
            break;
        atomic_fetch_sub(&ls->inside, 1);
    }
    if (atomic_load(&ls->lost)) {
        atomic_fetch_sub(&ls->inside, 1);
        return CAIRN_IOERR;
    }
    return 0;
}

static void gate_leave(struct lmdb_store *ls)
{
    atomic_fetch_sub(&ls->inside, 1);
}

void pagestore_lmdb_quiesce(struct pagestore *ps)
{
    struct lmdb_store *ls = lmdb_store_of(ps);
    unsigned spins = 0;
    atomic_store(&ls->closed, 1);
    while (atomic_load(&ls->inside))
        fault_relax(&spins);
}

void pagestore_lmdb_resume(struct pagestore *ps)
{
    atomic_store(&lmdb_store_of(ps)->closed, 0);
}

void pagestore_lmdb_lost(struct pagestore *ps)
{
    atomic_store(&lmdb_store_of(ps)->lost, 1);
}

int pagestore_lmdb_is_lost(struct pagestore *ps)
{
    return atomic_load(&lmdb_store_of(ps)->lost);
}

static int reader_open(struct pagestore *ps, struct pagestore_reader **out)
{
    struct pagestore_reader *r = calloc(1, sizeof *r);
    if (!r)
        return ENOMEM;
    r->ls = lmdb_store_of(ps);
    int rc = mdb_txn_begin(r->ls->cfg.env, NULL, MDB_RDONLY, &r->txn);
    if (rc) {
        free(r);
        return lmdb_to_cairn(rc);
    }
    mdb_txn_reset(r->txn);
    *out = r;
    return 0;
}

static void reader_close(struct pagestore_reader *r)
{
    if (!r)
        return;
    mdb_txn_abort(r->txn);
    free(r);
}

/* Signal-safe. */
static int read_begin(struct pagestore_reader *r)
{
    int rc = gate_enter(r->ls);
    if (rc)
        return rc;
    rc = mdb_txn_renew(r->txn);
    if (rc == 0 && (rc = lmdb_file_check(r->ls->cfg.env, NULL, NULL)) != 0)
        mdb_txn_reset(r->txn); /* data.mdb is shorter than LMDB believes */
    if (rc)
        gate_leave(r->ls);
    return lmdb_to_cairn(rc);
}

/* Signal-safe. */
static int get(struct pagestore_reader *r, uint64_t e, const void **val, size_t *len)
{
    MDB_val key = {sizeof e, &e}, v;
    int rc = lmdb_get(r->txn, r->ls->cfg.extents, &key, &v);
    if (rc == MDB_NOTFOUND)
        return CAIRN_NOT_FOUND;
    if (rc)
        return lmdb_to_cairn(rc);
    *val = v.mv_data;
    *len = v.mv_size;
    return 0;
}

/* Signal-safe. */
static void read_end(struct pagestore_reader *r)
{
    mdb_txn_reset(r->txn);
    gate_leave(r->ls);
}

static int write_batch(struct pagestore *ps, size_t n, pagestore_record_fn record, void *ctx, uint64_t position)
{
    struct lmdb_store *ls = lmdb_store_of(ps);
    const struct pagestore_lmdb_config *c = &ls->cfg;
    /* Free the reader slots of processes that died (a reader killed while
     * it held a snapshot): LMDB keeps every page the oldest slot's snapshot
     * can see, so a dead one would make data.mdb grow with every write. */
    int dead;
    mdb_reader_check(c->env, &dead);
    MDB_txn *txn;
    int rc = c->txn_begin(c->arg, 0, &txn);
    if (rc)
        return rc;
    const char *map = lmdb_map_base(c->env); /* for lmdb_value_check */
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct pagestore_record rec;
        if ((rc = record(ctx, i, &rec)) != 0)
            break;
        MDB_val key = {sizeof rec.e, &rec.e}, old;
        /* LMDB frees the value it replaces by that value's own header. */
        rc = lmdb_get(txn, c->extents, &key, &old);
        if (rc == 0 && lmdb_value_check(txn, map, &old) != 0) {
            char msg[256];
            snprintf(msg, sizeof msg, "%s/data.mdb: extent %llu: its LMDB record is damaged", c->name,
                     (unsigned long long)rec.e);
            if (c->error)
                c->error(c->arg, msg);
            rc = CAIRN_CORRUPT;
            break;
        }
        if (rc == MDB_NOTFOUND)
            rc = 0;
        if (rc)
            break;
        if (!rec.val) {
            rc = lmdb_del(txn, c->extents, &key, NULL);
            if (rc == MDB_NOTFOUND)
                rc = 0;
            continue;
        }
        MDB_val val = {rec.len, (void *)rec.val};
        rc = lmdb_put(txn, c->extents, &key, &val, 0);
    }
    if (rc == 0)
        rc = c->put_position(c->arg, txn, position);
    if (rc) {
        mdb_txn_abort(txn);
        return lmdb_to_cairn(rc);
    }
    return lmdb_to_cairn(lmdb_txn_commit(txn));
}

static int position(struct pagestore *ps, uint64_t *out)
{
    const struct pagestore_lmdb_config *c = &lmdb_store_of(ps)->cfg;
    MDB_txn *txn;
    int rc = c->txn_begin(c->arg, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    rc = c->get_position(c->arg, txn, out);
    mdb_txn_abort(txn);
    return lmdb_to_cairn(rc);
}

static const struct pagestore_ops lmdb_ops = {
    .reader_open = reader_open,
    .reader_close = reader_close,
    .read_begin = read_begin,
    .get = get,
    .read_end = read_end,
    .write = write_batch,
    .position = position,
};

int pagestore_lmdb_open(const struct pagestore_lmdb_config *cfg, struct pagestore **out)
{
    struct lmdb_store *ls = calloc(1, sizeof *ls);
    if (!ls)
        return ENOMEM;
    ls->ps.ops = &lmdb_ops;
    ls->cfg = *cfg;
    *out = &ls->ps;
    return 0;
}

void pagestore_lmdb_close(struct pagestore *ps)
{
    free(ps);
}
