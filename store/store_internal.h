/*
 * store_internal.h - the store handle, and what the files of the store
 * layer share (transactions, allocator, checkpoint, recovery, snapshot,
 * tools' inspect calls).  Internal.
 */
#ifndef CAIRN_STORE_INTERNAL_H
#define CAIRN_STORE_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>
#include <zstd.h>

#include "cairn.h"
#include "../pager/pager.h"
#include "../wal/wal.h"
#include "catalog.h"

#define STORE_MAX_TYPE_NAME 200

/* knobs.c: the tuning environment variables, read at open. */
/* Hooks only tests set (through store_test_control). */
struct test_hooks {
    unsigned long recover_batch;   /* recovery and the snapshot: images per batch; 0 = REPLAY_BATCH */
    unsigned long backup_pause_ms; /* backup sleeps between its LMDB copy and the log (races a checkpoint) */
    unsigned long log_sync_fails_after; /* the writer's log syncs after the first N fail, slowly (group commit) */
    unsigned long checkpoint_pause_ms;  /* a checkpoint sleeps after its start and after its LMDB write */
};
struct snapshot;
struct knobs {
    int backend;           /* CAIRN_FAULT_BACKEND=uffd|mprotect, else AUTO */
    int evict_random;      /* CAIRN_EVICT_POLICY=random (bench/evict_policy) */
    int publish_page_only; /* CAIRN_PUBLISH=page (bench/readahead) */
    int lmdb_no_readahead; /* CAIRN_LMDB_READAHEAD=0 (bench/readahead) */
    struct test_hooks test;
};
void knobs_read(struct knobs *k);
#include "test_control.h"

struct type_info {
    char *name;
    uint64_t size;
    uint32_t n_ptrs;
    uint64_t *ptr_offsets;
};

struct cairn_txn {
    cairn_store *s;
    uint64_t id;
    /* Its record is in the log and it left the slot; only a sync failure
     * keeps the handle alive then (cairn_txn_commit). */
    int logged;
};

struct cairn_store {
    char *path;
    int dirfd, lockfd;
    dev_t dev;
    ino_t ino;
    cairn_options opt;
    struct knobs knobs;
    int readonly;
    int claim_slot; /* its entry in the table of open stores, or -1 */
    pid_t owner;    /* the opening process; a forked child's copy is dead */
    /* What this open made, removed again if it fails (cairn_open). */
    int made_dir, made_lock, made_store;

    /* Environment, databases, store id, size; cat.ckpt_lsn is guarded by
     * log_mutex. */
    struct catalog cat;

    struct pagestore *pagestore; /* the extents (LMDB's database "extents") */
    struct snapshot *snap;       /* a read-only handle: the state it shows (readonly.c) */
    struct pager *pager;
    struct wal wal;

    /*
     * Lock order (the one statement of it; docs/DESIGN.md explains it):
     *
     *   txn_mutex (brief: who owns the transaction slot)
     *   ckpt_mutex (a checkpoint, throughout; check and gc's mark wait
     *   for one; taken holding the transaction slot, never txn_mutex)
     *     -> log_mutex (commit, abort, a checkpoint's start and end,
     *        check, gc's mark)
     *          -> lmdb_lock (shared by every LMDB transaction outside the
     *             fault path; exclusive while the map grows)
     *               -> LMDB write transaction
     *                    -> pager.ckpt_lock (commit: inside log_mutex;
     *                       a checkpoint's reads: inside its LMDB write)
     *                         -> page lock bits (PS_LOCK, held for one copy)
     *          -> wal.sync_mutex (leaf, never held across fdatasync; a
     *             commit waits for its sync holding no lock)
     *   types_lock (write: registration) -> lmdb_lock
     *   store_grow_map: the process's table of shared LMDB environments
     *     (catalog.c, envs_mutex) -> lmdb_lock
     *   a read-only handle: lmdb_lock (exclusive: cairn_refresh, cairn_check)
     *     -> types_lock (refresh rebuilds the type table)
     *   alloc_mutex, flush_mutex, err_mutex: leaves (flush_mutex is
     *   dropped before the flusher takes log_mutex)
     *
     * The fault path takes none of them.  No lock but alloc_mutex is held
     * while touching the client view, and the fault path never takes
     * alloc_mutex.
     */
    pthread_mutex_t txn_mutex;
    pthread_cond_t txn_cond;
    cairn_txn *txn;
    pthread_t txn_thread; /* who claimed the slot (valid while txn is set) */
    uint64_t next_txn_id;

    pthread_mutex_t ckpt_mutex; /* one checkpoint at a time; its scratch below */
    pthread_mutex_t log_mutex;  /* commit, a checkpoint's start and end, cat.ckpt_lsn */
    /* Sticky: the first failure that leaves the store unusable (a log or
     * LMDB write or sync that failed, the LMDB map lost), its code and,
     * under err_mutex, its message.  Every later call that would write
     * returns it (store_failed). */
    _Atomic int failed;
    char fail_msg[512];

    pthread_mutex_t alloc_mutex;

    /* Shared by every LMDB transaction outside the fault path, exclusive
     * while the map is grown (which LMDB allows only with none active). */
    pthread_rwlock_t lmdb_lock;

