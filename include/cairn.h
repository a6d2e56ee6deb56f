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
 *     for a library error, or a positive errno value for a system error
 *     (ENOMEM among them, wherever memory is allocated).  cairn_strerror()
 *     describes either; cairn_errmsg() gives the detail of the last
 *     failure on a store (which object, which page), when there is one.
 *   - Handles are opaque.  Functions taking a NULL handle return
 *     CAIRN_INVALID unless documented otherwise.
 *   - Output parameters are written only on success (cairn_check fills
 *     its report for CAIRN_CORRUPT too).
 *   - Errors loading a page on a plain dereference cannot be returned: they
 *     go to cairn_options.fault_error (default: print and abort).  This
 *     holds for calls that touch store memory too (cairn_alloc, cairn_free,
 *     cairn_root_get/set read and write store pages); cairn_prefault()
 *     is the call that returns such errors as codes.
 *
 * Lifetimes:
 *   - A pointer into the store (from cairn_alloc, cairn_root_get, or read
 *     from a pointer field) stays valid while the store is open, until the
 *     object is freed, or until the transaction that allocated it is
 *     aborted.  None survives cairn_close(): the address range is unmapped,
 *     and a later cairn_open() may place the store at another address, so
 *     after a reopen every pointer is found again from a root.
 *   - A cairn_txn is valid from cairn_txn_begin() until cairn_txn_commit()
 *     returns CAIRN_OK, cairn_txn_abort(), or cairn_close() (which aborts
 *     it).  It is freed then; using it afterwards is undefined.
 *   - A cairn_store is valid until cairn_close().  Strings from
 *     cairn_strerror() are static; the string from cairn_errmsg() and the
 *     range from cairn_range() belong to the store and go with it.
 *   - A cairn_type id belongs to one store and is persistent: the same
 *     name gets the same id in every later open of that store.
 *
 * Threads:
 *   - Every call may be made from any thread, concurrently with other
 *     calls on the same store, except cairn_close(): it must be the only
 *     call in progress on the store, and no thread may touch store memory
 *     while or after it runs.
 *   - A store has one write transaction at a time (not one per thread).
 *     cairn_txn_begin() and cairn_check() wait while it is open, so a
 *     thread that holds the open transaction and calls either of them on
 *     the same store deadlocks.
 *   - A cairn_txn is not tied to the thread that began it: any thread may
 *     pass it to cairn_alloc, cairn_free, cairn_root_set, cairn_prefault
 *     (for writing) and cairn_txn_commit/abort, and any thread may write
 *     store memory while it is open.  All those writes belong to that one
 *     transaction; commit makes all of them durable, abort undoes all.
 *     The caller must make sure no other thread uses t or writes store
 *     memory once cairn_txn_commit() or cairn_txn_abort() has started.
 *   - Readers are not isolated from the open transaction: a read sees the
 *     transaction's uncommitted writes, and sees the old bytes again after
 *     an abort.  A reader that needs a consistent state reads while no
 *     transaction is open, or coordinates with the writer itself.
 *   - cairn_checkpoint() and the store's background flusher thread run
 *     alongside an open transaction without disturbing it; a commit waits
 *     for a checkpoint in progress, and the reverse.
 *   - The SIGSEGV/SIGBUS handler that serves page faults is process-wide,
 *     installed (again) at every cairn_open().  A handler the program
 *     installs later must pass faults it does not own to the previous
 *     handler, and a thread touching store memory must not block SIGSEGV
 *     or SIGBUS (the kernel kills a process whose blocked fault signal is
 *     raised).  At most 64 stores can be open in one process.
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
 *     Nor does it hold the store: the child's copy of the store lock is
 *     closed at fork, and every descriptor is close-on-exec.  In the
 *     child the parent's handles are dead: cairn_txn_begin, cairn_close
 *     and cairn_checkpoint on them return CAIRN_INVALID and touch no file
 *     (the handle's memory is simply not freed there).  The child may
 *     open the store itself with cairn_open, under the usual rules (after
 *     the parent closed it, or read-only at any time).
 *
 * Environment variables (read once at every cairn_open, and by the cairn
 * command; nothing else in the library reads the environment):
 *   CAIRN_FAULT_BACKEND=uffd|mprotect  the fault backend when
 *                                      cairn_options.backend is AUTO
 *   CAIRN_EVICT_POLICY=random          evict at random instead of by the
 *                                      clock (for bench/evict_policy)
 *   CAIRN_PUBLISH=page                 userfaultfd: a load maps only the
 *                                      touched page (for bench/readahead)
 *   CAIRN_LMDB_READAHEAD=0             open LMDB with MDB_NORDAHEAD (for
 *                                      bench/readahead)
 *   CAIRN_TEST_CONTROL=name=N,...      hooks for cairn's own tests
 *                                      (set through its internal
 *                                      test-control call; not for
 *                                      programs: names and meaning may
 *                                      change in any release)
 *   CAIRN_NO_PROGRESS                  the command draws no progress bar
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
 * files are not written, types already registered can be looked up but no
 * new one registered.  A read-only handle is an isolated snapshot: it
 * shows the store as of the last transaction whose commit returned before
 * the open began - never a writer's uncommitted bytes, never a later
 * commit, never part of one - and checkpoints, log resets, eviction and
 * the writer's close or crash do not change it.  Committed transactions a
 * crash left in the log are replayed into the snapshot in memory (a batch
 * of extent images, the rest in an unlinked temporary file in $TMPDIR or
 * /tmp).  Read-only handles, in this process and others, coexist with
 * each other and with one read-write handle, and neither waits for the
 * other; handles of one store in one process share its LMDB environment
 * (LMDB must not open a file twice in a process).  LMDB
 * keeps the pages a read-only handle's snapshot sees (as for LMDB's own
 * long readers, data.mdb grows while such a snapshot is old), and the
 * reader slot of a process that died is reclaimed at the writer's next
 * checkpoint.  A read-only handle takes 5 of LMDB's 510 reader slots of a
 * store (the writer takes 32; a refresh briefly 5 more), so about 90
 * read-only handles of one store can be open at once, across processes;
 * past that open and refresh fail.  A user who cannot write lock.mdb
 * reads without a reader slot, holding the store's lock shared instead:
 * a writer then waits for it (busy_timeout_ms) or gets CAIRN_BUSY.  Any other bit is CAIRN_INVALID (CAIRN_READONLY is an error
 * code, not a flag). */
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
 * s is the store, addr the faulting address, rc the error (CAIRN_CORRUPT,
 * CAIRN_IOERR or an errno value such as ENOMEM; cairn_strerror() may be
 * called here, it is async-signal-safe), arg is fault_error_arg.
 */
