/*
 * replay.c - log records into extent images (see replay.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"

unsigned char *replay_image(const struct replay *r, uint64_t e)
{
    uint64_t *v = extmap_get(&r->images, e);
    return v ? (unsigned char *)(uintptr_t)*v : NULL;
}

int replay_lmdb_image(struct catalog *cat, MDB_txn *txn, ZSTD_DCtx *dctx, uint64_t e, void *raw)
{
    MDB_val key = {sizeof e, &e}, val;
    int rc = lmdb_get(txn, cat->extents, &key, &val);
    if (rc == MDB_NOTFOUND) {
        memset(raw, 0, BYTES_PER_EXTENT);
        return 0;
    }
    if (rc)
        return lmdb_to_cairn(rc);
    rc = extent_decode(raw, val.mv_data, val.mv_size, e, cat->seed, dctx);
    if (rc)
        memset(raw, 0, BYTES_PER_EXTENT);
    return rc;
}

/* The image of extent e, made from its base image the first time. */
static int image_of(struct replay *r, uint64_t e, unsigned char **out)
{
    if ((*out = replay_image(r, e)) != NULL)
        return 0;
    unsigned char *img = malloc(BYTES_PER_EXTENT);
    if (!img)
        return ENOMEM;
    int rc = r->base ? r->base(r->arg, e, img) : replay_lmdb_image(r->cat, r->txn, r->dctx, e, img);
    if (rc) {
        free(img);
        if (rc == CAIRN_CORRUPT)
            catalog_error(r->cat, "%s/data.mdb: extent %llu fails to decode", r->cat->path, (unsigned long long)e);
        return rc;
    }
    if (extmap_put(&r->images, e, (uintptr_t)img) != 0) {
        free(img);
        return ENOMEM;
    }
    *out = img;
    return 0;
}

static int apply_change(void *ctx, const struct wal_page_change *c)
{
    struct replay *r = ctx;
    if (c->page >= r->cat->pages) {
        catalog_error(r->cat, "%s/wal: record at LSN %llu names page %llu, beyond the store", r->cat->path,
                      (unsigned long long)c->lsn, (unsigned long long)c->page);
        return CAIRN_CORRUPT;
    }
    unsigned char *img;
    uint64_t e = c->page / PAGES_PER_EXTENT;
    int rc = image_of(r, e, &img);
    if (rc)
        return rc;
    uint64_t *at = extmap_get(&r->touched, e);
    if (at)
        *at = c->lsn;
    else if (extmap_put(&r->touched, e, c->lsn) != 0)
        return ENOMEM;
    rc = wal_apply_ranges(img + (c->page % PAGES_PER_EXTENT) * PAGE_BYTES, c->payload, c->len);
    if (rc)
        catalog_error(r->cat, "%s/wal: malformed record at LSN %llu", r->cat->path, (unsigned long long)c->lsn);
    return rc;
}

static int transaction_applied(void *ctx, uint64_t commit_lsn)
{
    struct replay *r = ctx;
    if (!r->flush || r->images.used <= r->batch)
        return 0;
    return r->flush(r->arg, commit_lsn);
}

int replay_log(struct replay *r, struct wal *w, uint64_t after)
{
    if (!r->batch)
        r->batch = REPLAY_BATCH;
    return wal_replay(w, after, apply_change, transaction_applied, r, &r->last_lsn, &r->txns);
}

int replay_more(struct replay *r, struct wal *w)
{
    uint64_t last, txns;
    int rc = wal_replay_more(w, apply_change, transaction_applied, r, &last, &txns);
    if (txns)
        r->last_lsn = last;
    r->txns += txns;
    return rc;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int replay_extents(const struct replay *r, uint64_t **out, size_t *n)
{
    uint64_t *ext = malloc((r->images.used ? r->images.used : 1) * sizeof *ext);
    if (!ext)
        return ENOMEM;
    size_t k = 0;
    uint64_t e, v;
    for (size_t i = 0; i < r->images.cap; i++)
        if (extmap_at(&r->images, i, &e, &v))
            ext[k++] = e;
    qsort(ext, k, sizeof *ext, cmp_u64);
    *out = ext;
    *n = k;
    return 0;
}

void replay_drop(struct replay *r)
{
    uint64_t e, v;
    for (size_t i = 0; i < r->images.cap; i++)
        if (extmap_at(&r->images, i, &e, &v))
            free((void *)(uintptr_t)v);
    extmap_clear(&r->images);
}

void replay_free(struct replay *r)
{
    replay_drop(r);
    extmap_free(&r->images);
    extmap_free(&r->touched);
}
