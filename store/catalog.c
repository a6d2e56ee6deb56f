/*
 * catalog.c - the LMDB environment of a store and its catalog (see
 * catalog.h; the bytes are in docs/FORMAT.md, section 3).
 *
 * LMDB has no checksums: the fixed catalog entries carry one of their own
 * (catalog_sum), so that a damaged checkpoint position, which would make
 * recovery skip logged transactions, is refused instead of believed.  And
 * LMDB trusts its own pages: every transaction begins with a check of
 * data.mdb's length against its meta page, a read-write open walks LMDB's
 * trees first (catalog_verify), and every read of a page goes through the
 * guarded calls of pager/lmdb_guard.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "store_internal.h"

void catalog_error(struct catalog *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->error)
        c->error(c->error_arg, msg);
}

void catalog_msg_sink(void *arg, const char *msg)
{
    struct catalog_msg *m = arg;
    if (m->len && !m->buf[0])
        snprintf(m->buf, m->len, "%s", msg);
}

static int fstat_env(MDB_env *env, struct stat *st)
{
    int fd;
    return mdb_env_get_fd(env, &fd) == 0 && fstat(fd, st) == 0 ? 0 : -1;
}

static int put_u64(struct catalog *c, MDB_txn *txn, const char *key, uint64_t v)
{
    MDB_val k = {strlen(key), (void *)key}, d = {8, &v};
    return lmdb_to_cairn(lmdb_put(txn, c->meta, &k, &d, 0));
}

static uint64_t catalog_sum(const struct catalog *c, uint64_t ckpt_lsn)
{
    struct catalog_sum_input sum = {STORE_FORMAT_VERSION, PAGE_BYTES, PAGES_PER_EXTENT, 0, {0}, c->pages, ckpt_lsn};
    memcpy(sum.store_id, c->store_id, 16);
    return XXH3_64bits(&sum, sizeof sum);
}

int catalog_put_ckpt_lsn(struct catalog *c, MDB_txn *txn, uint64_t ckpt_lsn)
{
    int rc = put_u64(c, txn, CATALOG_CKPT_LSN, ckpt_lsn);
    return rc ? rc : put_u64(c, txn, CATALOG_SUM, catalog_sum(c, ckpt_lsn));
}

static int meta_get(MDB_txn *txn, MDB_dbi dbi, const char *key, void *out, size_t len)
{
    MDB_val k = {strlen(key), (void *)key}, d;
    int rc = lmdb_get(txn, dbi, &k, &d);
    if (rc)
        return rc;
    if (d.mv_size != len)
        return MDB_CORRUPTED;
    memcpy(out, d.mv_data, len);
    return 0;
}

int catalog_get_ckpt_lsn(struct catalog *c, MDB_txn *txn, uint64_t *ckpt_lsn)
{
    return lmdb_to_cairn(meta_get(txn, c->meta, CATALOG_CKPT_LSN, ckpt_lsn, 8));
}

static int meta_put(MDB_txn *txn, MDB_dbi dbi, const char *key, const void *v, size_t len)
{
    MDB_val k = {strlen(key), (void *)key}, d = {len, (void *)v};
    return lmdb_put(txn, dbi, &k, &d, 0);
}

/* Report a data.mdb (in dir) shorter than its meta page claims. */
static int check_file(struct catalog *c, MDB_env *env, const char *dir)
{
    uint64_t have = 0, need = 0;
    int rc = lmdb_file_check(env, &have, &need);
    if (rc == CAIRN_CORRUPT)
        catalog_error(c, "%s/data.mdb: the file is %llu bytes, its LMDB meta page claims %llu (truncated?)", dir,
                      (unsigned long long)have, (unsigned long long)need);
    return rc;
}

int catalog_check_file(struct catalog *c)
{
    return check_file(c, c->env, c->path);
}

