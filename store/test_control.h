/*
 * test_control.h - the hooks only tests set, behind one call (knobs.c).
 * Internal: the tests and the command link the internal library; the
 * installed one does not export it.
 */
#ifndef CAIRN_TEST_CONTROL_H
#define CAIRN_TEST_CONTROL_H

/* The one test-control call: settings "name=N[,name=N...]" (names as in
 * struct test_hooks; "" or NULL resets all to 0) hold for every open from
 * now on, in this process and in the processes it starts (they live in
 * the environment variable CAIRN_TEST_CONTROL, which is where a command
 * under test gets them).  CAIRN_INVALID for an unknown name or a bad
 * number.  Not exported: only code linked with the internal library can
 * call it. */
#define TEST_CONTROL_VAR "CAIRN_TEST_CONTROL"
int store_test_control(const char *settings);

#endif
