/*
 * cmd_dump.c - `cairn dump`: objects as JSON lines, for debugging and
 * diffing two stores or two states of one.
 *
 * One line per root, then one per object.  Addresses are store offsets
 * (the same in every process, unlike the pointers an application sees).
 * Raw bytes are printed as hex; anything else as its 8-byte words keyed
 * by byte offset, pointer words as {"ptr": offset or null}.  With --root,
 * objects are visited breadth-first from that root, each once, so a graph
 * with cycles ends; --depth bounds the distance from the root.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

static const char dump_usage[] =
    "usage: cairn dump [--root NAME] [--depth K] [--max-bytes N] STORE\n"
    "\n"
    "Print the roots, then the objects, as JSON lines:\n"
    "  {\"root\":\"tree\",\"offset\":2162688}\n"
    "  {\"offset\":2162688,\"type\":\"demo.node\",\"size\":32,\"words\":{\"0\":7,\"8\":{\"ptr\":2162720},...}}\n"
    "Offsets are store offsets.  Raw bytes are printed as \"hex\".  A small object\n"
    "whose layout fits no single registered type has \"type\":null and its \"class\".\n"
    "Reads a snapshot: works while another process has the store open.\n"
    "\n"
    "  --root NAME     only what NAME reaches, breadth-first, each object once\n"
    "                  (\"depth\" is its distance from the root)\n"
    "  --depth K       with --root: stop K pointers away from the root (0 = the root object)\n"
    "  --max-bytes N   print at most N bytes of each object (default 4096, 0 = all)\n"
    "  --help          this text\n";

struct dump {
    struct walk *w;
    uint64_t max_bytes;
    int nwords;
};

static int print_word(void *arg, uint64_t at, uint64_t v, int is_pointer)
{
    struct dump *d = arg;
    printf("%s\"%llu\":", d->nwords++ ? "," : "", (unsigned long long)at);
    if (is_pointer && v == 0)
        printf("{\"ptr\":null}");
    else if (is_pointer)
        printf("{\"ptr\":%llu}", (unsigned long long)v);
    else if (v < ((uint64_t)1 << 53))
        printf("%llu", (unsigned long long)v); /* exact in any JSON reader */
    else
        printf("\"%#llx\"", (unsigned long long)v);
    return 0;
}

static int print_hex(struct dump *d, const struct walk_object *o)
{
    uint64_t len = d->max_bytes && d->max_bytes < o->bytes ? d->max_bytes : o->bytes;
    unsigned char buf[4096];
    printf(",\"hex\":\"");
    for (uint64_t at = 0; at < len;) {
        uint64_t chunk = len - at < sizeof buf ? len - at : sizeof buf;
        int rc = walk_read(d->w, o->off + at, buf, chunk);
        if (rc)
            return rc;
        for (uint64_t i = 0; i < chunk; i++)
            printf("%02x", buf[i]);
        at += chunk;
    }
    printf("\"");
    return 0;
}

static int print_object(struct dump *d, const struct walk_object *o, long depth)
{
    printf("{\"offset\":%llu,\"type\":", (unsigned long long)o->off);
    const char *name = o->type_known ? walk_type_name(d->w, o->type) : NULL;
    if (name)
        json_string(stdout, name);
    else if (o->type_known)
        printf("\"#%u\"", o->type); /* id not in the catalog: cairn check reports it */
    else
        printf("null");
    printf(",\"size\":%llu", (unsigned long long)o->bytes);
    if (o->size_class >= 0)
        printf(",\"class\":%u", o->class_bytes);
    if (depth >= 0)
        printf(",\"depth\":%ld", depth);
    int rc;
    if (o->type_known && o->type == 0) {
        rc = print_hex(d, o);
    } else {
        printf(",\"words\":{");
        d->nwords = 0;
        rc = walk_words(d->w, o, d->max_bytes, print_word, d);
        printf("}");
    }
    if (d->max_bytes && o->bytes > d->max_bytes)
        printf(",\"truncated\":true");
    printf("}\n");
    return rc;
}

static int dump_one(void *arg, const struct walk_object *o)
{
    return print_object(arg, o, -1);
}

static int print_root_line(void *arg, const char *name, uint64_t v)
{
    const char *want = arg;
    if (want && strcmp(want, name) != 0)
        return 0;
    printf("{\"root\":");
    json_string(stdout, name);
    printf(",\"offset\":%llu}\n", (unsigned long long)v);
    return 0;
}

struct root_lookup {
    const char *name;
    uint64_t v;
    int found;
};

