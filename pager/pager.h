/*
 * pager.h - the pager: one store's address range, its two views of one
 * memfd, the page states, and the fault path that fills pages on first
 * touch and tracks first writes.  See pager.c for the design note.
 *
 * Internal to libcairn.
 */
#ifndef CAIRN_PAGER_H
#define CAIRN_PAGER_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <zstd.h>

#include "cairn.h"
#include "layout.h"
#include "pagestore.h"

/* Extent states (ext_state[], low four bits). */
#define XS_ABSENT 0   /* not in memory: the next touch loads it */
#define XS_LOADING 1  /* one thread is preparing it in the private view */
#define XS_RESIDENT 2 /* in memory and published in the client view */
#define XS_EVICTING 3 /* being dropped: its pages are locked one by one */
#define XS_STATE(st) ((st)&0x0f)
/* Flags beside the state. */
#define XS_WRITABLE 0x10 /* mprotect backend only: mapped read-write */
#define XS_REF 0x20      /* touched since the clock hand last passed */

/* Page state bits (page_state[]). */
#define PS_DIRTY 0x01     /* written in the open transaction; before-image in shadow */
#define PS_UNFLUSHED 0x02 /* committed changes not yet in LMDB */
/* All zeros, as loaded from an extent the page store never had, and not
 * written since: its first write needs no before-image, because its
 * shadow page is a hole, which reads as zeros (fault_snapshot_page). */
#define PS_ZERO 0x04
#define PS_LOCK 0x80      /* held while the page's bytes are copied */

#define PAGER_SLOTS 32 /* concurrent loads; more faulting threads wait */

struct pager;

/*
 * A fault backend: how the client view is made to trap, opened and
 * protected again.  pager_open picks one of two tables (pager_backend_uffd
 * in backend_uffd.c, pager_backend_mprotect in backend_mprotect.c) and
 * stores it in p->ops; nothing else asks which backend it runs on.
 *
 * SIGNAL CONTEXT: publish, remap and make_writable are called by the fault
 * path inside the SIGBUS/SIGSEGV handler, sample and before_punch by the
 * evictor, which the fault path runs after a load.  They must be
 * async-signal-safe: atomics, page-lock spins and syscalls only.
 * write_protect runs at commit and abort with the log mutex held, never in
 * a handler, and is signal-safe too.  setup and teardown run at open and
 * close only.  No op reads or writes the client view's bytes (a nested
 * fault): they change its mappings and protection only.
 */
struct fault_backend {
    int id; /* CAIRN_BACKEND_UFFD or CAIRN_BACKEND_MPROTECT, for cairn_stats */
    /* pager_open, with the client view mapped PROT_NONE: arrange that every
     * access to a page not published traps.  0, or an error that leaves the
     * view PROT_NONE (pager_open may then try the other backend). */
    int (*setup)(struct pager *p);
    /* pager_close, after a successful setup. */
    void (*teardown)(struct pager *p);
    /* Extent e is LOADING and its pages are in the memfd: make them visible
     * read-only.  touched: the page whose fault caused the load, or
     * UINT64_MAX for a load outside a fault. */
    int (*publish)(struct pager *p, uint64_t e, uint64_t touched);
    /* An access to page n trapped although its extent is RESIDENT; the
     * caller holds n's page lock.  Map n again with the protection its
     * state calls for. */
    int (*remap)(struct pager *p, uint64_t n);
    /* First write to page n in the open transaction: take the before-image
     * (fault_snapshot_page) of every page this makes writable, then make
     * them writable. */
    int (*make_writable)(struct pager *p, uint64_t n);
    /* Commit or abort: pages [first, first + count) were written in the
     * closing transaction; write-protect them again. */
    int (*write_protect)(struct pager *p, uint64_t first, uint64_t count);
    /* The clock hand cleared XS_REF of resident extent e. */
    void (*sample)(struct pager *p, uint64_t e);
    /* The evictor holds all of e's page locks, e is EVICTING, and its pages
     * are about to be punched out of the memfd: no access may read the
     * hole.  Nonzero: do not punch (e goes back to RESIDENT). */
    int (*before_punch)(struct pager *p, uint64_t e);
};