typedef void (*cairn_fault_error_fn)(cairn_store *s, void *addr, int rc, void *arg);

/** Options for cairn_open().  Fill with cairn_options_init() first, then
 * change fields: a zeroed struct is accepted, but its compression_level 0
 * means zstd's own default level (3), not cairn's (1). */
typedef struct cairn_options {
    uint64_t cache_bytes;   /**< resident-memory budget for loaded pages (0 = unlimited).
                                 Clean pages beyond it are evicted (clock); pages written
                                 but not yet checkpointed, and pinned ones, are not. */
    uint64_t max_bytes;     /**< size of the address range reserved for a new store
                                 (default 1 TiB; 0 = default; 16 MiB to 16 TiB, rounded
                                 down to 64 KiB); an existing store keeps its size.  It
                                 bounds what the store can ever hold. */
    int sync;               /**< CAIRN_SYNC_FULL (default) or CAIRN_SYNC_OFF */
    int compression_level;  /**< zstd level for pages written to LMDB (default 1;
                                 -7..22, see the struct comment for 0) */
    unsigned flags;         /**< CAIRN_RDONLY */
    int backend;            /**< CAIRN_BACKEND_*; the environment variable
                                 CAIRN_FAULT_BACKEND=uffd|mprotect overrides AUTO */
    uint64_t checkpoint_bytes; /**< log size that wakes the background flusher
                                    (default 64 MiB; 0 = default) */
    cairn_fault_error_fn fault_error; /**< NULL = default (print and abort) */
    void *fault_error_arg;  /**< passed to fault_error */
    unsigned busy_timeout_ms; /**< read-write open: while another opener holds
                                   the store (in this process or another),
                                   wait up to this long for it to close
                                   before CAIRN_BUSY (default 0: at once) */
} cairn_options;

