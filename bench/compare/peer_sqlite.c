/*
 * peer_sqlite.c - SQLite as its users would use it for this: a node table
 * keyed by INTEGER PRIMARY KEY (the id), pointer slots as nullable integer
 * columns, payload and blob as BLOBs; WAL mode, synchronous=FULL, prepared
 * statements; the build inserts 100,000 rows per transaction, every update
 * is its own transaction.  One connection per thread.  Cache size is
 * SQLite's default.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "peer.h"

#define BUILD_BATCH 100000

struct sq_peer {
    char path[4096];
    sqlite3 *db; /* the writer's connection */
    sqlite3_stmt *begin, *commit, *update, *get_counter;
    uint64_t root;
    uint64_t cache_bytes;
    uint64_t page_size, wal_frames_now, wal_bytes_appended;
};

/* A reader: its own connection, and the fetched row copied out. */
struct sq_node {
    uint64_t key, payload[G_PAYLOAD_WORDS], ptr[G_SLOTS], blob_len;
    uint8_t blob[G_BLOB_MAX];
};

struct sq_reader {
    struct sq_peer *p;
    sqlite3 *db;
    sqlite3_stmt *get;
    struct sq_node node;
};

static void ck(int rc, sqlite3 *db, const char *what)
{
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        die("sqlite", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

static void exec(sqlite3 *db, const char *sql)
{
    ck(sqlite3_exec(db, sql, NULL, NULL, NULL), db, sql);
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    ck(sqlite3_prepare_v2(db, sql, -1, &st, NULL), db, sql);
    return st;
}

static void step_done(sqlite3 *db, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        die("sqlite", what, sqlite3_errmsg(db));
    sqlite3_reset(st);
}

static sqlite3 *connect(const char *path, uint64_t cache_bytes)
{
    sqlite3 *db;
    ck(sqlite3_open(path, &db), NULL, "open");
    /* The phases open a connection per thread; the first to read a WAL
     * database left by a closed one rebuilds its index under an exclusive
     * lock, and without a busy handler the others fail at once with
     * "database is locked". */
    ck(sqlite3_busy_timeout(db, 60000), db, "busy_timeout");
    exec(db, "PRAGMA journal_mode=WAL");
    exec(db, "PRAGMA synchronous=FULL");
    if (cache_bytes) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA cache_size=-%llu", (unsigned long long)(cache_bytes >> 10));
        exec(db, sql);
    }
    return db;
}

static void db_path(char *out, size_t len, const char *dir)
{
    snprintf(out, len, "%s/graph.sqlite", dir);
}

static void sq_build(const char *dir, const graph *g)
{
    char path[4096];
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        die("sqlite", "mkdir", strerror(errno));
    db_path(path, sizeof path, dir);
    sqlite3 *db = connect(path, 0);
    exec(db, "CREATE TABLE node(id INTEGER PRIMARY KEY, key INTEGER NOT NULL, counter INTEGER NOT NULL, "
             "payload BLOB NOT NULL, p0 INTEGER, p1 INTEGER, p2 INTEGER, p3 INTEGER, blob BLOB)");
    sqlite3_stmt *ins = prepare(db, "INSERT INTO node VALUES(?,?,?,?,?,?,?,?,?)");
    uint8_t blob[G_BLOB_MAX];
    exec(db, "BEGIN");
    for (uint64_t id = 0; id < g->n; id++) {
        if (id && id % BUILD_BATCH == 0) {
            exec(db, "COMMIT");
            exec(db, "BEGIN");
        }
        uint64_t key, counter, payload[G_PAYLOAD_WORDS], p[G_SLOTS];
        g_fill_scalars(g, id, &key, &counter, payload);
        g_ptrs(g, id, p);
        uint32_t len = g_blob_len(g, id);
        sqlite3_bind_int64(ins, 1, (sqlite3_int64)id);
        sqlite3_bind_int64(ins, 2, (sqlite3_int64)key);
        sqlite3_bind_int64(ins, 3, (sqlite3_int64)counter);
        sqlite3_bind_blob(ins, 4, payload, sizeof payload, SQLITE_STATIC);
        for (int i = 0; i < G_SLOTS; i++) {
            if (p[i] == G_NIL)
                sqlite3_bind_null(ins, 5 + i);
            else
                sqlite3_bind_int64(ins, 5 + i, (sqlite3_int64)p[i]);
        }
        if (len) {
            g_blob_fill(key, blob, len);
            sqlite3_bind_blob(ins, 9, blob, (int)len, SQLITE_STATIC);
        } else {
            sqlite3_bind_null(ins, 9);
        }
        step_done(db, ins, "insert");
    }
    exec(db, "COMMIT");
    sqlite3_finalize(ins);
    ck(sqlite3_close(db), NULL, "close");
}

/* Bytes appended to the WAL, counted from the frames each commit adds
 * (a frame is a page plus a 24-byte header).  The file's size cannot say:
 * after a checkpoint SQLite writes the log from its start again.  A WAL
 * hook replaces SQLite's automatic checkpoint, so this one does what that
 * does (sqlite3_wal_autocheckpoint's default: at 1000 frames). */
static int sq_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    struct sq_peer *p = arg;
    uint64_t f = (uint64_t)frames;
    uint64_t added = f >= p->wal_frames_now ? f - p->wal_frames_now : f;
    p->wal_bytes_appended += added * (p->page_size + 24);
    p->wal_frames_now = f;
    if (frames >= 1000)
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

static void *sq_open(const char *dir, const graph *g, uint64_t cache_bytes)
{
    struct sq_peer *p = calloc(1, sizeof *p);
    db_path(p->path, sizeof p->path, dir);
    p->cache_bytes = cache_bytes;
    p->db = connect(p->path, cache_bytes);
    p->begin = prepare(p->db, "BEGIN");
    p->commit = prepare(p->db, "COMMIT");
    p->update = prepare(p->db, "UPDATE node SET counter = counter + 1 WHERE id = ?");
    p->get_counter = prepare(p->db, "SELECT counter FROM node WHERE id = ?");
    sqlite3_stmt *ps = prepare(p->db, "PRAGMA page_size");
    if (sqlite3_step(ps) != SQLITE_ROW)
        die("sqlite", "page_size", sqlite3_errmsg(p->db));
    p->page_size = (uint64_t)sqlite3_column_int64(ps, 0);
    sqlite3_finalize(ps);
    sqlite3_wal_hook(p->db, sq_wal_hook, p);
    p->root = g_root(g);
    return p;
}

static void *sq_reader_begin(void *h)
{
    struct sq_reader *r = calloc(1, sizeof *r);
    r->p = h;
    r->db = connect(r->p->path, r->p->cache_bytes);
    r->get = prepare(r->db, "SELECT key, payload, p0, p1, p2, p3, blob FROM node WHERE id = ?");
    return r;
}

static void sq_reader_end(void *rv)
{
    struct sq_reader *r = rv;
    sqlite3_finalize(r->get);
    ck(sqlite3_close(r->db), NULL, "close");
    free(r);
}

static const struct sq_node *sq_fetch(struct sq_reader *r, uint64_t id)
{
    sqlite3_stmt *st = r->get;
    struct sq_node *n = &r->node;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    if (sqlite3_step(st) != SQLITE_ROW)
        g_fail("sqlite: no row for a node the graph has", id);
    n->key = (uint64_t)sqlite3_column_int64(st, 0);
    if (sqlite3_column_bytes(st, 1) != sizeof n->payload)
        g_fail("sqlite: payload of the wrong size", id);
    memcpy(n->payload, sqlite3_column_blob(st, 1), sizeof n->payload);
    for (int i = 0; i < G_SLOTS; i++)
        n->ptr[i] = sqlite3_column_type(st, 2 + i) == SQLITE_NULL ? G_NIL : (uint64_t)sqlite3_column_int64(st, 2 + i);
    n->blob_len = 0;
    if (sqlite3_column_type(st, 6) != SQLITE_NULL) {
        n->blob_len = (uint64_t)sqlite3_column_bytes(st, 6);
        if (n->blob_len > G_BLOB_MAX)
            g_fail("sqlite: blob too long", id);
        memcpy(n->blob, sqlite3_column_blob(st, 6), n->blob_len);
    }
    sqlite3_reset(st);
    return n;
}

#define WALK_FN(x) sq_##x
#define WALK_CTX struct sq_reader *
#define WALK_REF uint64_t
#define WALK_IS_NIL(r) ((r) == G_NIL)
#define WALK_NODE struct sq_node
#define WALK_FETCH(ctx, r) sq_fetch(ctx, r)
#define WALK_KEY(n) ((n)->key)
#define WALK_PAYLOAD(n, j) ((n)->payload[j])
#define WALK_PTR(ctx, n, i) ((n)->ptr[i])
#define WALK_BLOB(ctx, n) ((n)->blob)
#define WALK_BLOB_LEN(n) ((n)->blob_len)
#include "walk_impl.h"

static walk_sum sq_full(void *rv, int part, int nparts)
{
    struct sq_reader *r = rv;
    return sq_walk_full(r, r->p->root, part, nparts);
}

static walk_sum sq_random(void *rv, uint64_t seed, uint64_t steps)
{
    struct sq_reader *r = rv;
    return sq_walk_random(r, r->p->root, seed, steps);
}

static void sq_update(void *h, uint64_t id)
{
    struct sq_peer *p = h;
    step_done(p->db, p->begin, "begin");
    sqlite3_bind_int64(p->update, 1, (sqlite3_int64)id);
    step_done(p->db, p->update, "update");
    if (sqlite3_changes(p->db) != 1)
        die("sqlite", "update", "no such row");
    step_done(p->db, p->commit, "commit");
}

static uint64_t sq_counter(void *h, uint64_t id)
{
    struct sq_peer *p = h;
    sqlite3_bind_int64(p->get_counter, 1, (sqlite3_int64)id);
    if (sqlite3_step(p->get_counter) != SQLITE_ROW)
        die("sqlite", "counter", sqlite3_errmsg(p->db));
    uint64_t c = (uint64_t)sqlite3_column_int64(p->get_counter, 0);
    sqlite3_reset(p->get_counter);
    return c;
}

static uint64_t sq_log_bytes(void *h)
{
    return ((struct sq_peer *)h)->wal_bytes_appended;
}

static void sq_close(void *h)
{
    struct sq_peer *p = h;
    sqlite3_finalize(p->begin);
    sqlite3_finalize(p->commit);
    sqlite3_finalize(p->update);
    sqlite3_finalize(p->get_counter);
    ck(sqlite3_close(p->db), NULL, "close");
    free(p);
}

const peer_ops peer_sqlite = {
    .name = "sqlite",
    .persistent = 1,
    .updates = 1,
    .build = sq_build,
    .open = sq_open,
    .reader_begin = sq_reader_begin,
    .reader_end = sq_reader_end,
    .walk_full = sq_full,
    .walk_random = sq_random,
    .update = sq_update,
    .counter = sq_counter,
    .log_bytes = sq_log_bytes,
    .close = sq_close,
    .note = "SQLite: node table with INTEGER PRIMARY KEY, WAL mode, synchronous=FULL, prepared statements, "
            "default cache size; 100,000 inserts per build transaction; one transaction per update",
};
