/*
 * swizzle.c - stored pointers <-> native addresses.
 *
 * On disk (in LMDB and in the log) a pointer is its offset from the start
 * of the store, 0 being NULL; in memory it is base + offset.  Which words
 * are pointers comes from the pointer map of the page (layout.h), never
 * from guessing.  Signal-safe: used by the fault path.
 */
#include <string.h>

#include "pager.h"

/* The pointer map of page n, read through view (the private view, or a
 * copy of the descriptor pages as of the last commit). */
void swizzle_ptr_map(const struct pager *p, uint64_t n, const char *desc_view, uint64_t map[PAGE_WORDS / 64])
{
    if (n >= p->layout.data_start) {
        const struct page_desc *d =
            (const struct page_desc *)(desc_view + layout_desc_page(n) * PAGE_BYTES + layout_desc_offset(n));
        memcpy(map, d->ptr_bits, sizeof d->ptr_bits);
    } else if (layout_is_root_page(n)) {
        /* word 7 of every 64-byte entry */
        for (unsigned i = 0; i < PAGE_WORDS / 64; i++)
            map[i] = 0x8080808080808080ull;
    } else {
        memset(map, 0, PAGE_WORDS / 8);
    }
}

/* Offsets must land on object pages [lo, hi); anything else is corruption. */
int swizzle_page(uint64_t *words, const uint64_t *map, uintptr_t base, uint64_t lo, uint64_t hi)
{
    for (unsigned m = 0; m < PAGE_WORDS / 64; m++) {
        for (uint64_t bits = map[m]; bits; bits &= bits - 1) {
            unsigned w = m * 64 + (unsigned)__builtin_ctzll(bits);
            uint64_t v = words[w];
            if (v == 0)
                continue;
            if (v < lo || v >= hi)
                return CAIRN_CORRUPT;
            words[w] = v + base;
        }
    }
    return 0;
}

/* Copy src to dst turning native pointers into offsets.  A pointer
 * outside the store's object pages is refused: CAIRN_EXTERNAL_POINTER
 * with *bad_word set. */
int unswizzle_page(uint64_t *dst, const uint64_t *src, const uint64_t *map, uintptr_t base, uint64_t lo, uint64_t hi,
                   unsigned *bad_word)
{
    if (dst != src)
        memcpy(dst, src, PAGE_BYTES);
    for (unsigned m = 0; m < PAGE_WORDS / 64; m++) {
        for (uint64_t bits = map[m]; bits; bits &= bits - 1) {
            unsigned w = m * 64 + (unsigned)__builtin_ctzll(bits);
            uint64_t v = src[w];
            if (v == 0)
                continue;
            if (v < base + lo || v >= base + hi) {
                if (bad_word)
                    *bad_word = w;
                return CAIRN_EXTERNAL_POINTER;
            }
            dst[w] = v - base;
        }
    }
    return 0;
}
