/*
 * types.c - the type catalog: registered layouts, persisted in LMDB.
 *
 * Key "type/<name>" -> { u32 id, u32 n_ptrs, u64 size, u64 offsets[n_ptrs] }.
 * Ids start at 1 (0 is raw bytes) and are never reused.  Registration is
 * durable on return (its own LMDB transaction), independent of cairn
 * transactions: a type registered inside a transaction that aborts stays
 * registered, which is harmless.  The whole catalog is read at open; it is
 * small (one entry per type), so this does not break "open reads no page".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

#define TYPES_MAX 65536 /* ids are below this: bounds the in-memory table */
#define TYPES_MAX_PTRS 65536

static int type_put(cairn_store *s, uint32_t id, const char *name, uint64_t size, const uint64_t *offs, uint32_t n)
{
    if (id >= s->n_types) {
        size_t cap = id + 16;
        struct type_info *t = realloc(s->types, cap * sizeof *t);
        if (!t)
            return ENOMEM;
        memset(t + s->n_types, 0, (cap - s->n_types) * sizeof *t);
        s->types = t;
        s->n_types = cap;
    }
    struct type_info *ti = &s->types[id];
    ti->name = strdup(name);
    ti->ptr_offsets = malloc((n ? n : 1) * sizeof *offs);
    if (!ti->name || !ti->ptr_offsets) {
        free(ti->name);
        free(ti->ptr_offsets);
        ti->name = NULL;
        return ENOMEM;
    }
    memcpy(ti->ptr_offsets, offs, n * sizeof *offs);
    ti->size = size;
    ti->n_ptrs = n;
    return 0;
}

int types_load(cairn_store *s, MDB_txn *txn)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->cat.meta, &c);
    if (rc)
        return lmdb_to_cairn(rc);
    MDB_val k = {strlen(CATALOG_TYPE_PREFIX), CATALOG_TYPE_PREFIX}, d;
    for (rc = lmdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == 0; rc = lmdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        size_t pl = strlen(CATALOG_TYPE_PREFIX);
        if (k.mv_size < pl || memcmp(k.mv_data, CATALOG_TYPE_PREFIX, pl) != 0)
            break;
        struct type_record r;
        if (d.mv_size < sizeof r || k.mv_size - pl > STORE_MAX_TYPE_NAME || k.mv_size == pl) {
            rc = CAIRN_CORRUPT;
            goto out;
        }
        memcpy(&r, d.mv_data, sizeof r);
        if (r.id == 0 || r.id >= TYPES_MAX || r.n_ptrs > TYPES_MAX_PTRS ||
            d.mv_size != sizeof r + (size_t)r.n_ptrs * 8 || r.size == 0 || r.size > s->cat.pages * PAGE_BYTES ||
            (r.n_ptrs && (r.size & 7)) || (r.id < s->n_types && s->types[r.id].name)) {
            rc = CAIRN_CORRUPT;
            goto out;
        }
        char name[STORE_MAX_TYPE_NAME + 1];
        memcpy(name, (char *)k.mv_data + pl, k.mv_size - pl);
        name[k.mv_size - pl] = 0;
        uint64_t *offs = malloc((r.n_ptrs ? r.n_ptrs : 1) * 8);
        if (!offs) {
            rc = ENOMEM;
            goto out;
        }
        memcpy(offs, (char *)d.mv_data + sizeof r, (size_t)r.n_ptrs * 8);
        /* The same rules as registration; written so nothing can wrap. */
        for (uint32_t i = 0; i < r.n_ptrs; i++)
            if ((offs[i] & 7) || r.size < 8 || offs[i] > r.size - 8 || (i && offs[i] <= offs[i - 1]))
                rc = CAIRN_CORRUPT;
        if (rc == 0)
            rc = type_put(s, r.id, name, r.size, offs, r.n_ptrs);
        free(offs);
        if (rc)
            goto out;
    }
    rc = rc == MDB_NOTFOUND ? 0 : lmdb_to_cairn(rc);
