/*
 * graph.c - a persistent directed graph full of cycles.
 *
 *   graph DIR [NODES]           build a graph of NODES nodes (default
 *                               1000000) in a new store DIR, close it,
 *                               reopen it and check every edge
 *   graph --check DIR [NODES]   open the existing store DIR read-only and
 *                               check it again (run it as a second process)
 *
 * Node i has edges to
 *   (i + 1) mod NODES            - together a ring: one cycle through all nodes
 *   (i * 7919 + 13) mod NODES    - a "chord": many more cycles, and nodes with
 *                                  several incoming edges
 *   i itself, when i % 3 == 0    - a self-loop
 * so a node has 2 or 3 outgoing edges, held in an array of node pointers
 * that is itself an object in the store.
 *
 * What it shows: pointers may form cycles and may point at objects made in
 * earlier or later transactions - the store keeps the graph exactly, with
 * no serialisation code; arrays of pointers (cairn_alloc with a count);
 * a large object (the index of all nodes); after a reopen, a breadth-first
 * walk that follows only the edges; cairn_check verifying the committed
 * store (every pointer leads to a live object).
 *
 * Exit status: 0 if the graph came back exactly, 2 if not, 1 if a call
 * failed (the message gives cairn_strerror and cairn_errmsg).
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cairn.h>

struct gnode {
    uint64_t id;
    uint64_t degree;
    struct gnode **out; /* pointer field: `degree` node pointers, in the store */
};

struct graph {
    uint64_t n;
    struct gnode **nodes; /* pointer field: all n nodes by id (the index) */
};

#define BATCH 50000 /* nodes per transaction */

static cairn_store *store;
static cairn_type node_type, graph_type, ptr_type;

static void check(int rc, const char *what)
{
    if (rc == CAIRN_OK)
        return;
    fprintf(stderr, "graph: %s: %s", what, cairn_strerror(rc));
    if (store && *cairn_errmsg(store))
        fprintf(stderr, " (%s)", cairn_errmsg(store));
    fprintf(stderr, "\n");
    exit(1);
}

static uint64_t degree_of(uint64_t i)
{
    return i % 3 == 0 ? 3 : 2;
}

/* Where edge j of node i leads. */
static uint64_t target(uint64_t i, uint64_t j, uint64_t n)
{
    switch (j) {
    case 0:
        return (i + 1) % n;
    case 1:
        return (i * 7919 + 13) % n;
    default:
        return i;
    }
}

static void register_types(void)
{
    size_t node_ptrs[] = {offsetof(struct gnode, out)};
    check(cairn_type_register(store, "example.graph.node", sizeof(struct gnode), node_ptrs, 1, &node_type),
          "register node");
    size_t graph_ptrs[] = {offsetof(struct graph, nodes)};
    check(cairn_type_register(store, "example.graph", sizeof(struct graph), graph_ptrs, 1, &graph_type),
          "register graph");
    /* One pointer.  cairn_alloc(t, ptr_type, count) makes an array of
     * count pointers, every element a pointer field. */
    size_t ptr_ptrs[] = {0};
    check(cairn_type_register(store, "example.graph.ptr", sizeof(void *), ptr_ptrs, 1, &ptr_type), "register ptr");
}

static void build(const char *dir, uint64_t n)
{
    check(cairn_open(dir, NULL, &store), "open");
    struct graph *g;
    int rc = cairn_root_get(store, "graph", (void **)&g);
    if (rc == CAIRN_OK) {
        fprintf(stderr, "graph: %s holds a graph already; check it with --check, or remove the directory\n", dir);
        exit(1);
    }
    if (rc != CAIRN_NOT_FOUND)
        check(rc, "root_get");
    register_types();

    /* The graph header and its index: n pointers, one large object. */
    cairn_txn *t;
    check(cairn_txn_begin(store, &t), "begin");
    check(cairn_alloc(t, graph_type, 1, (void **)&g), "alloc graph");
    check(cairn_alloc(t, ptr_type, n, (void **)&g->nodes), "alloc index"); /* *out may be store memory */
    g->n = n;
    check(cairn_root_set(t, "graph", g), "root_set");
    check(cairn_txn_commit(t), "commit");

    /* Pass 1: the nodes and their (still empty) edge arrays. */
    uint64_t commits = 1;
    for (uint64_t i = 0; i < n;) {
        check(cairn_txn_begin(store, &t), "begin");
        for (uint64_t end = i + BATCH < n ? i + BATCH : n; i < end; i++) {
            struct gnode *v;
            check(cairn_alloc(t, node_type, 1, (void **)&v), "alloc node");
            v->id = i;
            v->degree = degree_of(i);
            check(cairn_alloc(t, ptr_type, v->degree, (void **)&v->out), "alloc edges");
            g->nodes[i] = v;
        }
        check(cairn_txn_commit(t), "commit");
        commits++;
    }

    /* Pass 2: the edges.  Most lead to nodes made in other transactions,
     * forwards and backwards; the ring closes on node 0. */
    uint64_t edges = 0;
    for (uint64_t i = 0; i < n;) {
        check(cairn_txn_begin(store, &t), "begin");
        for (uint64_t end = i + BATCH < n ? i + BATCH : n; i < end; i++) {
            struct gnode *v = g->nodes[i];
            for (uint64_t j = 0; j < v->degree; j++)
                v->out[j] = g->nodes[target(i, j, n)];
            edges += v->degree;
        }
        check(cairn_txn_commit(t), "commit");
        commits++;
    }
    printf("built %" PRIu64 " nodes and %" PRIu64 " edges in %" PRIu64 " transactions\n", n, edges, commits);
    check(cairn_close(store), "close");
    store = NULL;
}

