/*
 * compact.c - rewrite a store (`cairn compact`) with every extent
 * recompressed (a higher zstd level than checkpoints use) into a fresh
 * LMDB file, so space LMDB kept for freed pages and all-zero extents are
 * dropped.  The content is the snapshot's: the LMDB extents with the
 * log's committed transactions applied, so the new store's log is empty
 * and its checkpoint LSN is the last one committed.
 *
 * To DEST: reads a snapshot, so STORE may be open elsewhere; DEST gets the
 * state of that moment.  In place: takes the store's lock exclusively
 * (exit 2 with CAIRN_BUSY if anyone has it open), builds the new LMDB file
 * in STORE/compact.tmp, renames it over data.mdb, then starts a new log.
 * A crash before the rename leaves the old store; after it, the new
 * data.mdb with the old log, whose records are all at or below the new
 * checkpoint LSN and are skipped by recovery.
 *
 * compact_dict_estimate (`--dict-estimate`) measures what a zstd dictionary trained on the store's
 * own pages would gain.  It writes nothing: the format has no place for a
 * dictionary yet (it would need one in the catalog and its id in the
 * extent header, and the fault path would have to load it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zdict.h>

#include "copy.h"
#include "snapshot.h"

#define COMPACT_BATCH 1024 /* extents per LMDB write transaction */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Every extent the snapshot holds: stored in LMDB or made by the log. */
static int list_extents(struct snapshot *sn, uint64_t **out, size_t *n)
{
    uint64_t *log;
    size_t nlog;
    int rc = snapshot_changed_extents(sn, &log, &nlog);
    if (rc)
        return rc;
    size_t cap = nlog + 1024, k = 0;
    uint64_t *keys = malloc(cap * sizeof *keys);
    MDB_cursor *cur;
    MDB_val key, val;
    rc = keys ? mdb_cursor_open(sn->txn, sn->st.cat.extents, &cur) : ENOMEM;
    if (rc) {
        free(keys);
        free(log);
        return lmdb_to_cairn(rc);
    }
    for (rc = lmdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0; rc = lmdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        if (k + nlog + 1 >= cap) {
            uint64_t *p = realloc(keys, (cap *= 2) * sizeof *p);
            if (!p) {
                rc = ENOMEM;
                break;
            }
            keys = p;
        }
        if (key.mv_size == 8)
            memcpy(&keys[k++], key.mv_data, 8);
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND) {
        free(keys);
        free(log);
        return lmdb_to_cairn(rc);
    }
    memcpy(keys + k, log, nlog * sizeof *log);
    k += nlog;
    free(log);
    qsort(keys, k, sizeof *keys, cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (keys[i] < sn->st.cat.pages / PAGES_PER_EXTENT && (u == 0 || keys[u - 1] != keys[i]))
            keys[u++] = keys[i];
    *out = keys;
    *n = u;
    return 0;
}

static int all_zero(const unsigned char *raw)
{
    const uint64_t *w = (const uint64_t *)raw;
    for (size_t i = 0; i < BYTES_PER_EXTENT / 8; i++)
        if (w[i])
            return 0;
    return 1;
}

/* Build the compacted LMDB environment in directory dir. */
static int build_env(struct snapshot *sn, const char *dir, int level, struct compact_result *res,
                     const struct inspect_hooks *hooks, char *err, size_t errlen)
{
    struct catalog_msg msg = {err, errlen};
    struct catalog dst = {.path = dir, .error = catalog_msg_sink, .error_arg = &msg};
    uint64_t *keys = NULL;
    size_t n = 0;
    MDB_txn *txn = NULL;
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    unsigned char *raw = malloc(BYTES_PER_EXTENT), *z = malloc(extent_bound());
    int rc = cctx && raw && z ? list_extents(sn, &keys, &n) : ENOMEM;
    if (rc == 0)
        rc = catalog_open_env(&dst, dir, 0, 1, sn->st.cat.pages * PAGE_BYTES);
    if (rc == 0)
        rc = catalog_txn_begin(&dst, 0, &txn);
    if (rc == 0)
        rc = catalog_copy(&sn->st.cat, sn->txn, &dst, txn, sn->last_lsn);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint64_t e = keys[i];
        if (hooks && hooks->progress)
            hooks->progress(hooks->arg, "compact", i + 1, n);
        rc = snapshot_read_extent(sn, e, raw);
        if (rc) {
            copy_error(err, errlen, "%s: extent %llu fails to decode; run cairn check", sn->st.path,
                       (unsigned long long)e);
            break;
        }
        if (all_zero(raw)) {
            res->zero_dropped++;
            continue;
        }
        size_t len;
        rc = extent_encode(z, extent_bound(), &len, raw, e, sn->st.cat.seed, level, cctx);
        MDB_val key = {sizeof e, &e}, val = {len, z};
        if (rc == 0)
            rc = lmdb_to_cairn(lmdb_put(txn, dst.extents, &key, &val, MDB_APPEND));
        res->extents++;
        res->raw += BYTES_PER_EXTENT;
        res->zbytes += len;
        if (rc == 0 && res->extents % COMPACT_BATCH == 0) {
            rc = lmdb_to_cairn(lmdb_txn_commit(txn));
            txn = NULL;
            if (rc == 0)
                rc = catalog_txn_begin(&dst, 0, &txn);
        }
    }
    if (rc == 0) {
        rc = lmdb_to_cairn(lmdb_txn_commit(txn));
        txn = NULL;
    }
    if (txn)
        mdb_txn_abort(txn);
    if (rc == 0)
        rc = lmdb_to_cairn(mdb_env_sync(dst.env, 1));
    if (rc && rc != CAIRN_CORRUPT)
        copy_error(err, errlen, "%s: writing the compacted copy: %s", dir, cairn_strerror(rc));
    catalog_close_env(&dst);
    ZSTD_freeCCtx(cctx);
    free(raw);
    free(z);
    free(keys);
    return rc;
}

