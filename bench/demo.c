/*
 * demo.c - the main job: persist a pointer graph of a million nodes,
 * reopen it in a new process, walk part of it, and print what was loaded.
 *
 *   demo [DIR] [NODES] [LOOKUPS]
 *
 * The graph is a balanced binary search tree over keys 0..NODES-1, built
 * in transactions of 100,000 nodes.  A fresh process (this program
 * re-executed) then opens the store, looks up LOOKUPS random keys by
 * following left/right pointers from the root, and reports pages faulted
 * against the pages the store holds; then walks the whole tree and checks
 * that every key comes back.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"

struct node {
    int64_t key;
    struct node *left, *right;
    int64_t value;
};

#define BATCH 100000

static cairn_store *store;
static cairn_txn *txn;
static cairn_type node_type;
static uint64_t built;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void check(int rc, const char *what)
{
    if (rc != CAIRN_OK) {
        fprintf(stderr, "demo: %s: %s (%s)\n", what, cairn_strerror(rc), store ? cairn_errmsg(store) : "");
        exit(1);
    }
}

/* Build the subtree for keys [lo, hi]; preorder allocation keeps a parent
 * next to its left child.  Transactions roll over before any write. */
static struct node *build(int64_t lo, int64_t hi)
{
    if (lo > hi)
        return NULL;
    if (built && built % BATCH == 0) {
        check(cairn_txn_commit(txn), "commit");
        check(cairn_txn_begin(store, &txn), "begin");
    }
    struct node *n;
    int64_t mid = lo + (hi - lo) / 2;
    check(cairn_alloc(txn, node_type, 1, (void **)&n), "alloc");
    built++;
    n->key = mid;
    n->value = mid * 3 + 1;
    struct node *l = build(lo, mid - 1);
    struct node *r = build(mid + 1, hi);
    n->left = l;
    n->right = r;
    return n;
}

static void register_type(void)
{
    size_t ptrs[] = {offsetof(struct node, left), offsetof(struct node, right)};
    check(cairn_type_register(store, "demo.node", sizeof(struct node), ptrs, 2, &node_type), "register");
}

static int create(const char *dir, int64_t nodes)
{
    double t0 = now();
    check(cairn_open(dir, NULL, &store), "open");
    register_type();
    check(cairn_txn_begin(store, &txn), "begin");
    struct node *root = build(0, nodes - 1);
    check(cairn_root_set(txn, "tree", root), "root_set");
    check(cairn_txn_commit(txn), "commit");
    double t1 = now();
    check(cairn_checkpoint(store), "checkpoint");
    cairn_stats st;
    cairn_stats_get(store, &st);
    double t2 = now();
    printf("built %" PRId64 " nodes in %.2f s (%" PRIu64 " commits), checkpoint %.2f s\n", nodes, t1 - t0, st.commits,
           t2 - t1);
    printf("  store: %" PRIu64 " pages allocated (%.1f MiB), written to LMDB compressed %.1f MiB -> %.1f MiB "
           "(ratio %.2f)\n",
           st.pages_allocated, st.pages_allocated * 4096 / 1048576.0, st.bytes_uncompressed / 1048576.0,
           st.bytes_compressed / 1048576.0,
           st.bytes_compressed ? (double)st.bytes_uncompressed / st.bytes_compressed : 0);
    check(cairn_close(store), "close");
    store = NULL;
    return 0;
}

static int walk(const char *dir, int64_t nodes, int lookups)
{
    double t0 = now();
    check(cairn_open(dir, NULL, &store), "open");
    double t1 = now();
    struct node *root;
    check(cairn_root_get(store, "tree", (void **)&root), "root_get");
    cairn_stats st;
    cairn_stats_get(store, &st);
    printf("new process %d: opened in %.2f ms, %s backend, %" PRIu64 " pages resident after open+root\n", getpid(),
           (t1 - t0) * 1e3, st.backend == CAIRN_BACKEND_UFFD ? "userfaultfd" : "mprotect", st.pages_resident);

    /* Lookups in growing batches: memory grows with what is touched. */
    srand(12345);
    int64_t found = 0;
    int done = 0;
    for (int batch = 10; done < lookups; batch *= 10) {
        int upto = batch < lookups ? batch : lookups;
        double t2 = now();
        for (; done < upto; done++) {
            int64_t k = (int64_t)(((uint64_t)rand() << 31 | (uint64_t)rand()) % (uint64_t)nodes);
            const struct node *n = root;
            while (n && n->key != k)
                n = k < n->key ? n->left : n->right;
            if (n && n->value == k * 3 + 1)
                found++;
        }
        double t3 = now();
        cairn_stats_get(store, &st);
        printf("after %5d random lookups (%" PRId64 " found, %.2f ms): %4" PRIu64 " extents loaded, %5" PRIu64
               " pages (%.1f MiB) resident of %" PRIu64 " allocated\n",
               done, found, (t3 - t2) * 1e3, st.extents_loaded, st.pages_resident, st.pages_resident * 4096 / 1048576.0,
               st.pages_allocated);
    }
    printf("  store on disk: %.1f MiB (LMDB file and log)\n", st.bytes_on_disk / 1048576.0);

    /* Now everything: every key must come back, in order. */
    struct node **stack = malloc(sizeof *stack * 128);
    int sp = 0;
    int64_t expect = 0, bad = 0;
    const struct node *n = root;
    double t4 = now();
    while (n || sp) {
        while (n) {
            stack[sp++] = (struct node *)n;
            n = n->left;
        }
        n = stack[--sp];
        if (n->key != expect || n->value != expect * 3 + 1)
            bad++;
        expect++;
        n = n->right;
    }
    double t5 = now();
    free(stack);
    cairn_stats_get(store, &st);
    uint64_t total_pages = st.pages_allocated;
    printf("full walk: %" PRId64 " nodes in order, %" PRId64 " wrong, %.1f ms; now %" PRIu64
           " pages resident of %" PRIu64 " allocated\n",
           expect, bad, (t5 - t4) * 1e3, st.pages_resident, total_pages);
    check(cairn_close(store), "close");
    return (found == done && expect == nodes && bad == 0) ? 0 : 2;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--walk") == 0)
        return walk(argv[2], atoll(argv[3]), atoi(argv[4]));
    const char *dir = argc > 1 ? argv[1] : "demo.cairn";
    int64_t nodes = argc > 2 ? atoll(argv[2]) : 1000000;
    const char *lookups = argc > 3 ? argv[3] : "1000";
    char cmd[64];
    snprintf(cmd, sizeof cmd, "%" PRId64, nodes);
    if (access(dir, F_OK) == 0) {
        fprintf(stderr, "demo: %s exists; remove it or name another directory\n", dir);
        return 1;
    }
    create(dir, nodes);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/proc/self/exe", argv[0], "--walk", dir, cmd, lookups, (char *)NULL);
        perror("exec");
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
