/*
 * wal.c - the write-ahead log file, "wal" in the store directory.
 *
 * File format (version 1; all integers little-endian)
 * ---------------------------------------------------
 * Header, 64 bytes at offset 0:
 *   0   8  magic "CAIRNWAL"
 *   8   4  format version, 1
 *   12  4  page size, 4096
 *   16  16 store id (must equal the store id in the LMDB catalog)
 *   32  8  generation: +1 each time the log is reset
 *   40  8  start LSN: LSN of the first record of this generation
 *   48  8  salt: random, new at every reset
 *   56  8  XXH3-64 of bytes 0..55, seed 0
 * Records follow from offset 64, each 8-byte aligned:
 *   0   4  kind: 0xCA1E0001 page change, 0xCA1E0002 commit
 *   4   4  payload length in bytes (the record is padded with zeros to
 *          a multiple of 8 after the payload; padding is not checksummed)
 *   8   8  LSN: start LSN for the first record, then +1 per record
 *   16  8  transaction id
 *   24  8  checksum: XXH3-64 of the 32-byte record header (with this field
 *          zero) followed by the payload, seeded with the checksum of the
 *          previous record; the first record is seeded with the header's
 *          checksum.  So the chain covers every byte before it, and a reset
 *          (new salt -> new header checksum) makes stale records invalid.
 *   32  .. payload
 * Page-change payload:
 *   0   8  page number
 *   8   2  number of ranges
 *   10  6  zero
 *   16  .. ranges: offset (2 bytes), length (2 bytes; bit 15 set = the
 *          range is all zero bytes and no data follows; low 13 bits the
 *          length, 1..4096), then the bytes.  Offsets and lengths are
 *          multiples of 8 and within the page.  Bytes are unswizzled.
 * Commit payload:
 *   0   8  number of page-change records in the transaction
 *
 * Validity rule.  A record is valid if its kind is known, it lies wholly
 * inside the file, its LSN is the expected next one and its checksum
 * matches.  Recovery reads records in order, stops at the first invalid
 * one, and applies a transaction's page changes only when its commit
 * record is valid, carries the same transaction id, and counts exactly
 * the records seen.  Everything after the last valid commit is ignored
 * (and overwritten by the next append).
 *
 * The log is reset (wal_reset) only after a checkpoint whose LMDB commit
 * is durable; the new file is written and fsynced as "wal.tmp", renamed
 * over "wal", and the directory fsynced, so at every instant "wal" is
 * either the old log or the complete new one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "cairn.h"
#include "wal.h"

#define WAL_MAGIC "CAIRNWAL"
#define WAL_VERSION 1
#define WAL_KIND_PAGE 0xCA1E0001u
#define WAL_KIND_COMMIT 0xCA1E0002u
#define WAL_PAGE_SIZE 4096
#define WAL_PAGE_HEAD 16
#define RANGE_ZERO 0x8000u

struct wal_header {
    char magic[8];
    uint32_t version;
    uint32_t page_size;
    uint8_t store_id[16];
    uint64_t generation;
    uint64_t start_lsn;
    uint64_t salt;
    uint64_t checksum;
};
_Static_assert(sizeof(struct wal_header) == WAL_HEADER_SIZE, "wal header");

struct wal_record {
    uint32_t kind;
    uint32_t len;
    uint64_t lsn;
    uint64_t txn_id;
    uint64_t checksum;
};
_Static_assert(sizeof(struct wal_record) == WAL_RECORD_HEADER, "wal record");

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static uint64_t header_checksum(const struct wal_header *h)
{
    return XXH3_64bits(h, offsetof(struct wal_header, checksum));
}

static int write_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const char *p = buf;
    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (n == 0)
            return EIO;
        p += n, len -= (size_t)n, off += (uint64_t)n;
    }
    return 0;
}

static void adopt_header(struct wal *w, const struct wal_header *h)
{
    w->generation = h->generation;
    w->salt = h->salt;
    w->start_lsn = h->start_lsn;
    w->next_lsn = h->start_lsn;
    w->chain = h->checksum;
    w->end = WAL_HEADER_SIZE;
}

/* Does "wal" in dirfd name the file open as fd? */
static int is_current_log(int dirfd, int fd)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && fstatat(dirfd, "wal", &b, 0) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int wal_reset(struct wal *w, uint64_t start_lsn)
{
    struct wal_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, WAL_MAGIC, 8);
    h.version = WAL_VERSION;
    h.page_size = WAL_PAGE_SIZE;
    memcpy(h.store_id, w->store_id, 16);
    h.generation = w->generation + 1;
    h.start_lsn = start_lsn;
    if (getrandom(&h.salt, sizeof h.salt, 0) != sizeof h.salt)
        h.salt = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)&h;
    h.checksum = header_checksum(&h);

    int fd = openat(w->dirfd, "wal.tmp", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    int rc = write_all(fd, &h, sizeof h, 0);
    if (rc == 0 && fdatasync(fd) != 0)
        rc = errno;
    int renamed = 0;
    if (rc == 0) {
        if (renameat(w->dirfd, "wal.tmp", w->dirfd, "wal") == 0) {
            renamed = 1;
        } else {
            rc = errno;
            renamed = is_current_log(w->dirfd, fd); /* failed, yet done? */
        }
    }
    if (renamed && fsync(w->dirfd) != 0 && rc == 0)
        rc = errno;
    if (!renamed) {
        /* "wal" is still the old log, intact: nothing changed. */
        close(fd);
        return rc;
    }
    /* From the rename on, "wal" is the new file: keep writing there, never
     * to the old, unlinked one.  A failure now means the rename may not be
     * durable: report it as CAIRN_IOERR so the store stops committing. */
    if (w->fd >= 0)
        close(w->fd);
    w->fd = fd;
    adopt_header(w, &h);
    return rc ? CAIRN_IOERR : 0;
}