extern const struct fault_backend pager_backend_uffd, pager_backend_mprotect;

struct load_slot {
    struct pagestore_reader *reader; /* the page store, for one load at a time */
    ZSTD_DCtx *dctx;
    unsigned char *buf; /* one extent: decompressed and swizzled here */
};

struct pager {
    /* Set at open, read-only afterwards. */
    struct layout layout;
    /* The fault backend, chosen by pager_open. */
    const struct fault_backend *ops;
    char *base;   /* client view: what the application sees */
    char *priv;   /* private view of the same memfd */
    char *shadow; /* before-images of pages written in the open transaction */
    size_t bytes; /* pages * PAGE_BYTES */
    int memfd, shadow_fd;
    /* userfaultfd backend: its descriptor, and CAIRN_PUBLISH=page (a load
     * maps only the faulting page, for measuring against whole extents). */
    int uffd;
    int publish_page_only;
    pid_t pid;              /* the process that opened; a forked child is foreign */
    uint64_t checksum_seed; /* per store, mixed into extent checksums */
    cairn_store *store;     /* for the fault-error callback */
    cairn_fault_error_fn fault_error;
    void *fault_error_arg;
    const char *name; /* store path, for messages */

    struct pagestore *pagestore; /* where extents are loaded from */

    /* Page and extent states: one byte each, anonymous memory committed
     * only where touched. */
    _Atomic uint8_t *ext_state;
    _Atomic uint8_t *page_state;

    /* Pages written in the open transaction, appended by the fault path. */
    uint32_t *dirty;
    _Atomic uint64_t ndirty;
    _Atomic int txn_open;

    struct load_slot slots[PAGER_SLOTS];
    _Atomic uint32_t slots_free; /* bit i: slot i free */

    /* Committed pages not yet checkpointed.  Guarded by the store's log
     * mutex (commit appends, checkpoint drains). */
    uint32_t *unflushed;
    size_t n_unflushed, cap_unflushed;

    /* A checkpoint in flight (pager_checkpoint_begin .. _done) reads the
     * committed state as of its start while commits go on: a commit
     * meanwhile saves the before-images of its pages here first (the
     * first save of a page wins), and the checkpoint's reads take a saved
     * image over the page.  Under ckpt_lock, which commit takes inside
     * the log mutex and the checkpoint outside every page lock. */
    pthread_mutex_t ckpt_lock;
    int ckpt_active;
    uint32_t *saved_key; /* open addressing over page numbers; UINT32_MAX: empty */
    uint32_t *saved_at;  /* image index of saved_key[i] */
    size_t saved_slots;  /* a power of two, more than twice n_saved */
    unsigned char *saved_img;
    size_t n_saved, cap_saved;

    /* Cache budget (0 = none): extents resident beyond it are evicted by a
     * clock over [0, ext_hwm), skipping pinned, dirty and unflushed ones. */
    uint64_t budget_extents;
    int evict_random; /* CAIRN_EVICT_POLICY=random: for measuring the clock against */
    _Atomic uint64_t clock_hand, ext_hwm;
    /* Resident count at which the last sweep found nothing more to evict
     * (0: it did not stall); see evict_for_room. */
    _Atomic uint64_t evict_stall;
    _Atomic uint32_t *ext_pins; /* cairn_prefault pins, cairn_release unpins */

    /* Counters. */
    _Atomic uint64_t faults_read, faults_write, extents_loaded, evictions;
    _Atomic uint64_t extents_resident;
};

struct pager_config {
    uint64_t pages;
    uint64_t cache_bytes;
    int backend;           /* CAIRN_BACKEND_AUTO, _UFFD or _MPROTECT */
    int evict_random;      /* evict at random, to measure the clock against */
    int publish_page_only; /* userfaultfd: a load maps only the faulting page */
    struct pagestore *pagestore;
    uint64_t checksum_seed;
    cairn_store *store;
    cairn_fault_error_fn fault_error;
    void *fault_error_arg;
    const char *name;
};

