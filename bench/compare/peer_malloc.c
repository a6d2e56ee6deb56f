/*
 * peer_malloc.c - the graph in plain process memory: one malloc per node
 * and per blob, as a C program would hold it.  Not persistent; the upper
 * bound for warm walks.
 */
#include <stdlib.h>
#include <string.h>

#include "peer.h"

struct mem_graph {
    struct gnode *root;
    struct gnode **index; /* id -> node, for the builder */
    uint64_t n;
};

static void *mem_open(const char *dir, const graph *g, uint64_t cache_bytes)
{
    (void)dir;
    (void)cache_bytes;
    struct mem_graph *m = calloc(1, sizeof *m);
    if (!m || !(m->index = malloc(g->n * sizeof *m->index)))
        die("malloc", "out of memory", "");
    m->n = g->n;
    for (uint64_t id = 0; id < g->n; id++) {
        struct gnode *nd = malloc(sizeof *nd);
        if (!nd)
            die("malloc", "out of memory", "");
        g_fill_scalars(g, id, &nd->key, &nd->counter, nd->payload);
        uint64_t p[G_SLOTS];
        g_ptrs(g, id, p);
        for (int i = 0; i < G_SLOTS; i++)
            nd->ptr[i] = p[i] == G_NIL ? NULL : m->index[p[i]];
        nd->blob_len = g_blob_len(g, id);
        nd->blob = NULL;
        if (nd->blob_len) {
            nd->blob = malloc(nd->blob_len);
            if (!nd->blob)
                die("malloc", "out of memory", "");
            g_blob_fill(nd->key, nd->blob, nd->blob_len);
        }
        m->index[id] = nd;
    }
    m->root = m->index[g_root(g)];
    return m;
}

static void *mem_reader_begin(void *h)
{
    return h;
}

static void mem_reader_end(void *r)
{
    (void)r;
}

static walk_sum mem_walk_full(void *r, int part, int nparts)
{
    return gnode_walk_full(((struct mem_graph *)r)->root, part, nparts);
}

static walk_sum mem_walk_random(void *r, uint64_t seed, uint64_t steps)
{
    return gnode_walk_random(((struct mem_graph *)r)->root, seed, steps);
}

static void mem_close(void *h)
{
    struct mem_graph *m = h;
    for (uint64_t id = 0; id < m->n; id++) {
        free(m->index[id]->blob);
        free(m->index[id]);
    }
    free(m->index);
    free(m);
}

const peer_ops peer_malloc = {
    .name = "malloc",
    .persistent = 0,
    .updates = 0,
    .open = mem_open,
    .reader_begin = mem_reader_begin,
    .reader_end = mem_reader_end,
    .walk_full = mem_walk_full,
    .walk_random = mem_walk_random,
    .close = mem_close,
    .note = "plain process memory, one malloc per node and per blob; not persistent (no cold or update figures)",
};
