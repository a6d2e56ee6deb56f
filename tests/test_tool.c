/*
 * test_tool.c - the `cairn` command, run as a separate process the way a
 * user runs it: every subcommand, its failure paths and exit codes, gc's
 * exactness, dump on cycles, backup under a concurrent writer, compact
 * preserving content.
 */
#define _GNU_SOURCE
#include "testutil.h"
#include "store/test_control.h"
#include "storeutil.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CAIRN_TOOL
#error "CAIRN_TOOL must name the built cairn binary"
#endif

static char out_path[4096], err_path[4096];

/* Run `cairn ARGS` (a shell word list) with stdout and stderr captured;
 * returns its exit status, or -1 if it did not exit normally. */
static int tool(const char *dir, const char *fmt, ...)
{
    char args[8192], cmd[sizeof args + 3 * sizeof out_path];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(out_path, sizeof out_path, "%s.out", dir);
    snprintf(err_path, sizeof err_path, "%s.err", dir);
    snprintf(cmd, sizeof cmd, "%s %s >%s 2>%s", CAIRN_TOOL, args, out_path, err_path);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    int c;
    while ((c = fgetc(f)) != EOF)
        fputc(c, m);
    fclose(m);
    fclose(f);
    return buf;
}

static int out_has(const char *what)
{
    char *o = slurp(out_path);
    int yes = strstr(o, what) != NULL;
    free(o);
    return yes;
}

static int err_has(const char *what)
{
    char *o = slurp(err_path);
    int yes = strstr(o, what) != NULL;
    free(o);
    return yes;
}

static size_t count_lines(const char *path, const char *prefix)
{
    char *o = slurp(path), *p = o;
    size_t n = 0;
    while (p && *p) {
        if (strncmp(p, prefix, strlen(prefix)) == 0)
            n++;
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    free(o);
    return n;
}

static uint64_t offset_of(cairn_store *s, const void *p)
{
    char *base;
    size_t len;
    assert_cairn_ok(cairn_range(s, (void **)&base, &len));
    return (uint64_t)((const char *)p - base);
}

static void help_and_bad_arguments(void **state)
{
    const char *dir = *state;
    assert_int_equal(tool(dir, "--help"), 0);
    assert_true(out_has("Exit status"));
    const char *subs[] = {"stat", "check", "dump", "backup", "compact", "gc"};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(tool(dir, "%s --help", subs[i]), 0);
        assert_true(out_has("usage: cairn"));
        assert_int_equal(tool(dir, "%s --no-such-option %s", subs[i], dir), 2);
        assert_true(err_has("usage: cairn"));
    }
    assert_int_equal(tool(dir, ""), 2);
    assert_int_equal(tool(dir, "frobnicate %s", dir), 2);
    assert_true(err_has("unknown subcommand"));
    assert_int_equal(tool(dir, "stat"), 2);
    assert_int_equal(tool(dir, "dump --depth 2 %s", dir), 2);
    assert_true(err_has("--depth needs --root"));
    assert_int_equal(tool(dir, "compact --level 99 %s", dir), 2);
    assert_int_equal(tool(dir, "backup %s", dir), 2);
}

static void missing_store_is_reported(void **state)
{
    const char *dir = *state;
    char missing[4200], dest[4200];
    snprintf(missing, sizeof missing, "%s/nothing", dir);
    snprintf(dest, sizeof dest, "%s/dest", dir);
    const char *subs[] = {"stat", "check", "dump", "gc", "compact"};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(tool(dir, "%s %s", subs[i], missing), 2);
        assert_true(err_has(missing)); /* the message names the file */
    }
    assert_int_equal(tool(dir, "backup %s %s", missing, dest), 2);
    struct stat st;
    assert_int_not_equal(stat(missing, &st), 0); /* gc did not create it */
    /* A directory that is not a store. */
    assert_int_equal(tool(dir, "check %s", dir), 2);
    assert_true(err_has("data.mdb"));
}

