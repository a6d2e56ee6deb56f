/*
 * snapshot.c - read a store's committed state without opening it.
 *
 * Consistency.  A checkpoint commits its extents to LMDB together with
 * ckpt_lsn = C, and only afterwards replaces the log by one starting at
 * LSN C + 1 (store/checkpoint.c, under the writer's log mutex).  So, with an
 * LMDB read transaction whose catalog says C, a log opened *after* that
 * transaction began is one of:
 *   - the log the checkpoint to C drained (all its records <= C, or, if
 *     its reset failed, followed by the commits after C): replay skips
 *     records <= C;
 *   - the log started at C + 1;
 *   - a log started later than C + 1: another checkpoint ran after our
 *     LMDB snapshot, and the records between are no longer in any file
 *     we can read.  Only this case is detected (start LSN > C + 1) and the
 *     whole read is retried with a newer LMDB snapshot.
 * Once opened, a log file is never rewritten in place (a reset renames a
 * new file over it; our descriptor keeps the old one), and replay applies
 * a transaction only when its commit record validates, so reading the log
 * while the writer appends to it yields a committed prefix.
 *
 * The replayed extents (replay.c) stay for the snapshot's life: a batch of
 * them in memory, the rest spilled to an unlinked temporary file, so
 * memory stays bounded however large the log is.
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

#include "snapshot.h"

#define SNAPSHOT_RETRIES 50

const unsigned char *snapshot_overlay(const struct snapshot *sn, uint64_t e)
{
    return replay_image(&sn->log, e);
}

/* ---- the spill: images beyond the batch, in a temporary file ---- */

/* Offset of extent e's image in the spill file, or -1. */
static int64_t spilled(const struct snapshot *sn, uint64_t e)
{
    uint64_t *at = extmap_get(&sn->spilled, e);
    return at ? (int64_t)*at : -1;
}

/* One image to or from the spill file.  A regular file reads and writes
 * whole unless it fails: a short write is the disk filling up. */
static int spill_io(int fd, void *buf, uint64_t off, int write)
{
    ssize_t n = write ? pwrite(fd, buf, BYTES_PER_EXTENT, (off_t)off) : pread(fd, buf, BYTES_PER_EXTENT, (off_t)off);
    if (n == (ssize_t)BYTES_PER_EXTENT)
        return 0;
    return n < 0 ? errno : write ? ENOSPC : EIO;
}

/* replay's flush: move every image held to the spill file.  An extent
 * spilled before keeps its place (its image was read back from there). */