    pthread_rwlock_t types_lock;
    struct type_info *types; /* index = type id; 0 = bytes */
    size_t n_types;

    /* Background flusher. */
    pthread_t flusher;
    int flusher_started, flusher_quit;
    pthread_mutex_t flush_mutex;
    pthread_cond_t flush_cond;

    /* Checkpoint scratch (under ckpt_mutex, or at open). */
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    unsigned char *zbuf;

    _Atomic uint64_t commits, aborts, checkpoints, bytes_compressed, bytes_uncompressed;

    pthread_mutex_t err_mutex;
    char errmsg[512];
};

/* store.c */
/* Is s the parent's handle, seen in a forked child? */
/* A handle's locks, descriptors (-1) and options (o or the defaults,
 * knobs read); and their end (with path).  cairn_open and the snapshot. */
void store_handle_init(cairn_store *s, const cairn_options *o);
void store_handle_destroy(cairn_store *s);
/* The handle's pager over s->pagestore, configured from its options and
 * knobs. */
int store_open_pager(cairn_store *s);
/* The table of stores open in this process (by directory), an entry per
 * handle: a writer's claim is CAIRN_BUSY while another writer of the
 * directory holds one (read-only handles may be any number beside it);
 * *slot names the entry for store_release_dir. */
int store_claim_dir(dev_t dev, ino_t ino, cairn_store *s, int writer, int *slot);
void store_release_dir(int slot);
void store_claim_set(int slot, cairn_store *s);
/* May a store be created in directory dirfd (path) that has no data.mdb?
 * 0; CAIRN_CORRUPT when it holds the rest of a store (a log or LMDB's
 * lock file: data.mdb was lost); ENOTEMPTY when it holds anything else.
 * msg says why not. */
int store_check_creatable(int dirfd, const char *path, char *msg, size_t msglen);
/* What cairn_errmsg(NULL) says after a failed open. */
void store_set_open_error(const char *msg);

/* readonly.c: read-only handles (a snapshot and a pager over it). */
int readonly_open(const char *path, const cairn_options *o, cairn_store **out);
int readonly_close(cairn_store *s);
int store_foreign(const cairn_store *s);
void store_set_error(cairn_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The store cannot go on: record code and the message as its failure
 * unless one is recorded already (the first cause wins, as SQLite's
 * pager_error and LMDB's MDB_PANIC).  Returns the recorded code. */
int store_fail(cairn_store *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* 0, or the recorded failure, its message put back in cairn_errmsg. */
int store_failed(cairn_store *s);
/* The catalog's error sink for a store: store_set_error. */
void store_catalog_error(void *s, const char *msg);
/* Read the catalog and the types inside txn. */
int store_read_catalog(cairn_store *s, MDB_txn *txn);

/* The rule binding data.mdb (checkpoint ckpt_lsn) to its log (records
 * from start_lsn, last commit last_lsn, UINT64_MAX if not read yet): 0 or
 * CAIRN_CORRUPT with the message.  See store.c. */
int store_log_continues(cairn_store *s, uint64_t ckpt_lsn, uint64_t start_lsn, uint64_t last_lsn);
/* Open the log of s (catalog read) into s->wal: 0, or CAIRN_CORRUPT
 * (missing, damaged, another store's) or an errno, with the message. */
int store_open_log(cairn_store *s, int readonly);

/* Double the LMDB map (MDB_MAP_FULL).  Caller holds no lmdb_lock. */
int store_grow_map(cairn_store *s);

/* txn.c: the transaction slot.  Claim it for t (a transaction, or a
 * caller such as cairn_check that must keep writers out), waiting while
 * another thread holds it; CAIRN_BUSY at once if the calling thread holds
 * it already (waiting would never end). */
int txn_slot_claim(cairn_store *s, cairn_txn *t);
void txn_slot_release(cairn_store *s);

/* types.c */
int types_load(cairn_store *s, MDB_txn *txn);
void types_free(cairn_store *s);
int types_get(cairn_store *s, cairn_type t, struct type_info *out);

/* alloc.c */
int alloc_object(cairn_txn *t, cairn_type type, uint64_t elem_size, const uint64_t *ptr_offsets, uint32_t n_ptrs,
                 size_t count, void **out);
int alloc_free(cairn_txn *t, void *obj);
/* The object containing addr, for messages; 0 if none. */
uintptr_t alloc_object_start(cairn_store *s, uintptr_t addr);

/* checkpoint.c */
/* Checkpoint if the log holds at least min_log bytes (and anything). */
int checkpoint_run(cairn_store *s, uint64_t min_log);
int checkpoint_flusher_start(cairn_store *s);
void checkpoint_flusher_stop(cairn_store *s);
void checkpoint_poke(cairn_store *s);
/* Write extents (raw unswizzled images from get()) and the checkpoint
 * LSN in one LMDB transaction. */
typedef int (*extent_source_fn)(void *ctx, uint64_t e, void *raw);
int checkpoint_write_extents(cairn_store *s, const uint64_t *ext, size_t n, extent_source_fn get, void *ctx,
                             uint64_t ckpt_lsn);

/* recover.c */
int recover_log(cairn_store *s, int *pending);

#endif
