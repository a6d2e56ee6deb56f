/*
 * lmdb_file.c - keep LMDB from reading past the end of data.mdb.
 *
 * LMDB reads every page through a shared map of data.mdb that is much
 * larger than the file; a page beyond the file's end is a SIGBUS, not an
 * error.  LMDB checks a page number only against its meta page (a page at
 * or past next_pgno is MDB_PAGE_NOTFOUND), so a file shorter than its
 * meta page claims - truncated by a copy, a full disk, a user - would
 * kill the process on the first read.  Before a transaction reads
 * anything, the file must therefore hold every page of the newest meta
 * page, which covers every snapshot a transaction can see (LMDB's file
 * only grows, and each commit writes its pages before its meta page).
 *
 * A damaged page (not a cut file) can send LMDB past the end too: LMDB
 * trusts a page's node offsets and key sizes (16 bits each, so at most
 * ~128 KiB past the page), and hands back a value whose size comes from
 * the page.  So the file is kept LMDB_FILE_SLACK longer than its pages
 * (lmdb_file_pad: zeros, sparse, ignored by LMDB); a zero page reads as a
 * page of no known kind, MDB_CORRUPTED.  A value's page is one LMDB
 * checked against its meta page, and what cairn reads of a value is
 * bounded too (an extent by its header, checked against the size LMDB
 * gives: extent_decode), so those reads stay inside the zeros as well.
 *
 * What this cannot see: a file truncated while a transaction is already
 * reading it (a race with another program).
 *
 * lmdb_file_check is async-signal-safe (fstat(2), and LMDB calls that
 * only read memory): the fault path uses it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pager.h"

int lmdb_file_check(MDB_env *env, uint64_t *have, uint64_t *need)
{
    int fd;
    MDB_envinfo info;
    MDB_stat ms;
    struct stat st;
    if (mdb_env_get_fd(env, &fd) != 0 || mdb_env_info(env, &info) != 0 || mdb_env_stat(env, &ms) != 0)
        return CAIRN_IOERR;
    if (fstat(fd, &st) != 0)
        return errno;
    uint64_t want = ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize;
    if (have)
        *have = (uint64_t)st.st_size;
    if (need)
        *need = want;
    return (uint64_t)st.st_size < want ? CAIRN_CORRUPT : 0;
}

/* Where LMDB mapped the file st (LMDB does not say: its me_mapaddr is
 * the meta page's MDB_FIXEDMAP address): the mapping of offset 0 of that
 * file in /proc/self/maps.  One environment per file and process, so
 * there is one.  NULL if not found. */
static char *map_base(const struct stat *st)
{
    FILE *f = fopen("/proc/self/maps", "re");
    char line[4200], *base = NULL;
    if (!f)
        return NULL;
    while (!base && fgets(line, sizeof line, f)) {
        unsigned long start, end, off, ino;
        unsigned maj, min;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &start, &end, perms, &off, &maj, &min, &ino) == 7 && off == 0 &&
            ino == st->st_ino && maj == major(st->st_dev) && min == minor(st->st_dev))
            base = (char *)start;
    }
    fclose(f);
    return base;
}

char *lmdb_map_base(MDB_env *env)
{
    int fd;
    struct stat st;
    if (mdb_env_get_fd(env, &fd) != 0 || fstat(fd, &st) != 0)
        return NULL;
    return map_base(&st);
}

/* The file's size and the bytes its pages use plus the slack (at most
 * the map); 0 or -1.  Cheap: the map's address (a read of /proc) is looked
 * up only when there is something to do. */
static int sizes(MDB_env *env, int *fd, MDB_envinfo *info, uint64_t *size, uint64_t *want)
{
    MDB_stat ms;
    struct stat st;
    if (mdb_env_get_fd(env, fd) != 0 || mdb_env_info(env, info) != 0 || mdb_env_stat(env, &ms) != 0 ||
        fstat(*fd, &st) != 0)
        return -1;
    *size = (uint64_t)st.st_size;
    *want = ((uint64_t)info->me_last_pgno + 1) * ms.ms_psize + LMDB_FILE_SLACK;
    if (*want > info->me_mapsize)
        *want = info->me_mapsize;
    return 0;
}

