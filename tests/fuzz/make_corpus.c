/*
 * make_corpus.c - writes the seed corpora of the fuzz harnesses:
 *
 *     fuzz_make_corpus DIR      (DIR = tests/fuzz/corpus)
 *
 * writes DIR/wal/, DIR/extent/, DIR/catalog/ and DIR/lmdb/: small valid and
 * near-valid inputs in each harness's input format (see the comment at
 * the top of fuzz_wal.c, fuzz_extent.c, fuzz_catalog.c and fuzz_lmdb.c).  Output is
 * deterministic: no random salt, no time.  Existing files of the same
 * name are overwritten; other files (inputs the fuzzers found and that
 * were kept, crash reproducers) are left alone.
 *
 * Logs are laid out here from docs/FORMAT.md (header, records, checksum
 * chain); extents are made with the library's extent_encode.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>
#include <zstd.h>

#include "cairn.h"
#include "fuzz_util.h"
#include "pager/pager.h"

static char outdir[4096];
static size_t total_bytes, total_files;

/* ---- a growable byte buffer ---- */

struct buf {
    unsigned char *b;
    size_t len, cap;
};

static void b_reserve(struct buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more)
        cap *= 2;
    b->b = realloc(b->b, cap);
    if (!b->b)
        abort();
    b->cap = cap;
}

static void b_add(struct buf *b, const void *p, size_t n)
{
    b_reserve(b, n);
    memcpy(b->b + b->len, p, n);
    b->len += n;
}

static void b_u8(struct buf *b, uint8_t v)
{
    b_add(b, &v, 1);
}

static void b_u16(struct buf *b, uint16_t v)
{
    b_add(b, &v, 2);
}

static void b_u32(struct buf *b, uint32_t v)
{
    b_add(b, &v, 4);
}

static void b_u64(struct buf *b, uint64_t v)
{
    b_add(b, &v, 8);
}

static void b_fill(struct buf *b, int c, size_t n)
{
    b_reserve(b, n);
    memset(b->b + b->len, c, n);
    b->len += n;
}

static void b_free(struct buf *b)
{
    free(b->b);
    memset(b, 0, sizeof *b);
}

static void emit(const char *sub, const char *name, const void *data, size_t len)
{
    char d[4200];
    snprintf(d, sizeof d, "%s/%s", outdir, sub);
    if (mkdir(d, 0755) != 0 && errno != EEXIST) {
        perror(d);
        exit(1);
    }
    int rc = fz_write_file(d, name, data, len);
    if (rc) {
        fprintf(stderr, "%s/%s: %s\n", d, name, strerror(rc));
        exit(1);
    }
    total_bytes += len;
    total_files++;
}

/* ---- logs (FORMAT.md section 4) ---- */

struct range {
    uint16_t off, len;
    int zero;
    uint8_t fill;
};

static void wal_header(struct buf *b, const uint8_t id[16], uint64_t start_lsn)
{
    unsigned char h[FZ_WAL_HEADER] = {0};
    fz_put64(h + 32, 3);                     /* generation */
    fz_put64(h + 40, start_lsn);             /* start LSN */
    fz_put64(h + 48, 0x0123456789abcdefull); /* salt */
    fz_wal_seal_header(h, id, 1);
    b_add(b, h, sizeof h);
}

/* A record with a zero checksum; wal_seal() computes the chain. */
static void wal_record(struct buf *b, uint32_t kind, uint64_t lsn, uint64_t txn, const struct buf *payload)
{
    b_u32(b, kind);
    b_u32(b, (uint32_t)payload->len);
    b_u64(b, lsn);
    b_u64(b, txn);
    b_u64(b, 0);
    b_add(b, payload->b, payload->len);
    b_fill(b, 0, fz_pad8(b->len) - b->len);
}

static void page_payload(struct buf *p, uint64_t page, const struct range *r, size_t n)
{
    p->len = 0;
    b_u64(p, page);
    b_u16(p, (uint16_t)n);
    b_fill(p, 0, 6);
    for (size_t i = 0; i < n; i++) {
        b_u16(p, r[i].off);
        b_u16(p, (uint16_t)(r[i].len | (r[i].zero ? 0x8000u : 0)));
        if (!r[i].zero)
            b_fill(p, r[i].fill, r[i].len);
    }
}