out:
    mdb_cursor_close(c);
    if (rc == CAIRN_CORRUPT)
        store_set_error(s, "%s: type catalog damaged", s->path);
    return rc;
}

void types_free(cairn_store *s)
{
    for (size_t i = 0; i < s->n_types; i++) {
        free(s->types[i].name);
        free(s->types[i].ptr_offsets);
    }
    free(s->types);
    s->types = NULL;
    s->n_types = 0;
}

int types_get(cairn_store *s, cairn_type t, struct type_info *out)
{
    int rc = CAIRN_INVALID;
    pthread_rwlock_rdlock(&s->types_lock);
    if (t < s->n_types && s->types[t].name) {
        *out = s->types[t]; /* entries are never changed or freed while open */
        rc = 0;
    }
    pthread_rwlock_unlock(&s->types_lock);
    return rc;
}

static int same_layout(const struct type_info *t, uint64_t size, const uint64_t *offs, uint32_t n)
{
    return t->size == size && t->n_ptrs == n && memcmp(t->ptr_offsets, offs, n * sizeof *offs) == 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * One LMDB write transaction: if the name is stored already (a previous
 * registration whose commit reported an error but took effect), adopt it
 * when the layout matches; otherwise take the next id from the catalog's
 * counter, so an id is never handed out twice even if memory and LMDB
 * disagree.  Returns 0, CAIRN_SCHEMA_MISMATCH, or an LMDB/errno code.
 */
static int register_in_lmdb(cairn_store *s, const char *key, unsigned char *val, size_t vlen, uint64_t size,
                            const uint64_t *offs, uint32_t n_ptrs, uint32_t *id)
{
    MDB_txn *txn;
    pthread_rwlock_rdlock(&s->lmdb_lock);
    int rc = catalog_txn_begin(&s->cat, 0, &txn);
    if (rc)
        goto out;
    MDB_val k = {strlen(key), (void *)key}, d;
    rc = lmdb_get(txn, s->cat.meta, &k, &d);
    if (rc == 0) {
        struct type_record r;
        if (d.mv_size == sizeof r + (size_t)n_ptrs * 8) {
            memcpy(&r, d.mv_data, sizeof r);
            if (r.size == size && r.n_ptrs == n_ptrs && memcmp((char *)d.mv_data + sizeof r, offs, n_ptrs * 8) == 0 &&
                r.id > 0 && r.id < TYPES_MAX) {
                *id = r.id;
                mdb_txn_abort(txn);
                goto out;
            }
        }
        mdb_txn_abort(txn);
        rc = CAIRN_SCHEMA_MISMATCH;
        goto out;
    }
    if (rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        goto out;
    }
    uint32_t next = 1;
    MDB_val nk = {strlen(CATALOG_TYPES_NEXT), CATALOG_TYPES_NEXT}, nd;
    rc = lmdb_get(txn, s->cat.meta, &nk, &nd);
    if (rc == 0 && nd.mv_size == 4)
        memcpy(&next, nd.mv_data, 4);
    /* Never below what memory knows of (a store from before the counter). */
    while (next < s->n_types && s->types[next].name)
        next++;
    if (next >= TYPES_MAX) {
        mdb_txn_abort(txn);
        rc = CAIRN_FULL;
        goto out;
    }
    struct type_record r = {.id = next, .n_ptrs = n_ptrs, .size = size};
    memcpy(val, &r, sizeof r);
    memcpy(val + sizeof r, offs, n_ptrs * 8);
    d = (MDB_val){vlen, val};
    uint32_t after = next + 1;
    nd = (MDB_val){4, &after};
    rc = lmdb_put(txn, s->cat.meta, &k, &d, MDB_NOOVERWRITE);
    if (rc == 0)
        rc = lmdb_put(txn, s->cat.meta, &nk, &nd, 0);
    if (rc == 0)
        rc = lmdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc == 0)
        *id = next;
out:
    pthread_rwlock_unlock(&s->lmdb_lock);
    return rc;
}

