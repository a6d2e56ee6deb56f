/*
 * killthreads.c - SIGKILL a store whose four threads commit at once (group
 * commit), over and over, and check after each kill that the store holds
 * a prefix of the commit order that includes every acknowledged commit.
 *
 *   killthreads [--cycles N] [--seed S] [--dir D] [--keep] [--verbose]
 *
 * (--dir: where the stores go, default a new directory under $TMPDIR;
 * --keep: keep them even when all passed.)
 *
 * The store: root "kt" -> struct kt_root { total, counter[4], head }, where
 * counter[i] points to a 4 KiB object of its own (so the four counters sit
 * on four pages) and head is a singly linked list of entries {thread, seq,
 * next, blob, blob_len}.  Transaction "seq s of thread i" sets counter[i]
 * to s, adds 1 to total and pushes the entry {i, s} at the head; one in
 * eight also hangs a 5-70 KiB blob filled with a pattern of (i, s) off the
 * entry.  The parent creates the store and its root (counters 0, total 0).
 *
 * A cycle: a child (this binary re-executed with --child) opens the store
 * (recovering it), reports each counter, and starts four threads.  Thread i
 * loops: seq = counter[i] + 1; report "begin i seq" (one 16-byte write() to
 * a pipe: atomic, ordered with the thread's later reports); cairn_txn_begin
 * (waits for the one write slot); the changes above; one time in ten
 * cairn_txn_abort (the next attempt reuses seq), else cairn_txn_commit and,
 * on CAIRN_OK, "ack i seq".  Now and then a thread runs cairn_checkpoint,
 * racing the others' commits; in a third of the cycles a small
 * checkpoint_bytes makes the background flusher checkpoint too.  The parent
 * SIGKILLs the child 0-5 ms or 5-150 ms after its open, reads every report
 * up to EOF, reopens the store and checks:
 *
 *   - cairn_check is clean (allocator, pointers, checksums).
 *   - acked[i] <= counter[i] <= begun[i] for each thread: an acknowledged
 *     commit is durable (commit returned after the shared fdatasync), and
 *     nothing appears that no thread began.  A thread begins seq only
 *     after seq-1 was acknowledged, so begun[i] <= acked[i] + 1 and this
 *     pins counter[i] to two values.
 *   - total == number of entries == sum of counter[i]: every transaction
 *     adds one to each side, so a transaction recovered in part (one page
 *     of it and not another: the counters are on pages of their own, the
 *     entries and blobs on others) breaks an equality.
 *   - walking the list from head, the entries of thread i carry exactly
 *     counter[i], counter[i]-1, ..., 1 (other threads' interleaved in any
 *     way): each transaction links its entry to the entry of the previous
 *     commit, whatever thread made it, reading bytes that may not be
 *     durable yet.  If recovery kept a later commit without an earlier one
 *     (the prefix rule broken), that later entry's next would lead to an
 *     entry that is not there (cairn_check's bad pointer, or a zeroed
 *     entry), or a thread's seqs would have a hole.
 *   - every blob has a length in 5-70 KiB and exactly its (i, seq)
 *     pattern: blobs span extents, so this catches lost or torn pages of
 *     a recovered transaction.
 * The child's own counters at open must equal what the parent verified.
 * The next cycle runs on the same store; a fresh one starts when it gets
 * big.  On a violation the store directory is kept, the seed and cycle
 * printed, and the loop goes on with a fresh store.  Kill moments are
 * random in time, so a seed reproduces the cycle plan, not the
 * interleaving.  At the end "N passed, M failed" (cycles); exit 1 on any
 * violation.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "splitmix.h"

extern char **environ;
typedef unsigned long long ull;

#define NT 4
#define ROOT_NAME "kt"
#define MAGIC 0x4b54485245414453ull /* "KTHREADS" */
#define BLOB_MIN (5u << 10)
#define BLOB_MAX (70u << 10)

struct kt_entry {
    uint64_t thread, seq;
    struct kt_entry *next;
    uint8_t *blob;
    uint64_t blob_len, pad;
};

struct kt_root {
    uint64_t magic, total;
    uint64_t *counter[NT]; /* each a 4096-byte object of its own */
    struct kt_entry *head;
};

enum { M_OPENED = 1, M_BEGIN, M_ACK, M_CKPT };

