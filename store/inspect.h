/*
 * inspect.h - what the `cairn` command (tools/) needs beyond the public
 * header: read a store's committed state without opening it (a snapshot),
 * walk its objects, check it, and the maintenance operations (backup,
 * compact, gc).  Each operation gathers; the command prints.
 *
 * This is the command's only view into the library: no LMDB, pager or log
 * type appears here.  Internal to cairn (not installed).
 *
 * Errors: every call returns 0, a CAIRN_* code or an errno; calls taking
 * err put a message naming the file and the reason there (no "cairn SUB:"
 * prefix; the command adds it).
 */
#ifndef CAIRN_INSPECT_H
#define CAIRN_INSPECT_H

#include <stddef.h>
#include <stdint.h>

#include "cairn.h"

/* How long an operation gets on: problem with the text of each problem
 * found (check), progress now and then with work done out of total (the
 * unit is the pass's own).  Either may be NULL, or the whole struct. */
struct inspect_hooks {
    void (*problem)(void *arg, const char *msg);
    void (*progress)(void *arg, const char *pass, uint64_t done, uint64_t total);
    void *arg;
};

/* ---- snapshots (snapshot.c) ---- */

/* The committed state of a store read without opening it: an LMDB read
 * transaction (the checkpointed extents and the catalog) plus the log's
 * committed transactions after that checkpoint, replayed in memory.  It
 * takes no lock and writes nothing, so it works while another process has
 * the store open. */
struct snapshot;

/* Read the store in directory path.  ENOENT (no such directory, or no
 * data.mdb: not a store), CAIRN_CORRUPT (catalog, log header or a log
 * record damaged), CAIRN_BUSY (the store checkpointed under us more times
 * than we retry), errno values. */
int snapshot_open(const char *path, struct snapshot **out, char *err, size_t errlen);
void snapshot_close(struct snapshot *snap);
/* The detail of the last failure of a call on snap ("" if none). */
const char *snapshot_errmsg(const struct snapshot *snap);

struct snapshot_info {
    const char *path;
    uint8_t store_id[16];
    int format;            /* catalog format version */
    uint64_t page_bytes;   /* 4096 */
    uint64_t extent_pages; /* pages per extent, the unit stored in LMDB */
    uint64_t pages;        /* the store's range, in pages */
    uint64_t ckpt_lsn;     /* data.mdb holds every commit up to this LSN */
    uint64_t last_lsn;     /* the snapshot: checkpoint plus commits up to this */
    uint64_t log_txns;     /* committed transactions replayed from the log */
    uint64_t log_bytes;    /* size of the log when it was read */
    uint64_t log_generation, log_start_lsn;
    uint64_t extents_changed_by_log;
    int retries; /* times a checkpoint raced the open */
};
void snapshot_info(const struct snapshot *snap, struct snapshot_info *out);

/* Who holds a store: the read-write opener's pid (0 if none), and each
 * process with a snapshot open (read-only handles, the command), the
 * oldest snapshot it holds and how many LMDB commits (checkpoints) that
 * is behind the newest.  This process is left out. */
#define HOLDERS_MAX 64
struct holders {
    long writer_pid;
    size_t n_readers;
    struct {
        long pid;
        uint64_t txnid, behind;
    } readers[HOLDERS_MAX];
    size_t more_readers; /* not listed: past HOLDERS_MAX */
};
int snapshot_holders(const struct snapshot *snap, struct holders *out);

/* ---- what `cairn stat` shows (inspect.c) ---- */

struct stat_type {
    uint32_t id;
    const char *name; /* "bytes" for id 0 */
    uint64_t size;    /* element size */
    uint32_t pointers;
    uint64_t objects, bytes;
};

struct store_stat {
    uint64_t extents_stored, compressed_bytes; /* LMDB values, as stored */
    uint64_t data_start, allocated;            /* first object page; pages handed out */
    uint64_t free_runs, free_pages;
    uint64_t live_objects, live_bytes; /* as the superblock counts them */
    uint64_t data_mdb_bytes;
    int64_t data_mdb_mtime;
    struct stat_type *types; /* registered types, plus "bytes" when it has objects */
    size_t n_types;
    /* Small objects whose pointer layout fits no single type, by class. */
    struct {
        uint32_t class_bytes;
        uint64_t objects, bytes;
    } untyped[32];
    size_t n_untyped;
};
int inspect_stat(struct snapshot *snap, struct store_stat *out, const struct inspect_hooks *hooks);
void inspect_stat_free(struct store_stat *st);

/* ---- the heap walker (walk.c) ---- */

/* Objects, pointer words and roots of a store, read from its committed,
 * unswizzled bytes: addresses are store offsets. */
