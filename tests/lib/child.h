/*
 * child.h - checks inside a child process that runs without cmocka (this
 * test binary re-executed with "--child ...", so that no test framework
 * has touched its signal dispositions): a failure prints what failed and
 * exits with 90 (a cairn call) or 91 (a condition), which the parent
 * reports.
 */
#ifndef CAIRN_TESTS_CHILD_H
#define CAIRN_TESTS_CHILD_H

#include <stdio.h>
#include <unistd.h>

#include "cairn.h"

#define CHILD_OK(expr)                                                                                                 \
    do {                                                                                                               \
        int rc_ = (expr);                                                                                              \
        if (rc_ != CAIRN_OK) {                                                                                         \
            fprintf(stderr, "child: %s failed: %d (%s) line %d\n", #expr, rc_, cairn_strerror(rc_), __LINE__);         \
            _exit(90);                                                                                                 \
        }                                                                                                              \
    } while (0)

#define CHILD_CHECK(cond)                                                                                              \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "child: check failed: %s line %d\n", #cond, __LINE__);                                     \
            _exit(91);                                                                                                 \
        }                                                                                                              \
    } while (0)

#endif