/**
 * Move a read-only handle to the newest committed state: at least every
 * commit that returned before the call began.  Extents that changed since
 * the handle's snapshot are dropped from memory and load again from the
 * new state when touched; the rest stay as they are.  Its cost grows with
 * what changed since the handle's snapshot (the log records after it, and
 * a test per resident extent), not with the store's size.
 *
 * Pointers: an address is a store offset, so an object that still exists
 * keeps its address, and a pointer to it stays valid; a pointer to an
 * object freed by a later commit points at whatever the store holds there
 * now.  Values read before the call may be stale: a program re-reads from
 * a root afterwards.  No other thread may read the handle's memory while
 * cairn_refresh runs.  Pins taken by cairn_prefault on extents that
 * changed are not kept resident (prefault again).
 *
 * On failure (CAIRN_BUSY when checkpoints raced every attempt, ENOMEM, a
 * damaged file) the handle keeps its snapshot; if the failure came while
 * applying the log's new records to it, what is resident stays readable
 * but every load of another page fails with CAIRN_IOERR (the fault
 * handler's error) until a later cairn_refresh succeeds.
 * @return CAIRN_OK; CAIRN_INVALID on a read-write handle or NULL.
 */
CAIRN_API int cairn_refresh(cairn_store *s);

/** Fill o with the defaults.  NULL does nothing. */
CAIRN_API void cairn_options_init(cairn_options *o);

/**
 * Open (creating if missing) the store in directory path.
 * Recovers committed transactions left in the log by a crash; costs time
 * proportional to that log, not to the store.  Reads no page.  Starts the
 * store's background flusher thread (not for read-only opens).
 * @param path  the store's directory; created (one level, mode 0755) if
 *   missing, unless read-only.
 * @param o     options, or NULL for the defaults; copied, need not outlive
 *   the call.
 * @param out   receives the handle, only on success.
 * @return CAIRN_OK;
 *   CAIRN_BUSY for a read-write open while another read-write handle holds
 *   the store, in this process or another (after waiting up to
 *   o->busy_timeout_ms for it to close); also when 64 store handles are
 *   open in this process already;
 *   CAIRN_CORRUPT if the directory holds no cairn catalog, the catalog or
 *   type catalog is damaged or of another format version, the log is
 *   missing or damaged or belongs to another store, a log record is
 *   malformed, data.mdb is older or newer than the log (the files do not
 *   belong together: docs/FORMAT.md section 5), data.mdb is empty or
 *   shorter than its LMDB meta page says, or data.mdb is missing beside a
 *   store's log (nothing is created then: the log is kept);
 *   ENOTEMPTY if the store does not exist and the directory holds other
 *   files (a store is created only in a missing or empty directory);
 *   CAIRN_READONLY if opened read-only and the store does not exist;
 *   CAIRN_UNSUPPORTED if the requested backend is unavailable;
 *   CAIRN_INVALID if path or out is NULL or path is empty, for bad options
 *   (sync, backend, compression_level), or max_bytes out of range when
 *   creating;
 *   CAIRN_FULL if recovery could not grow the LMDB map or the disk is full;
 *   CAIRN_IOERR for other LMDB failures;
 *   errno values from the file system (ENOTDIR, EACCES, ENOSPC, ...) and
 *   ENOMEM; a creation that fails (ENOSPC on a full file system among
 *   them) removes every file it made.  On failure there is no handle: cairn_errmsg(NULL) gives the
 *   detail (which file, which positions disagree), for the calling
 *   thread's last failed open.
 */
