/*
 * storeutil.h - opening, moving and damaging test stores, and the link
 * type several suites build their graphs of.  cmocka: every function fails
 * the test when the library or LMDB does not do what it asks.
 */
#ifndef CAIRN_TESTS_STOREUTIL_H
#define CAIRN_TESTS_STOREUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "cairn.h"

/* Open the store in dir with tu_options() and these flags. */
cairn_store *tu_open(const char *dir, unsigned flags);
/* Open it with o. */
cairn_store *tu_open_with(const char *dir, const cairn_options *o);

/* Close s and keep its address range occupied, so that the next open must
 * place the store elsewhere and every stored pointer has to be swizzled to
 * a new value; tu_unblock frees the range again. */
struct tu_blocker {
    void *addr;
    size_t len;
};
struct tu_blocker tu_close_and_block(cairn_store *s);
void tu_unblock(struct tu_blocker b);

/* "link": a pointer to the next link, then a value. */
struct tu_link {
    struct tu_link *next;
    uint64_t val;
};
cairn_type tu_link_type(cairn_store *s);

/* Through LMDB, in dir's data.mdb (the store closed): XOR 0x40 into the
 * middle byte of the first or the last value of the "extents" database,
 * so that the extent no longer decodes. */
enum tu_extent_pick { TU_FIRST_EXTENT, TU_LAST_EXTENT };
void tu_flip_extent_byte(const char *dir, enum tu_extent_pick which);

#endif