struct msg {
    int32_t kind, thread;
    uint64_t seq;
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void store_options(cairn_options *o, uint64_t ckpt_bytes)
{
    cairn_options_init(o);
    o->max_bytes = (uint64_t)4 << 30;
    o->checkpoint_bytes = ckpt_bytes;
}

static int register_types(cairn_store *s, cairn_type *root_t, cairn_type *entry_t)
{
    size_t rp[NT + 1], ep[] = {offsetof(struct kt_entry, next), offsetof(struct kt_entry, blob)};
    for (int i = 0; i < NT; i++)
        rp[i] = offsetof(struct kt_root, counter) + (size_t)i * sizeof(void *);
    rp[NT] = offsetof(struct kt_root, head);
    int rc = cairn_type_register(s, "kt_root", sizeof(struct kt_root), rp, NT + 1, root_t);
    return rc ? rc : cairn_type_register(s, "kt_entry", sizeof(struct kt_entry), ep, 2, entry_t);
}

/* The blob of (thread, seq): len bytes of a SplitMix stream seeded by both. */
static void pattern(uint8_t *buf, size_t len, uint64_t thread, uint64_t seq)
{
    uint64_t st = (thread << 56) ^ (seq * 0x9E3779B97F4A7C15ull), w = 0;
    for (size_t j = 0; j < len; j++) {
        if (j % 8 == 0)
            w = tu_splitmix64(&st);
        buf[j] = (uint8_t)(w >> (8 * (j % 8)));
    }
}

/* ---- the child ---- */

static int child_fd = -1, die_status = 2; /* 3 in the child (which _exits) */
static cairn_store *cs;
static cairn_type entry_type;
static struct kt_root *croot;
static uint64_t child_seed;

static void send_msg(int kind, int thread, uint64_t seq)
{
    struct msg m = {.kind = kind, .thread = thread, .seq = seq};
    if (write(child_fd, &m, sizeof m) != (ssize_t)sizeof m)
        _exit(90);
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "killthreads%s: %s: %d (%s) %s\n", die_status == 3 ? " child" : "", what, rc, cairn_strerror(rc),
            cs ? cairn_errmsg(cs) : cairn_errmsg(NULL));
    if (die_status == 3)
        _exit(3);
    exit(2);
}