CAIRN_API int cairn_open(const char *path, const cairn_options *o, cairn_store **out);

/**
 * Close the store: stops the background flusher, aborts an open
 * transaction (whichever thread holds it; its cairn_txn is freed),
 * checkpoints committed pages (unless read-only or failed), releases the
 * address range.  Must not run concurrently with any other call on s, nor
 * while any thread touches store memory; afterwards s, every pointer into
 * the store, the cairn_errmsg() string and the cairn_range() are invalid
 * (touching the old range is a segmentation fault).
 * close(NULL) returns CAIRN_OK.  Returns the first error met while
 * checkpointing (CAIRN_IOERR, CAIRN_FULL, ENOMEM); the store is closed
 * either way and the log still holds every committed transaction, so the
 * next open recovers them.  A store that failed earlier (a sticky
 * CAIRN_IOERR) is closed without a checkpoint and returns CAIRN_OK.
 */
CAIRN_API int cairn_close(cairn_store *s);

/**
 * Register (or look up) a type: size bytes per object, pointer fields at
 * ptr_offsets (each a multiple of 8, within size).  Layouts persist in the
 * store, durable when this returns; a name registered with a different
 * layout gives CAIRN_SCHEMA_MISMATCH.  Reading a store never needs its
 * types registered.  May be called with or without a transaction open,
 * from any thread; a registration is not part of any transaction (an
 * abort does not undo it).
 * @param s            the store.
 * @param name         1..200 bytes, NUL-terminated; copied.
 * @param size         bytes per object, > 0; a multiple of 8 if the type
 *                     has pointer fields (so arrays keep them aligned).
 * @param ptr_offsets  byte offsets of the pointer fields, in any order, no
 *                     duplicates; may be NULL when n_ptrs is 0.  Copied.
 * @param n_ptrs       number of pointer fields (at most 65536).
 * @param out          receives the type id (valid for this store only).
 * @return CAIRN_OK, CAIRN_SCHEMA_MISMATCH (cairn_errmsg names the type), CAIRN_INVALID (NULL argument, size 0, bad offsets, name empty
 *   or longer than 200 bytes), CAIRN_READONLY (new type on a read-only
 *   store), CAIRN_IOERR (the store failed earlier, or LMDB failed),
 *   CAIRN_FULL (65535 types, or the LMDB map cannot grow), CAIRN_CORRUPT
 *   (LMDB reports damage), ENOMEM and other errno values.
 */
CAIRN_API int cairn_type_register(cairn_store *s, const char *name, size_t size,
                                  const size_t *ptr_offsets, size_t n_ptrs, cairn_type *out);

/**
 * Begin the store's write transaction.  Only one is open at a time, per
 * store, whatever the thread: begin waits until the current one commits or
 * aborts (and while cairn_check runs).  Called from the thread that holds
 * the open transaction (it began it, or cairn_check is running on it),
 * where waiting would never end, it returns CAIRN_BUSY at once.  The
 * transaction may then be used from any thread (see "Threads" above).
 * @param out  receives the transaction, only on success.
 * @return CAIRN_OK, CAIRN_INVALID (NULL argument), CAIRN_READONLY,
 *   CAIRN_BUSY (this thread holds the open transaction),
 *   CAIRN_IOERR (store failed earlier; reopen it), ENOMEM.
 */
CAIRN_API int cairn_txn_begin(cairn_store *s, cairn_txn **out);