int wal_open(struct wal *w, int dirfd, const uint8_t store_id[16], int create, int readonly)
{
    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->dirfd = dirfd;
    memcpy(w->store_id, store_id, 16);
    if (create)
        return wal_reset(w, 1);

    w->fd = openat(dirfd, "wal", (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (w->fd < 0)
        return errno;
    struct wal_header h;
    size_t got = 0;
    while (got < sizeof h) {
        ssize_t n = pread(w->fd, (char *)&h + got, sizeof h - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        if (n == 0)
            break; /* end of file: a short header is damage */
        got += (size_t)n;
    }
    if (got != sizeof h || memcmp(h.magic, WAL_MAGIC, 8) != 0 || h.version != WAL_VERSION ||
        h.page_size != WAL_PAGE_SIZE || h.checksum != header_checksum(&h))
        return CAIRN_CORRUPT;
    if (memcmp(h.store_id, store_id, 16) != 0) {
        w->foreign = 1; /* a log from another store: never replayed */
        memcpy(w->store_id, h.store_id, 16);
        return CAIRN_CORRUPT;
    }
    adopt_header(w, &h);
    return 0;
}

int wal_probe(int dirfd)
{
    struct wal_header h;
    struct stat st;
    int fd = openat(dirfd, "wal", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int kind = -1;
    if (fstat(fd, &st) == 0 && pread(fd, &h, sizeof h, 0) == sizeof h && memcmp(h.magic, WAL_MAGIC, 8) == 0)
        kind = st.st_size == WAL_HEADER_SIZE && h.version == WAL_VERSION && h.checksum == header_checksum(&h) &&
               h.generation == 1 && h.start_lsn == 1;
    close(fd);
    return kind;
}

void wal_close(struct wal *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

/* ---- building a transaction ---- */

static int reserve(struct wal *w, size_t more)
{
    if (w->len + more <= w->cap)
        return 0;
    size_t cap = w->cap ? w->cap : 65536;
    while (cap < w->len + more)
        cap *= 2;
    unsigned char *b = realloc(w->buf, cap);
    if (!b)
        return ENOMEM;
    w->buf = b;
    w->cap = cap;
    return 0;
}

/* Seal the record starting at w->buf + at with payload length len. */
static void seal_record(struct wal *w, size_t at, uint32_t kind, uint64_t txn_id, size_t len)
{
    struct wal_record r = {.kind = kind, .len = (uint32_t)len, .lsn = w->batch_lsn++, .txn_id = txn_id};
    memcpy(w->buf + at, &r, sizeof r);
    r.checksum = XXH3_64bits_withSeed(w->buf + at, WAL_RECORD_HEADER + len, w->batch_chain);
    memcpy(w->buf + at, &r, sizeof r);
    w->batch_chain = r.checksum;
    size_t end = at + WAL_RECORD_HEADER + len;
    memset(w->buf + end, 0, pad8(end) - end);
    w->len = pad8(end);
}

void wal_batch_begin(struct wal *w)
{
    w->len = 0;
    w->batch_chain = w->chain;
    w->batch_lsn = w->next_lsn;
    w->batch_records = 0;
}

static int all_zero(const uint64_t *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (w[i])
            return 0;
    return 1;
}

/* Log the words of cur that differ from old, as ranges. Nothing if equal. */
int wal_batch_page(struct wal *w, uint64_t txn_id, uint64_t page, const void *cur, const void *old)
{
    const uint64_t *c = cur, *o = old;
    const size_t words = WAL_PAGE_SIZE / 8;
    /* Worst case: alternate words differ (256 ranges of 12 bytes) or the whole page. */
    int rc = reserve(w, WAL_RECORD_HEADER + WAL_PAGE_HEAD + 4 + WAL_PAGE_SIZE + 8);
    if (rc)
        return rc;
    size_t at = w->len;
    unsigned char *p = w->buf + at + WAL_RECORD_HEADER;
    size_t len = WAL_PAGE_HEAD;
    uint16_t nranges = 0;
    for (size_t i = 0; i < words;) {
        if (c[i] == o[i]) {
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < words && c[j] != o[j])
            j++;
        uint16_t off = (uint16_t)(i * 8), rl = (uint16_t)((j - i) * 8);
        int zero = all_zero(c + i, j - i);
        uint16_t lf = rl | (zero ? RANGE_ZERO : 0);
        memcpy(p + len, &off, 2);
        memcpy(p + len + 2, &lf, 2);
        len += 4;
        if (!zero) {
            memcpy(p + len, c + i, rl);
            len += rl;
        }
        nranges++;
        i = j;
    }
    if (nranges == 0)
        return 0;
    memset(p, 0, WAL_PAGE_HEAD);
    memcpy(p, &page, 8);
    memcpy(p + 8, &nranges, 2);
    seal_record(w, at, WAL_KIND_PAGE, txn_id, len);
    w->batch_records++;
    return 0;
}

int wal_batch_commit(struct wal *w, uint64_t txn_id)
{
    int rc = reserve(w, WAL_RECORD_HEADER + 8);
    if (rc)
        return rc;
    uint64_t n = w->batch_records;
    memcpy(w->buf + w->len + WAL_RECORD_HEADER, &n, 8);
    seal_record(w, w->len, WAL_KIND_COMMIT, txn_id, 8);
    return 0;
}

int wal_batch_write(struct wal *w, int sync)
{
    int rc = write_all(w->fd, w->buf, w->len, w->end);
    if (rc)
        return rc;
    /* After a failed sync the whole batch may be in the file and be
     * replayed, or may vanish: the outcome is unknown, never "not
     * committed", so this is CAIRN_IOERR whatever errno said. */
    if (sync && fdatasync(w->fd) != 0)
        return CAIRN_IOERR;
    w->end += w->len;
    w->chain = w->batch_chain;
    w->next_lsn = w->batch_lsn;
    w->len = 0;
    return 0;
}

/* ---- reading it back ---- */

int wal_apply_ranges(void *page, const unsigned char *payload, size_t len)
{
    uint16_t nranges;
    if (len < WAL_PAGE_HEAD)
        return CAIRN_CORRUPT;
    memcpy(&nranges, payload + 8, 2);
    size_t at = WAL_PAGE_HEAD;
    for (uint16_t r = 0; r < nranges; r++) {
        uint16_t off, lf;
        if (at + 4 > len)
            return CAIRN_CORRUPT;
        memcpy(&off, payload + at, 2);
        memcpy(&lf, payload + at + 2, 2);
        at += 4;
        size_t rl = lf & 0x1fff;
        if (rl == 0 || (off & 7) || (rl & 7) || (size_t)off + rl > WAL_PAGE_SIZE || (lf & 0x6000))
            return CAIRN_CORRUPT;
        if (lf & RANGE_ZERO) {
            memset((char *)page + off, 0, rl);
        } else {
            if (at + rl > len)
                return CAIRN_CORRUPT;
            memcpy((char *)page + off, payload + at, rl);
            at += rl;
        }
    }
    return at == len ? 0 : CAIRN_CORRUPT;
}

int wal_replay(struct wal *w, uint64_t after, wal_apply_fn apply, wal_commit_fn committed, void *ctx,
               uint64_t *last_lsn, uint64_t *txns)
{
    struct stat st;
    if (fstat(w->fd, &st) != 0)
        return errno;
    size_t size = (size_t)st.st_size;
    if (size <= WAL_HEADER_SIZE)
        size = 0; /* nothing after the header */
    unsigned char *buf = size ? malloc(size) : NULL;
    if (size && !buf)
        return ENOMEM;
    size_t got = 0;
    while (got < size) {
        ssize_t n = pread(w->fd, buf + got, size - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            return n < 0 ? errno : EIO;
        }
        got += (size_t)n;
    }

    /* Offsets of the page records of the transaction being read. */
    size_t *pending = NULL, npending = 0, cap = 0;
    uint64_t chain = w->chain, lsn = w->start_lsn, txn = 0;
    uint64_t good_end = WAL_HEADER_SIZE, good_chain = chain, good_lsn = lsn;
    int rc = 0;
    *last_lsn = w->start_lsn - 1;
    *txns = 0;
    size_t at = WAL_HEADER_SIZE;
    while (at + WAL_RECORD_HEADER <= size) {
        struct wal_record r;
        memcpy(&r, buf + at, sizeof r);
        if ((r.kind != WAL_KIND_PAGE && r.kind != WAL_KIND_COMMIT) || r.len > size - at - WAL_RECORD_HEADER ||
            r.lsn != lsn)
            break;
        uint64_t sum = r.checksum;
        memset(buf + at + 24, 0, 8);
        uint64_t want = XXH3_64bits_withSeed(buf + at, WAL_RECORD_HEADER + r.len, chain);
        memcpy(buf + at + 24, &sum, 8);
        if (want != sum)
            break;
        if (npending == 0)
            txn = r.txn_id;
        if (r.txn_id != txn)
            break;
        chain = sum;
        lsn++;
        if (r.kind == WAL_KIND_PAGE) {
            if (r.len < WAL_PAGE_HEAD)
                break;
            if (npending == cap) {
                cap = cap ? cap * 2 : 256;
                size_t *np = realloc(pending, cap * sizeof *np);
                if (!np) {
                    rc = ENOMEM;
                    goto out;
                }
                pending = np;
            }
            pending[npending++] = at;
        } else {
            uint64_t count;
            if (r.len != 8)
                break;
            memcpy(&count, buf + at + WAL_RECORD_HEADER, 8);
            if (count != npending)
                break;
            if (r.lsn > after) {
                for (size_t i = 0; i < npending; i++) {
                    struct wal_record pr;
                    memcpy(&pr, buf + pending[i], sizeof pr);
                    struct wal_page_change c = {.lsn = pr.lsn, .txn_id = pr.txn_id};
                    c.payload = buf + pending[i] + WAL_RECORD_HEADER;
                    c.len = pr.len;
                    memcpy(&c.page, c.payload, 8);
                    rc = apply(ctx, &c);
                    if (rc)
                        goto out;
                }
                if (committed && (rc = committed(ctx, r.lsn)) != 0)
                    goto out;
                ++*txns;
            }
            *last_lsn = r.lsn;
            npending = 0;
            good_end = pad8(at + WAL_RECORD_HEADER + r.len);
            good_chain = chain;
            good_lsn = lsn;
        }
        at = pad8(at + WAL_RECORD_HEADER + r.len);
    }
    w->end = good_end;
    w->chain = good_chain;
    w->next_lsn = good_lsn;
out:
    free(pending);
    free(buf);
    return rc;
}
