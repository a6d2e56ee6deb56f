/*
 * peer.h - what every store in the comparison implements, and what the
 * child process (child.c) drives.
 *
 * A peer is used the way its own users would use it; this interface only
 * fixes the workload.  Handles are opaque.  Any failure inside a peer
 * prints what failed and exits non-zero: the driver then fails loudly.
 */
#ifndef COMPARE_PEER_H
#define COMPARE_PEER_H

#include "graph.h"

typedef struct peer_ops {
    const char *name;
    int persistent; /* 0: lives in memory only (build happens in open) */
    int updates;    /* has durable transactions */
    /* Build the graph in directory dir and make it durable; close. */
    void (*build)(const char *dir, const graph *g);
    /* Open what build left (persistent) or build in memory (not);
     * cache_bytes is the memory budget, 0 = the peer's default. */
    void *(*open)(const char *dir, const graph *g, uint64_t cache_bytes);
    /* Per-thread read state (a read transaction, a connection). */
    void *(*reader_begin)(void *h);
    void (*reader_end)(void *r);
    walk_sum (*walk_full)(void *r, int part, int nparts);
    walk_sum (*walk_random)(void *r, uint64_t seed, uint64_t steps);
    /* counter += 1 on node id, in one durable transaction. */
    void (*update)(void *h, uint64_t id);
    uint64_t (*counter)(void *h, uint64_t id);
    /* Bytes in the peer's log right now, or NULL if it has none to show. */
    uint64_t (*log_bytes)(void *h);
    void (*close)(void *h);
    /* What the reader of the table should know about this peer. */
    const char *note;
} peer_ops;

extern const peer_ops peer_malloc, peer_mmap, peer_cairn, peer_lmdb, peer_sqlite, peer_pmdk;

/* A result line for the driver ("R name value"). */
void report(const char *name, double value);
/* A checksum line for the driver to compare with the oracle. */
void report_walk(const char *kind, walk_sum ws);
/* Exit with a message naming what failed (peers use it for any error). */
_Noreturn void die(const char *peer, const char *what, const char *detail);

#endif