/**
 * Commit: unswizzle and log every page written, append a commit record,
 * write-protect the pages again and release the transaction, so another
 * thread's cairn_txn_begin may proceed; then (CAIRN_SYNC_FULL) wait until
 * the log is durable up to this commit.  Commits of several threads share
 * one fdatasync: the first waiter syncs for every record written before
 * it began (group commit; the crash rule is unchanged, see DESIGN.md).
 * Durable when it returns CAIRN_OK (under CAIRN_SYNC_OFF: atomic, but
 * durable only once a checkpoint has put it in LMDB, or the kernel has
 * written the log back), and t is freed.
 * On an error before the record is written, the transaction is still
 * open and unchanged; the caller may fix it (for CAIRN_EXTERNAL_POINTER)
 * and commit again, or must abort it - until then it stays the store's
 * open transaction and every cairn_txn_begin waits.
 * If the log sync fails, this commit and every commit waiting on the same
 * sync return CAIRN_IOERR and the store is failed (sticky): whether the
 * commit is durable is known only after reopening, which recovers a
 * prefix of the commit order.  The transaction is no longer open then
 * (later transactions may have read its bytes, which stay in memory);
 * cairn_txn_abort only frees t, and a retried commit returns CAIRN_IOERR.
 * t must be the open transaction (a handle already committed or aborted
 * has been freed).  No thread may write store memory or use t while this
 * runs.
 * @return CAIRN_OK, CAIRN_INVALID (t NULL),
 *   CAIRN_EXTERNAL_POINTER (a pointer field holds an address outside the
 *   store's objects; cairn_errmsg names the object),
 *   CAIRN_IOERR (the log write or sync failed, or the store failed earlier:
 *   sticky, no commit succeeds until the store is reopened; abort),
 *   CAIRN_FULL (disk full: abort, the store stays usable),
 *   CAIRN_CORRUPT or CAIRN_IOERR if a page the commit needs could not be
 *   loaded, ENOMEM.
 *   If the commit was logged but the pages could not be write-protected
 *   again, it returns CAIRN_OK once durable and the store is failed from
 *   then on: the next cairn_txn_begin returns CAIRN_IOERR.
 */
CAIRN_API int cairn_txn_commit(cairn_txn *t);

/** Abort: restore every byte the transaction changed, allocations included,
 * and free t.  Objects it allocated are gone, so pointers to them are
 * invalid.  No thread may write store memory or use t while this runs.
 * abort(NULL) does nothing. */
CAIRN_API void cairn_txn_abort(cairn_txn *t);

/**
 * Allocate count zeroed objects of type (contiguous, 16-byte aligned),
 * inside the store: one object holding an array of count elements, each
 * with the type's pointer fields, freed as a whole.  Any size, larger than
 * a page included.  *out may itself be store memory (a pointer field of
 * another object).  The allocation is undone by abort.  Any thread may
 * call this while t is open, concurrently with other allocations.
 * @param t      the store's open transaction.
 * @param type   a type id from cairn_type_register on this store, or
 *               CAIRN_TYPE_BYTES (count is then the size in bytes).
 * @param out    receives the address; valid as described under Lifetimes.
 * @return CAIRN_OK, CAIRN_INVALID (t not the open transaction, out NULL,
 *   unknown type, count 0, size overflow), CAIRN_FULL (larger than the
 *   store, or address range exhausted).
 */
CAIRN_API int cairn_alloc(cairn_txn *t, cairn_type type, size_t count, void **out);

/** Allocate size zeroed pointer-free bytes.  As cairn_alloc. */
CAIRN_API int cairn_alloc_bytes(cairn_txn *t, size_t size, void **out);

/**
 * Free an object returned by cairn_alloc/cairn_alloc_bytes, in the open
 * transaction t (an abort brings it back).  Its bytes are zeroed at once.
 * Pointers to it held elsewhere are not found or cleared: clear them in
 * the same transaction (cairn_check reports pointers to freed objects).
 * NULL is fine.
 * @return CAIRN_OK, CAIRN_INVALID (t not the open transaction; not the
 *   start of a live object: double free, interior or foreign pointer).
 */
