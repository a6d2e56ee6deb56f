/*
 * checkpoint.c - writing committed pages back to LMDB, and the background
 * flusher that does it when the log grows.
 *
 * A checkpoint:
 *   1. under the log mutex: takes the unflushed pages, the last committed
 *      LSN (the checkpoint LSN) and the log position after it, and asks
 *      the pager to keep the committed state as of now for it;
 *   2. without it, commits going on: rebuilds the extents holding those
 *      pages from that state, unswizzles and compresses them, and the
 *      page store writes them with the checkpoint LSN in one atomic,
 *      durable step (pagestore.h; in LMDB one write transaction, the
 *      position in the catalog);
 *   3. under the log mutex again: marks the pages flushed (but those
 *      committed again meanwhile) and starts a new log carrying the
 *      records after the checkpoint LSN (wal_restart).
 * A crash before 2 completes leaves LMDB as it was and the log intact; a
 * crash between 2 and 3 leaves a log whose records up to the checkpoint
 * LSN recovery skips, and whose later ones it replays.  An open
 * transaction is not disturbed: its pages stay writable and its
 * before-images stay put.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store_internal.h"

static int is_zero(const void *raw)
{
    const uint64_t *w = raw;
    for (size_t i = 0; i < BYTES_PER_EXTENT / 8; i++)
        if (w[i])
            return 0;
    return 1;
}

/* The records of a checkpoint, made one at a time as the page store asks. */
struct checkpoint_batch {
    cairn_store *s;
    const uint64_t *ext;
    extent_source_fn get;
    void *ctx;
    unsigned char *raw;
    uint64_t zin, zout;
};

static int next_record(void *arg, size_t i, struct pagestore_record *rec)
{
    struct checkpoint_batch *b = arg;
    cairn_store *s = b->s;
    rec->e = b->ext[i];
    int rc = b->get(b->ctx, rec->e, b->raw);
    if (rc)
        return rc;
    if (is_zero(b->raw)) { /* no record: the extent reads as zero */
        rec->val = NULL;
        rec->len = 0;
        return 0;
    }
    rc = extent_encode(s->zbuf, extent_bound(), &rec->len, b->raw, rec->e, s->cat.seed, s->opt.compression_level,
                       s->cctx);
    rec->val = s->zbuf; /* the page store copies it before asking for the next */
    b->zin += BYTES_PER_EXTENT;
    b->zout += rec->len;
    return rc;
}

static int write_extents_once(cairn_store *s, const uint64_t *ext, size_t n, extent_source_fn get, void *ctx,
                              uint64_t ckpt_lsn)
{
    struct checkpoint_batch b = {.s = s, .ext = ext, .get = get, .ctx = ctx, .raw = malloc(BYTES_PER_EXTENT)};
    if (!b.raw)
        return ENOMEM;
    int rc = s->pagestore->ops->write(s->pagestore, n, next_record, &b, ckpt_lsn);
    free(b.raw);
    if (rc)
        return rc;
    atomic_fetch_add(&s->bytes_uncompressed, b.zin);
    atomic_fetch_add(&s->bytes_compressed, b.zout);
    return 0;
}

/* One LMDB transaction; when the map is full, grow it and try again (the
 * transaction was aborted, so nothing of it is in LMDB). */
int checkpoint_write_extents(cairn_store *s, const uint64_t *ext, size_t n, extent_source_fn get, void *ctx,
                             uint64_t ckpt_lsn)
{
    /* The log must be durable up to ckpt_lsn before LMDB says so: a log
     * that lost its tail beside a data.mdb past it would not belong
     * together (store_log_continues).  Commits sync already unless
     * CAIRN_SYNC_OFF, and recovery may replay records that a crashed
     * process left only in the page cache; otherwise this costs nothing. */
    if (s->wal.fd >= 0 && wal_sync(&s->wal, ckpt_lsn) != 0)
        return CAIRN_IOERR;
    for (;;) {
        pthread_rwlock_rdlock(&s->lmdb_lock);
        int rc = write_extents_once(s, ext, n, get, ctx, ckpt_lsn);
        pthread_rwlock_unlock(&s->lmdb_lock);
        if (rc != CAIRN_FULL || s->readonly)
            return rc;
        int grown = store_grow_map(s);
        if (grown)
            return grown == CAIRN_IOERR ? grown : CAIRN_FULL; /* cannot grow further: a real full */
    }
}

