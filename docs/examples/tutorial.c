/*
 * tutorial.c - the program of docs/TUTORIAL.md: a small named graph, one
 * transaction per command, and a way to crash on purpose.
 *
 *   tutorial DIR add FROM TO    add the edge FROM -> TO (and the nodes, if
 *                               new) in one transaction, then close
 *   tutorial DIR show           print every node with its edges, then follow
 *                               first edges from the first node
 *
 * add takes one of two options to crash reproducibly, with SIGKILL, which
 * nothing can catch (no cleanup runs, as in a power cut of the process):
 *   --crash-after-commit    after cairn_txn_commit returns, before cairn_close
 *   --crash-before-commit   with the transaction open, its writes done
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cairn.h>

#define MAX_EDGES 4

struct node {
    char name[16];
    struct node *next;            /* pointer field: the next node made */
    struct node *edge[MAX_EDGES]; /* pointer fields: outgoing edges */
    uint64_t nedges;
};

struct graph {
    struct node *first, *last; /* pointer fields */
    uint64_t nodes, edges;
};

static cairn_store *store;
static cairn_type node_type, graph_type;

static void check(int rc, const char *what)
{
    if (rc == CAIRN_OK)
        return;
    fprintf(stderr, "tutorial: %s: %s", what, cairn_strerror(rc));
    if (store && *cairn_errmsg(store))
        fprintf(stderr, " (%s)", cairn_errmsg(store));
    fprintf(stderr, "\n");
    exit(1);
}

static void register_types(void)
{
    size_t node_ptrs[1 + MAX_EDGES] = {offsetof(struct node, next)};
    for (int i = 0; i < MAX_EDGES; i++)
        node_ptrs[1 + i] = offsetof(struct node, edge) + i * sizeof(struct node *);
    check(cairn_type_register(store, "tutorial.node", sizeof(struct node), node_ptrs, 1 + MAX_EDGES, &node_type),
          "register node");
    size_t graph_ptrs[] = {offsetof(struct graph, first), offsetof(struct graph, last)};
    check(cairn_type_register(store, "tutorial.graph", sizeof(struct graph), graph_ptrs, 2, &graph_type),
          "register graph");
}

/* The node called name, made (at the end of the list) if there is none. */
static struct node *node_named(cairn_txn *t, struct graph *g, const char *name)
{
    for (struct node *n = g->first; n; n = n->next)
        if (strcmp(n->name, name) == 0)
            return n;
    struct node *n;
    check(cairn_alloc(t, node_type, 1, (void **)&n), "alloc node");
    snprintf(n->name, sizeof n->name, "%s", name);
    if (g->last)
        g->last->next = n;
    else
        g->first = n;
    g->last = n;
    g->nodes++;
    return n;
}

static int add(const char *dir, const char *from, const char *to, const char *crash)
{
    check(cairn_open(dir, NULL, &store), "open");
    register_types();
    cairn_txn *t;
    check(cairn_txn_begin(store, &t), "begin");

    struct graph *g;
    int rc = cairn_root_get(store, "graph", (void **)&g);
    if (rc == CAIRN_NOT_FOUND) { /* the first add makes the graph */
        check(cairn_alloc(t, graph_type, 1, (void **)&g), "alloc graph");
        check(cairn_root_set(t, "graph", g), "root_set");
    } else {
        check(rc, "root_get");
    }
    struct node *a = node_named(t, g, from), *b = node_named(t, g, to);
    if (a->nedges == MAX_EDGES) {
        cairn_txn_abort(t); /* undoes the nodes made above, too */
        fprintf(stderr, "tutorial: %s has %d edges already\n", from, MAX_EDGES);
        check(cairn_close(store), "close");
        return 1;
    }
    a->edge[a->nedges++] = b;
    g->edges++;

    if (crash && strcmp(crash, "--crash-before-commit") == 0) {
        printf("%s -> %s written, not committed; killing the process\n", from, to);
        fflush(stdout);
        raise(SIGKILL);
    }
    check(cairn_txn_commit(t), "commit");
    printf("committed %s -> %s\n", from, to);
    if (crash && strcmp(crash, "--crash-after-commit") == 0) {
        printf("killing the process before cairn_close\n");
        fflush(stdout);
        raise(SIGKILL);
    }
    check(cairn_close(store), "close");
    return 0;
}

static int show(const char *dir)
{
    /* Read-write, so that a log left by a crash is recovered here; a
     * read-only open of such a store fails with CAIRN_READONLY. */
    check(cairn_open(dir, NULL, &store), "open");
    const struct graph *g;
    int rc = cairn_root_get(store, "graph", (void **)&g);
    if (rc == CAIRN_NOT_FOUND) {
        printf("no graph in %s yet\n", dir);
        check(cairn_close(store), "close");
        return 0;
    }
    check(rc, "root_get");
    printf("%llu nodes, %llu edges\n", (unsigned long long)g->nodes, (unsigned long long)g->edges);
    for (const struct node *n = g->first; n; n = n->next) {
        printf("  %s ->", n->name);
        for (uint64_t i = 0; i < n->nedges; i++)
            printf(" %s", n->edge[i]->name);
        printf("\n");
    }
    /* Follow first edges from the first node until a node comes round
     * again (a cycle) or a node has no edge. */
    const struct node **path = malloc((g->nodes + 1) * sizeof *path);
    size_t len = 0;
    int again = 0;
    for (const struct node *n = g->first; n && path && !again && len <= g->nodes;
         n = n->nedges ? n->edge[0] : NULL) {
        for (size_t i = 0; i < len; i++)
            again |= path[i] == n;
        path[len++] = n;
    }
    if (len) {
        printf("first edges from %s:", path[0]->name);
        for (size_t i = 0; i < len; i++)
            printf(" %s", path[i]->name);
        printf(again ? " (a cycle)\n" : " (the path ends)\n");
    }
    free(path);
    check(cairn_close(store), "close");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[2], "add") == 0)
        return add(argv[1], argv[3], argv[4], NULL);
    if (argc == 6 && strcmp(argv[2], "add") == 0 &&
        (strcmp(argv[5], "--crash-after-commit") == 0 || strcmp(argv[5], "--crash-before-commit") == 0))
        return add(argv[1], argv[3], argv[4], argv[5]);
    if (argc == 3 && strcmp(argv[2], "show") == 0)
        return show(argv[1]);
    fprintf(stderr, "usage: tutorial DIR add FROM TO [--crash-after-commit | --crash-before-commit]\n"
                    "       tutorial DIR show\n");
    return 1;
}