/* pager.c */
int pager_open(struct pager **out, const struct pager_config *cfg);
void pager_close(struct pager *p);
int pager_prefault(struct pager *p, const void *addr, size_t len, int for_write);
void pager_txn_begin(struct pager *p);
/* Commit side: after the log is durable, write-protect the dirty pages
 * again, mark them unflushed and forget their before-images. */
int pager_txn_committed(struct pager *p);
/* Before the log write: make room so that pager_txn_committed cannot fail
 * for want of memory. */
int pager_reserve_unflushed(struct pager *p);
/* Checkpoint side, under the log mutex: the committed state from now on
 * is what pager_read_checkpoint reads until pager_checkpoint_done, however
 * many commits follow. */
void pager_checkpoint_begin(struct pager *p);
/* The first n unflushed pages are in LMDB as of the checkpoint (0 after a
 * failed one): mark them flushed, except those committed again since it
 * began, and end it.  Under the log mutex. */
void pager_checkpoint_done(struct pager *p, size_t n);
/* pager_read_committed as of pager_checkpoint_begin.  Holds no lock but
 * its own; runs beside commits. */
int pager_read_checkpoint(struct pager *p, uint64_t n, void *out);
/* Abort side: copy every before-image back and write-protect. */
void pager_txn_rolled_back(struct pager *p);
/* Copy the committed (last commit, not the open transaction's) bytes of
 * page n into out, unswizzled.  Returns 0, 1 if the page is not in
 * memory (then LMDB holds its committed bytes), or a load error of its
 * descriptor page. */
int pager_read_committed(struct pager *p, uint64_t n, void *out);
/* Undo cairn_prefault's pins on [addr, addr+len). */
int pager_release(struct pager *p, const void *addr, size_t len);
/* Copy the current bytes of dirty page n unswizzled into cur and its
 * before-image unswizzled into old.  Returns 0, CAIRN_EXTERNAL_POINTER
 * with *bad set to the address of the offending word, or a load error of
 * its descriptor page. */
int pager_read_dirty(struct pager *p, uint64_t n, void *cur, void *old, uintptr_t *bad);
/* CAIRN_BACKEND_UFFD or CAIRN_BACKEND_MPROTECT: the backend p runs on. */
int pager_backend(const struct pager *p);

/* fault.c: the fault path.  Every function here is async-signal-safe. */
int fault_handle(struct pager *p, uintptr_t addr, int is_write);
int fault_load_extent(struct pager *p, uint64_t e);
int fault_make_writable(struct pager *p, uint64_t n);
/* Save the before-image of page n in the shadow and mark it DIRTY, once per
 * transaction; for the backends' make_writable.  Holds no lock on return. */
int fault_snapshot_page(struct pager *p, uint64_t n);
void fault_lock_page(struct pager *p, uint64_t n);
void fault_unlock_page(struct pager *p, uint64_t n);
/* Lock page n with its extent in memory (loading it if needed), so that
 * its bytes can be read through the private view without eviction
 * punching them meanwhile.  0 with the lock held, or a load error. */
int fault_hold_page(struct pager *p, uint64_t n);

/* evict.c: the cache budget.  Signal-safe. */
/* Evict down to the budget.  keep: the extent just loaded (spared), or
 * UINT64_MAX when called because something became evictable (checkpoint,
 * abort, release), which always sweeps. */
void evict_for_room(struct pager *p, uint64_t keep);
/* Evict extent e now if it is resident and clean, pinned or not (a
 * read-only handle's refresh dropping what changed): 1 if it was. */
int evict_extent(struct pager *p, uint64_t e);

/* swizzle.c */
void swizzle_ptr_map(const struct pager *p, uint64_t n, const char *desc_view, uint64_t map[PAGE_WORDS / 64]);
int swizzle_page(uint64_t *words, const uint64_t *map, uintptr_t base, uint64_t lo, uint64_t hi);
int unswizzle_page(uint64_t *dst, const uint64_t *src, const uint64_t *map, uintptr_t base, uint64_t lo, uint64_t hi,
                   unsigned *bad_word);