CAIRN_API int cairn_free(cairn_txn *t, void *obj);

/**
 * Name obj (NULL removes the name) as a root.  Names are 1..55 bytes;
 * a store holds up to 1024 roots.  Transactional like any write: roots
 * live in store pages, so the change is visible at once (to every
 * thread), durable at commit, undone by abort.  obj is not checked to be
 * the start of a live object, only to lie in the store's object area.
 * Removing a name that is not there is not an error.
 * @param t     the store's open transaction.
 * @param name  NUL-terminated; copied into the store.
 * @return CAIRN_OK, CAIRN_INVALID (t not the open transaction, bad name),
 *   CAIRN_EXTERNAL_POINTER (obj outside the store), CAIRN_FULL (no free
 *   root slot for a new name).
 */
CAIRN_API int cairn_root_set(cairn_txn *t, const char *name, void *obj);

/** Look a root up.  Needs no transaction; any thread.  *out receives the
 * pointer (never NULL: setting a root to NULL removes the name), valid as
 * described under Lifetimes.  While a transaction is open, the
 * result reflects its uncommitted cairn_root_set calls.
 * @return CAIRN_OK, CAIRN_NOT_FOUND, CAIRN_INVALID (s or out NULL, name
 *   NULL, empty or longer than 55 bytes). */
CAIRN_API int cairn_root_get(cairn_store *s, const char *name, void **out);

/**
 * Make [addr, addr+len) resident, and writable if for_write (which needs
 * the transaction open), so it can be handed to a system call.  The
 * extents (64 KiB) of the range are pinned: the cache budget does not
 * evict them until cairn_release() is called for the range (pins count
 * per extent: one release per prefault).  Writability lasts until the
 * transaction commits or aborts; the pages written become part of it.
 * len 0 does nothing.  On error nothing stays pinned.
 * @return CAIRN_OK, CAIRN_CORRUPT or CAIRN_IOERR (a page failed to load;
 *   nothing of it is shown), CAIRN_EXTERNAL_POINTER (range not inside the
 *   store's address range), CAIRN_INVALID (s NULL; for_write without a
 *   transaction open), CAIRN_READONLY (for_write on a read-only store),
 *   ENOMEM (mprotect backend: vm.max_map_count reached) and other errno
 *   values from the kernel.
 */
CAIRN_API int cairn_prefault(cairn_store *s, const void *addr, size_t len, int for_write);

/** Unpin a range pinned by cairn_prefault(); it may be evicted again.
 * Unpins every extent the range touches, once; an extent not pinned stays
 * unpinned.  len 0 does nothing.
 * @return CAIRN_OK, CAIRN_INVALID (s NULL), CAIRN_EXTERNAL_POINTER (range
 *   not inside the store). */
CAIRN_API int cairn_release(cairn_store *s, const void *addr, size_t len);

/**
 * Write every page committed so far back to LMDB (one LMDB transaction
 * carrying the new checkpoint position), then start a new log holding
 * only what was committed after that position (empty unless other
 * threads committed meanwhile).  The background flusher does this on its
 * own when the log grows past checkpoint_bytes, and cairn_close does it
 * last.  Runs alongside an open transaction (its uncommitted writes are
 * not included) and alongside commits, which do not wait for it beyond
 * its start and its end; one checkpoint runs at a time.
 * @return CAIRN_OK, CAIRN_INVALID (s NULL), CAIRN_READONLY,
 *   CAIRN_IOERR (LMDB write or log reset failed, or the store failed
 *   earlier: sticky, commits fail until reopened), CAIRN_FULL (disk or
 *   LMDB map full: not sticky, the log keeps every commit), ENOMEM.
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
    uint64_t wal_bytes;      /**< current size of the log's records */
    uint64_t bytes_on_disk;  /**< LMDB data file plus the log file (with the
                                  zeros written ahead of its records, < 1 MiB) */
    uint64_t bytes_compressed;   /**< compressed size of extents written by checkpoints */
    uint64_t bytes_uncompressed; /**< their uncompressed size */
    uint64_t pages_allocated;    /**< high-water mark of the allocator, in pages */
    int backend;             /**< CAIRN_BACKEND_UFFD or CAIRN_BACKEND_MPROTECT */
    uint64_t log_syncs;      /**< fdatasyncs of the log by commits and checkpoints; below
                                  commits when commits of several threads shared one sync */
} cairn_stats;

