/*
 * splitmix.h - the tests' random numbers: SplitMix64 (Steele, Lea and
 * Flood), one state word, every 64-bit value once per period.  Seeded
 * tests print their seed; the same seed gives the same sequence.
 */
#ifndef CAIRN_TESTS_SPLITMIX_H
#define CAIRN_TESTS_SPLITMIX_H

#include <stdint.h>

static inline uint64_t tu_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The next value below bound (the whole value if bound is 0). */
static inline uint64_t tu_splitmix_below(uint64_t *state, uint64_t bound)
{
    uint64_t z = tu_splitmix64(state);
    return bound ? z % bound : z;
}

#endif
