/*
 * txn.c - write transactions: begin, commit through the log, abort.
 *
 * One write transaction per store.  While it is open the fault path
 * records the before-image of every page written (pager).  Commit:
 *   1. under the log mutex, for each page written: unswizzle the current
 *      bytes (refusing pointers that leave the store) and the before-image,
 *      and log the words that differ;
 *   2. append the commit record and write the batch;
 *   3. write-protect the pages again, mark them unflushed, drop the
 *      before-images; leave the log mutex and release the transaction
 *      slot, so the next transaction may begin and commit meanwhile;
 *   4. (CAIRN_SYNC_FULL) wait until the log is durable up to the commit
 *      record: one fdatasync covers every batch written before it began,
 *      whoever's it is (group commit, wal_sync; DESIGN.md "Group commit").
 * Any failure in 1-2 leaves the transaction open and every page as it
 * was; the caller aborts or (after fixing an external pointer) retries.
 * A failed sync in 4 fails the store and every commit waiting on it: the
 * handle is then a logged one that cairn_txn_abort only frees.  A failed
 * write or fsync is sticky (fsyncgate: a retried fsync proves nothing);
 * a full disk is not.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

int txn_slot_claim(cairn_store *s, cairn_txn *t)
{
    pthread_mutex_lock(&s->txn_mutex);
    if (s->txn && pthread_equal(s->txn_thread, pthread_self())) {
        pthread_mutex_unlock(&s->txn_mutex);
        return CAIRN_BUSY;
    }
    while (s->txn)
        pthread_cond_wait(&s->txn_cond, &s->txn_mutex);
    s->txn = t;
    s->txn_thread = pthread_self();
    pthread_mutex_unlock(&s->txn_mutex);
    return 0;
}

void txn_slot_release(cairn_store *s)
{
    pthread_mutex_lock(&s->txn_mutex);
    s->txn = NULL;
    pthread_cond_broadcast(&s->txn_cond);
    pthread_mutex_unlock(&s->txn_mutex);
}

int cairn_txn_begin(cairn_store *s, cairn_txn **out)
{
    if (!s || !out || store_foreign(s))
        return CAIRN_INVALID;
    if (s->readonly)
        return CAIRN_READONLY;
    cairn_txn *t = calloc(1, sizeof *t);
    if (!t)
        return ENOMEM;
    t->s = s;
    int rc = txn_slot_claim(s, t);
    if (rc == 0 && (rc = store_failed(s)) != 0)
        txn_slot_release(s);
    if (rc) {
        free(t);
        return rc;
    }
    t->id = ++s->next_txn_id; /* the slot's owner alone changes these */
    pager_txn_begin(s->pager);
    *out = t;
    return 0;
}

static void txn_end(cairn_txn *t)
{
    txn_slot_release(t->s);
    free(t);
}

/* Step 1: the log records of every page written.  Caller holds log_mutex. */
static int log_dirty_pages(cairn_txn *t, unsigned char *cur, unsigned char *old)
{
    cairn_store *s = t->s;
    struct pager *p = s->pager;
    uint64_t nd = atomic_load(&p->ndirty);
    for (uint64_t i = 0; i < nd; i++) {
        uint64_t n = p->dirty[i];
        uintptr_t bad = 0;
        int rc = pager_read_dirty(p, n, cur, old, &bad);
        if (rc == CAIRN_EXTERNAL_POINTER) {
            uint64_t v;
            memcpy(&v, p->priv + (bad - (uintptr_t)p->base), 8);
            uintptr_t obj = alloc_object_start(s, bad);
            store_set_error(s,
                            "commit refused: pointer field at %p (object %p, offset %llu) holds %p, "
                            "which is outside the store",
                            (void *)bad, (void *)obj, (unsigned long long)(obj ? bad - obj : 0), (void *)v);
            return rc;
        }
        rc = wal_batch_page(&s->wal, t->id, n, cur, old);
        if (rc)
            return rc;
    }
    return wal_batch_commit(&s->wal, t->id);
}

int cairn_txn_commit(cairn_txn *t)
{
    if (!t)
        return CAIRN_INVALID;
    cairn_store *s = t->s;
    if (t->logged) /* its sync failed: the store failed with it */
        return store_failed(s) ? store_failed(s) : CAIRN_IOERR;
    unsigned char *cur = malloc(2 * PAGE_BYTES);
    if (!cur)
        return ENOMEM;
    int rc;
    pthread_mutex_lock(&s->log_mutex);
    if ((rc = store_failed(s)) != 0)
        goto out;
    rc = pager_reserve_unflushed(s->pager);
    if (rc)
        goto out;
    wal_batch_begin(&s->wal);
    rc = log_dirty_pages(t, cur, cur + PAGE_BYTES);
    if (rc)
        goto out;
    rc = wal_batch_write(&s->wal);
    if (rc) {
        if (rc == ENOSPC || rc == EDQUOT) {
            /* The write stopped short of the commit record: nothing of
             * this transaction can be replayed. */
            store_set_error(s, "commit failed: disk full writing the log");
            rc = CAIRN_FULL;
        } else {
            rc = store_fail(s, CAIRN_IOERR, "commit failed: log write error %d; reopen the store", rc);
        }
        goto out;
    }
    uint64_t lsn = s->wal.next_lsn - 1; /* the commit record's */
    rc = pager_txn_committed(s->pager);
    if (rc) {
        /* The commit is durable, but pages could not be write-protected
         * again, so later writes would escape tracking: stop here. */
        store_fail(s, CAIRN_IOERR, "commit: re-protecting pages failed (%d); reopen the store", rc);
        rc = 0;
    }
    uint64_t wal_size = s->wal.end;
    pthread_mutex_unlock(&s->log_mutex);
    free(cur);
    /* The record is in the log and the pages are protected again: the
     * next transaction may begin.  It sees this one's bytes, and its own
     * record follows this one's, so a crash can never keep it without
     * this one (DESIGN.md, "Group commit"). */
    t->logged = 1;
    txn_slot_release(s);
    if (wal_size >= s->opt.checkpoint_bytes)
        checkpoint_poke(s);
    if (s->opt.sync == CAIRN_SYNC_FULL && wal_sync(&s->wal, lsn) != 0)
        return store_fail(s, CAIRN_IOERR,
                          "commit failed: log sync error; the commit may or may not be durable; "
                          "reopen the store");
    atomic_fetch_add(&s->commits, 1);
    free(t);
    return 0;
out:
    pthread_mutex_unlock(&s->log_mutex);
    free(cur);
    return rc;
}

void cairn_txn_abort(cairn_txn *t)
{
    if (!t)
        return;
    cairn_store *s = t->s;
    if (t->logged) { /* a commit whose sync failed: nothing left to undo */
        free(t);
        return;
    }
    pthread_mutex_lock(&s->log_mutex);
    pager_txn_rolled_back(s->pager);
    pthread_mutex_unlock(&s->log_mutex);
    atomic_fetch_add(&s->aborts, 1);
    txn_end(t);
}
