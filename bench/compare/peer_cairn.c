/*
 * peer_cairn.c - the graph in a cairn store, through the public API only:
 * nodes are struct gnode, allocated with cairn_alloc and linked with plain
 * pointers; blobs are cairn_alloc_bytes; an array of node pointers (the
 * root "index") finds a node by id for the update workload, as an
 * application would keep one.  Walks are the malloc peer's code, run on
 * store memory.
 */
#include <stddef.h>
#include <stdlib.h>

#include "cairn.h"
#include "compare.h"

#define BUILD_BATCH 100000 /* nodes per build transaction */

struct cairn_peer {
    cairn_store *s;
    struct gnode *root;
    struct gnode **index;
};

static void ck(int rc, cairn_store *s, const char *what)
{
    if (rc != CAIRN_OK)
        die("cairn", what, s ? cairn_errmsg(s) : cairn_strerror(rc));
}

static void register_types(cairn_store *s, cairn_type *node_t, cairn_type *ref_t)
{
    size_t ptrs[G_SLOTS + 1];
    for (int i = 0; i < G_SLOTS; i++)
        ptrs[i] = offsetof(struct gnode, ptr) + (size_t)i * sizeof(void *);
    ptrs[G_SLOTS] = offsetof(struct gnode, blob);
    ck(cairn_type_register(s, "compare.node", sizeof(struct gnode), ptrs, G_SLOTS + 1, node_t), s, "register");
    size_t ref_ptr[] = {0};
    ck(cairn_type_register(s, "compare.ref", sizeof(void *), ref_ptr, 1, ref_t), s, "register");
}

static void cairn_build(const char *dir, const graph *g)
{
    cairn_store *s;
    cairn_txn *t;
    cairn_type node_t, ref_t;
    double t0 = now_s();
    ck(cairn_open(dir, NULL, &s), NULL, "open");
    register_types(s, &node_t, &ref_t);
    ck(cairn_txn_begin(s, &t), s, "begin");
    struct gnode **index;
    ck(cairn_alloc(t, ref_t, g->n, (void **)&index), s, "alloc index");
    ck(cairn_root_set(t, "index", index), s, "root_set");
    for (uint64_t id = 0; id < g->n; id++) {
        if (id && id % BUILD_BATCH == 0) {
            ck(cairn_txn_commit(t), s, "commit");
            ck(cairn_txn_begin(s, &t), s, "begin");
        }
        struct gnode *nd;
        ck(cairn_alloc(t, node_t, 1, (void **)&nd), s, "alloc");
        g_fill_scalars(g, id, &nd->key, &nd->counter, nd->payload);
        uint64_t p[G_SLOTS];
        g_ptrs(g, id, p);
        for (int i = 0; i < G_SLOTS; i++)
            nd->ptr[i] = p[i] == G_NIL ? NULL : index[p[i]];
        nd->blob_len = g_blob_len(g, id);
        if (nd->blob_len) {
            ck(cairn_alloc_bytes(t, nd->blob_len, (void **)&nd->blob), s, "alloc blob");
            g_blob_fill(nd->key, nd->blob, nd->blob_len);
        }
        index[id] = nd;
    }
    ck(cairn_root_set(t, "graph", index[g_root(g)]), s, "root_set");
    ck(cairn_txn_commit(t), s, "commit");
    double t1 = now_s();
    cairn_stats st;
    cairn_stats_get(s, &st);
    report("cairn_pages", (double)st.pages_allocated);
    report("cairn_checkpoints", (double)st.checkpoints);
    ck(cairn_close(s), NULL, "close");
    /* Where the bulk load's time goes: building and committing, against
     * the final checkpoint that close runs. */
    report("cairn_commit_s", t1 - t0);
    report("cairn_close_s", now_s() - t1);
}

static void *cairn_peer_open(const char *dir, const graph *g, uint64_t cache_bytes)
{
    (void)g;
    struct cairn_peer *c = calloc(1, sizeof *c);
    cairn_options o;
    cairn_options_init(&o);
    o.cache_bytes = cache_bytes;
    ck(cairn_open(dir, &o, &c->s), NULL, "open");
    ck(cairn_root_get(c->s, "graph", (void **)&c->root), c->s, "root_get graph");
    ck(cairn_root_get(c->s, "index", (void **)&c->index), c->s, "root_get index");
    return c;
}

static void *cairn_reader_begin(void *h)
{
    return h;
}

static void cairn_reader_end(void *r)
{
    (void)r;
}

static walk_sum cairn_walk_full(void *r, int part, int nparts)
{
    return gnode_walk_full(((struct cairn_peer *)r)->root, part, nparts);
}

static walk_sum cairn_walk_random(void *r, uint64_t seed, uint64_t steps)
{
    return gnode_walk_random(((struct cairn_peer *)r)->root, seed, steps);
}

static void cairn_update(void *h, uint64_t id)
{
    struct cairn_peer *c = h;
    cairn_txn *t;
    ck(cairn_txn_begin(c->s, &t), c->s, "begin");
    c->index[id]->counter++;
    ck(cairn_txn_commit(t), c->s, "commit");
}

static uint64_t cairn_counter(void *h, uint64_t id)
{
    return ((struct cairn_peer *)h)->index[id]->counter;
}

static uint64_t cairn_log_bytes(void *h)
{
    cairn_stats st;
    ck(cairn_stats_get(((struct cairn_peer *)h)->s, &st), NULL, "stats");
    return st.wal_bytes;
}

static void cairn_peer_close(void *h)
{
    struct cairn_peer *c = h;
    ck(cairn_close(c->s), NULL, "close");
    free(c);
}

const peer_ops peer_cairn = {
    .name = "cairn",
    .persistent = 1,
    .updates = 1,
    .build = cairn_build,
    .open = cairn_peer_open,
    .reader_begin = cairn_reader_begin,
    .reader_end = cairn_reader_end,
    .walk_full = cairn_walk_full,
    .walk_random = cairn_walk_random,
    .update = cairn_update,
    .counter = cairn_counter,
    .log_bytes = cairn_log_bytes,
    .close = cairn_peer_close,
    .note = "public API, default options (CAIRN_SYNC_FULL, zstd level 1, automatic fault backend); "
            "build in transactions of 100,000 nodes; an id -> node pointer array for updates",
};
