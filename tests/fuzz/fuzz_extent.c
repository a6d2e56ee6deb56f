/*
 * fuzz_extent.c - libFuzzer harness for extent decoding (pager/extent.c,
 * the LMDB value of the "extents" database, docs/FORMAT.md section 2) and
 * for swizzling the decoded pages (pager/swizzle.c).
 *
 * Input: 1 control byte, 64 bytes of pointer map, then the extent value.
 *   ctl & 3        extent number the value is decoded as: 0 the value's own
 *                  extent field (bytes 16..23), 1 extent 0, 2 extent 5,
 *                  3 extent 2^64-1
 *   ctl >> 2 & 1   checksum seed: 0 XXH3-64 of FUZZ_STORE_ID (as a store
 *                  computes it), 1 zero
 *   ctl >> 3 & 1   fix-up: the harness rewrites the 32-byte header so it
 *                  validates (magic, version, flags, pages, zstd length,
 *                  extent number, and the XXH3 checksum when the frame
 *                  decompresses to 65536 bytes), so the fuzzer works on
 *                  the zstd frame and the page contents
 *   ctl >> 4 & 3   pointer map for each of the 16 pages: 0 the 64 input
 *                  bytes, 1 root-directory map (word 7 of each 64-byte
 *                  entry), 2 every word, 3 the input map rotated per page
 *   ctl >> 6 & 3   store geometry for the valid pointer window
 *                  [D * 4096, P * 4096): P = 4096, 2^32, 65536, or 4096
 *                  with a base address near the top of user space
 *
 * Per input: extent_decode into a 64 KiB buffer followed by a PROT_NONE
 * guard page.  When it decodes: the same value under another extent
 * number and with one byte less must be refused; re-encoding the pages
 * must decode to the same pages; each page is swizzled with the chosen
 * map and compared with a model of the swizzle rule, then unswizzled back
 * to the original bytes.  With the fix-up, a frame that zstd itself
 * decompresses to exactly 65536 bytes must decode.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>
#include <zstd.h>

#include "cairn.h"
#include "fuzz_util.h"
#include "pager/pager.h"

#define PREFIX (1 + 64)

static unsigned char *raw;  /* BYTES_PER_EXTENT, then a guard page */
static unsigned char *raw2; /* scratch for re-decodes and the fix-up */
static unsigned char *zbuf; /* extent_bound() */
static ZSTD_DCtx *dctx;
static ZSTD_CCtx *cctx;

