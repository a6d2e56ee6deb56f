/*
 * pagestore_snapshot.c - a snapshot (snapshot.c) as the page store of a
 * read-only handle's pager (pagestore.h).
 *
 * Each reader is one of the snapshot's reader transactions, all on the
 * same LMDB snapshot, so loads in parallel see one state; an extent the
 * log changed after the checkpoint is served as its replayed pages
 * (PAGESTORE_IMAGE).  The transactions stay open for the snapshot's life:
 * read_begin and read_end have nothing to do, and LMDB keeps every page
 * they can see (see docs/DESIGN.md, "Readers").  Nothing is written.
 */
#include <errno.h>
#include <stdlib.h>

#include "snapshot.h"

struct snapshot_store {
    struct pagestore ps;
    struct snapshot *sn;
    unsigned next; /* readers handed out */
};

struct pagestore_reader {
    struct snapshot_store *ss;
    unsigned i;
    unsigned char *buf; /* a spilled image, read back */
};

static int reader_open(struct pagestore *ps, struct pagestore_reader **out)
{
    struct snapshot_store *ss = (struct snapshot_store *)ps;
    if (ss->next >= ss->sn->readers)
        return CAIRN_FULL;
    struct pagestore_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->buf = malloc(BYTES_PER_EXTENT))) {
        free(r);
        return ENOMEM;
    }
    r->ss = ss;
    r->i = ss->next++;
    *out = r;
    return 0;
}

static void reader_close(struct pagestore_reader *r)
{
    if (r) {
        free(r->buf);
        free(r);
    }
}

static int read_begin(struct pagestore_reader *r)
{
    (void)r;
    return 0;
}

static int get(struct pagestore_reader *r, uint64_t e, const void **val, size_t *len)
{
    return snapshot_get(r->ss->sn, r->i, e, r->buf, val, len);
}

static void read_end(struct pagestore_reader *r)
{
    (void)r;
}

static int write_batch(struct pagestore *ps, size_t n, pagestore_record_fn record, void *ctx, uint64_t position)
{
    (void)ps, (void)n, (void)record, (void)ctx, (void)position;
    return CAIRN_READONLY;
}

static int position(struct pagestore *ps, uint64_t *out)
{
    *out = ((struct snapshot_store *)ps)->sn->last_lsn;
    return 0;
}

static const struct pagestore_ops snapshot_ops = {
    .reader_open = reader_open,
    .reader_close = reader_close,
    .read_begin = read_begin,
    .get = get,
    .read_end = read_end,
    .write = write_batch,
    .position = position,
};

int snapshot_pagestore_open(struct snapshot *sn, struct pagestore **out)
{
    struct snapshot_store *ss = calloc(1, sizeof *ss);
    if (!ss)
        return ENOMEM;
    ss->ps.ops = &snapshot_ops;
    ss->sn = sn;
    *out = &ss->ps;
    return 0;
}

void snapshot_pagestore_close(struct pagestore *ps)
{
    free(ps);
}
