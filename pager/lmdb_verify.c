/*
 * lmdb_verify.c - check the structure of data.mdb's LMDB pages before a
 * writer trusts them.
 *
 * LMDB has no page checksums and trusts what it reads.  Its read path
 * either works or faults on a damaged page (lmdb_guard.c turns the fault
 * into MDB_CORRUPTED), but its write path copies and shifts bytes by a
 * page's own bounds: a leaf whose free-space bounds are damaged, or a free
 * list that names a page still in use, corrupts memory or live data
 * without any fault.  So before the first write transaction of a store,
 * the trees are walked once and every page LMDB could modify is checked:
 *
 *   - every branch and leaf page reachable from the newest meta page (the
 *     free list, the main database and each named database) carries its
 *     own page number, is a branch or a leaf, has lower <= upper <= page
 *     size, and each node (header, key and inline data) lies between upper
 *     and the end of the page;
 *   - a branch's children, an overflow value's pages and the free list's
 *     page numbers are below the meta page's next page, and no page is
 *     reachable twice, nor both in use and free;
 *   - each database's tree has the depth and the numbers of branch, leaf
 *     and overflow pages and of entries its MDB_db record says (a page can
 *     look sound and hide nodes).
 *
 * It reads the tree pages only, not the values (an extent's overflow pages
 * are counted, not touched): for a store of 262,144 extents about 1,800
 * leaf pages.  Its layout knowledge is LMDB 0.9's data format version 1
 * (mdb.c: MDB_page, MDB_node, MDB_meta, MDB_db), which cairn's format
 * depends on anyway (FORMAT.md section 2).
 *
 * Not signal-safe (malloc).  Runs inside a transaction of the environment,
 * whose snapshot it checks; the pages it reads lie inside the file
 * (lmdb_file_check ran at the transaction's begin).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pager.h"

#define P_BRANCH 0x01
#define P_LEAF 0x02
#define P_OVERFLOW 0x04
#define P_LEAF2 0x20
#define F_BIGDATA 0x01
#define F_SUBDATA 0x02
#define PAGE_HEADER 16
#define NODE_HEADER 8
#define DB_RECORD 48
#define DB_ROOT 40 /* md_root in MDB_db */
#define META_DBS (PAGE_HEADER + 24)
#define META_LAST_PGNO (META_DBS + 2 * DB_RECORD)
#define META_TXNID (META_LAST_PGNO + 8)
#define NO_PAGE (~(uint64_t)0)
#define MAX_DEPTH 64

struct verify {
    const unsigned char *map;
    uint64_t psize, next;  /* next: the first page number not in use */
    unsigned char *in_use; /* a bit per page */
    uint64_t *free_pg;     /* the free list's page numbers, checked after the walk */
    size_t n_free, cap_free;
    uint64_t bad_page;
    const char *what;
};

