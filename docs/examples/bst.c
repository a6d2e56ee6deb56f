/*
 * bst.c - a persistent binary search tree with millions of keys.
 *
 *   bst DIR [KEYS]           insert KEYS keys (default 2000000) into a new
 *                            store DIR, close it, reopen it and check every
 *                            key
 *   bst --check DIR [KEYS]   open the existing store DIR read-only and check
 *                            every key again (run it as a second process)
 *
 * The keys are 64-bit values that look random (a bijective mix of 1..KEYS),
 * inserted one by one the ordinary way: walk down from the top, link a new
 * node where the walk falls off.  The tree is unbalanced, as a plain BST
 * with random keys is; its depth stays near 2.5 * log2(KEYS).
 *
 * What it shows: a tree header named as a root; inserting in transactions
 * of a fixed size; after a reopen, lookups that load only the pages they
 * touch (cairn_stats_get), then an in-order walk of the whole tree.
 *
 * Exit status: 0 if every key came back with its value, 2 if any did not,
 * 1 if a call failed (the message names it, with cairn_strerror and
 * cairn_errmsg).
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cairn.h>

struct node {
    uint64_t key;
    uint64_t value;
    struct node *left, *right; /* pointer fields */
};

struct tree {
    struct node *top; /* pointer field */
    uint64_t count;
};

#define BATCH 100000 /* inserts per transaction */

static cairn_store *store;

static void check(int rc, const char *what)
{
    if (rc == CAIRN_OK)
        return;
    fprintf(stderr, "bst: %s: %s", what, cairn_strerror(rc));
    if (store && *cairn_errmsg(store))
        fprintf(stderr, " (%s)", cairn_errmsg(store));
    fprintf(stderr, "\n");
    exit(1);
}

/* Key number i (0-based) -> key.  Each step is invertible (xor with a
 * right shift, multiplication by an odd constant), so distinct i give
 * distinct keys. */
