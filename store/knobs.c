/*
 * knobs.c - the environment variables that tune cairn, read in one place
 * once per open (cairn.h, "Environment variables", documents each), and
 * the test hooks behind store_test_control.  The layers below take them
 * as configuration: none of them calls getenv.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

static int env_is(const char *name, const char *value)
{
    const char *v = getenv(name);
    return v && strcmp(v, value) == 0;
}

/* The test hooks, by name.  Each is a number; 0 is the default. */
static const struct {
    const char *name;
    size_t offset;
} test_hooks[] = {
    {"recover_batch", offsetof(struct test_hooks, recover_batch)},
    {"backup_pause_ms", offsetof(struct test_hooks, backup_pause_ms)},
    {"log_sync_fails_after", offsetof(struct test_hooks, log_sync_fails_after)},
    {"checkpoint_pause_ms", offsetof(struct test_hooks, checkpoint_pause_ms)},
};

/* Parse "name=N,name=N" into *t (every hook not named is 0). */
static int parse_test_hooks(const char *settings, struct test_hooks *t)
{
    memset(t, 0, sizeof *t);
    for (const char *p = settings; p && *p;) {
        const char *eq = strchr(p, '='), *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        if (!eq || eq > end)
            return CAIRN_INVALID;
        size_t i;
        for (i = 0; i < sizeof test_hooks / sizeof *test_hooks; i++)
            if (strlen(test_hooks[i].name) == (size_t)(eq - p) && memcmp(test_hooks[i].name, p, eq - p) == 0)
                break;
        if (i == sizeof test_hooks / sizeof *test_hooks)
            return CAIRN_INVALID;
        char *num_end;
        unsigned long v = strtoul(eq + 1, &num_end, 10);
        if (num_end != end || num_end == eq + 1)
            return CAIRN_INVALID;
        *(unsigned long *)((char *)t + test_hooks[i].offset) = v;
        p = *end ? end + 1 : end;
    }
    return 0;
}

int store_test_control(const char *settings)
{
    struct test_hooks t;
    if (parse_test_hooks(settings, &t) != 0)
        return CAIRN_INVALID;
    if (!settings || !*settings)
        return unsetenv(TEST_CONTROL_VAR) == 0 ? 0 : errno;
    return setenv(TEST_CONTROL_VAR, settings, 1) == 0 ? 0 : errno;
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
    if (parse_test_hooks(getenv(TEST_CONTROL_VAR), &k->test) != 0)
        memset(&k->test, 0, sizeof k->test); /* store_test_control refuses what this cannot parse */
}
