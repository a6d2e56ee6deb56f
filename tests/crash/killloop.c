/*
 * killloop.c - SIGKILL a store's writer at random moments, over and over,
 * and check after each kill that the store holds exactly a prefix of the
 * committed transactions, with every acknowledged one in it.
 *
 *   killloop [--cycles N] [--readers R] [--seed S] [--dir D] [--keep] [--verbose]
 *
 * (--dir: where the stores go, default a new directory under $TMPDIR;
 * --keep: keep them even when all passed.)
 *
 * A cycle:
 *   1. A child (this binary re-executed with --child, so that it starts
 *      clean) opens the store (recovering it if the last kill left
 *      commits in the log), reads its state into a model, tells the parent
 *      which attempt that state is, and runs attempts k, k+1, ... of the
 *      random workload of workload.c: allocs, links, value and blob
 *      changes, frees, blobs of more than 64 KiB, transactions of one
 *      change and of thousands, some aborted, some followed by
 *      cairn_checkpoint; in some cycles with a small checkpoint_bytes so
 *      that the background flusher checkpoints.  It reports through a pipe
 *      each commit it starts, each commit acknowledged (right after
 *      cairn_txn_commit returned CAIRN_OK), and each explicit checkpoint.
 *   2. The parent SIGKILLs it after a random delay: mostly counted from
 *      the child's open (0-5 ms or 5-180 ms, longer while a big attempt
 *      keeps the store from moving), sometimes from its start, to land
 *      inside open and recovery.
 *   3. Sometimes a second child only reopens the store, which needs
 *      recovery, and is killed at a random moment of it.
 *   4. The parent reopens the store and checks: cairn_check is clean;
 *      the store's state (every value, every blob byte, the links as slot
 *      indices) equals the model's state after attempt n, replayed by the
 *      parent from the seed, where n is the last acknowledged commit or
 *      the next committing attempt after it (done, not yet reported).
 *      Sometimes this check is deferred to the next cycle, so that the
 *      next child's own open does the recovery (and may be killed in it);
 *      the state that child reports having opened is checked the same way,
 *      and so is every acknowledgement (an attempt acknowledged twice means
 *      acknowledged commits were lost).
 *
 * The workload is a function of (seed, attempt number) and the model
 * state, never of addresses, so the parent can replay it.  On a violation
 * the store directory is kept (its path printed with the seed and cycle),
 * and the loop goes on with a fresh store; it also moves to a fresh store
 * when the allocator's high-water mark gets high (HWM_LIMIT).  The kill
 * moments are random in time, so a seed reproduces the workload and the
 * cycle plan, not the exact interleaving.
 *
 * With --readers R, R read-only handles in processes of their own (this
 * binary re-executed with --reader) read the store through every cycle
 * after its first: each opens, runs cairn_check on its snapshot and
 * refreshes, over and over, and is SIGKILLed when the cycle ends.  Every
 * snapshot a reader sees is a committed state, so every check must be
 * clean and every open and refresh succeed (CAIRN_BUSY aside); a reader
 * that exits on its own is a violation.
 *
 * Output: nothing per cycle (unless --verbose); at the end the counts and
 * "N passed, M failed" (cycles).  Exit status 1 on any violation.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#include "workload.h"

extern char **environ;

enum { M_START = 1, M_OPENED, M_CBEGIN, M_ACK, M_KBEGIN, M_KEND };

struct msg {
    int32_t kind, pad;
    int64_t k;
    uint64_t ckpts;
};

static const struct wl_profile *prof = &wl_profile_killloop;

static void store_options(cairn_options *o, uint64_t ckpt_bytes)
{
    cairn_options_init(o);
    o->max_bytes = (uint64_t)1 << 30;
    o->checkpoint_bytes = ckpt_bytes;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- the child ---- */

static int child_fd = -1;

static void send_msg(int kind, int64_t k, uint64_t ckpts)
{
    struct msg m = {.kind = kind, .k = k, .ckpts = ckpts};
    if (write(child_fd, &m, sizeof m) != (ssize_t)sizeof m)
        _exit(90);
}

static void child_die(const char *what, int rc, cairn_store *s, const char *detail)
{
    fprintf(stderr, "killloop child: %s: %d (%s) %s %s\n", what, rc, cairn_strerror(rc), s ? cairn_errmsg(s) : "",
            detail ? detail : "");
    _exit(3);
}

