/*
 * readonly.c - read-only handles: a snapshot (snapshot.c) with a pager
 * over it.
 *
 * A read-only handle shows the store as of its open: LMDB's state at one
 * read transaction (the checkpoint it holds) plus the log's committed
 * transactions after that checkpoint, replayed into extent images when
 * the handle opens (within the replay module's memory bound: a batch in
 * memory, the rest in an unlinked temporary file).  Its pager loads pages
 * from those images or from LMDB through the snapshot's own read
 * transactions (pagestore_snapshot.c), never from a later state, so
 * nothing a writer does afterwards - commits, checkpoints, log resets, its
 * close or its crash - changes what the handle shows.  It takes no lock of
 * the store's: LMDB's reader table (lock.mdb) keeps the pages its
 * transactions see from being reused, and the writer never waits for it.
 * It writes no file of the store.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot.h"

/* The directory or its data.mdb is missing.  A read-only open cannot
 * create a store: CAIRN_READONLY, unless the rest of a store is there
 * (data.mdb lost: CAIRN_CORRUPT, as for a read-write open). */
static int no_store(const char *path, const char *err)
{
    char msg[512] = "";
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd < 0 ? 0 : store_check_creatable(fd, path, msg, sizeof msg);
    if (fd >= 0)
        close(fd);
    if (rc == CAIRN_CORRUPT) {
        store_set_open_error(msg);
        return rc;
    }
    store_set_open_error(err);
    return CAIRN_READONLY;
}

int readonly_open(const char *path, const cairn_options *o, cairn_store **out)
{
    /* Claimed before LMDB is opened: a second environment on the file in
     * this process would drop the first one's locks when it closes. */
    struct stat st;
    char err[512];
    if (stat(path, &st) != 0)
        return no_store(path, strerror(errno));
    int slot;
    int rc = store_claim_dir(st.st_dev, st.st_ino, NULL, 0, &slot);
    if (rc) {
        snprintf(err, sizeof err, "%s: too many stores are open in this process", path);
        store_set_open_error(err);
        return rc;
    }
    struct snapshot *sn;
    rc = snapshot_open_readers(path, SNAPSHOT_READERS, o, &sn, err, sizeof err);
    if (rc) {
        store_release_dir(slot);
        if (rc == ENOENT)
            return no_store(path, err);
        store_set_open_error(err);
        return rc;
    }
    cairn_store *s = &sn->st;
    s->snap = sn;
    s->claim_slot = slot;
    store_claim_set(slot, s); /* a forked child closes its lock descriptor */
    s->dev = st.st_dev, s->ino = st.st_ino;
    struct stat now;
    if (fstat(s->dirfd, &now) != 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
        store_set_error(s, "%s: the directory was replaced while it was being opened", path);
        rc = CAIRN_BUSY;
        goto fail;
    }
    rc = snapshot_pagestore_open(sn, &s->pagestore);
    if (rc)
        goto fail;
    rc = store_open_pager(s);
    if (rc)
        goto fail;
    store_set_open_error("");
    *out = s;
    return 0;
fail:
    store_set_open_error(s->errmsg[0] ? s->errmsg : cairn_strerror(rc));
    readonly_close(s);
    return rc;
}

int readonly_close(cairn_store *s)
{
    struct snapshot *sn = s->snap;
    if (s->pager)
        pager_close(s->pager);
    s->pager = NULL;
    if (s->pagestore)
        snapshot_pagestore_close(s->pagestore);
    s->pagestore = NULL;
    if (s->claim_slot >= 0)
        store_release_dir(s->claim_slot);
    snapshot_close(sn);
    return 0;
}

/*
 * Refresh: a new state beside the old (snapshot_refresh), then every
 * resident extent that may differ between the two is evicted, so that its
 * next touch loads it from the new state; the rest stays, addresses and
 * all.  The cost is the new state's log replay plus a test per resident
 * extent: a lookup in the replay's map, and - only when checkpoints ran
 * in between - one in LMDB for each of the two states.
 */
int cairn_refresh(cairn_store *s)
{
    if (!s || store_foreign(s) || !s->snap)
        return CAIRN_INVALID;
    /* Exclusive against cairn_check on this handle, and against type
     * lookups (the type table is rebuilt). */
    pthread_rwlock_wrlock(&s->lmdb_lock);
    pthread_rwlock_wrlock(&s->types_lock);
    struct snapshot_view old;
    int rc = snapshot_refresh(s->snap, &old);
    pthread_rwlock_unlock(&s->types_lock);
    if (rc) {
        pthread_rwlock_unlock(&s->lmdb_lock);
        return rc;
    }
    struct pager *p = s->pager;
    uint64_t hwm = atomic_load(&p->ext_hwm);
    for (uint64_t e = 0; e < hwm && rc == 0; e++) {
        if (XS_STATE(atomic_load(&p->ext_state[e])) != XS_RESIDENT || !snapshot_changed(s->snap, &old, e))
            continue;
        /* An extent that stays resident would show the old state beside
         * the new one: a state that never was.  Eviction backs off only
         * when protecting or punching fails (a full mapping table). */
        for (int attempt = 0; attempt < 3 && XS_STATE(atomic_load(&p->ext_state[e])) == XS_RESIDENT; attempt++)
            evict_extent(p, e);
        if (XS_STATE(atomic_load(&p->ext_state[e])) == XS_RESIDENT) {
            s->snap->broken = 1;
            rc = store_fail(s, CAIRN_IOERR, "%s: a refresh could not drop changed extent %llu from memory", s->path,
                            (unsigned long long)e);
        }
    }
    snapshot_view_free(s->snap, &old);
    pthread_rwlock_unlock(&s->lmdb_lock);
    return rc;
}
