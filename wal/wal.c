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
 * Zeros ahead.  The file is grown in chunks of zeros written ahead of the
 * records (wal_batch_write), so most commits' syncs overwrite blocks the
 * file already has and journal no size change.  A scan stops at the first
 * zero word (kind 0 is no record), so what lies past the last record
 * needs no marker.
 *
 * The log is restarted (wal_reset, wal_restart) only after a checkpoint
 * whose LMDB commit is durable; the new file (with the records after the
 * checkpoint carried over, sealed in its own chain) is written and
 * fsynced as "wal.tmp", renamed over "wal", and the directory fsynced, so
 * at every instant "wal" is either the old log or the complete new one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "cairn.h"
#include "wal.h"

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

/* Write zeros over [from, to) of fd. */
static int write_zeros(int fd, uint64_t from, uint64_t to)
{
    static const unsigned char zeros[1 << 16];
    while (from < to) {
        size_t n = to - from < sizeof zeros ? (size_t)(to - from) : sizeof zeros;
        int rc = write_all(fd, zeros, n, from);
        if (rc)
            return rc;
        from += n;
    }
    return 0;
}

static void adopt_header(struct wal *w, const struct wal_header *h)
{
    w->generation = h->generation;
    w->salt = h->salt;
    w->start_lsn = h->start_lsn;
    w->next_lsn = h->start_lsn;
    w->chain = w->header_chain = h->checksum;
    w->end = WAL_HEADER_SIZE;
    /* Records before the start are gone from this file: durable where they
     * went (LMDB), so no sync waits for them. */
    w->written_lsn = h->start_lsn - 1;
    if (w->durable_lsn < w->written_lsn)
        w->durable_lsn = w->written_lsn;
}

/* Does "wal" in dirfd name the file open as fd? */
static int is_current_log(int dirfd, int fd)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && fstatat(dirfd, "wal", &b, 0) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Copy the records at [from, w->end) of the current log into fd from
 * WAL_HEADER_SIZE on.  Each is checked against the old chain (seeded with
 * c->old, the checksum of the record before from) and sealed again in the
 * new one (seeded with c->chain); their LSNs must run from c->lsn.  On
 * return c->lsn is the next LSN, c->chain the last record's checksum and
 * c->len the bytes copied. */
static uint64_t record_sum(unsigned char *rec, size_t len, uint64_t chain);

struct carry {
    uint64_t lsn, old, chain, len;
};

static int carry_records(struct wal *w, int fd, uint64_t from, struct carry *c)
{
    enum { CHUNK = 1 << 20 }; /* whole records: one is at most a page and some headers */
    unsigned char *buf = malloc(CHUNK);
    if (!buf)
        return ENOMEM;
    int rc = 0;
    for (uint64_t at = from; rc == 0 && at < w->end;) {
        size_t want = w->end - at < CHUNK ? (size_t)(w->end - at) : CHUNK;
        ssize_t got = pread(w->fd, buf, want, (off_t)at);
        if (got <= 0) {
            rc = got < 0 ? errno : EIO;
            break;
        }
        size_t pos = 0;
        while (pos + WAL_RECORD_HEADER <= (size_t)got) {
            unsigned char *rec = buf + pos;
            struct wal_record r;
            memcpy(&r, rec, sizeof r);
            size_t size = pad8(WAL_RECORD_HEADER + (size_t)r.len);
            if (size > CHUNK / 2 || pos + size > (size_t)got)
                break; /* continued in the next chunk, or garbage (checked below) */
            if (r.lsn != c->lsn || record_sum(rec, WAL_RECORD_HEADER + r.len, c->old) != r.checksum) {
                rc = CAIRN_IOERR; /* our own records do not read back */
                break;
            }
            c->old = r.checksum;
            memset(rec + offsetof(struct wal_record, checksum), 0, 8);
            r.checksum = XXH3_64bits_withSeed(rec, WAL_RECORD_HEADER + r.len, c->chain);
            memcpy(rec + offsetof(struct wal_record, checksum), &r.checksum, 8);
            c->chain = r.checksum;
            c->lsn++;
            pos += size;
        }
        if (rc == 0 && pos == 0)
            rc = CAIRN_IOERR;
        if (rc == 0)
            rc = write_all(fd, buf, pos, WAL_HEADER_SIZE + c->len);
        c->len += pos;
        at += pos;
    }
    free(buf);
    return rc;
}