/* argv: --child work|open DIR FD SEED CKPT_BYTES */
static int child_main(int argc, char **argv)
{
    if (argc != 7)
        _exit(99);
    int open_only = strcmp(argv[2], "open") == 0;
    const char *dir = argv[3];
    child_fd = atoi(argv[4]);
    uint64_t seed = strtoull(argv[5], NULL, 10);
    cairn_options o;
    store_options(&o, strtoull(argv[6], NULL, 10));

    send_msg(M_START, -1, 0);
    cairn_store *s;
    int rc = cairn_open(dir, &o, &s);
    if (rc)
        child_die("cairn_open", rc, NULL, NULL);
    if (open_only) {
        send_msg(M_OPENED, -1, 0);
        for (;;)
            pause();
    }
    struct wl_types ty;
    rc = wl_types_register(s, &ty);
    if (rc)
        child_die("type registration", rc, s, NULL);
    static struct model m;
    model_init(&m);
    char err[300];
    rc = wl_snapshot(s, &m, err, sizeof err);
    if (rc)
        child_die("reading the recovered store", rc, s, err);
    send_msg(M_OPENED, m.exists ? m.txn : -1, 0);
    static struct wl w;
    wl_init(&w, seed, prof, &m, s, &ty);
    uint64_t explicit_ckpts = 0;
    for (int64_t k = m.exists ? m.txn + 1 : 0;; k++) {
        int commit;
        rc = wl_begin(&w, k, &commit);
        if (rc)
            child_die("transaction", rc, s, w.err);
        if (commit)
            send_msg(M_CBEGIN, k, 0);
        rc = wl_end(&w);
        if (rc)
            child_die("commit", rc, s, w.err);
        if (!commit)
            continue;
        cairn_stats st;
        cairn_stats_get(s, &st);
        send_msg(M_ACK, k, st.checkpoints - explicit_ckpts); /* the flusher's */
        if (wl_checkpoint_after(seed, prof, k)) {
            send_msg(M_KBEGIN, k, 0);
            rc = cairn_checkpoint(s);
            if (rc)
                child_die("cairn_checkpoint", rc, s, NULL);
            cairn_stats after; /* (a checkpoint with nothing to write counts nothing) */
            cairn_stats_get(s, &after);
            explicit_ckpts += after.checkpoints - st.checkpoints;
            send_msg(M_KEND, k, 0);
        }
    }
}

/* A reader (--reader DIR FD): open read-only, check, refresh, over and
 * over, writing a byte to FD after each clean check; exits only on a
 * failure (status 3-5, the reason on stderr). */
static int reader_main(const char *dir, int fd)
{
    for (;;) {
        cairn_options o;
        store_options(&o, 0);
        o.flags = CAIRN_RDONLY;
        cairn_store *s;
        int rc = cairn_open(dir, &o, &s);
        if (rc == CAIRN_BUSY) {
            usleep(1000);
            continue;
        }
        if (rc) {
            fprintf(stderr, "killloop reader: open: %s\n", cairn_errmsg(NULL));
            _exit(3);
        }
        for (int i = 0; i < 20; i++) {
            cairn_check_report r;
            rc = cairn_check(s, &r);
            if (rc) {
                fprintf(stderr, "killloop reader: check: %s (%s)\n", cairn_strerror(rc), r.first_problem);
                _exit(4);
            }
            (void)!write(fd, "c", 1);
            rc = cairn_refresh(s);
            if (rc && rc != CAIRN_BUSY) {
                fprintf(stderr, "killloop reader: refresh: %s\n", cairn_errmsg(s));
                _exit(5);
            }
        }
        cairn_close(s);
    }
}

/* ---- the parent ---- */

static int n_readers;
static pid_t reader_pids[8];
static int reader_pipe[2] = {-1, -1}; /* a byte per clean check */

static void start_readers(const char *dir)
{
    if (reader_pipe[0] < 0 && (pipe(reader_pipe) != 0 || fcntl(reader_pipe[0], F_SETFL, O_NONBLOCK) != 0)) {
        perror("pipe");
        exit(2);
    }
    char fd[16];
    snprintf(fd, sizeof fd, "%d", reader_pipe[1]);
    for (int i = 0; i < n_readers; i++) {
        char *argv[] = {"killloop", "--reader", (char *)dir, fd, NULL};
        fflush(NULL);
        if (posix_spawn(&reader_pids[i], "/proc/self/exe", NULL, NULL, argv, environ) != 0)
            reader_pids[i] = 0;
    }
}

