/*
 * fuzz_wal.c - libFuzzer harness for log recovery (wal/wal.c):
 * wal_open (header validation), wal_replay (record framing, checksum
 * chain, transaction grouping) and wal_apply_ranges (page-change payload).
 *
 * Input: one mode byte, then the bytes of the "wal" file.
 *   mode & 3  0  the file as given (the fuzzer must find a valid header
 *                itself: the store id below and an XXH3 checksum)
 *             1  the harness writes FUZZ_STORE_ID and the header checksum
 *                into bytes 16..31 and 56..63 (the file is zero-padded to
 *                64 bytes first), so magic/version/page size still come
 *                from the input
 *             2  as 1, plus magic, version and page size, plus the record
 *                checksum chain recomputed over the records as wal_replay
 *                frames them: the fuzzer reaches the transaction logic and
 *                the payload parser without having to forge XXH3
 *             3  as 2, plus LSNs renumbered from the header's start LSN
 *   mode >> 2    the "after" argument of wal_replay (0..63; recovery passes
 *                the checkpoint LSN)
 *
 * Per input: the file is written to a per-process tmpfs directory,
 * opened, replayed with an apply callback that runs wal_apply_ranges on a
 * 4096-byte page flanked by PROT_NONE guard pages (a write out of the page
 * faults, with or without AddressSanitizer) and compares it with a model
 * of the payload format written from docs/FORMAT.md.  After a clean
 * replay it checks where the log is left positioned, appends a
 * transaction, replays again to find exactly it after the old tail, resets
 * the log and replays once more (empty).  Any broken expectation aborts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"
#include "fuzz_util.h"
#include "wal/wal.h"

/* Largest write a range could attempt: offset 65535 + length 8191. */
#define GUARD_AFTER (80 * 1024)

static const char *dir;
static int dirfd_ = -1;
static unsigned char *page; /* 4096 bytes between guards */
static unsigned char ref[FZ_PAGE];

static void init(void)
{
    dir = fz_scratch_dir("wal");
    dirfd_ = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    FZ_CHECK(dirfd_ >= 0, "open %s: %s", dir, strerror(errno));
    size_t total = FZ_PAGE + FZ_PAGE + GUARD_AFTER;
    unsigned char *m = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    FZ_CHECK(m != MAP_FAILED, "mmap: %s", strerror(errno));
    page = m + FZ_PAGE;
    FZ_CHECK(mprotect(page, FZ_PAGE, PROT_READ | PROT_WRITE) == 0, "mprotect: %s", strerror(errno));
}

/* The page-change payload as docs/FORMAT.md section 4 describes it:
 * u64 page, u16 range count, 6 bytes, then ranges of u16 offset, u16
 * length-and-flags (bit 15 zero range; bits 0..12 length 1..4096; offset
 * and length multiples of 8, inside the page), then the bytes.  Bits 13
 * and 14 are not defined by the format; the reader refuses them, and so
 * does this model.  The whole payload must be consumed. */
static int model_apply(unsigned char *pg, const unsigned char *p, size_t len)
{
    if (len < 16)
        return -1;
    uint16_t n;
    memcpy(&n, p + 8, 2);
    size_t at = 16;
    for (unsigned r = 0; r < n; r++) {
        if (len - at < 4)
            return -1;
        uint16_t off, lf;
        memcpy(&off, p + at, 2);
        memcpy(&lf, p + at + 2, 2);
        at += 4;
        size_t rl = lf & 0x1fffu;
        if ((lf & 0x6000u) || rl < 1 || rl > FZ_PAGE || off % 8 || rl % 8 || (size_t)off + rl > FZ_PAGE)
            return -1;
        if (lf & 0x8000u) {
            memset(pg + off, 0, rl);
        } else {
            if (len - at < rl)
                return -1;
            memcpy(pg + off, p + at, rl);
            at += rl;
        }
    }
    return at == len ? 0 : -1;
}

struct apply_ctx {
    uint64_t changes;
};

static int apply(void *vctx, const struct wal_page_change *c)
{
    struct apply_ctx *ctx = vctx;
    FZ_CHECK(c->len >= 16, "page change of %zu bytes handed out", c->len);
    FZ_CHECK(fz_get64(c->payload) == c->page, "page number %llu vs payload", (unsigned long long)c->page);
    ctx->changes++;
    int rc = wal_apply_ranges(page, c->payload, c->len);
    int mrc = model_apply(ref, c->payload, c->len);
    FZ_CHECK(rc == 0 || rc == CAIRN_CORRUPT, "wal_apply_ranges returned %d", rc);
    FZ_CHECK((rc == 0) == (mrc == 0), "wal_apply_ranges %d, format model %d (LSN %llu)", rc, mrc,
             (unsigned long long)c->lsn);
    FZ_CHECK(memcmp(page, ref, FZ_PAGE) == 0, "page differs from the format model (LSN %llu)",
             (unsigned long long)c->lsn);
    return rc; /* as recovery does: a malformed change stops the replay */
}

struct capture_ctx {
    int seen;
    uint64_t page;
    unsigned char payload[FZ_PAGE + 4096];
    size_t len;
};

static int capture(void *vctx, const struct wal_page_change *c)
{
    struct capture_ctx *cap = vctx;
    if (cap->seen++ == 0) {
        cap->page = c->page;
        cap->len = c->len < sizeof cap->payload ? c->len : sizeof cap->payload;
        memcpy(cap->payload, c->payload, cap->len);
    }
    return 0;
}

static int no_change(void *vctx, const struct wal_page_change *c)
{
    (void)vctx, (void)c;
    FZ_CHECK(0, "a reset log handed out a change");
    return 0;
}

/* Append one transaction after the replayed tail, find exactly it again,
 * then reset the log and find nothing. */
