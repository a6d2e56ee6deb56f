/*
 * test_codec.c - the extent record (pager/extent.c) and pointer swizzling
 * (pager/swizzle.c), as units.
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "pager/pager.h"

#define SEED 0x1234567890abcdefull

static unsigned char *raw_pages(unsigned salt)
{
    unsigned char *raw = malloc(BYTES_PER_EXTENT);
    for (size_t i = 0; i < BYTES_PER_EXTENT; i++)
        raw[i] = (unsigned char)((i / 8 * 31 + salt) & (i % 64 < 32 ? 0xff : 0x0f));
    return raw;
}

static void extent_roundtrip_and_compresses(void **state)
{
    (void)state;
    unsigned char *raw = raw_pages(1), *out = malloc(BYTES_PER_EXTENT), *val = malloc(extent_bound());
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_DCtx *d = ZSTD_createDCtx();
    size_t len;
    assert_cairn_ok(extent_encode(val, extent_bound(), &len, raw, 77, SEED, 1, c));
    assert_true(len < BYTES_PER_EXTENT / 2);
    assert_cairn_ok(extent_decode(out, val, len, 77, SEED, d));
    assert_memory_equal(out, raw, BYTES_PER_EXTENT);
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
    free(raw), free(out), free(val);
}

static void extent_detects_every_damage(void **state)
{
    (void)state;
    unsigned char *raw = raw_pages(2), *out = malloc(BYTES_PER_EXTENT), *val = malloc(extent_bound());
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_DCtx *d = ZSTD_createDCtx();
    size_t len;
    assert_cairn_ok(extent_encode(val, extent_bound(), &len, raw, 5, SEED, 1, c));
    /* Wrong key, wrong store. */
    assert_cairn_rc(extent_decode(out, val, len, 6, SEED, d), CAIRN_CORRUPT);
    assert_cairn_rc(extent_decode(out, val, len, 5, SEED ^ 1, d), CAIRN_CORRUPT);
    /* Every bit of the header, and a bit in every byte of the payload:
     * either refused, or (a flip zstd does not depend on) the exact pages. */
    for (size_t i = 0; i < len; i++) {
        for (int b = 0; b < (i < FMT_EXTENT_HEADER ? 8 : 1); b++) {
            val[i] ^= (unsigned char)(1u << b);
            int rc = extent_decode(out, val, len, 5, SEED, d);
            val[i] ^= (unsigned char)(1u << b);
            if (rc == 0 && i >= FMT_EXTENT_HEADER && memcmp(out, raw, BYTES_PER_EXTENT) == 0)
                continue;
            if (rc != CAIRN_CORRUPT)
                fail_msg("flip of byte %zu bit %d decoded with %d", i, b, rc);
        }
    }
    /* Every truncation. */
    for (size_t l = 0; l < len; l++)
        assert_cairn_rc(extent_decode(out, val, l, 5, SEED, d), CAIRN_CORRUPT);
    assert_cairn_ok(extent_decode(out, val, len, 5, SEED, d));
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
    free(raw), free(out), free(val);
}

static void swizzle_roundtrip(void **state)
{
    (void)state;
    uint64_t page[PAGE_WORDS], back[PAGE_WORDS], map[PAGE_WORDS / 64] = {0};
    uintptr_t base = 0x7f0000000000ull;
    uint64_t lo = 64 * PAGE_BYTES, hi = 1024 * PAGE_BYTES;
    for (unsigned w = 0; w < PAGE_WORDS; w++) {
        if (w % 3 == 0) {
            map[w / 64] |= 1ull << (w % 64);
            page[w] = w % 9 == 0 ? 0 : lo + w * 8; /* NULL stays NULL */
        } else {
            page[w] = 0xdead0000u + w; /* not a pointer: untouched */
        }
    }
    memcpy(back, page, sizeof page);
    assert_cairn_ok(swizzle_page(page, map, base, lo, hi));
    for (unsigned w = 0; w < PAGE_WORDS; w++) {
        if (w % 3 == 0)
            assert_int_equal(page[w], back[w] ? back[w] + base : 0);
        else
            assert_int_equal(page[w], back[w]);
    }
    uint64_t out[PAGE_WORDS];
    unsigned bad = 9999;
    assert_cairn_ok(unswizzle_page(out, page, map, base, lo, hi, &bad));
    assert_memory_equal(out, back, sizeof back);
}

static void swizzle_refuses_bad_offsets(void **state)
{
    (void)state;
    uint64_t page[PAGE_WORDS] = {0}, map[PAGE_WORDS / 64] = {0};
    uint64_t lo = 64 * PAGE_BYTES, hi = 1024 * PAGE_BYTES;
    map[0] = 1ull << 5;
    page[5] = lo - 8; /* into the metadata pages */
    assert_cairn_rc(swizzle_page(page, map, 0x10000000, lo, hi), CAIRN_CORRUPT);
    page[5] = hi; /* past the end */
    assert_cairn_rc(swizzle_page(page, map, 0x10000000, lo, hi), CAIRN_CORRUPT);
}

static void unswizzle_refuses_external_pointers(void **state)
{
    (void)state;
    uint64_t page[PAGE_WORDS] = {0}, out[PAGE_WORDS], map[PAGE_WORDS / 64] = {0};
    uintptr_t base = 0x7f0000000000ull;
    uint64_t lo = 64 * PAGE_BYTES, hi = 1024 * PAGE_BYTES;
    int local;
    map[1] = 1ull << 3; /* word 67 */
    page[67] = (uint64_t)(uintptr_t)&local;
    unsigned bad = 0;
    assert_cairn_rc(unswizzle_page(out, page, map, base, lo, hi, &bad), CAIRN_EXTERNAL_POINTER);
    assert_int_equal(bad, 67);
    page[67] = base + lo - 8; /* inside the range but not an object page */
    assert_cairn_rc(unswizzle_page(out, page, map, base, lo, hi, &bad), CAIRN_EXTERNAL_POINTER);
    page[67] = base + hi; /* just past it */
    assert_cairn_rc(unswizzle_page(out, page, map, base, lo, hi, &bad), CAIRN_EXTERNAL_POINTER);
    page[67] = base + hi - 8;
    assert_cairn_ok(unswizzle_page(out, page, map, base, lo, hi, &bad));
    assert_int_equal(out[67], hi - 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(extent_roundtrip_and_compresses),
        cmocka_unit_test(extent_detects_every_damage),
        cmocka_unit_test(swizzle_roundtrip),
        cmocka_unit_test(swizzle_refuses_bad_offsets),
        cmocka_unit_test(unswizzle_refuses_external_pointers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