int catalog_txn_begin(struct catalog *c, unsigned flags, MDB_txn **out)
{
    int rc = mdb_txn_begin(c->env, NULL, flags, out);
    if (rc)
        return lmdb_to_cairn(rc);
    rc = catalog_check_file(c);
    if (rc) {
        mdb_txn_abort(*out);
        *out = NULL;
    } else if (!(flags & MDB_RDONLY) && (rc = lmdb_file_pad(c->env)) != 0) {
        catalog_error(c, "%s/data.mdb: cannot map the file: %s", c->path, cairn_strerror(rc));
        mdb_txn_abort(*out);
        *out = NULL;
    }
    return rc;
}

/*
 * LMDB sizes lock.mdb with ftruncate and then writes its reader table
 * through a shared map: on a full file system the first store to a page
 * that has no block is a SIGBUS inside mdb_env_open.  So the file's
 * blocks are reserved first (FALLOC_FL_KEEP_SIZE: its size stays what
 * LMDB made it, or 0 for LMDB to size), and a full disk is ENOSPC here.
 * Only where we may write (a read-only user's open leaves it to LMDB).
 */
#define LMDB_LOCK_RESERVE (64 << 10) /* the table for 126 + PAGER_SLOTS readers is ~10 KiB */

static int reserve_lmdb_lock_file(struct catalog *c, const char *dir)
{
    char *file;
    if (asprintf(&file, "%s/lock.mdb", dir) < 0)
        return ENOMEM;
    int fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    free(file);
    int rc = 0;
    if (fd < 0) {
        /* Read-only media or permissions: LMDB opens what it may and
         * reports what it meets.  Anything else is the file system's error. */
        if (errno == EACCES || errno == EPERM || errno == EROFS)
            return 0;
        rc = errno;
        catalog_error(c, "%s/lock.mdb: %s", dir, strerror(rc));
        return rc;
    }
    struct stat st;
    if (fstat(fd, &st) == 0) {
        off_t len = st.st_size > LMDB_LOCK_RESERVE ? st.st_size : LMDB_LOCK_RESERVE;
        if (fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, len) != 0 && errno != EOPNOTSUPP && errno != ENOSYS) {
            rc = errno;
            catalog_error(c, "%s/lock.mdb: cannot reserve LMDB's lock file: %s", dir, strerror(rc));
        }
    }
    close(fd);
    return rc;
}

/*
 * One environment per data.mdb in a process.  LMDB's locks are fcntl
 * locks, which belong to the process: a second environment on the same
 * file would drop the first one's locks when it closes its descriptors.
 * So every handle on a store in this process (the writer, read-only
 * handles, the command's snapshots) shares one, found by the file's
 * device and inode and closed with its last user.  A forked child forgets
 * the table (LMDB environments do not survive fork).
 */
#define SHARED_ENVS 64
static pthread_mutex_t envs_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct shared_env {
    dev_t dev;
    ino_t ino;
    MDB_env *env;
    int users, writers; /* writers: read-write handles among the users */
} envs[SHARED_ENVS];
static pthread_once_t envs_once = PTHREAD_ONCE_INIT;

static void envs_fork_prepare(void)
{
    pthread_mutex_lock(&envs_mutex);
}

static void envs_fork_parent(void)
{
    pthread_mutex_unlock(&envs_mutex);
}

static void envs_fork_child(void)
{
    memset(envs, 0, sizeof envs);
    pthread_mutex_unlock(&envs_mutex);
}

static void envs_install(void)
{
    pthread_atfork(envs_fork_prepare, envs_fork_parent, envs_fork_child);
}

/* The environment open on data.mdb of dir, with one user more; NULL if
 * none.  Caller holds envs_mutex. */
static struct shared_env *shared_env(const struct stat *st)
{
    for (int i = 0; i < SHARED_ENVS; i++) {
        if (envs[i].env && envs[i].dev == st->st_dev && envs[i].ino == st->st_ino) {
            envs[i].users++;
            return &envs[i];
        }
    }
    return NULL;
}

int catalog_env_users(const struct catalog *c)
{
    int n = 0;
    pthread_mutex_lock(&envs_mutex);
    for (int i = 0; i < SHARED_ENVS; i++)
        if (envs[i].env && envs[i].env == c->env)
            n = envs[i].users;
    pthread_mutex_unlock(&envs_mutex);
    return n;
}

