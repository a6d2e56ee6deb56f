/*
 * graph.h - the graph every peer stores, defined as pure functions of
 * (seed, node id), so each peer builds exactly the same data without a
 * shared file, and the driver can compute what every walk must return.
 *
 * Nodes are numbered 0..n-1 and built in that order.  Every pointer goes
 * from a node to one with a smaller id, so a builder can always store a
 * pointer to something already built:
 *   - the root is node n-1;
 *   - tree children: with r = n-1-id, the children are r' = 2r+1 and
 *     2r+2 (an implicit binary heap counted from the root), id' = n-1-r';
 *     leaves have none;
 *   - 0..2 extra pointers per node, to uniformly random smaller ids;
 *   - one node in eight owns a variable-size byte object of 16..1024
 *     bytes (the "blob").
 * So a node has four pointer slots, two to four of them used by inner
 * nodes, and every node is reachable from the root through tree pointers.
 *
 * Walks:
 *   full    depth-first over the tree pointers from the root; at each node
 *           read its payload (verified), its blob, and the key of every
 *           extra pointer's target.  Splittable among threads by the four
 *           subtrees two levels below the root.
 *   random  from the root, follow a random used pointer slot each step,
 *           back to the root at a node with none; steps given.
 * Every node fetched counts one hop and adds mix(key) to the checksum;
 * every node visited adds its blob's bytes.  Sums commute, so a walk split
 * among threads adds up to the same checksum.
 */
#ifndef COMPARE_GRAPH_H
#define COMPARE_GRAPH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define G_NIL UINT64_MAX
#define G_SLOTS 4
#define G_PAYLOAD_WORDS 4
#define G_BLOB_MAX 1024

typedef struct graph {
    uint64_t n;
    uint64_t seed;
} graph;

typedef struct walk_sum {
    uint64_t hops;
    uint64_t sum;
} walk_sum;

/* splitmix64's finaliser: cheap, and every bit of x moves every bit. */
static inline uint64_t g_mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static inline uint64_t g_root(const graph *g)
{
    return g->n - 1;
}

static inline uint64_t g_key(const graph *g, uint64_t id)
{
    return g_mix(g->seed ^ (id * 0xD1B54A32D192ED03ull));
}

static inline uint64_t g_payload(uint64_t key, int j)
{
    return g_mix(key + 1 + (uint64_t)j);
}

static inline void g_ptrs(const graph *g, uint64_t id, uint64_t out[G_SLOTS])
{
    uint64_t r = g->n - 1 - id;
    out[0] = 2 * r + 1 < g->n ? g->n - 1 - (2 * r + 1) : G_NIL;
    out[1] = 2 * r + 2 < g->n ? g->n - 1 - (2 * r + 2) : G_NIL;
    uint64_t h = g_mix((g->seed + 0x51) ^ (id * 0x8CB92BA72F3D8DD7ull));
    unsigned extra = (unsigned)(h % 3);
    out[2] = extra >= 1 && id > 0 ? g_mix(h + 1) % id : G_NIL;
    out[3] = extra >= 2 && id > 0 ? g_mix(h + 2) % id : G_NIL;
}

static inline uint32_t g_blob_len(const graph *g, uint64_t id)
{
    uint64_t h = g_mix((g->seed * 3) ^ (id * 0xA24BAED4963EE407ull));
    return (h & 7) == 0 ? 16 + (uint32_t)((h >> 8) % (G_BLOB_MAX - 15)) : 0;
}

static inline void g_blob_fill(uint64_t key, uint8_t *b, size_t len)
{
    for (size_t k = 0; k < len; k++)
        b[k] = (uint8_t)(key >> ((k & 7) * 8)) ^ (uint8_t)(k * 31);
}

/* The walks must fail loudly: a figure from wrong data means nothing. */
static inline void g_fail(const char *what, uint64_t detail)
{
    fprintf(stderr, "compare: VERIFY FAILED: %s (%llu)\n", what, (unsigned long long)detail);
    exit(3);
}

/* A random generator for walks and updates (xorshift64*). */
static inline uint64_t g_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static inline uint64_t g_rand_seed(uint64_t seed)
{
    uint64_t s = g_mix(seed);
    return s ? s : 1;
}

/* The native node: malloc and cairn store exactly this; raw mmap stores it
 * with file offsets in place of the pointers. */
struct gnode {
    uint64_t key;
    uint64_t counter; /* the field the update workload increments */
    uint64_t payload[G_PAYLOAD_WORDS];
    struct gnode *ptr[G_SLOTS];
    uint8_t *blob;
    uint64_t blob_len;
};

/* Size of the graph's data in the native layout (struct gnode plus the
 * blobs): what MB/s figures are computed from. */
static inline uint64_t g_logical_bytes(const graph *g)
{
    uint64_t b = 0;
    for (uint64_t id = 0; id < g->n; id++)
        b += sizeof(struct gnode) + g_blob_len(g, id);
    return b;
}

/* Fill the scalar fields of a native-layout node. */
static inline void g_fill_scalars(const graph *g, uint64_t id, uint64_t *key, uint64_t *counter,
                                  uint64_t payload[G_PAYLOAD_WORDS])
{
    *key = g_key(g, id);
    *counter = 0;
    for (int j = 0; j < G_PAYLOAD_WORDS; j++)
        payload[j] = g_payload(*key, j);
}

/* Walks over struct gnode (malloc and cairn share them). */
walk_sum gnode_walk_full(const struct gnode *root, int part, int nparts);
walk_sum gnode_walk_random(const struct gnode *root, uint64_t seed, uint64_t steps);

/* The oracle: the same walks over the graph computed from its definition. */
walk_sum oracle_walk_full(const graph *g, int part, int nparts);
walk_sum oracle_walk_random(const graph *g, uint64_t seed, uint64_t steps);

#endif
