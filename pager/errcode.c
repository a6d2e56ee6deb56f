/*
 * errcode.c - cairn's return codes: their names (cairn_strerror) and the
 * one mapping of LMDB's codes onto them.  Both are async-signal-safe: the
 * fault path reports through them from a signal handler.
 */
#include <errno.h>
#include <lmdb.h>

#include "pager.h"

const char *cairn_strerror(int rc)
{
    switch (rc) {
    case CAIRN_OK:
        return "success";
    case CAIRN_CORRUPT:
        return "store data is corrupt";
    case CAIRN_EXTERNAL_POINTER:
        return "pointer to memory outside the store";
    case CAIRN_SCHEMA_MISMATCH:
        return "type registered with a different layout";
    case CAIRN_BUSY:
        return "store is open already";
    case CAIRN_NOT_FOUND:
        return "not found";
    case CAIRN_INVALID:
        return "invalid argument or state";
    case CAIRN_READONLY:
        return "store or memory is read-only";
    case CAIRN_IOERR:
        return "I/O error; reopen the store";
    case CAIRN_FULL:
        return "store, disk or map is full";
    case CAIRN_UNSUPPORTED:
        return "fault backend not supported here";
    default:
        break;
    }
    /* strerror is not async-signal-safe: the errnos the fault path and
     * the library return get their names here. */
    switch (rc) {
    case ENOMEM:
        return "out of memory (mprotect backend: vm.max_map_count reached?)";
    case EIO:
        return "input/output error";
    case ENOSPC:
        return "no space left on device";
    case ENOENT:
        return "no such file or directory";
    case EACCES:
        return "permission denied";
    case EEXIST:
        return "file exists";
    case EINVAL:
        return "invalid argument (system)";
    case ENOTEMPTY:
        return "directory not empty (not a store)";
    default:
        return rc > 0 ? "system error" : "unknown cairn error";
    }
}

int lmdb_to_cairn(int rc)
{
    if (rc == 0 || rc > 0 || (rc <= CAIRN_CORRUPT && rc >= CAIRN_CORRUPT - 99))
        return rc; /* errno, or one of ours already */
    if (rc == MDB_MAP_FULL || rc == MDB_TXN_FULL)
        return CAIRN_FULL;
    if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH ||
        rc == MDB_BAD_VALSIZE)
        return CAIRN_CORRUPT;
    return CAIRN_IOERR;
}
