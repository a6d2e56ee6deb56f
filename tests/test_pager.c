/*
 * test_pager.c - the fault path seen from outside: lazy loading, racing
 * faults, system calls on store memory, the contract violations that must
 * kill (write outside a transaction, foreign faults), fork(), corrupt
 * extents, the backend choice and the mprotect backend's mapping count.
 *
 * cmocka installs its own SIGSEGV/SIGBUS handlers around every test (and
 * cairn_open puts cairn's back, chaining to cmocka's), so a fault that is
 * meant to end a process would, in a forked child of the test process,
 * land in cmocka's handler and run the remaining tests in the child.
 * Such scenarios (a fault that kills, a fault-error callback that exits,
 * fork) therefore run in a fresh process: this binary re-executed with
 * "--child SCENARIO DIR [ARG]", without cmocka, so no test framework has
 * touched the signal dispositions.  Its stdout and stderr are captured;
 * sanitizers are told not to handle SIGSEGV/SIGBUS/SIGABRT there, so a
 * death is the kernel's default one.
 */
#define _GNU_SOURCE
#include "testutil.h"
#include "child.h"

#include "pager/layout.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ------------------------------------------------------------------ */
/* Shared helpers                                                      */
/* ------------------------------------------------------------------ */

/* The value of word w of page `page` of a test blob: never zero, and
 * different for every word of a page and every page (a well-mixed hash of
 * both, so a word from the wrong page or offset shows). */

/* An address no mapping covers; from a function so the compiler does not
 * reason about dereferencing a constant. */
__attribute__((noinline)) static uintptr_t bad_address(void)
{
    return 16;
}

static uint64_t pat(uint64_t page, uint64_t word)
{
    uint64_t x = ((page << 16) | word) * 0x9E3779B97F4A7C15ull;
    return (x ^ (x >> 29)) | 1;
}

/* The backend CAIRN_FAULT_BACKEND asks for; 0 if unset. */
static int env_backend(void)
{
    const char *e = getenv("CAIRN_FAULT_BACKEND");
    if (e && strcmp(e, "uffd") == 0)
        return CAIRN_BACKEND_UFFD;
    if (e && strcmp(e, "mprotect") == 0)
        return CAIRN_BACKEND_MPROTECT;
    return 0;
}

static uint64_t page_of(cairn_store *s, const void *addr)
{
    void *base;
    size_t len;
    if (cairn_range(s, &base, &len) != CAIRN_OK)
        abort();
    return ((uintptr_t)addr - (uintptr_t)base) / PAGE_BYTES;
}

static uint64_t ext_of_page(uint64_t n)
{
    return n / PAGES_PER_EXTENT;
}

/* Extent holding the descriptor of page n (layout.h). */
static uint64_t desc_ext_of_page(uint64_t n)
{
    return layout_desc_page(n) / PAGES_PER_EXTENT;
}

static cairn_stats stats(cairn_store *s)
{
    cairn_stats st;
    assert_cairn_ok(cairn_stats_get(s, &st));
    return st;
}

/* A store whose root "blob" is one byte object of npages pages, every
 * word of it pat(page-within-blob, word).  Returns the blob's first page
 * number in the store (for extent arithmetic) via *first_page. */
static void make_blob_store(const char *dir, uint64_t npages, const cairn_options *opt, uint64_t *first_page)
{
    cairn_options o;
    if (opt)
        o = *opt;
    else
        tu_options(&o);
    cairn_store *s;
    cairn_txn *t;
    uint64_t *blob;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc_bytes(t, npages * PAGE_BYTES, (void **)&blob));
    for (uint64_t pg = 0; pg < npages; pg++)
        for (uint64_t w = 0; w < PAGE_WORDS; w++)
            blob[pg * PAGE_WORDS + w] = pat(pg, w);
    assert_cairn_ok(cairn_root_set(t, "blob", blob));
    assert_cairn_ok(cairn_txn_commit(t));
    if (first_page)
        *first_page = page_of(s, blob);
    assert_cairn_ok(cairn_close(s));
}

/* Lines of /proc/self/maps: all of them, and (into *in_range) those of
 * mappings overlapping [lo, hi).  No stdio, no allocation. */
static long maps_lines(uintptr_t lo, uintptr_t hi, long *in_range)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    static char buf[1 << 16];
    static char line[512];
    size_t ll = 0;
    long lines = 0, inside = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (ll < sizeof line - 1)
                    line[ll++] = buf[i];
                continue;
            }
            line[ll] = 0;
            ll = 0;
            lines++;
            char *dash;
            uintptr_t start = strtoull(line, &dash, 16);
            uintptr_t end = *dash == '-' ? strtoull(dash + 1, NULL, 16) : 0;
            if (start < hi && end > lo)
                inside++;
        }
    }
    close(fd);
    *in_range = inside;
    return lines;
}

/* ---- running a scenario in a fresh process ---- */

struct child_result {
    int status;
    char out[16384];
    char err[16384];
};

/* One at a time; static so that a failing test leaks nothing. */
static struct child_result child_res;

/* environ, plus sanitizer options that leave SIGSEGV/SIGBUS/SIGABRT to
 * the kernel's default action (and skip leak checks at death). */
static char **child_env(void)
{
    static const char *extra = "handle_segv=0:handle_sigbus=0:handle_abort=0:detect_leaks=0";
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 3, sizeof *env);
    assert_non_null(env);
    size_t k = 0;
    int have_asan = 0, have_tsan = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "ASAN_OPTIONS=", 13) == 0) {
            assert_true(asprintf(&env[k++], "%s:%s", environ[i], extra) > 0);
            have_asan = 1;
        } else if (strncmp(environ[i], "TSAN_OPTIONS=", 13) == 0) {
            assert_true(asprintf(&env[k++], "%s:%s", environ[i], extra) > 0);
            have_tsan = 1;
        } else {
            env[k++] = strdup(environ[i]);
        }
    }
    if (!have_asan)
        assert_true(asprintf(&env[k++], "ASAN_OPTIONS=%s", extra) > 0);
    if (!have_tsan)
        assert_true(asprintf(&env[k++], "TSAN_OPTIONS=%s", extra) > 0);
    env[k] = NULL;
    return env;
}

static void free_env(char **env)
{
    for (size_t i = 0; env[i]; i++)
        free(env[i]);
    free(env);
}

static void run_child(struct child_result *r, const char *scenario, const char *dir, const char *arg)
{
    memset(r, 0, sizeof *r);
    char **env = child_env();
    int po[2], pe[2];
    assert_int_equal(pipe2(po, O_CLOEXEC), 0);
    assert_int_equal(pipe2(pe, O_CLOEXEC), 0);
    char *argv[] = {"test_pager", "--child", (char *)scenario, (char *)dir, (char *)(arg ? arg : ""), NULL};
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        execve("/proc/self/exe", argv, env);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    free_env(env);
    size_t no = 0, ne = 0;
    struct pollfd pf[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds) {
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            fail_msg("poll: %s", strerror(errno));
        }
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || !pf[i].revents)
                continue;
            char tmp[4096];
            ssize_t got = read(pf[i].fd, tmp, sizeof tmp);
            if (got <= 0) {
                close(pf[i].fd);
                pf[i].fd = -1;
                open_fds--;
                continue;
            }
            char *dst = i == 0 ? r->out : r->err;
            size_t *at = i == 0 ? &no : &ne;
            size_t room = sizeof r->out - 1 - *at;
            size_t take = (size_t)got < room ? (size_t)got : room;
            memcpy(dst + *at, tmp, take);
            *at += take;
        }
    }
    while (waitpid(pid, &r->status, 0) < 0)
        assert_int_equal(errno, EINTR);
}

static void describe_child(const struct child_result *r)
{
    if (WIFEXITED(r->status))
        print_message("child exited %d\n", WEXITSTATUS(r->status));
    else if (WIFSIGNALED(r->status))
        print_message("child killed by signal %d\n", WTERMSIG(r->status));
    print_message("child stdout:\n%s\nchild stderr:\n%s\n", r->out, r->err);
}

