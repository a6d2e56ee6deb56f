/*
 * harness.c - simulated power loss: every sync point of every workload,
 * several damage patterns each, then recovery and the invariants.
 *
 *   powerloss [--quick] [-j N] [--seeds P] [--seed S] [--keep] [workload...]
 *   powerloss [--quick] --one WORKLOAD K SEED     one crash state, verbose, kept
 *   powerloss --list
 *
 * First a self-test of the shim (a fixed script whose files after each
 * crash are known; see selftest()).  Then, for each workload:
 *   1. (workloads "recover", "recover2") prepare a base store: run its
 *      first transactions and exit without closing, so the base holds
 *      them in its log only ("recover2": under the shim, stopped by a power
 *      loss at its end, so the log is torn);
 *   2. a counting run: the workload, start to finish, under the shim
 *      (shim.c, LD_PRELOAD) in a copy of the base, which counts S sync
 *      points; its final state is verified like any other;
 *   3. for k = 1..S and P damage patterns (seed 0: every unsynced write
 *      dropped; seed 1: all kept; then random ones): the workload in a
 *      fresh copy of the base with CAIRN_PL_CRASH_AT=k.  The shim stops it
 *      at sync point k as a power loss would (see shim.c).  If nothing was
 *      unsynced at that point every pattern gives the same files, so the
 *      other patterns are skipped for that k.
 *   4. after each crash, in a process without the shim: cairn_open
 *      (recovery), then the invariants:
 *        - cairn_check() returns CAIRN_OK;
 *        - the store holds exactly the state after some transaction n (the
 *          model checks every byte of it: no part of a transaction), with
 *          lo <= n <= hi, where lo is the last transaction the workload
 *          reported durable before the crash (under CAIRN_SYNC_FULL: whose
 *          cairn_txn_commit returned CAIRN_OK; under CAIRN_SYNC_OFF: covered
 *          by a cairn_checkpoint or cairn_close that returned CAIRN_OK;
 *          always: recovered by a cairn_open that returned CAIRN_OK) and
 *          hi the last one it attempted;
 *        - cairn_check counts exactly the live objects of state n;
 *        - the store goes on: transaction n+1 commits; the process exits
 *          without closing; the next open (replaying n+1 from the log) and
 *          a clean close and reopen after it both find exactly state n+1,
 *          cairn_check clean, the live objects of n+1.
 *      Any failure is a violation; the line printed with it reproduces it.
 *
 * The workload reports to the harness through an ack file outside the
 * watched directory, appended before (attempt) and after (ack, durable)
 * each step; the simulated power loss does not touch it.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "workloads.h"

#ifndef PL_SHIM_PATH
#define PL_SHIM_PATH ""
#endif

#define CRASH_EXIT 99
#define CHILD_TIMEOUT_S 120

static int quick, jobs = 2, keep, n_seeds;
static uint64_t base_seed = 0x5EED;
static const char *shim_path = PL_SHIM_PATH;
static char workdir[PATH_MAX];
static char self_exe[PATH_MAX];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "powerloss: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

/* ---- files ---- */

static void mkdir_p(const char *p)
{
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        die("mkdir %s: %s", p, strerror(errno));
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void rm_rf(const char *p)
{
    nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void copy_file(const char *src, const char *dst)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        die("open %s: %s", src, strerror(errno));
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0)
        die("create %s: %s", dst, strerror(errno));
    static char buf[1 << 16];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("read %s: %s", src, strerror(errno));
        if (n == 0)
            break;
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                die("write %s: %s", dst, strerror(errno));
            done += w;
        }
    }
    close(in);
    close(out);
}

/* Copy a store directory: regular files and subdirectories (not LMDB's
 * lock files, which LMDB rebuilds). */
static void copy_dir(const char *src, const char *dst)
{
    mkdir_p(dst);
    DIR *d = opendir(src);
    if (!d)
        die("opendir %s: %s", src, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "lock.mdb") == 0)
            continue;
        char a[PATH_MAX], b[PATH_MAX];
        snprintf(a, sizeof a, "%s/%s", src, e->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
        struct stat st;
        if (lstat(a, &st) != 0)
            continue;
        if (S_ISREG(st.st_mode))
            copy_file(a, b);
        else if (S_ISDIR(st.st_mode))
            copy_dir(a, b);
    }
    closedir(d);
}

static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, got = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (got == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = 0;
    if (len)
        *len = got;
    return buf;
}

/* The last `lines` lines of a text file, indented, into out. */
static void tail_of(const char *path, int lines, char *out, size_t outlen)
{
    out[0] = 0;
    size_t len;
    char *t = slurp(path, &len);
    if (!t)
        return;
    while (len && t[len - 1] == '\n')
        t[--len] = 0;
    char *p = t + len;
    int seen = 0;
    while (p > t && seen < lines) {
        p--;
        if (*p == '\n')
            seen++;
    }
    if (*p == '\n')
        p++;
    size_t o = 0;
    for (char *line = strtok(p, "\n"); line && o + 8 < outlen; line = strtok(NULL, "\n"))
        o += (size_t)snprintf(out + o, outlen - o, "      %s\n", line);
    free(t);
}

