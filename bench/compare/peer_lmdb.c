/*
 * peer_lmdb.c - LMDB used directly: one database, a node per key (its id,
 * MDB_INTEGERKEY), the value a fixed record with the pointer slots as ids
 * and the blob inline after it.  One mdb_get per hop inside a read
 * transaction per thread; one write transaction per update (get, copy,
 * change, put), default flags, so each commit is synced.  The build puts
 * keys in order with MDB_APPEND, 100,000 per transaction, as LMDB's
 * documentation advises for bulk loads.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "peer.h"

#define BUILD_BATCH 100000

struct lrec {
    uint64_t key, counter, payload[G_PAYLOAD_WORDS];
    uint64_t ptr[G_SLOTS]; /* ids, G_NIL for none */
    uint64_t blob_len;     /* the blob's bytes follow the record */
};

struct lmdb_peer {
    MDB_env *env;
    MDB_dbi dbi;
    uint64_t root;
};

struct lmdb_reader {
    struct lmdb_peer *p;
    MDB_txn *txn;
};

static void ck(int rc, const char *what)
{
    if (rc != MDB_SUCCESS)
        die("lmdb", what, mdb_strerror(rc));
}

static struct lmdb_peer *env_open(const char *dir, const graph *g)
{
    struct lmdb_peer *p = calloc(1, sizeof *p);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        die("lmdb", "mkdir", strerror(errno));
    ck(mdb_env_create(&p->env), "env_create");
    ck(mdb_env_set_mapsize(p->env, (size_t)1 << 38), "set_mapsize"); /* address space only */
    ck(mdb_env_set_maxdbs(p->env, 1), "set_maxdbs");
    ck(mdb_env_open(p->env, dir, 0, 0644), "env_open");
    MDB_txn *t;
    ck(mdb_txn_begin(p->env, NULL, 0, &t), "txn_begin");
    ck(mdb_dbi_open(t, "nodes", MDB_CREATE | MDB_INTEGERKEY, &p->dbi), "dbi_open");
    ck(mdb_txn_commit(t), "commit");
    p->root = g_root(g);
    return p;
}

static void lmdb_build(const char *dir, const graph *g)
{
    struct lmdb_peer *p = env_open(dir, g);
    MDB_txn *t;
    uint8_t buf[sizeof(struct lrec) + G_BLOB_MAX];
    struct lrec *r = (struct lrec *)buf;
    ck(mdb_txn_begin(p->env, NULL, 0, &t), "txn_begin");
    for (uint64_t id = 0; id < g->n; id++) {
        if (id && id % BUILD_BATCH == 0) {
            ck(mdb_txn_commit(t), "commit");
            ck(mdb_txn_begin(p->env, NULL, 0, &t), "txn_begin");
        }
        g_fill_scalars(g, id, &r->key, &r->counter, r->payload);
        g_ptrs(g, id, r->ptr);
        r->blob_len = g_blob_len(g, id);
        g_blob_fill(r->key, buf + sizeof *r, r->blob_len);
        size_t kid = (size_t)id;
        MDB_val k = {sizeof kid, &kid}, v = {sizeof *r + r->blob_len, buf};
        ck(mdb_put(t, p->dbi, &k, &v, MDB_APPEND), "put");
    }
    ck(mdb_txn_commit(t), "commit");
    mdb_env_close(p->env);
    free(p);
}

static void *lmdb_open(const char *dir, const graph *g, uint64_t cache_bytes)
{
    (void)cache_bytes; /* LMDB has no cache of its own: the page cache is it */
    return env_open(dir, g);
}

static void *lmdb_reader_begin(void *h)
{
    struct lmdb_reader *r = calloc(1, sizeof *r);
    r->p = h;
    ck(mdb_txn_begin(r->p->env, NULL, MDB_RDONLY, &r->txn), "read txn_begin");
    return r;
}

static void lmdb_reader_end(void *rv)
{
    struct lmdb_reader *r = rv;
    mdb_txn_abort(r->txn);
    free(r);
}

