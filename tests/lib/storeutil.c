/*
 * storeutil.c - see storeutil.h.
 */
#define _GNU_SOURCE
#include "storeutil.h"
#include "testutil.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

cairn_store *tu_open_with(const char *dir, const cairn_options *o)
{
    cairn_store *s = NULL;
    assert_cairn_ok(cairn_open(dir, o, &s));
    assert_non_null(s);
    return s;
}

cairn_store *tu_open(const char *dir, unsigned flags)
{
    cairn_options o;
    tu_options(&o);
    o.flags = flags;
    return tu_open_with(dir, &o);
}

struct tu_blocker tu_close_and_block(cairn_store *s)
{
    struct tu_blocker b;
    assert_cairn_ok(cairn_range(s, &b.addr, &b.len));
    assert_cairn_ok(cairn_close(s));
    void *m = mmap(b.addr, b.len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (m != b.addr)
        fail_msg("could not reserve the old store range %p: %s", b.addr, m == MAP_FAILED ? strerror(errno) : "moved");
    return b;
}

void tu_unblock(struct tu_blocker b)
{
    assert_int_equal(munmap(b.addr, b.len), 0);
}

cairn_type tu_link_type(cairn_store *s)
{
    cairn_type t;
    size_t ptrs[] = {offsetof(struct tu_link, next)};
    assert_cairn_ok(cairn_type_register(s, "link", sizeof(struct tu_link), ptrs, 1, &t));
    return t;
}

void tu_flip_extent_byte(const char *dir, enum tu_extent_pick which)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    MDB_val k, v;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 4);
    mdb_env_set_mapsize(env, (size_t)4 << 30);
    assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "extents", MDB_INTEGERKEY, &dbi), 0);
    assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
    assert_int_equal(mdb_cursor_get(cur, &k, &v, which == TU_FIRST_EXTENT ? MDB_FIRST : MDB_LAST), 0);
    unsigned char *copy = malloc(v.mv_size);
    assert_non_null(copy);
    memcpy(copy, v.mv_data, v.mv_size);
    copy[v.mv_size / 2] ^= 0x40;
    MDB_val nv = {v.mv_size, copy};
    assert_int_equal(mdb_put(txn, dbi, &k, &nv, 0), 0);
    mdb_cursor_close(cur);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    free(copy);
}
