/*
 * testutil.h - what every cmocka test of cairn includes: cmocka itself, the
 * domain assertions, the temporary-directory fixtures (tempdir.h), test
 * options, and probes of what a store holds in the process.
 *
 * The rest of tests/lib is included where it is used: files.h (whole
 * files of a store directory), storeutil.h (opening, moving and damaging
 * test stores; the shared link type), child.h (checks inside re-executed
 * child processes), splitmix.h (the tests' random numbers), prefix_model.h
 * (the list workload of the recovery and power-loss suites).
 */
#ifndef CAIRN_TESTUTIL_H
#define CAIRN_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cairn.h"
#include "tempdir.h"

/* Fail with cairn_strerror() text when rc is not CAIRN_OK. */
#define assert_cairn_ok(expr)                                                                                          \
    do {                                                                                                               \
        int rc_ = (expr);                                                                                              \
        if (rc_ != CAIRN_OK)                                                                                           \
            fail_msg("%s: %d (%s)", #expr, rc_, cairn_strerror(rc_));                                                  \
    } while (0)

#define assert_cairn_rc(expr, want)                                                                                    \
    do {                                                                                                               \
        int rc_ = (expr);                                                                                              \
        if (rc_ != (want))                                                                                             \
            fail_msg("%s: got %d (%s), want %d (%s)", #expr, rc_, cairn_strerror(rc_), (want), cairn_strerror(want));  \
    } while (0)

/* Options for tests: small address range so that tests are quick. */
void tu_options(cairn_options *o);
/* Bytes of s's page memfd in memory: the shared memory the store holds. */
uint64_t tu_shmem_bytes(cairn_store *s);
/* Mappings of /proc/self/maps that overlap [base, base + len): what a store
 * adds to the process's mapping count.  Counting the whole process would also
 * count the sanitizers' and malloc's own mappings, which come and go. */
int tu_map_lines(const void *base, size_t len);
/* The bytes of a data.mdb image that hold LMDB pages: cairn keeps zeros
 * past the last page (pager/lmdb_file.c), and a cut there loses nothing. */
size_t tu_lmdb_used(const unsigned char *img, size_t len);
/* Run fn(arg) in a forked child; return its wait status. */
int tu_in_child(void (*fn)(void *), void *arg);

#endif