/* A fresh log in dirfd continuing at last_lsn + 1. */
static int new_log(int dirfd, const char *where, const uint8_t id[16], uint64_t last_lsn, int create, char *err,
                   size_t errlen)
{
    struct wal w;
    int rc = wal_open(&w, dirfd, id, create, 0);
    if (rc == 0)
        rc = wal_reset(&w, last_lsn + 1);
    wal_close(&w);
    if (rc)
        copy_error(err, errlen, "%s/wal: starting the log: %s", where, rc > 0 ? strerror(rc) : cairn_strerror(rc));
    return rc;
}

static void remove_staging(int dirfd, const char *staging)
{
    char path[64];
    snprintf(path, sizeof path, "%s/data.mdb", staging);
    unlinkat(dirfd, path, 0);
    snprintf(path, sizeof path, "%s/lock.mdb", staging);
    unlinkat(dirfd, path, 0);
    unlinkat(dirfd, staging, AT_REMOVEDIR);
}

/* ---- the dictionary estimate ---- */

int compact_dict_estimate(struct snapshot *sn, int level, struct dict_estimate *out)
{
    memset(out, 0, sizeof *out);
    uint64_t *keys;
    size_t n;
    int rc = list_extents(sn, &keys, &n);
    if (rc)
        return rc;
    /* Evenly spaced extents, at most 512: even ones train, odd ones are measured. */
    size_t take = n < 512 ? n : 512;
    unsigned char *train = malloc((take / 2 + 1) * BYTES_PER_EXTENT), *test = malloc((take / 2 + 1) * BYTES_PER_EXTENT);
    size_t *sizes = malloc((take / 2 + 1) * PAGES_PER_EXTENT * sizeof *sizes);
    size_t ntrain = 0, ntest = 0, nsamples = 0, tbytes = 0;
    unsigned char *raw = malloc(BYTES_PER_EXTENT), *dict = NULL, *z = NULL;
    ZSTD_CCtx *cctx = NULL;
    ZSTD_CDict *cd1 = NULL, *cdl = NULL;
    if (!train || !test || !sizes || !raw) {
        rc = ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < take; i++) {
        uint64_t e = keys[i * n / take];
        if ((rc = snapshot_read_extent(sn, e, raw)) != 0)
            goto out;
        if (all_zero(raw))
            continue;
        if (i % 2 == 0) {
            /* Samples are pages: the unit of locality inside an extent. */
            for (uint64_t p = 0; p < PAGES_PER_EXTENT; p++) {
                memcpy(train + tbytes, raw + p * PAGE_BYTES, PAGE_BYTES);
                tbytes += PAGE_BYTES;
                sizes[nsamples++] = PAGE_BYTES;
            }
            ntrain++;
        } else {
            memcpy(test + ntest++ * BYTES_PER_EXTENT, raw, BYTES_PER_EXTENT);
        }
    }
    out->trained_extents = ntrain;
    out->trained_pages = nsamples;
    out->measured_extents = ntest;
    if (ntrain < 4 || ntest < 1) {
        out->why = "too few non-empty extents to train and measure";
        goto out;
    }
    size_t dict_cap = 112640;
    dict = malloc(dict_cap);
    size_t dsize = dict ? ZDICT_trainFromBuffer(dict, dict_cap, train, sizes, (unsigned)nsamples) : 0;
    if (!dict || ZDICT_isError(dsize)) {
        out->why = dict ? ZDICT_getErrorName(dsize) : "out of memory";
        goto out;
    }
    cctx = ZSTD_createCCtx();
    cd1 = ZSTD_createCDict(dict, dsize, 1), cdl = ZSTD_createCDict(dict, dsize, level);
    size_t bound = ZSTD_compressBound(BYTES_PER_EXTENT);
    z = malloc(bound);
    if (!cctx || !cd1 || !cdl || !z) {
        rc = ENOMEM;
        goto out;
    }
    uint64_t sum[4] = {0};
    for (size_t i = 0; i < ntest; i++) {
        const unsigned char *src = test + i * BYTES_PER_EXTENT;
        sum[0] += FMT_EXTENT_HEADER + ZSTD_compressCCtx(cctx, z, bound, src, BYTES_PER_EXTENT, 1);
        sum[1] += FMT_EXTENT_HEADER + ZSTD_compressCCtx(cctx, z, bound, src, BYTES_PER_EXTENT, level);
        sum[2] += FMT_EXTENT_HEADER + ZSTD_compress_usingCDict(cctx, z, bound, src, BYTES_PER_EXTENT, cd1);
        sum[3] += FMT_EXTENT_HEADER + ZSTD_compress_usingCDict(cctx, z, bound, src, BYTES_PER_EXTENT, cdl);
    }
    out->measured_raw = (uint64_t)ntest * BYTES_PER_EXTENT;
    for (int k = 0; k < 4; k++)
        out->ratio[k] = (double)out->measured_raw / (double)sum[k];
    out->dict_bytes = dsize;
out:
    ZSTD_freeCDict(cd1);
    ZSTD_freeCDict(cdl);
    ZSTD_freeCCtx(cctx);
    free(z);
    free(dict);
    free(train);
    free(test);
    free(sizes);
    free(raw);
    free(keys);
    return rc;
}

