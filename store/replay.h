/*
 * replay.h - the one place where the log's committed transactions become
 * extent images: used by recovery (recover.c), which writes them to LMDB,
 * and by the snapshot reader (snapshot.c), which keeps them.  Internal.
 *
 * Images are unswizzled (the log holds unswizzled bytes, so no address is
 * needed), one per extent a transaction touched, made from the extent's
 * base image (LMDB's, or the caller's base()) the first time a change
 * reaches it.  Memory is bounded by batch: after each transaction that
 * leaves more than batch images held, flush() is called to take them
 * (replay_each, replay_drop) so replay can go on.
 */
#ifndef CAIRN_REPLAY_H
#define CAIRN_REPLAY_H

#include "extmap.h"
#include "store_internal.h"

/* Extent images held before flush is called: 256 MiB.  The test hook recover_batch
 * overrides it, so that tests can make every transaction a batch. */
#define REPLAY_BATCH 4096

struct replay {
    /* Set by the caller. */
    struct catalog *cat; /* extents, seed, pages; messages */
    MDB_txn *txn;        /* read transaction for base images (flush may renew it) */
    ZSTD_DCtx *dctx;
    size_t batch;
    /* The image of extent e before the log, when not LMDB's (NULL: LMDB). */
    int (*base)(void *arg, uint64_t e, void *raw);
    /* Take the images held, after the transaction committed at lsn. */
    int (*flush)(void *arg, uint64_t lsn);
    void *arg;
    /* The images: extent -> its malloc'd image. */
    struct extmap images;
    /* Every extent a replayed record changed -> the LSN of the last such
     * record (kept across flushes: a read-only handle's refresh asks which
     * extents changed after its old snapshot). */
    struct extmap touched;
    uint64_t txns, last_lsn; /* what replay_log applied */
};

/* Apply every committed transaction of w after LSN `after` (the
 * checkpoint).  0, CAIRN_CORRUPT (a record names a page beyond the store
 * or is malformed; a base image fails to decode) with the message, or an
 * errno. */
int replay_log(struct replay *r, struct wal *w, uint64_t after);

/* Apply the transactions committed to w since replay_log (or the last
 * replay_more) stopped.  An error can leave part of a transaction applied
 * to the images. */
int replay_more(struct replay *r, struct wal *w);

/* The image of extent e if replay holds it, else NULL. */
unsigned char *replay_image(const struct replay *r, uint64_t e);
/* The extents held, sorted, into *out (malloc'd); their count. */
int replay_extents(const struct replay *r, uint64_t **out, size_t *n);
/* Forget the images held. */
void replay_drop(struct replay *r);
void replay_free(struct replay *r);

/* The committed image of extent e in LMDB (zero if absent) into raw. */
int replay_lmdb_image(struct catalog *cat, MDB_txn *txn, ZSTD_DCtx *dctx, uint64_t e, void *raw);

#endif
