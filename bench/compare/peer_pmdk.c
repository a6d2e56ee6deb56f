/*
 * peer_pmdk.c - PMDK's libpmemobj, the way its examples use it: a pool
 * file, a root object, nodes allocated in transactions, pointers stored
 * as PMEMoid and followed with pmemobj_direct, each update a transaction
 * that snapshots the 8 bytes it changes.  An array of PMEMoid (the index)
 * finds a node by id, as in the cairn peer.
 *
 * The pool is a regular file on an ordinary file system: there is no
 * persistent memory here, so libpmem flushes with msync (the driver sets
 * PMEM_IS_PMEM_FORCE=0 so it never pretends otherwise).  The file is
 * created sparse at a size estimated from the graph and handed to
 * pmemobj_create with size 0; PMDK writes all of it, so its bytes on disk
 * are that estimate (about 1.5x what the graph needs).
 *
 * Every allocation's heap metadata is flushed on its own, and a flush is an
 * msync here (about 1.5 per node even with POBJ_XALLOC_NO_FLUSH and one
 * flush per batch for the objects' bytes): the build runs at about a
 * thousand nodes per second, which is why the driver skips PMDK above a
 * size (--pmdk-max).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpmemobj.h>

#include "peer.h"

#define LAYOUT "cairn-compare"
#define BUILD_BATCH 10000 /* nodes per build transaction */

struct pnode {
    uint64_t key, counter, payload[G_PAYLOAD_WORDS];
    PMEMoid ptr[G_SLOTS];
    PMEMoid blob;
    uint64_t blob_len;
};

struct proot {
    PMEMoid graph, index;
    uint64_t n;
};

struct pmdk_peer {
    PMEMobjpool *pop;
    PMEMoid root;
    PMEMoid *index;
};

static void pool_path(char *out, size_t len, const char *dir)
{
    snprintf(out, len, "%s/graph.pmem", dir);
}

/* Without a graph: allocate the index of n entries; with: name the root. */
static void tx_set_root(PMEMobjpool *pop, PMEMoid root, PMEMoid graph_root, uint64_t n)
{
    struct proot *rp = pmemobj_direct(root);
    TX_BEGIN(pop)
    {
        pmemobj_tx_add_range(root, 0, sizeof *rp);
        if (OID_IS_NULL(graph_root)) {
            rp->index = pmemobj_tx_zalloc(n * sizeof(PMEMoid), 2);
            rp->n = n;
        } else {
            rp->graph = graph_root;
        }
    }
    TX_ONABORT
    {
        die("pmdk", "root transaction", pmemobj_errormsg());
    }
    TX_END
}

#define NOTE_RANGE(lo, hi, p, len)                                                                                     \
    do {                                                                                                               \
        uintptr_t a_ = (uintptr_t)(p);                                                                                 \
        lo = a_ < lo ? a_ : lo;                                                                                        \
        hi = a_ + (len) > hi ? a_ + (len) : hi;                                                                        \
    } while (0)

/* Nodes [start, end) in one transaction.  A function of its own so that
 * nothing the caller keeps lives across the transaction's setjmp. */
static void build_batch(PMEMobjpool *pop, const graph *g, PMEMoid *index, uint64_t start, uint64_t end)
{
    TX_BEGIN(pop)
    {
        pmemobj_tx_add_range_direct(&index[start], (end - start) * sizeof(PMEMoid));
        uintptr_t lo = UINTPTR_MAX, hi = 0;
        for (uint64_t id = start; id < end; id++) {
            PMEMoid oid = pmemobj_tx_xalloc(sizeof(struct pnode), 1, POBJ_XALLOC_NO_FLUSH);
            struct pnode *nd = pmemobj_direct(oid);
            NOTE_RANGE(lo, hi, nd, sizeof *nd);
            g_fill_scalars(g, id, &nd->key, &nd->counter, nd->payload);
            uint64_t p[G_SLOTS];
            g_ptrs(g, id, p);
            for (int i = 0; i < G_SLOTS; i++)
                nd->ptr[i] = p[i] == G_NIL ? OID_NULL : index[p[i]];
            nd->blob_len = g_blob_len(g, id);
            nd->blob = OID_NULL;
            if (nd->blob_len) {
                nd->blob = pmemobj_tx_xalloc(nd->blob_len, 3, POBJ_XALLOC_NO_FLUSH);
                uint8_t *b = pmemobj_direct(nd->blob);
                g_blob_fill(nd->key, b, nd->blob_len);
                NOTE_RANGE(lo, hi, b, nd->blob_len);
            }
            index[id] = oid;
        }
        /* One flush of the span the batch allocated, not one per object. */
        pmemobj_persist(pop, (void *)lo, hi - lo);
    }
    TX_ONABORT
    {
        die("pmdk", "build transaction", pmemobj_errormsg());
    }
    TX_END
}