/* LMDB aligns values to 2 bytes only: fields are read with memcpy (one
 * load on x86-64 and arm64), never through a struct pointer. */
struct lval {
    unsigned char bytes[1];
};

static inline uint64_t ld64(const struct lval *v, size_t off)
{
    uint64_t x;
    memcpy(&x, v->bytes + off, sizeof x);
    return x;
}

static inline const struct lval *lmdb_fetch(struct lmdb_reader *r, uint64_t id)
{
    size_t kid = (size_t)id;
    MDB_val k = {sizeof kid, &kid}, v;
    int rc = mdb_get(r->txn, r->p->dbi, &k, &v);
    if (rc != MDB_SUCCESS)
        g_fail("lmdb: mdb_get of a node the graph has", id);
    if (v.mv_size < sizeof(struct lrec))
        g_fail("lmdb: short record", id);
    return v.mv_data;
}

#define WALK_FN(x) lmdb_##x
#define WALK_CTX struct lmdb_reader *
#define WALK_REF uint64_t
#define WALK_IS_NIL(r) ((r) == G_NIL)
#define WALK_NODE struct lval
#define WALK_FETCH(ctx, r) lmdb_fetch(ctx, r)
#define WALK_KEY(n) ld64(n, offsetof(struct lrec, key))
#define WALK_PAYLOAD(n, j) ld64(n, offsetof(struct lrec, payload) + 8 * (size_t)(j))
#define WALK_PTR(ctx, n, i) ld64(n, offsetof(struct lrec, ptr) + 8 * (size_t)(i))
#define WALK_BLOB(ctx, n) ((n)->bytes + sizeof(struct lrec))
#define WALK_BLOB_LEN(n) ld64(n, offsetof(struct lrec, blob_len))
#include "walk_impl.h"

static walk_sum lmdb_full(void *rv, int part, int nparts)
{
    struct lmdb_reader *r = rv;
    return lmdb_walk_full(r, r->p->root, part, nparts);
}

static walk_sum lmdb_random(void *rv, uint64_t seed, uint64_t steps)
{
    struct lmdb_reader *r = rv;
    return lmdb_walk_random(r, r->p->root, seed, steps);
}

static void lmdb_update(void *h, uint64_t id)
{
    struct lmdb_peer *p = h;
    MDB_txn *t;
    uint8_t buf[sizeof(struct lrec) + G_BLOB_MAX];
    size_t kid = (size_t)id;
    MDB_val k = {sizeof kid, &kid}, v;
    ck(mdb_txn_begin(p->env, NULL, 0, &t), "txn_begin");
    ck(mdb_get(t, p->dbi, &k, &v), "get");
    if (v.mv_size > sizeof buf)
        die("lmdb", "update", "record larger than any the graph has");
    memcpy(buf, v.mv_data, v.mv_size);
    ((struct lrec *)buf)->counter++;
    v.mv_data = buf;
    ck(mdb_put(t, p->dbi, &k, &v, 0), "put");
    ck(mdb_txn_commit(t), "commit");
}

static uint64_t lmdb_counter(void *h, uint64_t id)
{
    struct lmdb_reader *r = lmdb_reader_begin(h);
    uint64_t c = ld64(lmdb_fetch(r, id), offsetof(struct lrec, counter));
    lmdb_reader_end(r);
    return c;
}

static void lmdb_close(void *h)
{
    struct lmdb_peer *p = h;
    mdb_env_close(p->env);
    free(p);
}

const peer_ops peer_lmdb = {
    .name = "lmdb",
    .persistent = 1,
    .updates = 1,
    .build = lmdb_build,
    .open = lmdb_open,
    .reader_begin = lmdb_reader_begin,
    .reader_end = lmdb_reader_end,
    .walk_full = lmdb_full,
    .walk_random = lmdb_random,
    .update = lmdb_update,
    .counter = lmdb_counter,
    .close = lmdb_close,
    .note = "LMDB directly: MDB_INTEGERKEY id -> record with the blob inline; mdb_get per hop; bulk load with "
            "MDB_APPEND, 100,000 puts per transaction; one synced write transaction per update",
};