/* ---- acks ---- */

struct acks {
    int64_t durable;  /* last transaction reported durable, -1 none */
    int64_t attempted;
    int64_t acked;
    int done;
};

static void read_acks(const char *path, struct acks *a)
{
    a->durable = a->attempted = a->acked = -1;
    a->done = 0;
    size_t len;
    char *buf = slurp(path, &len);
    if (!buf)
        return;
    for (size_t at = 0; at + sizeof(struct msg) <= len; at += sizeof(struct msg)) {
        struct msg m;
        memcpy(&m, buf + at, sizeof m);
        if (m.kind == MSG_ATTEMPT && m.txn > a->attempted)
            a->attempted = m.txn;
        else if (m.kind == MSG_ACK && m.txn > a->acked)
            a->acked = m.txn;
        else if (m.kind == MSG_DURABLE && m.txn > a->durable)
            a->durable = m.txn;
        else if (m.kind == MSG_DONE)
            a->done = 1;
    }
    free(buf);
}

/* ---- running a workload process ---- */

/* Run "powerloss run|prepare WL DIR ACK [quick]" with the environment
 * given (NULL entries skipped); returns the wait status. */
static int run_workload(const struct workload *w, const char *mode, const char *dir, const char *ack,
                        const char *log, int preload, long crash_at, uint64_t seed, const char *report,
                        const char *count)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        char buf[64];
        if (preload) {
            const char *old = getenv("LD_PRELOAD");
            char *pre;
            if (asprintf(&pre, "%s%s%s", shim_path, old && *old ? ":" : "", old && *old ? old : "") < 0)
                _exit(95);
            setenv("LD_PRELOAD", pre, 1);
#ifdef __SANITIZE_ADDRESS__
            /* The shim comes before the ASan runtime in the search order
             * (its wrappers call on into ASan's interceptors). */
            const char *ao = getenv("ASAN_OPTIONS");
            char *nao;
            if (asprintf(&nao, "%s%sverify_asan_link_order=0", ao && *ao ? ao : "", ao && *ao ? ":" : "") < 0)
                _exit(95);
            setenv("ASAN_OPTIONS", nao, 1);
#endif
            setenv("CAIRN_PL_DIR", dir, 1);
            if (crash_at > 0) {
                snprintf(buf, sizeof buf, "%ld", crash_at);
                setenv("CAIRN_PL_CRASH_AT", buf, 1);
            } else {
                unsetenv("CAIRN_PL_CRASH_AT");
            }
            snprintf(buf, sizeof buf, "%llu", (unsigned long long)seed);
            setenv("CAIRN_PL_SEED", buf, 1);
            if (report)
                setenv("CAIRN_PL_REPORT", report, 1);
            if (count)
                setenv("CAIRN_PL_COUNT", count, 1);
        } else {
            unsetenv("CAIRN_PL_DIR");
        }
        alarm(CHILD_TIMEOUT_S); /* survives execve */
        char *argv[] = {"powerloss", (char *)mode, (char *)w->name, (char *)dir, (char *)ack,
                        quick ? "quick" : "full", NULL};
        execv(self_exe, argv);
        _exit(96);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            die("waitpid: %s", strerror(errno));
    return status;
}

