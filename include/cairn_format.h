/*
 * cairn_format.h - every persistent structure of a store, as its bytes
 * lie on disk (docs/FORMAT.md gives the same tables).  Internal to the
 * library: not installed, and no part of the API.
 *
 * The structures are written and read as native C structs, so the build
 * is refused where that would not give FORMAT.md's bytes: a big-endian
 * target (every integer on disk is little-endian) or a compiler that pads
 * them differently (each size and offset is asserted below).
 *
 * It sits at the bottom beside cairn.h because every layer reads some of
 * it: the pager (descriptors, roots, extent records), the log (its header
 * and records), the store (superblock, catalog values).
 */
#ifndef CAIRN_FORMAT_H
#define CAIRN_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "cairn's on-disk structures are little-endian native structs: a big-endian target needs byte swapping first"
#endif

#define FMT_ASSERT_FIELD(type, field, offset)                                                                          \
    _Static_assert(offsetof(type, field) == (offset), #type "." #field " at offset " #offset)

/* ---- Section 1: the pages of a store ---- */

/* Allocator superblock, page 1. */
#define SUPER_MAGIC 0x3150484e52494143ull /* "CAIRNHP1"; 0 = nothing allocated yet */
#define NCLASSES 21                       /* slab size classes */
struct superblock {
    uint64_t magic;
    uint64_t next_page; /* high-water mark: first page never handed out */
    uint64_t free_runs; /* head of the list of free page runs */
    uint64_t live_objects;
    uint64_t live_bytes;
    uint64_t partial[NCLASSES]; /* per class: slabs with a free slot */
};
_Static_assert(sizeof(struct superblock) == 40 + 8 * NCLASSES, "superblock size");
FMT_ASSERT_FIELD(struct superblock, next_page, 8);
FMT_ASSERT_FIELD(struct superblock, free_runs, 16);
FMT_ASSERT_FIELD(struct superblock, live_objects, 24);
FMT_ASSERT_FIELD(struct superblock, live_bytes, 32);
FMT_ASSERT_FIELD(struct superblock, partial, 40);

/* Root directory, pages 2..17: 64-byte entries. */
#define ROOT_NAME_BYTES 56
struct root_entry {
    char name[ROOT_NAME_BYTES]; /* NUL-padded, 1..55 bytes; empty = free entry */
    uint64_t ptr;               /* a stored pointer (store offset, 0 = NULL) */
};
_Static_assert(sizeof(struct root_entry) == 64, "root entry size");
FMT_ASSERT_FIELD(struct root_entry, ptr, 56);

/* Page descriptor kinds.  Zero means never used. */
enum desc_kind {
    DESC_UNUSED = 0,
    DESC_SLAB = 1,         /* page of equal slots, size class in size_class */
    DESC_LARGE_HEAD = 2,   /* first page of a large object of npages pages */
    DESC_LARGE_TAIL = 3,   /* other pages of it; next = head page */
    DESC_FREE_RUN = 4,     /* first page of a free run of npages pages */
    DESC_FREE_RUN_END = 5, /* last page of a free run longer than one; next = first */
};

/* One per page of the store, in the descriptor pages. */
struct page_desc {
    uint64_t ptr_bits[8];  /* bit w: word w of the page is a pointer */
    uint64_t slot_bits[4]; /* slab: bit i = slot i allocated */
    uint8_t kind;          /* enum desc_kind */
    uint8_t size_class;    /* slab: index into the class table */
    uint16_t reserved;
    uint32_t type;      /* large head: type id of its objects */
    uint32_t live;      /* slab: allocated slots */
    uint32_t npages;    /* large head and free run: pages in the run */
    uint32_t next;      /* list link (page number), or head page for a tail */
    uint32_t prev;      /* list link */
    uint64_t obj_bytes; /* large head: bytes requested */
};
_Static_assert(sizeof(struct page_desc) == 128, "descriptor size");
FMT_ASSERT_FIELD(struct page_desc, slot_bits, 64);
FMT_ASSERT_FIELD(struct page_desc, kind, 96);
FMT_ASSERT_FIELD(struct page_desc, size_class, 97);
FMT_ASSERT_FIELD(struct page_desc, type, 100);
FMT_ASSERT_FIELD(struct page_desc, live, 104);
FMT_ASSERT_FIELD(struct page_desc, npages, 108);
FMT_ASSERT_FIELD(struct page_desc, next, 112);
FMT_ASSERT_FIELD(struct page_desc, prev, 116);
FMT_ASSERT_FIELD(struct page_desc, obj_bytes, 120);

/* ---- Section 2: the value of an extent in LMDB ---- */

#define FMT_EXTENT_MAGIC 0x31545843u /* "CXT1" */
#define FMT_EXTENT_VERSION 1
#define FMT_EXTENT_HEADER 32
struct extent_header {
    uint32_t magic;
    uint16_t version;
    uint16_t flags; /* 0 */
    uint32_t pages; /* pages in the extent */
    uint32_t zlen;  /* length of the zstd frame that follows */
    uint64_t extent;
    uint64_t checksum; /* XXH3-64 of the uncompressed bytes, seed extent ^ store seed */
};
_Static_assert(sizeof(struct extent_header) == FMT_EXTENT_HEADER, "extent header size");
FMT_ASSERT_FIELD(struct extent_header, version, 4);
FMT_ASSERT_FIELD(struct extent_header, flags, 6);
FMT_ASSERT_FIELD(struct extent_header, pages, 8);
FMT_ASSERT_FIELD(struct extent_header, zlen, 12);
FMT_ASSERT_FIELD(struct extent_header, extent, 16);
FMT_ASSERT_FIELD(struct extent_header, checksum, 24);

/* ---- Section 3: catalog values ---- */

/* "type/<name>": this, then n_ptrs u64 pointer offsets. */
struct type_record {
    uint32_t id;
    uint32_t n_ptrs;
    uint64_t size;
};
_Static_assert(sizeof(struct type_record) == 16, "type record size");
FMT_ASSERT_FIELD(struct type_record, n_ptrs, 4);
FMT_ASSERT_FIELD(struct type_record, size, 8);

/* What "catalog_sum" is the XXH3-64 (seed 0) of. */
struct catalog_sum_input {
    uint32_t format, page_size, extent_pages, zero;
    uint8_t store_id[16];
    uint64_t pages, ckpt_lsn;
};
_Static_assert(sizeof(struct catalog_sum_input) == 48, "catalog checksum input size");
FMT_ASSERT_FIELD(struct catalog_sum_input, store_id, 16);
FMT_ASSERT_FIELD(struct catalog_sum_input, pages, 32);
FMT_ASSERT_FIELD(struct catalog_sum_input, ckpt_lsn, 40);

/* ---- Section 4: the log ---- */

#define WAL_MAGIC "CAIRNWAL"
#define WAL_VERSION 1
#define WAL_PAGE_SIZE 4096
#define WAL_HEADER_SIZE 64
struct wal_header {
    char magic[8];
    uint32_t version;
    uint32_t page_size;
    uint8_t store_id[16];
    uint64_t generation;
    uint64_t start_lsn;
    uint64_t salt;
    uint64_t checksum; /* XXH3-64 of the bytes before it, seed 0 */
};
_Static_assert(sizeof(struct wal_header) == WAL_HEADER_SIZE, "log header size");
FMT_ASSERT_FIELD(struct wal_header, version, 8);
FMT_ASSERT_FIELD(struct wal_header, page_size, 12);
FMT_ASSERT_FIELD(struct wal_header, store_id, 16);
FMT_ASSERT_FIELD(struct wal_header, generation, 32);
FMT_ASSERT_FIELD(struct wal_header, start_lsn, 40);
FMT_ASSERT_FIELD(struct wal_header, salt, 48);
FMT_ASSERT_FIELD(struct wal_header, checksum, 56);

#define WAL_KIND_PAGE 0xCA1E0001u
#define WAL_KIND_COMMIT 0xCA1E0002u
#define WAL_RECORD_HEADER 32
struct wal_record {
    uint32_t kind;
    uint32_t len; /* payload bytes */
    uint64_t lsn;
    uint64_t txn_id;
    uint64_t checksum; /* chained: see FORMAT.md */
};
_Static_assert(sizeof(struct wal_record) == WAL_RECORD_HEADER, "log record header size");
FMT_ASSERT_FIELD(struct wal_record, len, 4);
FMT_ASSERT_FIELD(struct wal_record, lsn, 8);
FMT_ASSERT_FIELD(struct wal_record, txn_id, 16);
FMT_ASSERT_FIELD(struct wal_record, checksum, 24);

/* A page-change payload: this, then nranges ranges. */
#define WAL_PAGE_HEAD 16
struct wal_page_head {
    uint64_t page;
    uint16_t nranges;
    uint8_t zero[6];
};
_Static_assert(sizeof(struct wal_page_head) == WAL_PAGE_HEAD, "page change head size");
FMT_ASSERT_FIELD(struct wal_page_head, nranges, 8);

/* A range of a page change: this, then len bytes unless zero-filled. */
#define WAL_RANGE_ZERO 0x8000u   /* flag in len_flags: the range is zeros, no bytes follow */
#define WAL_RANGE_LEN 0x1fffu    /* the length, in len_flags */
#define WAL_RANGE_UNUSED 0x6000u /* must be zero */
struct wal_range {
    uint16_t offset;
    uint16_t len_flags;
};
_Static_assert(sizeof(struct wal_range) == 4, "range head size");

/* A commit payload. */
struct wal_commit {
    uint64_t records; /* page-change records of the transaction */
};
_Static_assert(sizeof(struct wal_commit) == 8, "commit payload size");

#endif
