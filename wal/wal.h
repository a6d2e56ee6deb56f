/*
 * wal.h - the write-ahead log: appending transactions, scanning them back.
 * Format and validity rule in wal.c and docs/FORMAT.md.  Internal.
 */
#ifndef CAIRN_WAL_H
#define CAIRN_WAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn_format.h"

/* The file grows past its records in chunks of zeros written ahead, up
 * to a multiple of this (wal.c, "Zeros ahead"): one extension, and its
 * one journaled sync, serves about 8,000 one-update commits. */
#define WAL_ZERO_CHUNK ((uint64_t)1 << 20)

struct wal {
    int fd;
    int dirfd; /* the store directory, fsynced after renames */
    uint8_t store_id[16];
    uint64_t generation;
    uint64_t salt;
    uint64_t start_lsn;    /* LSN of the first record of this generation */
    uint64_t next_lsn;     /* LSN the next record gets */
    uint64_t chain;        /* checksum of the last valid record (or the seed) */
    uint64_t header_chain; /* the seed: the header's checksum */
    uint64_t end;          /* file offset where the next record goes */
    /* The transaction being built: records accumulate here, then one
     * write puts them all after `end`. */
    unsigned char *buf;
    size_t len, cap;
    uint64_t batch_chain, batch_lsn;
    uint32_t batch_records;
    uint64_t zeroed_end; /* the file's size: records, then zeros written ahead */
    /*
     * Durability (wal_sync), under sync_mutex.  Records are written by
     * wal_batch_write under the caller's lock; syncing happens outside
     * it, so one fdatasync covers every batch written before it began.
     * written_lsn: the last LSN in the file; durable_lsn: the last LSN a
     * completed fdatasync covered; syncing: a thread is in fdatasync (the
     * leader; the others wait on sync_cond); sync_failed: sticky, every
     * later wal_sync fails (a retried fsync proves nothing).
     */
    pthread_mutex_t sync_mutex;
    pthread_cond_t sync_cond;
    uint64_t written_lsn, durable_lsn;
    int syncing, sync_failed;
    uint64_t syncs;           /* fdatasyncs done by wal_sync */
    unsigned fail_syncs_after; /* test hook: syncs after the first N fail (0: never) */
    /* Set by a wal_open that returned CAIRN_CORRUPT because the header is
     * intact but names another store (whose id is then in store_id). */
    int foreign;
};

/* One committed page change, handed to the replay callback. */
struct wal_page_change {
    uint64_t lsn, txn_id, page;
    const unsigned char *payload; /* ranges, see wal.c */
    size_t len;
};
typedef int (*wal_apply_fn)(void *ctx, const struct wal_page_change *c);
/* Called after the last change of each applied transaction, with the LSN
 * of its commit record. */
typedef int (*wal_commit_fn)(void *ctx, uint64_t commit_lsn);

/* Open the log in dirfd (creating it when create is set).  Validates the
 * header against store_id.  CAIRN_CORRUPT if the header is damaged or
 * belongs to another store; ENOENT if missing and !create. */
int wal_open(struct wal *w, int dirfd, const uint8_t store_id[16], int create, int readonly);
void wal_close(struct wal *w);
/* What "wal" in dirfd is: 1 a log created and never written to (first
 * generation, no record: what an interrupted creation leaves), 0 another
 * cairn log (or a damaged one), -1 not a cairn log, or missing. */
int wal_probe(int dirfd);

/* Scan from the start; call apply for every page change of every
 * transaction whose commit record validates and whose LSN is > after, then
 * committed (if not NULL) for that transaction.  Stops at the first record
 * that does not validate.  Leaves w positioned to append after the last
 * valid commit.  *last_lsn = LSN of that commit. */
int wal_replay(struct wal *w, uint64_t after, wal_apply_fn apply, wal_commit_fn committed, void *ctx,
               uint64_t *last_lsn, uint64_t *txns);

/* Go on from where the last scan stopped (w as wal_replay or an earlier
 * wal_replay_more left it): the transactions committed since, all of
 * them applied.  *last_lsn = LSN of the last commit, or next_lsn - 1. */
int wal_replay_more(struct wal *w, wal_apply_fn apply, wal_commit_fn committed, void *ctx, uint64_t *last_lsn,
                    uint64_t *txns);

/* Build a transaction: page records, then the commit record. */
void wal_batch_begin(struct wal *w);
int wal_batch_page(struct wal *w, uint64_t txn_id, uint64_t page, const void *cur, const void *old);
int wal_batch_commit(struct wal *w, uint64_t txn_id);
/* Write the batch.  A failed write returns its errno: the batch's
 * commit record is incomplete, w stays positioned before it, and the
 * next batch overwrites it.  Caller holds the lock that orders appends. */
int wal_batch_write(struct wal *w);

/* Return once every record up to lsn (which must be in the file) is
 * durable: 0, or CAIRN_IOERR if a
 * sync failed (now or before: sticky), when those records may or may not
 * be durable.  Needs no lock of the caller's and may run beside
 * wal_batch_write: the first caller that finds no sync running syncs for
 * everything written so far; the others wait for it and sync again only
 * if their record was written after it began. */
int wal_sync(struct wal *w, uint64_t lsn);

/* Start a new generation: a fresh file with a new salt, renamed over the
 * old one, the directory fsynced.  Records before start_lsn are gone, and
 * count as durable (the caller made them so elsewhere); a sync running on
 * the old file is waited for.
 * An errno return means nothing changed (the old log is intact and still
 * in use); CAIRN_IOERR means the new file is in use but its rename may
 * not be durable. */
int wal_reset(struct wal *w, uint64_t start_lsn);
/* The same, carrying over the records at [from, end) of the current log
 * (whole transactions, the first with LSN start_lsn; from_chain is the
 * checksum of the record before from, or the header's): they are read
 * back, checked against their chain, sealed again in the new file's chain
 * and synced with it, so they are durable once this returns 0 (how a
 * checkpoint hands on the commits made while it ran).  A record that does
 * not read back returns CAIRN_IOERR with nothing changed. */
int wal_restart(struct wal *w, uint64_t start_lsn, uint64_t from, uint64_t from_chain);

/* Apply one page change to an unswizzled page image. CAIRN_CORRUPT on a
 * malformed payload. */
int wal_apply_ranges(void *page, const unsigned char *payload, size_t len);

#endif