static uint64_t page_up(uint64_t n)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    return (n + page - 1) / page * page;
}

/*
 * Zeros past the last page, without writing: the part of LMDB's map past
 * the end of the file is replaced by anonymous zero pages.  Nothing may be
 * written to the file until lmdb_file_pad (a refused open changes
 * nothing); a writer of another process that grows it afterwards is
 * followed by lmdb_file_follow before a reader's next transactions.  Best effort: on failure the map stays as LMDB made it.
 */
void lmdb_file_guard(MDB_env *env)
{
    int fd;
    MDB_envinfo info;
    uint64_t size, want;
    char *base;
    if (sizes(env, &fd, &info, &size, &want) != 0 || page_up(size) >= want || !(base = lmdb_map_base(env)))
        return;
    mmap(base + page_up(size), want - page_up(size), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
}

/*
 * A reader beside a writer of another process: the writer grows the file
 * after the reader's guard put zeros past its old end, and a newer
 * snapshot's pages would read as those zeros.  So before new transactions
 * begin, the whole file is mapped again as LMDB mapped it (read-only,
 * shared: the bytes any open transaction sees stay where they are), and
 * the guard goes past the new end.  Best effort, as the guard.
 */
void lmdb_file_follow(MDB_env *env)
{
    int fd;
    MDB_envinfo info;
    uint64_t size, want;
    char *base;
    if (sizes(env, &fd, &info, &size, &want) != 0 || !(base = lmdb_map_base(env)))
        return;
    uint64_t to = page_up(size) < info.me_mapsize ? page_up(size) : info.me_mapsize;
    if (mmap(base, to, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED)
        return;
    lmdb_file_guard(env);
}

/*
 * Make the zeros real before LMDB writes: grow the file (ftruncate: a hole,
 * no blocks; LMDB writes its next pages over it), and map the file again
 * where lmdb_file_guard put anonymous pages, or LMDB would not see the
 * pages it writes there.  A failed ftruncate only loses the protection; a
 * failed map is an error (the write transaction must not run).
 */
int lmdb_file_pad(MDB_env *env)
{
    int fd;
    MDB_envinfo info;
    uint64_t size, want;
    char *base;
    if (sizes(env, &fd, &info, &size, &want) != 0 || size >= want)
        return 0;
    (void)!ftruncate(fd, (off_t)want);
    if (!(base = lmdb_map_base(env)))
        return 0; /* no map found: LMDB's own (nothing was guarded) */
    uint64_t from = page_up(size) < want ? page_up(size) : want;
    /* The whole file from there on: the guard's pages may reach past want
     * when the meta page has changed since. */
    uint64_t to = info.me_mapsize;
    if (from < to && mmap(base + from, to - from, PROT_READ, MAP_SHARED | MAP_FIXED, fd, (off_t)from) == MAP_FAILED)
        return errno;
    return 0;
}

/*
 * LMDB takes its page size from the meta pages and divides by it before
 * it checks anything: a damaged page size of 0 is a SIGFPE inside
 * mdb_env_open.  So the two meta pages' sizes are read here first.
 */
int lmdb_file_precheck(const char *file)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0; /* LMDB reports it */
    int rc = 0;
    uint64_t off = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        unsigned char m[48];
        uint32_t magic, psize;
        if (pread(fd, m, sizeof m, (off_t)off) != (ssize_t)sizeof m)
            break; /* short: LMDB reports it */
        memcpy(&magic, m + 16, 4);
        memcpy(&psize, m + 40, 4); /* mm_dbs[FREE_DBI].md_pad is the page size */
        if (magic != 0xBEEFC0DE)
            break; /* not a meta page: LMDB says MDB_INVALID */
        if (psize < 512 || psize > 65536 || (psize & (psize - 1)))
            rc = CAIRN_CORRUPT;
        off = psize;
    }
    close(fd);
    return rc;
}