static void describe_status(int status, char *out, size_t len)
{
    if (WIFEXITED(status))
        snprintf(out, len, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, len, "signal %d%s", WTERMSIG(status), WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
    else
        snprintf(out, len, "status %#x", status);
}

/* ---- verification (in a process without the shim) ---- */

#define VFAIL(...)                                                                                                \
    do {                                                                                                          \
        snprintf(err, errlen, __VA_ARGS__);                                                                       \
        if (s)                                                                                                    \
            cairn_close(s);                                                                                       \
        return -1;                                                                                                \
    } while (0)

static int check_store(cairn_store *s, const char *when, char *err, size_t errlen, cairn_check_report *r)
{
    int rc = cairn_check(s, r);
    if (rc) {
        snprintf(err, errlen, "cairn_check %s: %d (%s): %llu problems, first: %s", when, rc, cairn_strerror(rc),
                 (unsigned long long)r->problems, r->first_problem);
        return -1;
    }
    return 0;
}

/* Phase 1, in a child process: recovery and the state after the crash,
 * then transaction n+1, committed, and an exit without cairn_close (so
 * n+1 is in the recovered store's log only). */
static int verify_first(const struct workload *w, const char *dir, int64_t lo, int64_t hi, int64_t *n_out,
                        char *err, size_t errlen)
{
    const struct model *m = w->m;
    cairn_options o;
    workload_options(w, &o);
    cairn_store *s = NULL;
    int rc = cairn_open(dir, &o, &s);
    if (rc) {
        snprintf(err, errlen, "cairn_open after the crash: %d (%s)", rc, cairn_strerror(rc));
        return -1;
    }
    cairn_check_report r;
    if (check_store(s, "after recovery", err, errlen, &r)) {
        cairn_close(s);
        return -1;
    }
    rc = m->setup(s);
    if (rc)
        VFAIL("type registration after recovery: %d (%s) %s", rc, cairn_strerror(rc), cairn_errmsg(s));
    int64_t n;
    char merr[512];
    if (m->verify(s, lo, hi, &n, merr, sizeof merr))
        VFAIL("%s", merr);
    *n_out = n;
    if (r.objects != m->objects(n))
        VFAIL("state %lld: cairn_check counts %llu live objects, the state has %llu", (long long)n,
              (unsigned long long)r.objects, (unsigned long long)m->objects(n));
    rc = m->txn(s, n + 1, merr, sizeof merr);
    if (rc)
        VFAIL("state %lld: txn %lld after recovery: %d (%s) %s %s", (long long)n, (long long)(n + 1), rc,
              cairn_strerror(rc), cairn_errmsg(s), rc == -1 ? merr : "");
    return 0; /* the caller exits without closing */
}

/* Phase 2: the store must hold exactly state n+1, through a clean close
 * and reopen as well. */
static int verify_second(const struct workload *w, const char *dir, int64_t n, char *err, size_t errlen)
{
    const struct model *m = w->m;
    cairn_options o;
    workload_options(w, &o);
    for (int round = 0; round < 2; round++) {
        const char *when = round ? "after a clean close and reopen" : "after txn n+1 and a crash";
        cairn_store *s = NULL;
        int rc = cairn_open(dir, &o, &s);
        if (rc) {
            snprintf(err, errlen, "state %lld: cairn_open %s: %d (%s)", (long long)n, when, rc, cairn_strerror(rc));
            return -1;
        }
        cairn_check_report r;
        char merr[512];
        if (check_store(s, when, merr, sizeof merr, &r))
            VFAIL("state %lld: %s", (long long)n, merr);
        rc = m->setup(s);
        if (rc)
            VFAIL("type registration %s: %d (%s)", when, rc, cairn_strerror(rc));
        int64_t n2;
        if (m->verify(s, n + 1, n + 1, &n2, merr, sizeof merr))
            VFAIL("going on from state %lld, %s: %s", (long long)n, when, merr);
        if (r.objects != m->objects(n2))
            VFAIL("state %lld: cairn_check counts %llu live objects, the state has %llu", (long long)n2,
                  (unsigned long long)r.objects, (unsigned long long)m->objects(n2));
        rc = cairn_close(s);
        if (rc) {
            snprintf(err, errlen, "state %lld: cairn_close %s: %d (%s)", (long long)n2, when, rc, cairn_strerror(rc));
            return -1;
        }
    }
    return 0;
}

static int verify_store(const struct workload *w, const char *dir, const char *msgfile, int64_t lo, int64_t hi,
                        int64_t *n_out, char *err, size_t errlen)
{
    *n_out = -2;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        alarm(CHILD_TIMEOUT_S);
        char e[2048] = "";
        int64_t n = -2;
        int rc = verify_first(w, dir, lo, hi, &n, e, sizeof e);
        FILE *f = fopen(msgfile, "w");
        if (f) {
            fprintf(f, "%lld\n%s\n", (long long)n, e);
            fclose(f);
        }
        _exit(rc ? 1 : 0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            die("waitpid: %s", strerror(errno));
    char *t = slurp(msgfile, NULL);
    long long n = -2;
    if (t)
        sscanf(t, "%lld", &n);
    *n_out = n;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFEXITED(status) && WEXITSTATUS(status) == 1 && t) {
            char *nl = strchr(t, '\n');
            snprintf(err, errlen, "%s", nl ? nl + 1 : t);
            size_t l = strlen(err);
            while (l && err[l - 1] == '\n')
                err[--l] = 0;
        } else {
            char st[64];
            describe_status(status, st, sizeof st);
            snprintf(err, errlen, "the verifier died (%s) opening or checking the store after the crash "
                                  "(see verify.log)", st);
        }
        free(t);
        return -1;
    }
    free(t);
    return verify_second(w, dir, n, err, errlen);
}

/* ---- one crash state (in a worker process) ---- */

struct job {
    const struct workload *w;
    long k;        /* 0: counting run, no crash */
    uint64_t seed;
    pid_t pid;
    char dir[PATH_MAX];
    /* results */
    int failed, crashed;
    long pending; /* unsynced operations at the crash, -1 unknown */
    long count;   /* counting run: sync points */
    int64_t n, lo, hi;
    char msg[2048];
};

struct wstate {
    const struct workload *w;
    char base[PATH_MAX];
    int64_t base_lo, base_hi; /* the base store holds a state in [base_lo, base_hi] */
};

static void job_result_write(const struct job *j)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/result", j->dir);
    FILE *f = fopen(path, "w");
    if (!f)
        _exit(94);
    fprintf(f, "%d %d %ld %ld %lld %lld %lld\n%s\n", j->failed, j->crashed, j->pending, j->count, (long long)j->n,
            (long long)j->lo, (long long)j->hi, j->msg);
    fclose(f);
}