int wal_reset(struct wal *w, uint64_t start_lsn)
{
    return wal_restart(w, start_lsn, w->end, 0);
}

int wal_restart(struct wal *w, uint64_t start_lsn, uint64_t from, uint64_t from_chain)
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
    struct carry c = {.lsn = start_lsn, .old = from_chain, .chain = h.checksum};
    if (rc == 0)
        rc = carry_records(w, fd, from, &c);
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
        unlinkat(w->dirfd, "wal.tmp", 0);
        return rc;
    }
    /* From the rename on, "wal" is the new file: keep writing there, never
     * to the old, unlinked one.  A failure now means the rename may not be
     * durable: report it as CAIRN_IOERR so the store stops committing. */
    pthread_mutex_lock(&w->sync_mutex);
    while (w->syncing) /* a leader still syncing the old file */
        pthread_cond_wait(&w->sync_cond, &w->sync_mutex);
    if (w->fd >= 0)
        close(w->fd);
    w->fd = fd;
    adopt_header(w, &h);
    /* The carried records were synced with the file before its rename. */
    w->next_lsn = c.lsn;
    w->chain = c.chain;
    w->end = w->zeroed_end = WAL_HEADER_SIZE + c.len;
    w->written_lsn = c.lsn - 1;
    if (w->durable_lsn < w->written_lsn)
        w->durable_lsn = w->written_lsn;
    pthread_mutex_unlock(&w->sync_mutex);
    return rc ? CAIRN_IOERR : 0;
}

int wal_open(struct wal *w, int dirfd, const uint8_t store_id[16], int create, int readonly)
{
    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->sync_mutex = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    w->sync_cond = (pthread_cond_t)PTHREAD_COND_INITIALIZER;
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
    struct stat st;
    if (fstat(w->fd, &st) != 0)
        return errno;
    w->zeroed_end = (uint64_t)st.st_size; /* whatever lies past the records is overwritten before it is relied on */
    return 0;
}

/* Where a scan leaves the log, every record before it counts as written,
 * not as durable: a crashed writer may have left them in the page cache
 * only, and the first wal_sync (a checkpoint's, before LMDB records them)
 * makes them so. */
static void adopt_scan_end(struct wal *w)
{
    pthread_mutex_lock(&w->sync_mutex);
    w->written_lsn = w->next_lsn - 1;
    pthread_mutex_unlock(&w->sync_mutex);
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
    int rc = reserve(w, WAL_RECORD_HEADER + WAL_PAGE_HEAD + sizeof(struct wal_range) + WAL_PAGE_SIZE + 8);
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
        uint16_t rl = (uint16_t)((j - i) * 8);
        int zero = all_zero(c + i, j - i);
        struct wal_range r = {.offset = (uint16_t)(i * 8), .len_flags = rl | (zero ? WAL_RANGE_ZERO : 0)};
        memcpy(p + len, &r, sizeof r);
        len += sizeof r;
        if (!zero) {
            memcpy(p + len, c + i, rl);
            len += rl;
        }
        nranges++;
        i = j;
    }
    if (nranges == 0)
        return 0;
    struct wal_page_head head = {.page = page, .nranges = nranges};
    memcpy(p, &head, sizeof head);
    seal_record(w, at, WAL_KIND_PAGE, txn_id, len);
    w->batch_records++;
    return 0;
}

int wal_batch_commit(struct wal *w, uint64_t txn_id)
{
    struct wal_commit commit = {.records = w->batch_records};
    int rc = reserve(w, WAL_RECORD_HEADER + sizeof commit);
    if (rc)
        return rc;
    memcpy(w->buf + w->len + WAL_RECORD_HEADER, &commit, sizeof commit);
    seal_record(w, w->len, WAL_KIND_COMMIT, txn_id, sizeof commit);
    return 0;
}