static int open_env(struct catalog *c, const char *dir, unsigned flags, int create, uint64_t max_bytes);

int catalog_open_env(struct catalog *c, const char *dir, unsigned flags, int create, uint64_t max_bytes)
{
    pthread_once(&envs_once, envs_install);
    char *file;
    if (asprintf(&file, "%s/data.mdb", dir) < 0)
        return ENOMEM;
    int writer = !(flags & MDB_RDONLY);
    /* Looked up and opened under the mutex: two first users must not
     * open two environments. */
    pthread_mutex_lock(&envs_mutex);
    struct stat st;
    int have = stat(file, &st) == 0;
    /* A read-only user opens the environment read-write where it may, so
     * that a writer of this process can share it; it writes nothing.  One
     * who may not write LMDB's lock file (a store of another user, or on
     * read-only media) cannot take a reader slot in it: LMDB then runs
     * without locks (MDB_NOLOCK) and the caller must keep writers out for
     * as long as it reads (the snapshot takes a shared lock of the store's
     * lock file). */
    c->no_lock = 0;
    if ((flags & MDB_RDONLY) && have && access(file, W_OK) == 0 && access(dir, W_OK) == 0)
        flags &= ~(unsigned)MDB_RDONLY;
    if (flags & MDB_RDONLY) {
        char *lock;
        if (asprintf(&lock, "%s/lock.mdb", dir) < 0) {
            free(file);
            pthread_mutex_unlock(&envs_mutex);
            return ENOMEM;
        }
        c->no_lock = access(lock, W_OK) != 0 && (errno != ENOENT || access(dir, W_OK) != 0);
        free(lock);
        if (c->no_lock)
            flags |= MDB_NOLOCK;
    }
    free(file);
    struct shared_env *e = have && !c->no_lock ? shared_env(&st) : NULL;
    if (e) {
        c->env = e->env;
        c->env_writer = writer;
        e->writers += writer;
        pthread_mutex_unlock(&envs_mutex);
        return 0;
    }
    int slot = -1;
    for (int i = 0; i < SHARED_ENVS && slot < 0; i++)
        if (!envs[i].env)
            slot = i;
    if (slot < 0 && !c->no_lock) {
        pthread_mutex_unlock(&envs_mutex);
        catalog_error(c, "%s: %d LMDB environments are open in this process already", dir, SHARED_ENVS);
        return CAIRN_BUSY;
    }
    int rc = open_env(c, dir, flags, create, max_bytes);
    /* The databases' handles, committed, for every transaction of every
     * user (a handle opened in one user's read transaction would be that
     * transaction's only, and gone with it). */
    if (rc == 0 && have)
        rc = catalog_open_dbis(c);
    if (rc == 0 && !c->no_lock && fstat_env(c->env, &st) == 0) {
        envs[slot] = (struct shared_env){st.st_dev, st.st_ino, c->env, 1, writer};
        c->env_writer = writer;
    } else if (rc && c->env) {
        mdb_env_close(c->env);
        c->env = NULL;
    }
    pthread_mutex_unlock(&envs_mutex);
    return rc;
}

int catalog_env_alone_begin(const struct catalog *c)
{
    pthread_mutex_lock(&envs_mutex);
    int n = 0;
    for (int i = 0; i < SHARED_ENVS; i++)
        if (envs[i].env && envs[i].env == c->env)
            n = envs[i].users;
    if (n <= 1)
        return 1;
    pthread_mutex_unlock(&envs_mutex);
    return 0;
}

void catalog_env_alone_end(void)
{
    pthread_mutex_unlock(&envs_mutex);
}

int catalog_env_has_writer(const struct catalog *c)
{
    int n = 0;
    pthread_mutex_lock(&envs_mutex);
    for (int i = 0; i < SHARED_ENVS; i++)
        if (envs[i].env && envs[i].env == c->env)
            n = envs[i].writers;
    pthread_mutex_unlock(&envs_mutex);
    return n > 0;
}

