/*
 * workloads.h - the deterministic workloads of the power-loss test.
 *
 * A workload is a data model (what transaction i does, how to check the
 * state after transaction n) plus a script (sync mode, checkpoints,
 * reopenings, a prepared store to start from).  Transaction 0 creates the
 * model's root; the state after transaction n is a function of n alone,
 * so the verifier can tell which prefix of the transactions a store
 * holds, and whether it holds a partial one.
 */
#ifndef CAIRN_POWERLOSS_WORKLOADS_H
#define CAIRN_POWERLOSS_WORKLOADS_H

#include <stddef.h>
#include <stdint.h>

#include "cairn.h"

struct model {
    const char *name;
    /* Register types; nothing else (the store may be empty). */
    int (*setup)(cairn_store *s);
    /* The transaction number the store holds (-1: empty); no checking. */
    int64_t (*current)(cairn_store *s);
    /* Run transaction i (0 creates the root), committed.  Returns a cairn
     * code; a negative code from the model itself is explained in err. */
    int (*txn)(cairn_store *s, int64_t i, char *err, size_t errlen);
    /* Check the store holds exactly the state after some transaction n in
     * [lo, hi] (lo = -1 allows the empty store); 0 and *n, or -1 and err. */
    int (*verify)(cairn_store *s, int64_t lo, int64_t hi, int64_t *n, char *err, size_t errlen);
    /* Live objects after transaction n (as cairn_check counts them). */
    uint64_t (*objects)(int64_t n);
};

struct workload {
    const char *name;
    const char *what;
    const struct model *m;
    int sync;               /* CAIRN_SYNC_FULL or CAIRN_SYNC_OFF */
    uint64_t ckpt_bytes;    /* 0: default (the flusher stays idle) */
    int64_t txns, txns_quick; /* transactions run (after the base, if any) */
    int64_t ckpt_every;     /* cairn_checkpoint after every so many; 0 never */
    int64_t reopen_after;   /* close and reopen after this many; 0 never */
    int64_t base_txns;      /* > 0: start from a prepared store: 0..base_txns committed, in the log only */
    int base_crash;         /* the prepared store is left by a simulated power loss: its transactions
                               run under CAIRN_SYNC_OFF with one checkpoint halfway, and the harness
                               stops it with a random damage pattern (a torn log to recover) */
    int sleep_us;           /* pause between transactions (lets the flusher run) */
    int timing_dependent;   /* sync points depend on thread timing */
};

extern const struct workload workloads[];
extern const size_t n_workloads;

const struct workload *workload_find(const char *name);
void workload_options(const struct workload *w, cairn_options *o);

/* Messages from a workload run, appended to the ack file. */
enum { MSG_ATTEMPT = 1, MSG_ACK, MSG_DURABLE, MSG_DONE };
struct msg {
    int32_t kind, pad;
    int64_t txn;
};

/* Run w in dir (a child process; never returns).  prepare: run the base
 * transactions and _exit without closing (the store then needs recovery). */
void workload_main(const struct workload *w, const char *dir, const char *ackfile, int quick, int prepare)
    __attribute__((noreturn));

#endif
