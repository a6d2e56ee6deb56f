/*
 * knobs.c - the environment variables that tune cairn, read in one place
 * once per open (cairn.h, "Environment variables", documents each).  The
 * layers below take them as configuration: none of them calls getenv.
 */
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

static int env_is(const char *name, const char *value)
{
    const char *v = getenv(name);
    return v && strcmp(v, value) == 0;
}

static unsigned long env_number(const char *name)
{
    const char *v = getenv(name);
    return v ? strtoul(v, NULL, 10) : 0;
}

void knobs_read(struct knobs *k)
{
    memset(k, 0, sizeof *k);
    k->backend = env_is("CAIRN_FAULT_BACKEND", "uffd")       ? CAIRN_BACKEND_UFFD
                 : env_is("CAIRN_FAULT_BACKEND", "mprotect") ? CAIRN_BACKEND_MPROTECT
                                                             : CAIRN_BACKEND_AUTO;
    k->evict_random = env_is("CAIRN_EVICT_POLICY", "random");
    k->publish_page_only = env_is("CAIRN_PUBLISH", "page");
    k->lmdb_no_readahead = env_is("CAIRN_LMDB_READAHEAD", "0");
    k->recover_batch = env_number("CAIRN_RECOVER_BATCH");
    k->backup_pause_ms = (unsigned)env_number("CAIRN_TEST_BACKUP_PAUSE_MS");
}