static uint64_t file_size(int dirfd, const char *name)
{
    struct stat st;
    return fstatat(dirfd, name, &st, 0) == 0 ? (uint64_t)st.st_size : 0;
}

int compact_store(const char *src, const char *dest, int level, const struct inspect_hooks *hooks,
                  struct compact_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    struct snapshot *sn = NULL;
    int rc, lockfd = -1, dirfd;
    const char *staging;
    char *where = NULL;
    if (dest) {
        if ((dirfd = copy_dest_prepare(dest, err, errlen)) < 0)
            return -dirfd;
        staging = "new.tmp";
    } else {
        /* In place: the store to ourselves, as a read-write opener would. */
        dirfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        lockfd = dirfd < 0 ? -1 : openat(dirfd, "lock", O_RDWR | O_CLOEXEC);
        if (lockfd < 0) {
            rc = errno;
            copy_error(err, errlen, "%s%s: %s", src, dirfd < 0 ? "" : "/lock", strerror(rc));
            if (dirfd >= 0)
                close(dirfd);
            return rc;
        }
        if (flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
            rc = errno == EWOULDBLOCK ? CAIRN_BUSY : errno;
            copy_error(err, errlen, "%s: %s (open in another process; compacting in place needs it to itself)", src,
                       rc == CAIRN_BUSY ? cairn_strerror(CAIRN_BUSY) : strerror(rc));
            close(lockfd);
            close(dirfd);
            return rc;
        }
        staging = "compact.tmp";
    }
    remove_staging(dirfd, staging);
    if (asprintf(&where, "%s/%s", dest ? dest : src, staging) < 0)
        abort();
    if ((rc = snapshot_open(src, &sn, err, errlen)) != 0)
        goto fail;
    res->bytes_before = file_size(sn->st.dirfd, "data.mdb") + sn->log_bytes;
    if (mkdirat(dirfd, staging, 0755) != 0) {
        rc = errno;
        copy_error(err, errlen, "%s: %s", where, strerror(rc));
        goto fail;
    }
    uint8_t id[16];
    memcpy(id, sn->st.cat.store_id, 16);
    uint64_t last = sn->last_lsn;
    rc = build_env(sn, where, level, res, hooks, err, errlen);
    snapshot_close(sn);
    sn = NULL;
    if (rc)
        goto fail;
    char staged[64];
    snprintf(staged, sizeof staged, "%s/data.mdb", staging);
    if (dest) {
        rc = new_log(dirfd, dest, id, last, 1, err, errlen);
        if (rc == 0)
            rc = copy_dest_finish(dirfd, dest, staged, err, errlen);
    } else {
        /* The swap: the old log's records are all <= last, so it stays
         * valid beside the new data.mdb until the new log replaces it. */
        if (renameat(dirfd, staged, dirfd, "data.mdb") != 0 || fsync(dirfd) != 0) {
            rc = errno;
            copy_error(err, errlen, "%s/data.mdb: replacing it: %s", src, strerror(rc));
        }
        if (rc == 0)
            rc = new_log(dirfd, src, id, last, 0, err, errlen);
        /* LMDB's lock file described the old data file. */
        if (rc == 0)
            unlinkat(dirfd, "lock.mdb", 0);
    }
    if (rc)
        goto fail;
    remove_staging(dirfd, staging);
    res->bytes_after = file_size(dirfd, "data.mdb") + file_size(dirfd, "wal");
    free(where);
    close(dirfd);
    if (lockfd >= 0)
        close(lockfd);
    return 0;
fail:
    snapshot_close(sn);
    remove_staging(dirfd, staging);
    free(where);
    close(dirfd);
    if (lockfd >= 0)
        close(lockfd);
    return rc;
}
