/*
 * walk_gnode.c - the walks instantiated for struct gnode (malloc, cairn)
 * and for the oracle, which computes each node from its id.
 */
#include "graph.h"

#define WALK_FN(x) gnode_##x##_
#define WALK_CTX void *
#define WALK_REF const struct gnode *
#define WALK_IS_NIL(r) ((r) == NULL)
#define WALK_NODE struct gnode
#define WALK_FETCH(ctx, r) (r)
#define WALK_KEY(n) ((n)->key)
#define WALK_PAYLOAD(n, j) ((n)->payload[j])
#define WALK_PTR(ctx, n, i) ((const struct gnode *)(n)->ptr[i])
#define WALK_BLOB(ctx, n) ((const uint8_t *)(n)->blob)
#define WALK_BLOB_LEN(n) ((n)->blob_len)
#include "walk_impl.h"
#undef WALK_FN
#undef WALK_CTX
#undef WALK_REF
#undef WALK_IS_NIL
#undef WALK_NODE
#undef WALK_FETCH
#undef WALK_KEY
#undef WALK_PAYLOAD
#undef WALK_PTR
#undef WALK_BLOB
#undef WALK_BLOB_LEN

walk_sum gnode_walk_full(const struct gnode *root, int part, int nparts)
{
    return gnode_walk_full_(NULL, root, part, nparts);
}

walk_sum gnode_walk_random(const struct gnode *root, uint64_t seed, uint64_t steps)
{
    return gnode_walk_random_(NULL, root, seed, steps);
}

/* The oracle's node: generated on fetch. */
struct oracle {
    const graph *g;
    uint64_t key, payload[G_PAYLOAD_WORDS], ptr[G_SLOTS];
    uint32_t blob_len;
    uint8_t blob[G_BLOB_MAX];
};

static const struct oracle *oracle_fetch(struct oracle *o, uint64_t id)
{
    uint64_t counter;
    g_fill_scalars(o->g, id, &o->key, &counter, o->payload);
    g_ptrs(o->g, id, o->ptr);
    o->blob_len = g_blob_len(o->g, id);
    g_blob_fill(o->key, o->blob, o->blob_len);
    return o;
}

#define WALK_FN(x) oracle_##x##_
#define WALK_CTX struct oracle *
#define WALK_REF uint64_t
#define WALK_IS_NIL(r) ((r) == G_NIL)
#define WALK_NODE struct oracle
#define WALK_FETCH(ctx, r) oracle_fetch(ctx, r)
#define WALK_KEY(n) ((n)->key)
#define WALK_PAYLOAD(n, j) ((n)->payload[j])
#define WALK_PTR(ctx, n, i) ((n)->ptr[i])
#define WALK_BLOB(ctx, n) ((n)->blob)
#define WALK_BLOB_LEN(n) ((n)->blob_len)
#include "walk_impl.h"

walk_sum oracle_walk_full(const graph *g, int part, int nparts)
{
    struct oracle o = {.g = g};
    return oracle_walk_full_(&o, g_root(g), part, nparts);
}

walk_sum oracle_walk_random(const graph *g, uint64_t seed, uint64_t steps)
{
    struct oracle o = {.g = g};
    return oracle_walk_random_(&o, g_root(g), seed, steps);
}
