/*
 * compare.h - what the driver and the child process share.
 */
#ifndef COMPARE_H
#define COMPARE_H

#include "peer.h"

#define MAX_THREADS 4
#define SEED_SAMPLE 0x5A3D1Eull
#define SEED_LTM 0x17A6E5ull
#define SEED_UPDATE 0x0DA7Eull

const peer_ops *peer_by_name(const char *name);
int child_main(int argc, char **argv);
double now_s(void);
uint64_t dir_bytes(const char *dir);

#endif
