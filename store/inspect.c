/*
 * inspect.c - what `cairn stat` shows, gathered from a snapshot: the
 * extents as stored (without decoding them), the allocator's counts and
 * free runs, and the objects of each type (one walk over the heap).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "walk.h"

struct type_counts {
    struct walk *w;
    const struct inspect_hooks *hooks;
    uint64_t *count, *bytes; /* per type id */
    uint64_t unknown[NCLASSES], unknown_bytes[NCLASSES];
    uint64_t objects;
};

static int count_object(void *arg, const struct walk_object *o)
{
    struct type_counts *tc = arg;
    tc->objects++;
    if (o->type_known) {
        tc->count[o->type]++;
        tc->bytes[o->type] += o->bytes;
    } else {
        tc->unknown[o->size_class]++;
        tc->unknown_bytes[o->size_class] += o->bytes;
    }
    if (tc->objects % 65536 == 0 && tc->hooks && tc->hooks->progress)
        tc->hooks->progress(tc->hooks->arg, "stat", o->off / PAGE_BYTES - tc->w->ds, tc->w->np - tc->w->ds);
    return 0;
}

/* The pid holding the flock on the store's lock file (a read-write
 * opener), from /proc/locks: reading it takes no lock, so a writer
 * opening meanwhile is never refused because we looked. */
static long writer_pid(const struct snapshot *sn)
{
    struct stat st;
    if (fstatat(sn->st.dirfd, "lock", &st, 0) != 0)
        return 0;
    FILE *f = fopen("/proc/locks", "re");
    if (!f)
        return 0;
    char line[256];
    long pid = 0;
    while (!pid && fgets(line, sizeof line, f)) {
        char kind[16], mode[16];
        unsigned maj, min;
        unsigned long long ino;
        long p;
        if (sscanf(line, "%*d: %15s %*s %15s %ld %x:%x:%llu", kind, mode, &p, &maj, &min, &ino) == 6 &&
            !strcmp(kind, "FLOCK") && !strcmp(mode, "WRITE") && ino == (unsigned long long)st.st_ino &&
            maj == major(st.st_dev) && min == minor(st.st_dev))
            pid = p;
    }
    fclose(f);
    return pid;
}

struct reader_list {
    struct holders *h;
    uint64_t last;
    long self;
};

/* mdb_reader_list's lines: "pid thread txnid" (txnid "-" for a slot kept
 * between reads, as the writer's load slots are). */
static int reader_line(const char *msg, void *ctx)
{
    struct reader_list *rl = ctx;
    long pid;
    unsigned long long txnid;
    if (sscanf(msg, " %ld %*s %llu", &pid, &txnid) != 2 || pid == rl->self)
        return 0;
    struct holders *h = rl->h;
    for (size_t i = 0; i < h->n_readers; i++) {
        if (h->readers[i].pid == pid) {
            if (txnid < h->readers[i].txnid)
                h->readers[i].txnid = txnid, h->readers[i].behind = rl->last - txnid;
            return 0;
        }
    }
    if (h->n_readers == HOLDERS_MAX) {
        h->more_readers++;
        return 0;
    }
    h->readers[h->n_readers].pid = pid;
    h->readers[h->n_readers].txnid = txnid;
    h->readers[h->n_readers].behind = rl->last > txnid ? rl->last - txnid : 0;
    h->n_readers++;
    return 0;
}

int snapshot_holders(const struct snapshot *sn, struct holders *out)
{
    memset(out, 0, sizeof *out);
    out->writer_pid = writer_pid(sn);
    MDB_envinfo info;
    if (mdb_env_info(sn->st.cat.env, &info) != 0)
        return CAIRN_IOERR;
    struct reader_list rl = {out, info.me_last_txnid, (long)getpid()};
    return mdb_reader_list(sn->st.cat.env, reader_line, &rl) < 0 ? CAIRN_IOERR : 0;
}

/* Count and size the extents as LMDB stores them. */
static int stored_extents(struct snapshot *sn, uint64_t *n, uint64_t *bytes)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(sn->txn, sn->st.cat.extents, &cur);
    if (rc)
        return lmdb_to_cairn(rc);
    for (rc = lmdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = lmdb_cursor_get(cur, &k, &v, MDB_NEXT))
        ++*n, *bytes += v.mv_size;
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : lmdb_to_cairn(rc);
}

/* The free-run list, bounded: a damaged list cannot loop. */
static void free_runs(struct walk *w, uint64_t *runs, uint64_t *pages)
{
    for (uint64_t n = w->sb.free_runs; n && *runs <= w->np; ++*runs) {
        struct page_desc d;
        if (n < w->ds || n >= w->np || walk_desc(w, n, &d) != 0 || d.kind != DESC_FREE_RUN)
            break;
        *pages += d.npages;
        n = d.next;
    }
}

int inspect_stat(struct snapshot *sn, struct store_stat *out, const struct inspect_hooks *hooks)
{
    cairn_store *s = &sn->st;
    memset(out, 0, sizeof *out);
    int rc = stored_extents(sn, &out->extents_stored, &out->compressed_bytes);
    struct stat fs;
    if (fstatat(s->dirfd, "data.mdb", &fs, 0) == 0) {
        out->data_mdb_bytes = (uint64_t)fs.st_size;
        out->data_mdb_mtime = (int64_t)fs.st_mtime;
    }
    struct walk w;
    struct type_counts tc = {.w = &w, .hooks = hooks};
    int wrc = walk_init_snapshot(&w, sn, 0);
    if (rc == 0)
        rc = wrc;
    size_t ntypes = s->n_types ? s->n_types : 1;
    if (rc == 0) {
        tc.count = calloc(ntypes, sizeof *tc.count);
        tc.bytes = calloc(ntypes, sizeof *tc.bytes);
        out->types = calloc(ntypes, sizeof *out->types);
        rc = tc.count && tc.bytes && out->types ? 0 : ENOMEM;
    }
    if (rc == 0)
        rc = walk_objects(&w, count_object, &tc);
    if (rc == 0) {
        free_runs(&w, &out->free_runs, &out->free_pages);
        out->data_start = w.ds;
        out->allocated = w.np - w.ds;
        out->live_objects = w.sb.live_objects;
        out->live_bytes = w.sb.live_bytes;
        for (uint32_t t = 0; t < ntypes; t++) {
            const char *name = walk_type_name(&w, t);
            if (!name || (t == 0 && !tc.count[0]))
                continue;
            struct stat_type *st = &out->types[out->n_types++];
            st->id = t;
            st->name = name;
            st->size = t ? s->types[t].size : 1;
            st->pointers = t ? s->types[t].n_ptrs : 0;
            st->objects = tc.count[t];
            st->bytes = tc.bytes[t];
        }
        for (int k = 0; k < NCLASSES; k++) {
            if (!tc.unknown[k])
                continue;
            out->untyped[out->n_untyped].class_bytes = heap_class_size[k];
            out->untyped[out->n_untyped].objects = tc.unknown[k];
            out->untyped[out->n_untyped++].bytes = tc.unknown_bytes[k];
        }
    }
    free(tc.count);
    free(tc.bytes);
    walk_fini(&w);
    if (rc)
        inspect_stat_free(out);
    return rc;
}

void inspect_stat_free(struct store_stat *st)
{
    free(st->types);
    st->types = NULL;
    st->n_types = 0;
}