static int verbose, keep;
static uint64_t run_seed;

static struct {
    uint64_t cycles, failed, violations, verified, deferred;
    uint64_t acks, child_ckpts, bg_cycles, bg_ckpts, reader_runs, reader_checks;
    uint64_t k_commit, k_ckpt, k_open_recovery, k_open, k_body, k_recovery, k_recovery_after, k_walreset;
    uint64_t recovery_children;
    int64_t us_work, us_recovery, us_verify, us_open_seen, n_open_seen;
    int64_t us_v_open, us_v_check, us_v_read, us_v_model, us_v_close;
} st;

/* What we know of the store under test. */
struct track {
    char *dir;        /* the store directory */
    int generation;   /* a fresh store after a violation or when the high-water mark is high */
    uint64_t seed;    /* workload seed of this generation */
    int64_t lo;       /* the store holds the state after lo or after next_commit(lo) */
    struct model exp; /* expected state, after attempt exp.txn */
    int cycle_failed;
    uint64_t hwm; /* allocator high-water mark at the last check, pages */
};

/* The allocator does not coalesce free runs backwards, so under this
 * workload its high-water mark creeps up (about 100 pages a cycle) while
 * the live data stays the same; cairn_check's cost grows with it, and a
 * 1 GiB store would fill up within a few thousand cycles.  So a store
 * lives until its high-water mark passes this, then the loop goes on with
 * a fresh one. */
#define HWM_LIMIT 24000