static int open_env(struct catalog *c, const char *dir, unsigned flags, int create, uint64_t max_bytes)
{
    MDB_env *env;
    c->env = NULL;
    int rc = mdb_env_create(&env);
    if (rc)
        return lmdb_to_cairn(rc);
    mdb_env_set_maxdbs(env, 4);
    mdb_env_set_assert(env, lmdb_assert);
    mdb_env_set_maxreaders(env, CATALOG_MAX_READERS);
    /* The map is address space only; the file grows with what is written. */
    uint64_t map = max_bytes * 2 + ((uint64_t)1 << 30);
    if (map > ((uint64_t)1 << 44))
        map = (uint64_t)1 << 44;
    mdb_env_set_mapsize(env, map);
    /* Kernel readahead stays on (no MDB_NORDAHEAD): extents are stored in
     * allocation order, so a walk's next extent is usually in the pages the
     * kernel reads ahead.  bench/compare, 200,000 nodes, cold full walk:
     * 0.10 s with readahead, 0.8 s without (one synchronous 4 KiB read per
     * LMDB page); a cold 1% random sample cost 0.056 s against 0.048 s. */
    if (c->no_readahead) /* for bench/readahead only */
        flags |= MDB_NORDAHEAD;
    rc = reserve_lmdb_lock_file(c, dir);
    if (rc) {
        mdb_env_close(env);
        return rc;
    }
    /* An empty data.mdb is a new environment to LMDB, which would write a
     * fresh one over it: for cairn it is a damaged store. */
    char *file;
    struct stat st;
    if (asprintf(&file, "%s/data.mdb", dir) < 0) {
        mdb_env_close(env);
        return ENOMEM;
    }
    rc = !create && stat(file, &st) == 0 && st.st_size == 0;
    if (rc)
        catalog_error(c, "%s/data.mdb: the file is empty", dir);
    else if ((rc = lmdb_file_precheck(file)) != 0)
        catalog_error(c, "%s/data.mdb: a meta page holds a damaged page size", dir);
    free(file);
    if (rc) {
        mdb_env_close(env);
        return CAIRN_CORRUPT;
    }
    rc = mdb_env_open(env, dir, MDB_NOTLS | flags, 0644);
    if (rc) {
        if (lmdb_to_cairn(rc) == CAIRN_CORRUPT)
            catalog_error(c, "%s/data.mdb: not an LMDB file, or its meta pages are damaged (%s)", dir,
                          mdb_strerror(rc));
        mdb_env_close(env);
        return lmdb_to_cairn(rc);
    }
    /* LMDB opens its other files close-on-exec but leaves data.mdb's
     * descriptor inheritable (programs may want it); ours must not leak
     * into what the application execs.  (A fork+exec on another thread
     * between LMDB's open and this line can still inherit it.) */
    int fd;
    if (mdb_env_get_fd(env, &fd) == 0)
        fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
    rc = check_file(c, env, dir);
    if (rc == 0)
        rc = signal_install(); /* the handler that turns LMDB's faults on damage into errors */
    if (rc) {
        mdb_env_close(env);
        return rc;
    }
    lmdb_file_guard(env);
    c->env = env;
    return 0;
}

void catalog_close_env(struct catalog *c)
{
    if (!c->env)
        return;
    int close_it = 1;
    pthread_mutex_lock(&envs_mutex);
    for (int i = 0; i < SHARED_ENVS; i++) {
        if (envs[i].env == c->env) {
            envs[i].writers -= c->env_writer;
            close_it = --envs[i].users == 0;
            if (close_it)
                envs[i] = (struct shared_env){0};
            break;
        }
    }
    if (close_it) /* under the mutex: nobody may find it meanwhile */
        mdb_env_close(c->env);
    pthread_mutex_unlock(&envs_mutex);
    c->env = NULL;
}

