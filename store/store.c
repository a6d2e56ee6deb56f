/*
 * store.c - opening and closing a store (the catalog itself is in
 * catalog.c); stats and errors.
 *
 * A store is a directory:
 *   lock       flock()ed exclusively by the read-write opener (read-only
 *              handles take no lock, but for a user who cannot write
 *              lock.mdb: shared, see snapshot.c); the kernel drops it when
 *              the owner dies
 *   data.mdb   LMDB: database "extents" (extent number -> extent record)
 *   lock.mdb   and database "meta" (the catalog, see docs/FORMAT.md)
 *   wal        the write-ahead log (wal/wal.c)
 *
 * Open:  lock -> LMDB -> catalog (create on first open) -> log header ->
 *        recovery (replay committed log records into LMDB, then reset the
 *        log) -> pager (reserve the range; read no page) -> flusher.
 * Close: stop flusher -> abort open transaction -> checkpoint -> pager
 *        (release the range) -> log -> LMDB -> lock.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "store_internal.h"

#define DEFAULT_CHECKPOINT_BYTES ((uint64_t)64 << 20)
#define NEW_STORE_RESERVE (64 << 10) /* a new data.mdb is 5 LMDB pages */

/* Stores open in this process, by directory identity: LMDB must not be
 * opened twice in one process, and a second opener must get CAIRN_BUSY.
 * The fork handlers below walk it too. */
#define MAX_OPEN 64
static pthread_mutex_t open_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int used, writer;
    dev_t dev;
    ino_t ino;
    cairn_store *s; /* for its lock descriptor at fork */
} open_dirs[MAX_OPEN];
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/*
 * fork().  The child gets copies of every descriptor, and a copy of the
 * store lock's descriptor keeps the parent's flock held until the child
 * exits (flock locks belong to the open file, which both now share).  So
 * in the child, right after fork, every store's lock descriptor is closed
 * and the table of open stores is emptied: the child holds no store, the
 * parent's close releases the lock as usual, and the child may open the
 * store itself (once the parent's hold allows it).  The parent's handles
 * are dead in the child (store_foreign); its memory is not there
 * (MADV_DONTFORK).  Every descriptor is close-on-exec, so exec inherits
 * nothing either.  Only close(2) runs in the child handler (async-signal-
 * safe, as a child of a threaded parent requires); open_mutex is held
 * across fork so the table is never copied half-written.
 */
static void fork_prepare(void)
{
    pthread_mutex_lock(&open_mutex);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&open_mutex);
}

static void fork_child(void)
{
    for (int i = 0; i < MAX_OPEN; i++) {
        cairn_store *s = open_dirs[i].s;
        if (s && s->lockfd >= 0) {
            close(s->lockfd);
            s->lockfd = -1;
        }
        memset(&open_dirs[i], 0, sizeof open_dirs[i]);
    }
    pthread_mutex_unlock(&open_mutex);
}

static void fork_handlers_install(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

int store_foreign(const cairn_store *s)
{
    return s->owner != getpid();
}

int store_claim_dir(dev_t dev, ino_t ino, cairn_store *s, int writer, int *slot)
{
    int rc = 0, free_slot = -1;
    pthread_once(&fork_once, fork_handlers_install);
    pthread_mutex_lock(&open_mutex);
    for (int i = 0; i < MAX_OPEN; i++) {
        if (!open_dirs[i].used) {
            if (free_slot < 0)
                free_slot = i;
        } else if (writer && open_dirs[i].writer && open_dirs[i].dev == dev && open_dirs[i].ino == ino) {
            rc = CAIRN_BUSY; /* one writer per store */
        }
    }
    if (rc == 0 && free_slot < 0)
        rc = CAIRN_BUSY;
    if (rc == 0) {
        open_dirs[free_slot].used = 1;
        open_dirs[free_slot].writer = writer;
        open_dirs[free_slot].dev = dev;
        open_dirs[free_slot].ino = ino;
        open_dirs[free_slot].s = s;
        *slot = free_slot;
    }
    pthread_mutex_unlock(&open_mutex);
    return rc;
}

void store_claim_set(int slot, cairn_store *s)
{
    pthread_mutex_lock(&open_mutex);
    open_dirs[slot].s = s;
    pthread_mutex_unlock(&open_mutex);
}

void store_release_dir(int slot)
{
    pthread_mutex_lock(&open_mutex);
    memset(&open_dirs[slot], 0, sizeof open_dirs[slot]);
    pthread_mutex_unlock(&open_mutex);
}

void cairn_options_init(cairn_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->max_bytes = STORE_DEFAULT_MAX_BYTES;
    o->sync = CAIRN_SYNC_FULL;
    o->compression_level = 1;
    o->backend = CAIRN_BACKEND_AUTO;
    o->checkpoint_bytes = DEFAULT_CHECKPOINT_BYTES;
}

void store_set_error(cairn_store *s, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&s->err_mutex);
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&s->err_mutex);
}

