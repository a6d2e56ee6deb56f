/*
 * fuzz_catalog.c - libFuzzer harness for catalog decoding: the LMDB
 * database "meta" (docs/FORMAT.md section 3) as read by open_catalog
 * (store/store.c) and types_load (store/types.c), through the real entry
 * point cairn_open.
 *
 * Input: 1 control byte, then (key, value) pairs, each
 *     u8 key length, u16 value length (little-endian), key, value
 * (a truncated last pair takes what is left).  The pairs are mdb_put, in
 * order, into an emptied "meta" of an LMDB environment, next to an empty
 * "extents" database; the environment is copied into a per-process tmpfs
 * store directory (wiped per input).  The catalog keys (FORMAT.md section 3):
 *     format        u32, must be 1
 *     store_id      16 bytes
 *     page_size     u32, must be 4096
 *     extent_pages  u32, must be 16
 *     pages         u64, multiple of 16, 4096 <= pages <= 2^32
 *     ckpt_lsn      u64
 *     type/<name>   u32 id (1 .. 2^24), u32 n_ptrs, u64 size (> 0), then
 *                   n_ptrs u64 offsets (multiples of 8, offset + 8 <= size);
 *                   name 1..200 bytes
 * Control bits:
 *     0x01  first put a valid catalog (the keys above but type/, store id
 *           FUZZ_STORE_ID, 4096 pages, ckpt_lsn 0); the pairs then
 *           override or add to it
 *     0x02  write a valid "wal" header carrying the catalog's store_id
 *           (zeros if it is not 16 bytes) and start LSN ckpt_lsn + 1; without
 *           it an existing catalog fails with "log missing"
 *     0x04  open read-only
 *     0x08  no "extents" database
 *     0x10  after a successful open, use the catalog: re-register every
 *           type given in the input, allocate objects of each, write
 *           pointers into their pointer fields, set a root, then abort
 *           (or commit, with 0x20), run cairn_check
 *     0x20  commit instead of abort (with 0x10)
 *     0x40  log start LSN 1 whatever ckpt_lsn says
 *     0x80  "meta" created with MDB_DUPSORT
 * A store whose catalog has no "format" is created by a read-write open;
 * cairn_options.max_bytes is the minimum (16 MiB) so creation is quick.
 * To keep executions fast, inputs with a type id in (2^16, 2^24] are
 * skipped (see MAX_FUZZ_TYPE_ID), and 0x10 allocates no object larger than
 * 1 MiB.
 *
 * Expectations: cairn_open returns 0 or an error code (negative CAIRN_*,
 * or a positive errno) and never crashes; *out is set only on success;
 * no file descriptor is left open once the store is closed or the open
 * failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"
#include "fuzz_util.h"

#define C_PREFILL 0x01
#define C_WAL 0x02
#define C_RDONLY 0x04
#define C_NO_EXTENTS 0x08
#define C_EXERCISE 0x10
#define C_COMMIT 0x20
#define C_STALE_WAL 0x40
#define C_DUPSORT 0x80

#define MAX_TYPES 16
#define MAX_OFFS 64
#define MAX_ALLOC ((uint64_t)1 << 20)
/* types_load sizes its table by the largest type id (up to 2^24 entries of
 * 32 bytes: 512 MiB for one 16-byte record).  Inputs with an id above this
 * are skipped so that executions stay fast; the cost is known. */
#define MAX_FUZZ_TYPE_ID (1u << 16)

struct fz_type {
    char name[256];
    size_t name_len;
    uint32_t id;
    uint64_t size;
    size_t n;
    size_t offs[MAX_OFFS];
};

/* The store directory (wiped per input) and, next to it, the LMDB
 * environments the catalogs are built in: one per combination of meta
 * flags and "extents" present, opened once (creating an LMDB environment
 * costs megabytes of allocation, slow under AddressSanitizer), emptied per
 * input, then copied (mdb_env_copy2) into the store directory. */
static char rootdir[4096], storedir[4200];
static struct builder {
    MDB_env *env;
    MDB_dbi meta;
} builders[4];

