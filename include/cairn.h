/*
 * cairn.h - an embeddable persistent object store.
 *
 * A store is a directory holding an LMDB environment (the checkpointed
 * pages, zstd-compressed, plus a small catalog) and a write-ahead log.
 * Opening a store reserves an address range; objects inside it are
 * reached through plain C pointers.  Nothing is read at open: the first
 * touch of a page traps, the page is loaded, decompressed and its stored
 * pointers are swizzled into native addresses, then it is shown read-only.
 * The first write inside a transaction traps again and records the page's
 * before-image.  Commit makes the transaction durable in the log.
 *
 * Conventions (as in LMDB):
 *   - Every call returns CAIRN_OK (0) on success, a negative CAIRN_* code
 *     for a library error, or a positive errno value for a system error.
 *     cairn_strerror() describes either; cairn_errmsg() gives the detail
 *     of the last failure on a store (which object, which page).
 *   - Handles are opaque.  Functions taking a NULL handle return
 *     CAIRN_INVALID unless documented otherwise.
 *   - A pointer into the store stays valid while the store is open and
 *     the object is not freed.  It is not valid after cairn_close().
 *
 * Contract for persistent memory:
 *   - Reading store memory needs no transaction; any thread may read.
 *   - Writing store memory needs an open transaction (cairn_txn_begin).
 *     A write with no transaction open is a contract violation: the
 *     process is terminated with a message naming the address, as a
 *     write to read-only memory would be.
 *   - While a transaction is open any thread may write store memory;
 *     no thread may write it while cairn_txn_commit/abort runs.
 *   - A system call must not be handed store memory that is not
 *     resident (and writable, if the kernel writes into it): it fails
 *     with EFAULT.  cairn_prefault() makes a range ready first.
 *   - Pointers stored in a pointer field (as declared by the type
 *     layout) must be NULL or point into the same store; anything else
 *     makes the commit fail with CAIRN_EXTERNAL_POINTER.
 *   - A child process created by fork() does not inherit the store's
 *     memory (it is marked MADV_DONTFORK); touching it there is a
 *     segmentation fault, so a child can never corrupt the parent's store.
 */
#ifndef CAIRN_H
#define CAIRN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CAIRN_STATIC_DEFINE)
#define CAIRN_API
#elif defined(CAIRN_BUILDING)
#define CAIRN_API __attribute__((visibility("default")))
#else
#define CAIRN_API
#endif

/** @name Return codes
 * Library errors are negative; positive values are errno values. */
/**@{*/
#define CAIRN_OK 0
#define CAIRN_CORRUPT (-30900)          /**< on-disk data failed validation */
#define CAIRN_EXTERNAL_POINTER (-30901) /**< pointer outside the store in a pointer field */
#define CAIRN_SCHEMA_MISMATCH (-30902)  /**< type name registered with another layout */
#define CAIRN_BUSY (-30903)             /**< store already open (this or another process) */
#define CAIRN_NOT_FOUND (-30904)        /**< no such root */
#define CAIRN_INVALID (-30905)          /**< bad argument or call in the wrong state */
#define CAIRN_READONLY (-30906)         /**< write attempted on a read-only store */
#define CAIRN_IOERR (-30907)            /**< a write or sync failed; store refuses commits until reopened */
#define CAIRN_FULL (-30908)             /**< store address range, disk or map exhausted */
#define CAIRN_UNSUPPORTED (-30909)      /**< requested fault backend not available here */
/**@}*/

/** Sync modes for cairn_options.sync. */
#define CAIRN_SYNC_FULL 0 /**< commit returns after the log is fdatasync'ed (default) */
#define CAIRN_SYNC_OFF 1  /**< no fdatasync: a crash may lose the latest commits,
                               never corrupts, never exposes part of a transaction */

/** Flags for cairn_options.flags.
 * CAIRN_RDONLY opens the store read-only: no transaction can begin, the
 * files are not written.  For convenience the name CAIRN_READONLY (which
 * is also the error code) is accepted in flags with the same meaning. */