int store_fail(cairn_store *s, int code, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&s->err_mutex);
    int first = 0;
    if (atomic_compare_exchange_strong(&s->failed, &first, code)) {
        va_start(ap, fmt);
        vsnprintf(s->fail_msg, sizeof s->fail_msg, fmt, ap);
        va_end(ap);
    }
    snprintf(s->errmsg, sizeof s->errmsg, "%s", s->fail_msg);
    int rc = atomic_load(&s->failed);
    pthread_mutex_unlock(&s->err_mutex);
    return rc;
}

int store_failed(cairn_store *s)
{
    int rc = atomic_load(&s->failed);
    if (rc) {
        pthread_mutex_lock(&s->err_mutex);
        snprintf(s->errmsg, sizeof s->errmsg, "%s", s->fail_msg);
        pthread_mutex_unlock(&s->err_mutex);
    }
    return rc;
}

/* The detail of this thread's last failed cairn_open (cairn_errmsg(NULL)). */
static __thread char open_errmsg[512];

void store_catalog_error(void *s, const char *msg)
{
    store_set_error(s, "%s", msg);
}

int store_read_catalog(cairn_store *s, MDB_txn *txn)
{
    int rc = catalog_read(&s->cat, txn);
    return rc ? rc : types_load(s, txn);
}

/* Read the catalog of an existing store, and its types. */
static int open_catalog(cairn_store *s)
{
    MDB_txn *txn;
    /* Read-only even for a writer: nothing is written to data.mdb before
     * the log is found to belong with it (store_log_continues). */
    int rc = catalog_txn_begin(&s->cat, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    rc = store_read_catalog(s, txn);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    /* Commit, not abort: the database handles opened here stay valid only
     * if the transaction that opened them commits (a read-only one too). */
    return lmdb_to_cairn(lmdb_txn_commit(txn));
}

void store_set_open_error(const char *msg)
{
    snprintf(open_errmsg, sizeof open_errmsg, "%s", msg);
}

const char *cairn_errmsg(cairn_store *s)
{
    return s ? s->errmsg : open_errmsg;
}

static void remove_staging(cairn_store *s)
{
    unlinkat(s->dirfd, "new.tmp/data.mdb", 0);
    unlinkat(s->dirfd, "new.tmp/lock.mdb", 0);
    unlinkat(s->dirfd, "new.tmp", AT_REMOVEDIR);
}

/*
 * A store is created only where there is none: in a directory that is
 * empty, or holds only what an interrupted creation leaves (the lock, the
 * staging directory, a log that was never written to).  A directory with
 * a log that holds records, or with LMDB's lock.mdb, was a store whose
 * data.mdb went missing: creating one there would destroy its log, so the
 * open is refused and nothing is touched (CAIRN_CORRUPT).  Anything else
 * is somebody's directory (ENOTEMPTY).
 */
int store_check_creatable(int dirfd, const char *path, char *msg, size_t msglen)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        int rc = errno;
        if (fd >= 0)
            close(fd);
        return rc;
    }
    int rc = 0, log = 0, lmdb_lock = 0;
    char other[65] = "";
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "lock") || !strcmp(n, "new.tmp") || !strcmp(n, "wal.tmp"))
            continue;
        int kind = strcmp(n, "wal") ? -1 : wal_probe(dirfd);
        if (kind == 1)
            continue; /* created, never written */
        if (kind == 0)
            log = 1;
        else if (!strcmp(n, "lock.mdb"))
            lmdb_lock = 1;
        else if (!other[0])
            snprintf(other, sizeof other, "%.64s", n);
    }
    if (log || lmdb_lock) {
        snprintf(msg, msglen,
                 "%s: data.mdb is missing beside the store's %s; refusing to create a store over it "
                 "(restore data.mdb, or remove the directory to start afresh)",
                 path, log ? "log (wal)" : "LMDB lock file (lock.mdb)");
        rc = CAIRN_CORRUPT;
    } else if (other[0]) {
        snprintf(msg, msglen,
                 "%s: not a cairn store, and not empty (holds \"%s\"); a store is created only in an "
                 "empty or missing directory",
                 path, other);
        rc = ENOTEMPTY;
    }
    closedir(d);
    return rc;
}

