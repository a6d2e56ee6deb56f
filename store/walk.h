/*
 * walk.h - walking a store's objects without its types being registered
 * by anyone: the allocator's descriptors say where every object is and
 * which of its words are pointers (docs/FORMAT.md, section 1).  Reads
 * committed, unswizzled bytes, so addresses are store offsets.  Used by
 * the command-line tool (stat, dump, gc).  Internal.
 */
#ifndef CAIRN_WALK_H
#define CAIRN_WALK_H

#include "heap.h"
#include "snapshot.h"

#define WALK_CACHE 256 /* extents kept decoded: 16 MiB */

struct walk {
    cairn_store *s;        /* catalog: types, LMDB handles, checksum seed */
    struct pager *p;       /* open store: resident extents come from memory */
    struct snapshot *snap; /* or a snapshot */
    MDB_txn *txn;          /* LMDB read transaction */
    struct layout layout;
    uint64_t ds, np; /* first object page, high-water mark */
    struct superblock sb;
    int has_plain_types; /* a registered type without pointers exists */
    struct {
        uint64_t e;
        unsigned char *raw;
    } cache[WALK_CACHE];
    uint64_t *seen; /* one bit per 16-byte granule of [ds, np): visited objects */
};

struct walk_object {
    uint64_t off;   /* store offset of its first byte */
    uint64_t bytes; /* size: as requested (large), else as the layout tells, else the slot size */
    uint32_t type;  /* type id, when type_known */
    int type_known; /* 0: a small object whose pointer layout fits no single type */
    int size_class; /* small object: index of its size class; -1 for a large one */
};

/* Over a snapshot, or over an open store whose writers the caller keeps
 * out (transaction slot and log mutex held, txn an LMDB read transaction).
 * CAIRN_CORRUPT if the superblock is damaged. */
int walk_init_snapshot(struct walk *w, struct snapshot *snap);
int walk_init_store(struct walk *w, cairn_store *s, MDB_txn *txn);
void walk_fini(struct walk *w);

/* Committed bytes of page n (valid until the next walk call). */
int walk_page(struct walk *w, uint64_t n, const unsigned char **out);
int walk_desc(struct walk *w, uint64_t n, struct page_desc *out);

/* The live object containing offset v: 1 and *o, 0 if none. */
int walk_object_at(struct walk *w, uint64_t v, struct walk_object *o);

/* Every live object in address order; stops at a non-zero return of fn. */
typedef int (*walk_object_fn)(void *arg, const struct walk_object *o);
int walk_objects(struct walk *w, walk_object_fn fn, void *arg);

/* The 8-byte words of o, up to max_bytes (0 = all); stops at non-zero. */
typedef int (*walk_word_fn)(void *arg, uint64_t at, uint64_t value, int is_pointer);
int walk_words(struct walk *w, const struct walk_object *o, uint64_t max_bytes, walk_word_fn fn, void *arg);

/* Every named root: name and stored offset (0 = NULL). */
typedef int (*walk_root_fn)(void *arg, const char *name, uint64_t v);
int walk_roots(struct walk *w, walk_root_fn fn, void *arg);

/* Mark the object starting at off as seen; 1 if it was not yet. */
int walk_visit(struct walk *w, uint64_t off);
int walk_seen(const struct walk *w, uint64_t off);

/* Mark everything reachable from the roots (or from the one named root)
 * through pointer words; *objects, *bytes: what was reached.  Pointers to
 * no live object are skipped (cairn check reports them). */
int walk_mark(struct walk *w, const char *root, uint64_t *objects, uint64_t *bytes);

/* Name of type t ("bytes" for 0), or NULL. */
const char *walk_type_name(struct walk *w, uint32_t t);

#endif