int wal_batch_write(struct wal *w)
{
    uint64_t end = w->end + w->len;
    if (end > w->zeroed_end) {
        /* Zeros first, beyond the batch, then the batch: a failure (a full
         * disk) leaves nothing of the batch written.  What lies between
         * the old zeros and the batch's end is written by the batch. */
        uint64_t to = (end + WAL_ZERO_CHUNK) & ~(WAL_ZERO_CHUNK - 1);
        int rc = write_zeros(w->fd, end, to);
        if (rc)
            return rc;
        w->zeroed_end = to;
    }
    int rc = write_all(w->fd, w->buf, w->len, w->end);
    if (rc)
        return rc;
    w->end += w->len;
    w->chain = w->batch_chain;
    w->next_lsn = w->batch_lsn;
    w->len = 0;
    pthread_mutex_lock(&w->sync_mutex);
    w->written_lsn = w->next_lsn - 1;
    pthread_mutex_unlock(&w->sync_mutex);
    return 0;
}

/*
 * Group commit.  A leader takes the target (everything written so far)
 * and the descriptor under sync_mutex, syncs without it, and publishes
 * the result; batches written meanwhile wait for the next leader, which
 * is the first of their writers to find no sync running.  After a failed
 * sync the batches may be in the file and be replayed, or may vanish: the
 * outcome is unknown, never "not committed", so every waiter, and every
 * later caller, gets CAIRN_IOERR whatever errno said.
 */
int wal_sync(struct wal *w, uint64_t lsn)
{
    pthread_mutex_lock(&w->sync_mutex);
    int rc = 0;
    for (;;) {
        if (w->sync_failed) {
            rc = CAIRN_IOERR;
            break;
        }
        if (w->durable_lsn >= lsn)
            break;
        if (w->syncing) {
            pthread_cond_wait(&w->sync_cond, &w->sync_mutex);
            continue;
        }
        /* The caller's records are in the file, whether or not written
         * through wal_batch_write (recovery syncs what it is replaying). */
        uint64_t target = w->written_lsn > lsn ? w->written_lsn : lsn;
        int fd = w->fd;
        int fail = w->fail_syncs_after && w->syncs >= w->fail_syncs_after;
        w->syncing = 1;
        pthread_mutex_unlock(&w->sync_mutex);
        int bad = fd < 0 || fdatasync(fd) != 0;
        if (fail) {
            /* The test hook: a slow failing sync, so waiters pile up. */
            struct timespec ts = {0, 200 * 1000 * 1000};
            nanosleep(&ts, NULL);
            bad = 1;
        }
        pthread_mutex_lock(&w->sync_mutex);
        w->syncing = 0;
        w->syncs++;
        if (bad)
            w->sync_failed = 1;
        else if (target > w->durable_lsn)
            w->durable_lsn = target;
        pthread_cond_broadcast(&w->sync_cond);
    }
    pthread_mutex_unlock(&w->sync_mutex);
    return rc;
}

/* ---- reading it back ---- */

