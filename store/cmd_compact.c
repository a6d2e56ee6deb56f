/*
 * cmd_compact.c - `cairn compact`: rewrite a store with every extent
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
 * --dict-estimate measures what a zstd dictionary trained on the store's
 * own pages would gain.  It writes nothing: the format has no place for a
 * dictionary yet (it would need one in the catalog and its id in the
 * extent header, and the fault path would have to load it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zdict.h>

#include "cmd.h"

#define COMPACT_BATCH 1024 /* extents per LMDB write transaction */

static const char compact_usage[] = "usage: cairn compact [--level N] [--dict-estimate] STORE [DEST]\n"
                                    "\n"
                                    "Rewrite STORE with every extent recompressed at zstd level N (default 19)\n"
                                    "into a fresh LMDB file, the log folded in.  With DEST (a new or empty\n"
                                    "directory), STORE is only read and may be open elsewhere.  Without DEST,\n"
                                    "STORE is replaced in place and must not be open anywhere (exit 2 if it is).\n"
                                    "\n"
                                    "  --level N         zstd level, 1..22 (checkpoints write level 1 unless the\n"
                                    "                    application sets compression_level)\n"
                                    "  --dict-estimate   only measure: train a zstd dictionary on half the\n"
                                    "                    extents, compress the other half with and without it,\n"
                                    "                    print the ratios.  Writes nothing.\n"
                                    "  --help            this text\n";

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Every extent the snapshot holds: stored in LMDB or made by the log. */
static int list_extents(struct snapshot *sn, uint64_t **out, size_t *n)
{
    size_t cap = 1024, k = 0;
    uint64_t *keys = malloc(cap * sizeof *keys);
    MDB_cursor *cur;
    MDB_val key, val;
    int rc = keys ? mdb_cursor_open(sn->txn, sn->st.extents, &cur) : ENOMEM;
    if (rc) {
        free(keys);
        return lmdb_to_cairn(rc);
    }
    for (rc = lmdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0; rc = lmdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        if (k + sn->ov_cap + 1 >= cap) {
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
        return lmdb_to_cairn(rc);
    }
    uint64_t *p = realloc(keys, (k + sn->ov_cap + 1) * sizeof *p);
    if (!p) {
        free(keys);
        return ENOMEM;
    }
    keys = p;
    for (size_t i = 0; i < sn->ov_cap; i++)
        if (sn->ov_keys[i])
            keys[k++] = sn->ov_keys[i] - 1;
    qsort(keys, k, sizeof *keys, cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (keys[i] < sn->st.pages / PAGES_PER_EXTENT && (u == 0 || keys[u - 1] != keys[i]))
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

/* Copy the catalog (every key but the checkpoint position, rewritten with
 * its checksum) from the snapshot into txn. */
static int copy_catalog(struct snapshot *sn, cairn_store *dst, MDB_txn *txn)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(sn->txn, sn->st.meta, &cur);
    if (rc)
        return rc;
    for (rc = lmdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = lmdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if ((k.mv_size == 8 && memcmp(k.mv_data, "ckpt_lsn", 8) == 0) ||
            (k.mv_size == 11 && memcmp(k.mv_data, "catalog_sum", 11) == 0))
            continue;
        if (v.mv_size > STORE_MAX_META_VALUE) { /* a damaged page's size: do not read past it */
            rc = CAIRN_CORRUPT;
            break;
        }
        if ((rc = lmdb_put(txn, dst->meta, &k, &v, 0)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND && rc != 0)
        return rc;
    return store_put_ckpt_lsn(dst, txn, sn->last_lsn);
}

struct compact_result {
    uint64_t extents, zero_dropped, raw, zbytes;
};

/* Build the compacted LMDB environment in directory dir. */
static int build_env(const char *sub, struct snapshot *sn, const char *dir, int level, struct compact_result *res)
{
    cairn_store dst;
    memset(&dst, 0, sizeof dst);
    cairn_options_init(&dst.opt);
    memcpy(dst.store_id, sn->st.store_id, 16);
    dst.pages = sn->st.pages;
    uint64_t *keys = NULL;
    size_t n = 0;
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    unsigned char *raw = malloc(BYTES_PER_EXTENT), *z = malloc(extent_bound());
    int rc = cctx && raw && z ? list_extents(sn, &keys, &n) : ENOMEM;
    if (rc == 0)
        rc = store_open_env(&dst, dir, 0, 1, &env);
    if (rc == 0)
        rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc == 0)
        rc = lmdb_dbi_open(txn, "meta", MDB_CREATE, &dst.meta);
    if (rc == 0)
        rc = lmdb_dbi_open(txn, "extents", MDB_CREATE | MDB_INTEGERKEY, &dst.extents);
    if (rc == 0)
        rc = copy_catalog(sn, &dst, txn);
    struct progress pr;
    progress_begin(&pr, "compact");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint64_t e = keys[i];
        progress_show(&pr, i + 1, n);
        rc = snapshot_read_extent(sn, e, raw);
        if (rc) {
            cmd_error(sub, "%s: extent %llu fails to decode; run cairn check", sn->st.path, (unsigned long long)e);
            break;
        }
        if (all_zero(raw)) {
            res->zero_dropped++;
            continue;
        }
        size_t len;
        rc = extent_encode(z, extent_bound(), &len, raw, e, sn->st.seed, level, cctx);
        MDB_val key = {sizeof e, &e}, val = {len, z};
        if (rc == 0)
            rc = lmdb_put(txn, dst.extents, &key, &val, MDB_APPEND);
        res->extents++;
        res->raw += BYTES_PER_EXTENT;
        res->zbytes += len;
        if (rc == 0 && res->extents % COMPACT_BATCH == 0) {
            rc = lmdb_txn_commit(txn);
            txn = NULL;
            if (rc == 0)
                rc = mdb_txn_begin(env, NULL, 0, &txn);
        }
    }
    progress_end(&pr);
    if (rc == 0) {
        rc = lmdb_txn_commit(txn);
        txn = NULL;
    }
    if (txn)
        mdb_txn_abort(txn);
    if (rc == 0)
        rc = mdb_env_sync(env, 1);
    if (rc && rc != CAIRN_CORRUPT)
        cmd_error(sub, "%s: writing the compacted copy: %s", dir, rc > 0 ? strerror(rc) : mdb_strerror(rc));
    if (env)
        mdb_env_close(env);
    ZSTD_freeCCtx(cctx);
    free(raw);
    free(z);
    free(keys);
    return lmdb_to_cairn(rc);
}

/* A fresh log in dirfd continuing at last_lsn + 1. */
static int new_log(const char *sub, int dirfd, const char *where, const uint8_t id[16], uint64_t last_lsn, int create)
{
    struct wal w;
    int rc = wal_open(&w, dirfd, id, create, 0);
    if (rc == 0)
        rc = wal_reset(&w, last_lsn + 1);
    wal_close(&w);
    if (rc)
        cmd_error(sub, "%s/wal: starting the log: %s", where, rc > 0 ? strerror(rc) : cairn_strerror(rc));
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

static int dict_estimate(struct snapshot *sn, int level)
{
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
    unsigned char *raw = malloc(BYTES_PER_EXTENT);
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
    if (ntrain < 4 || ntest < 1) {
        printf("dictionary estimate: too few non-empty extents (%zu) to train and measure\n", ntrain + ntest);
        goto out;
    }
    size_t dict_cap = 112640;
    unsigned char *dict = malloc(dict_cap);
    size_t dsize = dict ? ZDICT_trainFromBuffer(dict, dict_cap, train, sizes, (unsigned)nsamples) : 0;
    if (!dict || ZDICT_isError(dsize)) {
        printf("dictionary estimate: training failed: %s\n", dict ? ZDICT_getErrorName(dsize) : "out of memory");
        free(dict);
        goto out;
    }
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    ZSTD_CDict *cd1 = ZSTD_createCDict(dict, dsize, 1), *cdl = ZSTD_createCDict(dict, dsize, level);
    size_t bound = ZSTD_compressBound(BYTES_PER_EXTENT);
    unsigned char *z = malloc(bound);
    uint64_t sum[4] = {0};
    for (size_t i = 0; cctx && cd1 && cdl && z && i < ntest; i++) {
        const unsigned char *src = test + i * BYTES_PER_EXTENT;
        sum[0] += FMT_EXTENT_HEADER + ZSTD_compressCCtx(cctx, z, bound, src, BYTES_PER_EXTENT, 1);
        sum[1] += FMT_EXTENT_HEADER + ZSTD_compressCCtx(cctx, z, bound, src, BYTES_PER_EXTENT, level);
        sum[2] += FMT_EXTENT_HEADER + ZSTD_compress_usingCDict(cctx, z, bound, src, BYTES_PER_EXTENT, cd1);
        sum[3] += FMT_EXTENT_HEADER + ZSTD_compress_usingCDict(cctx, z, bound, src, BYTES_PER_EXTENT, cdl);
    }
    double rawb = (double)ntest * BYTES_PER_EXTENT;
    printf("dictionary estimate (nothing written: the format has no dictionary yet)\n");
    printf("  trained on %zu extents (%zu pages), measured on %zu other extents (%.1f MiB)\n", ntrain, nsamples, ntest,
           rawb / 1048576);
    printf("  dictionary %zu bytes\n", dsize);
    printf("  %-28s ratio %6.2f\n", "level 1 (checkpoint default)", rawb / (double)sum[0]);
    printf("  level %-2d                     ratio %6.2f\n", level, rawb / (double)sum[1]);
    printf("  %-28s ratio %6.2f\n", "level 1 + dictionary", rawb / (double)sum[2]);
    printf("  level %-2d + dictionary        ratio %6.2f\n", level, rawb / (double)sum[3]);
    ZSTD_freeCDict(cd1);
    ZSTD_freeCDict(cdl);
    ZSTD_freeCCtx(cctx);
    free(z);
    free(dict);
out:
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

int cmd_compact(int argc, char **argv)
{
    static const struct option opts[] = {{"level", required_argument, 0, 'l'},
                                         {"dict-estimate", no_argument, 0, 'd'},
                                         {"help", no_argument, 0, 'h'},
                                         {0}};
    uint64_t level = 19;
    int estimate = 0, c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'l' && parse_u64(optarg, &level) == 0 && level >= 1 && level <= 22)
            continue;
        else if (c == 'd')
            estimate = 1;
        else if (c == 'h')
            return fputs(compact_usage, stdout), CMD_OK;
        else
            return fputs(compact_usage, stderr), CMD_FAIL;
    }
    int nargs = argc - optind;
    if (nargs < 1 || nargs > 2 || (estimate && nargs != 1))
        return fputs(compact_usage, stderr), CMD_FAIL;
    const char *src = argv[optind], *dest = nargs == 2 ? argv[optind + 1] : NULL;
    struct snapshot *sn = NULL;
    int rc;

    if (estimate) {
        if ((rc = cmd_snapshot("compact", src, &sn)) != 0)
            return cmd_exit_for(rc);
        rc = dict_estimate(sn, (int)level);
        if (rc)
            cmd_error("compact", "%s: %s", src, cairn_strerror(rc));
        snapshot_close(sn);
        return rc ? cmd_exit_for(rc) : CMD_OK;
    }

    int lockfd = -1, dirfd;
    const char *staging;
    char *where = NULL;
    if (dest) {
        if ((dirfd = dest_prepare("compact", dest)) < 0)
            return CMD_FAIL;
        staging = "new.tmp";
    } else {
        /* In place: the store to ourselves, as a read-write opener would. */
        dirfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        lockfd = dirfd < 0 ? -1 : openat(dirfd, "lock", O_RDWR | O_CLOEXEC);
        if (lockfd < 0) {
            cmd_error("compact", "%s%s: %s", src, dirfd < 0 ? "" : "/lock", strerror(errno));
            if (dirfd >= 0)
                close(dirfd);
            return CMD_FAIL;
        }
        if (flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
            cmd_error("compact", "%s: %s (open in another process; compacting in place needs it to itself)", src,
                      errno == EWOULDBLOCK ? cairn_strerror(CAIRN_BUSY) : strerror(errno));
            close(lockfd);
            close(dirfd);
            return CMD_FAIL;
        }
        staging = "compact.tmp";
    }
    remove_staging(dirfd, staging);
    if (asprintf(&where, "%s/%s", dest ? dest : src, staging) < 0)
        abort();
    uint64_t before = 0;
    if ((rc = cmd_snapshot("compact", src, &sn)) != 0)
        goto fail;
    before = file_size(sn->st.dirfd, "data.mdb") + sn->log_bytes;
    if (mkdirat(dirfd, staging, 0755) != 0) {
        rc = errno;
        cmd_error("compact", "%s: %s", where, strerror(rc));
        goto fail;
    }
    struct compact_result res = {0};
    uint8_t id[16];
    memcpy(id, sn->st.store_id, 16);
    uint64_t last = sn->last_lsn;
    rc = build_env("compact", sn, where, (int)level, &res);
    snapshot_close(sn);
    sn = NULL;
    if (rc)
        goto fail;
    char staged[64];
    snprintf(staged, sizeof staged, "%s/data.mdb", staging);
    if (dest) {
        rc = new_log("compact", dirfd, dest, id, last, 1);
        if (rc == 0 && dest_finish("compact", dirfd, dest, staged) != 0)
            rc = EIO;
    } else {
        /* The swap: the old log's records are all <= last, so it stays
         * valid beside the new data.mdb until the new log replaces it. */
        if (renameat(dirfd, staged, dirfd, "data.mdb") != 0 || fsync(dirfd) != 0) {
            rc = errno;
            cmd_error("compact", "%s/data.mdb: replacing it: %s", src, strerror(rc));
        }
        if (rc == 0)
            rc = new_log("compact", dirfd, src, id, last, 0);
        /* LMDB's lock file described the old data file. */
        if (rc == 0)
            unlinkat(dirfd, "lock.mdb", 0);
    }
    if (rc)
        goto fail;
    remove_staging(dirfd, staging);
    const char *out = dest ? dest : src;
    uint64_t after = file_size(dirfd, "data.mdb") + file_size(dirfd, "wal");
    char b1[32], b2[32], b3[32], b4[32];
    printf("%s -> %s: %llu extents at level %llu (%llu all-zero dropped), %s raw -> %s, ratio %.2f\n", src, out,
           (unsigned long long)res.extents, (unsigned long long)level, (unsigned long long)res.zero_dropped,
           human_bytes(res.raw, b1), human_bytes(res.zbytes, b2),
           res.zbytes ? (double)res.raw / (double)res.zbytes : 0.0);
    printf("on disk %s -> %s (data.mdb + wal)\n", human_bytes(before, b3), human_bytes(after, b4));
    free(where);
    close(dirfd);
    if (lockfd >= 0)
        close(lockfd);
    return CMD_OK;
fail:
    snapshot_close(sn);
    remove_staging(dirfd, staging);
    free(where);
    close(dirfd);
    if (lockfd >= 0)
        close(lockfd);
    return cmd_exit_for(rc);
}
