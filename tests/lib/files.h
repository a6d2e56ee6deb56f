/*
 * files.h - whole files of a store directory, for cmocka tests that copy,
 * save, put back or compare them.  Every function fails the test (cmocka)
 * when the file system does not do what it asks.
 */
#ifndef CAIRN_TESTS_FILES_H
#define CAIRN_TESTS_FILES_H

#include <stddef.h>
#include <sys/types.h>

/* dir/name, malloc'd. */
char *tu_path(const char *dir, const char *name);

/* The whole of dir/name, malloc'd with one byte to spare; *len its size. */
unsigned char *tu_file_read(const char *dir, const char *name, size_t *len);

/* dir/name holds exactly buf afterwards (created or truncated). */
void tu_file_write(const char *dir, const char *name, const void *buf, size_t len);

/* The size of dir/name, -1 if there is none. */
off_t tu_file_size(const char *dir, const char *name);

/* The store's log dir/wal up to the end of its records, malloc'd; *len
 * that end.  The file holds zeros written ahead of its records after it
 * (FORMAT.md, "Past the records"): fails the test unless every byte from
 * the first zero record kind on is zero.  For logs the test did not
 * damage yet. */
unsigned char *tu_log_read(const char *dir, size_t *len);

/* Where dir/wal's records end (tu_log_read). */
size_t tu_log_end(const char *dir);

/* Fails unless dir1/name1 and dir2/name2 hold the same bytes. */
void tu_same_file(const char *dir1, const char *name1, const char *dir2, const char *name2);

/* A copy of the store directory src, as a crash would leave it, in a new
 * tu_tempdir() (free it with tu_rmdir): every regular file but the lock
 * files, which the next opener makes anew.  At least data.mdb and wal. */
char *tu_copy_store(const char *src);

#endif