#define assert_child_signaled(r, sig)                                                                                  \
    do {                                                                                                               \
        if (!WIFSIGNALED((r)->status) || WTERMSIG((r)->status) != (sig)) {                                             \
            describe_child(r);                                                                                         \
            fail_msg("child did not die by signal %d", (sig));                                                         \
        }                                                                                                              \
    } while (0)

#define assert_child_exited(r, code)                                                                                   \
    do {                                                                                                               \
        if (!WIFEXITED((r)->status) || WEXITSTATUS((r)->status) != (code)) {                                           \
            describe_child(r);                                                                                         \
            fail_msg("child did not exit with %d", (code));                                                            \
        }                                                                                                              \
    } while (0)

#define assert_contains(hay, needle)                                                                                   \
    do {                                                                                                               \
        if (!strstr((hay), (needle)))                                                                                  \
            fail_msg("expected \"%s\" in:\n%s", (needle), (hay));                                                      \
    } while (0)

#define assert_not_contains(hay, needle)                                                                               \
    do {                                                                                                               \
        if (strstr((hay), (needle)))                                                                                   \
            fail_msg("did not expect \"%s\" in:\n%s", (needle), (hay));                                                \
    } while (0)

/* Value of "key=<hex>" in text, or fail. */
static uint64_t find_hex(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    if (!p)
        fail_msg("no \"%s\" in:\n%s", key, text);
    return strtoull(p + strlen(key), NULL, 16);
}

/* ------------------------------------------------------------------ */
/* Child side: runs without cmocka, reports through stdout/exit codes  */
/* ------------------------------------------------------------------ */

/* Async-signal-safe output. */
static void ss_write(const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t w = write(1, s, n);
        if (w <= 0)
            return;
        s += w, n -= (size_t)w;
    }
}

