/*
 * extmap.h - a map from extent number to one 64-bit value, by open
 * addressing: the replay's images (replay.c) and the snapshot's spilled
 * images (snapshot.c).  Internal.
 */
#ifndef CAIRN_EXTMAP_H
#define CAIRN_EXTMAP_H

#include <stddef.h>
#include <stdint.h>

struct extmap {
    uint64_t *keys; /* extent + 1; 0 = empty */
    uint64_t *vals;
    size_t cap, used; /* cap a power of two, used <= cap / 2 */
};

/* The value of e, or NULL if e is not in the map. */
uint64_t *extmap_get(const struct extmap *m, uint64_t e);
/* Insert e with value v (or replace its value): 0 or ENOMEM. */
int extmap_put(struct extmap *m, uint64_t e, uint64_t v);
/* Entry i (0 <= i < cap) if it is in use: 1 and *e, *v. */
int extmap_at(const struct extmap *m, size_t i, uint64_t *e, uint64_t *v);
void extmap_clear(struct extmap *m);
void extmap_free(struct extmap *m);

#endif