static void commit_payload(struct buf *p, uint64_t count)
{
    p->len = 0;
    b_u64(p, count);
}

/* Seal the checksum chain of a whole log image. */
static void wal_seal(struct buf *b)
{
    fz_wal_seal_records(b->b, b->len, 0);
}

static void emit_wal(const char *name, uint8_t mode, const struct buf *log, size_t len)
{
    struct buf f = {0};
    b_u8(&f, mode);
    b_add(&f, log->b, len);
    emit("wal", name, f.b, f.len);
    b_free(&f);
}

/* One transaction: page 3 with a data range and a zero range. */
static void log_one_txn(struct buf *b, uint64_t start)
{
    struct buf p = {0};
    struct range r[] = {{0, 16, 0, 0xab}, {64, 8, 1, 0}, {4088, 8, 0, 0x5a}};
    wal_header(b, FUZZ_STORE_ID, start);
    page_payload(&p, 3, r, 3);
    wal_record(b, FZ_WAL_KIND_PAGE, start, 100, &p);
    commit_payload(&p, 1);
    wal_record(b, FZ_WAL_KIND_COMMIT, start + 1, 100, &p);
    wal_seal(b);
    b_free(&p);
}

/* Three transactions: two pages; an empty one; a zeroed page. */
static void log_three_txns(struct buf *b, uint64_t start)
{
    struct buf p = {0};
    uint64_t lsn = start;
    wal_header(b, FUZZ_STORE_ID, start);
    struct range whole[] = {{0, 4096, 0, 0x42}};
    page_payload(&p, 0, whole, 1);
    wal_record(b, FZ_WAL_KIND_PAGE, lsn++, 7, &p);
    struct range many[12];
    for (unsigned i = 0; i < 12; i++)
        many[i] = (struct range){(uint16_t)(i * 256), (uint16_t)(8 + 8 * (i % 3)), (int)(i % 4 == 3), (uint8_t)i};
    page_payload(&p, 20, many, 12);
    wal_record(b, FZ_WAL_KIND_PAGE, lsn++, 7, &p);
    commit_payload(&p, 2);
    wal_record(b, FZ_WAL_KIND_COMMIT, lsn++, 7, &p);
    commit_payload(&p, 0);
    wal_record(b, FZ_WAL_KIND_COMMIT, lsn++, 8, &p);
    struct range zero[] = {{0, 4096, 1, 0}};
    page_payload(&p, 1, zero, 1);
    wal_record(b, FZ_WAL_KIND_PAGE, lsn++, 9, &p);
    commit_payload(&p, 1);
    wal_record(b, FZ_WAL_KIND_COMMIT, lsn++, 9, &p);
    wal_seal(b);
    b_free(&p);
}