static void violation(struct track *t, uint64_t cycle, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void violation(struct track *t, uint64_t cycle, const char *fmt, ...)
{
    st.violations++;
    if (++t->cycle_failed > 5) /* one failure tends to bring more: print the first few */
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "VIOLATION (seed %llu, cycle %llu, store %s, workload seed %llu): ", (unsigned long long)run_seed,
            (unsigned long long)cycle, t->dir, (unsigned long long)t->seed);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int read_msg(int fd, struct msg *m, int64_t timeout_us)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int ms = timeout_us < 0 ? -1 : (int)((timeout_us + 999) / 1000);
    int rc = poll(&pfd, 1, ms);
    if (rc < 0 && errno == EINTR)
        return 0;
    if (rc < 0) {
        perror("poll");
        exit(2);
    }
    if (rc == 0)
        return 0;
    size_t got = 0;
    while (got < sizeof *m) {
        ssize_t n = read(fd, (char *)m + got, sizeof *m - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 1;
}

struct child_run {
    int started, opened, exited;
    int last_kind;
    int64_t open_us;
    int status;
};

static off_t wal_size(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/wal", dir);
    struct stat sb;
    return stat(p, &sb) == 0 ? sb.st_size : -1;
}

static int file_exists(const char *dir, const char *name)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* A message from a work child: check it against what we know. */
static void note(struct track *t, uint64_t cycle, struct child_run *r, const struct msg *m, int64_t t0)
{
    r->last_kind = m->kind;
    if (t->cycle_failed && (m->kind == M_OPENED || m->kind == M_ACK)) {
        /* What we know of the store is wrong already: just follow. */
        if (m->kind == M_OPENED)
            r->opened = 1, r->open_us = now_us() - t0;
        if (m->kind == M_ACK)
            st.acks++;
        return;
    }
    switch (m->kind) {
    case M_START:
        r->started = 1;
        break;
    case M_OPENED:
        r->opened = 1;
        r->open_us = now_us() - t0;
        if (m->k != -2) { /* -2: an open-only child, which reads nothing */
            int64_t hi = wl_next_commit(t->seed, prof, t->lo);
            if (m->k != t->lo && m->k != hi)
                violation(t, cycle, "the child opened the store at the state of attempt %lld; expected %lld or %lld",
                          (long long)m->k, (long long)t->lo, (long long)hi);
            if (m->k > t->lo)
                t->lo = m->k;
        }
        break;
    case M_CBEGIN:
    case M_KBEGIN:
    case M_KEND:
        break;
    case M_ACK: {
        int64_t want = wl_next_commit(t->seed, prof, t->lo);
        if (m->k != want)
            violation(t, cycle, "the child acknowledged attempt %lld; expected %lld (state was %lld)%s",
                      (long long)m->k, (long long)want, (long long)t->lo,
                      m->k <= t->lo ? ": acknowledged commits were lost" : "");
        if (m->k > t->lo)
            t->lo = m->k;
        st.acks++;
        st.child_ckpts = m->ckpts; /* background checkpoints of this child so far */
        break;
    }
    default:
        violation(t, cycle, "bad message %d from the child", m->kind);
    }
}

/* Run a child until delay_us after it started (after_open: after it said
 * it had opened the store), then SIGKILL it. */
static void run_child(struct track *t, uint64_t cycle, int open_only, uint64_t ckpt_bytes, int64_t delay_us,
                      int after_open, struct child_run *r)
{
    memset(r, 0, sizeof *r);
    int p[2];
    if (pipe(p) != 0) {
        perror("pipe");
        exit(2);
    }
    char fdbuf[16], seedbuf[32], ckbuf[32];
    snprintf(fdbuf, sizeof fdbuf, "%d", p[1]);
    snprintf(seedbuf, sizeof seedbuf, "%llu", (unsigned long long)t->seed);
    snprintf(ckbuf, sizeof ckbuf, "%llu", (unsigned long long)ckpt_bytes);
    char *argv[] = {"killloop", "--child", open_only ? "open" : "work", t->dir, fdbuf, seedbuf, ckbuf, NULL};
    fflush(NULL);
    /* posix_spawn, not fork: no copy of the parent's page tables (the
     * model) for a child that execs at once. */
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addclose(&fa, p[0]);
    pid_t pid;
    int src = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (src) {
        fprintf(stderr, "posix_spawn: %s\n", strerror(src));
        exit(2);
    }
    close(p[1]);
    int fd = p[0];
    struct msg m;
    st.child_ckpts = 0;
    int got = read_msg(fd, &m, 60 * 1000000);
    int64_t t0 = now_us();
    if (got == 1 && m.kind == M_START) {
        note(t, cycle, r, &m, t0);
        /* Waiting for the open: give up after a minute. */
        int64_t deadline = after_open ? t0 + 60 * 1000000 : t0 + delay_us;
        for (;;) {
            int64_t left = deadline - now_us();
            if (left <= 0) {
                if (after_open && !r->opened)
                    violation(t, cycle, "the child did not open the store within a minute");
                break;
            }
            got = read_msg(fd, &m, left);
            if (got < 0)
                break;
            if (got > 0) {
                if (open_only && m.kind == M_OPENED)
                    m.k = -2;
                note(t, cycle, r, &m, t0);
                if (after_open && m.kind == M_OPENED)
                    deadline = now_us() + delay_us;
            }
        }
    }
    kill(pid, SIGKILL);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            perror("waitpid");
            exit(2);
        }
    while (read_msg(fd, &m, 0) == 1) {
        if (open_only && m.kind == M_OPENED)
            m.k = -2;
        note(t, cycle, r, &m, t0);
    }
    close(fd);
    r->status = status;
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
        r->exited = 1;
        violation(t, cycle, "the %s child %s %d before it was killed (its stderr above)",
                  open_only ? "recovery" : "work", WIFEXITED(status) ? "exited with status" : "died of signal",
                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    } else if (!r->started) {
        violation(t, cycle, "the child never started");
    }
}

/* Advance the expected model to the state after attempt n. */
static void model_advance(struct track *t, int64_t n)
{
    struct wl w;
    wl_init(&w, t->seed, prof, &t->exp, NULL, NULL);
    for (int64_t k = t->exp.txn + 1; k <= n; k++) {
        if (!wl_commits(t->seed, prof, k))
            continue;
        if (wl_run(&w, k) != 0) {
            fprintf(stderr, "model replay of attempt %lld failed: %s\n", (long long)k, w.err);
            exit(2);
        }
    }
    wl_fini(&w);
}

/* Open, check, compare, close. */
static void verify(struct track *t, uint64_t cycle)
{
    int64_t a0 = now_us();
    cairn_options o;
    store_options(&o, 0);
    cairn_store *s;
    int rc = cairn_open(t->dir, &o, &s);
    if (rc) {
        violation(t, cycle, "cairn_open after the kill: %d (%s)", rc, cairn_strerror(rc));
        return;
    }
    int64_t a1 = now_us();
    st.us_v_open += a1 - a0;
    cairn_check_report rep;
    rc = cairn_check(s, &rep);
    int64_t a2 = now_us();
    st.us_v_check += a2 - a1;
    if (rc)
        violation(t, cycle, "cairn_check: %d (%s): %llu problems, first: %s", rc, cairn_strerror(rc),
                  (unsigned long long)rep.problems, rep.first_problem);
    static struct model got;
    char err[300];
    rc = wl_snapshot(s, &got, err, sizeof err);
    int64_t a3 = now_us();
    st.us_v_read += a3 - a2;
    if (rc) {
        violation(t, cycle, "reading the store: %s", err);
    } else {
        int64_t n = got.exists ? got.txn : -1;
        int64_t hi = wl_next_commit(t->seed, prof, t->lo);
        if (n != t->lo && n != hi) {
            violation(t, cycle,
                      "the store holds the state of attempt %lld; expected %lld (the last acknowledged or seen) or "
                      "%lld (the next commit)",
                      (long long)n, (long long)t->lo, (long long)hi);
        } else {
            model_advance(t, n);
            st.us_v_model += now_us() - a3;
            if (wl_compare(&t->exp, &got, err, sizeof err))
                violation(t, cycle, "state after attempt %lld differs from the model: %s", (long long)n, err);
            t->lo = n;
        }
    }
    model_free(&got);
    cairn_stats sst;
    cairn_stats_get(s, &sst);
    t->hwm = sst.pages_allocated;
    if (verbose) {
        printf("  store: %llu pages allocated, %llu bytes on disk, %llu extents checked, %llu objects\n",
               (unsigned long long)sst.pages_allocated, (unsigned long long)sst.bytes_on_disk,
               (unsigned long long)rep.extents_checked, (unsigned long long)rep.objects);
    }
    int64_t a4 = now_us();
    rc = cairn_close(s);
    st.us_v_close += now_us() - a4;
    if (rc)
        violation(t, cycle, "cairn_close: %d (%s)", rc, cairn_strerror(rc));
    st.verified++;
}

static void fresh_store(struct track *t, const char *parent)
{
    free(t->dir);
    if (asprintf(&t->dir, "%s/store-%d", parent, t->generation) < 0)
        abort();
    t->seed = wl_mix(run_seed, (uint64_t)t->generation);
    t->lo = -1;
    t->hwm = 0;
    model_free(&t->exp);
}

static uint64_t crng;

static uint64_t crnd(uint64_t bound)
{
    return tu_splitmix_below(&crng, bound);
}

static int rm_tree(const char *path)
{
    char *cmd;
    if (asprintf(&cmd, "rm -rf '%s'", path) < 0)
        abort();
    int rc = system(cmd);
    free(cmd);
    return rc;
}

static void usage(void)
{
    fprintf(stderr, "usage: killloop [--cycles N] [--readers R] [--seed S] [--dir D] [--keep] [--verbose]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--child") == 0)
        return child_main(argc, argv);
    if (argc == 4 && strcmp(argv[1], "--reader") == 0)
        return reader_main(argv[2], atoi(argv[3]));
    uint64_t cycles = 200;
    const char *dir_arg = NULL;
    run_seed = ((uint64_t)time(NULL) * 2654435761u) ^ ((uint64_t)getpid() << 20);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cycles") && i + 1 < argc)
            cycles = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--readers") && i + 1 < argc)
            n_readers = atoi(argv[++i]) < 8 ? atoi(argv[i]) : 8;
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            run_seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir_arg = argv[++i];
        else if (!strcmp(argv[i], "--keep"))
            keep = 1;
        else if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v"))
            verbose = 1;
        else
            usage();
    }
    char *parent;
    if (dir_arg) {
        if (mkdir(dir_arg, 0755) != 0 && errno != EEXIST) {
            perror(dir_arg);
            return 2;
        }
        parent = strdup(dir_arg);
    } else {
        const char *tmp = getenv("TMPDIR");
        if (asprintf(&parent, "%s/killloop-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0 || !mkdtemp(parent)) {
            perror("mkdtemp");
            return 2;
        }
    }
    const char *be = getenv("CAIRN_FAULT_BACKEND");
    printf("killloop: seed %llu, %llu cycles, backend %s, in %s\n", (unsigned long long)run_seed,
           (unsigned long long)cycles, be && *be ? be : "auto", parent);
    fflush(stdout);

    static struct track t;
    model_init(&t.exp);
    fresh_store(&t, parent);
    rm_tree(t.dir);
    int64_t open_est = 30000;      /* how long a recovering open takes, us */
    int64_t work_open_est = 40000; /* how long a work child takes to open and read the store */
    int stuck = 0;                 /* cycles in a row whose child committed nothing */
    int64_t t_start = now_us();

    for (uint64_t c = 0; c < cycles; c++) {
        crng = wl_mix(run_seed ^ 0x5EED0C1C1Eull, c);
        t.cycle_failed = 0;
        uint64_t ckpt_bytes = 0;
        if (crnd(100) < 35) {
            ckpt_bytes = 16384 + crnd(512 * 1024);
            st.bg_cycles++;
        }
        /* Most kills count from the child's open; some from its start, to
         * land inside the open (and its recovery, if the log holds
         * commits). */
        uint64_t d = crnd(100);
        int in_open = d < 12;
        int64_t delay = in_open  ? (int64_t)crnd((uint64_t)(work_open_est * 12 / 10 + 1))
                        : d < 30 ? (int64_t)crnd(5000)
                                 : 5000 + (int64_t)crnd(175000);
        /* A restarted child redoes the same attempt: if a big one outlasts
         * the delays, the store would stay put.  Every cycle that did not
         * move it doubles the range (up to 4 s). */
        if (!in_open && stuck > 0)
            delay += (int64_t)crnd((uint64_t)(175000 << (stuck < 5 ? stuck : 5)));
        if (delay > 4000000)
            delay = 4000000;
        int64_t lo_before = t.lo;
        int want_recovery_child = crnd(100) < 35;
        int defer = crnd(100) < 20 && c + 1 < cycles;
        int64_t recovery_delay = (int64_t)crnd((uint64_t)(open_est * 13 / 10 + 1));

        /* Readers, once the store exists (not while a child creates it). */
        int readers = file_exists(t.dir, "data.mdb");
        if (readers)
            start_readers(t.dir);

        /* 1-2: the work child. */
        off_t wal_before = wal_size(t.dir);
        struct child_run r;
        int64_t t1 = now_us();
        run_child(&t, c, 0, ckpt_bytes, delay, !in_open, &r);
        st.us_work += now_us() - t1;
        if (r.opened) {
            st.us_open_seen += r.open_us, st.n_open_seen++;
            work_open_est = (work_open_est * 7 + r.open_us * 3) / 10;
        }
        st.bg_ckpts += st.child_ckpts;
        const char *where;
        if (r.exited || !r.started)
            where = "(child failed)";
        else if (!r.opened && wal_before > 64)
            st.k_open_recovery++, where = "in open, recovering";
        else if (!r.opened)
            st.k_open++, where = "in open";
        else if (r.last_kind == M_CBEGIN)
            st.k_commit++, where = "in commit";
        else if (r.last_kind == M_KBEGIN)
            st.k_ckpt++, where = "in cairn_checkpoint";
        else
            st.k_body++, where = "in a transaction or between";
        int walreset = file_exists(t.dir, "wal.tmp");
        st.k_walreset += walreset;

        /* 3: kill a recovery. */
        const char *rwhere = "";
        if (want_recovery_child && wal_size(t.dir) > 64 && !t.cycle_failed) {
            struct child_run rr;
            st.recovery_children++;
            int64_t t2 = now_us();
            run_child(&t, c, 1, 0, recovery_delay, 0, &rr);
            st.us_recovery += now_us() - t2;
            if (rr.opened) {
                st.k_recovery_after++;
                rwhere = ", recovery child killed after its open";
                open_est = (open_est * 7 + rr.open_us * 3) / 10;
                if (open_est < 500)
                    open_est = 500;
            } else if (rr.started && !rr.exited) {
                st.k_recovery++;
                rwhere = ", recovery child killed in recovery";
            }
            st.k_walreset += file_exists(t.dir, "wal.tmp");
        }

        /* 4: check. */
        int verified = 0;
        if (!defer || t.cycle_failed) {
            int64_t t3 = now_us();
            verify(&t, c);
            st.us_verify += now_us() - t3;
            verified = 1;
        } else {
            st.deferred++;
        }
        for (int i = 0; readers && i < n_readers; i++) {
            int status;
            if (reader_pids[i] <= 0)
                continue;
            kill(reader_pids[i], SIGKILL);
            waitpid(reader_pids[i], &status, 0);
            st.reader_runs++;
            if (WIFEXITED(status))
                violation(&t, c, "a reader exited with status %d (see its message above)", WEXITSTATUS(status));
        }
        char drain[512];
        ssize_t got;
        while (readers && (got = read(reader_pipe[0], drain, sizeof drain)) > 0)
            st.reader_checks += (uint64_t)got;
        st.cycles++;
        stuck = t.lo > lo_before || in_open ? 0 : stuck + 1;
        if (t.cycle_failed)
            st.failed++;
        if (verbose)
            printf("cycle %llu: kill %lld us after the child's %s: %s%s%s, state %lld%s%s\n", (unsigned long long)c,
                   (long long)delay, in_open ? "start" : "open", where, walreset ? " (log reset in progress)" : "",
                   rwhere, (long long)t.lo, verified ? "" : " (check deferred)", t.cycle_failed ? " FAILED" : "");
        if (t.cycle_failed) {
            fprintf(stderr, "store kept in %s; going on with a fresh store\n", t.dir);
            t.generation++;
            fresh_store(&t, parent);
            rm_tree(t.dir);
        } else if (verified && t.hwm > HWM_LIMIT) {
            if (verbose)
                printf("  high-water mark %llu pages: next cycle on a fresh store\n", (unsigned long long)t.hwm);
            rm_tree(t.dir);
            t.generation++;
            fresh_store(&t, parent);
        }
        fflush(stdout);
    }
    int64_t elapsed = now_us() - t_start;
    printf("cycles: %llu (checked %llu times, %llu checks deferred to the next cycle), %.1f s, on %d store%s\n",
           (unsigned long long)st.cycles, (unsigned long long)st.verified, (unsigned long long)st.deferred,
           (double)elapsed / 1e6, t.generation + 1, t.generation ? "s" : "");
    printf("time: %.1f s in work children (their open+read took %.1f ms on average), %.1f s in recovery "
           "children, %.1f s checking (open %.1f, cairn_check %.1f, reading %.1f, model %.1f, close %.1f)\n",
           st.us_work / 1e6, st.n_open_seen ? st.us_open_seen / 1e3 / st.n_open_seen : 0.0, st.us_recovery / 1e6,
           st.us_verify / 1e6, st.us_v_open / 1e6, st.us_v_check / 1e6, st.us_v_read / 1e6, st.us_v_model / 1e6,
           st.us_v_close / 1e6);
    printf("acknowledged transactions: %llu\n", (unsigned long long)st.acks);
    printf("kills: %llu in commit, %llu in cairn_checkpoint, %llu in open while recovering, %llu in open "
           "(nothing to recover), %llu in or between transactions; recovery children: %llu, %llu killed in "
           "recovery, %llu after it; %llu kills left a log reset half done (wal.tmp)\n",
           (unsigned long long)st.k_commit, (unsigned long long)st.k_ckpt, (unsigned long long)st.k_open_recovery,
           (unsigned long long)st.k_open, (unsigned long long)st.k_body, (unsigned long long)st.recovery_children,
           (unsigned long long)st.k_recovery, (unsigned long long)st.k_recovery_after,
           (unsigned long long)st.k_walreset);
    printf("background checkpointing: %llu cycles with a small checkpoint_bytes; %llu checkpoints by the "
           "flushers of the children\n",
           (unsigned long long)st.bg_cycles, (unsigned long long)st.bg_ckpts);
    printf("readers: %llu runs of a read-only handle beside the cycles, killed at their end; %llu clean "
           "checks of their snapshots\n",
           (unsigned long long)st.reader_runs, (unsigned long long)st.reader_checks);
    if (n_readers && st.reader_runs > 4 && st.reader_checks == 0) {
        printf("the readers never completed a check: they tested nothing\n");
        st.violations++;
    }
    printf("violations: %llu\n", (unsigned long long)st.violations);
    printf("%llu passed, %llu failed\n", (unsigned long long)(st.cycles - st.failed), (unsigned long long)st.failed);
    model_free(&t.exp);
    if (st.violations == 0 && !keep) {
        rm_tree(t.dir);
        if (!dir_arg)
            rmdir(parent);
    } else if (st.violations) {
        fprintf(stderr, "failing stores kept under %s (seed %llu)\n", parent, (unsigned long long)run_seed);
    }
    free(t.dir);
    free(parent);
    return st.violations ? 1 : 0;
}
