/*
 * copy.h - what backup (backup.c) and compact (compact.c) share: making a
 * new store directory from files staged in it.  Internal.
 */
#ifndef CAIRN_COPY_H
#define CAIRN_COPY_H

#include <stddef.h>

/* snprintf into err. */
void copy_error(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A destination directory for a new store (created if missing, refused if
 * it holds store files): its descriptor, or a negated errno with the
 * message in err. */
int copy_dest_prepare(const char *dest, char *err, size_t errlen);

/* Make dirfd a store: lock file, then the staged LMDB file renamed to
 * data.mdb, synced.  The log must be in place.  0, or an errno with the
 * message. */
int copy_dest_finish(int dirfd, const char *dest, const char *staged, char *err, size_t errlen);

#endif
