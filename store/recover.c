/*
 * recover.c - at open, replay the committed transactions left in the log
 * into LMDB, then start a fresh log.
 *
 * Replay works on unswizzled extent images in ordinary memory (the log
 * holds unswizzled bytes, so no address is needed): each page change is
 * applied to the image of its extent, read from LMDB the first time it
 * is needed.  All touched extents and the new checkpoint LSN are then
 * written in one LMDB transaction (checkpoint_write_extents) with the
 * LSN of the last transaction applied as the new checkpoint position, and
 * only after the last such commit is durable is the log reset.
 *
 * Memory is bounded: once a transaction's changes leave more than
 * RECOVER_BATCH extent images in memory, the images are written (with
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

#include "store_internal.h"

/* Extent images held before a batch is written: 256 MiB.  The environment
 * variable CAIRN_RECOVER_BATCH overrides it, so that tests can make every
 * transaction a batch of its own. */
#define RECOVER_BATCH 4096

struct replay {
    cairn_store *s;
    size_t batch; /* images held before writing a batch */
    uint64_t batches;
    MDB_txn *txn;   /* read transaction for base images */
    uint64_t *keys; /* open addressing: extent + 1, 0 = empty */
    unsigned char **imgs;
    size_t cap, used;
};

static size_t slot_of(const struct replay *r, uint64_t e)
{
    size_t h = (size_t)((e + 1) * 0x9E3779B97F4A7C15ull) & (r->cap - 1);
    while (r->keys[h] && r->keys[h] != e + 1)
        h = (h + 1) & (r->cap - 1);
    return h;
}

static int grow(struct replay *r)
{
    struct replay n = *r;
    n.cap = r->cap ? r->cap * 2 : 256;
    n.keys = calloc(n.cap, sizeof *n.keys);
    n.imgs = calloc(n.cap, sizeof *n.imgs);
    if (!n.keys || !n.imgs) {
        free(n.keys);
        free(n.imgs);
        return ENOMEM;
    }
    for (size_t i = 0; i < r->cap; i++) {
        if (!r->keys[i])
            continue;
        size_t h = slot_of(&n, r->keys[i] - 1);
        n.keys[h] = r->keys[i];
        n.imgs[h] = r->imgs[i];
    }
    free(r->keys);
    free(r->imgs);
    *r = n;
    return 0;
}

static int image_of(struct replay *r, uint64_t e, unsigned char **out)
{
    if (r->cap == 0 || (r->used + 1) * 2 > r->cap) {
        int rc = grow(r);
        if (rc)
            return rc;
    }
    size_t h = slot_of(r, e);
    if (r->keys[h]) {
        *out = r->imgs[h];
        return 0;
    }
    unsigned char *img = malloc(BYTES_PER_EXTENT);
    if (!img)
        return ENOMEM;
    MDB_val key = {sizeof e, &e}, val;
    int rc = lmdb_get(r->txn, r->s->cat.extents, &key, &val);
    if (rc == MDB_NOTFOUND) {
        memset(img, 0, BYTES_PER_EXTENT);
        rc = 0;
    } else if (rc == 0) {
        rc = extent_decode(img, val.mv_data, val.mv_size, e, r->s->cat.seed, r->s->dctx);
        if (rc)
            store_set_error(r->s, "%s: extent %llu is corrupt", r->s->path, (unsigned long long)e);
    } else {
        rc = lmdb_to_cairn(rc);
    }
    if (rc) {
        free(img);
        return rc;
    }
    r->keys[h] = e + 1;
    r->imgs[h] = img;
    r->used++;
    *out = img;
    return 0;
}

static int apply_change(void *ctx, const struct wal_page_change *c)
{
    struct replay *r = ctx;
    if (c->page >= r->s->cat.pages) {
        store_set_error(r->s, "%s: log names page %llu beyond the store", r->s->path, (unsigned long long)c->page);
        return CAIRN_CORRUPT;
    }
    unsigned char *img;
    int rc = image_of(r, c->page / PAGES_PER_EXTENT, &img);
    if (rc)
        return rc;
    rc = wal_apply_ranges(img + (c->page % PAGES_PER_EXTENT) * PAGE_BYTES, c->payload, c->len);
    if (rc)
        store_set_error(r->s, "%s: malformed log record at LSN %llu", r->s->path, (unsigned long long)c->lsn);
    return rc;
}