static uint64_t key_of(uint64_t i)
{
    uint64_t x = i + 1;
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    x ^= x >> 31;
    return x;
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static cairn_type node_type, tree_type;

static void register_types(void)
{
    size_t node_ptrs[] = {offsetof(struct node, left), offsetof(struct node, right)};
    check(cairn_type_register(store, "example.bst.node", sizeof(struct node), node_ptrs, 2, &node_type),
          "register node");
    size_t tree_ptrs[] = {offsetof(struct tree, top)};
    check(cairn_type_register(store, "example.bst.tree", sizeof(struct tree), tree_ptrs, 1, &tree_type),
          "register tree");
}

/* Insert key -> value; t must be open.  Returns 1 if the key was new. */
static int insert(cairn_txn *t, struct tree *tr, uint64_t key, uint64_t value)
{
    struct node **link = &tr->top;
    while (*link) {
        if (key == (*link)->key) {
            (*link)->value = value;
            return 0;
        }
        link = key < (*link)->key ? &(*link)->left : &(*link)->right;
    }
    struct node *n;
    check(cairn_alloc(t, node_type, 1, (void **)&n), "alloc node");
    n->key = key;
    n->value = value;
    *link = n; /* writes the parent's left/right, or tr->top */
    tr->count++;
    return 1;
}

static const struct node *lookup(const struct tree *tr, uint64_t key)
{
    const struct node *n = tr->top;
    while (n && n->key != key)
        n = key < n->key ? n->left : n->right;
    return n;
}

static void build(const char *dir, uint64_t keys)
{
    double t0 = seconds();
    check(cairn_open(dir, NULL, &store), "open");
    struct tree *tr;
    int rc = cairn_root_get(store, "bst", (void **)&tr);
    if (rc == CAIRN_OK) {
        fprintf(stderr, "bst: %s holds a tree already; check it with --check, or remove the directory\n", dir);
        exit(1);
    }
    if (rc != CAIRN_NOT_FOUND)
        check(rc, "root_get");
    register_types();

    cairn_txn *t;
    check(cairn_txn_begin(store, &t), "begin");
    check(cairn_alloc(t, tree_type, 1, (void **)&tr), "alloc tree");
    check(cairn_root_set(t, "bst", tr), "root_set");
    for (uint64_t i = 0; i < keys; i++) {
        if (i && i % BATCH == 0) { /* commit what we have, carry on in a new transaction */
            check(cairn_txn_commit(t), "commit");
            check(cairn_txn_begin(store, &t), "begin");
        }
        if (!insert(t, tr, key_of(i), i)) {
            fprintf(stderr, "bst: key %" PRIu64 " inserted twice\n", i);
            exit(2);
        }
    }
    check(cairn_txn_commit(t), "commit");
    double t1 = seconds();
    cairn_stats st;
    check(cairn_stats_get(store, &st), "stats");
    printf("inserted %" PRIu64 " keys in %.2f s, %" PRIu64 " commits; %" PRIu64 " pages (%.1f MiB) allocated\n",
           tr->count, t1 - t0, st.commits, st.pages_allocated, st.pages_allocated * 4096 / 1048576.0);
    check(cairn_close(store), "close"); /* writes the pages back to LMDB, compressed */
    store = NULL;
    printf("closed in %.2f s\n", seconds() - t1);
}

static int verify(const char *dir, uint64_t keys)
{
    cairn_options o;
    cairn_options_init(&o);
    o.flags = CAIRN_RDONLY;
    double t0 = seconds();
    check(cairn_open(dir, &o, &store), "open");
    double opened = seconds() - t0;
    const struct tree *tr;
    int rc = cairn_root_get(store, "bst", (void **)&tr);
    if (rc == CAIRN_NOT_FOUND) {
        fprintf(stderr, "bst: %s holds no tree\n", dir);
        exit(1);
    }
    check(rc, "root_get");
    uint64_t bad = 0;

    /* A few lookups first: only the pages on their paths are loaded. */
    cairn_stats st;
    uint64_t sample = keys < 100 ? keys : 100;
    for (uint64_t i = 0; i < sample; i++) {
        uint64_t k = (i * 7919) % keys;
        const struct node *n = lookup(tr, key_of(k));
        if (!n || n->value != k)
            bad++;
    }
    check(cairn_stats_get(store, &st), "stats");
    printf("reopened in %.1f ms; %" PRIu64 " lookups then loaded %" PRIu64 " of %" PRIu64 " pages\n", opened * 1e3,
           sample, st.pages_resident, st.pages_allocated);

    /* Every key, by lookup. */
    double t1 = seconds();
    for (uint64_t i = 0; i < keys; i++) {
        const struct node *n = lookup(tr, key_of(i));
        if ((!n || n->value != i) && bad++ < 5)
            fprintf(stderr, "bst: key number %" PRIu64 " %s\n", i, n ? "has the wrong value" : "is missing");
    }

    /* The whole tree in order, with an explicit stack: keys strictly
     * increasing, as many as the header counts. */
    size_t cap = 64, sp = 0;
    const struct node **stack = malloc(cap * sizeof *stack);
    uint64_t seen = 0, prev = 0;
    const struct node *n = tr->top;
    while ((n || sp) && seen <= keys) {
        for (; n; n = n->left) {
            if (sp == cap) {
                cap *= 2;
                stack = realloc(stack, cap * sizeof *stack);
            }
            if (!stack) {
                fprintf(stderr, "bst: out of memory\n");
                exit(1);
            }
            stack[sp++] = n;
        }
        n = stack[--sp];
        if (seen && n->key <= prev && bad++ < 5)
            fprintf(stderr, "bst: keys out of order at position %" PRIu64 "\n", seen);
        prev = n->key;
        seen++;
        n = n->right;
    }
    free(stack);
    if (seen != keys || tr->count != keys) {
        fprintf(stderr, "bst: %" PRIu64 " nodes in the tree, header counts %" PRIu64 ", expected %" PRIu64 "\n",
                seen, tr->count, keys);
        bad++;
    }
    check(cairn_stats_get(store, &st), "stats");
    printf("checked %" PRIu64 " keys by lookup and %" PRIu64 " in order in %.2f s: %" PRIu64 " wrong; %" PRIu64
           " pages loaded\n",
           keys, seen, seconds() - t1, bad, st.pages_resident);
    check(cairn_close(store), "close");
    store = NULL;
    return bad ? 2 : 0;
}

int main(int argc, char **argv)
{
    int check_only = argc > 1 && strcmp(argv[1], "--check") == 0;
    if (argc < 2 + check_only || argc > 3 + check_only) {
        fprintf(stderr, "usage: bst [--check] DIR [KEYS]\n");
        return 1;
    }
    const char *dir = argv[1 + check_only];
    uint64_t keys = argc > 2 + check_only ? strtoull(argv[2 + check_only], NULL, 10) : 2000000;
    if (keys == 0) {
        fprintf(stderr, "bst: KEYS must be at least 1\n");
        return 1;
    }
    if (!check_only)
        build(dir, keys);
    return verify(dir, keys);
}