#define CAIRN_RDONLY 0x1u

/** Fault backends for cairn_options.backend. */
#define CAIRN_BACKEND_AUTO 0     /**< userfaultfd if the kernel allows it, else mprotect */
#define CAIRN_BACKEND_UFFD 1     /**< userfaultfd in SIGBUS mode (UFFD_USER_MODE_ONLY) */
#define CAIRN_BACKEND_MPROTECT 2 /**< SIGSEGV + mprotect at extent granularity */

typedef struct cairn_store cairn_store;
typedef struct cairn_txn cairn_txn;
typedef uint32_t cairn_type;

/** Type id of raw, pointer-free bytes (cairn_alloc_bytes). */
#define CAIRN_TYPE_BYTES ((cairn_type)0)

/**
 * Called (from the signal handler of the faulting thread) when a page
 * cannot be loaded: checksum mismatch, zstd error, LMDB error, or
 * vm.max_map_count exhausted under the mprotect backend.  It must be
 * async-signal-safe.  It may leave with siglongjmp(); if it returns, the
 * process is aborted, because the faulting instruction cannot proceed
 * without the page.  The default prints store, page and error, then aborts.
 */
typedef void (*cairn_fault_error_fn)(cairn_store *s, void *addr, int rc, void *arg);

typedef struct cairn_options {
    uint64_t cache_bytes;   /**< resident-memory budget for loaded pages (0 = unlimited).
                                 Clean pages beyond it are evicted (clock); pages written
                                 but not yet checkpointed, and pinned ones, are not. */
    uint64_t max_bytes;     /**< size of the address range reserved for a new store
                                 (default 1 TiB); an existing store keeps its size */
    int sync;               /**< CAIRN_SYNC_FULL (default) or CAIRN_SYNC_OFF */
    int compression_level;  /**< zstd level for pages written to LMDB (default 1) */
    unsigned flags;         /**< CAIRN_RDONLY */
    int backend;            /**< CAIRN_BACKEND_*; the environment variable
                                 CAIRN_FAULT_BACKEND=uffd|mprotect overrides AUTO */
    uint64_t checkpoint_bytes; /**< log size that wakes the background flusher
                                    (default 64 MiB; 0 = default) */
    cairn_fault_error_fn fault_error; /**< NULL = default (print and abort) */
    void *fault_error_arg;
} cairn_options;

/** Fill o with the defaults. */
CAIRN_API void cairn_options_init(cairn_options *o);

/**
 * Open (creating if missing) the store in directory path.
 * Recovers committed transactions left in the log by a crash; costs time
 * proportional to that log, not to the store.  Reads no page.
 * @return CAIRN_OK; CAIRN_BUSY if the store is open already, in this or
 *   another process; CAIRN_CORRUPT if the catalog or log is damaged or the
 *   log belongs to another store; CAIRN_READONLY if opened read-only and
 *   the store does not exist or needs recovery; CAIRN_UNSUPPORTED if the
 *   requested backend is unavailable; CAIRN_INVALID for bad options;
 *   errno values from the file system.  *out is set only on success.
 */
CAIRN_API int cairn_open(const char *path, const cairn_options *o, cairn_store **out);

/**
 * Close the store: aborts an open transaction, checkpoints committed
 * pages (unless read-only or failed), releases the address range.
 * close(NULL) returns CAIRN_OK.  Returns the first error met while
 * checkpointing; the store is closed either way and the log still holds
 * every committed transaction.
 */
CAIRN_API int cairn_close(cairn_store *s);

/**
 * Register (or look up) a type: size bytes per object, pointer fields at
 * ptr_offsets (each a multiple of 8, within size).  Layouts persist in the
 * store, durable when this returns; a name registered with a different
 * layout gives CAIRN_SCHEMA_MISMATCH.  Reading a store never needs its
 * types registered.  May be called with or without a transaction open.
 * @return CAIRN_OK, CAIRN_SCHEMA_MISMATCH, CAIRN_INVALID (bad layout or name
 *   longer than 200 bytes), CAIRN_READONLY (new type on a read-only store),
 *   CAIRN_IOERR.
 */