int catalog_create(struct catalog *c)
{
    MDB_txn *txn;
    int rc = catalog_txn_begin(c, 0, &txn);
    if (rc)
        return rc;
    rc = lmdb_dbi_open(txn, "meta", MDB_CREATE, &c->meta);
    if (rc == 0)
        rc = lmdb_dbi_open(txn, "extents", MDB_CREATE | MDB_INTEGERKEY, &c->extents);
    uint32_t format = STORE_FORMAT_VERSION, page_size = PAGE_BYTES, extent_pages = PAGES_PER_EXTENT;
    rc = rc ? rc : meta_put(txn, c->meta, CATALOG_FORMAT, &format, 4);
    rc = rc ? rc : meta_put(txn, c->meta, CATALOG_STORE_ID, c->store_id, 16);
    rc = rc ? rc : meta_put(txn, c->meta, CATALOG_PAGE_SIZE, &page_size, 4);
    rc = rc ? rc : meta_put(txn, c->meta, CATALOG_EXTENT_PAGES, &extent_pages, 4);
    rc = rc ? rc : put_u64(c, txn, CATALOG_PAGES, c->pages);
    rc = rc ? rc : catalog_put_ckpt_lsn(c, txn, 0);
    if (rc) {
        mdb_txn_abort(txn);
        return lmdb_to_cairn(rc);
    }
    rc = lmdb_txn_commit(txn);
    /* LMDB writes its first meta pages without a sync: make the whole file
     * durable before it becomes the store. */
    if (rc == 0)
        rc = mdb_env_sync(c->env, 1);
    return lmdb_to_cairn(rc);
}

int catalog_open_dbis(struct catalog *c)
{
    int rc;
    /* A read transaction has nothing to write; MDB_MAP_FULL from its
     * begin or commit (as the I/O-error tests inject) is tried once more,
     * as a writer retries after growing the map. */
    for (int attempt = 0; attempt < 2; attempt++) {
        MDB_txn *txn;
        rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn);
        if (rc == MDB_MAP_FULL)
            continue;
        if (rc)
            break;
        rc = lmdb_dbi_open(txn, "meta", 0, &c->meta);
        if (rc == 0)
            rc = lmdb_dbi_open(txn, "extents", MDB_INTEGERKEY, &c->extents);
        if (rc) {
            /* Missing or damaged: catalog_read says which. */
            mdb_txn_abort(txn);
            return 0;
        }
        rc = mdb_txn_commit(txn);
        if (rc != MDB_MAP_FULL)
            break;
    }
    if (rc)
        catalog_error(c, "%s/data.mdb: opening the catalog's databases: %s", c->path, mdb_strerror(rc));
    return lmdb_to_cairn(rc);
}