int wal_apply_ranges(void *page, const unsigned char *payload, size_t len)
{
    struct wal_page_head head;
    if (len < sizeof head)
        return CAIRN_CORRUPT;
    memcpy(&head, payload, sizeof head);
    size_t at = sizeof head;
    for (uint16_t i = 0; i < head.nranges; i++) {
        struct wal_range r;
        if (at + sizeof r > len)
            return CAIRN_CORRUPT;
        memcpy(&r, payload + at, sizeof r);
        at += sizeof r;
        size_t off = r.offset, rl = r.len_flags & WAL_RANGE_LEN;
        if (rl == 0 || (off & 7) || (rl & 7) || off + rl > WAL_PAGE_SIZE || (r.len_flags & WAL_RANGE_UNUSED))
            return CAIRN_CORRUPT;
        if (r.len_flags & WAL_RANGE_ZERO) {
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

/*
 * Reading the log back streams it: a window of WAL_SCAN_WINDOW bytes read
 * with pread, never the whole file.  A transaction's page records are
 * applied only once its commit record validates, so the scan remembers
 * where they are (and their checksums) and reads them again, through a
 * second window, when the commit is found.  The bytes cannot change in
 * between: a writer only appends, overwriting at most what follows its
 * last valid commit, and a reset renames a new file over "wal" without
 * touching the one open here; the checksums are compared again anyway.
 */
#define WAL_SCAN_WINDOW (1u << 20)
/* No valid record is longer (a page record with every word its own range
 * is under 7 KiB); a longer one is damage and ends the valid log. */
#define WAL_RECORD_MAX (64u << 10)

struct scan {
    int fd;
    uint64_t size; /* of the file when the scan began */
    unsigned char *buf;
    size_t cap;    /* of buf: the window, or the whole file if smaller */
    uint64_t base; /* file offset of buf[0] */
    size_t len;    /* bytes valid in buf */
};

/* Point *out at n bytes of the file at off: 0, 1 if the file ends first,
 * or an errno.  n <= WAL_RECORD_MAX. */
static int scan_at(struct scan *sc, uint64_t off, size_t n, unsigned char **out)
{
    if (off + n > sc->size)
        return 1;
    if (off < sc->base || off + n > sc->base + sc->len) {
        size_t want = sc->cap;
        if (want > sc->size - off)
            want = (size_t)(sc->size - off);
        size_t got = 0;
        while (got < want) {
            ssize_t k = pread(sc->fd, sc->buf + got, want - got, (off_t)(off + got));
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0)
                return errno;
            if (k == 0)
                break;
            got += (size_t)k;
        }
        sc->base = off;
        sc->len = got;
        if (got < n)
            return 1;
    }
    *out = sc->buf + (off - sc->base);
    return 0;
}

/* The record's checksum: over its header (checksum field zero) and
 * payload, seeded with the previous record's. */
static uint64_t record_sum(unsigned char *rec, size_t len, uint64_t chain)
{
    uint64_t sum;
    memcpy(&sum, rec + offsetof(struct wal_record, checksum), 8);
    memset(rec + offsetof(struct wal_record, checksum), 0, 8);
    uint64_t want = XXH3_64bits_withSeed(rec, len, chain);
    memcpy(rec + offsetof(struct wal_record, checksum), &sum, 8);
    return want;
}

/* A page record of the transaction being read: where, and its chain. */
struct pending_page {
    uint64_t at, chain_before, sum;
};

/* Apply the page records of a transaction whose commit validated. */
static int apply_pending(struct scan *sc, const struct pending_page *pend, size_t n, wal_apply_fn apply, void *ctx)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char *rec;
        struct wal_record pr;
        int rc = scan_at(sc, pend[i].at, WAL_RECORD_HEADER, &rec);
        if (rc == 0) {
            memcpy(&pr, rec, sizeof pr);
            rc = pr.len <= WAL_RECORD_MAX - WAL_RECORD_HEADER
                     ? scan_at(sc, pend[i].at, WAL_RECORD_HEADER + pr.len, &rec)
                     : 1;
        }
        if (rc == 0 && record_sum(rec, WAL_RECORD_HEADER + pr.len, pend[i].chain_before) != pend[i].sum)
            rc = 1;
        if (rc)
            return rc == 1 ? CAIRN_IOERR : rc; /* the file changed under us */
        struct wal_page_change c = {.lsn = pr.lsn, .txn_id = pr.txn_id};
        c.payload = rec + WAL_RECORD_HEADER;
        c.len = pr.len;
        memcpy(&c.page, c.payload + offsetof(struct wal_page_head, page), sizeof c.page);
        if ((rc = apply(ctx, &c)) != 0)
            return rc;
    }
    return 0;
}

/* The scan, from the record at `from` (LSN lsn, chain the checksum
 * before it). */