static void init(void)
{
    snprintf(rootdir, sizeof rootdir, "%s", fz_scratch_dir("catalog"));
    snprintf(storedir, sizeof storedir, "%s/store", rootdir);
    FZ_CHECK(mkdir(storedir, 0755) == 0, "mkdir %s: %s", storedir, strerror(errno));
}

static struct builder *builder(unsigned ctl)
{
    unsigned i = (ctl & C_DUPSORT ? 1 : 0) | (ctl & C_NO_EXTENTS ? 2 : 0);
    struct builder *b = &builders[i];
    if (b->env)
        return b;
    char path[4300];
    snprintf(path, sizeof path, "%s/env%u", rootdir, i);
    FZ_CHECK(mkdir(path, 0755) == 0, "mkdir %s: %s", path, strerror(errno));
    int rc = mdb_env_create(&b->env);
    FZ_CHECK(rc == 0, "mdb_env_create: %s", mdb_strerror(rc));
    mdb_env_set_maxdbs(b->env, 4);
    mdb_env_set_mapsize(b->env, (size_t)64 << 20);
    rc = mdb_env_open(b->env, path, MDB_NOSYNC | MDB_NOMETASYNC, 0644);
    FZ_CHECK(rc == 0, "mdb_env_open %s: %s", path, mdb_strerror(rc));
    MDB_txn *txn;
    rc = mdb_txn_begin(b->env, NULL, 0, &txn);
    FZ_CHECK(rc == 0, "mdb_txn_begin: %s", mdb_strerror(rc));
    rc = mdb_dbi_open(txn, "meta", MDB_CREATE | (ctl & C_DUPSORT ? MDB_DUPSORT : 0), &b->meta);
    FZ_CHECK(rc == 0, "open meta: %s", mdb_strerror(rc));
    if (!(ctl & C_NO_EXTENTS)) {
        MDB_dbi ext;
        rc = mdb_dbi_open(txn, "extents", MDB_CREATE | MDB_INTEGERKEY, &ext);
        FZ_CHECK(rc == 0, "open extents: %s", mdb_strerror(rc));
    }
    rc = mdb_txn_commit(txn);
    FZ_CHECK(rc == 0, "mdb_txn_commit: %s", mdb_strerror(rc));
    return b;
}

static int put(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t kl, const void *v, size_t vl)
{
    MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
    return mdb_put(txn, dbi, &key, &val, 0);
}

/* Build the catalog and copy the environment into the store directory.
 * Returns the store id and ckpt_lsn found in the catalog afterwards (for
 * the log header). */
static void build_env(unsigned ctl, const uint8_t *p, size_t n, uint8_t id[16], uint64_t *ckpt)
{
    struct builder *b = builder(ctl);
    MDB_txn *txn;
    MDB_dbi meta = b->meta;
    int rc = mdb_txn_begin(b->env, NULL, 0, &txn);
    FZ_CHECK(rc == 0, "mdb_txn_begin: %s", mdb_strerror(rc));
    rc = mdb_drop(txn, meta, 0);
    FZ_CHECK(rc == 0, "mdb_drop: %s", mdb_strerror(rc));
    if (ctl & C_PREFILL) {
        uint32_t format = 1, page_size = 4096, extent_pages = 16;
        uint64_t pages = 4096, lsn = 0;
        put(txn, meta, "format", 6, &format, 4);
        put(txn, meta, "store_id", 8, FUZZ_STORE_ID, 16);
        put(txn, meta, "page_size", 9, &page_size, 4);
        put(txn, meta, "extent_pages", 12, &extent_pages, 4);
        put(txn, meta, "pages", 5, &pages, 8);
        put(txn, meta, "ckpt_lsn", 8, &lsn, 8);
    }
    size_t at = 0;
    while (at + 3 <= n) {
        size_t kl = p[at];
        size_t vl = (size_t)p[at + 1] | (size_t)p[at + 2] << 8;
        at += 3;
        if (kl > n - at)
            kl = n - at;
        const uint8_t *k = p + at;
        at += kl;
        if (vl > n - at)
            vl = n - at;
        const uint8_t *v = p + at;
        at += vl;
        rc = put(txn, meta, k, kl, v, vl);
        if (rc == MDB_MAP_FULL || rc == MDB_TXN_FULL)
            break; /* other errors (empty or too long key) just skip the pair */
    }
    MDB_val key = {8, "store_id"}, val;
    memset(id, 0, 16);
    if (mdb_get(txn, meta, &key, &val) == 0 && val.mv_size == 16)
        memcpy(id, val.mv_data, 16);
    key = (MDB_val){8, "ckpt_lsn"};
    *ckpt = 0;
    if (mdb_get(txn, meta, &key, &val) == 0 && val.mv_size == 8)
        memcpy(ckpt, val.mv_data, 8);
    rc = mdb_txn_commit(txn);
    FZ_CHECK(rc == 0, "mdb_txn_commit: %s", mdb_strerror(rc));
    rc = mdb_env_copy2(b->env, storedir, 0);
    FZ_CHECK(rc == 0, "mdb_env_copy2 to %s: %s", storedir, mdb_strerror(rc));
}

