/*
 * cmd_gc.c - `cairn gc`: free every object no root reaches.
 *
 * Exact, not conservative: the pointer bitmaps say which words are
 * pointers, so nothing that merely looks like an address keeps an object
 * alive, and every pointer is followed (interior pointers included: they
 * keep the whole object).  The store is opened normally (so it must not be
 * open elsewhere) and checked first: on a damaged store a missing pointer
 * could make live objects look unreachable, so gc refuses.  Marking reads
 * the committed bytes with the store's transaction open and no page
 * written yet; the unmarked objects are then freed with cairn_free in
 * that same transaction, which commits once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "walk.h"

static const char gc_usage[] = "usage: cairn gc [--dry-run] [--list] [--json] STORE\n"
                               "\n"
                               "Free every object that no root reaches through pointer fields, in one\n"
                               "transaction.  Runs the integrity check first and refuses (exit 1) if it\n"
                               "finds problems.  Needs the store to itself (exit 2 if it is open elsewhere).\n"
                               "\n"
                               "  --dry-run   report what would be freed, change nothing\n"
                               "  --list      print each unreachable object: offset, type, size\n"
                               "  --json      one JSON object instead of text (the list goes in it)\n"
                               "  --help      this text\n";

struct garbage {
    struct walk *w;
    uint64_t *off;
    size_t n, cap;
    uint64_t bytes, live;
    struct progress pr;
};

static int collect_unmarked(void *arg, const struct walk_object *o)
{
    struct garbage *g = arg;
    if (++g->live % 65536 == 0)
        progress_show(&g->pr, g->live, g->w->sb.live_objects);
    if (walk_seen(g->w, o->off))
        return 0;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 1024;
        uint64_t *p = realloc(g->off, cap * sizeof *p);
        if (!p)
            return ENOMEM;
        g->off = p, g->cap = cap;
    }
    g->off[g->n++] = o->off;
    g->bytes += o->bytes;
    return 0;
}

/* Mark and sweep-list under the store's locks, t open and clean. */
static int find_garbage(cairn_store *s, struct garbage *g, uint64_t *reached, uint64_t *reached_bytes, int list,
                        int json)
{
    pthread_mutex_lock(&s->log_mutex);
    pthread_rwlock_rdlock(&s->lmdb_lock);
    MDB_txn *txn;
    int rc = store_txn_begin(s, s->env, MDB_RDONLY, &txn);
    struct walk w;
    g->w = &w;
    if (rc == 0) {
        rc = walk_init_store(&w, s, txn);
        progress_begin(&g->pr, "mark");
        if (rc == 0)
            rc = walk_mark(&w, NULL, reached, reached_bytes);
        g->pr.label = "sweep";
        if (rc == 0)
            rc = walk_objects(&w, collect_unmarked, g);
        progress_end(&g->pr);
        for (size_t i = 0; rc == 0 && list && i < g->n; i++) {
            struct walk_object o;
            if (walk_object_at(&w, g->off[i], &o) != 1)
                continue;
            const char *name = o.type_known ? walk_type_name(&w, o.type) : NULL;
            if (json) {
                printf("%s{\"offset\":%llu,\"type\":", i ? "," : "", (unsigned long long)o.off);
                if (name)
                    json_string(stdout, name);
                else
                    printf("null");
                printf(",\"size\":%llu}", (unsigned long long)o.bytes);
            } else {
                printf("unreachable %#llx %s %llu\n", (unsigned long long)o.off, name ? name : "?",
                       (unsigned long long)o.bytes);
            }
        }
        walk_fini(&w);
        mdb_txn_abort(txn);
    }
    pthread_rwlock_unlock(&s->lmdb_lock);
    pthread_mutex_unlock(&s->log_mutex);
    return rc;
}