static int check_creatable(cairn_store *s)
{
    char msg[sizeof s->errmsg] = "";
    int rc = store_check_creatable(s->dirfd, s->path, msg, sizeof msg);
    if (msg[0])
        store_set_error(s, "%s", msg);
    return rc;
}

/* After a refused or failed creation: leave the directory as it was. */
static void undo_creation(cairn_store *s)
{
    if (!s->made_store)
        return;
    remove_staging(s);
    unlinkat(s->dirfd, "wal.tmp", 0);
    unlinkat(s->dirfd, "wal", 0);
    unlinkat(s->dirfd, "data.mdb", 0);
    unlinkat(s->dirfd, "lock.mdb", 0);
}

/*
 * Create a store in the directory, atomically as far as a crash can tell:
 * the LMDB environment is built and synced in "new.tmp", the log is
 * created, and only then is new.tmp/data.mdb renamed to data.mdb (and the
 * directory synced).  A store without data.mdb was never created — its
 * leftovers are removed and creation starts again; a store with data.mdb
 * but no log is damaged (CAIRN_CORRUPT).
 */
static int create_store(cairn_store *s)
{
    uint64_t pages = (s->opt.max_bytes / PAGE_BYTES) & ~(PAGES_PER_EXTENT - 1);
    if (pages < LAYOUT_MIN_PAGES || pages > LAYOUT_MAX_PAGES) {
        store_set_error(s, "max_bytes must be between 16 MiB and 16 TiB");
        return CAIRN_INVALID;
    }
    s->cat.pages = pages;
    s->cat.ckpt_lsn = 0;
    if (getrandom(s->cat.store_id, 16, 0) != 16)
        return errno;
    s->made_store = 1; /* from here undo_creation removes what is made */
    remove_staging(s);
    unlinkat(s->dirfd, "wal", 0); /* unused (check_creatable) */
    unlinkat(s->dirfd, "wal.tmp", 0);
    if (mkdirat(s->dirfd, "new.tmp", 0755) != 0)
        return errno;
    char *staging;
    if (asprintf(&staging, "%s/new.tmp", s->path) < 0)
        return ENOMEM;
    /* Reserve the blocks of the new data.mdb: LMDB turns a short write
     * into EIO, and a full disk must be ENOSPC. */
    int fd = openat(s->dirfd, "new.tmp/data.mdb", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(staging);
        return errno;
    }
    int rc = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, NEW_STORE_RESERVE) != 0 && errno != EOPNOTSUPP && errno != ENOSYS
                 ? errno
                 : 0;
    close(fd);
    struct catalog fresh = s->cat; /* the store's id and size, a new environment */
    if (rc == 0)
        rc = catalog_open_env(&fresh, staging, 0, 1, s->opt.max_bytes);
    free(staging);
    if (rc == 0)
        rc = catalog_create(&fresh);
    catalog_close_env(&fresh);
    if (rc == 0)
        rc = wal_open(&s->wal, s->dirfd, s->cat.store_id, 1, 0);
    if (rc == 0 && renameat(s->dirfd, "new.tmp/data.mdb", s->dirfd, "data.mdb") != 0)
        rc = errno;
    if (rc == 0 && fsync(s->dirfd) != 0)
        rc = errno;
    remove_staging(s);
    return rc;
}