/** Snapshot the counters (counted since this open).  Never faults; any
 * thread.  Loads the allocator's superblock (the store's first extent) if
 * it is not resident, to report pages_allocated, and counts that load.
 * @return CAIRN_OK, CAIRN_INVALID (s or out NULL), or the error of that
 * load (CAIRN_CORRUPT, CAIRN_IOERR). */
CAIRN_API int cairn_stats_get(cairn_store *s, cairn_stats *out);

/** Static text for a return code: every CAIRN_* code, and a few errno
 * values (ENOMEM, EIO, ENOSPC, ENOENT, EACCES, EEXIST, EINVAL); other
 * positive values give "system error" (use strerror() for those).  Never
 * NULL; the string is static.  Async-signal-safe. */
CAIRN_API const char *cairn_strerror(int rc);

/** Detail of the last failure on s that recorded one (e.g. which object
 * held an external pointer); "" if there was none.  For s NULL: the detail
 * of the calling thread's last failed cairn_open() ("" after a successful
 * one), in a thread-local buffer valid until that thread's next open.  Not
 * every error records a detail (bad arguments usually do not), and a
 * successful call does not clear it, so read it right after the failing
 * call.  The pointer is to a buffer inside s, valid until cairn_close(s);
 * its text is replaced by the next failure on s in any thread, including
 * the background flusher's checkpoints. */
CAIRN_API const char *cairn_errmsg(cairn_store *s);

/** What cairn_check found.  Counts of things examined, then of problems. */
typedef struct cairn_check_report {
    uint64_t extents_checked;  /**< extents read (from LMDB or memory) */
    uint64_t pages_checked;    /**< object pages below the high-water mark */
    uint64_t objects;          /**< live objects */
    uint64_t pointers;         /**< non-NULL pointer words, roots included */
    uint64_t corrupt_extents;  /**< extents failing header, zstd or checksum, and damage
                                    to data.mdb's LMDB pages (counted once) */
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
 * transaction slot while it runs (cairn_txn_begin waits for it).  Called
 * from the thread that began the open transaction it returns CAIRN_BUSY
 * at once instead of waiting for itself.
 * Works on read-only stores.  Never crashes on damaged data.
 * @param r  filled in (zeroed first); meaningful for CAIRN_OK and
 *   CAIRN_CORRUPT.
 * @return CAIRN_OK if clean, CAIRN_CORRUPT if problems were found (see r),
 *   CAIRN_INVALID (s or r NULL), CAIRN_BUSY (this thread holds the open
 *   transaction), or an error that stopped the check
 *   (ENOMEM, CAIRN_IOERR, or CAIRN_CORRUPT with r->problems 0 when LMDB
 *   itself reports damage).
 */
CAIRN_API int cairn_check(cairn_store *s, cairn_check_report *r);

/** Base address and size of the store's address range (for tools).
 * Either output may be NULL.  Valid until cairn_close(); another open of
 * the same store may get another base.
 * @return CAIRN_OK, CAIRN_INVALID (s NULL). */
CAIRN_API int cairn_range(cairn_store *s, void **base, size_t *len);

#ifdef __cplusplus
}
#endif
#endif /* CAIRN_H */
