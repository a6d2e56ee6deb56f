/*
 * heap.h - the allocator's persistent structures (superblock, size
 * classes), shared by the allocator (alloc.c) and the checker (check.c).
 * Byte layout in docs/FORMAT.md.  Internal.
 */
#ifndef CAIRN_HEAP_H
#define CAIRN_HEAP_H

#include <stdint.h>

#define SUPER_MAGIC 0x3150484e52494143ull /* "CAIRNHP1" */
#define SMALL_MAX 2048
#define NCLASSES 21

extern const uint16_t heap_class_size[NCLASSES];

struct superblock {
    uint64_t magic;
    uint64_t next_page; /* high-water mark: first page never handed out */
    uint64_t free_runs; /* head of the list of free page runs */
    uint64_t live_objects;
    uint64_t live_bytes;
    uint64_t partial[NCLASSES]; /* per class: slabs with a free slot */
};

#endif
