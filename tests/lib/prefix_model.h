/*
 * prefix_model.h - workloads whose state after transaction n is a
 * function of n alone, so that a verifier can tell which prefix of the
 * transactions a recovered store holds, and that it holds no part of
 * another: the rule every such model checks (model_in_range), and the
 * list model the SIGKILL recovery test (test_recovery.c) and the power-loss
 * harness (powerloss/) share.  The power-loss suite's other models (big,
 * churn) follow the same rules in powerloss/workloads.c.
 *
 * The list model.  Root "hdr" -> struct hdr (types "node" and "hdr"),
 * created by transaction 0 together with hdr->wide, an object of
 * wide_pages pages.  Transaction i (i >= 1):
 *   - allocates node i (val = i) with a payload of 8..607 bytes, or of
 *     whole pages every 10th, filled with a pattern of (i, byte), and
 *     pushes it on hdr->list;
 *   - if i % 7 == 0, frees the payload of node i-1 (payload NULL, len 0);
 *   - writes in every page p of hdr->wide: word 0 = i,
 *     word 1 + i % 511 = i * 1000 + p;
 *   - sets hdr->last = hdr->count = i and the root "last" to node i.
 * Before every fifth transaction an aborted one scribbles over all of it,
 * and the model checks that the abort restored the store.  list_verify
 * checks every byte of the state.
 *
 * No cmocka here: the power-loss workloads run in processes of their own.
 * Functions return a cairn code, or MODEL_ERROR with the reason in err.
 */
#ifndef CAIRN_TESTS_PREFIX_MODEL_H
#define CAIRN_TESTS_PREFIX_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cairn.h"

#define MODEL_ERROR (-1) /* the model's own check failed (err says why) */

/* In a function with parameters err and errlen: say why, return MODEL_ERROR. */
#define MODEL_FAIL(...)                                                                                                \
    do {                                                                                                               \
        snprintf(err, errlen, __VA_ARGS__);                                                                            \
        return MODEL_ERROR;                                                                                            \
    } while (0)

/* A store in the state after transaction n may be accepted iff
 * lo <= n <= hi (-1: the empty store): 0, or MODEL_ERROR and err says
 * which way it is wrong (below lo: an acknowledged commit was lost). */
int model_in_range(int64_t n, int64_t lo, int64_t hi, char *err, size_t errlen);

struct list_model {
    size_t wide_pages;              /* pages of hdr->wide; set before list_register */
    cairn_type node_type, hdr_type; /* set by list_register */
};

/* Register the model's types in s (nothing else: s may be empty). */
int list_register(struct list_model *m, cairn_store *s);

/* The transaction whose state s holds, -1 for an empty store (*n); no
 * checking.  Returns cairn_root_get's error if it fails otherwise. */
int list_current(cairn_store *s, int64_t *n);

/* Run transaction i (0 creates the root), committed. */
int list_txn(const struct list_model *m, cairn_store *s, int64_t i, char *err, size_t errlen);

/* 0 and *n if s holds exactly the state after some transaction n in
 * [lo, hi] (lo = -1 allows the empty store), else MODEL_ERROR. */
int list_verify(const struct list_model *m, cairn_store *s, int64_t lo, int64_t hi, int64_t *n, char *err,
                size_t errlen);

/* Live objects after transaction n, as cairn_check counts them. */
uint64_t list_objects(int64_t n);

#endif
