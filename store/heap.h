/*
 * heap.h - the allocator's size classes and the rule for where an object
 * starts, shared by the allocator (alloc.c), the walker and the checker.
 * The superblock and descriptors are in cairn_format.h.  Internal.
 */
#ifndef CAIRN_HEAP_H
#define CAIRN_HEAP_H

#include <stdint.h>

#include "../pager/layout.h"

#define SMALL_MAX 2048

extern const uint16_t heap_class_size[NCLASSES];

/* Store offset where the object holding offset v starts, as the
 * descriptor d of v's page says: its slot (slab), its page (large head),
 * its head page (large tail); 0 for a page of any other kind.  Unchecked
 * beyond the kind and class: the walker checks slots and runs, the
 * allocator's messages only need a start. */
static inline uint64_t heap_object_start(const struct page_desc *d, uint64_t v)
{
    uint64_t n = v / PAGE_BYTES;
    if (d->kind == DESC_SLAB && d->size_class < NCLASSES)
        return n * PAGE_BYTES + (v % PAGE_BYTES) / heap_class_size[d->size_class] * heap_class_size[d->size_class];
    if (d->kind == DESC_LARGE_HEAD)
        return n * PAGE_BYTES;
    if (d->kind == DESC_LARGE_TAIL)
        return (uint64_t)d->next * PAGE_BYTES;
    return 0;
}

#endif