/* 300 reachable links, a large typed array reached only through an
 * interior pointer, and garbage: a 50-link cycle and raw bytes.  The
 * offsets of the garbage go to garbage[]. */
static size_t build_graph(cairn_store *s, uint64_t *garbage)
{
    cairn_type lt = tu_link_type(s);
    cairn_txn *t;
    struct tu_link *head = NULL, *arr, *ring = NULL, *first = NULL;
    size_t ng = 0;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc(t, lt, 1000, (void **)&arr)); /* 4 pages, large */
    for (int i = 0; i < 1000; i++)
        arr[i].val = (uint64_t)i * 7;
    for (int i = 0; i < 300; i++) {
        struct tu_link *l;
        assert_cairn_ok(cairn_alloc(t, lt, 1, (void **)&l));
        l->val = (uint64_t)i;
        l->next = head;
        head = l;
        if (i % 3 == 0) {
            void *junk;
            assert_cairn_ok(cairn_alloc_bytes(t, 40 + (size_t)i, &junk));
            memset(junk, 0xab, 40 + (size_t)i);
            garbage[ng++] = offset_of(s, junk);
        }
    }
    for (int i = 0; i < 50; i++) {
        struct tu_link *l;
        assert_cairn_ok(cairn_alloc(t, lt, 1, (void **)&l));
        l->val = 1000000 + (uint64_t)i;
        l->next = ring;
        ring = l;
        if (!first)
            first = l;
        garbage[ng++] = offset_of(s, l);
    }
    first->next = ring; /* close the cycle: unreachable all the same */
    void *big;
    assert_cairn_ok(cairn_alloc_bytes(t, 20000, &big));
    garbage[ng++] = offset_of(s, big);
    struct tu_link *tail = head;
    while (tail->next)
        tail = tail->next;
    tail->next = &arr[500]; /* interior pointer keeps the whole array */
    assert_cairn_ok(cairn_root_set(t, "list", head));
    assert_cairn_ok(cairn_txn_commit(t));
    return ng;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void verify_list(cairn_store *s)
{
    struct tu_link *l;
    assert_cairn_ok(cairn_root_get(s, "list", (void **)&l));
    for (int i = 299; i >= 0; i--, l = l->next)
        assert_int_equal(l->val, (uint64_t)i);
    assert_int_equal(l->val, 500 * 7); /* arr[500] */
    for (int i = 500; i < 1000; i++, l++)
        assert_int_equal(l->val, (uint64_t)i * 7);
}

/* A store of build_graph()'s in dir, closed. */
static void graph_store(const char *dir)
{
    uint64_t garbage[200];
    cairn_store *s = tu_open(dir, 0);
    build_graph(s, garbage);
    assert_cairn_ok(cairn_close(s));
}

static void gc_frees_exactly_the_unreachable(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    uint64_t garbage[200];
    assert_cairn_ok(cairn_open(dir, &o, &s));
    size_t ng = build_graph(s, garbage);
    cairn_check_report before;
    assert_cairn_ok(cairn_check(s, &before));

    /* Open here: gc needs the store to itself. */
    assert_int_equal(tool(dir, "gc %s", dir), 2);
    assert_true(err_has("open in another process"));
    assert_cairn_ok(cairn_close(s));

    assert_int_equal(tool(dir, "gc --dry-run --list %s", dir), 0);
    assert_int_equal(count_lines(out_path, "unreachable "), ng);
    char *o_text = slurp(out_path), *p = o_text;
    uint64_t listed[200];
    size_t nl = 0;
    while ((p = strstr(p, "unreachable 0x")) != NULL && nl < 200) {
        listed[nl++] = strtoull(p + 12, NULL, 16);
        p += 12;
    }
    free(o_text);
    assert_int_equal(nl, ng);
    qsort(listed, nl, 8, cmp_u64);
    qsort(garbage, ng, 8, cmp_u64);
    for (size_t i = 0; i < ng; i++)
        assert_int_equal(listed[i], garbage[i]);

    /* The dry run changed nothing. */
    cairn_check_report r;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_cairn_ok(cairn_check(s, &r));
    assert_int_equal(r.objects, before.objects);
    assert_cairn_ok(cairn_close(s));

    assert_int_equal(tool(dir, "gc %s", dir), 0);
    assert_true(out_has("freed"));
    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_cairn_ok(cairn_check(s, &r));
    assert_int_equal(r.objects, before.objects - ng);
    verify_list(s);
    /* Every garbage object is gone: freeing it again is refused. */
    char *base;
    size_t len;
    cairn_txn *t;
    assert_cairn_ok(cairn_range(s, (void **)&base, &len));
    assert_cairn_ok(cairn_txn_begin(s, &t));
    for (size_t i = 0; i < ng; i++)
        assert_cairn_rc(cairn_free(t, base + garbage[i]), CAIRN_INVALID);
    cairn_txn_abort(t);
    assert_cairn_ok(cairn_close(s));

    /* A second gc finds nothing. */
    assert_int_equal(tool(dir, "gc --json %s", dir), 0);
    assert_true(out_has("\"unreachable_objects\":0,"));
}

