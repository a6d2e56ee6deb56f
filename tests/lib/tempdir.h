/*
 * tempdir.h - temporary directories for the tests, and the cmocka fixtures
 * that give a test an empty store directory and always remove it.
 *
 * A test that needs a store directory is registered as
 *
 *     tu_dir_test(reopen_after_abort_keeps_committed_state)
 *
 * (cmocka_unit_test_setup_teardown with tu_dir_setup and tu_dir_teardown)
 * and finds the directory's path in *state:
 *
 *     const char *dir = *state;
 *
 * tu_dir_setup makes a scratch directory $TMPDIR/cairn-test-XXXXXX (or
 * under /tmp) and in it the empty directory "store" that *state names.
 * Every other directory the test makes with tu_tempdir() -- copies of the
 * store, a second store, a mount point -- goes into the scratch directory
 * too, and so do files a test writes beside the store ("<dir>.out").
 * tu_dir_teardown removes the scratch directory with everything in it,
 * however the test ended: cmocka runs the teardown after a failed
 * assertion (which longjmps past the test's own cleanup), a caught signal
 * and a skip alike.  So a failing test leaves nothing behind, and a test
 * needs no cleanup of its own beyond closing what it opened.
 * CAIRN_TEST_KEEP=1 keeps the scratch directories instead, and prints
 * where they are (to look at a failure's files).
 *
 * The cmocka group fixtures of a suite that shares files between its tests
 * (crash/test_corrupt.c) call tu_scratch_begin and tu_scratch_end the same
 * way.
 */
#ifndef CAIRN_TESTS_TEMPDIR_H
#define CAIRN_TESTS_TEMPDIR_H

/* A fresh empty directory, path malloc'd (free it with tu_rmdir): inside
 * the scratch directory while there is one, else under $TMPDIR (or /tmp).
 * Aborts if it cannot be made. */
char *tu_tempdir(void);

/* rm -rf path, then free(path); NULL is fine. */
void tu_rmdir(char *path);

/* Make the scratch directory; 0, or -1 if there is one already or it
 * cannot be made.  tu_scratch_end removes it and all it holds (only in
 * the process that made it: a forked child that ends a test of its own
 * leaves its parent's directory alone). */
int tu_scratch_begin(void);
void tu_scratch_end(void);

/* The fixtures: scratch directory, and an empty store directory in it
 * whose path (a char *) goes to *state. */
int tu_dir_setup(void **state);
int tu_dir_teardown(void **state);

#define tu_dir_test(f) cmocka_unit_test_setup_teardown(f, tu_dir_setup, tu_dir_teardown)

#endif