CAIRN_API int cairn_type_register(cairn_store *s, const char *name, size_t size,
                                  const size_t *ptr_offsets, size_t n_ptrs, cairn_type *out);

/**
 * Begin the store's write transaction.  Only one is open at a time;
 * begin waits until the current one commits or aborts.
 * @return CAIRN_OK, CAIRN_READONLY, CAIRN_IOERR (store failed earlier).
 */
CAIRN_API int cairn_txn_begin(cairn_store *s, cairn_txn **out);

/**
 * Commit: unswizzle and log every page written, append a commit record,
 * fdatasync (CAIRN_SYNC_FULL), write-protect the pages again.  Durable
 * when it returns CAIRN_OK, and t is freed.  On error the transaction is
 * still open and unchanged; the caller may fix it (for
 * CAIRN_EXTERNAL_POINTER) and commit again, or abort it.
 * @return CAIRN_OK, CAIRN_EXTERNAL_POINTER (cairn_errmsg names the object),
 *   CAIRN_IOERR (sticky: no commit succeeds until the store is reopened),
 *   CAIRN_FULL (disk full: abort, the store stays usable).
 */
CAIRN_API int cairn_txn_commit(cairn_txn *t);

/** Abort: restore every byte the transaction changed, allocations included,
 * and free t.  abort(NULL) does nothing. */
CAIRN_API void cairn_txn_abort(cairn_txn *t);

/**
 * Allocate count zeroed objects of type (contiguous, 16-byte aligned),
 * inside the store.  Any size, larger than a page included.  *out may
 * itself be store memory.  The allocation is undone by abort.
 * @return CAIRN_OK, CAIRN_INVALID (unknown type, count 0, overflow),
 *   CAIRN_FULL (address range exhausted).
 */
CAIRN_API int cairn_alloc(cairn_txn *t, cairn_type type, size_t count, void **out);

/** Allocate size zeroed pointer-free bytes.  As cairn_alloc. */
CAIRN_API int cairn_alloc_bytes(cairn_txn *t, size_t size, void **out);

/**
 * Free an object returned by cairn_alloc/cairn_alloc_bytes.  Its bytes are
 * zeroed.  NULL is fine.  @return CAIRN_OK, CAIRN_INVALID (not the start of
 * a live object: double free, interior or foreign pointer).
 */
CAIRN_API int cairn_free(cairn_txn *t, void *obj);

/**
 * Name obj (NULL removes the name) as a root.  Names are 1..55 bytes;
 * a store holds up to 1024 roots.  Transactional like any write.
 * @return CAIRN_OK, CAIRN_INVALID (bad name), CAIRN_EXTERNAL_POINTER (obj
 *   outside the store), CAIRN_FULL (no free root slot).
 */
CAIRN_API int cairn_root_set(cairn_txn *t, const char *name, void *obj);

/** Look a root up.  @return CAIRN_OK, CAIRN_NOT_FOUND, CAIRN_INVALID. */
CAIRN_API int cairn_root_get(cairn_store *s, const char *name, void **out);

/**
 * Make [addr, addr+len) resident, and writable if for_write (which needs
 * the transaction open), so it can be handed to a system call.  The
 * extents of the range are pinned: the cache budget does not evict them
 * until cairn_release() is called for the range (pins count: one release
 * per prefault).
 * @return CAIRN_OK, CAIRN_CORRUPT or CAIRN_IOERR (a page failed to load;
 *   nothing of it is shown), CAIRN_EXTERNAL_POINTER (range not inside the
 *   store), CAIRN_INVALID (for_write without a transaction), ENOMEM
 *   (mprotect backend: vm.max_map_count reached).
 */
CAIRN_API int cairn_prefault(cairn_store *s, const void *addr, size_t len, int for_write);

/** Unpin a range pinned by cairn_prefault(); it may be evicted again.
 * @return CAIRN_OK, CAIRN_EXTERNAL_POINTER (range not inside the store). */