static void pmdk_build(const char *dir, const graph *g)
{
    char path[4096];
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        die("pmdk", "mkdir", strerror(errno));
    pool_path(path, sizeof path, dir);
    /* Room for the nodes with PMDK's per-object header and size-class
     * rounding, the blobs, the index, and the pool's own metadata. */
    uint64_t blob_bytes = 0;
    for (uint64_t id = 0; id < g->n; id++)
        blob_bytes += g_blob_len(g, id);
    uint64_t size = g->n * (256 + sizeof(PMEMoid)) + blob_bytes * 3 / 2 + ((uint64_t)16 << 20);
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd < 0 || ftruncate(fd, (off_t)size) != 0)
        die("pmdk", "create pool file", strerror(errno));
    close(fd);
    PMEMobjpool *pop = pmemobj_create(path, LAYOUT, 0, 0644);
    if (!pop)
        die("pmdk", "pmemobj_create", pmemobj_errormsg());
    PMEMoid root = pmemobj_root(pop, sizeof(struct proot));
    struct proot *rp = pmemobj_direct(root);
    tx_set_root(pop, root, OID_NULL, g->n);
    PMEMoid *index = pmemobj_direct(rp->index);
    for (uint64_t start = 0; start < g->n; start += BUILD_BATCH)
        build_batch(pop, g, index, start, start + BUILD_BATCH < g->n ? start + BUILD_BATCH : g->n);
    tx_set_root(pop, root, index[g_root(g)], g->n);
    pmemobj_close(pop);
}

static void *pmdk_open(const char *dir, const graph *g, uint64_t cache_bytes)
{
    (void)cache_bytes; /* the pool is a mapped file: the page cache is its cache */
    char path[4096];
    pool_path(path, sizeof path, dir);
    struct pmdk_peer *p = calloc(1, sizeof *p);
    p->pop = pmemobj_open(path, LAYOUT);
    if (!p->pop)
        die("pmdk", "pmemobj_open", pmemobj_errormsg());
    PMEMoid root = pmemobj_root(p->pop, sizeof(struct proot));
    const struct proot *rp = pmemobj_direct(root);
    if (rp->n != g->n)
        die("pmdk", "open", "pool holds another graph");
    p->root = rp->graph;
    p->index = pmemobj_direct(rp->index);
    return p;
}

static void *pmdk_reader_begin(void *h)
{
    return h;
}

static void pmdk_reader_end(void *r)
{
    (void)r;
}

#define WALK_FN(x) pmdk_##x
#define WALK_CTX struct pmdk_peer *
#define WALK_REF PMEMoid
#define WALK_IS_NIL(r) OID_IS_NULL(r)
#define WALK_NODE struct pnode
#define WALK_FETCH(ctx, r) ((const struct pnode *)pmemobj_direct(r))
#define WALK_KEY(n) ((n)->key)
#define WALK_PAYLOAD(n, j) ((n)->payload[j])
#define WALK_PTR(ctx, n, i) ((n)->ptr[i])
#define WALK_BLOB(ctx, n) ((const uint8_t *)pmemobj_direct((n)->blob))
#define WALK_BLOB_LEN(n) ((n)->blob_len)
#include "walk_impl.h"

static walk_sum pmdk_full(void *r, int part, int nparts)
{
    struct pmdk_peer *p = r;
    return pmdk_walk_full(p, p->root, part, nparts);
}

static walk_sum pmdk_random(void *r, uint64_t seed, uint64_t steps)
{
    struct pmdk_peer *p = r;
    return pmdk_walk_random(p, p->root, seed, steps);
}

static void pmdk_update(void *h, uint64_t id)
{
    struct pmdk_peer *p = h;
    struct pnode *nd = pmemobj_direct(p->index[id]);
    TX_BEGIN(p->pop)
    {
        pmemobj_tx_add_range_direct(&nd->counter, sizeof nd->counter);
        nd->counter++;
    }
    TX_ONABORT
    {
        die("pmdk", "update transaction", pmemobj_errormsg());
    }
    TX_END
}

static uint64_t pmdk_counter(void *h, uint64_t id)
{
    struct pmdk_peer *p = h;
    return ((const struct pnode *)pmemobj_direct(p->index[id]))->counter;
}

static void pmdk_close(void *h)
{
    struct pmdk_peer *p = h;
    pmemobj_close(p->pop);
    free(p);
}

const peer_ops peer_pmdk = {
    .name = "pmdk",
    .persistent = 1,
    .updates = 1,
    .build = pmdk_build,
    .open = pmdk_open,
    .reader_begin = pmdk_reader_begin,
    .reader_end = pmdk_reader_end,
    .walk_full = pmdk_full,
    .walk_random = pmdk_random,
    .update = pmdk_update,
    .counter = pmdk_counter,
    .close = pmdk_close,
    .note = "libpmemobj on a regular file (persistent memory emulated by the page cache: flushes are msync; "
            "PMEM_IS_PMEM_FORCE=0); PMEMoid pointers followed with pmemobj_direct; 10,000 allocations per "
            "build transaction; one transaction per update",
};