/* The type records of the input, as the harness reads them (up to
 * MAX_TYPES, offsets up to MAX_OFFS).  Without MDB_DUPSORT a later put of
 * the same key replaces the earlier value, so it replaces it here too.
 * *big_id: some record has an id in (MAX_FUZZ_TYPE_ID, 2^24]. */
static size_t parse_types(const uint8_t *p, size_t n, struct fz_type *t, int dupsort, int *big_id)
{
    size_t nt = 0, at = 0;
    *big_id = 0;
    while (at + 3 <= n) {
        size_t kl = p[at];
        size_t vl = (size_t)p[at + 1] | (size_t)p[at + 2] << 8;
        at += 3;
        if (kl > n - at)
            kl = n - at;
        const uint8_t *k = p + at;
        at += kl;
        if (vl > n - at)
            vl = n - at;
        const uint8_t *v = p + at;
        at += vl;
        if (kl <= 5 || memcmp(k, "type/", 5) != 0 || vl < 16)
            continue;
        if (fz_get32(v) > MAX_FUZZ_TYPE_ID && fz_get32(v) <= (1u << 24))
            *big_id = 1;
        struct fz_type *ty = NULL;
        for (size_t i = 0; i < nt && !dupsort; i++)
            if (t[i].name_len == kl - 5 && memcmp(t[i].name, k + 5, kl - 5) == 0)
                ty = &t[i];
        if (!ty && nt == MAX_TYPES)
            continue;
        if (!ty)
            ty = &t[nt++];
        memcpy(ty->name, k + 5, kl - 5);
        ty->name[kl - 5] = 0;
        ty->name_len = kl - 5;
        ty->id = fz_get32(v);
        uint32_t np = fz_get32(v + 4);
        ty->size = fz_get64(v + 8);
        ty->n = 0;
        for (size_t i = 0; i < np && i < MAX_OFFS && 16 + (i + 1) * 8 <= vl; i++)
            ty->offs[ty->n++] = (size_t)fz_get64(v + 16 + i * 8);
    }
    return nt;
}

static int known_rc(int rc)
{
    return rc == 0 || rc > 0 || (rc <= CAIRN_CORRUPT && rc >= CAIRN_UNSUPPORTED);
}

