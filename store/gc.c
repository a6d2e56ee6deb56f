/*
 * gc.c - free every object no root reaches (`cairn gc`).
 *
 * Exact, not conservative: the pointer bitmaps say which words are
 * pointers, so nothing that merely looks like an address keeps an object
 * alive, and every pointer is followed (interior pointers included: they
 * keep the whole object).  The caller has checked the store first: on a
 * damaged store a missing pointer could make live objects look
 * unreachable.  Marking reads the committed bytes with the store's
 * transaction open and no page written yet; the unmarked objects are then
 * freed with cairn_free in that same transaction, which commits once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "walk.h"

struct garbage {
    struct walk *w;
    struct gc_report *r;
    size_t cap;
    uint64_t live;
    const struct inspect_hooks *hooks;
};

static void progress(const struct inspect_hooks *h, const char *pass, uint64_t done, uint64_t total)
{
    if (h && h->progress)
        h->progress(h->arg, pass, done, total);
}

static int collect_unmarked(void *arg, const struct walk_object *o)
{
    struct garbage *g = arg;
    struct gc_report *r = g->r;
    if (++g->live % 65536 == 0)
        progress(g->hooks, "sweep", g->live, g->w->sb.live_objects);
    if (walk_seen(g->w, o->off))
        return 0;
    if (r->n_unreachable == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 1024;
        struct gc_object *p = realloc(r->unreachable, cap * sizeof *p);
        if (!p)
            return ENOMEM;
        r->unreachable = p, g->cap = cap;
    }
    struct gc_object *u = &r->unreachable[r->n_unreachable++];
    u->off = o->off;
    u->bytes = o->bytes;
    u->type = o->type_known ? walk_type_name(g->w, o->type) : NULL;
    r->unreachable_bytes += o->bytes;
    return 0;
}

/* Mark and sweep-list under the store's locks, the transaction open and
 * clean. */
static int find_garbage(cairn_store *s, struct gc_report *r, const struct inspect_hooks *hooks)
{
    pthread_mutex_lock(&s->ckpt_mutex); /* no checkpoint in flight */
    pthread_mutex_lock(&s->log_mutex);
    pthread_rwlock_rdlock(&s->lmdb_lock);
    MDB_txn *txn;
    int rc = catalog_txn_begin(&s->cat, MDB_RDONLY, &txn);
    struct walk w;
    struct garbage g = {.w = &w, .r = r, .hooks = hooks};
    if (rc == 0) {
        rc = walk_init_store(&w, s, txn, 0);
        progress(hooks, "mark", 0, 0);
        if (rc == 0)
            rc = walk_mark(&w, NULL, &r->reachable_objects, &r->reachable_bytes);
        if (rc == 0)
            rc = walk_objects(&w, collect_unmarked, &g);
        walk_fini(&w);
        mdb_txn_abort(txn);
    }
    pthread_rwlock_unlock(&s->lmdb_lock);
    pthread_mutex_unlock(&s->log_mutex);
    pthread_mutex_unlock(&s->ckpt_mutex);
    return rc;
}

int gc_store(cairn_store *s, int dry_run, struct gc_report *r, const struct inspect_hooks *hooks, char *err,
             size_t errlen)
{
    memset(r, 0, sizeof *r);
    cairn_txn *t;
    int rc = cairn_txn_begin(s, &t);
    if (rc) {
        snprintf(err, errlen, "%s", cairn_strerror(rc));
        return rc;
    }
    rc = find_garbage(s, r, hooks);
    if (rc) {
        snprintf(err, errlen, "marking failed: %s", s->errmsg[0] ? s->errmsg : cairn_strerror(rc));
        cairn_txn_abort(t);
        return rc;
    }
    char *base;
    size_t len;
    cairn_range(s, (void **)&base, &len);
    for (size_t i = 0; !dry_run && rc == 0 && i < r->n_unreachable; i++) {
        rc = cairn_free(t, base + r->unreachable[i].off);
        if (i % 4096 == 0)
            progress(hooks, "free", i, r->n_unreachable);
    }
    /* Nothing to free: abort rather than log an empty transaction. */
    if (rc == 0 && !dry_run && r->n_unreachable > 0)
        rc = cairn_txn_commit(t);
    else
        cairn_txn_abort(t);
    if (rc)
        snprintf(err, errlen, "freeing failed, nothing changed: %s (%s)", cairn_strerror(rc), cairn_errmsg(s));
    return rc;
}

void gc_report_free(struct gc_report *r)
{
    free(r->unreachable);
    r->unreachable = NULL;
    r->n_unreachable = 0;
}
