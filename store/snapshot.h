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

struct snapshot {
    /* Catalog only: path, LMDB handles, store id, size, checkpoint LSN,
     * types.  No pager, no flusher; wal is the log as read. */
    cairn_store st;
    MDB_txn *txn; /* the LMDB snapshot, held until snapshot_close */
    struct layout layout;
    uint64_t last_lsn;  /* state = checkpoint plus every commit up to this LSN */
    uint64_t log_txns;  /* committed transactions replayed from the log */
    uint64_t log_bytes; /* size of the log when it was read */
    int retries;        /* times a checkpoint raced the open */
    /* Extents changed by the log, unswizzled: at most a batch of them in
     * memory (log), the rest spilled to an unlinked temporary file, one
     * 64 KiB image each, found by extent (open addressing on e + 1). */
    struct replay log;
    int spill_fd;
    struct extmap spilled; /* extent -> offset of its image in the file */
    uint64_t spill_end;
};

/* Every extent the log changed, sorted, into *out (malloc'd). */
int snapshot_changed_extents(const struct snapshot *snap, uint64_t **out, size_t *n);

/* The committed, unswizzled bytes of extent e (BYTES_PER_EXTENT) into raw.
 * CAIRN_CORRUPT if its LMDB value fails to decode (raw is then zero). */
int snapshot_read_extent(struct snapshot *snap, uint64_t e, void *raw);

/* The image of extent e if the log changed it, else NULL. */
const unsigned char *snapshot_overlay(const struct snapshot *snap, uint64_t e);

#endif