static void exercise(cairn_store *s, unsigned ctl, const struct fz_type *t, size_t nt)
{
    for (size_t i = 0; i < nt; i++) {
        cairn_type id = 0;
        int rc = cairn_type_register(s, t[i].name, (size_t)t[i].size, t[i].offs, t[i].n, &id);
        FZ_CHECK(known_rc(rc), "cairn_type_register: %d", rc);
    }
    cairn_txn *txn;
    int rc = cairn_txn_begin(s, &txn);
    FZ_CHECK(known_rc(rc), "cairn_txn_begin: %d", rc);
    if (rc)
        return;
    void *first = NULL;
    for (size_t i = 0; i <= nt; i++) {
        /* Type 1 even with no type in the input, then each input type id. */
        cairn_type id = i < nt ? t[i].id : 1;
        for (size_t count = 1; count <= 3; count += 2) {
            if (i < nt && (t[i].size > MAX_ALLOC || t[i].size * count > MAX_ALLOC))
                continue; /* keep executions fast; large objects up to 1 MiB still run */
            void *o = NULL;
            rc = cairn_alloc(txn, id, count, &o);
            FZ_CHECK(known_rc(rc), "cairn_alloc(type %u, %zu): %d", id, count, rc);
            if (fz_debug())
                fprintf(stderr, "fuzz_catalog:   alloc type %u x %zu: %d\n", id, count, rc);
            if (rc)
                continue;
            if (!first)
                first = o;
            /* Point every pointer field of the first element at the object. */
            if (i < nt && count == 1) {
                for (size_t k = 0; k < t[i].n; k++)
                    if (t[i].size >= 8 && t[i].offs[k] <= t[i].size - 8 && t[i].offs[k] % 8 == 0)
                        memcpy((char *)o + t[i].offs[k], &o, sizeof o);
            }
        }
    }
    void *b = NULL;
    if (cairn_alloc_bytes(txn, 100, &b) == 0 && !first)
        first = b;
    if (first) {
        rc = cairn_root_set(txn, "fuzz", first);
        FZ_CHECK(known_rc(rc), "cairn_root_set: %d", rc);
    }
    if (ctl & C_COMMIT) {
        rc = cairn_txn_commit(txn);
        FZ_CHECK(known_rc(rc), "cairn_txn_commit: %d", rc);
        if (rc)
            cairn_txn_abort(txn);
    } else {
        cairn_txn_abort(txn);
    }
    cairn_check_report rep;
    memset(&rep, 0, sizeof rep);
    rc = cairn_check(s, &rep);
    FZ_CHECK(known_rc(rc), "cairn_check: %d", rc);
    if (fz_debug())
        fprintf(stderr, "fuzz_catalog:   %zu input types, cairn_check %d: %llu objects, %llu problems %s\n", nt, rc,
                (unsigned long long)rep.objects, (unsigned long long)rep.problems, rep.first_problem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (!storedir[0])
        init();
    unsigned ctl = data[0];
    data++, size--;

    static struct fz_type types[MAX_TYPES];
    int big_id;
    size_t nt = parse_types(data, size, types, !!(ctl & C_DUPSORT), &big_id);
    if (big_id)
        return 0;

    fz_empty_dir(storedir);
    FZ_CHECK(fz_write_file(storedir, "lock", "", 0) == 0, "create lock file");
    uint8_t id[16];
    uint64_t ckpt = 0;
    build_env(ctl, data, size, id, &ckpt);
    if (ctl & C_WAL) {
        unsigned char h[FZ_WAL_HEADER] = {0};
        fz_put64(h + 32, 1);                                       /* generation */
        fz_put64(h + 40, ctl & C_STALE_WAL ? 1 : ckpt + 1);        /* start LSN */
        fz_put64(h + 48, 0x5eed5eed5eed5eedull);                   /* salt */
        fz_wal_seal_header(h, id, 1);
        FZ_CHECK(fz_write_file(storedir, "wal", h, sizeof h) == 0, "write wal");
    }

    cairn_options o;
    cairn_options_init(&o);
    o.max_bytes = (uint64_t)16 << 20;
    o.sync = CAIRN_SYNC_OFF;
    if (ctl & C_RDONLY)
        o.flags |= CAIRN_RDONLY;

    int fds = fz_count_fds();
    cairn_store *s = NULL;
    int rc = cairn_open(storedir, &o, &s);
    FZ_CHECK(known_rc(rc), "cairn_open returned %d", rc);
    if (fz_debug())
        fprintf(stderr, "fuzz_catalog: ctl %#x: cairn_open %d (%s)\n", ctl, rc, cairn_strerror(rc));
    if (rc == 0) {
        FZ_CHECK(s != NULL, "cairn_open succeeded without a store");
        if (ctl & C_EXERCISE)
            exercise(s, ctl, types, nt);
        rc = cairn_close(s);
        FZ_CHECK(known_rc(rc), "cairn_close returned %d", rc);
    } else {
        FZ_CHECK(s == NULL, "cairn_open failed (%d) but set *out", rc);
    }
    int fds_after = fz_count_fds();
    FZ_CHECK(fds_after <= fds, "file descriptors leaked: %d before cairn_open, %d after (rc %d)", fds, fds_after,
             rc);
    return 0;
}