static int spill(void *arg, uint64_t lsn)
{
    (void)lsn;
    struct snapshot *sn = arg;
    if (sn->spill_fd < 0) {
        const char *dir = getenv("TMPDIR");
        sn->spill_fd = open(dir && *dir ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (sn->spill_fd < 0) {
            int rc = errno;
            store_set_error(&sn->st, "%s: a temporary file for the log's extent images: %s", sn->st.path, strerror(rc));
            return rc;
        }
    }
    struct replay *r = &sn->log;
    uint64_t e, img;
    for (size_t i = 0; i < r->images.cap; i++) {
        if (!extmap_at(&r->images, i, &e, &img))
            continue;
        int64_t at = spilled(sn, e);
        if (at < 0) {
            if (extmap_put(&sn->spilled, e, sn->spill_end) != 0)
                return ENOMEM;
            at = (int64_t)sn->spill_end;
            sn->spill_end += BYTES_PER_EXTENT;
        }
        int rc = spill_io(sn->spill_fd, (void *)(uintptr_t)img, (uint64_t)at, 1);
        if (rc) {
            store_set_error(&sn->st, "%s: writing the log's extent images to a temporary file: %s", sn->st.path,
                            strerror(rc));
            return rc;
        }
    }
    replay_drop(r);
    return 0;
}

static int lmdb_or_spilled(struct snapshot *sn, uint64_t e, void *raw)
{
    int64_t at = spilled(sn, e);
    if (at >= 0)
        return spill_io(sn->spill_fd, raw, (uint64_t)at, 0);
    return replay_lmdb_image(&sn->st.cat, sn->txn, sn->st.dctx, e, raw);
}

/* replay's base: an extent spilled already continues from its image. */
static int base_image(void *arg, uint64_t e, void *raw)
{
    return lmdb_or_spilled(arg, e, raw);
}

int snapshot_get(struct snapshot *sn, unsigned i, uint64_t e, void *buf, const void **val, size_t *len)
{
    if (sn->broken)
        return CAIRN_IOERR;
    const unsigned char *img = snapshot_overlay(sn, e);
    if (img) {
        *val = img;
        return PAGESTORE_IMAGE;
    }
    int64_t at = spilled(sn, e);
    if (at >= 0) {
        *val = buf;
        return spill_io(sn->spill_fd, buf, (uint64_t)at, 0) ? CAIRN_IOERR : PAGESTORE_IMAGE;
    }
    MDB_val key = {sizeof e, &e}, v;
    int rc = lmdb_get(sn->reader_txn[i], sn->st.cat.extents, &key, &v);
    if (rc == MDB_NOTFOUND)
        return CAIRN_NOT_FOUND;
    if (rc)
        return lmdb_to_cairn(rc);
    *val = v.mv_data;
    *len = v.mv_size;
    return 0;
}

int snapshot_read_extent(struct snapshot *sn, uint64_t e, void *raw)
{
    const unsigned char *img = snapshot_overlay(sn, e);
    if (img) {
        memcpy(raw, img, BYTES_PER_EXTENT);
        return 0;
    }
    return lmdb_or_spilled(sn, e, raw);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int snapshot_changed_extents(const struct snapshot *sn, uint64_t **out, size_t *n)
{
    uint64_t *ext;
    size_t k;
    int rc = replay_extents(&sn->log, &ext, &k);
    if (rc)
        return rc;
    uint64_t *all = realloc(ext, (k + sn->spilled.used + 1) * sizeof *all);
    if (!all) {
        free(ext);
        return ENOMEM;
    }
    uint64_t e, at;
    for (size_t i = 0; i < sn->spilled.cap; i++)
        if (extmap_at(&sn->spilled, i, &e, &at))
            all[k++] = e;
    qsort(all, k, sizeof *all, cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (u == 0 || all[u - 1] != all[i])
            all[u++] = all[i];
    *out = all;
    *n = u;
    return 0;
}

static int begin_read(MDB_env *env, MDB_txn **out)
{
    int rc = mdb_txn_begin(env, NULL, MDB_RDONLY, out);
    if (rc)
        *out = NULL;
    return rc;
}

static void end_reads(struct snapshot *sn)
{
    for (unsigned i = 0; i < sn->readers; i++) {
        if (sn->reader_txn[i])
            mdb_txn_abort(sn->reader_txn[i]);
        sn->reader_txn[i] = NULL;
    }
    if (sn->txn)
        mdb_txn_abort(sn->txn);
    sn->txn = NULL;
}

/* The LMDB snapshot: txn and the readers' transactions, all on one
 * snapshot.  A writer that commits between two begins makes them differ;
 * then all begin again (a commit is rare next to a begin). */
static int begin_reads(struct snapshot *sn)
{
    cairn_store *s = &sn->st;
    int rc = 0;
    for (int attempt = 0; attempt < 1000; attempt++) {
        rc = begin_read(s->cat.env, &sn->txn);
        int same = 1;
        for (unsigned i = 0; rc == 0 && i < sn->readers && same; i++) {
            rc = begin_read(s->cat.env, &sn->reader_txn[i]);
            same = rc == 0 && mdb_txn_id(sn->reader_txn[i]) == mdb_txn_id(sn->txn);
        }
        if (rc == 0 && same) {
            /* A writer of another process may have grown data.mdb past
             * the zeros LMDB's map shows beyond its old end: map the file
             * again.  After the transactions began, so every page they can
             * see is in the file as measured.  Not with a writer of this
             * process sharing the map: it keeps the map right itself, and
             * zeros put there now could cover pages it commits next. */
            if (!catalog_env_has_writer(&s->cat))
                lmdb_file_follow(s->cat.env);
            return 0;
        }
        end_reads(sn);
        if (rc == MDB_MAP_RESIZED && (sn->refreshing || catalog_env_users(&s->cat) > 1)) {
            store_set_error(s,
                            "%s/data.mdb: a writer of another process grew LMDB's map, which this process can "
                            "adopt only with no transaction of it open: close this process's handles of the "
                            "store (a read-only one that refreshes holds its old snapshot) and open them again",
                            s->path);
            return CAIRN_BUSY;
        }
        if (rc == MDB_MAP_RESIZED) {
            /* The writer grew the map: adopt its size (no transaction of
             * this process is active on it now) and begin again. */
            mdb_env_set_mapsize(s->cat.env, 0);
            rc = 0;
            continue;
        }
        if (rc)
            break;
    }
    if (rc == 0) {
        store_set_error(s, "%s/data.mdb: the writer committed between every pair of read transactions begun", s->path);
        return CAIRN_BUSY;
    }
    store_set_error(s, "%s/data.mdb: cannot begin a read transaction (%s)", s->path, mdb_strerror(rc));
    return lmdb_to_cairn(rc);
}

/* One attempt: LMDB snapshot, catalog, then the log.  1 = retry. */
static int read_once(struct snapshot *sn)
{
    cairn_store *s = &sn->st;
    int rc = begin_reads(sn);
    if (rc)
        return rc;
    rc = catalog_check_file(&s->cat);
    if (rc)
        return rc;
    rc = store_read_catalog(s, sn->txn);
    if (rc)
        return rc;
    layout_init(&sn->layout, s->cat.pages);
    rc = store_open_log(s, 1);
    if (rc)
        return rc;
    if (s->wal.start_lsn > s->cat.ckpt_lsn + 1)
        return 1; /* a checkpoint ran after our LMDB snapshot, or the files do not belong together */
    struct stat st;
    sn->log_bytes = fstat(s->wal.fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    /* A batch of images in memory, the rest spilled (they stay for the
     * snapshot's life). */
    struct knobs knobs;
    knobs_read(&knobs);
    sn->log = (struct replay){.cat = &s->cat,
                              .txn = sn->txn,
                              .dctx = s->dctx,
                              .batch = knobs.test.recover_batch,
                              .base = base_image,
                              .flush = spill,
                              .arg = sn};
    rc = replay_log(&sn->log, &s->wal, s->cat.ckpt_lsn);
    uint64_t last = sn->log.last_lsn;
    sn->log_txns = sn->log.txns;
    if (rc == 0)
        rc = store_log_continues(s, s->cat.ckpt_lsn, s->wal.start_lsn, last);
    sn->last_lsn = last > s->cat.ckpt_lsn ? last : s->cat.ckpt_lsn;
    return rc;
}

/* A user who cannot write lock.mdb reads without an LMDB reader slot, so
 * a writer could reuse the pages our snapshot reads: hold the store's
 * lock shared for the snapshot's life instead (a writer's open then waits
 * or fails with CAIRN_BUSY).  Without a lock file there is no writer to
 * keep out: none ever opened the store where it could make one. */
static int keep_writers_out(cairn_store *s)
{
    s->lockfd = openat(s->dirfd, "lock", O_RDONLY | O_CLOEXEC);
    if (s->lockfd < 0)
        return errno == ENOENT ? 0 : errno;
    if (flock(s->lockfd, LOCK_SH | LOCK_NB) == 0)
        return 0;
    int rc = errno == EWOULDBLOCK ? CAIRN_BUSY : errno;
    store_set_error(s,
                    "%s: a writer holds the store, and this user, who cannot write lock.mdb, can read it only "
                    "while no writer does",
                    s->path);
    return rc;
}

/* Does a read-write opener hold the store now?  Its lock is exclusive;
 * a shared one taken and dropped at once tells, and writes nothing. */
static int writer_present(cairn_store *s)
{
    int fd = openat(s->dirfd, "lock", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd); /* drops ours, if taken */
    return held;
}

static void reset_attempt(struct snapshot *sn);

/* LMDB's state, then the log after it, retried while checkpoints race. */
static int read_state(struct snapshot *sn)
{
    cairn_store *s = &sn->st;
    int rc;
    sn->retries = 0;
    for (;;) {
        rc = read_once(sn);
        if (rc != 1)
            break;
        /* Without a writer no checkpoint can have raced us: the files do
         * not belong together. */
        if (!writer_present(s)) {
            rc = store_log_continues(s, s->cat.ckpt_lsn, s->wal.start_lsn, UINT64_MAX);
            break;
        }
        reset_attempt(sn);
        if (++sn->retries > SNAPSHOT_RETRIES) {
            store_set_error(s,
                            "%s: the log starts at LSN %llu, past the checkpoint at %llu + 1, in each of %d "
                            "attempts: checkpoints of the writer raced every attempt",
                            s->path, (unsigned long long)s->wal.start_lsn, (unsigned long long)s->cat.ckpt_lsn,
                            SNAPSHOT_RETRIES);
            rc = CAIRN_BUSY;
            break;
        }
        usleep(1000u << (sn->retries < 6 ? sn->retries : 6));
    }
    return rc;
}

static void reset_attempt(struct snapshot *sn)
{
    end_reads(sn);
    wal_close(&sn->st.wal);
    types_free(&sn->st);
    replay_free(&sn->log);
    if (sn->spill_fd >= 0)
        close(sn->spill_fd);
    sn->spill_fd = -1;
    extmap_free(&sn->spilled);
    sn->spill_end = 0;
    sn->log_txns = 0;
}

int snapshot_open(const char *path, struct snapshot **out, char *err, size_t errlen)
{
    return snapshot_open_readers(path, 0, NULL, out, err, errlen);
}

int snapshot_open_readers(const char *path, unsigned readers, const cairn_options *o, struct snapshot **out, char *err,
                          size_t errlen)
{
    if (readers > SNAPSHOT_READERS)
        return CAIRN_INVALID;
    struct snapshot *sn = calloc(1, sizeof *sn);
    if (!sn) {
        snprintf(err, errlen, "out of memory");
        return ENOMEM;
    }
    sn->readers = readers;
    sn->spill_fd = -1;
    cairn_store *s = &sn->st;
    store_handle_init(s, o);
    s->readonly = 1;
    int rc = ENOMEM;
    s->path = strdup(path);
    s->dctx = ZSTD_createDCtx();
    if (!s->path || !s->dctx)
        goto fail;
    s->cat.path = s->path;
    s->cat.error = store_catalog_error;
    s->cat.error_arg = s;
    s->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0) {
        rc = errno;
        store_set_error(s, "%s: %s", path, strerror(rc));
        goto fail;
    }
    if (faccessat(s->dirfd, "data.mdb", R_OK, 0) != 0) {
        rc = errno;
        store_set_error(s, "%s/data.mdb: %s (not a cairn store?)", path, strerror(rc));
        goto fail;
    }
    rc = catalog_open_env(&s->cat, path, MDB_RDONLY, 0, s->opt.max_bytes);
    if (rc) {
        if (!s->errmsg[0]) /* catalog_open_env names what it found wrong */
            store_set_error(s, "%s/data.mdb: LMDB cannot open it (%s)", path, cairn_strerror(rc));
        goto fail;
    }
    if (s->cat.no_lock && (rc = keep_writers_out(s)) != 0)
        goto fail;
    rc = read_state(sn);
    if (rc)
        goto fail;
    *out = sn;
    return 0;
fail:
    snprintf(err, errlen, "%s", s->errmsg[0] ? s->errmsg : cairn_strerror(rc));
    snapshot_close(sn);
    return rc;
}

/* ---- refresh: a new state beside the old one ---- */

/* Move the state (what read_state builds) out of sn into v, leaving sn
 * empty; or back. */
static void view_take(struct snapshot *sn, struct snapshot_view *v)
{
    cairn_store *s = &sn->st;
    v->txn = sn->txn;
    memcpy(v->reader_txn, sn->reader_txn, sizeof v->reader_txn);
    v->log = sn->log;
    v->spill_fd = sn->spill_fd;
    v->spilled = sn->spilled;
    v->spill_end = sn->spill_end;
    v->last_lsn = sn->last_lsn;
    v->log_txns = sn->log_txns;
    v->log_bytes = sn->log_bytes;
    v->ckpt_lsn = s->cat.ckpt_lsn;
    v->wal = s->wal;
    v->types = s->types;
    v->n_types = s->n_types;
    sn->txn = NULL;
    memset(sn->reader_txn, 0, sizeof sn->reader_txn);
    memset(&sn->log, 0, sizeof sn->log);
    sn->spill_fd = -1;
    memset(&sn->spilled, 0, sizeof sn->spilled);
    sn->spill_end = sn->last_lsn = sn->log_txns = sn->log_bytes = 0;
    memset(&s->wal, 0, sizeof s->wal);
    s->wal.fd = -1;
    s->types = NULL;
    s->n_types = 0;
}

static void view_put(struct snapshot *sn, struct snapshot_view *v)
{
    cairn_store *s = &sn->st;
    sn->txn = v->txn;
    memcpy(sn->reader_txn, v->reader_txn, sizeof v->reader_txn);
    sn->log = v->log;
    sn->spill_fd = v->spill_fd;
    sn->spilled = v->spilled;
    sn->spill_end = v->spill_end;
    sn->last_lsn = v->last_lsn;
    sn->log_txns = v->log_txns;
    sn->log_bytes = v->log_bytes;
    s->cat.ckpt_lsn = v->ckpt_lsn;
    s->wal = v->wal;
    s->types = v->types;
    s->n_types = v->n_types;
    sn->log.arg = sn;
}

/* Has nothing but appends to the log happened since the state was read?
 * LMDB has had no commit (no checkpoint, no type registered) and "wal" is
 * still the file read (a reset renames a new one over it). */
static int only_appended(struct snapshot *sn)
{
    cairn_store *s = &sn->st;
    MDB_envinfo info;
    struct stat now, ours;
    return sn->txn && mdb_env_info(s->cat.env, &info) == 0 && info.me_last_txnid == mdb_txn_id(sn->txn) &&
           fstatat(s->dirfd, "wal", &now, 0) == 0 && fstat(s->wal.fd, &ours) == 0 && now.st_ino == ours.st_ino &&
           now.st_dev == ours.st_dev;
}

int snapshot_refresh(struct snapshot *sn, struct snapshot_view *old)
{
    cairn_store *s = &sn->st;
    memset(old, 0, sizeof *old);
    old->spill_fd = old->wal.fd = -1;
    if (only_appended(sn)) {
        /* The same LMDB state and log: go on reading the log where the
         * last read stopped, into the same images (the cost is what was
         * appended).  No old state to keep: snapshot_changed only needs
         * its last LSN. */
        old->last_lsn = sn->last_lsn;
        old->ckpt_lsn = s->cat.ckpt_lsn;
        int rc = replay_more(&sn->log, &s->wal);
        if (rc == 0) {
            sn->log_txns = sn->log.txns;
            sn->last_lsn = sn->log.last_lsn > s->cat.ckpt_lsn ? sn->log.last_lsn : s->cat.ckpt_lsn;
            struct stat st;
            sn->log_bytes = fstat(s->wal.fd, &st) == 0 ? (uint64_t)st.st_size : sn->log_bytes;
            sn->broken = 0;
            return 0;
        }
        /* Part of a transaction may be in the images now: build the state
         * anew (below); if that fails too, the images cannot be trusted. */
        sn->broken = 1;
    }
    view_take(sn, old);
    sn->refreshing = 1; /* the old state's transactions stay open meanwhile */
    int rc = read_state(sn);
    sn->refreshing = 0;
    if (rc) {
        reset_attempt(sn);
        view_put(sn, old);
        memset(old, 0, sizeof *old);
        old->spill_fd = old->wal.fd = -1;
        return rc;
    }
    sn->broken = 0;
    return 0;
}

void snapshot_view_free(struct snapshot *sn, struct snapshot_view *v)
{
    struct snapshot_view now;
    view_take(sn, &now);
    view_put(sn, v);
    reset_attempt(sn);
    view_put(sn, &now);
}

int snapshot_changed(struct snapshot *sn, const struct snapshot_view *old, uint64_t e)
{
    uint64_t *t = extmap_get(&sn->log.touched, e);
    if (t && *t > old->last_lsn)
        return 1; /* a record after the old state */
    if (sn->st.cat.ckpt_lsn == old->ckpt_lsn)
        return 0; /* same checkpoint, no record after the old state */
    /* Checkpoints ran between: LMDB's record of e in the two states.  The
     * old transaction is still open, so no page it sees was reused: the
     * same record at the same place is the same bytes. */
    MDB_val k = {sizeof e, &e}, a, b;
    int ra = lmdb_get(old->txn, sn->st.cat.extents, &k, &a);
    int rb = lmdb_get(sn->txn, sn->st.cat.extents, &k, &b);
    if (ra == MDB_NOTFOUND && rb == MDB_NOTFOUND)
        return 0;
    return ra || rb || a.mv_data != b.mv_data || a.mv_size != b.mv_size;
}

void snapshot_close(struct snapshot *sn)
{
    if (!sn)
        return;
    cairn_store *s = &sn->st;
    reset_attempt(sn);
    catalog_close_env(&s->cat);
    ZSTD_freeDCtx(s->dctx);
    if (s->dirfd >= 0)
        close(s->dirfd);
    if (s->lockfd >= 0)
        close(s->lockfd);
    store_handle_destroy(s);
    free(sn);
}

const char *snapshot_errmsg(const struct snapshot *sn)
{
    return sn->st.errmsg;
}

void snapshot_info(const struct snapshot *sn, struct snapshot_info *out)
{
    const cairn_store *s = &sn->st;
    memset(out, 0, sizeof *out);
    out->path = s->path;
    memcpy(out->store_id, s->cat.store_id, 16);
    out->format = STORE_FORMAT_VERSION;
    out->page_bytes = PAGE_BYTES;
    out->extent_pages = PAGES_PER_EXTENT;
    out->pages = s->cat.pages;
    out->ckpt_lsn = s->cat.ckpt_lsn;
    out->last_lsn = sn->last_lsn;
    out->log_txns = sn->log_txns;
    out->log_bytes = sn->log_bytes;
    out->log_generation = s->wal.generation;
    out->log_start_lsn = s->wal.start_lsn;
    out->extents_changed_by_log = sn->spilled.used;
    uint64_t e, img;
    for (size_t i = 0; i < sn->log.images.cap; i++) /* in memory and not spilled too */
        if (extmap_at(&sn->log.images, i, &e, &img) && spilled(sn, e) < 0)
            out->extents_changed_by_log++;
    out->retries = sn->retries;
}