CAIRN_API int cairn_release(cairn_store *s, const void *addr, size_t len);

/**
 * Write every committed page back to LMDB (one LMDB transaction carrying
 * the new checkpoint position), then empty the log.  The background
 * flusher does this on its own when the log grows past checkpoint_bytes.
 * @return CAIRN_OK, CAIRN_READONLY, CAIRN_IOERR, CAIRN_FULL.
 */
CAIRN_API int cairn_checkpoint(cairn_store *s);

typedef struct cairn_stats {
    uint64_t faults_read;    /**< page loads caused by a touch or prefault */
    uint64_t faults_write;   /**< first-write traps */
    uint64_t pages_resident; /**< pages currently loaded */
    uint64_t pages_dirty;    /**< pages written in the open transaction */
    uint64_t pages_unflushed;/**< committed pages not yet checkpointed */
    uint64_t evictions;      /**< pages dropped from memory */
    uint64_t extents_loaded; /**< extents decompressed */
    uint64_t commits;
    uint64_t aborts;
    uint64_t checkpoints;
    uint64_t wal_bytes;      /**< current size of the log */
    uint64_t bytes_on_disk;  /**< LMDB data file plus log */
    uint64_t bytes_compressed;   /**< compressed size of extents written by checkpoints */
    uint64_t bytes_uncompressed; /**< their uncompressed size */
    uint64_t pages_allocated;    /**< high-water mark of the allocator, in pages */
    int backend;             /**< CAIRN_BACKEND_UFFD or CAIRN_BACKEND_MPROTECT */
} cairn_stats;

/** Snapshot the counters (loads the allocator's superblock page if it is not
 *  resident, for pages_allocated).  @return CAIRN_OK, CAIRN_INVALID, or the
 *  load error (CAIRN_CORRUPT, CAIRN_IOERR). */
CAIRN_API int cairn_stats_get(cairn_store *s, cairn_stats *out);

/** Static text for a return code (library or errno). */
CAIRN_API const char *cairn_strerror(int rc);

/** Detail of the last failure on s (e.g. which object held an external
 * pointer); "" if none.  Valid until the next call on s. */
CAIRN_API const char *cairn_errmsg(cairn_store *s);

/** What cairn_check found.  Counts of things examined, then of problems. */
typedef struct cairn_check_report {
    uint64_t extents_checked;  /**< extents read (from LMDB or memory) */
    uint64_t pages_checked;    /**< object pages below the high-water mark */
    uint64_t objects;          /**< live objects */
    uint64_t pointers;         /**< non-NULL pointer words, roots included */
    uint64_t corrupt_extents;  /**< extents failing header, zstd or checksum */
    uint64_t bad_pointers;     /**< pointers not into a live object */
    uint64_t alloc_errors;     /**< allocator metadata disagreeing with itself */
    uint64_t type_errors;      /**< objects whose type or layout disagrees with the catalog */
    uint64_t problems;         /**< sum of the four above */
    char first_problem[256];   /**< description of the first problem, "" if none */
} cairn_check_report;

/**
 * Verify the committed state of the store: every stored extent decodes and
 * matches its checksum, every pointer word is NULL or points into a live
 * object, allocator metadata agrees with itself (slot counts, lists, runs,
 * no leaked or doubly-owned page), and typed objects agree with the type
 * catalog.  Waits for the open transaction to end and holds the store's
 * transaction slot while it runs.  Never crashes on damaged data.
 * @return CAIRN_OK if clean, CAIRN_CORRUPT if problems were found (see r),
 *   or an error that stopped the check (ENOMEM, CAIRN_IOERR).
 */
CAIRN_API int cairn_check(cairn_store *s, cairn_check_report *r);

/** Base address and size of the store's address range (for tools). */
CAIRN_API int cairn_range(cairn_store *s, void **base, size_t *len);

#ifdef __cplusplus
}
#endif
#endif /* CAIRN_H */