static int scan_from(struct wal *w, uint64_t from, uint64_t chain, uint64_t lsn, uint64_t after, wal_apply_fn apply,
                     wal_commit_fn committed, void *ctx, uint64_t *last_lsn, uint64_t *txns)
{
    struct stat st;
    if (fstat(w->fd, &st) != 0)
        return errno;
    size_t window = (uint64_t)st.st_size < WAL_SCAN_WINDOW ? (size_t)st.st_size + 1 : WAL_SCAN_WINDOW;
    struct scan sc = {.fd = w->fd, .size = (uint64_t)st.st_size, .cap = window}, again = sc;
    sc.buf = malloc(window);
    again.buf = malloc(window);
    struct pending_page *pend = NULL;
    size_t npend = 0, cap = 0;
    int rc = sc.buf && again.buf ? 0 : ENOMEM;
    uint64_t txn = 0;
    uint64_t good_end = from, good_chain = chain, good_lsn = lsn;
    *last_lsn = lsn - 1;
    *txns = 0;
    for (uint64_t at = from; rc == 0;) {
        unsigned char *rec;
        struct wal_record r;
        int end = scan_at(&sc, at, WAL_RECORD_HEADER, &rec);
        if (end) {
            rc = end == 1 ? 0 : end;
            break;
        }
        memcpy(&r, rec, sizeof r);
        if ((r.kind != WAL_KIND_PAGE && r.kind != WAL_KIND_COMMIT) || r.len > WAL_RECORD_MAX - WAL_RECORD_HEADER ||
            r.lsn != lsn)
            break;
        if ((end = scan_at(&sc, at, WAL_RECORD_HEADER + r.len, &rec)) != 0) {
            rc = end == 1 ? 0 : end;
            break;
        }
        uint64_t sum = record_sum(rec, WAL_RECORD_HEADER + r.len, chain);
        if (sum != r.checksum)
            break;
        if (npend == 0)
            txn = r.txn_id;
        if (r.txn_id != txn)
            break;
        if (r.kind == WAL_KIND_PAGE) {
            if (r.len < WAL_PAGE_HEAD)
                break;
            if (npend == cap) {
                cap = cap ? cap * 2 : 256;
                struct pending_page *np = realloc(pend, cap * sizeof *np);
                if (!np) {
                    rc = ENOMEM;
                    break;
                }
                pend = np;
            }
            pend[npend++] = (struct pending_page){at, chain, sum};
        } else {
            struct wal_commit commit;
            if (r.len != sizeof commit)
                break;
            memcpy(&commit, rec + WAL_RECORD_HEADER, sizeof commit);
            if (commit.records != npend)
                break;
            if (r.lsn > after) {
                rc = apply_pending(&again, pend, npend, apply, ctx);
                if (rc == 0 && committed)
                    rc = committed(ctx, r.lsn);
                if (rc)
                    break;
                ++*txns;
            }
            *last_lsn = r.lsn;
            npend = 0;
            good_end = pad8(at + WAL_RECORD_HEADER + r.len);
            good_chain = sum;
            good_lsn = lsn + 1;
        }
        chain = sum;
        lsn++;
        at = pad8(at + WAL_RECORD_HEADER + r.len);
    }
    if (rc == 0) {
        w->end = good_end;
        w->chain = good_chain;
        w->next_lsn = good_lsn;
        adopt_scan_end(w);
    }
    free(pend);
    free(sc.buf);
    free(again.buf);
    return rc;
}

int wal_replay(struct wal *w, uint64_t after, wal_apply_fn apply, wal_commit_fn committed, void *ctx,
               uint64_t *last_lsn, uint64_t *txns)
{
    return scan_from(w, WAL_HEADER_SIZE, w->header_chain, w->start_lsn, after, apply, committed, ctx, last_lsn, txns);
}

int wal_replay_more(struct wal *w, wal_apply_fn apply, wal_commit_fn committed, void *ctx, uint64_t *last_lsn,
                    uint64_t *txns)
{
    return scan_from(w, w->end, w->chain, w->next_lsn, 0, apply, committed, ctx, last_lsn, txns);
}