static void job_result_read(struct job *j)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/result", j->dir);
    char *t = slurp(path, NULL);
    long long n, lo, hi;
    if (!t || sscanf(t, "%d %d %ld %ld %lld %lld %lld", &j->failed, &j->crashed, &j->pending, &j->count, &n, &lo,
                     &hi) != 7) {
        j->failed = 1;
        snprintf(j->msg, sizeof j->msg, "worker left no result");
        free(t);
        return;
    }
    j->n = n, j->lo = lo, j->hi = hi;
    char *nl = strchr(t, '\n');
    snprintf(j->msg, sizeof j->msg, "%s", nl ? nl + 1 : "");
    size_t l = strlen(j->msg);
    while (l && j->msg[l - 1] == '\n')
        j->msg[--l] = 0;
    free(t);
}

/* The body of a worker: run the workload to its crash, then verify. */
static void job_run(const struct wstate *ws, struct job *j)
{
    char store[PATH_MAX], ack[PATH_MAX], log[PATH_MAX], report[PATH_MAX], count[PATH_MAX], real[PATH_MAX];
    snprintf(store, sizeof store, "%s/store", j->dir);
    snprintf(ack, sizeof ack, "%s/ack", j->dir);
    snprintf(log, sizeof log, "%s/workload.log", j->dir);
    snprintf(report, sizeof report, "%s/report", j->dir);
    snprintf(count, sizeof count, "%s/count", j->dir);
    mkdir_p(j->dir);
    copy_dir(ws->base, store);
    if (!realpath(store, real))
        die("realpath %s: %s", store, strerror(errno));
    j->pending = -1;
    j->count = -1;
    int status = run_workload(j->w, "run", real, ack, log, 1, j->k, j->seed, report, j->k ? NULL : count);
    if (!j->k) {
        char *c = slurp(count, NULL);
        j->count = c ? atol(c) : -1;
        free(c);
    }
    struct acks a;
    read_acks(ack, &a);
    j->lo = a.durable > ws->base_lo ? a.durable : ws->base_lo;
    j->hi = a.attempted > ws->base_hi ? a.attempted : ws->base_hi;
    if (j->hi < j->lo)
        j->hi = j->lo;
    if (WIFEXITED(status) && WEXITSTATUS(status) == CRASH_EXIT) {
        j->crashed = 1;
        char *r = slurp(report, NULL);
        char *p = r ? strstr(r, "\npending ") : NULL;
        if (p)
            j->pending = atol(p + 9);
        free(r);
    } else if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        char st[64], t[1024];
        describe_status(status, st, sizeof st);
        tail_of(log, 6, t, sizeof t);
        j->failed = 1;
        snprintf(j->msg, sizeof j->msg, "the workload process failed before the crash point: %s\n%s", st, t);
        return;
    } else if (!a.done) {
        j->failed = 1;
        snprintf(j->msg, sizeof j->msg, "the workload exited 0 without finishing");
        return;
    }
    if (!j->k) {
        if (j->count <= 0) {
            j->failed = 1;
            snprintf(j->msg, sizeof j->msg, "the counting run saw no sync point (is the shim loaded? %s)",
                     shim_path);
            return;
        }
    }
    if (keep) {
        char crashed[PATH_MAX + 16];
        snprintf(crashed, sizeof crashed, "%s/crashed", j->dir);
        copy_dir(store, crashed);
    }
    /* Verify with stderr (cairn's fault messages) in a file. */
    char vlog[PATH_MAX + 16];
    snprintf(vlog, sizeof vlog, "%s/verify.log", j->dir);
    int fd = open(vlog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        dup2(fd, 2);
        close(fd);
    }
    alarm(CHILD_TIMEOUT_S);
    char vmsg[PATH_MAX + 16];
    snprintf(vmsg, sizeof vmsg, "%s/verify.msg", j->dir);
    if (verify_store(j->w, real, vmsg, j->lo, j->hi, &j->n, j->msg, sizeof j->msg))
        j->failed = 1;
    alarm(0);
}

static pid_t job_start(const struct wstate *ws, struct job *j, int id)
{
    snprintf(j->dir, sizeof j->dir, "%s/%s/job%d", workdir, j->w->name, id);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        job_run(ws, j);
        job_result_write(j);
        _exit(0);
    }
    j->pid = pid;
    return pid;
}

static void job_finish(struct job *j, int status)
{
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        job_result_read(j);
    } else {
        char st[64], t[1200];
        describe_status(status, st, sizeof st);
        char vlog[PATH_MAX + 16];
        snprintf(vlog, sizeof vlog, "%s/verify.log", j->dir);
        tail_of(vlog, 8, t, sizeof t);
        j->failed = 1;
        snprintf(j->msg, sizeof j->msg, "the verifier died (%s) after the crash; its stderr:\n%s", st, t);
    }
}

static void print_repro(const struct job *j)
{
    printf("    reproduce: %s%s --one %s %ld %llu%s\n", self_exe, quick ? " --quick" : "", j->w->name, j->k,
           (unsigned long long)j->seed,
           j->w->timing_dependent ? "   (timing-dependent workload: the crash may land elsewhere)" : "");
}

static void print_report(const struct job *j)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/report", j->dir);
    char t[4096];
    tail_of(path, 40, t, sizeof t);
    if (t[0])
        printf("    damage:\n%s", t);
}