static unsigned char *guarded(size_t len)
{
    unsigned char *m = mmap(NULL, len + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    FZ_CHECK(m != MAP_FAILED, "mmap");
    FZ_CHECK(mprotect(m + len, 4096, PROT_NONE) == 0, "mprotect");
    return m;
}

static void init(void)
{
    raw = guarded(BYTES_PER_EXTENT);
    raw2 = guarded(BYTES_PER_EXTENT);
    zbuf = malloc(extent_bound());
    dctx = ZSTD_createDCtx();
    cctx = ZSTD_createCCtx();
    FZ_CHECK(zbuf && dctx && cctx, "out of memory");
}

static uint64_t rotl(uint64_t v, unsigned r)
{
    r &= 63;
    return r ? (v << r) | (v >> (64 - r)) : v;
}

/* Swizzle page i of raw with map and check against the rule of
 * swizzle.c: every set, non-zero word must lie in [lo, hi) and becomes
 * base + offset; other words are untouched.  Then unswizzle back. */
static void swizzle_one(unsigned i, const uint64_t map[PAGE_WORDS / 64], uintptr_t base, uint64_t lo, uint64_t hi)
{
    static uint64_t orig[PAGE_WORDS], words[PAGE_WORDS], back[PAGE_WORDS];
    memcpy(orig, raw + (size_t)i * PAGE_BYTES, PAGE_BYTES);
    memcpy(words, orig, PAGE_BYTES);
    int bad = 0;
    for (unsigned w = 0; w < PAGE_WORDS; w++)
        if (((map[w / 64] >> (w % 64)) & 1) && orig[w] && (orig[w] < lo || orig[w] >= hi))
            bad = 1;
    int rc = swizzle_page(words, map, base, lo, hi);
    if (fz_debug()) {
        unsigned set = 0;
        for (unsigned w = 0; w < PAGE_WORDS; w++)
            set += ((map[w / 64] >> (w % 64)) & 1) && orig[w];
        fprintf(stderr, "fuzz_extent:   page %u: %u pointer words, swizzle %d\n", i, set, rc);
    }
    FZ_CHECK(rc == 0 || rc == CAIRN_CORRUPT, "swizzle_page returned %d", rc);
    FZ_CHECK((rc == CAIRN_CORRUPT) == bad, "swizzle_page %d, model says %s", rc, bad ? "corrupt" : "fine");
    if (rc)
        return;
    for (unsigned w = 0; w < PAGE_WORDS; w++) {
        int ptr = ((map[w / 64] >> (w % 64)) & 1) && orig[w];
        FZ_CHECK(words[w] == (ptr ? orig[w] + base : orig[w]), "page %u word %u: %llx -> %llx", i, w,
                 (unsigned long long)orig[w], (unsigned long long)words[w]);
    }
    unsigned badw = ~0u;
    rc = unswizzle_page(back, words, map, base, lo, hi, &badw);
    FZ_CHECK(rc == 0, "unswizzle of a swizzled page: %d at word %u", rc, badw);
    FZ_CHECK(memcmp(back, orig, PAGE_BYTES) == 0, "swizzle/unswizzle changed page %u", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (!raw)
        init();
    unsigned ctl = data[0];
    uint64_t inmap[8] = {0};
    memcpy(inmap, data + 1, size >= PREFIX ? 64 : size - 1);
    const unsigned char *val = size > PREFIX ? data + PREFIX : NULL;
    size_t len = size > PREFIX ? size - PREFIX : 0;

    uint64_t e;
    switch (ctl & 3) {
    case 0:
        e = len >= 24 ? fz_get64(val + 16) : 0;
        break;
    case 1:
        e = 0;
        break;
    case 2:
        e = 5;
        break;
    default:
        e = UINT64_MAX;
        break;
    }
    uint64_t seed = (ctl >> 2) & 1 ? 0 : XXH3_64bits(FUZZ_STORE_ID, 16);

    unsigned char *fixed = NULL;
    int frame_ok = 0;
    if ((ctl >> 3) & 1) {
        size_t flen = len < FMT_EXTENT_HEADER ? FMT_EXTENT_HEADER : len;
        fixed = calloc(flen, 1);
        FZ_CHECK(fixed, "out of memory");
        if (len)
            memcpy(fixed, val, len);
        size_t zlen = flen - FMT_EXTENT_HEADER;
        fz_put32(fixed, 0x31545843u);
        uint16_t v16 = 1;
        memcpy(fixed + 4, &v16, 2);
        v16 = 0;
        memcpy(fixed + 6, &v16, 2);
        fz_put32(fixed + 8, (uint32_t)PAGES_PER_EXTENT);
        fz_put32(fixed + 12, (uint32_t)zlen);
        fz_put64(fixed + 16, e);
        size_t z = ZSTD_decompressDCtx(dctx, raw2, BYTES_PER_EXTENT, fixed + FMT_EXTENT_HEADER, zlen);
        if (!ZSTD_isError(z) && z == BYTES_PER_EXTENT && zlen == (uint32_t)zlen) {
            fz_put64(fixed + 24, XXH3_64bits_withSeed(raw2, BYTES_PER_EXTENT, e ^ seed));
            frame_ok = 1;
        }
        val = fixed, len = flen;
    }

    int rc = extent_decode(raw, val, len, e, seed, dctx);
    FZ_CHECK(rc == 0 || rc == CAIRN_CORRUPT, "extent_decode returned %d", rc);
    if (fz_debug())
        fprintf(stderr, "fuzz_extent: ctl %#x, %zu-byte value as extent %llu: decode %d%s\n", ctl, len,
                (unsigned long long)e, rc, frame_ok ? " (sealed by the harness)" : "");
    if (frame_ok) {
        FZ_CHECK(rc == 0, "a sealed extent whose frame zstd decompresses was refused");
        FZ_CHECK(memcmp(raw, raw2, BYTES_PER_EXTENT) == 0, "decoded pages differ from zstd's");
    }
    if (rc == 0) {
        FZ_CHECK(len >= FMT_EXTENT_HEADER, "decoded a %zu-byte value", len);
        /* The same bytes never decode as another extent, nor truncated. */
        FZ_CHECK(extent_decode(raw2, val, len, e + 1, seed, dctx) == CAIRN_CORRUPT, "decoded as extent e+1");
        FZ_CHECK(extent_decode(raw2, val, len - 1, e, seed, dctx) == CAIRN_CORRUPT, "decoded truncated");

        /* Encode the pages again: must decode to the same pages. */
        size_t zlen = 0;
        int erc = extent_encode(zbuf, extent_bound(), &zlen, raw, e, seed, 1, cctx);
        FZ_CHECK(erc == 0, "extent_encode: %d", erc);
        erc = extent_decode(raw2, zbuf, zlen, e, seed, dctx);
        FZ_CHECK(erc == 0 && memcmp(raw, raw2, BYTES_PER_EXTENT) == 0, "re-encoded extent does not round-trip: %d",
                 erc);

        struct layout lay;
        uintptr_t base;
        switch ((ctl >> 6) & 3) {
        case 0:
            layout_init(&lay, 4096), base = (uintptr_t)0x7f1200000000ull;
            break;
        case 1:
            layout_init(&lay, (uint64_t)1 << 32), base = (uintptr_t)0x100000000000ull;
            break;
        case 2:
            layout_init(&lay, 65536), base = 0;
            break;
        default:
            layout_init(&lay, 4096), base = (uintptr_t)0x7ffff0000000ull;
            break;
        }
        uint64_t lo = lay.data_start * PAGE_BYTES, hi = lay.pages * PAGE_BYTES;
        for (unsigned i = 0; i < PAGES_PER_EXTENT; i++) {
            uint64_t map[PAGE_WORDS / 64];
            for (unsigned j = 0; j < PAGE_WORDS / 64; j++) {
                switch ((ctl >> 4) & 3) {
                case 0:
                    map[j] = inmap[j];
                    break;
                case 1:
                    map[j] = 0x8080808080808080ull;
                    break;
                case 2:
                    map[j] = ~0ull;
                    break;
                default:
                    map[j] = rotl(inmap[(j + i) % 8], i * 7 + j);
                    break;
                }
            }
            swizzle_one(i, map, base, lo, hi);
        }
    }
    free(fixed);
    return 0;
}