static void hex_id(const uint8_t id[16], char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", id[i]);
}

/*
 * The rule that binds data.mdb to its log (docs/FORMAT.md, "Which files
 * belong together").  data.mdb's catalog says it holds the store up to the
 * checkpoint at LSN C; the log's header says its records start at LSN S
 * (and names its store, which wal_open compares).  A checkpoint commits C
 * to LMDB first and only then replaces the log by one starting at C + 1,
 * and the log is synced up to C before that commit, so every state a crash
 * can leave has
 *     S <= C + 1   (no committed transaction lies between the files), and
 *     C <= L       (L: the log's last valid commit, S - 1 if it has none:
 *                   data.mdb holds nothing the log did not lead to).
 * Anything else is data.mdb from another moment of the store: an older
 * copy put back, a newer one, or LMDB fallen back to its older meta page.
 * Replaying onto it would build a store that never existed, and its next
 * commit would make that permanent, so it is refused before anything is
 * written.  last is UINT64_MAX when the log has not been read yet (only
 * the first condition is checked then).  Used by recovery, the snapshot
 * reader and so the command.  Returns 0 or CAIRN_CORRUPT, message set.
 */
int store_log_continues(cairn_store *s, uint64_t ckpt_lsn, uint64_t start_lsn, uint64_t last_lsn)
{
    if (start_lsn > ckpt_lsn + 1) {
        store_set_error(s,
                        "%s: data.mdb and wal do not belong together: data.mdb holds the store up to LSN %llu, "
                        "the log starts at LSN %llu, so data.mdb is older than the log (a copy put back, or LMDB "
                        "fell back to an older meta page) and the log records of LSNs %llu..%llu are in neither file",
                        s->path, (unsigned long long)ckpt_lsn, (unsigned long long)start_lsn,
                        (unsigned long long)ckpt_lsn + 1, (unsigned long long)start_lsn - 1);
        return CAIRN_CORRUPT;
    }
    if (last_lsn != UINT64_MAX && ckpt_lsn > last_lsn) {
        store_set_error(s,
                        "%s: data.mdb and wal do not belong together: data.mdb holds the store up to LSN %llu, "
                        "but the log (from LSN %llu) ends at LSN %llu, so data.mdb is newer than the log (the log "
                        "was put back from an older copy, or is another copy's)",
                        s->path, (unsigned long long)ckpt_lsn, (unsigned long long)start_lsn,
                        (unsigned long long)last_lsn);
        return CAIRN_CORRUPT;
    }
    return 0;
}

int store_open_log(cairn_store *s, int readonly)
{
    int rc = wal_open(&s->wal, s->dirfd, s->cat.store_id, 0, readonly);
    if (rc == ENOENT) {
        store_set_error(s, "%s/wal: the log is missing", s->path);
        rc = CAIRN_CORRUPT;
    } else if (rc == CAIRN_CORRUPT && s->wal.foreign) {
        char a[33], b[33];
        hex_id(s->wal.store_id, a);
        hex_id(s->cat.store_id, b);
        store_set_error(s, "%s: data.mdb and wal do not belong together: the log is of store %s, data.mdb of store %s",
                        s->path, a, b);
    } else if (rc == CAIRN_CORRUPT) {
        store_set_error(s, "%s/wal: the log header is damaged", s->path);
    } else if (rc) {
        store_set_error(s, "%s/wal: %s", s->path, strerror(rc));
    }
    return rc;
}

/* The page store's hooks into the catalog: the checkpoint position is a
 * catalog entry (with the catalog checksum), and every LMDB transaction
 * begins with the catalog's file checks. */
static int put_position(void *arg, MDB_txn *txn, uint64_t lsn)
{
    cairn_store *s = arg;
    return catalog_put_ckpt_lsn(&s->cat, txn, lsn);
}

static int get_position(void *arg, MDB_txn *txn, uint64_t *lsn)
{
    cairn_store *s = arg;
    return catalog_get_ckpt_lsn(&s->cat, txn, lsn);
}

static int pagestore_txn_begin(void *arg, unsigned flags, MDB_txn **out)
{
    cairn_store *s = arg;
    return catalog_txn_begin(&s->cat, flags, out);
}

