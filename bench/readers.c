/*
 * readers.c - read-only handles beside a writer, side by side in one run.
 *
 *   readers [NODES] [SECONDS]
 *
 * Builds a linked list of NODES nodes (default 1,000,000) in a fresh
 * store, then:
 *   1. the writer's durable commit rate (one node's value changed per
 *      transaction, CAIRN_SYNC_FULL) for SECONDS (default 3) with 0, 1 and
 *      4 other processes of three kinds: readers that refresh and read the
 *      changed node in a tight loop; readers that do so once a
 *      millisecond; and, as the peer that says what merely sharing the
 *      CPUs costs, processes that spin without touching any store.  Each
 *      rate is printed with its ratio to the rate with none;
 *   2. refresh latency against the number of pages a commit changed
 *      (1, 16, 256, 4096 pages), each the median of 15 refreshes;
 *   3. a cold walk of the whole list through a fresh read-only handle
 *      against the writer's own cold walk after a reopen (median of 3).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>

#include "bench.h"

struct node {
    struct node *next;
    int64_t value;
    char pad[48];
};

static cairn_type node_type(cairn_store *s)
{
    static const size_t ptrs[] = {offsetof(struct node, next)};
    cairn_type t;
    bench_check(cairn_type_register(s, "node", sizeof(struct node), ptrs, 1, &t), "register");
    return t;
}

static cairn_store *open_store(const char *dir, unsigned flags)
{
    cairn_options o;
    cairn_options_init(&o);
    o.max_bytes = (uint64_t)4 << 30;
    o.flags = flags;
    cairn_store *s;
    bench_check(cairn_open(dir, &o, &s), "open");
    return s;
}

static void build(const char *dir, long n)
{
    cairn_store *s = open_store(dir, 0);
    cairn_type t = node_type(s);
    cairn_txn *tx;
    struct node *head = NULL, **link = &head;
    bench_check(cairn_txn_begin(s, &tx), "begin");
    for (long i = 0; i < n; i++) {
        bench_check(cairn_alloc(tx, t, 1, (void **)link), "alloc");
        (*link)->value = i;
        link = &(*link)->next;
    }
    bench_check(cairn_root_set(tx, "list", head), "root");
    bench_check(cairn_txn_commit(tx), "commit");
    bench_check(cairn_close(s), "close");
}

enum other { SPIN, REFRESH, PACED };
static const char *other_name[] = {"spinning processes (no store)", "readers refreshing in a loop",
                                   "readers refreshing every 1 ms"};

/* Another process: a reader that refreshes and reads the list's head, in
 * a loop or once a millisecond, or a spinner; until killed. */
static pid_t start_other(const char *dir, enum other kind)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    volatile int64_t sink = 0;
    if (kind == SPIN)
        for (;;)
            sink++;
    cairn_store *r = open_store(dir, CAIRN_RDONLY);
    for (;;) {
        bench_check(cairn_refresh(r), "refresh");
        struct node *h;
        bench_check(cairn_root_get(r, "list", (void **)&h), "root");
        sink += h->value;
        if (kind == PACED)
            usleep(1000);
    }
}

static double commit_rate(cairn_store *w, double seconds)
{
    struct node *h;
    bench_check(cairn_root_get(w, "list", (void **)&h), "root");
    long n = 0;
    double t0 = bench_now(), t;
    while ((t = bench_now()) - t0 < seconds) {
        cairn_txn *tx;
        bench_check(cairn_txn_begin(w, &tx), "begin");
        h->value++;
        bench_check(cairn_txn_commit(tx), "commit");
        n++;
    }
    return n / (t - t0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double walk(cairn_store *s)
{
    struct node *h;
    bench_check(cairn_root_get(s, "list", (void **)&h), "root");
    double t0 = bench_now();
    volatile int64_t sum = 0;
    for (; h; h = h->next)
        sum += h->value;
    return bench_now() - t0;
}

int main(int argc, char **argv)
{
    long nodes = argc > 1 ? atol(argv[1]) : 1000000;
    double seconds = argc > 2 ? atof(argv[2]) : 3;
    char *tmp = bench_tempdir("readers");
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/store", tmp);
    build(dir, nodes);

    /* 1. Commit rate against other processes.  The rate with none is
     * measured again before each kind, so that drift shows. */
    cairn_store *w = open_store(dir, 0);
    for (int kind = SPIN; kind <= PACED; kind++) {
        double base = commit_rate(w, seconds);
        printf("commits/s alone: %.0f\n", base);
        int counts[] = {1, 4};
        for (int k = 0; k < 2; k++) {
            pid_t pids[4];
            for (int i = 0; i < counts[k]; i++)
                pids[i] = start_other(dir, (enum other)kind);
            usleep(200000); /* let them open */
            double rate = commit_rate(w, seconds);
            for (int i = 0; i < counts[k]; i++) {
                kill(pids[i], SIGKILL);
                waitpid(pids[i], NULL, 0);
            }
            printf("commits/s with %d %s: %.0f (%.2fx of alone)\n", counts[k], other_name[kind], rate, rate / base);
        }
    }

    /* 2. Refresh latency against pages changed (each page's first node). */
    cairn_store *r = open_store(dir, CAIRN_RDONLY);
    struct node *h;
    bench_check(cairn_root_get(w, "list", (void **)&h), "root");
    long per_page = 4096 / sizeof(struct node);
    int changed[] = {1, 16, 256, 4096};
    for (int k = 0; k < 4; k++) {
        double t[15];
        for (int rep = 0; rep < 15; rep++) {
            cairn_txn *tx;
            bench_check(cairn_txn_begin(w, &tx), "begin");
            struct node *p = h;
            for (long i = 0; p && i < (long)changed[k] * per_page; i++, p = p->next)
                if (i % per_page == 0)
                    p->value++;
            bench_check(cairn_txn_commit(tx), "commit");
            /* Make the reader's copy of those pages resident first, so the
             * refresh has them to drop. */
            struct node *q;
            bench_check(cairn_root_get(r, "list", (void **)&q), "root");
            for (long i = 0; q && i < (long)changed[k] * per_page; i++)
                q = q->next;
            double t0 = bench_now();
            bench_check(cairn_refresh(r), "refresh");
            t[rep] = bench_now() - t0;
        }
        qsort(t, 15, sizeof *t, cmp_double);
        printf("refresh after a commit of %4d changed pages: median %.3f ms\n", changed[k], t[7] * 1e3);
    }
    bench_check(cairn_close(r), "close");
    bench_check(cairn_close(w), "close");

    /* 3. Cold walk: a fresh read-only handle against the writer's own. */
    double ro[3], rw[3];
    for (int rep = 0; rep < 3; rep++) {
        w = open_store(dir, 0);
        rw[rep] = walk(w);
        bench_check(cairn_close(w), "close");
        r = open_store(dir, CAIRN_RDONLY);
        ro[rep] = walk(r);
        bench_check(cairn_close(r), "close");
    }
    qsort(ro, 3, sizeof *ro, cmp_double);
    qsort(rw, 3, sizeof *rw, cmp_double);
    printf("cold walk of %ld nodes: read-only handle %.3f s, writer %.3f s (%.2fx)\n", nodes, ro[1], rw[1],
           ro[1] / rw[1]);
    return bench_rmdir(tmp);
}