/* The extent as of the checkpoint's start (pager_checkpoint_begin). */
static int read_checkpoint_extent(void *ctx, uint64_t e, void *raw)
{
    struct pager *p = ctx;
    for (uint64_t i = 0; i < PAGES_PER_EXTENT; i++) {
        /* Extents with unflushed pages are never evicted, so 1 cannot come
         * back here; an error of the descriptor page can. */
        int rc = pager_read_checkpoint(p, e * PAGES_PER_EXTENT + i, (char *)raw + i * PAGE_BYTES);
        if (rc)
            return rc < 0 ? rc : CAIRN_IOERR;
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* What a checkpoint takes at its start, under the log mutex. */
struct checkpoint_start {
    size_t n;      /* unflushed pages it covers: the first n of the list */
    uint64_t *ext; /* their extents, sorted, once each */
    size_t ne;
    uint64_t lsn;       /* the last commit it covers */
    uint64_t log_from;  /* where the records after lsn begin in the log */
    uint64_t log_chain; /* the checksum of the record before log_from */
};

/* Step 1, under log_mutex: 1 if there is work (then the pager reads the
 * state as of now until pager_checkpoint_done), 0 if none, or an error. */
static int checkpoint_begin(cairn_store *s, uint64_t min_log, struct checkpoint_start *c)
{
    struct pager *p = s->pager;
    int rc = store_failed(s);
    if (rc)
        return rc;
    c->n = p->n_unflushed;
    c->lsn = s->wal.next_lsn - 1;
    c->log_from = s->wal.end;
    c->log_chain = s->wal.chain;
    if ((c->n == 0 && s->wal.end == WAL_HEADER_SIZE) || s->wal.end < min_log)
        return 0;
    c->ext = malloc((c->n ? c->n : 1) * sizeof *c->ext);
    if (!c->ext)
        return ENOMEM;
    for (size_t i = 0; i < c->n; i++)
        c->ext[i] = p->unflushed[i] / PAGES_PER_EXTENT;
    qsort(c->ext, c->n, sizeof *c->ext, cmp_u64);
    c->ne = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->ne == 0 || c->ext[c->ne - 1] != c->ext[i])
            c->ext[c->ne++] = c->ext[i];
    pager_checkpoint_begin(p);
    return 1;
}

/* Step 3, under log_mutex, after the page store wrote the extents (rc 0)
 * or failed to (rc): mark them flushed and start a new log carrying the
 * records committed meanwhile. */
static int checkpoint_end(cairn_store *s, const struct checkpoint_start *c, int rc)
{
    pager_checkpoint_done(s->pager, rc ? 0 : c->n);
    if (rc) {
        if (rc != CAIRN_FULL && rc != ENOSPC)
            return store_fail(s, CAIRN_IOERR, "checkpoint failed (%s); reopen the store", cairn_strerror(rc));
        store_set_error(s, "checkpoint: disk or LMDB map full");
        return CAIRN_FULL;
    }
    s->cat.ckpt_lsn = c->lsn;
    atomic_fetch_add(&s->checkpoints, 1);
    /* If the restart fails before its rename, the old log stays valid: its
     * records up to the checkpoint are skipped by recovery, the ones after
     * it chain on, and so do later commits.  If it fails after, the new
     * log may not survive a crash: stop committing (LMDB and the old log
     * hold everything acknowledged, a reopen is clean). */
    rc = wal_restart(&s->wal, c->lsn + 1, c->log_from, c->log_chain);
    if (rc == CAIRN_IOERR || (rc && rc != ENOSPC && rc != EDQUOT))
        return store_fail(s, CAIRN_IOERR, "checkpoint: starting a new log failed; reopen the store");
    if (rc) {
        store_set_error(s, "checkpoint: disk full starting a new log (the old one is kept)");
        return CAIRN_FULL;
    }
    return 0;
}

/* The test hook: commits (and crashes) land inside a checkpoint. */
static void test_pause(cairn_store *s)
{
    unsigned long ms = s->knobs.test.checkpoint_pause_ms;
    if (ms) {
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/*
 * A checkpoint holds ckpt_mutex throughout (one at a time, and nothing
 * that must see no checkpoint in flight runs beside it: check, gc) and
 * the log mutex only at its start and its end, so commits go on while it
 * compresses and writes LMDB.  They change no byte it reads: the pager
 * keeps the state as of its start for it (pager_checkpoint_begin).
 */
int checkpoint_run(cairn_store *s, uint64_t min_log)
{
    struct checkpoint_start c = {0};
    pthread_mutex_lock(&s->ckpt_mutex);
    pthread_mutex_lock(&s->log_mutex);
    int rc = checkpoint_begin(s, min_log, &c);
    pthread_mutex_unlock(&s->log_mutex);
    if (rc == 1) {
        test_pause(s);
        rc = checkpoint_write_extents(s, c.ext, c.ne, read_checkpoint_extent, s->pager, c.lsn);
        test_pause(s);
        pthread_mutex_lock(&s->log_mutex);
        rc = checkpoint_end(s, &c, rc);
        pthread_mutex_unlock(&s->log_mutex);
    }
    pthread_mutex_unlock(&s->ckpt_mutex);
    free(c.ext);
    return rc;
}

static void *flusher_main(void *arg)
{
    cairn_store *s = arg;
    pthread_mutex_lock(&s->flush_mutex);
    while (!s->flusher_quit) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&s->flush_cond, &s->flush_mutex, &ts);
        if (s->flusher_quit)
            break;
        pthread_mutex_unlock(&s->flush_mutex);
        checkpoint_run(s, s->opt.checkpoint_bytes);
        pthread_mutex_lock(&s->flush_mutex);
    }
    pthread_mutex_unlock(&s->flush_mutex);
    return NULL;
}

int checkpoint_flusher_start(cairn_store *s)
{
    /* The flusher must never take a fault: block nothing special, but it
     * only ever reads the private view and the shadow. */
    int rc = pthread_create(&s->flusher, NULL, flusher_main, s);
    if (rc)
        return rc;
    s->flusher_started = 1;
    return 0;
}

void checkpoint_poke(cairn_store *s)
{
    pthread_mutex_lock(&s->flush_mutex);
    pthread_cond_signal(&s->flush_cond);
    pthread_mutex_unlock(&s->flush_mutex);
}

void checkpoint_flusher_stop(cairn_store *s)
{
    if (!s->flusher_started)
        return;
    pthread_mutex_lock(&s->flush_mutex);
    s->flusher_quit = 1;
    pthread_cond_signal(&s->flush_cond);
    pthread_mutex_unlock(&s->flush_mutex);
    pthread_join(s->flusher, NULL);
    s->flusher_started = 0;
}
