/*
 * catalog.h - the LMDB environment of a store and its catalog: the two
 * databases, the store id, the store's size, the checkpoint position, and
 * the name of every catalog key (docs/FORMAT.md, section 3).  Everything
 * that opens data.mdb (the store, the snapshot reader, backup, compact)
 * does it through here.  Internal.
 */
#ifndef CAIRN_CATALOG_H
#define CAIRN_CATALOG_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_FORMAT_VERSION 1
#define STORE_DEFAULT_MAX_BYTES ((uint64_t)1 << 40) /* cairn_options.max_bytes when 0 */

/* The keys of database "meta".  Fixed entries: */
#define CATALOG_FORMAT "format"             /* u32: STORE_FORMAT_VERSION */
#define CATALOG_STORE_ID "store_id"         /* 16 random bytes, named by the log header too */
#define CATALOG_PAGE_SIZE "page_size"       /* u32: 4096 */
#define CATALOG_EXTENT_PAGES "extent_pages" /* u32: pages per extent */
#define CATALOG_PAGES "pages"               /* u64: the store's range, in pages */
#define CATALOG_CKPT_LSN "ckpt_lsn"         /* u64: data.mdb holds every commit up to it */
#define CATALOG_SUM "catalog_sum"           /* u64: XXH3 over the fixed entries and ckpt_lsn */
/* Types (types.c): */
#define CATALOG_TYPE_PREFIX "type/"     /* "type/<name>" -> the type record */
#define CATALOG_TYPES_NEXT "types_next" /* u32: the next type id */

/* The largest catalog value: a type record with 65,536 pointer offsets
 * (types.c).  Less than LMDB_FILE_SLACK, so reading one from a damaged
 * page stays inside the zeros past data.mdb's pages. */
#define STORE_MAX_META_VALUE (16 + 8 * 65536)

struct catalog {
    const char *path; /* the store directory, for messages */
    MDB_env *env;
    MDB_dbi meta, extents;
    uint8_t store_id[16];
    uint64_t seed;     /* from store_id: seeds extent checksums */
    uint64_t pages;    /* the store's range */
    uint64_t ckpt_lsn; /* as read or last written */
    int no_readahead;  /* open with MDB_NORDAHEAD (knobs.lmdb_no_readahead) */
    int env_writer;    /* this user of the shared environment is a read-write handle */
    int no_lock;       /* read-only user who cannot write lock.mdb: MDB_NOLOCK, so
                          LMDB has no reader slot of ours (see catalog_open_env) */
    /* Where messages go: the first failure's detail ("dir/data.mdb: ..."). */
    void (*error)(void *arg, const char *msg);
    void *error_arg;
};

/* An error sink writing the first message into buf (for callers without
 * a store handle): error = catalog_msg_sink, error_arg = a catalog_msg. */
struct catalog_msg {
    char *buf;
    size_t len;
};
void catalog_msg_sink(void *arg, const char *msg);

/* Report msg through c->error. */
void catalog_error(struct catalog *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Open the environment in directory dir (data.mdb and lock.mdb) into
 * c->env: flags MDB_RDONLY or 0; create: a new environment is being made
 * (else an empty data.mdb is damage); max_bytes sizes the map.  Installs
 * the fault handler that turns LMDB's faults on damage into errors. */
int catalog_open_env(struct catalog *c, const char *dir, unsigned flags, int create, uint64_t max_bytes);
void catalog_close_env(struct catalog *c);
/* How many handles of this process share c's environment (0: not shared,
 * a private one such as a copy's). */
int catalog_env_users(const struct catalog *c);
/* Is c the environment's only user?  If so (1) no other handle can join
 * until catalog_env_alone_end: for growing LMDB's map, which remaps under
 * every transaction of the process. */
int catalog_env_alone_begin(const struct catalog *c);
void catalog_env_alone_end(void);
/* Does a read-write handle of this process share c's environment? */
int catalog_env_has_writer(const struct catalog *c);
/* LMDB's reader slots: the writer's load slots, SNAPSHOT_READERS + 1 for
 * each read-only handle, one for each of the command's snapshots. */
#define CATALOG_MAX_READERS 510

/* mdb_txn_begin, then refuse (CAIRN_CORRUPT, message set) a data.mdb
 * shorter than its meta page claims, before anything reads it; a write
 * transaction also pads the file (lmdb_file_pad).  Every LMDB transaction
 * outside the fault path begins here. */
int catalog_txn_begin(struct catalog *c, unsigned flags, MDB_txn **out);
/* The file check alone, for a transaction begun elsewhere. */
int catalog_check_file(struct catalog *c);

/* Write the catalog of a new store (c->store_id, c->pages; checkpoint 0)
 * and sync the environment. */
int catalog_create(struct catalog *c);
/* Read and validate the catalog inside txn: database handles, store id,
 * size, checkpoint position (against the catalog checksum).  The handles
 * stay valid only if txn commits, or while a read-only txn stays open. */
int catalog_read(struct catalog *c, MDB_txn *txn);
/* Copy every entry of from (read in from_txn) into to's fresh databases
 * (made in to_txn), with checkpoint position ckpt_lsn. */
int catalog_copy(struct catalog *from, MDB_txn *from_txn, struct catalog *to, MDB_txn *to_txn, uint64_t ckpt_lsn);

/* Open the two databases' handles for every transaction begun afterwards
 * (a handle opened inside a read transaction is that transaction's only,
 * until it ends with a commit).  A store without them is left for
 * catalog_read to report. */
int catalog_open_dbis(struct catalog *c);

/* The checkpoint position, with the catalog checksum. */
int catalog_put_ckpt_lsn(struct catalog *c, MDB_txn *txn, uint64_t ckpt_lsn);
/* The checkpoint position as txn sees it (unchecked: catalog_read checks). */
int catalog_get_ckpt_lsn(struct catalog *c, MDB_txn *txn, uint64_t *ckpt_lsn);

/* Walk LMDB's own trees (lmdb_verify): a writer's LMDB trusts the pages it
 * changes.  CAIRN_CORRUPT with the message. */
int catalog_verify(struct catalog *c);

#endif