static int find_root(void *arg, const char *name, uint64_t v)
{
    struct root_lookup *r = arg;
    if (strcmp(r->name, name) == 0)
        r->v = v, r->found = 1;
    return 0;
}

/* Breadth-first from one root: a queue of (offset, depth). */
struct bfs {
    struct walk *w;
    uint64_t *off;
    long *depth;
    size_t head, tail, cap;
    long at_depth;
};

static int enqueue(struct bfs *q, uint64_t v, long depth)
{
    struct walk_object o;
    int rc = v ? walk_object_at(q->w, v, &o) : 0;
    if (rc <= 0 || !walk_visit(q->w, o.off))
        return rc < 0 ? rc : 0;
    if (q->tail == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 1024;
        uint64_t *off = realloc(q->off, cap * sizeof *off);
        if (off)
            q->off = off;
        long *dep = realloc(q->depth, cap * sizeof *dep);
        if (dep)
            q->depth = dep;
        if (!off || !dep)
            return ENOMEM;
        q->cap = cap;
    }
    q->off[q->tail] = o.off;
    q->depth[q->tail++] = depth;
    return 0;
}

static int enqueue_pointer(void *arg, uint64_t at, uint64_t v, int is_pointer)
{
    (void)at;
    struct bfs *q = arg;
    return is_pointer ? enqueue(q, v, q->at_depth + 1) : 0;
}

static int dump_from_root(struct dump *d, uint64_t root, long max_depth)
{
    struct bfs q = {.w = d->w};
    int rc = enqueue(&q, root, 0);
    while (rc == 0 && q.head < q.tail) {
        struct walk_object o;
        uint64_t off = q.off[q.head];
        q.at_depth = q.depth[q.head++];
        rc = walk_object_at(d->w, off, &o);
        if (rc != 1)
            break;
        rc = print_object(d, &o, q.at_depth);
        if (rc == 0 && (max_depth < 0 || q.at_depth < max_depth))
            rc = walk_words(d->w, &o, 0, enqueue_pointer, &q);
    }
    free(q.off);
    free(q.depth);
    return rc < 0 || rc > 1 ? rc : 0;
}

int cmd_dump(int argc, char **argv)
{
    static const struct option opts[] = {{"root", required_argument, 0, 'r'},
                                         {"depth", required_argument, 0, 'd'},
                                         {"max-bytes", required_argument, 0, 'm'},
                                         {"help", no_argument, 0, 'h'},
                                         {0}};
    const char *root = NULL;
    long depth = -1;
    struct dump d = {.max_bytes = 4096};
    int c;
    uint64_t v;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'r')
            root = optarg;
        else if (c == 'd' && parse_u64(optarg, &v) == 0 && v < 1000000000)
            depth = (long)v;
        else if (c == 'm' && parse_u64(optarg, &d.max_bytes) == 0)
            continue;
        else if (c == 'h')
            return fputs(dump_usage, stdout), CMD_OK;
        else
            return fputs(dump_usage, stderr), CMD_FAIL;
    }
    if (optind != argc - 1 || (depth >= 0 && !root)) {
        if (depth >= 0 && !root)
            cmd_error("dump", "--depth needs --root");
        return fputs(dump_usage, stderr), CMD_FAIL;
    }
    const char *path = argv[optind];
    struct snapshot *sn;
    int rc = cmd_snapshot("dump", path, &sn);
    if (rc)
        return cmd_exit_for(rc);
    struct walk *w = NULL;
    rc = walk_open(sn, &w);
    d.w = w;
    struct root_lookup r = {.name = root};
    if (rc == 0 && root) {
        rc = walk_roots(w, find_root, &r);
        if (rc == 0 && !r.found) {
            cmd_error("dump", "%s: no root named \"%s\"", path, root);
            walk_close(w);
            snapshot_close(sn);
            return CMD_FAIL;
        }
    }
    if (rc == 0)
        rc = walk_roots(w, print_root_line, (void *)root);
    if (rc == 0)
        rc = root ? dump_from_root(&d, r.v, depth) : walk_objects(w, dump_one, &d);
    if (rc)
        cmd_error("dump", "%s", snapshot_errmsg(sn)[0] ? snapshot_errmsg(sn) : cairn_strerror(rc));
    if (fflush(stdout) != 0 && rc == 0) {
        cmd_error("dump", "writing the output failed");
        rc = EIO;
    }
    walk_close(w);
    snapshot_close(sn);
    return rc ? CMD_FAIL : CMD_OK;
}
