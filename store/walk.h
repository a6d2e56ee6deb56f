/*
 * walk.h - walking a store's objects without its types being registered
 * by anyone: the allocator's descriptors say where every object is and
 * which of its words are pointers (docs/FORMAT.md, section 1).  Reads
 * committed, unswizzled bytes, so addresses are store offsets.  Serves stat, dump and gc;
 * the public part is in inspect.h.  Internal.
 */
#ifndef CAIRN_WALK_H
#define CAIRN_WALK_H

#include "heap.h"
#include "inspect.h"
#include "snapshot.h"

/* Where committed, unswizzled extents come from, for the walker and the
 * checker: a snapshot (the log's images, then its LMDB transaction), or an
 * open store whose writers the caller keeps out (resident extents from
 * memory as of the last commit, the rest from LMDB in txn). */
struct extent_source {
    cairn_store *s;        /* catalog and decoder */
    struct pager *p;       /* an open store's pager, or NULL */
    struct snapshot *snap; /* or a snapshot */
    MDB_txn *txn;
};
/* Extent e into raw (zero if never written); CAIRN_CORRUPT if its LMDB
 * value fails to decode (raw is then zero). */
int walk_committed_extent(const struct extent_source *src, uint64_t e, void *raw);

/* Extents kept decoded: 16 MiB, half of it for the extents below the
 * object pages (superblock, roots, descriptors), so that a scan of the
 * object pages does not evict the descriptors every pointer lookup needs:
 * 128 descriptor extents describe 256 MiB of objects. */
#define WALK_CACHE 256
#define WALK_CACHE_META 128

/* walk_init_* flags.  WALK_CHECK is the checker's walk: an extent that
 * fails to decode reads as zero (the checker's first pass counts it), a
 * damaged superblock leaves the walk empty instead of failing it (the
 * checker reports it), and no visit marks are kept. */
#define WALK_CHECK 1u

struct walk {
    unsigned flags;
    cairn_store *s;        /* catalog: types, LMDB handles, checksum seed */
    struct pager *p;       /* open store: resident extents come from memory */
    struct snapshot *snap; /* or a snapshot */
    MDB_txn *txn;          /* LMDB read transaction */
    struct extent_source src;
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

/* Over a snapshot, or over an open store whose writers the caller keeps
 * out (transaction slot and log mutex held, txn an LMDB read transaction).
 * CAIRN_CORRUPT if the superblock is damaged. */
int walk_init_snapshot(struct walk *w, struct snapshot *snap, unsigned flags);
int walk_init_store(struct walk *w, cairn_store *s, MDB_txn *txn, unsigned flags);
void walk_fini(struct walk *w);

/* Committed bytes of page n (valid until the next walk call). */
int walk_page(struct walk *w, uint64_t n, const unsigned char **out);
int walk_desc(struct walk *w, uint64_t n, struct page_desc *out);

/* Is the superblock one the walker can follow: magic, and a high-water
 * mark inside the store's object pages? */
static inline int walk_superblock_sound(const struct superblock *sb, const struct layout *l)
{
    return sb->magic == SUPER_MAGIC && sb->next_page >= l->data_start && sb->next_page <= l->pages;
}

/* Is offset v inside a live object?  1 yes, 0 no, or an error. */
int walk_live(struct walk *w, uint64_t v);

/* Has walk_visit seen the object starting at off? */
int walk_seen(const struct walk *w, uint64_t off);

/* Mark everything reachable from the roots (or from the one named root)
 * through pointer words; *objects, *bytes: what was reached.  Pointers to
 * no live object are skipped (cairn check reports them). */
int walk_mark(struct walk *w, const char *root, uint64_t *objects, uint64_t *bytes);

#endif