static int verify(const char *dir, uint64_t n)
{
    cairn_options o;
    cairn_options_init(&o);
    o.flags = CAIRN_RDONLY;
    check(cairn_open(dir, &o, &store), "open");
    const struct graph *g;
    int rc = cairn_root_get(store, "graph", (void **)&g);
    if (rc == CAIRN_NOT_FOUND) {
        fprintf(stderr, "graph: %s holds no graph\n", dir);
        exit(1);
    }
    check(rc, "root_get");
    uint64_t bad = 0;
    if (g->n != n) {
        fprintf(stderr, "graph: the store holds %" PRIu64 " nodes, expected %" PRIu64 "\n", g->n, n);
        exit(2);
    }

    /* 1. Breadth-first from node 0, following edges only (the index is
     *    not used).  The visited set lives in ordinary memory: reading the
     *    store needs no transaction, but marking nodes in it would. */
    unsigned char *seen = calloc(n, 1);
    const struct gnode **queue = malloc(n * sizeof *queue);
    if (!seen || !queue) {
        fprintf(stderr, "graph: out of memory\n");
        exit(1);
    }
    size_t head = 0, tail = 0;
    uint64_t edges = 0;
    queue[tail++] = g->nodes[0];
    seen[0] = 1;
    while (head < tail) {
        const struct gnode *v = queue[head++];
        if (v->degree != degree_of(v->id) && bad++ < 5)
            fprintf(stderr, "graph: node %" PRIu64 " has %" PRIu64 " edges\n", v->id, v->degree);
        for (uint64_t j = 0; j < v->degree && j < 3; j++) {
            const struct gnode *w = v->out[j];
            edges++;
            if (!w || w->id >= n || w != g->nodes[target(v->id, j, n)]) {
                if (bad++ < 5)
                    fprintf(stderr, "graph: edge %" PRIu64 " of node %" PRIu64 " leads to the wrong node\n", j,
                            v->id);
                continue;
            }
            if (!seen[w->id]) {
                seen[w->id] = 1;
                queue[tail++] = w;
            }
        }
    }
    free(queue);
    free(seen);
    uint64_t expect_edges = 2 * n + (n + 2) / 3;
    if ((tail != n || edges != expect_edges) && bad++ < 5)
        fprintf(stderr, "graph: reached %zu nodes over %" PRIu64 " edges, expected %" PRIu64 " and %" PRIu64 "\n",
                tail, edges, n, expect_edges);

    /* 2. The index: node i has id i. */
    for (uint64_t i = 0; i < n; i++)
        if (g->nodes[i]->id != i && bad++ < 5)
            fprintf(stderr, "graph: index entry %" PRIu64 " holds node %" PRIu64 "\n", i, g->nodes[i]->id);

    /* 3. The ring is one cycle of exactly n steps: following edge 0 from
     *    node 0 must not come back early, and must come back after n. */
    const struct gnode *start = g->nodes[0], *v = start;
    uint64_t steps = 0;
    do {
        v = v->out[0];
        steps++;
    } while (v && v != start && steps < n);
    if (v != start || steps != n) {
        fprintf(stderr, "graph: the ring from node 0 %s after %" PRIu64 " steps\n",
                v == start ? "closed" : "had not closed", steps);
        bad++;
    }

    /* 4. cairn_check reads the committed store from disk and follows every
     *    pointer word: each must be NULL or lead into a live object.
     *    Objects: the header, the index, and per node the node and its
     *    edge array. */
    cairn_check_report r;
    rc = cairn_check(store, &r);
    if (rc == CAIRN_CORRUPT) {
        fprintf(stderr, "graph: cairn_check found %" PRIu64 " problems, first: %s\n", r.problems, r.first_problem);
        bad++;
    } else {
        check(rc, "check");
    }
    /* Pointers: every edge, the index entries, each node's `out`, the
     *    header's `nodes`, and the root itself. */
    if (r.objects != 2 * n + 2 || r.pointers != expect_edges + 2 * n + 2) {
        fprintf(stderr,
                "graph: cairn_check counted %" PRIu64 " objects and %" PRIu64 " pointers, expected %" PRIu64
                " and %" PRIu64 "\n",
                r.objects, r.pointers, 2 * n + 2, expect_edges + 2 * n + 2);
        bad++;
    }

    printf("reopened %s: %zu nodes reached over %" PRIu64 " edges, ring of %" PRIu64 " closed; "
           "cairn_check: %" PRIu64 " objects, %" PRIu64 " pointers, %" PRIu64 " problems; %" PRIu64 " wrong\n",
           dir, tail, edges, steps, r.objects, r.pointers, r.problems, bad);
    check(cairn_close(store), "close");
    store = NULL;
    return bad ? 2 : 0;
}

int main(int argc, char **argv)
{
    int check_only = argc > 1 && strcmp(argv[1], "--check") == 0;
    if (argc < 2 + check_only || argc > 3 + check_only) {
        fprintf(stderr, "usage: graph [--check] DIR [NODES]\n");
        return 1;
    }
    const char *dir = argv[1 + check_only];
    uint64_t n = argc > 2 + check_only ? strtoull(argv[2 + check_only], NULL, 10) : 1000000;
    if (n == 0) {
        fprintf(stderr, "graph: NODES must be at least 1\n");
        return 1;
    }
    if (!check_only)
        build(dir, n);
    return verify(dir, n);
}