static void ss_hex(const char *key, uint64_t v)
{
    char buf[40];
    int i = sizeof buf;
    buf[--i] = 0;
    buf[--i] = '\n';
    do {
        buf[--i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    buf[--i] = 'x';
    buf[--i] = '0';
    ss_write(key);
    ss_write(buf + i);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static uint64_t *child_open_blob(const char *dir, cairn_options *o, cairn_store **s)
{
    uint64_t *blob;
    CHILD_OK(cairn_open(dir, o, s));
    CHILD_OK(cairn_root_get(*s, "blob", (void **)&blob));
    return blob;
}

/* Check pages [from, to) of the blob (exits the child on a mismatch). */
static void child_verify_pages(const uint64_t *blob, uint64_t from, uint64_t to)
{
    for (uint64_t pg = from; pg < to; pg++)
        for (uint64_t w = 0; w < PAGE_WORDS; w++)
            CHILD_CHECK(blob[pg * PAGE_WORDS + w] == pat(pg, w));
}

/* write_outside_txn: arg = loaded | cold | after_commit | after_abort */
static void child_write_outside_txn(const char *dir, const char *mode)
{
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    uint64_t *blob = child_open_blob(dir, &o, &s);
    volatile uint64_t *target = &blob[5 * PAGE_WORDS + 7]; /* page 5, word 7 */
    if (strcmp(mode, "loaded") == 0) {
        CHILD_CHECK(*target == pat(5, 7));
    } else if (strcmp(mode, "after_commit") == 0 || strcmp(mode, "after_abort") == 0) {
        cairn_txn *t;
        CHILD_OK(cairn_txn_begin(s, &t));
        blob[5 * PAGE_WORDS + 8] = 0x1234; /* same page, inside the transaction */
        if (mode[6] == 'c')
            CHILD_OK(cairn_txn_commit(t));
        else
            cairn_txn_abort(t);
    } else {
        CHILD_CHECK(strcmp(mode, "cold") == 0);
    }
    say("ready\naddr=0x%lx\n", (unsigned long)(uintptr_t)target);
    *target = 0xdeadbeef;
    say("survived\n");
    _exit(0);
}

/* foreign_segv: a fault outside any store, with a store open. */
static void child_foreign_segv(const char *dir, const char *mode)
{
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    uint64_t *blob = child_open_blob(dir, &o, &s);
    child_verify_pages(blob, 0, 2); /* the handler is live and working */
    say("ready\n");
    if (strcmp(mode, "read") == 0) {
        volatile int *bad = (volatile int *)(uintptr_t)bad_address();
        say("value %d\n", *bad);
    } else if (strcmp(mode, "write") == 0) {
        volatile int *bad = (volatile int *)(uintptr_t)bad_address();
        *bad = 1;
    } else if (strcmp(mode, "raise_bus") == 0) {
        raise(SIGBUS);
    } else {
        CHILD_CHECK(!"unknown mode");
    }
    say("survived\n");
    _exit(0);
}

/* app_handler: the application's handler, installed before the store. */
static void app_handler_siginfo(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    ss_hex("app-handler sig=", (uint64_t)sig);
    ss_hex("app-handler addr=", (uint64_t)(uintptr_t)si->si_addr);
    _exit(42);
}

static void app_handler_plain(int sig)
{
    ss_hex("app-handler-plain sig=", (uint64_t)sig);
    _exit(42);
}

static void child_app_handler(const char *dir, const char *mode)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    if (strcmp(mode, "siginfo") == 0) {
        sa.sa_sigaction = app_handler_siginfo;
        sa.sa_flags = SA_SIGINFO;
    } else {
        sa.sa_handler = app_handler_plain;
    }
    CHILD_CHECK(sigaction(SIGSEGV, &sa, NULL) == 0);
    CHILD_CHECK(sigaction(SIGBUS, &sa, NULL) == 0);

    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    uint64_t *blob = child_open_blob(dir, &o, &s);
    child_verify_pages(blob, 0, 33); /* several extents: read faults (page 33 is written below) */
    cairn_txn *t;
    CHILD_OK(cairn_txn_begin(s, &t));
    blob[33 * PAGE_WORDS] = 77; /* write fault inside the store */
    CHILD_OK(cairn_txn_commit(t));
    CHILD_CHECK(blob[33 * PAGE_WORDS] == 77);
    say("inside-ok\n");
    volatile int *bad = (volatile int *)(uintptr_t)bad_address();
    say("value %d\n", *bad);
    say("survived\n");
    _exit(0);
}

/* app_handler_after_open: the application installs a handler that chains
 * to the previous one (cairn's) while a store is open, as the contract in
 * signal.c asks, then opens a second store (arg = its directory). */
static struct sigaction chain_prev;
static volatile sig_atomic_t chain_calls;

static void chaining_handler(int sig, siginfo_t *si, void *uc)
{
    chain_calls++;
    ss_hex("chain-handler call=", (uint64_t)chain_calls);
    if (chain_calls > 1) {
        ss_write("chain-handler re-entered\n");
        _exit(77);
    }
    if ((chain_prev.sa_flags & SA_SIGINFO) && chain_prev.sa_sigaction) {
        chain_prev.sa_sigaction(sig, si, uc);
        return;
    }
    /* Previous action is the default: restore it and let the fault repeat. */
    signal(sig, SIG_DFL);
}

static void child_app_handler_after_open(const char *dir, const char *dir2)
{
    cairn_options o;
    tu_options(&o);
    cairn_store *s, *s2;
    uint64_t *blob = child_open_blob(dir, &o, &s);
    child_verify_pages(blob, 0, 1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_sigaction = chaining_handler;
    sa.sa_flags = SA_SIGINFO;
    CHILD_CHECK(sigaction(SIGSEGV, &sa, &chain_prev) == 0);
    CHILD_CHECK(chain_prev.sa_flags & SA_SIGINFO); /* cairn's handler was installed */
    CHILD_OK(cairn_open(dir2, &o, &s2));
    child_verify_pages(blob, 16, 40); /* store faults still work */
    say("inside-ok calls=%d\n", (int)chain_calls);
    volatile int *bad = (volatile int *)(uintptr_t)bad_address();
    say("value %d\n", *bad);
    say("survived\n");
    _exit(0);
}

/* fork: a child of a process with an open store (and an open
 * transaction) touches store memory. arg = read | write */
static void child_fork(const char *dir, const char *mode)
{
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    uint64_t *blob = child_open_blob(dir, &o, &s);
    child_verify_pages(blob, 0, 1); /* page 1 word 3 may hold 0xfeed from an earlier run */
    cairn_txn *t;
    CHILD_OK(cairn_txn_begin(s, &t));
    blob[1 * PAGE_WORDS + 3] = 0xfeed;
    fflush(NULL);
    pid_t pid = fork();
    CHILD_CHECK(pid >= 0);
    if (pid == 0) {
        if (strcmp(mode, "read") == 0) {
            /* page 0 is loaded in the parent; page 20 is not */
            volatile uint64_t v = blob[0];
            ss_hex("grandchild-read-value=", v);
            v = blob[20 * PAGE_WORDS];
            ss_hex("grandchild-read-cold-value=", v);
        } else {
            blob[1 * PAGE_WORDS + 3] = 0xbad;
            ss_write("grandchild-wrote\n");
        }
        _exit(0);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        CHILD_CHECK(errno == EINTR);
    say("gc-signaled=%d gc-sig=%d gc-exited=%d\n", WIFSIGNALED(st), WIFSIGNALED(st) ? WTERMSIG(st) : 0, WIFEXITED(st));
    /* The parent carries on: its transaction, its data. */
    CHILD_CHECK(blob[1 * PAGE_WORDS + 3] == 0xfeed);
    CHILD_OK(cairn_txn_commit(t));
    blob[1 * PAGE_WORDS + 3] = pat(1, 3); /* must trap: no transaction */
    _exit(92);
}

static void child_fork_then_verify(const char *dir, const char *mode)
{
    (void)mode;
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    uint64_t *blob = child_open_blob(dir, &o, &s);
    child_verify_pages(blob, 0, 1); /* page 1 word 3 may hold 0xfeed from an earlier run */
    cairn_txn *t;
    CHILD_OK(cairn_txn_begin(s, &t));
    blob[1 * PAGE_WORDS + 3] = 0xfeed;
    fflush(NULL);
    pid_t pid = fork();
    CHILD_CHECK(pid >= 0);
    if (pid == 0) {
        volatile uint64_t v = blob[0];
        ss_hex("grandchild-read-value=", v);
        _exit(0);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        CHILD_CHECK(errno == EINTR);
    say("gc-signaled=%d gc-sig=%d\n", WIFSIGNALED(st), WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    CHILD_CHECK(blob[1 * PAGE_WORDS + 3] == 0xfeed);
    CHILD_OK(cairn_txn_commit(t));
    child_verify_pages(blob, 2, 32);
    CHILD_CHECK(blob[0] == pat(0, 0));
    CHILD_OK(cairn_close(s));
    say("parent-ok\n");
    _exit(0);
}

/* corrupt: arg = "<mode>:<corrupt page>:<good page>", mode cb | default | longjmp */
static sigjmp_buf corrupt_jmp;
static volatile sig_atomic_t corrupt_calls;
static int corrupt_arg_marker;

static void corrupt_cb_exit(cairn_store *s, void *addr, int rc, void *arg)
{
    ss_write("callback\n");
    ss_hex("cb-rc-neg=", (uint64_t)(-(int64_t)rc));
    ss_hex("cb-addr=", (uint64_t)(uintptr_t)addr);
    ss_hex("cb-store=", (uint64_t)(uintptr_t)s);
    ss_hex("cb-arg=", (uint64_t)(uintptr_t)arg);
    _exit(43);
}

static void corrupt_cb_jump(cairn_store *s, void *addr, int rc, void *arg)
{
    (void)s, (void)addr, (void)arg;
    corrupt_calls++;
    ss_hex("jump-rc-neg=", (uint64_t)(-(int64_t)rc));
    siglongjmp(corrupt_jmp, 1);
}

static void child_corrupt(const char *dir, const char *arg)
{
    char mode[16];
    unsigned long bad_pg, good_pg;
    CHILD_CHECK(sscanf(arg, "%15[a-z]:%lu:%lu", mode, &bad_pg, &good_pg) == 3);
    cairn_options o;
    tu_options(&o);
    if (strcmp(mode, "cb") == 0) {
        o.fault_error = corrupt_cb_exit;
        o.fault_error_arg = &corrupt_arg_marker;
    } else if (strcmp(mode, "longjmp") == 0) {
        o.fault_error = corrupt_cb_jump;
        o.fault_error_arg = &corrupt_arg_marker;
    } else {
        CHILD_CHECK(strcmp(mode, "default") == 0);
    }
    cairn_store *s;
    uint64_t *blob = child_open_blob(dir, &o, &s);
    volatile uint64_t *target = &blob[bad_pg * PAGE_WORDS + 9];
    say("store=0x%lx\ntarget=0x%lx\narg=0x%lx\n", (unsigned long)(uintptr_t)s, (unsigned long)(uintptr_t)target,
        (unsigned long)(uintptr_t)&corrupt_arg_marker);
    if (strcmp(mode, "longjmp") != 0) {
        uint64_t v = *target;
        say("survived value=0x%lx\n", (unsigned long)v);
        _exit(0);
    }
    if (sigsetjmp(corrupt_jmp, 1) == 0) {
        uint64_t v = *target;
        say("survived-1 value=0x%lx\n", (unsigned long)v);
        _exit(0);
    }
    say("back-1 calls=%d\n", (int)corrupt_calls);
    /* Still not shown, still reported. */
    int rc = cairn_prefault(s, (const void *)target, 8, 0);
    say("prefault-rc=%d\n", rc);
    if (sigsetjmp(corrupt_jmp, 1) == 0) {
        uint64_t v = *target;
        say("survived-2 value=0x%lx\n", (unsigned long)v);
        _exit(0);
    }
    say("back-2 calls=%d\n", (int)corrupt_calls);
    /* The rest of the store works. */
    for (uint64_t w = 0; w < PAGE_WORDS; w++)
        CHILD_CHECK(blob[good_pg * PAGE_WORDS + w] == pat(good_pg, w));
    say("good-page-ok\n");
    rc = cairn_close(s);
    say("close-rc=%d\n", rc);
    _exit(0);
}

static int child_main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: --child SCENARIO DIR [ARG]\n");
        _exit(2);
    }
    const char *scenario = argv[0], *dir = argv[1], *arg = argv[2];
    if (strcmp(scenario, "write_outside_txn") == 0)
        child_write_outside_txn(dir, arg);
    else if (strcmp(scenario, "foreign_segv") == 0)
        child_foreign_segv(dir, arg);
    else if (strcmp(scenario, "app_handler") == 0)
        child_app_handler(dir, arg);
    else if (strcmp(scenario, "app_handler_after_open") == 0)
        child_app_handler_after_open(dir, arg);
    else if (strcmp(scenario, "fork") == 0)
        child_fork(dir, arg);
    else if (strcmp(scenario, "fork_verify") == 0)
        child_fork_then_verify(dir, arg);
    else if (strcmp(scenario, "corrupt") == 0)
        child_corrupt(dir, arg);
    fprintf(stderr, "unknown scenario %s\n", scenario);
    _exit(2);
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */

/* The backend in the stats is the one CAIRN_FAULT_BACKEND selects, and an
 * explicit option overrides the variable. */
static void backend_follows_env(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    int want = env_backend();
    int got = stats(s).backend;
    if (want) {
        assert_int_equal(got, want);
    } else {
        print_message("CAIRN_FAULT_BACKEND unset: AUTO chose %d\n", got);
        assert_true(got == CAIRN_BACKEND_UFFD || got == CAIRN_BACKEND_MPROTECT);
    }
    assert_cairn_ok(cairn_close(s));

    o.backend = CAIRN_BACKEND_MPROTECT;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_int_equal(stats(s).backend, CAIRN_BACKEND_MPROTECT);
    assert_cairn_ok(cairn_close(s));

    o.backend = CAIRN_BACKEND_UFFD;
    int rc = cairn_open(dir, &o, &s);
    if (got == CAIRN_BACKEND_UFFD || want == CAIRN_BACKEND_UFFD) {
        /* userfaultfd works here (AUTO or the variable picked it). */
        assert_cairn_ok(rc);
        assert_int_equal(stats(s).backend, CAIRN_BACKEND_UFFD);
        assert_cairn_ok(cairn_close(s));
    } else if (rc == CAIRN_OK) {
        assert_int_equal(stats(s).backend, CAIRN_BACKEND_UFFD);
        assert_cairn_ok(cairn_close(s));
    } else {
        assert_int_equal(rc, CAIRN_UNSUPPORTED);
    }
}

/*
 * Lazy loading.  The store holds LZ_OBJS objects of 3 pages, each
 * followed by a never-written gap of 100..179 pages, so the objects sit in
 * many extents and under many descriptor extents, with a table of
 * pointers to them.
 *
 * Expectation, from pager/layout.h and fault.c: loading extent E of object
 * pages first loads the extent holding the descriptors of E's pages
 * (descriptor page of page n = 32 + n/32, so one descriptor extent covers
 * 512 pages = 32 extents), unless it is resident already; descriptor
 * extents need nothing else.  So touching a page n adds to extents_loaded
 * exactly |{n/16, desc_ext(n)} \ loaded|, and faults_read grows by one
 * when n/16 was not resident.  pages_resident is 16 per resident extent.
 */
#define LZ_OBJS 48
#define LZ_OBJ_PAGES 3

static void lazy_loading(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    cairn_txn *t;
    cairn_type vec_t;
    size_t ptr0[] = {0};
    uint64_t obj_page[LZ_OBJS];

    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_cairn_ok(cairn_type_register(s, "ptrvec", sizeof(void *), ptr0, 1, &vec_t));
    assert_cairn_ok(cairn_txn_begin(s, &t));
    uint64_t **table;
    assert_cairn_ok(cairn_alloc(t, vec_t, LZ_OBJS, (void **)&table));
    for (int i = 0; i < LZ_OBJS; i++) {
        uint64_t *obj;
        void *gap;
        assert_cairn_ok(cairn_alloc_bytes(t, LZ_OBJ_PAGES * PAGE_BYTES, (void **)&obj));
        for (uint64_t w = 0; w < LZ_OBJ_PAGES * PAGE_WORDS; w++)
            obj[w] = pat((uint64_t)i, w);
        table[i] = obj;
        obj_page[i] = page_of(s, obj);
        assert_cairn_ok(cairn_alloc_bytes(t, (100 + (uint64_t)(i * 37) % 80) * PAGE_BYTES, &gap));
    }
    assert_cairn_ok(cairn_root_set(t, "table", table));
    assert_cairn_ok(cairn_txn_commit(t));
    uint64_t table_page = page_of(s, table);
    uint64_t allocated = stats(s).pages_allocated;
    assert_cairn_ok(cairn_close(s));
    /* The objects spread over more descriptor extents than one. */
    assert_true(desc_ext_of_page(obj_page[LZ_OBJS - 1]) >= desc_ext_of_page(obj_page[0]) + 8);

    assert_cairn_ok(cairn_open(dir, &o, &s));
    /* Open loads nothing; the stats call itself loads the superblock's
     * extent (without a fault) to report pages_allocated. */
    cairn_stats st = stats(s);
    assert_int_equal(st.pages_resident, PAGES_PER_EXTENT);
    assert_int_equal(st.extents_loaded, 1);
    assert_int_equal(st.faults_read, 0);

    /* Looking up the root reads the root directory (extents 0..1 at most). */
    assert_cairn_ok(cairn_root_get(s, "table", (void **)&table));
    st = stats(s);
    assert_in_range(st.extents_loaded, 1, 2);
    assert_int_equal(st.pages_resident, st.extents_loaded * PAGES_PER_EXTENT);
    uint64_t base_loaded = st.extents_loaded;

    /* loaded[] is the set of data/descriptor extents we know to be resident. */
    uint64_t next = o.max_bytes / PAGE_BYTES / PAGES_PER_EXTENT;
    uint8_t *loaded = calloc(next, 1);
    assert_non_null(loaded);
    uint64_t n_loaded = 0;
#define MARK(e)                                                                                                        \
    do {                                                                                                               \
        if (!loaded[(e)])                                                                                              \
            loaded[(e)] = 1, n_loaded++;                                                                               \
    } while (0)

    /* The table: its extent and its descriptor extent, nothing else. */
    uint64_t *got[LZ_OBJS];
    for (int i = 0; i < LZ_OBJS; i++)
        got[i] = table[i];
    MARK(ext_of_page(table_page));
    MARK(desc_ext_of_page(table_page));
    st = stats(s);
    assert_int_equal(st.extents_loaded, base_loaded + n_loaded);
    /* One fault for the table (its extent and its descriptor extent), one
     * for each extent the root lookup loaded, none for the superblock. */
    assert_int_equal(st.faults_read, base_loaded - 1 + 1);

    /* Touch every object once, in a scattered order, one word in its
     * middle page; then once more (no further loads). */
    for (int pass = 0; pass < 2; pass++) {
        for (int j = 0; j < LZ_OBJS; j++) {
            int i = (j * 29 + 5) % LZ_OBJS;
            uint64_t n = obj_page[i] + 1;
            assert_int_equal(page_of(s, got[i]), obj_page[i]);
            uint64_t e = ext_of_page(n), d = desc_ext_of_page(n);
            uint64_t want_new = (!loaded[e]) + (d != e && !loaded[d]);
            uint64_t want_faults = !loaded[e];
            cairn_stats before = stats(s);
            uint64_t v = got[i][PAGE_WORDS + 11];
            cairn_stats after = stats(s);
            assert_int_equal(v, pat((uint64_t)i, PAGE_WORDS + 11));
            if (after.extents_loaded - before.extents_loaded != want_new)
                fail_msg("object %d (page %" PRIu64 ", extent %" PRIu64 ", descriptor extent %" PRIu64 "): %" PRIu64
                         " extents loaded, expected %" PRIu64,
                         i, n, e, d, after.extents_loaded - before.extents_loaded, want_new);
            assert_int_equal(after.faults_read - before.faults_read, want_faults);
            MARK(e);
            MARK(d);
            assert_int_equal(after.extents_loaded, base_loaded + n_loaded);
            assert_int_equal(after.pages_resident, after.extents_loaded * PAGES_PER_EXTENT);
        }
        if (pass == 0)
            print_message("touched %d objects: %" PRIu64 " extents loaded of %" PRIu64 " allocated pages / 16\n",
                          LZ_OBJS, stats(s).extents_loaded, allocated / PAGES_PER_EXTENT);
    }
    /* Far fewer than the extents the store spans. */
    assert_true(stats(s).extents_loaded < allocated / PAGES_PER_EXTENT / 3);

    /* The other words of the objects are right (loads are whole pages). */
    for (int i = 0; i < LZ_OBJS; i++)
        for (uint64_t w = 0; w < LZ_OBJ_PAGES * PAGE_WORDS; w++)
            if (got[i][w] != pat((uint64_t)i, w))
                fail_msg("object %d word %" PRIu64 " wrong", i, w);
#undef MARK
    free(loaded);
    assert_cairn_ok(cairn_close(s));
}

/*
 * Racing faults: 8 threads wait at a barrier, then all read the same cold
 * pages at once (the first page first, then a rotation of the shared
 * extents), then each its own extents; every word is checked.  Repeated
 * over cold reopens.  Each extent must be loaded exactly once.
 */
#define RF_THREADS 8
#define RF_SHARED_EXT 32
#define RF_OWN_EXT 8
#define RF_EXTENTS (RF_SHARED_EXT + RF_THREADS * RF_OWN_EXT)
#define RF_ROUNDS 6

struct rf_arg {
    pthread_barrier_t *barrier;
    const uint64_t *blob;
    int thread, round;
    uint64_t bad_words, checked;
    uint64_t first_bad_page, first_bad_word;
};

static void rf_check_page(struct rf_arg *a, uint64_t pg)
{
    const uint64_t *p = a->blob + pg * PAGE_WORDS;
    for (uint64_t w = 0; w < PAGE_WORDS; w++) {
        if (p[w] != pat(pg, w)) {
            if (!a->bad_words)
                a->first_bad_page = pg, a->first_bad_word = w;
            a->bad_words++;
        }
    }
    a->checked++;
}

static void *rf_thread(void *arg)
{
    struct rf_arg *a = arg;
    pthread_barrier_wait(a->barrier);
    /* Everyone on the same cold page first. */
    rf_check_page(a, 0);
    /* Shared extents, every page, starting at a per-thread rotation. */
    uint64_t shared_pages = RF_SHARED_EXT * PAGES_PER_EXTENT;
    uint64_t start = (uint64_t)(a->thread * 5 + a->round * 3) % RF_SHARED_EXT * PAGES_PER_EXTENT;
    for (uint64_t i = 0; i < shared_pages; i++) {
        uint64_t pg = (start + i * 7) % shared_pages; /* 7 is coprime with 512: each page once */
        rf_check_page(a, pg);
    }
    /* Own extents. */
    for (uint64_t e = 0; e < RF_OWN_EXT; e++)
        for (uint64_t i = 0; i < PAGES_PER_EXTENT; i++)
            rf_check_page(a, (RF_SHARED_EXT + (uint64_t)a->thread * RF_OWN_EXT + e) * PAGES_PER_EXTENT + i);
    return NULL;
}

static void racing_faults_see_whole_pages(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    uint64_t first;
    make_blob_store(dir, RF_EXTENTS * PAGES_PER_EXTENT, &o, &first);
    /* Extents the blob's pages live in, with their descriptor extents. */
    uint64_t nset = 0, set[2 * RF_EXTENTS + 4];
    for (uint64_t pg = 0; pg < RF_EXTENTS * PAGES_PER_EXTENT; pg++) {
        uint64_t cand[2] = {ext_of_page(first + pg), desc_ext_of_page(first + pg)};
        for (int c = 0; c < 2; c++) {
            uint64_t k;
            for (k = 0; k < nset && set[k] != cand[c]; k++)
                ;
            if (k == nset)
                set[nset++] = cand[c];
        }
    }

    for (int round = 0; round < RF_ROUNDS; round++) {
        cairn_store *s;
        const uint64_t *blob;
        assert_cairn_ok(cairn_open(dir, &o, &s));
        assert_cairn_ok(cairn_root_get(s, "blob", (void **)&blob));
        cairn_stats before = stats(s);
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, RF_THREADS);
        pthread_t th[RF_THREADS];
        struct rf_arg args[RF_THREADS];
        for (int i = 0; i < RF_THREADS; i++) {
            args[i] = (struct rf_arg){.barrier = &barrier, .blob = blob, .thread = i, .round = round};
            assert_int_equal(pthread_create(&th[i], NULL, rf_thread, &args[i]), 0);
        }
        for (int i = 0; i < RF_THREADS; i++)
            assert_int_equal(pthread_join(th[i], NULL), 0);
        pthread_barrier_destroy(&barrier);
        for (int i = 0; i < RF_THREADS; i++) {
            if (args[i].bad_words)
                fail_msg("round %d thread %d: %" PRIu64 " wrong words, first at page %" PRIu64 " word %" PRIu64, round,
                         i, args[i].bad_words, args[i].first_bad_page, args[i].first_bad_word);
            assert_int_equal(args[i].checked, 1 + RF_SHARED_EXT * PAGES_PER_EXTENT + RF_OWN_EXT * PAGES_PER_EXTENT);
        }
        cairn_stats after = stats(s);
        /* Every extent loaded once, however many threads raced for it. */
        assert_int_equal(after.extents_loaded - before.extents_loaded, nset);
        assert_true(after.faults_read - before.faults_read >= RF_EXTENTS);
        assert_int_equal(after.pages_resident, after.extents_loaded * PAGES_PER_EXTENT);
        assert_cairn_ok(cairn_close(s));
    }
}

/*
 * System calls on store memory: the kernel cannot fault a page in, so a
 * page that is not resident (or not writable, for a read into it) gives
 * EFAULT; cairn_prefault makes the range ready.
 */
static void syscalls_need_prefault(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    const uint64_t npages = 6 * PAGES_PER_EXTENT;
    uint64_t first;
    make_blob_store(dir, npages, &o, &first);
    /* Page indexes (within the blob) in four different extents. */
    uint64_t pg_cold_w = 0, pg_loaded_r = 0, pg_cold_r = 0, pg_cross = 0;
    {
        uint64_t e0 = ext_of_page(first) + 1; /* first whole extent of the blob */
        pg_cold_w = (e0 + 0) * PAGES_PER_EXTENT - first + 3;
        pg_loaded_r = (e0 + 1) * PAGES_PER_EXTENT - first + 5;
        pg_cold_r = (e0 + 2) * PAGES_PER_EXTENT - first + 9;
        pg_cross = (e0 + 4) * PAGES_PER_EXTENT - first - 1; /* last page of one extent, first of the next */
        assert_true(pg_cross + 1 < npages);
    }

    cairn_store *s;
    uint64_t *blob;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_cairn_ok(cairn_root_get(s, "blob", (void **)&blob));
    int pfd[2];
    char buf[3 * PAGE_BYTES];

    /* 1. write() from a cold page: EFAULT, and nothing is loaded. */
    cairn_stats before = stats(s);
    char *cold = (char *)(blob + pg_cold_w * PAGE_WORDS);
    assert_int_equal(pipe(pfd), 0);
    errno = 0;
    assert_int_equal(write(pfd[1], cold, PAGE_BYTES), -1);
    assert_int_equal(errno, EFAULT);
    cairn_stats after = stats(s);
    assert_int_equal(after.extents_loaded, before.extents_loaded);
    assert_int_equal(after.faults_read, before.faults_read);

    /* 2. After prefault (read) the same write() transfers the page. */
    assert_cairn_ok(cairn_prefault(s, cold, PAGE_BYTES, 0));
    after = stats(s);
    assert_true(after.extents_loaded > before.extents_loaded);
    assert_int_equal(write(pfd[1], cold, PAGE_BYTES), PAGE_BYTES);
    assert_int_equal(read(pfd[0], buf, PAGE_BYTES), PAGE_BYTES);
    for (uint64_t w = 0; w < PAGE_WORDS; w++) {
        uint64_t v;
        memcpy(&v, buf + w * 8, 8);
        if (v != pat(pg_cold_w, w))
            fail_msg("write() from prefaulted page: word %" PRIu64 " wrong", w);
    }
    /* A range across two cold extents, starting mid-page. */
    char *cross = (char *)(blob + pg_cross * PAGE_WORDS) + 1000;
    errno = 0;
    assert_int_equal(write(pfd[1], cross, 2 * PAGE_BYTES), -1);
    assert_int_equal(errno, EFAULT);
    assert_cairn_ok(cairn_prefault(s, cross, 2 * PAGE_BYTES, 0));
    assert_int_equal(write(pfd[1], cross, 2 * PAGE_BYTES), 2 * PAGE_BYTES);
    assert_int_equal(read(pfd[0], buf, 2 * PAGE_BYTES), 2 * PAGE_BYTES);
    assert_memory_equal(buf, cross, 2 * PAGE_BYTES);
    assert_int_equal(*(uint64_t *)(blob + pg_cross * PAGE_WORDS), pat(pg_cross, 0));
    close(pfd[0]);
    close(pfd[1]);

    /* 3. Inside a transaction, read() into a loaded, not yet written
     *    page fails with EFAULT, and so does read() into a cold page;
     *    neither page changes or becomes dirty. */
    uint64_t *loaded = blob + pg_loaded_r * PAGE_WORDS;
    uint64_t *cold_r = blob + pg_cold_r * PAGE_WORDS;
    assert_int_equal(loaded[0], pat(pg_loaded_r, 0)); /* load it */
    cairn_txn *t;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    char msg[1500];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (char)(i * 7 + 1);
    before = stats(s);
    for (int k = 0; k < 2; k++) {
        char *dst = (char *)(k == 0 ? loaded : cold_r) + 200;
        assert_int_equal(pipe(pfd), 0);
        assert_int_equal(write(pfd[1], msg, sizeof msg), (ssize_t)sizeof msg);
        errno = 0;
        assert_int_equal(read(pfd[0], dst, sizeof msg), -1);
        assert_int_equal(errno, EFAULT);
        close(pfd[0]);
        close(pfd[1]);
    }
    after = stats(s);
    assert_int_equal(after.pages_dirty, 0);
    assert_int_equal(after.faults_write, before.faults_write);
    assert_int_equal(after.extents_loaded, before.extents_loaded); /* cold_r still cold */
    assert_int_equal(loaded[25], pat(pg_loaded_r, 25));            /* bytes 200.. unchanged */

    /* 4. prefault for writing, then read() lands. */
    for (int k = 0; k < 2; k++) {
        char *dst = (char *)(k == 0 ? loaded : cold_r) + 200;
        assert_cairn_ok(cairn_prefault(s, dst, sizeof msg, 1));
        assert_int_equal(pipe(pfd), 0);
        assert_int_equal(write(pfd[1], msg, sizeof msg), (ssize_t)sizeof msg);
        assert_int_equal(read(pfd[0], dst, sizeof msg), (ssize_t)sizeof msg);
        assert_memory_equal(dst, msg, sizeof msg);
        close(pfd[0]);
        close(pfd[1]);
    }
    assert_true(stats(s).pages_dirty >= 2);
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_ok(cairn_close(s));

    /* 5. The data read() wrote is committed. */
    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_cairn_ok(cairn_root_get(s, "blob", (void **)&blob));
    for (int k = 0; k < 2; k++) {
        uint64_t pg = k == 0 ? pg_loaded_r : pg_cold_r;
        const char *page = (const char *)(blob + pg * PAGE_WORDS);
        assert_memory_equal(page + 200, msg, sizeof msg);
        for (uint64_t w = 0; w < PAGE_WORDS; w++) {
            if (w * 8 + 8 > 200 && w * 8 < 200 + sizeof msg)
                continue;
            uint64_t v;
            memcpy(&v, page + w * 8, 8);
            if (v != pat(pg, w))
                fail_msg("page %" PRIu64 " word %" PRIu64 " changed", pg, w);
        }
    }
    assert_cairn_ok(cairn_close(s));
}

static void prefault_errors(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    make_blob_store(dir, 2 * PAGES_PER_EXTENT, &o, NULL);
    cairn_store *s;
    uint64_t *blob;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_cairn_ok(cairn_root_get(s, "blob", (void **)&blob));
    void *base;
    size_t len;
    assert_cairn_ok(cairn_range(s, &base, &len));
    assert_int_equal(len, o.max_bytes);
    int local = 0;
    char *heap = malloc(64);
    assert_non_null(heap);

    /* Outside the store. */
    assert_cairn_rc(cairn_prefault(s, &local, sizeof local, 0), CAIRN_EXTERNAL_POINTER);
    assert_cairn_rc(cairn_prefault(s, heap, 64, 0), CAIRN_EXTERNAL_POINTER);
    assert_cairn_rc(cairn_prefault(s, (char *)base - PAGE_BYTES, 16, 0), CAIRN_EXTERNAL_POINTER);
    assert_cairn_rc(cairn_prefault(s, (char *)base + len, 16, 0), CAIRN_EXTERNAL_POINTER);
    /* Starting inside, running past the end. */
    assert_cairn_rc(cairn_prefault(s, (char *)base + len - 100, 200, 0), CAIRN_EXTERNAL_POINTER);
    /* Starting before, ending inside. */
    assert_cairn_rc(cairn_prefault(s, (char *)base - 100, 200, 0), CAIRN_EXTERNAL_POINTER);
    /* The whole range is fine; last byte too. */
    assert_cairn_ok(cairn_prefault(s, (char *)base + len - 1, 1, 0));
    assert_cairn_ok(cairn_prefault(s, blob, 2 * BYTES_PER_EXTENT, 0));

    /* for_write needs a transaction. */
    assert_cairn_rc(cairn_prefault(s, blob, 64, 1), CAIRN_INVALID);
    cairn_txn *t;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_prefault(s, blob, 64, 1));
    assert_cairn_rc(cairn_prefault(s, heap, 64, 1), CAIRN_EXTERNAL_POINTER);
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_rc(cairn_prefault(s, blob, 64, 1), CAIRN_INVALID);
    assert_cairn_ok(cairn_txn_begin(s, &t));
    cairn_txn_abort(t);
    assert_cairn_rc(cairn_prefault(s, blob, 64, 1), CAIRN_INVALID);
    assert_cairn_rc(cairn_prefault(NULL, blob, 64, 0), CAIRN_INVALID);
    assert_int_equal(blob[0], pat(0, 0));
    free(heap);
    assert_cairn_ok(cairn_close(s));
}

/* A write with no transaction open kills the process with SIGABRT and a
 * message naming the address; the store keeps its data. */
static void write_outside_txn_aborts(void **state)
{
    const char *dir = *state;
    make_blob_store(dir, 2 * PAGES_PER_EXTENT, NULL, NULL);
    static const char *modes[] = {"loaded", "cold", "after_commit", "after_abort"};
    struct child_result *r = &child_res;
    for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
        run_child(r, "write_outside_txn", dir, modes[m]);
        print_message("mode %s: stderr: %s", modes[m], r->err);
        assert_child_signaled(r, SIGABRT);
        assert_contains(r->out, "ready\n");
        assert_not_contains(r->out, "survived");
        uint64_t addr = find_hex(r->out, "addr=");
        char hex[40];
        snprintf(hex, sizeof hex, "0x%lx", (unsigned long)addr);
        assert_contains(r->err, "outside a transaction");
        assert_contains(r->err, hex);
        /* the address, not a longer number starting with the same digits */
        const char *at = strstr(r->err, hex);
        char next = at[strlen(hex)];
        assert_false((next >= '0' && next <= '9') || (next >= 'a' && next <= 'f'));
    }
    /* None of the stray writes reached the store; the committed one did. */
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    uint64_t *blob;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_cairn_ok(cairn_root_get(s, "blob", (void **)&blob));
    assert_int_equal(blob[5 * PAGE_WORDS + 7], pat(5, 7));
    assert_int_equal(blob[5 * PAGE_WORDS + 8], 0x1234); /* from after_commit */
    assert_cairn_ok(cairn_close(s));
}

/* A fault that is not the store's still kills, with a store open. */
static void foreign_fault_kills_with_a_store_open(void **state)
{
    const char *dir = *state;
    make_blob_store(dir, 3 * PAGES_PER_EXTENT, NULL, NULL);
    struct child_result *r = &child_res;

    run_child(r, "foreign_segv", dir, "read");
    assert_child_signaled(r, SIGSEGV);
    assert_contains(r->out, "ready\n");
    assert_not_contains(r->out, "survived");
    assert_not_contains(r->err, "cairn:");

    run_child(r, "foreign_segv", dir, "write");
    assert_child_signaled(r, SIGSEGV);
    assert_contains(r->out, "ready\n");
    assert_not_contains(r->err, "cairn:");

    run_child(r, "foreign_segv", dir, "raise_bus");
    assert_child_signaled(r, SIGBUS);
    assert_contains(r->out, "ready\n");
    assert_not_contains(r->out, "survived");
}

/* A foreign fault reaches the application's handler, installed before the
 * store was opened, once; store faults never reach it. */
static void foreign_fault_reaches_the_app_handler(void **state)
{
    const char *dir = *state;
    make_blob_store(dir, 3 * PAGES_PER_EXTENT, NULL, NULL);
    struct child_result *r = &child_res;

    run_child(r, "app_handler", dir, "siginfo");
    assert_child_exited(r, 42);
    assert_contains(r->out, "inside-ok\n");
    assert_not_contains(r->out, "survived");
    assert_int_equal(find_hex(r->out, "app-handler sig="), SIGSEGV);
    assert_int_equal(find_hex(r->out, "app-handler addr="), 16);
    /* called once: the output holds exactly one report */
    assert_null(strstr(strstr(r->out, "app-handler sig=") + 1, "app-handler sig="));

    run_child(r, "app_handler", dir, "plain");
    assert_child_exited(r, 42);
    assert_contains(r->out, "inside-ok\n");
    assert_int_equal(find_hex(r->out, "app-handler-plain sig="), SIGSEGV);
}

/*
 * An application handler installed while a store is open, chaining to the
 * previous handler (cairn's) as signal.c asks; then a second store opens.
 * A foreign fault must reach the application's handler once and then kill
 * the process by SIGSEGV.  (If the second open re-installs cairn's handler
 * on top and chains to the application's, which chains back to cairn's,
 * the fault goes round forever: the handler sees itself re-entered.)
 */
static void app_handler_installed_after_open(void **state)
{
    const char *dir = *state;
    char *dir2 = tu_tempdir();
    make_blob_store(dir, 3 * PAGES_PER_EXTENT, NULL, NULL);
    struct child_result *r = &child_res;
    run_child(r, "app_handler_after_open", dir, dir2);
    tu_rmdir(dir2);
    if (!WIFSIGNALED(r->status) || WTERMSIG(r->status) != SIGSEGV)
        describe_child(r);
    assert_contains(r->out, "inside-ok calls=");
    assert_not_contains(r->out, "survived");
    assert_not_contains(r->out, "re-entered");
    assert_contains(r->out, "chain-handler call=0x1\n");
    assert_child_signaled(r, SIGSEGV);
}

/* fork(): the child has no store memory; touching it is SIGSEGV, and the
 * parent (with its transaction open across the fork) is unaffected. */
static void fork_child_has_no_store(void **state)
{
    const char *dir = *state;
    make_blob_store(dir, 2 * PAGES_PER_EXTENT, NULL, NULL);
    struct child_result *r = &child_res;

    for (int k = 0; k < 2; k++) {
        run_child(r, "fork", dir, k == 0 ? "read" : "write");
        /* The scenario ends with a write outside a transaction: abort. */
        assert_child_signaled(r, SIGABRT);
        assert_contains(r->out, "gc-signaled=1 gc-sig=11 gc-exited=0\n");
        assert_not_contains(r->out, "grandchild-read-value");
        assert_not_contains(r->out, "grandchild-wrote");
        assert_contains(r->err, "outside a transaction");
    }

    run_child(r, "fork_verify", dir, "");
    assert_child_exited(r, 0);
    assert_contains(r->out, "gc-signaled=1 gc-sig=11\n");
    assert_contains(r->out, "parent-ok\n");
    assert_not_contains(r->out, "grandchild-read-value");

    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    uint64_t *blob;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_cairn_ok(cairn_root_get(s, "blob", (void **)&blob));
    assert_int_equal(blob[1 * PAGE_WORDS + 3], 0xfeed);
    for (uint64_t pg = 0; pg < 2 * PAGES_PER_EXTENT; pg++)
        for (uint64_t w = 0; w < PAGE_WORDS; w++)
            if (!(pg == 1 && w == 3) && blob[pg * PAGE_WORDS + w] != pat(pg, w))
                fail_msg("page %" PRIu64 " word %" PRIu64 " changed", pg, w);
    assert_cairn_ok(cairn_close(s));
}

/* Flip one byte of the zstd payload of extent e in <dir>/data.mdb. */
static void corrupt_extent(const char *dir, uint64_t e)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
    assert_int_equal(mdb_env_set_mapsize(env, (size_t)3 << 30), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "extents", MDB_INTEGERKEY, &dbi), 0);
    MDB_val key = {sizeof e, &e}, val;
    assert_int_equal(mdb_get(txn, dbi, &key, &val), 0);
    assert_true(val.mv_size > 32 + 16);
    unsigned char *copy = malloc(val.mv_size);
    assert_non_null(copy);
    memcpy(copy, val.mv_data, val.mv_size);
    /* The header is as FORMAT says: magic "CXT1", extent number at 16. */
    uint32_t magic;
    uint64_t hdr_e;
    memcpy(&magic, copy, 4);
    memcpy(&hdr_e, copy + 16, 8);
    assert_int_equal(magic, 0x31545843u);
    assert_int_equal(hdr_e, e);
    size_t at = 32 + (val.mv_size - 32) / 2;
    copy[at] ^= 0xff;
    MDB_val nv = {val.mv_size, copy};
    assert_int_equal(mdb_put(txn, dbi, &key, &nv, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    free(copy);
}

/* A blob store of 4 extents in dir with one extent of the blob damaged:
 * *bad_pg is a blob page in it, *good_pg one in the next extent, *first
 * the blob's first page in the store. */
static void make_corrupt_blob_store(const char *dir, uint64_t *first, uint64_t *bad_pg, uint64_t *good_pg)
{
    make_blob_store(dir, 4 * PAGES_PER_EXTENT, NULL, first);
    uint64_t bad_e = ext_of_page(*first) + 1;        /* whole extent inside the blob */
    *bad_pg = bad_e * PAGES_PER_EXTENT - *first + 4; /* blob page in it */
    *good_pg = *bad_pg + PAGES_PER_EXTENT;           /* blob page in the next extent */
    assert_true(*good_pg < 4 * PAGES_PER_EXTENT);
    corrupt_extent(dir, bad_e);
}

/* A corrupt extent is never shown: prefault reports CAIRN_CORRUPT (for a
 * range that holds it too, and for writing), loads nothing of it, and the
 * rest of the store reads fine. */
static void corrupt_extent_fails_prefault(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    uint64_t first, bad_pg, good_pg;
    make_corrupt_blob_store(dir, &first, &bad_pg, &good_pg);

    cairn_store *s;
    uint64_t *blob;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_cairn_ok(cairn_root_get(s, "blob", (void **)&blob));
    cairn_stats before = stats(s);
    uint64_t *bad = blob + bad_pg * PAGE_WORDS;
    assert_cairn_rc(cairn_prefault(s, bad, 8, 0), CAIRN_CORRUPT);
    assert_cairn_rc(cairn_prefault(s, bad, 8, 0), CAIRN_CORRUPT); /* not cached as loaded */
    /* A range holding it fails too, even if it starts in a good extent. */
    assert_cairn_rc(cairn_prefault(s, blob + (bad_pg - PAGES_PER_EXTENT) * PAGE_WORDS, 2 * BYTES_PER_EXTENT, 0),
                    CAIRN_CORRUPT);
    cairn_stats after = stats(s);
    /* Only good extents were counted: the descriptor extent and the one
     * before the bad one (from the range). */
    uint64_t prev = first + bad_pg - PAGES_PER_EXTENT; /* a page of the extent before */
    uint64_t want = 2 + (desc_ext_of_page(prev) != desc_ext_of_page(first + bad_pg));
    assert_int_equal(after.extents_loaded - before.extents_loaded, want);
    assert_int_equal(after.pages_resident, after.extents_loaded * PAGES_PER_EXTENT);
    cairn_txn *t;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_rc(cairn_prefault(s, bad, 8, 1), CAIRN_CORRUPT);
    cairn_txn_abort(t);
    /* The rest of the store reads fine. */
    for (uint64_t w = 0; w < PAGE_WORDS; w++)
        assert_int_equal(blob[good_pg * PAGE_WORDS + w], pat(good_pg, w));
    assert_cairn_ok(cairn_close(s));
}

/* A plain touch of a corrupt extent calls fault_error from the handler,
 * with CAIRN_CORRUPT, the address, the store and the callback's argument. */
static void corrupt_extent_touch_calls_fault_error(void **state)
{
    const char *dir = *state;
    uint64_t first, bad_pg, good_pg;
    make_corrupt_blob_store(dir, &first, &bad_pg, &good_pg);
    char arg[64];
    struct child_result *r = &child_res;

    snprintf(arg, sizeof arg, "cb:%" PRIu64 ":%" PRIu64, bad_pg, good_pg);
    run_child(r, "corrupt", dir, arg);
    assert_child_exited(r, 43);
    assert_contains(r->out, "callback\n");
    assert_not_contains(r->out, "survived");
    assert_int_equal(-(int64_t)find_hex(r->out, "cb-rc-neg="), CAIRN_CORRUPT);
    assert_int_equal(find_hex(r->out, "cb-addr="), find_hex(r->out, "target="));
    assert_int_equal(find_hex(r->out, "cb-store="), find_hex(r->out, "store="));
    assert_int_equal(find_hex(r->out, "cb-arg="), find_hex(r->out, "\narg="));
}

/* Without a fault_error callback, a touch of a corrupt extent aborts with
 * a message naming the address and the error. */
static void corrupt_extent_touch_aborts_by_default(void **state)
{
    const char *dir = *state;
    uint64_t first, bad_pg, good_pg;
    make_corrupt_blob_store(dir, &first, &bad_pg, &good_pg);
    char arg[64];
    struct child_result *r = &child_res;

    snprintf(arg, sizeof arg, "default:%" PRIu64 ":%" PRIu64, bad_pg, good_pg);
    run_child(r, "corrupt", dir, arg);
    assert_child_signaled(r, SIGABRT);
    assert_not_contains(r->out, "survived");
    assert_contains(r->err, "cannot load page");
    assert_contains(r->err, cairn_strerror(CAIRN_CORRUPT));
    char hex[40];
    snprintf(hex, sizeof hex, "0x%lx", (unsigned long)find_hex(r->out, "target="));
    assert_contains(r->err, hex);
}

/* A fault_error callback that leaves with siglongjmp: the process goes on,
 * the page is still not shown (and reported again), the rest of the store
 * works and closes cleanly. */
static void fault_error_may_leave_by_longjmp(void **state)
{
    const char *dir = *state;
    uint64_t first, bad_pg, good_pg;
    make_corrupt_blob_store(dir, &first, &bad_pg, &good_pg);
    char arg[64];
    struct child_result *r = &child_res;

    snprintf(arg, sizeof arg, "longjmp:%" PRIu64 ":%" PRIu64, bad_pg, good_pg);
    run_child(r, "corrupt", dir, arg);
    if (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != 0)
        describe_child(r);
    assert_child_exited(r, 0);
    assert_contains(r->out, "back-1 calls=1\n");
    char want_rc[32];
    snprintf(want_rc, sizeof want_rc, "prefault-rc=%d\n", CAIRN_CORRUPT);
    assert_contains(r->out, want_rc);
    assert_contains(r->out, "back-2 calls=2\n");
    assert_contains(r->out, "good-page-ok\n");
    assert_contains(r->out, "close-rc=0\n");
    assert_not_contains(r->out, "survived");
    assert_int_equal(-(int64_t)find_hex(r->out, "jump-rc-neg="), CAIRN_CORRUPT);
}

/*
 * The mprotect backend splits the client view at every protection
 * boundary; working per extent keeps that to at most two new mappings per
 * loaded extent (an isolated extent splits one PROT_NONE mapping into
 * three), far from vm.max_map_count.  userfaultfd never splits it: the
 * client view stays one mapping.
 * A 1 GiB store with 3000 extents of data; every other one is touched,
 * then every fourth written in one transaction.  The mappings inside the
 * store's range are counted exactly; the whole of /proc/self/maps may
 * also change by a few lines the process (or a sanitizer's allocator)
 * maps meanwhile.
 */
#define MC_EXTENTS 3000
#define MC_SLACK 8

static void mprotect_map_count_bounded(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    cairn_txn *t;
    uint64_t *blob;
    const uint64_t npages = MC_EXTENTS * PAGES_PER_EXTENT;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    int backend = stats(s).backend;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc_bytes(t, npages * PAGE_BYTES, (void **)&blob));
    for (uint64_t pg = 0; pg < npages; pg++)
        blob[pg * PAGE_WORDS + pg % PAGE_WORDS] = pat(pg, 0);
    assert_cairn_ok(cairn_root_set(t, "blob", blob));
    assert_cairn_ok(cairn_txn_commit(t));
    uint64_t first = page_of(s, blob);
    assert_cairn_ok(cairn_close(s));

    assert_cairn_ok(cairn_open(dir, &o, &s));
    void *base;
    size_t len;
    assert_cairn_ok(cairn_range(s, &base, &len));
    uintptr_t lo = (uintptr_t)base, hi = lo + len;
    long r0, r1, r2, r3;
    long m0 = maps_lines(lo, hi, &r0);
    assert_true(m0 > 0);
    assert_int_equal(r0, 1); /* nothing loaded: one mapping */
    assert_cairn_ok(cairn_root_get(s, "blob", (void **)&blob));
    /* Blob extents entirely inside the blob, every other one. */
    uint64_t e_first = (first + PAGES_PER_EXTENT - 1) / PAGES_PER_EXTENT, e_end = (first + npages) / PAGES_PER_EXTENT;
    cairn_stats st0 = stats(s);
    uint64_t touched = 0;
    for (uint64_t e = e_first; e < e_end; e += 2) {
        uint64_t pg = e * PAGES_PER_EXTENT - first + 3;
        uint64_t v = blob[pg * PAGE_WORDS + pg % PAGE_WORDS];
        if (v != pat(pg, 0))
            fail_msg("extent %" PRIu64 ": wrong data", e);
        touched++;
    }
    long m1 = maps_lines(lo, hi, &r1);
    cairn_stats st1 = stats(s);
    uint64_t loaded = st1.extents_loaded; /* since open, root directory included */
    assert_true(st1.extents_loaded - st0.extents_loaded >= touched);

    assert_cairn_ok(cairn_txn_begin(s, &t));
    uint64_t written = 0;
    for (uint64_t e = e_first; e < e_end; e += 4) {
        uint64_t pg = e * PAGES_PER_EXTENT - first + 3;
        blob[pg * PAGE_WORDS + 1] = 0xabcd0000 + e;
        written++;
    }
    long m2 = maps_lines(lo, hi, &r2);
    assert_cairn_ok(cairn_txn_commit(t));
    long m3 = maps_lines(lo, hi, &r3);
    cairn_stats st3 = stats(s);
    print_message("backend %d: touched %" PRIu64 " extents (%" PRIu64 " loaded in all): mappings in the store "
                  "%ld -> %ld, %ld with %" PRIu64 " extents written, %ld after commit; /proc/self/maps %ld -> "
                  "%ld -> %ld -> %ld lines\n",
                  backend, touched, loaded, r0, r1, r2, written, r3, m0, m1, m2, m3);
    assert_int_equal(st3.extents_loaded, st1.extents_loaded); /* all written extents were loaded */

    if (backend == CAIRN_BACKEND_UFFD) {
        assert_int_equal(r1, 1);
        assert_int_equal(r2, 1);
        assert_int_equal(r3, 1);
    } else {
        assert_int_equal(backend, CAIRN_BACKEND_MPROTECT);
        long bound = 1 + 2 * (long)loaded;
        assert_true(r1 > (long)touched); /* each isolated extent is its own mapping */
        if (r1 > bound || r2 > bound || r3 > bound)
            fail_msg("store mappings grew beyond 2 per loaded extent: %ld %ld %ld > %ld", r1, r2, r3, bound);
    }
    /* Outside the store's range, nothing to speak of changed. */
    assert_true(m1 - r1 <= m0 - r0 + MC_SLACK);
    assert_true(m2 - r2 <= m0 - r0 + MC_SLACK);
    assert_true(m3 - r3 <= m0 - r0 + MC_SLACK);
    /* The written words are there, the others intact. */
    for (uint64_t e = e_first; e < e_end; e += 2) {
        uint64_t pg = e * PAGES_PER_EXTENT - first + 3;
        uint64_t want = (e - e_first) % 4 == 0 ? 0xabcd0000 + e : pg % PAGE_WORDS == 1 ? pat(pg, 0) : 0;
        assert_int_equal(blob[pg * PAGE_WORDS + 1], want);
    }
    assert_cairn_ok(cairn_close(s));
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--child") == 0)
        return child_main(argc - 2, argv + 2);
    const struct CMUnitTest tests[] = {
        tu_dir_test(backend_follows_env),
        tu_dir_test(lazy_loading),
        tu_dir_test(racing_faults_see_whole_pages),
        tu_dir_test(syscalls_need_prefault),
        tu_dir_test(prefault_errors),
        tu_dir_test(write_outside_txn_aborts),
        tu_dir_test(foreign_fault_kills_with_a_store_open),
        tu_dir_test(foreign_fault_reaches_the_app_handler),
        tu_dir_test(app_handler_installed_after_open),
        tu_dir_test(fork_child_has_no_store),
        tu_dir_test(corrupt_extent_fails_prefault),
        tu_dir_test(corrupt_extent_touch_calls_fault_error),
        tu_dir_test(corrupt_extent_touch_aborts_by_default),
        tu_dir_test(fault_error_may_leave_by_longjmp),
        tu_dir_test(mprotect_map_count_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