/* Run the jobs, jobs at a time. */
static void run_jobs(const struct wstate *ws, struct job *js, size_t n, int *id)
{
    size_t next = 0, running = 0;
    while (next < n || running) {
        while (running < (size_t)jobs && next < n) {
            job_start(ws, &js[next], (*id)++);
            next++;
            running++;
        }
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            die("waitpid: %s", strerror(errno));
        }
        for (size_t i = 0; i < next; i++) {
            if (js[i].pid == pid) {
                js[i].pid = 0;
                job_finish(&js[i], status);
                if (!js[i].failed && !keep)
                    rm_rf(js[i].dir);
                running--;
                break;
            }
        }
    }
}

static uint64_t seed_of(int p)
{
    return p < 2 ? (uint64_t)p : base_seed + (uint64_t)p;
}

static void prepare_base(struct wstate *ws)
{
    const struct workload *w = ws->w;
    snprintf(ws->base, sizeof ws->base, "%s/%s/base", workdir, w->name);
    char wd[PATH_MAX];
    snprintf(wd, sizeof wd, "%s/%s", workdir, w->name);
    mkdir_p(wd);
    mkdir_p(ws->base);
    ws->base_lo = ws->base_hi = -1;
    if (!w->base_txns)
        return;
    char ack[PATH_MAX + 16], log[PATH_MAX + 16], real[PATH_MAX], report[PATH_MAX + 16];
    snprintf(ack, sizeof ack, "%s/base.ack", wd);
    snprintf(log, sizeof log, "%s/base.log", wd);
    snprintf(report, sizeof report, "%s/base.report", wd);
    if (!realpath(ws->base, real))
        die("realpath: %s", strerror(errno));
    struct acks a;
    if (w->base_crash) {
        /* Count the sync points of the preparation, then stop it at the
         * last one (its final sync()) with a random damage pattern. */
        char cdir[PATH_MAX + 16], creal[PATH_MAX], cack[PATH_MAX + 16], ccount[PATH_MAX + 16];
        snprintf(cdir, sizeof cdir, "%s/base-count", wd);
        snprintf(cack, sizeof cack, "%s/base-count.ack", wd);
        snprintf(ccount, sizeof ccount, "%s/base-count.count", wd);
        mkdir_p(cdir);
        if (!realpath(cdir, creal))
            die("realpath: %s", strerror(errno));
        int status = run_workload(w, "prepare", creal, cack, log, 1, 0, 0, NULL, ccount);
        char *c = slurp(ccount, NULL);
        long sp = c ? atol(c) : 0;
        free(c);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || sp <= 0)
            die("counting the preparation of %s failed (see %s)", w->name, log);
        rm_rf(cdir);
        setenv("CAIRN_PL_TAIL", "1", 1); /* a torn log, not an empty one */
        status = run_workload(w, "prepare", real, ack, log, 1, sp, base_seed + 1, report, NULL);
        unsetenv("CAIRN_PL_TAIL");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != CRASH_EXIT)
            die("the power loss preparing the base store of %s did not happen (see %s)", w->name, log);
        read_acks(ack, &a);
        if (a.attempted != w->base_txns || a.durable < 0)
            die("the base store of %s: attempted %lld, durable %lld", w->name, (long long)a.attempted,
                (long long)a.durable);
        ws->base_lo = a.durable;
        ws->base_hi = a.attempted;
        return;
    }
    int status = run_workload(w, "prepare", real, ack, log, 0, 0, 0, NULL, NULL);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("preparing the base store of %s failed (see %s)", w->name, log);
    read_acks(ack, &a);
    if (a.durable != w->base_txns)
        die("the base store of %s holds txn %lld, want %lld", w->name, (long long)a.durable,
            (long long)w->base_txns);
    ws->base_lo = ws->base_hi = a.durable;
    struct stat st;
    char wal[PATH_MAX + 8];
    snprintf(wal, sizeof wal, "%s/wal", ws->base);
    if (stat(wal, &st) != 0 || st.st_size <= 64)
        die("the base store of %s has an empty log: nothing to recover", w->name);
}

struct totals {
    long passed, failed;
};