static void dump_of_a_cycle_terminates(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    cairn_txn *t;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    cairn_type lt = tu_link_type(s);
    struct tu_link *a, *b, *c;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc(t, lt, 1, (void **)&a));
    assert_cairn_ok(cairn_alloc(t, lt, 1, (void **)&b));
    assert_cairn_ok(cairn_alloc(t, lt, 1, (void **)&c));
    a->next = b, b->next = c, c->next = a;
    a->val = 11, b->val = 22, c->val = 33;
    assert_cairn_ok(cairn_root_set(t, "ring", a));
    assert_cairn_ok(cairn_txn_commit(t));
    uint64_t ob = offset_of(s, b);
    assert_cairn_ok(cairn_close(s));

    assert_int_equal(tool(dir, "dump --root ring %s", dir), 0);
    assert_int_equal(count_lines(out_path, "{\"offset\":"), 3);
    assert_int_equal(count_lines(out_path, "{\"root\":\"ring\""), 1);
    char want[128];
    snprintf(want, sizeof want,
             "\"type\":\"link\",\"size\":16,\"class\":16,\"depth\":0,\"words\":{\"0\":{\"ptr\":%llu},\"8\":11}",
             (unsigned long long)ob);
    assert_true(out_has(want));
    assert_int_equal(tool(dir, "dump --root ring --depth 1 %s", dir), 0);
    assert_int_equal(count_lines(out_path, "{\"offset\":"), 2);
    assert_int_equal(tool(dir, "dump %s", dir), 0);
    assert_int_equal(count_lines(out_path, "{\"offset\":"), 3);
    assert_int_equal(tool(dir, "dump --root nosuch %s", dir), 2);
    assert_true(err_has("no root named"));
}

/* The store stays open here, with a commit only in the log: the read-only
 * subcommands and compact to DEST still work and see it. */
