/*
 * errcode.c - the names of cairn's return codes (cairn_strerror), one
 * table for the library and the fault path: async-signal-safe, since the
 * fault path reports through it from a signal handler.  The one mapping of
 * LMDB's codes onto cairn's is lmdb_to_cairn (lmdb_guard.c).
 */
#include <errno.h>

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
