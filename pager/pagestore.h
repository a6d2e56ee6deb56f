/*
 * pagestore.h - where extents live while they are not in memory: the
 * interface the pager loads extents through and the checkpoint writes
 * them through.  An extent's stored record is opaque here (the extent
 * codec, extent.c, makes and checks it); the page store keeps records by
 * extent number, and one checkpoint position with them.
 *
 * LMDB is the one implementation (pagestore_lmdb.c).  The interface is
 * the seam where a page store on another engine would plug in (see
 * docs/DESIGN.md, "Scale-out").
 *
 * Signal-safety contract.  read_begin, get and read_end run on the fault
 * path: inside a SIGSEGV/SIGBUS handler, on whichever thread touched a
 * page, possibly while that thread holds malloc's or stdio's locks or is
 * inside this library.  An implementation of those three must be
 * async-signal-safe: no malloc, no stdio, no lock the interrupted code
 * could hold, no wait on anything a faulting thread holds (bounded spins
 * on steps that finish without faulting are allowed), and it must not
 * touch the store's client view.  Each reader is used by one thread at a
 * time (the pager's load slots).  Everything else runs in normal context;
 * write is called with the store's log mutex held, never concurrently
 * with itself.
 */
#ifndef CAIRN_PAGESTORE_H
#define CAIRN_PAGESTORE_H

#include <stddef.h>
#include <stdint.h>

struct pagestore;
struct pagestore_reader;

/* One record of a write batch: extent e, its record (len bytes), or a
 * deletion (val NULL: the extent is zero again). */
struct pagestore_record {
    uint64_t e;
    const void *val;
    size_t len;
};
/* The batch is produced one record at a time (so a checkpoint never holds
 * every compressed extent at once): fills *rec for record i of n; 0 or an
 * error, which aborts the write. */
typedef int (*pagestore_record_fn)(void *ctx, size_t i, struct pagestore_record *rec);

/* get's answer when the page store holds extent e as its pages rather
 * than as a record: *val is BYTES_PER_EXTENT bytes, unswizzled, ready to
 * be swizzled (a snapshot's extents replayed from the log). */
#define PAGESTORE_IMAGE 1

struct pagestore_ops {
    /* A reader for the fault path, prepared in normal context.
     * CAIRN_FULL when the page store serves no more readers: the pager
     * loads through the ones it got (at least one). */
    int (*reader_open)(struct pagestore *ps, struct pagestore_reader **out);
    void (*reader_close)(struct pagestore_reader *r);
    /* Signal-safe.  Begin a read: the reader sees the state of the last
     * completed write (or of the open). */
    int (*read_begin)(struct pagestore_reader *r);
    /* Signal-safe.  The record of extent e: 0 with *val, *len valid until
     * read_end; PAGESTORE_IMAGE with *val its pages (see above);
     * CAIRN_NOT_FOUND when e holds no record (its pages are zero);
     * CAIRN_CORRUPT, CAIRN_IOERR or an errno. */
    int (*get)(struct pagestore_reader *r, uint64_t e, const void **val, size_t *len);
    /* Signal-safe.  End the read begun by read_begin. */
    void (*read_end)(struct pagestore_reader *r);

    /* Write n records and the checkpoint position together, atomically
     * and durably: after a crash the store holds all of them and the new
     * position, or none of them and the old one.  CAIRN_FULL when the
     * store has no room (nothing written), CAIRN_CORRUPT, CAIRN_IOERR or
     * an errno. */
    int (*write)(struct pagestore *ps, size_t n, pagestore_record_fn record, void *ctx, uint64_t position);
    /* The checkpoint position of the last completed write. */
    int (*position)(struct pagestore *ps, uint64_t *out);
};

struct pagestore {
    const struct pagestore_ops *ops;
};

/* ---- pagestore_lmdb.c: extents in an LMDB database ---- */

#include <lmdb.h>

struct pagestore_lmdb_config {
    MDB_env *env;
    MDB_dbi extents; /* MDB_INTEGERKEY: extent number -> record */
    /* The position lives beside the records, where the owner keeps it (the
     * catalog, with its checksum): put inside the write transaction, get
     * inside a read one. */
    int (*put_position)(void *arg, MDB_txn *txn, uint64_t position);
    int (*get_position)(void *arg, MDB_txn *txn, uint64_t *position);
    /* Begin an LMDB transaction the owner's way (file checks, padding). */
    int (*txn_begin)(void *arg, unsigned flags, MDB_txn **out);
    void *arg;
    /* Where messages go (a damaged record), and the store they name. */
    void (*error)(void *arg, const char *msg);
    const char *name;
};
int pagestore_lmdb_open(const struct pagestore_lmdb_config *cfg, struct pagestore **out);
void pagestore_lmdb_close(struct pagestore *ps);
/* Growing LMDB's map needs every reader out of LMDB: close the gate the
 * fault path's reads enter and wait for those inside; reopen it.  After
 * pagestore_lmdb_lost (the map could not be restored) every read fails
 * with CAIRN_IOERR. */
void pagestore_lmdb_quiesce(struct pagestore *ps);
void pagestore_lmdb_resume(struct pagestore *ps);
void pagestore_lmdb_lost(struct pagestore *ps);
int pagestore_lmdb_is_lost(struct pagestore *ps);

#endif