static uint16_t u16(const unsigned char *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static uint64_t u64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static int bad(struct verify *v, uint64_t pgno, const char *what)
{
    v->bad_page = pgno;
    v->what = what;
    return CAIRN_CORRUPT;
}

/* Pages [pgno, pgno + n) are in use, each once. */
static int take(struct verify *v, uint64_t pgno, uint64_t n, uint64_t from)
{
    if (pgno < 2 || pgno >= v->next || n > v->next - pgno)
        return bad(v, from, "points past the last page");
    for (uint64_t i = pgno; i < pgno + n; i++) {
        if (v->in_use[i / 8] & (1u << (i % 8)))
            return bad(v, from, "points to a page that is in use elsewhere");
        v->in_use[i / 8] |= (unsigned char)(1u << (i % 8));
    }
    return 0;
}

/* What a walk of one tree found, to compare with its MDB_db record. */
struct counts {
    uint64_t branch, leaf, overflow, entries;
    unsigned depth;
};

static int walk_tree(struct verify *v, uint64_t pgno, unsigned depth, int is_main, int is_free, uint64_t from,
                     struct counts *c);
static int tree(struct verify *v, const unsigned char *rec, int is_main, int is_free, uint64_t from);

/* A free-list record: a count, then that many page numbers.  They are
 * only collected here, and checked against the pages in use after the
 * walk, whichever comes first. */
static int free_list(struct verify *v, const unsigned char *ids, uint64_t size, uint64_t pgno)
{
    if (size < 8 || u64(ids) > (size - 8) / 8)
        return bad(v, pgno, "holds a free-list record of the wrong size");
    uint64_t n = u64(ids);
    for (uint64_t i = 0; i < n; i++) {
        /* LMDB keeps each record sorted, descending, and allocates runs of
         * pages by that order. */
        if (i && u64(ids + 8 + i * 8) >= u64(ids + i * 8))
            return bad(v, pgno, "holds a free-list record out of order");
        if (v->n_free == v->cap_free) {
            size_t cap = v->cap_free ? v->cap_free * 2 : 1024;
            uint64_t *p = realloc(v->free_pg, cap * sizeof *p);
            if (!p)
                return ENOMEM;
            v->free_pg = p, v->cap_free = cap;
        }
        v->free_pg[v->n_free++] = u64(ids + 8 + i * 8);
    }
    return 0;
}

/* One leaf node's value: an overflow run, a named database, or inline. */
static int leaf_value(struct verify *v, uint64_t pgno, const unsigned char *node, uint16_t flags, uint64_t size,
                      int is_main, int is_free, struct counts *c)
{
    const unsigned char *data = node + NODE_HEADER + u16(node + 6);
    if (flags & F_BIGDATA) {
        uint64_t ov = u64(data), n = (PAGE_HEADER - 1 + size) / v->psize + 1;
        int rc = take(v, ov, n, pgno);
        if (rc)
            return rc;
        c->overflow += n;
        if (!is_free)
            return 0; /* values are not read: extent_decode checks its own */
        const unsigned char *op = v->map + ov * v->psize;
        if (u64(op) != ov || !(u16(op + 10) & P_OVERFLOW))
            return bad(v, ov, "is not the overflow page its free-list record names");
        return free_list(v, op + PAGE_HEADER, size, ov);
    }
    if (is_main && (flags & F_SUBDATA)) {
        if (size != DB_RECORD || (u16(data + 4) & ~0x7eu))
            return bad(v, pgno, "holds a damaged database record");
        return tree(v, data, 0, 0, pgno);
    }
    return is_free ? free_list(v, data, size, pgno) : 0;
}

static int walk_tree(struct verify *v, uint64_t pgno, unsigned depth, int is_main, int is_free, uint64_t from,
                     struct counts *c)
{
    if (pgno == NO_PAGE)
        return 0; /* an empty database */
    if (depth > MAX_DEPTH)
        return bad(v, from, "starts a tree deeper than LMDB builds");
    int rc = take(v, pgno, 1, from);
    if (rc)
        return rc;
    const unsigned char *p = v->map + pgno * v->psize;
    uint16_t flags = u16(p + 10), lower = u16(p + 12), upper = u16(p + 14);
    if (u64(p) != pgno)
        return bad(v, pgno, "carries another page's number");
    /* On disk a tree page is exactly one of these (LMDB clears P_DIRTY
     * before it writes a page; the other bits never reach the file). */
    if (flags != P_BRANCH && flags != P_LEAF && flags != (P_LEAF | P_LEAF2))
        return bad(v, pgno, "is neither a branch nor a leaf page");
    if (lower < PAGE_HEADER || lower > upper || upper > v->psize || (lower - PAGE_HEADER) % 2)
        return bad(v, pgno, "has damaged free-space bounds");
    if (flags & P_LEAF2) {
        c->leaf++;
        c->entries += (lower - PAGE_HEADER) / 2;
        return u16(p + 8) * (uint64_t)((lower - PAGE_HEADER) / 2) <= v->psize - PAGE_HEADER
                   ? 0
                   : bad(v, pgno, "has damaged fixed-size keys");
    }
    unsigned n = (lower - PAGE_HEADER) / 2;
    if (flags & P_BRANCH) {
        c->branch++;
    } else {
        c->leaf++;
        c->entries += n;
        c->depth = depth + 1 > c->depth ? depth + 1 : c->depth;
    }
    for (unsigned i = 0; i < n; i++) {
        uint16_t off = u16(p + PAGE_HEADER + 2 * i);
        if (off < upper || off > v->psize - NODE_HEADER)
            return bad(v, pgno, "has a node outside its bounds");
        const unsigned char *node = p + off;
        uint64_t lo = u16(node), hi = u16(node + 2);
        uint16_t nflags = u16(node + 4), ksize = u16(node + 6);
        uint64_t end = (uint64_t)off + NODE_HEADER + ksize;
        if (flags & P_BRANCH) {
            if (end > v->psize)
                return bad(v, pgno, "has a node outside its bounds");
            rc = walk_tree(v, lo | hi << 16 | (uint64_t)nflags << 32, depth + 1, is_main, is_free, pgno, c);
        } else {
            uint64_t size = lo | hi << 16;
            end += nflags & F_BIGDATA ? 8 : size;
            if (end > v->psize)
                return bad(v, pgno, "has a node outside its bounds");
            rc = leaf_value(v, pgno, node, nflags, size, is_main, is_free, c);
        }
        if (rc)
            return rc;
    }
    return 0;
}

/*
 * One database: walk it from the root in its MDB_db record, then compare
 * what was found with what the record counts.  A damaged page can look
 * sound and still hide nodes (a smaller lower bound): the counts see it.
 * A DUPSORT database counts every duplicate as an entry, so its entries
 * are not compared.
 */
static int tree(struct verify *v, const unsigned char *rec, int is_main, int is_free, uint64_t from)
{
    struct counts c = {0};
    uint64_t root = u64(rec + DB_ROOT);
    int rc = walk_tree(v, root, 0, is_main, is_free, from, &c);
    if (rc)
        return rc;
    int dupsort = (u16(rec + 4) & MDB_DUPSORT) != 0;
    if (c.branch != u64(rec + 8) || c.leaf != u64(rec + 16) || c.overflow != u64(rec + 24) ||
        (!dupsort && c.entries != u64(rec + 32)) || c.depth != u16(rec + 6))
        return bad(v, root == NO_PAGE ? from : root, "starts a tree that disagrees with its database record");
    return 0;
}

int lmdb_verify(MDB_txn *txn, char *why, size_t why_len)
{
    MDB_env *env = mdb_txn_env(txn);
    MDB_stat ms;
    if (mdb_env_stat(env, &ms) != 0)
        return CAIRN_IOERR;
    const unsigned char *map = (const unsigned char *)lmdb_map_base(env);
    if (!map)
        return 0; /* cannot see the map: nothing to check against */
    /* The meta page of this transaction's snapshot. */
    const unsigned char *meta = NULL;
    for (int i = 0; i < 2; i++) {
        const unsigned char *m = map + (uint64_t)i * ms.ms_psize;
        uint64_t id = u64(m + META_TXNID);
        if (id == mdb_txn_id(txn))
            meta = m;
    }
    if (!meta)
        return 0; /* a newer commit replaced it: its pages were checked by their writer */
    struct verify v = {.map = map, .psize = ms.ms_psize, .next = u64(meta + META_LAST_PGNO) + 1};
    v.in_use = calloc(v.next / 8 + 1, 1);
    if (!v.in_use)
        return ENOMEM;
    /* LMDB takes a database's flags from its record: the free list's are
     * always MDB_INTEGERKEY, the others only ever persistent ones. */
    int rc = 0;
    if (u16(meta + META_DBS + 4) != MDB_INTEGERKEY || (u16(meta + META_DBS + DB_RECORD + 4) & ~0x7eu))
        rc = bad(&v, mdb_txn_id(txn) & 1, "holds damaged database flags");
    if (rc == 0)
        rc = tree(&v, meta + META_DBS, 0, 1, 0);
    if (rc == 0)
        rc = tree(&v, meta + META_DBS + DB_RECORD, 1, 0, 0);
    for (size_t i = 0; rc == 0 && i < v.n_free; i++) {
        uint64_t pg = v.free_pg[i];
        if (pg < 2 || pg >= v.next)
            rc = bad(&v, pg, "is named by the free list but lies past the last page");
        else if (v.in_use[pg / 8] & (1u << (pg % 8)))
            rc = bad(&v, pg, "is named by the free list but is in use, or named twice");
        else
            v.in_use[pg / 8] |= (unsigned char)(1u << (pg % 8));
    }
    free(v.free_pg);
    free(v.in_use);
    if (rc == CAIRN_CORRUPT && why_len)
        snprintf(why, why_len, "LMDB page %llu %s", (unsigned long long)v.bad_page, v.what);
    return rc;
}

/*
 * LMDB frees an overflow value's pages by the count in the value's first
 * page (mp_pages) when the value is replaced or deleted, and nothing
 * checks that count: a damaged one frees live pages or pages past the end.
 * The tree walk does not read values (it would read every extent at
 * open), so a writer checks each committed value here just before
 * replacing it.  map is lmdb_map_base of the environment: a value outside
 * the map is the transaction's own, in memory.
 */
int lmdb_value_check(MDB_txn *txn, const char *map, const MDB_val *v)
{
    MDB_envinfo info;
    MDB_stat ms;
    if (!map || mdb_env_info(mdb_txn_env(txn), &info) != 0 || mdb_env_stat(mdb_txn_env(txn), &ms) != 0)
        return 0;
    const char *d = v->mv_data;
    if (d < map || d >= map + info.me_mapsize)
        return 0;
    uint64_t at = (uint64_t)(d - map), psize = ms.ms_psize;
    /* LMDB keeps a value in its leaf when the node fits half a page
     * (me_nodemax), else in an overflow run whose data starts right after
     * the first page's header; a leaf's node data never starts there. */
    uint64_t nodemax = (((psize - PAGE_HEADER) / 2) & ~(uint64_t)1) - 2;
    int overflow = NODE_HEADER + 8 + v->mv_size > nodemax; /* 8: an extent key */
    if (!overflow)
        return at % psize == PAGE_HEADER ? CAIRN_CORRUPT : 0;
    const unsigned char *op = (const unsigned char *)d - PAGE_HEADER;
    uint32_t pages;
    memcpy(&pages, op + 12, 4);
    if (at % psize != PAGE_HEADER || u64(op) != (at - PAGE_HEADER) / psize || !(u16(op + 10) & P_OVERFLOW) ||
        pages != (PAGE_HEADER - 1 + v->mv_size) / psize + 1)
        return CAIRN_CORRUPT;
    return 0;
}
