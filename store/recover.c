/*
 * recover.c - at open, replay the committed transactions left in the log
 * into LMDB, then start a fresh log.
 *
 * Replay (replay.c) works on unswizzled extent images in ordinary memory:
 * each page change is applied to the image of its extent, read from LMDB
 * the first time it is needed.  All touched extents and the new checkpoint LSN are then
 * written in one LMDB transaction (checkpoint_write_extents) with the
 * LSN of the last transaction applied as the new checkpoint position, and
 * only after the last such commit is durable is the log reset.
 *
 * Memory is bounded: once a transaction's changes leave more than
 * REPLAY_BATCH extent images in memory, the images are written (with
 * that transaction's commit LSN) and dropped, and replay goes on from
 * there.  That is an ordinary checkpoint of a prefix of the log, so a
 * crash at any point leaves LMDB holding some prefix of the committed
 * transactions, ckpt_lsn naming it, and the log intact: recovering again
 * applies the rest, and recovering twice gives the same store as
 * recovering once.  The cost is proportional to the log (the distinct
 * extents it touches), not to the store.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "replay.h"

struct recovery {
    cairn_store *s;
    struct replay r;
};

static int image_source(void *ctx, uint64_t e, void *raw)
{
    struct recovery *rec = ctx;
    memcpy(raw, replay_image(&rec->r, e), BYTES_PER_EXTENT);
    return 0;
}

/* Write every image held, with checkpoint position lsn, in one LMDB
 * transaction; then drop them and start a fresh read transaction, so that
 * later base images are read from what was just written. */
static int write_batch(void *arg, uint64_t lsn)
{
    struct recovery *rec = arg;
    cairn_store *s = rec->s;
    uint64_t *ext;
    size_t n;
    int rc = replay_extents(&rec->r, &ext, &n);
    if (rc)
        return rc;
    /* No read transaction may be open while the map might be grown. */
    if (rec->r.txn)
        mdb_txn_abort(rec->r.txn);
    rec->r.txn = NULL;
    rc = checkpoint_write_extents(s, ext, n, image_source, rec, lsn);
    free(ext);
    if (rc)
        return rc;
    s->cat.ckpt_lsn = lsn;
    replay_drop(&rec->r);
    return catalog_txn_begin(&s->cat, MDB_RDONLY, &rec->r.txn);
}

int recover_log(cairn_store *s, int *pending)
{
    struct recovery rec = {.s = s};
    struct replay *r = &rec.r;
    r->cat = &s->cat;
    r->dctx = s->dctx;
    r->batch = REPLAY_BATCH;
    r->flush = write_batch;
    r->arg = &rec;
    if (s->knobs.test.recover_batch)
        r->batch = s->knobs.test.recover_batch;
    /* The files must belong together before anything is applied: no
     * transaction between LMDB's checkpoint and the log's first record ... */
    int rc = store_log_continues(s, s->cat.ckpt_lsn, s->wal.start_lsn, UINT64_MAX);
    if (rc)
        return rc;
    rc = catalog_txn_begin(&s->cat, MDB_RDONLY, &r->txn);
    if (rc)
        return rc;
    rc = replay_log(r, &s->wal, s->cat.ckpt_lsn);
    if (r->txn)
        mdb_txn_abort(r->txn);
    r->txn = NULL;
    uint64_t last = r->last_lsn, txns = r->txns;
    *pending = txns > 0;
    /* ... and none in LMDB beyond the log's end.  If that fails nothing was
     * written: a batch is written only after a transaction past the
     * checkpoint was applied, and then the log reaches past it. */
    if (rc == 0)
        rc = store_log_continues(s, s->cat.ckpt_lsn, s->wal.start_lsn, last);
    if (rc)
        goto out;
    if (txns > 0 && (r->images.used > 0 || s->cat.ckpt_lsn != last)) {
        rc = write_batch(&rec, last);
        if (r->txn)
            mdb_txn_abort(r->txn);
        r->txn = NULL;
        if (rc)
            goto out;
    }

    /* Start clean whenever the log holds anything: replayed records, records
     * already checkpointed, or a torn tail. */
    off_t size = lseek(s->wal.fd, 0, SEEK_END);
    if (size != WAL_HEADER_SIZE || s->wal.start_lsn <= s->cat.ckpt_lsn) {
        uint64_t next = (last > s->cat.ckpt_lsn ? last : s->cat.ckpt_lsn) + 1;
        rc = wal_reset(&s->wal, next);
    }
out:
    replay_free(r);
    return rc;
}