int cmd_gc(int argc, char **argv)
{
    static const struct option opts[] = {{"dry-run", no_argument, 0, 'n'},
                                         {"list", no_argument, 0, 'l'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0}};
    int dry = 0, list = 0, json = 0, c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'n')
            dry = 1;
        else if (c == 'l')
            list = 1;
        else if (c == 'j')
            json = 1;
        else if (c == 'h')
            return fputs(gc_usage, stdout), CMD_OK;
        else
            return fputs(gc_usage, stderr), CMD_FAIL;
    }
    if (optind != argc - 1)
        return fputs(gc_usage, stderr), CMD_FAIL;
    const char *path = argv[optind];
    /* cairn_open would create a missing store: look first. */
    char *data;
    if (asprintf(&data, "%s/data.mdb", path) < 0)
        return CMD_FAIL;
    int exists = access(data, R_OK | W_OK) == 0;
    int err = errno;
    free(data);
    if (!exists) {
        cmd_error("gc", "%s/data.mdb: %s (not a cairn store?)", path, strerror(err));
        return CMD_FAIL;
    }
    cairn_store *s;
    int rc = cairn_open(path, NULL, &s);
    if (rc) {
        cmd_error("gc", "%s: cannot open: %s%s%s", path, cairn_strerror(rc),
                  rc == CAIRN_BUSY ? " (open in another process; gc needs it to itself)" : "",
                  rc == CAIRN_CORRUPT ? " (run cairn check)" : "");
        return cmd_exit_for(rc);
    }
    cairn_check_report r;
    rc = cairn_check(s, &r);
    if (rc) {
        if (rc == CAIRN_CORRUPT)
            cmd_error("gc", "%s: refusing: the check found %llu problems, first: %s", path,
                      (unsigned long long)r.problems, r.first_problem);
        else
            cmd_error("gc", "%s: the check could not run: %s", path, cairn_strerror(rc));
        cairn_close(s);
        return cmd_exit_for(rc);
    }
    cairn_txn *t;
    rc = cairn_txn_begin(s, &t);
    if (rc) {
        cmd_error("gc", "%s: %s", path, cairn_strerror(rc));
        cairn_close(s);
        return CMD_FAIL;
    }
    struct garbage g = {0};
    uint64_t reached = 0, reached_bytes = 0;
    if (json) {
        printf("{\"path\":");
        json_string(stdout, path);
        printf(",\"unreachable\":[");
    }
    rc = find_garbage(s, &g, &reached, &reached_bytes, list, json);
    if (rc) {
        cmd_error("gc", "%s: marking failed: %s", path, s->errmsg[0] ? s->errmsg : cairn_strerror(rc));
        cairn_txn_abort(t);
        cairn_close(s);
        free(g.off);
        return CMD_FAIL;
    }
    char *base;
    size_t len;
    cairn_range(s, (void **)&base, &len);
    struct progress pr;
    progress_begin(&pr, "free");
    for (size_t i = 0; !dry && rc == 0 && i < g.n; i++) {
        rc = cairn_free(t, base + g.off[i]);
        if (i % 4096 == 0)
            progress_show(&pr, i, g.n);
    }
    progress_end(&pr);
    /* Nothing to free: abort rather than log an empty transaction. */
    if (rc == 0 && !dry && g.n > 0)
        rc = cairn_txn_commit(t);
    else
        cairn_txn_abort(t);
    if (rc) {
        cmd_error("gc", "%s: freeing failed, nothing changed: %s (%s)", path, cairn_strerror(rc), cairn_errmsg(s));
        cairn_close(s);
        free(g.off);
        return CMD_FAIL;
    }
    rc = cairn_close(s);
    if (rc)
        cmd_error("gc", "%s: closing (checkpoint): %s; the log holds the change", path, cairn_strerror(rc));
    char b1[32], b2[32];
    if (json)
        printf("],\"dry_run\":%s,\"reachable_objects\":%llu,\"reachable_bytes\":%llu,\"unreachable_objects\":%zu,"
               "\"unreachable_bytes\":%llu}\n",
               dry ? "true" : "false", (unsigned long long)reached, (unsigned long long)reached_bytes, g.n,
               (unsigned long long)g.bytes);
    else
        printf("%s: %llu objects reachable (%s); %zu unreachable (%s) %s\n", path, (unsigned long long)reached,
               human_bytes(reached_bytes, b1), g.n, human_bytes(g.bytes, b2),
               dry ? "would be freed (dry run)" : "freed");
    free(g.off);
    return CMD_OK;
}
