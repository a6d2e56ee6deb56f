/*
 * layout.h - where things live in a store's address range.
 *
 * A store of P pages (P = max_bytes / 4096, fixed when the store is
 * created) is one range of P logical pages; page N is at base + N*4096.
 * Everything persistent lives in those pages, so the log, abort and
 * recovery treat allocator state, roots and pointer maps exactly like user
 * data: one mechanism, no second bookkeeping.
 *
 *   page 0                  never used: a stored 0 is NULL
 *   page 1                  allocator superblock (store/alloc.c)
 *   pages 2 .. 17           root directory: 1024 entries of 64 bytes,
 *                           name[56] then one pointer
 *   pages 18 .. 31          spare, zero
 *   pages 32 .. D-1         page descriptors, 128 bytes per page of the
 *                           store (D = 32 + P/32): pointer bitmap, slab
 *                           slot bitmap, allocation kind
 *   pages D' .. P-1         objects (D' = D rounded up to an extent)
 *
 * Pages are grouped in extents of PAGES_PER_EXTENT; the extent is the unit of
 * loading, compression and LMDB storage.
 *
 * Which words of a page are pointers ("pointer map"):
 *   - root directory pages: word 7 of every 64-byte entry;
 *   - superblock, descriptor pages, spare pages: none;
 *   - object pages: the ptr_bits of the page's descriptor.
 * So loading an object page needs its descriptor page first; descriptor
 * pages hold no pointers, so that dependency is one level deep.
 */
#ifndef CAIRN_PAGER_LAYOUT_H
#define CAIRN_PAGER_LAYOUT_H

#include <stdint.h>

#include "cairn_format.h"

#define PAGE_BYTES_LOG2 12
#define PAGE_BYTES ((uint64_t)1 << PAGE_BYTES_LOG2)
#define PAGE_WORDS (PAGE_BYTES / 8)

/* 16 pages = 64 KiB per extent: the best per-page load cost that does not
 * double the memory of random access again (measured, see docs/DESIGN.md). */
#ifndef PAGES_PER_EXTENT_LOG2 /* overridable only to measure; stored in the catalog */
#define PAGES_PER_EXTENT_LOG2 4
#endif
#define PAGES_PER_EXTENT ((uint64_t)1 << PAGES_PER_EXTENT_LOG2)
#define BYTES_PER_EXTENT (PAGES_PER_EXTENT * PAGE_BYTES)

#define LAYOUT_SUPER_PAGE 1
#define LAYOUT_ROOT_PAGE 2
#define LAYOUT_ROOT_PAGES 16
#define LAYOUT_ROOT_ENTRY sizeof(struct root_entry)
#define LAYOUT_ROOT_NAME ROOT_NAME_BYTES
#define LAYOUT_ROOTS (LAYOUT_ROOT_PAGES * PAGE_BYTES / LAYOUT_ROOT_ENTRY)
#define LAYOUT_DESC_PAGE 32
#define LAYOUT_DESC_SIZE 128
#define LAYOUT_DESCS_PER_PAGE (PAGE_BYTES / LAYOUT_DESC_SIZE)

/* Smallest and largest stores: the metadata pages must fit, and page
 * numbers must fit the 32-bit links in descriptors. */
#define LAYOUT_MIN_PAGES ((uint64_t)4096)
#define LAYOUT_MAX_PAGES ((uint64_t)1 << 32)

struct layout {
    uint64_t pages;      /* P */
    uint64_t desc_pages; /* P / 32 */
    uint64_t data_start; /* first object page, extent aligned */
};

static inline void layout_init(struct layout *l, uint64_t pages)
{
    l->pages = pages;
    l->desc_pages = pages / LAYOUT_DESCS_PER_PAGE;
    uint64_t end = LAYOUT_DESC_PAGE + l->desc_pages;
    l->data_start = (end + PAGES_PER_EXTENT - 1) & ~(PAGES_PER_EXTENT - 1);
}

/* Page holding the descriptor of page n, and the descriptor's offset in it. */
static inline uint64_t layout_desc_page(uint64_t n)
{
    return LAYOUT_DESC_PAGE + n / LAYOUT_DESCS_PER_PAGE;
}
static inline uint64_t layout_desc_offset(uint64_t n)
{
    return (n % LAYOUT_DESCS_PER_PAGE) * LAYOUT_DESC_SIZE;
}
static inline int layout_is_root_page(uint64_t n)
{
    return n >= LAYOUT_ROOT_PAGE && n < LAYOUT_ROOT_PAGE + LAYOUT_ROOT_PAGES;
}

#endif