static void read_commands_work_on_an_open_store(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    cairn_txn *t;
    uint64_t garbage[200];
    assert_cairn_ok(cairn_open(dir, &o, &s));
    build_graph(s, garbage);
    assert_cairn_ok(cairn_checkpoint(s));
    struct tu_link *l;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc(t, tu_link_type(s), 1, (void **)&l));
    l->val = 4242;
    assert_cairn_ok(cairn_root_set(t, "late", l));
    assert_cairn_ok(cairn_txn_commit(t)); /* in the log only */

    assert_int_equal(tool(dir, "check %s", dir), 0);
    assert_true(out_has("clean"));
    assert_true(out_has("(1 log transactions replayed)"));
    assert_int_equal(tool(dir, "stat --json %s", dir), 0);
    assert_true(out_has("{\"name\":\"late\""));
    assert_true(out_has("\"transactions\":1,"));
    /* stat names who holds the store: this process as the writer, and as
     * a reader once a read-only handle is open beside it. */
    char want[128];
    snprintf(want, sizeof want, "\"holders\":{\"writer_pid\":%ld,\"readers\":[]", (long)getpid());
    assert_true(out_has(want));
    cairn_options ro = o;
    ro.flags = CAIRN_RDONLY;
    cairn_store *ro_handle;
    assert_cairn_ok(cairn_open(dir, &ro, &ro_handle));
    assert_int_equal(tool(dir, "stat --json %s", dir), 0);
    snprintf(want, sizeof want, "\"readers\":[{\"pid\":%ld,", (long)getpid());
    assert_true(out_has(want));
    assert_true(out_has("\"commits_behind\":0}"));
    assert_int_equal(tool(dir, "stat %s", dir), 0);
    snprintf(want, sizeof want, "reader pid %ld, snapshot 0 LMDB commits behind", (long)getpid());
    assert_true(out_has(want));
    assert_cairn_ok(cairn_close(ro_handle));
    assert_int_equal(tool(dir, "dump --root late %s", dir), 0);
    assert_true(out_has("\"8\":4242}"));
    char dest[4200];
    snprintf(dest, sizeof dest, "%s.compact", dir);
    assert_int_equal(tool(dir, "compact %s %s", dir, dest), 0);
    assert_int_equal(tool(dir, "compact %s", dir), 2); /* in place needs it to itself */
    assert_true(err_has("open in another process"));
    assert_cairn_ok(cairn_close(s));

    cairn_check_report r;
    assert_cairn_ok(cairn_open(dest, &o, &s));
    assert_cairn_ok(cairn_check(s, &r));
    assert_cairn_ok(cairn_root_get(s, "late", (void **)&l));
    assert_int_equal(l->val, 4242);
    verify_list(s);
    assert_cairn_ok(cairn_close(s));
}

/* A snapshot holds at most a batch of the log's extent images in memory
 * and spills the rest to a temporary file: with a batch of one image
 * (recover_batch=1) every read command sees exactly what it sees
 * with the images in memory. */
static void snapshot_spills_beyond_its_batch(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    cairn_txn *t;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    /* Twelve transactions in the log only, each writing objects in several
     * extents, some of them extents an earlier one wrote. */
    struct tu_link *prev = NULL;
    for (int k = 0; k < 12; k++) {
        assert_cairn_ok(cairn_txn_begin(s, &t));
        for (int i = 0; i < 40; i++) {
            struct tu_link *l;
            uint64_t *big;
            assert_cairn_ok(cairn_alloc(t, tu_link_type(s), 1, (void **)&l));
            assert_cairn_ok(cairn_alloc_bytes(t, 5000, (void **)&big));
            big[0] = (uint64_t)(k * 1000 + i);
            l->val = (uint64_t)(k * 1000 + i);
            l->next = prev;
            prev = l;
        }
        assert_cairn_ok(cairn_root_set(t, "chain", prev));
        assert_cairn_ok(cairn_txn_commit(t));
    }
    assert_int_equal(tool(dir, "dump --max-bytes 0 %s", dir), 0);
    char *in_memory = slurp(out_path);
    assert_int_equal(tool(dir, "stat --json %s", dir), 0);
    char *stat_in_memory = slurp(out_path);
    assert_int_equal(store_test_control("recover_batch=1"), 0);
    assert_int_equal(tool(dir, "dump --max-bytes 0 %s", dir), 0);
    char *spilled = slurp(out_path);
    assert_int_equal(tool(dir, "stat --json %s", dir), 0);
    char *stat_spilled = slurp(out_path);
    assert_int_equal(tool(dir, "check %s", dir), 0);
    assert_true(out_has("(12 log transactions replayed)"));
    assert_int_equal(store_test_control(""), 0);
    assert_true(strlen(in_memory) > 10000);
    assert_string_equal(in_memory, spilled);
    /* stat's figures too, the mtime of data.mdb aside (none changed). */
    assert_string_equal(stat_in_memory, stat_spilled);
    free(in_memory);
    free(spilled);
    free(stat_in_memory);
    free(stat_spilled);
    assert_cairn_ok(cairn_close(s));
}