/* extent.c: the extent record, the value stored in LMDB.  Format in FORMAT.md. */
size_t extent_bound(void);
int extent_encode(void *dst, size_t cap, size_t *len, const void *raw, uint64_t e, uint64_t seed, int level,
                  ZSTD_CCtx *cctx);
int extent_decode(void *raw, const void *val, size_t len, uint64_t e, uint64_t seed, ZSTD_DCtx *dctx);

/* lmdb_file.c: 0 if data.mdb holds every page its newest meta page
 * claims (else CAIRN_CORRUPT, or an errno); *have and *need are the file's
 * size and the size needed, either may be NULL.  Call after a transaction
 * begins and before it reads.  Signal-safe. */
int lmdb_file_check(MDB_env *env, uint64_t *have, uint64_t *need);
/* LMDB_FILE_SLACK bytes of zeros past data.mdb's last page, where a
 * damaged page can send LMDB's reads: lmdb_file_guard after mdb_env_open
 * (maps zeros, writes nothing), lmdb_file_pad when a write transaction
 * begins (grows the file, maps it back; 0 or an error).  Not signal-safe. */
#define LMDB_FILE_SLACK ((uint64_t)1 << 20) /* sparse: no blocks */
void lmdb_file_guard(MDB_env *env);
void lmdb_file_follow(MDB_env *env);
int lmdb_file_pad(MDB_env *env);
/* CAIRN_CORRUPT if a meta page of file (a data.mdb) has a page size LMDB
 * would divide by (zero, not a power of two); 0 otherwise (other damage
 * LMDB reports itself).  Before mdb_env_open. */
int lmdb_file_precheck(const char *file);
/* Where LMDB mapped env's data.mdb, or NULL.  Not signal-safe. */
char *lmdb_map_base(MDB_env *env);

/* lmdb_verify.c: 0 if the LMDB pages of read transaction txn's snapshot
 * are sound enough for LMDB's write path (every tree page's own number,
 * kind and bounds, no page reachable twice, the free list names no page in
 * use); CAIRN_CORRUPT with the page and the fault in why; ENOMEM. */
int lmdb_verify(MDB_txn *txn, char *why, size_t why_len);
/* CAIRN_CORRUPT if v, a committed value of an 8-byte key that a write is
 * about to replace or delete, has a damaged overflow page header (LMDB
 * frees by its page count).  map: lmdb_map_base(env). */
int lmdb_value_check(MDB_txn *txn, const char *map, const MDB_val *v);

/* lmdb_guard.c: LMDB calls that return MDB_CORRUPTED where a damaged page
 * would make LMDB fault (every call that reads pages goes through these).
 * Async-signal-safe.  lmdb_guard_trap: from the fault handler, jump back
 * into the guarded call of this thread, if there is one. */
int lmdb_get(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val);
int lmdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val, unsigned flags);
int lmdb_del(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val);
int lmdb_cursor_get(MDB_cursor *cur, MDB_val *key, MDB_val *val, MDB_cursor_op op);
int lmdb_dbi_open(MDB_txn *txn, const char *name, unsigned flags, MDB_dbi *dbi);
int lmdb_env_copyfd2(MDB_env *env, int fd, unsigned flags);
int lmdb_txn_commit(MDB_txn *txn); /* aborts the transaction after a fault */
void lmdb_guard_trap(void);
void lmdb_assert(MDB_env *env, const char *msg); /* for mdb_env_set_assert */

/* Map an LMDB return code onto cairn's; errnos and CAIRN_* codes pass.
 * Signal-safe, as is cairn_strerror (errcode.c). */
int lmdb_to_cairn(int rc);

/* signal.c: signal_install puts the SIGSEGV/SIGBUS handler in place (at
 * every store and environment open); signal_register also makes p's range
 * its own. */
int signal_install(void);
int signal_register(struct pager *p);
void signal_unregister(struct pager *p);

/* Spin politely; used only where the holder runs a bounded, non-faulting step. */
void fault_relax(unsigned *spins);

#endif