static void run_workload_suite(const struct workload *w, struct totals *tot)
{
    double t0 = now_s();
    struct wstate ws = {.w = w};
    prepare_base(&ws);
    int id = 0;

    /* The counting run is verified like a crash state (with no crash). */
    struct job count = {.w = w, .k = 0, .seed = 0};
    run_jobs(&ws, &count, 1, &id);
    if (count.failed) {
        printf("VIOLATION [%s, counting run, no crash] state range [%lld, %lld]: %s\n", w->name,
               (long long)count.lo, (long long)count.hi, count.msg);
        print_repro(&count);
        printf("    files kept in %s\n", count.dir);
        tot->failed++;
    }
    long S = count.count;
    if (S <= 0) {
        printf("%-8s no sync points counted: cannot go on\n", w->name);
        return;
    }

    /* Pattern 0 at every sync point, then the others where something was unsynced. */
    struct job *js = calloc((size_t)S * (size_t)n_seeds, sizeof *js);
    size_t nj = 0;
    for (long k = 1; k <= S; k++)
        js[nj++] = (struct job){.w = w, .k = k, .seed = seed_of(0)};
    run_jobs(&ws, js, nj, &id);
    size_t first = nj;
    long nothing_unsynced = 0, no_crash = 0;
    for (size_t i = 0; i < first; i++) {
        if (!js[i].crashed && !js[i].failed)
            no_crash++;
        if (js[i].pending == 0) {
            nothing_unsynced++;
            continue;
        }
        if (!js[i].crashed)
            continue;
        for (int p = 1; p < n_seeds; p++)
            js[nj++] = (struct job){.w = w, .k = js[i].k, .seed = seed_of(p)};
    }
    run_jobs(&ws, js + first, nj - first, &id);

    long fails = 0;
    for (size_t i = 0; i < nj; i++) {
        if (!js[i].failed)
            continue;
        fails++;
        printf("VIOLATION [%s k=%ld seed=%llu] state range [%lld, %lld]: %s\n", w->name, js[i].k,
               (unsigned long long)js[i].seed, (long long)js[i].lo, (long long)js[i].hi, js[i].msg);
        print_repro(&js[i]);
        print_report(&js[i]);
        printf("    files kept in %s\n", js[i].dir);
    }
    tot->failed += fails;
    tot->passed += (long)nj - fails;
    printf("%-8s %4ld sync points, %5zu crash states (%ld with nothing unsynced%s), %ld violations  [%.1f s]\n",
           w->name, S, nj, nothing_unsynced, no_crash ? ", some ran to the end: timing" : "", fails, now_s() - t0);
    if (no_crash)
        printf("         (%ld runs ended before their crash point: the sync points of this workload depend on "
               "thread timing)\n",
               no_crash);
    fflush(stdout);
    free(js);
}

/* ---- a self-test of the shim's model ----
 *
 * A fixed script of writes, syncs and renames, stopped at each of its sync
 * points with every unsynced operation dropped (seed 0) and kept (seed 1);
 * the files left must be exactly what the model says.  Run before the
 * workloads: a shim that loses nothing would make every check vacuous. */

static void st_fill(char *b, char c, size_t n)
{
    memset(b, c, n);
}

static void st_write(int fd, const char *b, size_t n, off_t off)
{
    if (pwrite(fd, b, n, off) != (ssize_t)n)
        _exit(70);
}

/* 0 if dir/name holds what spec says ("<count><char> ...", "" = absent),
 * else 1 and why. */
static int st_differs(const char *dir, const char *name, const char *spec, char *why, size_t len)
{
    char want[16384];
    size_t wl = 0;
    for (const char *p = spec; *p;) {
        char *e;
        long n = strtol(p, &e, 10);
        memset(want + wl, *e, (size_t)n);
        wl += (size_t)n;
        p = e + 1;
        while (*p == ' ')
            p++;
    }
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t got_len = 0;
    char *got = slurp(path, &got_len);
    int bad = spec[0] ? !got || got_len != wl || memcmp(got, want, wl) != 0 : got != NULL;
    if (bad)
        snprintf(why, len, "%s: %s (%zu bytes), want %s (%zu bytes)", name, got ? "exists" : "absent", got_len,
                 spec[0] ? spec : "absent", wl);
    free(got);
    return bad;
}