static void compact_preserves_every_object(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    graph_store(dir);

    assert_int_equal(tool(dir, "dump --max-bytes 0 %s", dir), 0);
    char *before = slurp(out_path);
    char dest[4200];
    snprintf(dest, sizeof dest, "%s.compact", dir);
    assert_int_equal(tool(dir, "compact --level 9 %s %s", dir, dest), 0);
    assert_true(out_has("at level 9"));
    assert_int_equal(tool(dir, "compact %s %s", dir, dest), 2); /* DEST holds a store now */
    assert_int_equal(tool(dest, "dump --max-bytes 0 %s", dest), 0);
    char *other = slurp(out_path);
    assert_string_equal(before, other);
    free(other);
    assert_int_equal(tool(dest, "check %s", dest), 0);

    assert_int_equal(tool(dir, "compact %s", dir), 0); /* in place */
    assert_int_equal(tool(dir, "dump --max-bytes 0 %s", dir), 0);
    char *after = slurp(out_path);
    assert_string_equal(before, after);
    free(after);
    free(before);
    cairn_check_report r;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_cairn_ok(cairn_check(s, &r));
    verify_list(s);
    assert_cairn_ok(cairn_close(s));

    assert_int_equal(tool(dir, "compact --dict-estimate %s", dir), 0);
    assert_true(out_has("dictionary estimate"));
}

/* A damaged extent: check finds problems, lists them and exits 1; gc
 * refuses to run. */
static void check_reports_a_damaged_extent(void **state)
{
    const char *dir = *state;
    graph_store(dir);
    assert_int_equal(tool(dir, "check --json %s", dir), 0);
    assert_true(out_has("\"clean\":true"));
    tu_flip_extent_byte(dir, TU_LAST_EXTENT);
    assert_int_equal(tool(dir, "check %s", dir), 1);
    assert_true(out_has("problem: extent"));
    assert_true(out_has("fails to decode"));
    assert_int_equal(tool(dir, "gc %s", dir), 1);
    assert_true(err_has("refusing"));
}

/* No log: the store is damaged (exit 1), not absent (2). */
static void check_reports_a_missing_log_as_damage(void **state)
{
    const char *dir = *state;
    graph_store(dir);
    char wal[4200], moved[4200];
    snprintf(wal, sizeof wal, "%s/wal", dir);
    snprintf(moved, sizeof moved, "%s/wal.saved", dir);
    assert_int_equal(rename(wal, moved), 0);
    assert_int_equal(tool(dir, "check %s", dir), 1);
    assert_true(out_has("the log is missing"));
    assert_int_equal(rename(moved, wal), 0);
}

/* A data.mdb LMDB does not recognise: check and stat exit 1. */
static void check_and_stat_report_an_unknown_data_mdb(void **state)
{
    const char *dir = *state;
    graph_store(dir);
    char data[4200];
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    int fd = open(data, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    char junk[8192];
    memset(junk, 0x5a, sizeof junk);
    assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);
    assert_int_equal(tool(dir, "check %s", dir), 1);
    assert_int_equal(tool(dir, "stat %s", dir), 1);
}

/* data.mdb cut at many sizes: every subcommand that reads the store exits
 * 1 or 2 with a message, never on a signal. */