int catalog_read(struct catalog *c, MDB_txn *txn)
{
    int rc = lmdb_dbi_open(txn, "meta", 0, &c->meta);
    if (rc == 0)
        rc = lmdb_dbi_open(txn, "extents", MDB_INTEGERKEY, &c->extents);
    if (rc == MDB_NOTFOUND) {
        catalog_error(c, "%s is not a cairn store (no catalog)", c->path);
        return CAIRN_CORRUPT;
    }
    if (rc)
        goto fail;
    /* LMDB takes a database's flags from its record, not from the call: a
     * damaged record could make "extents" a DUPSORT database, on which
     * LMDB asserts. */
    unsigned main_flags = 0, meta_flags = 0, extents_flags = 0;
    mdb_dbi_flags(txn, 1, &main_flags); /* LMDB's MAIN_DBI, holding the two */
    mdb_dbi_flags(txn, c->meta, &meta_flags);
    mdb_dbi_flags(txn, c->extents, &extents_flags);
    if (main_flags != 0 || meta_flags != 0 || extents_flags != MDB_INTEGERKEY) {
        catalog_error(c, "%s/data.mdb: the catalog's databases have flags %#x and %#x, not 0 and %#x", c->path,
                      meta_flags, extents_flags, MDB_INTEGERKEY);
        return CAIRN_CORRUPT;
    }
    uint32_t format = 0, page_size = 0, extent_pages = 0;
    rc = meta_get(txn, c->meta, CATALOG_FORMAT, &format, 4);
    if (rc == 0 && format != STORE_FORMAT_VERSION) {
        catalog_error(c, "%s: catalog format %u, this library reads %u", c->path, format, STORE_FORMAT_VERSION);
        return CAIRN_CORRUPT;
    }
    rc = rc ? rc : meta_get(txn, c->meta, CATALOG_STORE_ID, c->store_id, 16);
    rc = rc ? rc : meta_get(txn, c->meta, CATALOG_PAGE_SIZE, &page_size, 4);
    rc = rc ? rc : meta_get(txn, c->meta, CATALOG_EXTENT_PAGES, &extent_pages, 4);
    rc = rc ? rc : meta_get(txn, c->meta, CATALOG_PAGES, &c->pages, 8);
    rc = rc ? rc : meta_get(txn, c->meta, CATALOG_CKPT_LSN, &c->ckpt_lsn, 8);
    uint64_t sum = 0;
    rc = rc ? rc : meta_get(txn, c->meta, CATALOG_SUM, &sum, 8);
    if (rc == 0 && sum != catalog_sum(c, c->ckpt_lsn))
        rc = MDB_CORRUPTED;
    if (rc == 0 && (page_size != PAGE_BYTES || extent_pages != PAGES_PER_EXTENT || c->pages < LAYOUT_MIN_PAGES ||
                    c->pages > LAYOUT_MAX_PAGES || (c->pages % PAGES_PER_EXTENT)))
        rc = MDB_CORRUPTED;
    if (rc == MDB_NOTFOUND)
        rc = MDB_CORRUPTED;
    if (rc)
        goto fail;
    c->seed = XXH3_64bits(c->store_id, 16);
    return 0;
fail:
    if (lmdb_to_cairn(rc) == CAIRN_CORRUPT)
        catalog_error(c, "%s: catalog damaged (%s)", c->path, mdb_strerror(rc));
    return lmdb_to_cairn(rc);
}

int catalog_copy(struct catalog *from, MDB_txn *from_txn, struct catalog *to, MDB_txn *to_txn, uint64_t ckpt_lsn)
{
    int rc = lmdb_dbi_open(to_txn, "meta", MDB_CREATE, &to->meta);
    if (rc == 0)
        rc = lmdb_dbi_open(to_txn, "extents", MDB_CREATE | MDB_INTEGERKEY, &to->extents);
    MDB_cursor *cur;
    if (rc == 0)
        rc = mdb_cursor_open(from_txn, from->meta, &cur);
    if (rc)
        return lmdb_to_cairn(rc);
    MDB_val k, v;
    size_t lsn_len = strlen(CATALOG_CKPT_LSN), sum_len = strlen(CATALOG_SUM);
    for (rc = lmdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = lmdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if ((k.mv_size == lsn_len && memcmp(k.mv_data, CATALOG_CKPT_LSN, lsn_len) == 0) ||
            (k.mv_size == sum_len && memcmp(k.mv_data, CATALOG_SUM, sum_len) == 0))
            continue;                           /* rewritten below, with the new position */
        if (v.mv_size > STORE_MAX_META_VALUE) { /* a damaged page's size: do not read past it */
            rc = CAIRN_CORRUPT;
            break;
        }
        if ((rc = lmdb_put(to_txn, to->meta, &k, &v, 0)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND && rc != 0)
        return lmdb_to_cairn(rc);
    memcpy(to->store_id, from->store_id, 16);
    to->pages = from->pages;
    to->seed = from->seed;
    to->ckpt_lsn = ckpt_lsn;
    return catalog_put_ckpt_lsn(to, to_txn, ckpt_lsn);
}

int catalog_verify(struct catalog *c)
{
    MDB_txn *txn;
    int rc = catalog_txn_begin(c, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    char why[200] = "";
    rc = lmdb_verify(txn, why, sizeof why);
    mdb_txn_abort(txn);
    if (rc == CAIRN_CORRUPT)
        catalog_error(c, "%s/data.mdb: %s: LMDB's pages are damaged", c->path, why);
    return rc;
}
