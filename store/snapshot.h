/*
 * snapshot.h - a store's committed state, read without opening the store
 * (the calls on it are in inspect.h; this is its inside).
 *
 * An LMDB read transaction (the checkpointed
 * extents and the catalog) plus the log's committed transactions after
 * that checkpoint, replayed in memory.  It takes no lock and writes
 * nothing, so it works while another process has the store open: LMDB
 * serves readers of other processes through lock.mdb, and the log is only
 * ever appended to or replaced by rename.  Internal.
 */
#ifndef CAIRN_SNAPSHOT_H
#define CAIRN_SNAPSHOT_H

#include "inspect.h"
#include "replay.h"

#define SNAPSHOT_READERS 4 /* a read-only handle's concurrent loads */

struct snapshot {
    /* Catalog only: path, LMDB handles, store id, size, checkpoint LSN,
     * types.  No pager, no flusher; wal is the log as read. */
    cairn_store st;
    MDB_txn *txn; /* the LMDB snapshot, held until snapshot_close */
    /* A read-only handle's fault path: one LMDB read transaction per load
     * slot, each on txn's snapshot (equal transaction ids), so that loads
     * run in parallel without sharing a transaction. */
    MDB_txn *reader_txn[SNAPSHOT_READERS];
    unsigned readers;
    struct layout layout;
    uint64_t last_lsn;  /* state = checkpoint plus every commit up to this LSN */
    uint64_t log_txns;  /* committed transactions replayed from the log */
    uint64_t log_bytes; /* size of the log when it was read */
    int retries;        /* times a checkpoint raced the open */
    int broken;         /* a failed refresh left the images half-updated: every load fails */
    int refreshing;     /* snapshot_refresh is building a new state beside the old */
    /* Extents changed by the log, unswizzled: at most a batch of them in
     * memory (log), the rest spilled to an unlinked temporary file, one
     * 64 KiB image each, found by extent (open addressing on e + 1). */
    struct replay log;
    int spill_fd;
    struct extmap spilled; /* extent -> offset of its image in the file */
    uint64_t spill_end;
};

/* snapshot_open, with `readers` (at most SNAPSHOT_READERS) transactions
 * for a read-only handle's fault path in reader_txn, and the handle's
 * options (NULL: the defaults; max_bytes sizes LMDB's map as for a
 * writer). */
int snapshot_open_readers(const char *path, unsigned readers, const cairn_options *o, struct snapshot **out, char *err,
                          size_t errlen);

/* Async-signal-safe (the fault path of a read-only handle): extent e as
 * reader i sees it.  PAGESTORE_IMAGE with *val its pages (replayed from
 * the log; buf, BYTES_PER_EXTENT bytes, receives one that was spilled), 0
 * with *val, *len its LMDB record, CAIRN_NOT_FOUND when it holds none, or
 * an error. */
int snapshot_get(struct snapshot *sn, unsigned i, uint64_t e, void *buf, const void **val, size_t *len);

/* The snapshot as the page store of a read-only handle's pager: readers
 * are reader_txn[0..readers); no write.  Closed before the snapshot. */
int snapshot_pagestore_open(struct snapshot *sn, struct pagestore **out);
void snapshot_pagestore_close(struct pagestore *ps);

/* A snapshot's state, as snapshot_refresh hands the old one back. */
struct snapshot_view {
    MDB_txn *txn, *reader_txn[SNAPSHOT_READERS];
    struct replay log;
    int spill_fd;
    struct extmap spilled;
    uint64_t spill_end, last_lsn, log_txns, log_bytes, ckpt_lsn;
    struct wal wal;
    struct type_info *types;
    size_t n_types;
};

/* Move sn to the newest committed state (as a new open would read it);
 * the old state goes to *old, still valid (its transactions open) until
 * snapshot_view_free.  On failure sn keeps its state and *old is empty. */
int snapshot_refresh(struct snapshot *sn, struct snapshot_view *old);
void snapshot_view_free(struct snapshot *sn, struct snapshot_view *v);
/* Could extent e differ between *old and sn's state?  Exact for what the
 * log changed; for what checkpoints in between wrote, 1 unless LMDB holds
 * the same record at the same place in both (so at worst an extent is
 * reloaded that did not change). */
int snapshot_changed(struct snapshot *sn, const struct snapshot_view *old, uint64_t e);

/* Every extent the log changed, sorted, into *out (malloc'd). */
int snapshot_changed_extents(const struct snapshot *snap, uint64_t **out, size_t *n);

/* The committed, unswizzled bytes of extent e (BYTES_PER_EXTENT) into raw.
 * CAIRN_CORRUPT if its LMDB value fails to decode (raw is then zero). */
int snapshot_read_extent(struct snapshot *snap, uint64_t e, void *raw);

/* The image of extent e if the log changed it, else NULL. */
const unsigned char *snapshot_overlay(const struct snapshot *snap, uint64_t e);

#endif