static void truncated_data_mdb_never_crashes(void **state)
{
    const char *dir = *state;
    graph_store(dir);
    char data[4200], dest[4300];
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    snprintf(dest, sizeof dest, "%s.dest", dir);
    FILE *f = fopen(data, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    unsigned char *orig = malloc((size_t)len);
    assert_int_equal(fread(orig, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    len = (long)tu_lmdb_used(orig, (size_t)len); /* cuts in the zeros past LMDB's pages lose nothing */
    static const char *const cmds[] = {"stat", "stat --json", "check", "check --json", "dump", "backup", "compact"};
    int runs = 0;
    for (int i = 0; i <= 24; i++) {
        long cut = i == 0 ? 0 : i == 1 ? 4096 : i == 2 ? 8192 : i == 24 ? len - 1 : len * (i - 2) / 22;
        f = fopen(data, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(orig, 1, (size_t)cut, f), (size_t)cut);
        fclose(f);
        for (size_t c = 0; c < sizeof cmds / sizeof cmds[0]; c++) {
            char rm[4400];
            snprintf(rm, sizeof rm, "rm -rf %s", dest);
            assert_int_equal(system(rm), 0);
            int got = strncmp(cmds[c], "backup", 6) == 0 || strncmp(cmds[c], "compact", 7) == 0
                          ? tool(dir, "%s %s %s", cmds[c], dir, dest)
                          : tool(dir, "%s %s", cmds[c], dir);
            if (got != 1 && got != 2)
                fail_msg("cairn %s on data.mdb cut to %ld of %ld bytes: %s %d", cmds[c], cut, len,
                         got < 0 ? "killed by a signal" : "exit", got);
            char *err = slurp(err_path), *out = slurp(out_path);
            if (!strstr(err, "data.mdb") && !strstr(out, "data.mdb"))
                fail_msg("cairn %s on data.mdb cut to %ld: no message naming data.mdb (stdout \"%s\", stderr \"%s\")",
                         cmds[c], cut, out, err);
            free(err);
            free(out);
            runs++;
        }
    }
    print_message("%d runs on a cut data.mdb of %ld bytes: none crashed\n", runs, len);
    free(orig);
    char rm[4400];
    snprintf(rm, sizeof rm, "rm -rf %s", dest);
    assert_int_equal(system(rm), 0);
}

/* The command refuses files that do not belong together by the library's
 * rule: an older data.mdb beside a newer log, and another store's log. */
static void mixed_files_are_refused(void **state)
{
    const char *dir = *state;
    graph_store(dir);
    char data[4200], saved[4200], cmd[9000];
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    snprintf(saved, sizeof saved, "%s.data.mdb", dir);
    snprintf(cmd, sizeof cmd, "cp %s %s", data, saved);
    assert_int_equal(system(cmd), 0);
    graph_store(dir);
    snprintf(cmd, sizeof cmd, "cp %s %s", saved, data);
    assert_int_equal(system(cmd), 0);
    static const char *const cmds[] = {"stat", "check", "dump"};
    for (size_t c = 0; c < sizeof cmds / sizeof cmds[0]; c++) {
        int got = tool(dir, "%s %s", cmds[c], dir);
        if (got != 1)
            fail_msg("cairn %s on an older data.mdb: exit %d, want 1", cmds[c], got);
        if (!err_has("do not belong together") && !out_has("do not belong together"))
            fail_msg("cairn %s: no word of the files not belonging together", cmds[c]);
    }
}

/* ---- backup under a writer ---- */

/* The writer's state: commit k sets seq = k and pushes a link of value k,
 * so a consistent state has seq = k and the list k, k-1, ..., 1. */
struct counter {
    uint64_t seq;
    struct tu_link *list;
    uint64_t check; /* seq * 31 + 7: set in the same commit */
};

static void writer(void *arg)
{
    const char *dir = arg;
    cairn_options o;
    tu_options(&o);
    o.checkpoint_bytes = 64 << 10; /* the flusher resets the log often */
    cairn_store *s;
    if (cairn_open(dir, &o, &s))
        _exit(3);
    cairn_type lt, ct;
    size_t lp[] = {0}, cp[] = {8};
    if (cairn_type_register(s, "link", sizeof(struct tu_link), lp, 1, &lt) ||
        cairn_type_register(s, "counter", sizeof(struct counter), cp, 1, &ct))
        _exit(4);
    struct counter *c;
    cairn_txn *t;
    for (uint64_t k = 1;; k++) {
        if (cairn_txn_begin(s, &t))
            _exit(5);
        if (k == 1) {
            if (cairn_alloc(t, ct, 1, (void **)&c) || cairn_root_set(t, "counter", c))
                _exit(6);
        }
        struct tu_link *l;
        void *pad;
        if (cairn_alloc(t, lt, 1, (void **)&l) || cairn_alloc_bytes(t, 3000, &pad))
            _exit(7);
        memset(pad, (int)k, 3000); /* log volume */
        l->val = k;
        l->next = c->list;
        c->list = l;
        c->seq = k;
        c->check = k * 31 + 7;
        if (cairn_txn_commit(t))
            _exit(8);
        if (k % 25 == 0 && cairn_checkpoint(s))
            _exit(9);
        if (k == 20) { /* tell the parent the store exists */
            char p[4200];
            snprintf(p, sizeof p, "%s.ready", dir);
            close(open(p, O_CREAT | O_WRONLY, 0644));
        }
    }
}

static uint64_t verify_backup(const char *path)
{
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    cairn_check_report r;
    assert_cairn_ok(cairn_open(path, &o, &s));
    assert_cairn_ok(cairn_check(s, &r));
    struct counter *c;
    assert_cairn_ok(cairn_root_get(s, "counter", (void **)&c));
    uint64_t k = c->seq;
    assert_int_equal(c->check, k * 31 + 7);
    struct tu_link *l = c->list;
    for (uint64_t i = k; i >= 1; i--, l = l->next) {
        assert_non_null(l);
        assert_int_equal(l->val, i);
    }
    assert_null(l);
    assert_cairn_ok(cairn_close(s));
    return k;
}

static void backup_under_a_concurrent_writer(void **state)
{
    const char *dir = *state;
    char ready[4200];
    snprintf(ready, sizeof ready, "%s.ready", dir);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        writer((void *)dir);
        _exit(0);
    }
    struct stat st;
    for (int i = 0; i < 3000 && stat(ready, &st) != 0; i++)
        usleep(10000);
    assert_int_equal(stat(ready, &st), 0);

    uint64_t last = 0;
    int changed = 0;
    for (int b = 0; b < 8; b++) {
        char dest[4300];
        snprintf(dest, sizeof dest, "%s.backup%d", dir, b);
        assert_int_equal(tool(dir, "backup %s %s", dir, dest), 0);
        assert_true(out_has("checkpoint LSN"));
        char *said = slurp(out_path);
        print_message("%s", said); /* shows the retries taken */
        free(said);
        uint64_t k = verify_backup(dest);
        assert_true(k >= last); /* a later backup never goes back */
        changed += k > last;
        last = k;
        usleep(50000);
    }
    /* Force the race: pause between the LMDB copy and opening the log long
     * enough for the writer to checkpoint (every 25 commits); the backup
     * must notice the reset log, retry, and still be consistent. */
    char dest[4300];
    snprintf(dest, sizeof dest, "%s.raced", dir);
    assert_int_equal(store_test_control("backup_pause_ms=1500"), 0);
    assert_int_equal(tool(dir, "backup %s %s", dir, dest), 0);
    assert_int_equal(store_test_control(""), 0);
    assert_false(out_has(" 0 retries"));
    assert_true(verify_backup(dest) >= last);

    int status;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status)); /* the writer was still committing */
    assert_true(changed >= 4);        /* backups saw it progress */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        tu_dir_test(help_and_bad_arguments),
        tu_dir_test(missing_store_is_reported),
        tu_dir_test(gc_frees_exactly_the_unreachable),
        tu_dir_test(dump_of_a_cycle_terminates),
        tu_dir_test(read_commands_work_on_an_open_store),
        tu_dir_test(compact_preserves_every_object),
        tu_dir_test(check_reports_a_damaged_extent),
        tu_dir_test(check_reports_a_missing_log_as_damage),
        tu_dir_test(check_and_stat_report_an_unknown_data_mdb),
        tu_dir_test(truncated_data_mdb_never_crashes),
        tu_dir_test(mixed_files_are_refused),
        tu_dir_test(backup_under_a_concurrent_writer),
        tu_dir_test(snapshot_spills_beyond_its_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