struct walk;

struct walk_object {
    uint64_t off;         /* store offset of its first byte */
    uint64_t bytes;       /* size: as requested (large), else as the layout tells, else the slot size */
    uint32_t type;        /* type id, when type_known */
    int type_known;       /* 0: a small object whose pointer layout fits no single type */
    int size_class;       /* small object: index of its size class; -1 for a large one */
    uint32_t class_bytes; /* small object: its slot size; 0 for a large one */
};

/* CAIRN_CORRUPT if the superblock is damaged. */
int walk_open(struct snapshot *snap, struct walk **out);
void walk_close(struct walk *w);

/* The live object containing offset v: 1 and *o, 0 if none. */
int walk_object_at(struct walk *w, uint64_t v, struct walk_object *o);

/* Every live object in address order; stops at a non-zero return of fn. */
typedef int (*walk_object_fn)(void *arg, const struct walk_object *o);
int walk_objects(struct walk *w, walk_object_fn fn, void *arg);

/* The 8-byte words of o, up to max_bytes (0 = all); stops at non-zero. */
typedef int (*walk_word_fn)(void *arg, uint64_t at, uint64_t value, int is_pointer);
int walk_words(struct walk *w, const struct walk_object *o, uint64_t max_bytes, walk_word_fn fn, void *arg);

/* len committed bytes at store offset off into buf. */
int walk_read(struct walk *w, uint64_t off, void *buf, uint64_t len);

/* Every named root: name and stored offset (0 = NULL). */
typedef int (*walk_root_fn)(void *arg, const char *name, uint64_t v);
int walk_roots(struct walk *w, walk_root_fn fn, void *arg);

/* Mark the object starting at off as seen; 1 if it was not yet. */
int walk_visit(struct walk *w, uint64_t off);

/* Name of type t ("bytes" for 0), or NULL. */
const char *walk_type_name(struct walk *w, uint32_t t);

/* ---- check (check.c) ---- */

/* As cairn_check, on a snapshot. */
int check_snapshot(struct snapshot *snap, cairn_check_report *r, const struct inspect_hooks *hooks);

/* ---- backup (backup.c) ---- */

struct backup_result {
    int retries;        /* times a checkpoint raced the copy */
    uint64_t log_bytes; /* log bytes copied */
};
/* Copy the store at src to the new directory dest (missing or empty): the
 * LMDB snapshot plus the part of the log that continues it, also while
 * another process has src open and commits.  hooks->progress sees the
 * attempts. */
int backup_store(const char *src, const char *dest, const struct inspect_hooks *hooks, struct backup_result *res,
                 char *err, size_t errlen);

/* ---- compact (compact.c) ---- */

struct compact_result {
    uint64_t extents, zero_dropped, raw, zbytes; /* extents written, all-zero ones left out */
    uint64_t bytes_before, bytes_after;          /* data.mdb + wal */
};
/* Rewrite the store at src with every extent recompressed at zstd level
 * into a fresh LMDB file, the log folded in: into dest (new or empty; src
 * is only read) or, when dest is NULL, in place (src must not be open
 * anywhere: CAIRN_BUSY). */
int compact_store(const char *src, const char *dest, int level, const struct inspect_hooks *hooks,
                  struct compact_result *res, char *err, size_t errlen);

struct dict_estimate {
    size_t trained_extents, trained_pages, measured_extents;
    size_t dict_bytes;     /* 0: too few extents, or training failed (why) */
    const char *why;       /* static text when dict_bytes is 0 */
    double ratio[4];       /* level 1, level, level 1 + dictionary, level + dictionary */
    uint64_t measured_raw; /* bytes the ratios are over */
};
/* What a zstd dictionary trained on half of the snapshot's extents would
 * gain on the other half.  Writes nothing. */
int compact_dict_estimate(struct snapshot *snap, int level, struct dict_estimate *out);

/* ---- gc (gc.c) ---- */

struct gc_object {
    uint64_t off, bytes;
    const char *type; /* name, or NULL when unknown */
};
struct gc_report {
    uint64_t reachable_objects, reachable_bytes;
    uint64_t unreachable_bytes;
    struct gc_object *unreachable; /* in address order */
    size_t n_unreachable;
};
/* Free every object of s (open read-write, checked clean) that no root
 * reaches, in one transaction (none when dry_run or nothing is found).
 * r->unreachable lists them (type names valid while s is open);
 * gc_report_free releases it.  err says which step failed. */
int gc_store(cairn_store *s, int dry_run, struct gc_report *r, const struct inspect_hooks *hooks, char *err,
             size_t errlen);
void gc_report_free(struct gc_report *r);

#endif