int cairn_type_register(cairn_store *s, const char *name, size_t size, const size_t *ptr_offsets, size_t n_ptrs,
                        cairn_type *out)
{
    if (!s || !name || !out || size == 0 || (n_ptrs && !ptr_offsets) || n_ptrs > TYPES_MAX_PTRS)
        return CAIRN_INVALID;
    size_t nl = strlen(name);
    if (nl == 0 || nl > STORE_MAX_TYPE_NAME)
        return CAIRN_INVALID;
    /* No object of a type larger than the store's range could exist. */
    if (size > s->cat.pages * PAGE_BYTES) {
        store_set_error(s, "type \"%.64s\": size %zu is larger than the store (%llu bytes)", name, size,
                        (unsigned long long)(s->cat.pages * PAGE_BYTES));
        return CAIRN_INVALID;
    }
    /* Pointer fields must be whole aligned words; with any, the stride of
     * an array must keep them aligned too. */
    if (n_ptrs && (size & 7))
        return CAIRN_INVALID;
    uint64_t *offs = malloc((n_ptrs ? n_ptrs : 1) * sizeof *offs);
    if (!offs)
        return ENOMEM;
    for (size_t i = 0; i < n_ptrs; i++) {
        offs[i] = ptr_offsets[i];
        if ((offs[i] & 7) || offs[i] + 8 > size) {
            free(offs);
            return CAIRN_INVALID;
        }
    }
    qsort(offs, n_ptrs, sizeof *offs, cmp_u64);
    for (size_t i = 1; i < n_ptrs; i++) {
        if (offs[i] == offs[i - 1]) {
            free(offs);
            return CAIRN_INVALID;
        }
    }

    int rc;
    pthread_rwlock_wrlock(&s->types_lock);
    for (size_t id = 1; id < s->n_types; id++) {
        struct type_info *t = &s->types[id];
        if (t->name && strcmp(t->name, name) == 0) {
            if (same_layout(t, size, offs, (uint32_t)n_ptrs)) {
                *out = (cairn_type)id;
                rc = 0;
            } else {
                store_set_error(s, "type \"%s\" is registered with another layout (size %llu, %u pointers)", name,
                                (unsigned long long)t->size, t->n_ptrs);
                rc = CAIRN_SCHEMA_MISMATCH;
            }
            goto out;
        }
    }
    if (s->readonly) {
        rc = CAIRN_READONLY;
        goto out;
    }
    if ((rc = store_failed(s)) != 0)
        goto out;
    size_t vlen = sizeof(struct type_record) + n_ptrs * 8;
    unsigned char *val = malloc(vlen);
    char *key = malloc(strlen(CATALOG_TYPE_PREFIX) + nl + 1);
    if (!val || !key) {
        free(val);
        free(key);
        rc = ENOMEM;
        goto out;
    }
    strcpy(key, CATALOG_TYPE_PREFIX);
    strcat(key, name);
    uint32_t id = 0;
    for (int attempt = 0;; attempt++) {
        rc = register_in_lmdb(s, key, val, vlen, size, offs, (uint32_t)n_ptrs, &id);
        if (rc != MDB_MAP_FULL || attempt > 40 || store_grow_map(s) != 0)
            break;
    }
    free(val);
    free(key);
    if (rc == CAIRN_SCHEMA_MISMATCH)
        store_set_error(s, "type \"%s\" is registered with another layout", name);
    else
        rc = lmdb_to_cairn(rc);
    if (rc == 0 && !(id < s->n_types && s->types[id].name))
        rc = type_put(s, id, name, size, offs, (uint32_t)n_ptrs);
    if (rc == 0)
        *out = id;
out:
    pthread_rwlock_unlock(&s->types_lock);
    free(offs);
    return rc;
}