static int image_source(void *ctx, uint64_t e, void *raw)
{
    struct replay *r = ctx;
    memcpy(raw, r->imgs[slot_of(r, e)], BYTES_PER_EXTENT);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Write every image held, with checkpoint position lsn, in one LMDB
 * transaction; then drop them and start a fresh read transaction, so that
 * later base images are read from what was just written. */
static int write_batch(struct replay *r, uint64_t lsn)
{
    cairn_store *s = r->s;
    uint64_t *ext = malloc((r->used ? r->used : 1) * sizeof *ext);
    if (!ext)
        return ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < r->cap; i++)
        if (r->keys[i])
            ext[n++] = r->keys[i] - 1;
    qsort(ext, n, sizeof *ext, cmp_u64);
    /* No read transaction may be open while the map might be grown. */
    if (r->txn)
        mdb_txn_abort(r->txn);
    r->txn = NULL;
    int rc = checkpoint_write_extents(s, ext, n, image_source, r, lsn);
    free(ext);
    if (rc)
        return rc;
    s->cat.ckpt_lsn = lsn;
    r->batches++;
    for (size_t i = 0; i < r->cap; i++) {
        free(r->imgs[i]);
        r->imgs[i] = NULL;
        r->keys[i] = 0;
    }
    r->used = 0;
    return catalog_txn_begin(&s->cat, MDB_RDONLY, &r->txn);
}

static int transaction_applied(void *ctx, uint64_t commit_lsn)
{
    struct replay *r = ctx;
    if (r->s->readonly || r->used <= r->batch)
        return 0;
    return write_batch(r, commit_lsn);
}

int recover_log(cairn_store *s, int *pending)
{
    struct replay r = {.s = s, .batch = RECOVER_BATCH};
    const char *b = getenv("CAIRN_RECOVER_BATCH");
    if (b && atol(b) > 0)
        r.batch = (size_t)atol(b);
    uint64_t last = 0, txns = 0;
    /* The files must belong together before anything is applied: no
     * transaction between LMDB's checkpoint and the log's first record ... */
    int rc = store_log_continues(s, s->cat.ckpt_lsn, s->wal.start_lsn, UINT64_MAX);
    if (rc)
        return rc;
    rc = catalog_txn_begin(&s->cat, MDB_RDONLY, &r.txn);
    if (rc)
        return rc;
    rc = wal_replay(&s->wal, s->cat.ckpt_lsn, apply_change, transaction_applied, &r, &last, &txns);
    if (r.txn)
        mdb_txn_abort(r.txn);
    *pending = txns > 0;
    /* ... and none in LMDB beyond the log's end.  If that fails nothing was
     * written: a batch is written only after a transaction past the
     * checkpoint was applied, and then the log reaches past it. */
    if (rc == 0)
        rc = store_log_continues(s, s->cat.ckpt_lsn, s->wal.start_lsn, last);
    if (rc)
        goto out;
    if (txns > 0 && s->readonly) {
        store_set_error(s,
                        "%s: the log holds %llu committed transactions not yet in LMDB; "
                        "open the store read-write once to recover them",
                        s->path, (unsigned long long)txns);
        rc = CAIRN_READONLY;
        goto out;
    }
    if (s->readonly)
        goto out;
    r.txn = NULL;
    if (txns > 0 && (r.used > 0 || s->cat.ckpt_lsn != last)) {
        rc = write_batch(&r, last);
        if (r.txn)
            mdb_txn_abort(r.txn);
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
    for (size_t i = 0; i < r.cap; i++)
        free(r.imgs[i]);
    free(r.keys);
    free(r.imgs);
    return rc;
}