#define TRY(call)                                                                                                      \
    do {                                                                                                               \
        int rc_ = (call);                                                                                              \
        if (rc_)                                                                                                       \
            die(#call, rc_);                                                                                           \
    } while (0)

static void *child_thread(void *arg)
{
    int i = (int)(intptr_t)arg;
    uint64_t rng = child_seed ^ ((uint64_t)i << 40), done = *croot->counter[i];
    for (;;) {
        uint64_t seq = done + 1;
        send_msg(M_BEGIN, i, seq);
        cairn_txn *t;
        struct kt_entry *e;
        TRY(cairn_txn_begin(cs, &t));
        if (*croot->counter[i] != done) /* an abort did not restore it, or another thread wrote it */
            die("counter changed under its thread", CAIRN_CORRUPT);
        TRY(cairn_alloc(t, entry_type, 1, (void **)&e));
        e->thread = (uint64_t)i, e->seq = seq, e->next = croot->head;
        if (tu_splitmix_below(&rng, 8) == 0) {
            e->blob_len = BLOB_MIN + tu_splitmix_below(&rng, BLOB_MAX - BLOB_MIN + 1);
            TRY(cairn_alloc_bytes(t, e->blob_len, (void **)&e->blob));
            pattern(e->blob, e->blob_len, (uint64_t)i, seq);
        }
        croot->head = e;
        *croot->counter[i] = seq;
        croot->total++;
        if (tu_splitmix_below(&rng, 10) == 0) {
            cairn_txn_abort(t);
        } else {
            TRY(cairn_txn_commit(t));
            send_msg(M_ACK, i, seq);
            done = seq;
        }
        if (tu_splitmix_below(&rng, 64) == 0) {
            TRY(cairn_checkpoint(cs));
            send_msg(M_CKPT, i, 0);
        }
    }
    return NULL;
}

/* argv: --child DIR FD SEED CKPT_BYTES */
static int child_main(int argc, char **argv)
{
    if (argc != 6)
        _exit(99);
    die_status = 3;
    child_fd = atoi(argv[3]);
    child_seed = strtoull(argv[4], NULL, 10);
    cairn_options o;
    store_options(&o, strtoull(argv[5], NULL, 10));
    cairn_type root_t;
    TRY(cairn_open(argv[2], &o, &cs));
    TRY(register_types(cs, &root_t, &entry_type));
    TRY(cairn_root_get(cs, ROOT_NAME, (void **)&croot));
    for (int i = 0; i < NT; i++)
        send_msg(M_OPENED, i, *croot->counter[i]);
    pthread_t th[NT];
    for (int i = 0; i < NT; i++)
        TRY(pthread_create(&th[i], NULL, child_thread, (void *)(intptr_t)i));
    for (;;)
        pause();
}

/* ---- the parent ---- */

static int verbose, keep;
static uint64_t run_seed, cycle, n_violations, cycle_failed;
static char *store_dir;
static const char *backend;

static struct {
    uint64_t acks, begins, ckpts, bg_cycles, unacked_kept, unacked_lost, entries, blobs;
} st;

static void __attribute__((format(printf, 1, 2))) violation(const char *fmt, ...)
{
    n_violations++;
    if (++cycle_failed > 5)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "VIOLATION (seed %llu, cycle %llu, backend %s, store %s): ", (ull)run_seed, (ull)cycle, backend,
            store_dir);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* A new store with its root: counters 0, total 0, no entries. */
static void fresh_store(const char *parent, int generation)
{
    free(store_dir);
    if (asprintf(&store_dir, "%s/store-%d", parent, generation) < 0)
        abort();
    cairn_options o;
    store_options(&o, 0);
    cairn_store *s;
    cairn_txn *t;
    cairn_type root_t, entry_t;
    struct kt_root *r;
    TRY(cairn_open(store_dir, &o, &s));
    TRY(register_types(s, &root_t, &entry_t));
    TRY(cairn_txn_begin(s, &t));
    TRY(cairn_alloc(t, root_t, 1, (void **)&r));
    r->magic = MAGIC;
    for (int i = 0; i < NT; i++)
        TRY(cairn_alloc_bytes(t, 4096, (void **)&r->counter[i]));
    TRY(cairn_root_set(t, ROOT_NAME, r));
    TRY(cairn_txn_commit(t));
    TRY(cairn_close(s));
}

/* Open, check against acked/begun, record the counters in prev, close.
 * Returns the number of entries (0 if the store could not be read). */
static uint64_t verify(const uint64_t *acked, const uint64_t *begun, uint64_t *prev, uint64_t *pages)
{
    cairn_options o;
    store_options(&o, 0);
    cairn_store *s;
    int rc = cairn_open(store_dir, &o, &s);
    if (rc) {
        violation("cairn_open after the kill: %d (%s) %s", rc, cairn_strerror(rc), cairn_errmsg(NULL));
        return 0;
    }
    cairn_check_report rep;
    struct kt_root *r;
    uint64_t n = 0, sum = 0, expect[NT];
    if ((rc = cairn_check(s, &rep))) { /* (a pointer it found bad could crash the walk below) */
        violation("cairn_check: %d (%s): %llu problems, first: %s", rc, cairn_strerror(rc), (ull)rep.problems,
                  rep.first_problem);
        goto out;
    }
    if ((rc = cairn_root_get(s, ROOT_NAME, (void **)&r)) || r->magic != MAGIC) {
        violation("root missing or damaged: %d", rc);
        goto out;
    }
    for (int i = 0; i < NT; i++) {
        if (!r->counter[i]) {
            violation("counter %d has no page", i);
            goto out;
        }
        uint64_t c = expect[i] = prev[i] = *r->counter[i];
        sum += c;
        if (c < acked[i] || c > begun[i])
            violation("thread %d: counter %llu, but %llu was acknowledged and %llu begun", i, (ull)c, (ull)acked[i],
                      (ull)begun[i]);
        st.unacked_kept += c > acked[i];
        st.unacked_lost += c < begun[i];
    }
    if (r->total != sum)
        violation("total %llu, but the counters add up to %llu", (ull)r->total, (ull)sum);
    static uint8_t want[BLOB_MAX];
    for (struct kt_entry *e = r->head; e && n <= r->total; e = e->next, n++) {
        if (e->thread >= NT || e->seq != expect[e->thread]) {
            violation("entry %llu of the list: thread %llu seq %llu; expected seq %llu of that thread", (ull)n,
                      (ull)e->thread, (ull)e->seq, e->thread < NT ? (ull)expect[e->thread] : 0);
            goto out;
        }
        expect[e->thread]--;
        if (e->blob || e->blob_len) {
            st.blobs++;
            if (!e->blob || e->blob_len < BLOB_MIN || e->blob_len > BLOB_MAX) {
                violation("thread %llu seq %llu: blob %p of %llu bytes", (ull)e->thread, (ull)e->seq, (void *)e->blob,
                          (ull)e->blob_len);
                continue;
            }
            pattern(want, e->blob_len, e->thread, e->seq);
            if (memcmp(want, e->blob, e->blob_len) != 0)
                violation("thread %llu seq %llu: the blob's bytes differ from its pattern", (ull)e->thread,
                          (ull)e->seq);
        }
    }
    if (n != r->total)
        violation("the list holds %s%llu entries, total says %llu", n > r->total ? "more than " : "", (ull)n,
                  (ull)r->total);
    for (int i = 0; i < NT; i++)
        if (expect[i] != 0)
            violation("thread %d: seqs %llu..1 are missing from the list", i, (ull)expect[i]);
out:;
    cairn_stats sst;
    *pages = cairn_stats_get(s, &sst) == 0 ? sst.pages_allocated : 0;
    if ((rc = cairn_close(s)))
        violation("cairn_close: %d (%s)", rc, cairn_strerror(rc));
    st.entries += n;
    return n;
}

static void rm_tree(const char *path)
{
    char *cmd;
    if (asprintf(&cmd, "rm -rf '%s'", path) < 0)
        abort();
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", path);
    free(cmd);
}

static int read_msg(int fd, struct msg *m, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int rc = poll(&pfd, 1, timeout_ms);
    if (rc <= 0)
        return rc < 0 && errno != EINTR ? -1 : 0;
    /* Each report is one write() of sizeof *m < PIPE_BUF bytes, so a read
     * of that size gets a whole one; 0 is EOF (every writer is gone). */
    ssize_t n;
    while ((n = read(fd, m, sizeof *m)) < 0 && errno == EINTR)
        ;
    return n == (ssize_t)sizeof *m ? 1 : -1;
}

/* One report: check it follows the protocol, track begun and acked. */
static void note(const struct msg *m, const uint64_t *prev, uint64_t *acked, uint64_t *begun, int *opened)
{
    int i = m->thread;
    if (i < 0 || i >= NT || m->kind < M_OPENED || m->kind > M_CKPT) {
        violation("bad report %d from the child", m->kind);
        return;
    }
    if (m->kind == M_OPENED && m->seq != prev[i])
        violation("the child opened with counter %d at %llu; the parent checked %llu", i, (ull)m->seq, (ull)prev[i]);
    if ((m->kind == M_BEGIN || m->kind == M_ACK) && m->seq != acked[i] + 1)
        violation("thread %d reported %s of seq %llu after the ack of %llu", i,
                  m->kind == M_ACK ? "the ack" : "a begin", (ull)m->seq, (ull)acked[i]);
    if (m->kind == M_OPENED)
        *opened += 1;
    else if (m->kind == M_BEGIN)
        begun[i] = m->seq > begun[i] ? m->seq : begun[i], st.begins++;
    else if (m->kind == M_ACK)
        acked[i] = m->seq, st.acks++;
    else
        st.ckpts++;
}

/* One child: spawn it, follow its reports, SIGKILL it delay_us after it
 * opened, read what is left up to EOF. */
static void run_child(uint64_t ckpt_bytes, int64_t delay_us, uint64_t seed, const uint64_t *prev, uint64_t *acked,
                      uint64_t *begun)
{
    int p[2];
    if (pipe(p) != 0)
        die("pipe", errno);
    char fd[16], sd[32], ck[32];
    snprintf(fd, sizeof fd, "%d", p[1]);
    snprintf(sd, sizeof sd, "%llu", (ull)seed);
    snprintf(ck, sizeof ck, "%llu", (ull)ckpt_bytes);
    char *argv[] = {"killthreads", "--child", store_dir, fd, sd, ck, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addclose(&fa, p[0]);
    pid_t pid;
    fflush(NULL);
    int rc = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc)
        die("posix_spawn", rc);
    close(p[1]);
    int opened = 0, got = 0, status;
    struct msg m;
    int64_t deadline = now_us() + 60 * 1000000; /* for the open */
    for (int64_t left; (left = deadline - now_us()) > 0 && got >= 0;) {
        if ((got = read_msg(p[0], &m, (int)((left + 999) / 1000))) > 0) {
            note(&m, prev, acked, begun, &opened);
            if (m.kind == M_OPENED && opened == NT)
                deadline = now_us() + delay_us;
        }
    }
    if (opened < NT && got >= 0)
        violation("the child did not open the store within a minute");
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            die("waitpid", errno);
    while (read_msg(p[0], &m, 0) == 1)
        note(&m, prev, acked, begun, &opened);
    close(p[0]);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        violation("the child %s %d before it was killed (its stderr above)",
                  WIFEXITED(status) ? "exited with status" : "died of signal",
                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--child") == 0)
        return child_main(argc, argv);
    uint64_t cycles = 60, failed = 0, prev[NT] = {0}, pages = 0;
    const char *dir_arg = NULL, *tmp = getenv("TMPDIR"), *be = getenv("CAIRN_FAULT_BACKEND");
    run_seed = ((uint64_t)time(NULL) * 2654435761u) ^ ((uint64_t)getpid() << 20);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cycles") && i + 1 < argc)
            cycles = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            run_seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir_arg = argv[++i];
        else if (!strcmp(argv[i], "--keep"))
            keep = 1;
        else if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v"))
            verbose = 1;
        else {
            fprintf(stderr, "usage: killthreads [--cycles N] [--seed S] [--dir D] [--keep] [--verbose]\n");
            return 2;
        }
    }
    char *parent;
    if (dir_arg ? (mkdir(dir_arg, 0755) != 0 && errno != EEXIST) || !(parent = strdup(dir_arg))
                : asprintf(&parent, "%s/killthreads-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0 || !mkdtemp(parent))
        die(dir_arg ? dir_arg : "mkdtemp", errno);
    backend = be && *be ? be : "auto";
    printf("killthreads: seed %llu, %llu cycles, backend %s, in %s\n", (ull)run_seed, (ull)cycles, backend, parent);
    int generation = 0;
    fresh_store(parent, generation);
    uint64_t rng = run_seed;
    int64_t t_start = now_us();
    for (cycle = 0; cycle < cycles; cycle++) {
        cycle_failed = 0;
        uint64_t ckpt_bytes = tu_splitmix_below(&rng, 3) == 0 ? 16384 + tu_splitmix_below(&rng, 256 * 1024) : 0;
        st.bg_cycles += ckpt_bytes != 0;
        int64_t delay = tu_splitmix_below(&rng, 100) < 30 ? (int64_t)tu_splitmix_below(&rng, 5000)
                                                          : 5000 + (int64_t)tu_splitmix_below(&rng, 145000);
        uint64_t acked[NT], begun[NT]; /* no report: the counter stays as the parent last saw it */
        memcpy(acked, prev, sizeof acked);
        memcpy(begun, prev, sizeof begun);
        run_child(ckpt_bytes, delay, tu_splitmix64(&rng), prev, acked, begun);
        uint64_t n = verify(acked, begun, prev, &pages);
        if (verbose)
            printf("cycle %llu: killed %lld us after the open; counters %llu %llu %llu %llu, %llu entries, %llu "
                   "pages%s\n",
                   (ull)cycle, (long long)delay, (ull)prev[0], (ull)prev[1], (ull)prev[2], (ull)prev[3], (ull)n,
                   (ull)pages, cycle_failed ? " FAILED" : "");
        if (cycle_failed || n > 200000 || pages > 60000) { /* a fresh store */
            if (cycle_failed)
                failed++, fprintf(stderr, "store kept in %s; going on with a fresh store\n", store_dir);
            else
                rm_tree(store_dir);
            memset(prev, 0, sizeof prev);
            fresh_store(parent, ++generation);
        }
        fflush(stdout);
    }
    printf("cycles: %llu, %.1f s, on %d store(s); %llu begins, %llu acknowledged commits, %llu explicit "
           "checkpoints, %llu cycles with a small checkpoint_bytes\n",
           (ull)cycles, (now_us() - t_start) / 1e6, generation + 1, (ull)st.begins, (ull)st.acks, (ull)st.ckpts,
           (ull)st.bg_cycles);
    printf("after the kills: %llu unacknowledged commits found durable, %llu begun ones not there; %llu entries "
           "and %llu blobs checked\nviolations: %llu\n%llu passed, %llu failed\n",
           (ull)st.unacked_kept, (ull)st.unacked_lost, (ull)st.entries, (ull)st.blobs, (ull)n_violations,
           (ull)(cycles - failed), (ull)failed);
    if (n_violations == 0 && !keep)
        rm_tree(dir_arg ? store_dir : parent);
    else if (n_violations)
        fprintf(stderr, "failing stores kept under %s (seed %llu)\n", parent, (ull)run_seed);
    free(store_dir);
    free(parent);
    return n_violations ? 1 : 0;
}