static void make_wal(void)
{
    struct buf b = {0}, p = {0};

    wal_header(&b, FUZZ_STORE_ID, 1);
    emit_wal("header-only", 0, &b, b.len);
    emit_wal("short-mode1", 1, &b, 20);
    emit_wal("truncated-header", 0, &b, 40);
    b_free(&b);

    static const uint8_t other[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    wal_header(&b, other, 1);
    emit_wal("foreign-store", 0, &b, b.len);
    emit_wal("foreign-store-mode1", 1, &b, b.len);
    b_free(&b);

    log_one_txn(&b, 1);
    emit_wal("one-txn", 0, &b, b.len);
    emit_wal("one-txn-mode1", 1, &b, b.len);
    emit_wal("one-txn-skipped", (uint8_t)(2 << 2), &b, b.len); /* after = 2: the commit is checkpointed */
    emit_wal("torn-commit", 0, &b, b.len - 12);
    emit_wal("torn-page-mode2", 2, &b, 64 + 40);
    b.b[64 + 32 + 20] ^= 1; /* flip a payload byte: checksum fails */
    emit_wal("bad-checksum", 0, &b, b.len);
    b_free(&b);

    log_three_txns(&b, 1);
    emit_wal("three-txns", 0, &b, b.len);
    emit_wal("three-txns-after1", (uint8_t)(1 << 2), &b, b.len);
    emit_wal("three-txns-mode3", 3, &b, b.len);
    b_free(&b);

    log_three_txns(&b, UINT64_MAX - 2); /* LSNs wrap past 2^64 - 1 */
    emit_wal("lsn-wrap", 0, &b, b.len);
    b_free(&b);

    /* A page record without its commit. */
    wal_header(&b, FUZZ_STORE_ID, 5);
    struct range r1[] = {{8, 8, 0, 1}};
    page_payload(&p, 2, r1, 1);
    wal_record(&b, FZ_WAL_KIND_PAGE, 5, 1, &p);
    wal_seal(&b);
    emit_wal("no-commit", 0, &b, b.len);
    /* ... and with a commit counting two pages. */
    commit_payload(&p, 2);
    wal_record(&b, FZ_WAL_KIND_COMMIT, 6, 1, &p);
    wal_seal(&b);
    emit_wal("count-mismatch", 0, &b, b.len);
    b_free(&b);

    /* Commit with another transaction id. */
    wal_header(&b, FUZZ_STORE_ID, 1);
    page_payload(&p, 2, r1, 1);
    wal_record(&b, FZ_WAL_KIND_PAGE, 1, 1, &p);
    commit_payload(&p, 1);
    wal_record(&b, FZ_WAL_KIND_COMMIT, 2, 2, &p);
    wal_seal(&b);
    emit_wal("txn-id-switch", 0, &b, b.len);
    b_free(&b);

    /* Valid chain, malformed payloads: each must be refused by
     * wal_apply_ranges (and stop the replay). */
    struct {
        const char *name;
        struct range r;
        int nranges_extra;
    } bad[] = {
        {"range-past-page", {4088, 16, 0, 7}, 0},
        {"range-unaligned", {4, 8, 0, 7}, 0},
        {"range-zero-length", {0, 0, 0, 7}, 0},
        {"range-count-too-big", {0, 8, 0, 7}, 3},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wal_header(&b, FUZZ_STORE_ID, 1);
        page_payload(&p, 4, &bad[i].r, 1);
        if (bad[i].nranges_extra) {
            uint16_t n = (uint16_t)(1 + bad[i].nranges_extra);
            memcpy(p.b + 8, &n, 2);
        }
        wal_record(&b, FZ_WAL_KIND_PAGE, 1, 1, &p);
        commit_payload(&p, 1);
        wal_record(&b, FZ_WAL_KIND_COMMIT, 2, 1, &p);
        wal_seal(&b);
        emit_wal(bad[i].name, 0, &b, b.len);
        b_free(&b);
    }
    /* Bits 13-14 of the length word set. */
    wal_header(&b, FUZZ_STORE_ID, 1);
    page_payload(&p, 4, r1, 1);
    uint16_t lf = 8 | 0x2000;
    memcpy(p.b + 18, &lf, 2);
    wal_record(&b, FZ_WAL_KIND_PAGE, 1, 1, &p);
    commit_payload(&p, 1);
    wal_record(&b, FZ_WAL_KIND_COMMIT, 2, 1, &p);
    wal_seal(&b);
    emit_wal("range-reserved-bits", 0, &b, b.len);
    b_free(&b);

    /* Unknown kind, and a length past the end of the file (mode 2 keeps the
     * chain valid so only those fields fail). */
    log_one_txn(&b, 1);
    fz_put32(b.b + 64, 0xCA1E0003u);
    emit_wal("unknown-kind-mode2", 2, &b, b.len);
    fz_put32(b.b + 64, FZ_WAL_KIND_PAGE);
    fz_put32(b.b + 68, 1u << 20);
    emit_wal("length-past-end-mode2", 2, &b, b.len);
    b_free(&b);
    b_free(&p);
}

/* ---- extents (FORMAT.md section 2) ---- */

#define CTL_KEY_HEADER 0
#define CTL_KEY_0 1
#define CTL_KEY_5 2
#define CTL_KEY_MAX 3
#define CTL_SEED0 (1 << 2)
#define CTL_FIXUP (1 << 3)
#define CTL_MAP(m) ((m) << 4)
#define CTL_GEOM(g) ((g) << 6)

static unsigned char pages[BYTES_PER_EXTENT];

static void emit_extent(const char *name, uint8_t ctl, const uint64_t map[8], const void *val, size_t len)
{
    struct buf f = {0};
    b_u8(&f, ctl);
    uint64_t zero[8] = {0};
    b_add(&f, map ? map : zero, 64);
    b_add(&f, val, len);
    emit("extent", name, f.b, f.len);
    b_free(&f);
}

static size_t encode(unsigned char *dst, uint64_t e, uint64_t seed)
{
    static ZSTD_CCtx *cctx;
    if (!cctx)
        cctx = ZSTD_createCCtx();
    size_t len = 0;
    if (extent_encode(dst, extent_bound(), &len, pages, e, seed, 3, cctx) != 0)
        abort();
    return len;
}

static void put_word(unsigned page, unsigned word, uint64_t v)
{
    memcpy(pages + (size_t)page * PAGE_BYTES + word * 8, &v, 8);
}

static void make_extent(void)
{
    const uint64_t seed = XXH3_64bits(FUZZ_STORE_ID, 16);
    unsigned char *val = malloc(extent_bound());
    if (!val)
        abort();
    struct layout small;
    layout_init(&small, 4096);
    const uint64_t lo = small.data_start * PAGE_BYTES, hi = small.pages * PAGE_BYTES;

    /* Zero pages, extent 0. */
    memset(pages, 0, sizeof pages);
    size_t len = encode(val, 0, seed);
    emit_extent("zero-e0", CTL_KEY_HEADER, NULL, val, len);
    emit_extent("zero-e0-as-e5", CTL_KEY_5, NULL, val, len);
    emit_extent("zero-e0-seed0", CTL_KEY_0 | CTL_SEED0, NULL, val, len); /* wrong seed */
    emit_extent("zero-e0-truncated", CTL_KEY_HEADER, NULL, val, len - 3);
    emit_extent("header-only", CTL_KEY_HEADER, NULL, val, FMT_EXTENT_HEADER);
    emit_extent("short", CTL_KEY_HEADER, NULL, val, 20);
    val[0] ^= 0x20;
    emit_extent("bad-magic", CTL_KEY_HEADER, NULL, val, len);
    val[0] ^= 0x20;
    val[24] ^= 1;
    emit_extent("bad-checksum", CTL_KEY_HEADER, NULL, val, len);
    emit_extent("bad-checksum-fixup", CTL_KEY_HEADER | CTL_FIXUP, NULL, val, len);
    val[24] ^= 1;
    val[4] = 2;
    emit_extent("version-2", CTL_KEY_HEADER, NULL, val, len);
    val[4] = 1;
    memset(val, 0xee, FMT_EXTENT_HEADER); /* garbage header, valid frame */
    emit_extent("garbage-header-fixup", CTL_KEY_5 | CTL_FIXUP, NULL, val, len);
    emit_extent("garbage-header", CTL_KEY_5, NULL, val, len);

    /* Pointers: word 0 of every 64-byte group (map 0x0101...) holds an
     * offset into the object pages of a 4096-page store; other words data. */
    uint64_t map[8];
    for (unsigned j = 0; j < 8; j++)
        map[j] = 0x0101010101010101ull;
    memset(pages, 0, sizeof pages);
    for (unsigned pg = 0; pg < PAGES_PER_EXTENT; pg++)
        for (unsigned w = 0; w < PAGE_WORDS; w++)
            put_word(pg, w, w % 8 == 0 ? (w % 16 ? lo + (uint64_t)(pg * 4096 + w * 8) : 0) : (uint64_t)w * 0x10001);
    len = encode(val, 5, seed);
    emit_extent("pointers-e5", CTL_KEY_5 | CTL_MAP(0) | CTL_GEOM(0), map, val, len);
    emit_extent("pointers-e5-rotated-map", CTL_KEY_5 | CTL_MAP(3) | CTL_GEOM(0), map, val, len);
    emit_extent("pointers-e5-all-words", CTL_KEY_5 | CTL_MAP(2) | CTL_GEOM(0), map, val, len);
    emit_extent("pointers-e5-wrong-store", CTL_KEY_5 | CTL_MAP(0) | CTL_GEOM(1), map, val, len);
    emit_extent("pointers-e5-top-base", CTL_KEY_5 | CTL_MAP(0) | CTL_GEOM(3), map, val, len);
    /* One pointer out of range (below the object pages). */
    put_word(9, 64, 4096);
    len = encode(val, 5, seed);
    emit_extent("pointer-out-of-range", CTL_KEY_5 | CTL_MAP(0) | CTL_GEOM(0), map, val, len);
    put_word(9, 64, hi); /* one past the end */
    len = encode(val, 5, seed);
    emit_extent("pointer-at-end", CTL_KEY_5 | CTL_MAP(0) | CTL_GEOM(0), map, val, len);

    /* Pointers of the largest store (2^32 pages). */
    struct layout large;
    layout_init(&large, (uint64_t)1 << 32);
    memset(pages, 0, sizeof pages);
    for (unsigned pg = 0; pg < PAGES_PER_EXTENT; pg++)
        for (unsigned w = 0; w < PAGE_WORDS; w += 8)
            put_word(pg, w, large.data_start * PAGE_BYTES + ((uint64_t)w << 20) + pg * 16);
    put_word(15, 504, large.pages * PAGE_BYTES - 8);
    len = encode(val, 5, seed);
    emit_extent("pointers-e5-big-store", CTL_KEY_5 | CTL_MAP(0) | CTL_GEOM(1), map, val, len);

    /* Root directory extent (pages 0..15 of a store, extent 0): names and a
     * pointer in word 7 of each 64-byte entry of pages 2..15. */
    memset(pages, 0, sizeof pages);
    for (unsigned pg = 2; pg < PAGES_PER_EXTENT; pg++)
        for (unsigned ent = 0; ent < 64; ent += 3) {
            char name[56];
            snprintf(name, sizeof name, "root-%u-%u", pg, ent);
            memcpy(pages + (size_t)pg * PAGE_BYTES + ent * 64, name, strlen(name));
            put_word(pg, ent * 8 + 7, lo + (uint64_t)ent * 4096);
        }
    len = encode(val, 0, seed);
    emit_extent("roots-e0", CTL_KEY_0 | CTL_MAP(1) | CTL_GEOM(0), NULL, val, len);

    /* Extent 2^64-1 and a zero seed. */
    memset(pages, 0x3c, sizeof pages);
    len = encode(val, UINT64_MAX, 0);
    emit_extent("e-max-seed0", CTL_KEY_MAX | CTL_SEED0, NULL, val, len);
    free(val);
}

/* ---- catalogs (FORMAT.md section 3) ---- */

#define C_PREFILL 0x01
#define C_WAL 0x02
#define C_RDONLY 0x04
#define C_NO_EXTENTS 0x08
#define C_EXERCISE 0x10
#define C_COMMIT 0x20
#define C_STALE_WAL 0x40
#define C_DUPSORT 0x80

static void pair(struct buf *b, const char *key, size_t kl, const void *val, size_t vl)
{
    b_u8(b, (uint8_t)kl);
    b_u16(b, (uint16_t)vl);
    b_add(b, key, kl);
    b_add(b, val, vl);
}

static void pair_u32(struct buf *b, const char *key, uint32_t v)
{
    pair(b, key, strlen(key), &v, 4);
}

static void pair_u64(struct buf *b, const char *key, uint64_t v)
{
    pair(b, key, strlen(key), &v, 8);
}

static void pair_type(struct buf *b, const char *name, uint32_t id, uint64_t size, const uint64_t *offs, uint32_t n)
{
    struct buf v = {0};
    b_u32(&v, id);
    b_u32(&v, n);
    b_u64(&v, size);
    for (uint32_t i = 0; i < n; i++)
        b_u64(&v, offs[i]);
    char key[300];
    snprintf(key, sizeof key, "type/%s", name);
    pair(b, key, strlen(key), v.b, v.len);
    b_free(&v);
}

static void catalog_keys(struct buf *b, uint64_t pages, uint64_t ckpt)
{
    pair_u32(b, "format", 1);
    pair(b, "store_id", 8, FUZZ_STORE_ID, 16);
    pair_u32(b, "page_size", 4096);
    pair_u32(b, "extent_pages", 16);
    pair_u64(b, "pages", pages);
    pair_u64(b, "ckpt_lsn", ckpt);
}

static void two_types(struct buf *b)
{
    static const uint64_t node[] = {0, 8};
    pair_type(b, "node", 1, 24, node, 2);
    pair_type(b, "blob", 2, 100, NULL, 0);
}

static void emit_catalog(const char *name, uint8_t ctl, const struct buf *pairs)
{
    struct buf f = {0};
    b_u8(&f, ctl);
    if (pairs)
        b_add(&f, pairs->b, pairs->len);
    emit("catalog", name, f.b, f.len);
    b_free(&f);
}

static void make_catalog(void)
{
    struct buf b = {0};

    emit_catalog("new-store", 0, NULL);
    emit_catalog("new-store-readonly", C_RDONLY, NULL);
    emit_catalog("new-store-exercise", C_EXERCISE | C_COMMIT, NULL);

    catalog_keys(&b, 4096, 0);
    two_types(&b);
    emit_catalog("valid", C_WAL, &b);
    emit_catalog("valid-exercise", C_WAL | C_EXERCISE, &b);
    emit_catalog("valid-exercise-commit", C_WAL | C_EXERCISE | C_COMMIT, &b);
    emit_catalog("valid-readonly", C_WAL | C_RDONLY, &b);
    emit_catalog("valid-no-extents-readonly", C_WAL | C_RDONLY | C_NO_EXTENTS, &b);
    emit_catalog("valid-no-wal", 0, &b);
    emit_catalog("valid-dupsort", C_WAL | C_DUPSORT | C_EXERCISE, &b);
    b_free(&b);

    /* Prefilled catalog, the input adds types only. */
    static const uint64_t big[] = {0, 4096, 9992};
    static const uint64_t tree[] = {0, 8, 16, 24};
    pair_type(&b, "big", 1, 10000, big, 3);
    pair_type(&b, "tree", 2, 40, tree, 4);
    pair_type(&b, "raw", 3, 7, NULL, 0);
    emit_catalog("prefill-types-exercise", C_PREFILL | C_WAL | C_EXERCISE | C_COMMIT, &b);
    b_free(&b);

    /* Checkpoint LSN ahead of the log, or the log stale. */
    catalog_keys(&b, 4096, 10);
    emit_catalog("ckpt-10", C_WAL, &b);
    emit_catalog("ckpt-10-stale-wal", C_WAL | C_STALE_WAL, &b);
    emit_catalog("ckpt-10-stale-wal-readonly", C_WAL | C_STALE_WAL | C_RDONLY, &b);
    b_free(&b);

    /* Largest store. */
    catalog_keys(&b, (uint64_t)1 << 32, 0);
    emit_catalog("pages-max", C_WAL, &b);
    b_free(&b);

    /* Each catalog key wrong in turn, on top of the valid prefill. */
    struct {
        const char *name, *key;
        uint64_t v;
        size_t len;
    } bad[] = {
        {"format-2", "format", 2, 4},
        {"format-u64", "format", 1, 8},
        {"page-size-8192", "page_size", 8192, 4},
        {"extent-pages-32", "extent_pages", 32, 4},
        {"pages-unaligned", "pages", 4100, 8},
        {"pages-too-few", "pages", 4080, 8},
        {"pages-too-many", "pages", ((uint64_t)1 << 32) + 16, 8},
        {"pages-u32", "pages", 4096, 4},
        {"ckpt-lsn-short", "ckpt_lsn", 0, 7},
        {"store-id-short", "store_id", 0, 15},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pair(&b, bad[i].key, strlen(bad[i].key), &bad[i].v, bad[i].len);
        emit_catalog(bad[i].name, C_PREFILL | C_WAL, &b);
        b_free(&b);
    }
    pair(&b, "format", 6, "", 0);
    emit_catalog("format-empty", C_PREFILL | C_WAL, &b);
    b_free(&b);

    /* Type records wrong in turn. */
    static const uint64_t offs[] = {0, 8};
    static const uint64_t unaligned[] = {4};
    static const uint64_t past[] = {24};
    pair_type(&b, "zero-id", 0, 24, offs, 2);
    emit_catalog("type-id-0", C_PREFILL | C_WAL, &b);
    b_free(&b);
    pair_type(&b, "huge-id", (1u << 24) + 1, 24, offs, 2);
    emit_catalog("type-id-too-big", C_PREFILL | C_WAL, &b);
    b_free(&b);
    pair_type(&b, "a", 1, 24, offs, 2);
    pair_type(&b, "b", 1, 24, offs, 2);
    emit_catalog("type-id-twice", C_PREFILL | C_WAL, &b);
    b_free(&b);
    pair_type(&b, "size0", 1, 0, NULL, 0);
    emit_catalog("type-size-0", C_PREFILL | C_WAL, &b);
    b_free(&b);
    pair_type(&b, "unaligned", 1, 24, unaligned, 1);
    emit_catalog("type-offset-unaligned", C_PREFILL | C_WAL, &b);
    b_free(&b);
    pair_type(&b, "past", 1, 24, past, 1);
    emit_catalog("type-offset-past-size", C_PREFILL | C_WAL, &b);
    b_free(&b);
    {
        uint32_t v[4] = {1, 3, 24, 0}; /* claims 3 offsets, has none */
        pair(&b, "type/short", 10, v, sizeof v);
        emit_catalog("type-n-ptrs-mismatch", C_PREFILL | C_WAL, &b);
        b_free(&b);
    }
    pair(&b, "type/x", 6, "12345678", 8);
    emit_catalog("type-record-short", C_PREFILL | C_WAL, &b);
    b_free(&b);
    pair(&b, "type/", 5, "1234567812345678", 16);
    emit_catalog("type-empty-name", C_PREFILL | C_WAL, &b);
    b_free(&b);
    {
        char name[202];
        memset(name, 'n', 201);
        name[201] = 0;
        pair_type(&b, name, 1, 8, NULL, 0);
        emit_catalog("type-name-201", C_PREFILL | C_WAL, &b);
        b_free(&b);
        name[200] = 0;
        pair_type(&b, name, 1, 8, NULL, 0);
        emit_catalog("type-name-200", C_PREFILL | C_WAL | C_EXERCISE, &b);
        b_free(&b);
    }
    /* Same type key twice with DUPSORT: two records of one name. */
    pair_type(&b, "dup", 1, 16, offs, 1);
    pair_type(&b, "dup", 2, 32, offs, 2);
    emit_catalog("type-dupsort-twice", C_PREFILL | C_WAL | C_DUPSORT | C_EXERCISE, &b);
    b_free(&b);
    /* Keys sorting around "type/". */
    pair(&b, "type.", 5, "x", 1);
    pair(&b, "type0", 5, "x", 1);
    pair(&b, "typ", 3, "x", 1);
    emit_catalog("keys-near-type-prefix", C_PREFILL | C_WAL, &b);
    b_free(&b);
}

/* ---- damaged data.mdb (fuzz_lmdb.c) ---- */

#define L_RDONLY 0x01
#define L_UPDATE 0x02
#define L_KEEP_LENGTH 0xffffffffu
/* LMDB's meta page (pages 0 and 1): 16-byte page header, then magic,
 * version, address, map size, the two databases (48 bytes each; md_root
 * is their last field), last page number, transaction id. */
#define META_MAGIC 16
#define META_MAIN_ROOT (16 + 24 + 48 + 40)
#define META_LAST_PGNO (16 + 24 + 96)
#define META_TXNID (META_LAST_PGNO + 8)

static void emit_lmdb(const char *name, uint8_t ctl, uint32_t cut, const uint32_t *flips, size_t n)
{
    struct buf b = {0};
    b_u8(&b, ctl);
    b_u32(&b, cut);
    for (size_t i = 0; i < n; i++) {
        b_u32(&b, flips[2 * i]);
        b_u8(&b, (uint8_t)flips[2 * i + 1]);
    }
    emit("lmdb", name, b.b, b.len);
    b_free(&b);
}

static void make_lmdb(void)
{
    emit_lmdb("intact", 0, L_KEEP_LENGTH, NULL, 0);
    emit_lmdb("intact-readonly", L_RDONLY, L_KEEP_LENGTH, NULL, 0);
    emit_lmdb("intact-update", L_UPDATE, L_KEEP_LENGTH, NULL, 0);
    static const uint32_t cuts[] = {0, 100, 4096, 8192, 12288, 16384, 40000, 65536, 100000, 150000};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "cut-%u", cuts[i]);
        emit_lmdb(name, 0, cuts[i], NULL, 0);
        snprintf(name, sizeof name, "cut-%u-readonly", cuts[i]);
        emit_lmdb(name, L_RDONLY, cuts[i], NULL, 0);
    }
    const uint32_t magic[] = {META_MAGIC, 0xff};
    emit_lmdb("meta0-magic", 0, L_KEEP_LENGTH, magic, 1);
    const uint32_t txnid[] = {META_TXNID, 0x01};
    emit_lmdb("meta0-txnid", 0, L_KEEP_LENGTH, txnid, 1);
    const uint32_t txnid1[] = {4096 + META_TXNID, 0x01};
    emit_lmdb("meta1-txnid", 0, L_KEEP_LENGTH, txnid1, 1);
    const uint32_t txnids[] = {META_TXNID, 0x80, 4096 + META_TXNID, 0x80};
    emit_lmdb("meta-both-txnid", 0, L_KEEP_LENGTH, txnids, 2);
    const uint32_t last[] = {META_LAST_PGNO + 2, 0x01, 4096 + META_LAST_PGNO + 2, 0x01};
    emit_lmdb("meta-last-pgno-past-end", 0, L_KEEP_LENGTH, last, 2);
    const uint32_t root[] = {META_MAIN_ROOT, 0x01, 4096 + META_MAIN_ROOT, 0x01};
    emit_lmdb("meta-main-root", 0, L_KEEP_LENGTH, root, 2);
    const uint32_t page2[] = {8192 + 12, 0x20};
    emit_lmdb("page2-header", 0, L_KEEP_LENGTH, page2, 1);
    uint32_t spread[32];
    for (uint32_t i = 0; i < 16; i++)
        spread[2 * i] = 8192 + i * 9973, spread[2 * i + 1] = 1u << (i % 8);
    emit_lmdb("spread-16", 0, L_KEEP_LENGTH, spread, 16);
    emit_lmdb("spread-16-update", L_UPDATE, L_KEEP_LENGTH, spread, 16);
    const uint32_t late[] = {0xfffffff0u, 0x40};
    emit_lmdb("late-page-update", L_UPDATE, L_KEEP_LENGTH, late, 1);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR   (writes CORPUS_DIR/wal, /extent, /catalog, /lmdb)\n", argv[0]);
        return 2;
    }
    snprintf(outdir, sizeof outdir, "%s", argv[1]);
    if (mkdir(outdir, 0755) != 0 && errno != EEXIST) {
        perror(outdir);
        return 1;
    }
    make_wal();
    make_extent();
    make_catalog();
    make_lmdb();
    printf("%zu files, %zu bytes in %s\n", total_files, total_bytes, outdir);
    return 0;
}