static void roundtrip(struct wal *w, uint64_t last)
{
    static unsigned char old[FZ_PAGE], cur[FZ_PAGE], img[FZ_PAGE];
    static struct capture_ctx cap;
    memset(old, 0x11, sizeof old);
    memcpy(cur, old, sizeof cur);
    memset(cur + 8, 0x77, 24);   /* a data range */
    memset(cur + 1024, 0, 64);   /* a zero range */
    memset(cur + 4088, 0x99, 8); /* the last word */
    const uint64_t tid = 0xF0220001, pg = 7;

    wal_batch_begin(w);
    FZ_CHECK(wal_batch_page(w, tid, pg, cur, old) == 0, "wal_batch_page");
    FZ_CHECK(wal_batch_commit(w, tid) == 0, "wal_batch_commit");
    int rc = wal_batch_write(w);
    FZ_CHECK(rc == 0, "wal_batch_write: %d", rc);
    wal_close(w);

    rc = wal_open(w, dirfd_, FUZZ_STORE_ID, 0, 0);
    FZ_CHECK(rc == 0, "reopen after append: %d", rc);
    memset(&cap, 0, sizeof cap);
    uint64_t last2 = 0, txns2 = 0;
    rc = wal_replay(w, last, capture, NULL, &cap, &last2, &txns2);
    FZ_CHECK(rc == 0, "replay after append: %d", rc);
    FZ_CHECK(txns2 >= 1 && cap.seen >= 1, "appended transaction lost (txns %llu, changes %d)",
             (unsigned long long)txns2, cap.seen);
    FZ_CHECK(cap.page == pg, "first change after the old tail is page %llu, not ours", (unsigned long long)cap.page);
    FZ_CHECK(last2 == last + 2 || txns2 > 1, "commit LSN %llu, expected %llu", (unsigned long long)last2,
             (unsigned long long)(last + 2));
    memcpy(img, old, sizeof img);
    FZ_CHECK(wal_apply_ranges(img, cap.payload, cap.len) == 0 && memcmp(img, cur, sizeof img) == 0,
             "appended change does not reproduce the page");

    rc = wal_reset(w, last2 + 1);
    FZ_CHECK(rc == 0, "wal_reset: %d", rc);
    wal_close(w);
    rc = wal_open(w, dirfd_, FUZZ_STORE_ID, 0, 0);
    FZ_CHECK(rc == 0, "reopen after reset: %d", rc);
    uint64_t last3 = 0, txns3 = 1;
    rc = wal_replay(w, 0, no_change, NULL, NULL, &last3, &txns3);
    FZ_CHECK(rc == 0 && txns3 == 0 && last3 == last2, "replay after reset: rc %d, txns %llu, last %llu", rc,
             (unsigned long long)txns3, (unsigned long long)last3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (!page)
        init();
    unsigned mode = data[0] & 3;
    uint64_t after = data[0] >> 2;
    data++, size--;

    size_t n = size;
    if (mode && n < FZ_WAL_HEADER)
        n = FZ_WAL_HEADER;
    unsigned char *buf = calloc(n ? n : 1, 1);
    FZ_CHECK(buf, "out of memory");
    if (size)
        memcpy(buf, data, size);
    if (mode >= 1)
        fz_wal_seal_header(buf, FUZZ_STORE_ID, mode >= 2);
    if (mode >= 2)
        fz_wal_seal_records(buf, n, mode == 3);
    int rc = fz_write_file(dir, "wal", buf, n);
    FZ_CHECK(rc == 0, "write wal: %s", strerror(rc));
    free(buf);

    struct wal w;
    rc = wal_open(&w, dirfd_, FUZZ_STORE_ID, 0, 0);
    if (fz_debug() && rc)
        fprintf(stderr, "fuzz_wal: mode %u, %zu bytes: wal_open %d\n", mode, n, rc);
    if (rc) {
        FZ_CHECK(rc == CAIRN_CORRUPT, "wal_open returned %d", rc);
        FZ_CHECK(mode < 2, "a sealed header was refused");
        wal_close(&w);
        return 0;
    }
    FZ_CHECK(n >= FZ_WAL_HEADER, "a %zu-byte log opened", n);

    memset(page, 0xA5, FZ_PAGE);
    memset(ref, 0xA5, FZ_PAGE);
    struct apply_ctx ctx = {0};
    uint64_t last = 0, txns = 0;
    rc = wal_replay(&w, after, apply, NULL, &ctx, &last, &txns);
    FZ_CHECK(rc == 0 || rc == CAIRN_CORRUPT || rc == ENOMEM, "wal_replay returned %d", rc);
    if (fz_debug())
        fprintf(
            stderr,
            "fuzz_wal: mode %u after %llu, %zu bytes: replay %d, txns %llu, changes %llu, last LSN %llu, end %llu\n",
            mode, (unsigned long long)after, n, rc, (unsigned long long)txns, (unsigned long long)ctx.changes,
            (unsigned long long)last, (unsigned long long)w.end);
    if (rc == 0) {
        FZ_CHECK(w.end >= FZ_WAL_HEADER && w.end % 8 == 0 && w.end <= fz_pad8(n),
                 "replay left the append position at %llu in a %zu-byte log", (unsigned long long)w.end, n);
        FZ_CHECK(w.next_lsn == last + 1, "next LSN %llu after last commit %llu", (unsigned long long)w.next_lsn,
                 (unsigned long long)last);
        /* The round trip finds our transaction as the first one with an
         * LSN above last: true unless LSNs wrapped past 2^64 - 1 (in this
         * log or in our commit), which no real log reaches. */
        if (last < UINT64_MAX - 2 && w.start_lsn <= last + 1)
            roundtrip(&w, last);
    }
    wal_close(&w);
    return 0;
}