static int open_pagestore(cairn_store *s)
{
    struct pagestore_lmdb_config c = {
        .env = s->cat.env,
        .extents = s->cat.extents,
        .put_position = put_position,
        .get_position = get_position,
        .txn_begin = pagestore_txn_begin,
        .arg = s,
        .error = store_catalog_error,
        .name = s->path,
    };
    return pagestore_lmdb_open(&c, &s->pagestore);
}

#define MAX_MAP ((size_t)1 << 46)

int store_grow_map(cairn_store *s)
{
    MDB_envinfo info;
    int rc;
    /* LMDB remaps on growth, under every transaction of the process: the
     * read-only handles sharing the environment hold theirs open, and none
     * may join while the map moves. */
    if (!catalog_env_alone_begin(&s->cat)) {
        store_set_error(s,
                        "%s/data.mdb: LMDB's map is full, and cannot grow while read-only handles of this store "
                        "are open in this process",
                        s->path);
        return CAIRN_FULL;
    }
    pthread_rwlock_wrlock(&s->lmdb_lock);
    if (s->pagestore)
        pagestore_lmdb_quiesce(s->pagestore);
    mdb_env_info(s->cat.env, &info);
    size_t next = info.me_mapsize * 2;
    if (next > MAX_MAP)
        next = MAX_MAP;
    /* LMDB unmaps the old map before mapping the new one and cannot map
     * again after a failure (its environment is then unusable), so first
     * make sure the address space can take the larger map. */
    while (next > info.me_mapsize) {
        void *probe = mmap(NULL, next, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (probe != MAP_FAILED) {
            munmap(probe, next);
            break;
        }
        next = info.me_mapsize + (next - info.me_mapsize) / 2;
        if (next - info.me_mapsize < ((size_t)64 << 20))
            next = info.me_mapsize; /* not even 64 MiB more: full */
    }
    rc = next > info.me_mapsize ? mdb_env_set_mapsize(s->cat.env, next) : MDB_MAP_FULL;
    if (rc && rc != MDB_MAP_FULL) {
        /* Lost the map anyway: nothing may touch this environment again. */
        if (s->pagestore)
            pagestore_lmdb_lost(s->pagestore);
        rc = store_fail(s, CAIRN_IOERR, "LMDB map lost while growing it (%d); reopen the store", rc);
    }
    if (s->pagestore)
        pagestore_lmdb_resume(s->pagestore);
    pthread_rwlock_unlock(&s->lmdb_lock);
    catalog_env_alone_end();
    return lmdb_to_cairn(rc);
}

static int open_lmdb(cairn_store *s)
{
    int rc = catalog_open_env(&s->cat, s->path, 0, 0, s->opt.max_bytes);
    if (rc)
        return rc;
    int dead;
    mdb_reader_check(s->cat.env, &dead);
    return 0;
}

static void store_free(cairn_store *s)
{
    if (s->pager)
        pager_close(s->pager);
    if (s->pagestore)
        pagestore_lmdb_close(s->pagestore);
    wal_close(&s->wal);
    catalog_close_env(&s->cat);
    types_free(s);
    ZSTD_freeCCtx(s->cctx);
    ZSTD_freeDCtx(s->dctx);
    free(s->zbuf);
    if (s->lockfd >= 0)
        close(s->lockfd);
    if (s->made_lock && s->dirfd >= 0)
        unlinkat(s->dirfd, "lock", 0);
    if (s->dirfd >= 0)
        close(s->dirfd);
    if (s->made_dir)
        rmdir(s->path);
    if (s->claim_slot >= 0)
        store_release_dir(s->claim_slot);
    store_handle_destroy(s);
    free(s);
}

void store_handle_init(cairn_store *s, const cairn_options *o)
{
    s->dirfd = s->lockfd = -1;
    s->wal.fd = -1;
    s->claim_slot = -1;
    s->owner = getpid();
    pthread_mutex_init(&s->txn_mutex, NULL);
    pthread_cond_init(&s->txn_cond, NULL);
    pthread_mutex_init(&s->ckpt_mutex, NULL);
    pthread_mutex_init(&s->log_mutex, NULL);
    pthread_mutex_init(&s->alloc_mutex, NULL);
    pthread_rwlock_init(&s->types_lock, NULL);
    pthread_rwlock_init(&s->lmdb_lock, NULL);
    pthread_mutex_init(&s->flush_mutex, NULL);
    pthread_cond_init(&s->flush_cond, NULL);
    pthread_mutex_init(&s->err_mutex, NULL);
    knobs_read(&s->knobs);
    cairn_options_init(&s->opt);
    if (o) {
        s->opt = *o;
        if (!s->opt.max_bytes)
            s->opt.max_bytes = STORE_DEFAULT_MAX_BYTES;
        if (!s->opt.checkpoint_bytes)
            s->opt.checkpoint_bytes = DEFAULT_CHECKPOINT_BYTES;
    }
}

int store_open_pager(cairn_store *s)
{
    struct pager_config pc = {
        .pages = s->cat.pages,
        .cache_bytes = s->opt.cache_bytes,
        /* The option wins over the environment variable. */
        .backend = s->opt.backend != CAIRN_BACKEND_AUTO ? s->opt.backend : s->knobs.backend,
        .evict_random = s->knobs.evict_random,
        .publish_page_only = s->knobs.publish_page_only,
        .pagestore = s->pagestore,
        .checksum_seed = s->cat.seed,
        .store = s,
        .fault_error = s->opt.fault_error,
        .fault_error_arg = s->opt.fault_error_arg,
        .name = s->path,
    };
    return pager_open(&s->pager, &pc);
}

void store_handle_destroy(cairn_store *s)
{
    pthread_mutex_destroy(&s->txn_mutex);
    pthread_cond_destroy(&s->txn_cond);
    pthread_mutex_destroy(&s->ckpt_mutex);
    pthread_mutex_destroy(&s->log_mutex);
    pthread_mutex_destroy(&s->alloc_mutex);
    pthread_rwlock_destroy(&s->types_lock);
    pthread_rwlock_destroy(&s->lmdb_lock);
    pthread_mutex_destroy(&s->flush_mutex);
    pthread_cond_destroy(&s->flush_cond);
    pthread_mutex_destroy(&s->err_mutex);
    free(s->path);
    s->path = NULL;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* busy_timeout_ms: sleep a little before trying again; 0 once the
 * deadline has passed.  Polling, because neither flock nor the table of
 * this process's open stores can wait with a timeout. */
static int busy_wait(uint64_t deadline)
{
    uint64_t now = now_ms();
    if (now >= deadline)
        return 0;
    uint64_t ms = deadline - now < 10 ? deadline - now : 10;
    struct timespec ts = {0, (long)ms * 1000000};
    nanosleep(&ts, NULL);
    return 1;
}

static int fsync_parent(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return ENOMEM;
    size_t len = strlen(copy);
    while (len > 1 && copy[len - 1] == '/')
        copy[--len] = 0;
    char *slash = strrchr(copy, '/');
    const char *parent = ".";
    if (slash == copy)
        parent = "/";
    else if (slash) {
        *slash = 0;
        parent = copy;
    }
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd < 0 ? errno : (fsync(fd) != 0 ? errno : 0);
    if (fd >= 0)
        close(fd);
    free(copy);
    return rc;
}

int cairn_open(const char *path, const cairn_options *o, cairn_store **out)
{
    if (!path || !*path || !out)
        return CAIRN_INVALID;
    cairn_store *s = calloc(1, sizeof *s);
    if (!s)
        return ENOMEM;
    store_handle_init(s, o);
    s->readonly = (s->opt.flags & CAIRN_RDONLY) != 0;
    int rc = CAIRN_INVALID;
    if (s->opt.flags & ~CAIRN_RDONLY) {
        store_set_error(s, "cairn_options.flags holds unknown bits %#x", s->opt.flags & ~CAIRN_RDONLY);
        goto fail;
    }
    if ((s->opt.sync != CAIRN_SYNC_FULL && s->opt.sync != CAIRN_SYNC_OFF) || s->opt.backend < CAIRN_BACKEND_AUTO ||
        s->opt.backend > CAIRN_BACKEND_MPROTECT || s->opt.compression_level < -7 || s->opt.compression_level > 22)
        goto fail;
    if (s->readonly) {
        cairn_options opt = s->opt;
        store_free(s);
        return readonly_open(path, &opt, out);
    }
    s->path = strdup(path);
    if (!s->path) {
        rc = ENOMEM;
        goto fail;
    }
    s->cat.path = s->path;
    s->cat.error = store_catalog_error;
    s->cat.error_arg = s;
    s->cat.no_readahead = s->knobs.lmdb_no_readahead;

    {
        if (mkdir(path, 0755) == 0) {
            s->made_dir = 1;
            rc = fsync_parent(path); /* the new directory entry must survive a crash */
            if (rc)
                goto fail;
        } else if (errno != EEXIST) {
            rc = errno;
            goto fail;
        }
    }
    s->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0) {
        rc = errno;
        goto fail;
    }
    struct stat st;
    if (fstat(s->dirfd, &st) != 0) {
        rc = errno;
        goto fail;
    }
    uint64_t deadline = now_ms() + s->opt.busy_timeout_ms;
    while ((rc = store_claim_dir(st.st_dev, st.st_ino, s, 1, &s->claim_slot)) == CAIRN_BUSY && busy_wait(deadline))
        ;
    if (rc) {
        store_set_error(s, "%s is already open read-write in this process (or too many stores are open)", path);
        goto fail;
    }
    s->dev = st.st_dev, s->ino = st.st_ino;
    s->lockfd = openat(s->dirfd, "lock", O_RDWR | O_CLOEXEC);
    if (s->lockfd < 0 && errno == ENOENT) {
        /* Exclusive, so that a refused or failed creation knows it may
         * remove the file again. */
        s->lockfd = openat(s->dirfd, "lock", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        s->made_lock = s->lockfd >= 0;
        if (s->lockfd < 0 && errno == EEXIST)
            s->lockfd = openat(s->dirfd, "lock", O_RDWR | O_CLOEXEC);
    }
    if (s->lockfd < 0) {
        rc = errno;
        goto fail;
    }
    for (;;) {
        rc = flock(s->lockfd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno == EWOULDBLOCK ? CAIRN_BUSY : errno;
        if (rc != CAIRN_BUSY || !busy_wait(deadline))
            break;
    }
    if (rc) {
        store_set_error(s, "%s is open in another process", path);
        goto fail;
    }

    int created = faccessat(s->dirfd, "data.mdb", F_OK, 0) != 0;
    if (created && errno != ENOENT) {
        rc = errno;
        store_set_error(s, "%s/data.mdb: %s", path, strerror(rc));
        goto fail;
    }
    if (created) {
        rc = check_creatable(s);
        if (rc == 0)
            rc = create_store(s);
        if (rc)
            goto fail;
    }
    rc = open_lmdb(s);
    if (rc)
        goto fail;
    rc = open_catalog(s);
    if (rc == 0)
        rc = catalog_verify(&s->cat);
    if (rc == 0)
        rc = open_pagestore(s);
    if (rc)
        goto fail;
    if (!created) {
        rc = store_open_log(s, 0);
        if (rc)
            goto fail;
    }
    s->wal.fail_syncs_after = (unsigned)s->knobs.test.log_sync_fails_after;

    s->cctx = ZSTD_createCCtx();
    s->dctx = ZSTD_createDCtx();
    s->zbuf = malloc(extent_bound());
    if (!s->cctx || !s->dctx || !s->zbuf) {
        rc = ENOMEM;
        goto fail;
    }
    int pending = 0;
    rc = recover_log(s, &pending);
    if (rc)
        goto fail;

    rc = store_open_pager(s);
    if (rc == 0)
        rc = checkpoint_flusher_start(s);
    if (rc)
        goto fail;
    s->made_dir = s->made_lock = s->made_store = 0; /* a store now: kept */
    *out = s;
    open_errmsg[0] = 0;
    return 0;
fail:
    snprintf(open_errmsg, sizeof open_errmsg, "%s", s->errmsg[0] ? s->errmsg : cairn_strerror(rc));
    catalog_close_env(&s->cat); /* LMDB's files must be closed before they are removed */
    wal_close(&s->wal);
    undo_creation(s);
    store_free(s);
    return rc;
}

int cairn_close(cairn_store *s)
{
    if (!s)
        return CAIRN_OK;
    if (store_foreign(s))
        return CAIRN_INVALID; /* a forked child: the handle is the parent's */
    if (s->snap)
        return readonly_close(s);
    checkpoint_flusher_stop(s);
    pthread_mutex_lock(&s->txn_mutex);
    cairn_txn *t = s->txn;
    pthread_mutex_unlock(&s->txn_mutex);
    if (t)
        cairn_txn_abort(t);
    int rc = 0;
    if (!s->failed)
        rc = checkpoint_run(s, 0);
    store_free(s);
    return rc;
}

int cairn_checkpoint(cairn_store *s)
{
    if (!s || store_foreign(s))
        return CAIRN_INVALID;
    if (s->readonly)
        return CAIRN_READONLY;
    return checkpoint_run(s, 0);
}

int cairn_prefault(cairn_store *s, const void *addr, size_t len, int for_write)
{
    if (!s)
        return CAIRN_INVALID;
    if (for_write && s->readonly)
        return CAIRN_READONLY;
    return pager_prefault(s->pager, addr, len, for_write);
}

int cairn_release(cairn_store *s, const void *addr, size_t len)
{
    if (!s)
        return CAIRN_INVALID;
    return pager_release(s->pager, addr, len);
}

int cairn_range(cairn_store *s, void **base, size_t *len)
{
    if (!s)
        return CAIRN_INVALID;
    if (base)
        *base = s->pager->base;
    if (len)
        *len = s->pager->bytes;
    return 0;
}

int cairn_stats_get(cairn_store *s, cairn_stats *out)
{
    if (!s || !out)
        return CAIRN_INVALID;
    struct pager *p = s->pager;
    /* The allocator's high-water mark lives in the superblock; read it
     * through the private view, loading it if need be (before the counters
     * are read, so that they include this load), so that stats never
     * fault. */
    int rc = fault_hold_page(p, LAYOUT_SUPER_PAGE);
    if (rc)
        return rc;
    uint64_t next;
    memcpy(&next, p->priv + LAYOUT_SUPER_PAGE * PAGE_BYTES + offsetof(struct superblock, next_page), 8);
    fault_unlock_page(p, LAYOUT_SUPER_PAGE);
    memset(out, 0, sizeof *out);
    out->faults_read = atomic_load(&p->faults_read);
    out->faults_write = atomic_load(&p->faults_write);
    out->pages_resident = atomic_load(&p->extents_resident) * PAGES_PER_EXTENT;
    out->pages_dirty = atomic_load(&p->ndirty);
    out->evictions = atomic_load(&p->evictions);
    out->extents_loaded = atomic_load(&p->extents_loaded);
    out->commits = atomic_load(&s->commits);
    out->aborts = atomic_load(&s->aborts);
    out->checkpoints = atomic_load(&s->checkpoints);
    out->bytes_compressed = atomic_load(&s->bytes_compressed);
    out->bytes_uncompressed = atomic_load(&s->bytes_uncompressed);
    out->backend = pager_backend(p);
    pthread_mutex_lock(&s->log_mutex);
    out->wal_bytes = s->wal.end;
    uint64_t wal_file = s->wal.zeroed_end > s->wal.end ? s->wal.zeroed_end : s->wal.end; /* with zeros ahead */
    out->pages_unflushed = p->n_unflushed;
    pthread_mutex_unlock(&s->log_mutex);
    pthread_mutex_lock(&s->wal.sync_mutex);
    out->log_syncs = s->wal.syncs;
    pthread_mutex_unlock(&s->wal.sync_mutex);
    struct stat st;
    if (fstatat(s->dirfd, "data.mdb", &st, 0) == 0)
        out->bytes_on_disk += (uint64_t)st.st_size;
    out->bytes_on_disk += wal_file;
    out->pages_allocated = next ? next - p->layout.data_start : 0;
    return 0;
}
