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
 * What this cannot see: a file truncated while a transaction is already
 * reading it (a race with another program), and a damaged page whose
 * node or overflow sizes point past the end of the file.
 *
 * Async-signal-safe: fstat(2), and LMDB calls that only read memory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/stat.h>

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
