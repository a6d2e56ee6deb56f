/*
 * extent.c - the extent record: the LMDB value holding PAGES_PER_EXTENT pages.
 *
 *   offset  size  field
 *   0       4     magic 0x31545843 ("CXT1" little-endian)
 *   4       2     format version, 1
 *   6       2     flags, 0
 *   8       4     pages in the extent (16)
 *   12      4     length of the zstd frame that follows
 *   16      8     extent number (must equal the key)
 *   24      8     XXH3-64 of the uncompressed pages, seeded with the
 *                 extent number XOR the store's checksum seed
 *   32      ...   one zstd frame; decompresses to pages * 4096 bytes
 *
 * All integers little-endian.  Pages are stored unswizzled.  A record that
 * fails any check decodes to CAIRN_CORRUPT and nothing of it is shown.
 * decode is async-signal-safe (no allocation: ZSTD_decompressDCtx with a
 * context made at open decompresses into the caller's buffer).
 */
#include <string.h>
#include <xxhash.h>

#include "pager.h"

size_t extent_bound(void)
{
    return FMT_EXTENT_HEADER + ZSTD_compressBound(BYTES_PER_EXTENT);
}

int extent_encode(void *dst, size_t cap, size_t *len, const void *raw, uint64_t e, uint64_t seed, int level,
                  ZSTD_CCtx *cctx)
{
    if (cap < extent_bound())
        return CAIRN_INVALID;
    size_t z =
        ZSTD_compressCCtx(cctx, (char *)dst + FMT_EXTENT_HEADER, cap - FMT_EXTENT_HEADER, raw, BYTES_PER_EXTENT, level);
    if (ZSTD_isError(z))
        return CAIRN_INVALID;
    struct extent_header h = {
        .magic = FMT_EXTENT_MAGIC,
        .version = FMT_EXTENT_VERSION,
        .flags = 0,
        .pages = PAGES_PER_EXTENT,
        .zlen = (uint32_t)z,
        .extent = e,
        .checksum = XXH3_64bits_withSeed(raw, BYTES_PER_EXTENT, e ^ seed),
    };
    memcpy(dst, &h, sizeof h);
    *len = FMT_EXTENT_HEADER + z;
    return 0;
}

int extent_decode(void *raw, const void *val, size_t len, uint64_t e, uint64_t seed, ZSTD_DCtx *dctx)
{
    struct extent_header h;
    if (len < FMT_EXTENT_HEADER)
        return CAIRN_CORRUPT;
    memcpy(&h, val, sizeof h);
    if (h.magic != FMT_EXTENT_MAGIC || h.version != FMT_EXTENT_VERSION || h.flags != 0 || h.pages != PAGES_PER_EXTENT ||
        h.zlen != len - FMT_EXTENT_HEADER || h.zlen > ZSTD_COMPRESSBOUND(BYTES_PER_EXTENT) || h.extent != e)
        return CAIRN_CORRUPT; /* zlen bounded: no read reaches far past a damaged LMDB page */
    size_t n = ZSTD_decompressDCtx(dctx, raw, BYTES_PER_EXTENT, (const char *)val + FMT_EXTENT_HEADER, h.zlen);
    if (ZSTD_isError(n) || n != BYTES_PER_EXTENT)
        return CAIRN_CORRUPT;
    if (XXH3_64bits_withSeed(raw, BYTES_PER_EXTENT, e ^ seed) != h.checksum)
        return CAIRN_CORRUPT;
    return 0;
}
