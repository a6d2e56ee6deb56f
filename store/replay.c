/*
 * replay.c - log records into extent images (see replay.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"

static size_t slot_of(const struct replay *r, uint64_t e)
{
    size_t h = (size_t)((e + 1) * 0x9E3779B97F4A7C15ull) & (r->cap - 1);
    while (r->keys[h] && r->keys[h] != e + 1)
        h = (h + 1) & (r->cap - 1);
    return h;
}

static int grow(struct replay *r)
{
    size_t cap = r->cap ? r->cap * 2 : 256;
    uint64_t *keys = calloc(cap, sizeof *keys);
    unsigned char **imgs = calloc(cap, sizeof *imgs);
    if (!keys || !imgs) {
        free(keys);
        free(imgs);
        return ENOMEM;
    }
    uint64_t *old_keys = r->keys;
    unsigned char **old_imgs = r->imgs;
    size_t old_cap = r->cap;
    r->keys = keys, r->imgs = imgs, r->cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (!old_keys[i])
            continue;
        size_t h = slot_of(r, old_keys[i] - 1);
        r->keys[h] = old_keys[i];
        r->imgs[h] = old_imgs[i];
    }
    free(old_keys);
    free(old_imgs);
    return 0;
}

unsigned char *replay_image(const struct replay *r, uint64_t e)
{
    if (r->cap == 0)
        return NULL;
    size_t h = slot_of(r, e);
    return r->keys[h] ? r->imgs[h] : NULL;
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
    if ((r->used + 1) * 2 > r->cap) {
        int rc = grow(r);
        if (rc)
            return rc;
    }
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
    size_t h = slot_of(r, e);
    r->keys[h] = e + 1;
    r->imgs[h] = img;
    r->used++;
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
    int rc = image_of(r, c->page / PAGES_PER_EXTENT, &img);
    if (rc)
        return rc;
    rc = wal_apply_ranges(img + (c->page % PAGES_PER_EXTENT) * PAGE_BYTES, c->payload, c->len);
    if (rc)
        catalog_error(r->cat, "%s/wal: malformed record at LSN %llu", r->cat->path, (unsigned long long)c->lsn);
    return rc;
}

static int transaction_applied(void *ctx, uint64_t commit_lsn)
{
    struct replay *r = ctx;
    if (!r->flush || r->used <= r->batch)
        return 0;
    return r->flush(r->arg, commit_lsn);
}

int replay_log(struct replay *r, struct wal *w, uint64_t after)
{
    if (!r->batch)
        r->batch = REPLAY_BATCH;
    return wal_replay(w, after, apply_change, transaction_applied, r, &r->last_lsn, &r->txns);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int replay_extents(const struct replay *r, uint64_t **out, size_t *n)
{
    uint64_t *ext = malloc((r->used ? r->used : 1) * sizeof *ext);
    if (!ext)
        return ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < r->cap; i++)
        if (r->keys[i])
            ext[k++] = r->keys[i] - 1;
    qsort(ext, k, sizeof *ext, cmp_u64);
    *out = ext;
    *n = k;
    return 0;
}

void replay_drop(struct replay *r)
{
    for (size_t i = 0; i < r->cap; i++) {
        free(r->imgs[i]);
        r->imgs[i] = NULL;
        r->keys[i] = 0;
    }
    r->used = 0;
}

void replay_free(struct replay *r)
{
    replay_drop(r);
    free(r->keys);
    free(r->imgs);
    r->keys = NULL, r->imgs = NULL, r->cap = 0;
}
