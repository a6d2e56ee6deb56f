/*
 * check.h - the integrity check (check.c) on a snapshot, for the tool:
 * the same passes as cairn_check, reading the committed state of a store
 * that may be open in another process.  Internal.
 */
#ifndef CAIRN_CHECK_H
#define CAIRN_CHECK_H

#include "snapshot.h"

struct check_hooks {
    /* Called with the text of every problem found, in order. */
    void (*problem)(void *arg, const char *msg);
    /* Called now and then with work done out of total (units vary by pass). */
    void (*progress)(void *arg, const char *pass, uint64_t done, uint64_t total);
    void *arg;
};

/* As cairn_check.  hooks may be NULL. */
int check_snapshot(struct snapshot *snap, cairn_check_report *r, const struct check_hooks *hooks);

#endif