/* The script (in a child, under the shim). */
static void selftest_script(const char *dir)
{
    static char a[4096], b[8192], c[100], d[512];
    st_fill(a, 'A', sizeof a);
    st_fill(b, 'B', sizeof b);
    st_fill(c, 'C', sizeof c);
    st_fill(d, 'D', sizeof d);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    int f = openat(dfd, "f", O_RDWR | O_CREAT, 0644);
    if (dfd < 0 || f < 0)
        _exit(71);
    st_write(f, a, sizeof a, 0);
    if (fdatasync(f)) /* 1 */
        _exit(72);
    if (fsync(dfd)) /* 2: f exists */
        _exit(72);
    st_write(f, b, sizeof b, 2048); /* unsynced, extends f to 10240 */
    char path[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/f", dir);
    int dsync = open(path, O_WRONLY | O_DSYNC);
    if (dsync < 0)
        _exit(73);
    st_write(dsync, d, sizeof d, 0); /* 3: durable once done */
    int g = openat(dfd, "g", O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (g < 0 || write(g, c, sizeof c) != (ssize_t)sizeof c)
        _exit(74);
    if (fdatasync(g)) /* 4 */
        _exit(75);
    if (renameat(dfd, "g", dfd, "f")) /* replaces f, unsynced */
        _exit(76);
    if (ftruncate(g, 50)) /* unsynced */
        _exit(77);
    if (fsync(f)) /* 5: the old f inode (B and D) */
        _exit(78);
    if (fsync(dfd)) /* 6: the rename */
        _exit(79);
    /* A subdirectory, a file in it, and a rename out of it. */
    static char e[200];
    st_fill(e, 'E', sizeof e);
    if (mkdirat(dfd, "sub", 0755))
        _exit(80);
    int h = openat(dfd, "sub/h", O_RDWR | O_CREAT, 0644);
    if (h < 0 || write(h, e, sizeof e) != (ssize_t)sizeof e)
        _exit(81);
    if (fdatasync(h)) /* 7 */
        _exit(82);
    if (renameat(dfd, "sub/h", dfd, "h2"))
        _exit(83);
    if (fsync(dfd)) /* 8: the mkdir, the creation, the rename */
        _exit(84);
    if (unlinkat(dfd, "h2", 0) || unlinkat(dfd, "sub", AT_REMOVEDIR))
        _exit(85);
    if (fsync(dfd)) /* 9 */
        _exit(86);
    exit(0);
}

struct st_case {
    long k;
    uint64_t seed;
    const char *f;  /* runs: "<count><char>...", "" absent */
    const char *h2; /* the same for h2 */
    int sub;        /* 1: sub exists, empty; 2: sub holds h with 200 E */
};

static int selftest(void)
{
    static const struct st_case cases[] = {
        {1, 0, "", "", 0},              /* nothing durable: f's creation undone */
        {1, 1, "4096A", "", 0},         /* creation kept, A kept; g not created yet */
        {2, 0, "", "", 0},              /* A synced, but the creation of f is not: f absent */
        {2, 1, "4096A", "", 0},
        {3, 0, "4096A", "", 0},
        {3, 1, "2048A 8192B", "", 0},
        {5, 0, "512D 3584A", "", 0},    /* B dropped, D durable, g's creation and the rename undone */
        {5, 1, "50C", "", 0},           /* everything kept: f is g's inode, truncated */
        {6, 0, "512D 1536A 8192B", "", 0},
        {6, 1, "50C", "", 0},
        {7, 0, "100C", "", 0},          /* the truncation of g (now f) was never synced */
        {7, 1, "50C", "", 2},
        {8, 0, "100C", "", 0},          /* h synced, but its name and sub's are not */
        {8, 1, "50C", "200E", 1},
        {9, 0, "100C", "200E", 1},      /* the unlink and the rmdir undone */
        {9, 1, "50C", "", 0},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct st_case *t = &cases[i];
        char dir[PATH_MAX], real[PATH_MAX], ack[PATH_MAX + 16], log[PATH_MAX + 16], cnt[PATH_MAX + 16];
        snprintf(dir, sizeof dir, "%s/selftest%zu", workdir, i);
        mkdir_p(dir);
        if (!realpath(dir, real))
            die("realpath: %s", strerror(errno));
        snprintf(ack, sizeof ack, "%s.ack", dir);
        snprintf(log, sizeof log, "%s.log", dir);
        snprintf(cnt, sizeof cnt, "%s.count", dir);
        int status = run_workload(&workloads[0], "selftest", real, ack, log, 1, t->k, t->seed, NULL, cnt);
        int ok = WIFEXITED(status) && WEXITSTATUS(status) == CRASH_EXIT;
        char why[256] = "";
        if (!ok)
            snprintf(why, sizeof why, "exit status %#x, want a crash", status);
        else if (st_differs(real, "f", t->f, why, sizeof why) || st_differs(real, "h2", t->h2, why, sizeof why) ||
                 st_differs(real, "g", "", why, sizeof why))
            ;
        else if (t->sub == 2 ? st_differs(real, "sub/h", "200E", why, sizeof why)
                             : st_differs(real, "sub/h", "", why, sizeof why))
            ;
        else {
            char sp[PATH_MAX + 8];
            snprintf(sp, sizeof sp, "%s/sub", real);
            if ((access(sp, F_OK) == 0) != (t->sub != 0))
                snprintf(why, sizeof why, "sub %s", t->sub ? "missing" : "exists");
        }
        if (why[0]) {
            printf("shim self-test FAILED at sync point %ld, seed %llu: %s\n", t->k, (unsigned long long)t->seed, why);
            bad++;
        }
        DIR *d = opendir(real);
        struct dirent *e;
        while (d && (e = readdir(d)))
            if (strncmp(e->d_name, ".pl-hidden", 10) == 0) {
                printf("shim self-test FAILED at sync point %ld, seed %llu: %s left behind\n", t->k,
                       (unsigned long long)t->seed, e->d_name);
                bad++;
            }
        if (d)
            closedir(d);
    }
    /* And a run to the end counts the nine sync points. */
    char dir[PATH_MAX], real[PATH_MAX], ack[PATH_MAX + 16], log[PATH_MAX + 16], cnt[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/selftest-count", workdir);
    mkdir_p(dir);
    if (!realpath(dir, real))
        die("realpath: %s", strerror(errno));
    snprintf(ack, sizeof ack, "%s.ack", dir);
    snprintf(log, sizeof log, "%s.log", dir);
    snprintf(cnt, sizeof cnt, "%s.count", dir);
    int status = run_workload(&workloads[0], "selftest", real, ack, log, 1, 0, 0, NULL, cnt);
    char *c = slurp(cnt, NULL);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !c || atol(c) != 9) {
        printf("shim self-test FAILED: the script counted %s sync points, want 9\n", c ? c : "no");
        bad++;
    }
    free(c);
    return bad;
}

static void usage(void)
{
    fprintf(stderr, "usage: powerloss [--quick] [-j N] [--seeds P] [--seed S] [--keep] [workload...]\n"
                    "       powerloss [--quick] --one WORKLOAD K SEED\n"
                    "       powerloss --list\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "selftest") == 0)
        selftest_script(argv[3]);
    if (argc >= 6 && (strcmp(argv[1], "run") == 0 || strcmp(argv[1], "prepare") == 0)) {
        const struct workload *w = workload_find(argv[2]);
        if (!w)
            _exit(93);
        workload_main(w, argv[3], argv[4], strcmp(argv[5], "quick") == 0, strcmp(argv[1], "prepare") == 0);
    }
    if (!realpath("/proc/self/exe", self_exe))
        die("realpath /proc/self/exe: %s", strerror(errno));
    const char *e = getenv("CAIRN_PL_SHIM");
    if (e && *e)
        shim_path = e;
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    jobs = nproc > 0 ? (int)nproc : 2;
    const char *one = NULL;
    long one_k = 0;
    uint64_t one_seed = 0;
    const struct workload *selected[64];
    size_t nsel = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--quick") == 0)
            quick = 1;
        else if (strcmp(a, "--keep") == 0)
            keep = 1;
        else if (strcmp(a, "-j") == 0 && i + 1 < argc)
            jobs = atoi(argv[++i]);
        else if (strcmp(a, "--seeds") == 0 && i + 1 < argc)
            n_seeds = atoi(argv[++i]);
        else if (strcmp(a, "--seed") == 0 && i + 1 < argc)
            base_seed = strtoull(argv[++i], NULL, 0);
        else if (strcmp(a, "--shim") == 0 && i + 1 < argc)
            shim_path = argv[++i];
        else if (strcmp(a, "--one") == 0 && i + 3 < argc) {
            one = argv[++i];
            one_k = atol(argv[++i]);
            one_seed = strtoull(argv[++i], NULL, 0);
        } else if (strcmp(a, "--list") == 0) {
            for (size_t k = 0; k < n_workloads; k++)
                printf("%-8s %s\n", workloads[k].name, workloads[k].what);
            return 0;
        } else if (a[0] == '-') {
            usage();
        } else {
            const struct workload *w = workload_find(a);
            if (!w)
                die("no workload %s (try --list)", a);
            if (nsel < 64)
                selected[nsel++] = w;
        }
    }
    if (jobs < 1)
        jobs = 1;
    if (!n_seeds)
        n_seeds = quick ? 3 : 8;
    if (n_seeds < 1)
        n_seeds = 1;
    if (!shim_path[0] || access(shim_path, R_OK) != 0)
        die("the shim library is missing (%s); set CAIRN_PL_SHIM or --shim", shim_path);

    /* Work in memory if possible: the verifier's real fsyncs cost nothing
     * there, and the simulation does not depend on the file system. */
    const char *tmp = getenv("CAIRN_PL_WORKDIR");
    if (!tmp || !*tmp)
        tmp = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "%s/cairn-powerloss-XXXXXX", tmp);
    if (!mkdtemp(tmpl))
        die("mkdtemp %s: %s", tmpl, strerror(errno));
    if (!realpath(tmpl, workdir))
        die("realpath: %s", strerror(errno));

    if (one) {
        const struct workload *w = workload_find(one);
        if (!w)
            die("no workload %s", one);
        keep = 1;
        struct wstate ws = {.w = w};
        prepare_base(&ws);
        int id = 0;
        struct job j = {.w = w, .k = one_k, .seed = one_seed};
        run_jobs(&ws, &j, 1, &id);
        printf("%s k=%ld seed=%llu: %s; state range [%lld, %lld]; %s\n", w->name, one_k,
               (unsigned long long)one_seed, j.crashed ? "crashed" : "ran to the end", (long long)j.lo,
               (long long)j.hi, j.failed ? "VIOLATION" : "invariants hold");
        if (j.failed)
            printf("  %s\n", j.msg);
        else
            printf("  recovered state: txn %lld\n", (long long)j.n);
        print_report(&j);
        printf("  files: %s (crashed = the store as the power loss left it, store = after verification)\n", j.dir);
        return j.failed ? 1 : 0;
    }

    if (!nsel)
        for (size_t k = 0; k < n_workloads && k < 64; k++)
            selected[nsel++] = &workloads[k];
    printf("powerloss: %s mode, %d damage patterns per sync point, %d jobs, backend %s, work dir %s\n",
           quick ? "quick" : "full", n_seeds, jobs, getenv("CAIRN_FAULT_BACKEND") ? getenv("CAIRN_FAULT_BACKEND") : "auto",
           workdir);
    fflush(stdout);
    double t0 = now_s();
    struct totals tot = {0, 0};
    if (selftest()) {
        printf("the shim does not model power loss as it should: no point in going on (files in %s)\n", workdir);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    printf("shim self-test: passed\n");
    for (size_t k = 0; k < nsel; k++)
        run_workload_suite(selected[k], &tot);
    printf("%ld crash states in %.1f s%s\n", tot.passed + tot.failed, now_s() - t0,
           tot.failed ? " (the lines starting VIOLATION say how to reproduce each)" : "");
    if (!tot.failed && !keep)
        rm_rf(workdir);
    else
        printf("files kept in %s\n", workdir);
    printf("%ld passed, %ld failed\n", tot.passed, tot.failed);
    return tot.failed ? 1 : 0;
}
