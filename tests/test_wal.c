/*
 * test_wal.c - unit tests of the write-ahead log (wal/wal.c) through its
 * internal API, on a temporary directory.
 *
 * Each test writes transactions with wal_batch_*, then opens the log again
 * in a fresh struct wal and replays it, collecting the page changes the
 * replay hands out.  A model of what was written (the old and new image of
 * every page) says what the replay must give: the changes of exactly the
 * expected transactions, in order, each of which turns the old image into
 * the new one under wal_apply_ranges.
 */
#define _GNU_SOURCE
#include "testutil.h"
#include "splitmix.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "wal/wal.h"

#define PG 4096
#define PG_WORDS (PG / 8)
#define KIND_PAGE 0xCA1E0001u
#define KIND_COMMIT 0xCA1E0002u
#define RANGE_ZERO 0x8000u
#define MAX_PAGES 8

static const uint8_t ID_A[16] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
                                 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01};
static const uint8_t ID_B[16] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
                                 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x02};

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* ---- deterministic random numbers ---- */

static uint64_t rng_state = 0x243F6A8885A308D3ull;

static uint64_t rnd(void)
{
    return tu_splitmix64(&rng_state);
}

/* Every word random and nonzero. */
static void rnd_page(unsigned char *p)
{
    for (size_t i = 0; i < PG_WORDS; i++) {
        uint64_t v = rnd() | 1;
        memcpy(p + i * 8, &v, 8);
    }
}

static uint64_t word_get(const unsigned char *p, size_t i)
{
    uint64_t v;
    memcpy(&v, p + i * 8, 8);
    return v;
}

static void word_set(unsigned char *p, size_t i, uint64_t v)
{
    memcpy(p + i * 8, &v, 8);
}

/* ---- the log's directory ---- */

/* The fixture's directory (path), or one of the test's own (path NULL). */
struct tdir {
    char *made;
    int fd;
};

static void tdir_open(struct tdir *d, const char *path)
{
    d->made = path ? NULL : tu_tempdir();
    d->fd = open(path ? path : d->made, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(d->fd >= 0);
}

static void tdir_close(struct tdir *d)
{
    close(d->fd);
    tu_rmdir(d->made);
}

static unsigned char *file_read(int dirfd, const char *name, size_t *len);

/* The log's bytes up to end (its records), after checking that the rest
 * of the file is zeros written ahead, up to a chunk boundary. */
static unsigned char *log_read(int dirfd, uint64_t end, size_t *len)
{
    unsigned char *f = file_read(dirfd, "wal", len);
    assert_true(*len >= end);
    if (*len > end)
        assert_int_equal(*len % WAL_ZERO_CHUNK, 0);
    for (size_t i = end; i < *len; i++)
        if (f[i])
            fail_msg("byte %zu past the records (which end at %llu) is %#x, not zero", i, (unsigned long long)end,
                     f[i]);
    *len = end;
    return f;
}

static unsigned char *file_read(int dirfd, const char *name, size_t *len)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    unsigned char *buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    close(fd);
    *len = got;
    return buf;
}

static void file_write(int dirfd, const char *name, const void *buf, size_t len)
{
    /* No O_TRUNC: truncating to zero makes ext4 flush on close, and the
     * tests below rewrite the log thousands of times. */
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)done);
        assert_true(n > 0);
        done += (size_t)n;
    }
    assert_int_equal(ftruncate(fd, (off_t)len), 0);
    close(fd);
}

static off_t file_size(int dirfd, const char *name)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, 0) != 0)
        return -1;
    return st.st_size;
}

/* ---- the model of what was written ---- */

struct pchg {
    uint64_t page;
    unsigned char old[PG], cur[PG];
};

struct mtxn {
    uint64_t id;
    struct pchg pg[MAX_PAGES];
    size_t n;
    /* Filled by write_txn. */
    size_t nrec;         /* page records written (changed pages) */
    uint64_t first_lsn;  /* LSN of its first record */
    uint64_t commit_lsn; /* LSN of its commit record */
    uint64_t start, end; /* file offsets */
};

static struct mtxn *mtxn_new(uint64_t id)
{
    struct mtxn *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->id = id;
    return t;
}

static struct pchg *mtxn_page(struct mtxn *t, uint64_t page)
{
    assert_true(t->n < MAX_PAGES);
    struct pchg *c = &t->pg[t->n++];
    c->page = page;
    return c;
}

static int page_changed(const struct pchg *c)
{
    return memcmp(c->old, c->cur, PG) != 0;
}

/* A transaction of n pages with random old images and random sparse
 * changes: runs of changed words, some set to zero. */
static struct mtxn *mtxn_random(uint64_t id, size_t n)
{
    struct mtxn *t = mtxn_new(id);
    for (size_t i = 0; i < n; i++) {
        struct pchg *c = mtxn_page(t, rnd() % 100000);
        if (rnd() % 4 == 0)
            memset(c->old, 0, PG);
        else
            rnd_page(c->old);
        memcpy(c->cur, c->old, PG);
        /* Mostly changed pages; now and then an unchanged one. */
        size_t runs = rnd() % 8 == 0 ? 0 : 1 + rnd() % 12;
        for (size_t r = 0; r < runs; r++) {
            size_t at = rnd() % PG_WORDS, len = 1 + rnd() % (rnd() % 3 == 0 ? 300 : 8);
            int zero = rnd() % 3 == 0;
            for (size_t w = at; w < at + len && w < PG_WORDS; w++)
                word_set(c->cur, w, zero ? 0 : (rnd() | 1));
        }
        if (runs && !page_changed(c))
            word_set(c->cur, 0, word_get(c->old, 0) + 1);
    }
    return t;
}

/* Build and write t; commit selects whether the commit record is added. */
static void write_txn(struct wal *w, struct mtxn *t, int commit)
{
    wal_batch_begin(w);
    t->nrec = 0;
    for (size_t i = 0; i < t->n; i++) {
        size_t len_before = w->len;
        uint32_t recs_before = w->batch_records;
        assert_cairn_ok(wal_batch_page(w, t->id, t->pg[i].page, t->pg[i].cur, t->pg[i].old));
        if (page_changed(&t->pg[i])) {
            assert_int_equal(w->batch_records, recs_before + 1);
            assert_true(w->len > len_before);
            t->nrec++;
        } else {
            /* An unchanged page gives no record at all. */
            assert_int_equal(w->batch_records, recs_before);
            assert_int_equal(w->len, len_before);
        }
    }
    if (commit)
        assert_cairn_ok(wal_batch_commit(w, t->id));
    t->start = w->end;
    t->first_lsn = w->next_lsn;
    assert_int_equal(w->len % 8, 0);
    size_t len = w->len;
    assert_cairn_ok(wal_batch_write(w));
    assert_int_equal(w->end, t->start + len);
    assert_int_equal(w->next_lsn, t->first_lsn + t->nrec + (commit ? 1 : 0));
    t->end = w->end;
    t->commit_lsn = commit ? w->next_lsn - 1 : 0;
    assert_true(file_size(w->dirfd, "wal") >= (off_t)w->end); /* a torn tail may lie beyond */
}

/* ---- collecting what replay hands out ---- */

struct chg {
    uint64_t lsn, txn, page;
    unsigned char *payload;
    size_t len;
};

struct coll {
    struct chg *v;
    size_t n, cap;
};

static int collect(void *ctx, const struct wal_page_change *c)
{
    struct coll *cl = ctx;
    if (cl->n == cl->cap) {
        cl->cap = cl->cap ? cl->cap * 2 : 64;
        cl->v = realloc(cl->v, cl->cap * sizeof *cl->v);
        if (!cl->v)
            abort();
    }
    struct chg *d = &cl->v[cl->n++];
    d->lsn = c->lsn;
    d->txn = c->txn_id;
    d->page = c->page;
    d->len = c->len;
    d->payload = malloc(c->len ? c->len : 1);
    if (!d->payload)
        abort();
    memcpy(d->payload, c->payload, c->len);
    return 0;
}

static void coll_free(struct coll *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i].payload);
    free(c->v);
    memset(c, 0, sizeof *c);
}

/*
 * Open the log afresh and replay it with `after`: exactly the transactions
 * want[0..nwant) must be applied, in order, each page change turning the
 * old image into the new one.  last_lsn must be want_last, the log must be
 * positioned at want_end.  If out is given, the changes are left there.
 */
static void expect_replay(int dirfd, const uint8_t *id, uint64_t after, struct mtxn **want, size_t nwant,
                          uint64_t want_last, uint64_t want_end, struct coll *out)
{
    struct wal w;
    int rc = wal_open(&w, dirfd, id, 0, 0);
    if (rc != 0) {
        wal_close(&w);
        fail_msg("wal_open: %d (%s)", rc, cairn_strerror(rc));
    }
    struct coll c = {0};
    uint64_t last = 12345, ntx = 12345;
    assert_cairn_ok(wal_replay(&w, after, collect, NULL, &c, &last, &ntx));
    assert_int_equal(ntx, nwant);
    assert_int_equal(last, want_last);
    assert_int_equal(w.end, want_end);
    assert_int_equal(w.next_lsn, want_last + 1);
    size_t k = 0;
    unsigned char *img = malloc(PG);
    assert_non_null(img);
    uint64_t prev_lsn = 0;
    for (size_t t = 0; t < nwant; t++) {
        for (size_t i = 0; i < want[t]->n; i++) {
            const struct pchg *p = &want[t]->pg[i];
            if (!page_changed(p))
                continue;
            if (k >= c.n)
                fail_msg("replay gave %zu changes, more expected (txn %llu page %llu)", c.n,
                         (unsigned long long)want[t]->id, (unsigned long long)p->page);
            const struct chg *d = &c.v[k++];
            assert_int_equal(d->txn, want[t]->id);
            assert_int_equal(d->page, p->page);
            assert_true(d->lsn >= want[t]->first_lsn && d->lsn < want[t]->commit_lsn);
            assert_true(d->lsn > prev_lsn);
            prev_lsn = d->lsn;
            uint64_t pn;
            memcpy(&pn, d->payload, 8);
            assert_int_equal(pn, p->page);
            memcpy(img, p->old, PG);
            assert_cairn_ok(wal_apply_ranges(img, d->payload, d->len));
            if (memcmp(img, p->cur, PG) != 0)
                fail_msg("txn %llu page %llu: applying the logged change does not give the new image",
                         (unsigned long long)want[t]->id, (unsigned long long)p->page);
        }
    }
    if (k != c.n)
        fail_msg("replay gave %zu changes, %zu expected", c.n, k);
    free(img);
    wal_close(&w);
    if (out)
        *out = c;
    else
        coll_free(&c);
}

static struct wal new_log(int dirfd, const uint8_t *id)
{
    struct wal w;
    int rc = wal_open(&w, dirfd, id, 1, 0);
    if (rc)
        fail_msg("wal_open(create): %d (%s)", rc, cairn_strerror(rc));
    assert_int_equal(w.end, WAL_HEADER_SIZE);
    assert_int_equal(w.next_lsn, 1);
    assert_int_equal(file_size(dirfd, "wal"), WAL_HEADER_SIZE);
    return w;
}

/* ---- tests ---- */

static void diffs_roundtrip(void **state)
{
    struct tdir d;
    tdir_open(&d, *state);
    struct wal w = new_log(d.fd, ID_A);
    struct pchg *c;

    /* T1: one word, alternate words, whole page, first and last word. */
    struct mtxn *t1 = mtxn_new(11);
    c = mtxn_page(t1, 5);
    rnd_page(c->old);
    memcpy(c->cur, c->old, PG);
    word_set(c->cur, 17, word_get(c->old, 17) ^ 0xff00);
    c = mtxn_page(t1, 77);
    rnd_page(c->old);
    memcpy(c->cur, c->old, PG);
    for (size_t i = 0; i < PG_WORDS; i += 2)
        word_set(c->cur, i, word_get(c->old, i) + 2);
    c = mtxn_page(t1, 1000);
    rnd_page(c->old);
    for (size_t i = 0; i < PG_WORDS; i++)
        word_set(c->cur, i, ~word_get(c->old, i) | 1);
    c = mtxn_page(t1, 6);
    rnd_page(c->old);
    memcpy(c->cur, c->old, PG);
    word_set(c->cur, 0, 1);
    word_set(c->cur, PG_WORDS - 1, 2);

    /* T2: all zero, mixed zero ranges, unchanged, a run mixing zero and nonzero words. */
    struct mtxn *t2 = mtxn_new(12);
    c = mtxn_page(t2, 3);
    rnd_page(c->old);
    memset(c->cur, 0, PG);
    c = mtxn_page(t2, 123456);
    rnd_page(c->old);
    memcpy(c->cur, c->old, PG);
    for (size_t i = 0; i < 10; i++)
        word_set(c->cur, i, 0);
    word_set(c->cur, 100, 7);
    for (size_t i = 200; i < 300; i++)
        word_set(c->cur, i, 0);
    word_set(c->cur, PG_WORDS - 1, 9);
    c = mtxn_page(t2, 42);
    rnd_page(c->old);
    memcpy(c->cur, c->old, PG);
    c = mtxn_page(t2, 9);
    rnd_page(c->old);
    memcpy(c->cur, c->old, PG);
    for (size_t i = 50; i < 60; i++)
        word_set(c->cur, i, (i & 1) ? word_get(c->old, i) + 1 : 0);

    /* T3: fresh pages (old all zero). */
    struct mtxn *t3 = mtxn_new(13);
    c = mtxn_page(t3, 10);
    memset(c->old, 0, PG);
    rnd_page(c->cur);
    c = mtxn_page(t3, 11);
    memset(c->old, 0, PG);
    memset(c->cur, 0, PG);
    for (size_t i = 0; i < 4; i++)
        word_set(c->cur, i, 100 + i);

    /* T4: only an unchanged page: a commit record and nothing else. */
    struct mtxn *t4 = mtxn_new(14);
    c = mtxn_page(t4, 8);
    rnd_page(c->old);
    memcpy(c->cur, c->old, PG);

    write_txn(&w, t1, 1);
    write_txn(&w, t2, 1);
    write_txn(&w, t3, 1);
    write_txn(&w, t4, 1);
    assert_int_equal(t1->nrec, 4);
    assert_int_equal(t2->nrec, 3);
    assert_int_equal(t3->nrec, 2);
    assert_int_equal(t4->nrec, 0);
    wal_close(&w);

    struct mtxn *all[] = {t1, t2, t3, t4};
    struct coll got;
    expect_replay(d.fd, ID_A, 0, all, 4, t4->commit_lsn, t4->end, &got);
    assert_int_equal(got.n, 9);

    /* Payload sizes: the encoding is as documented (zero ranges carry no bytes). */
    static const struct {
        uint64_t page;
        size_t len;
    } sizes[] = {
        {5, 16 + 4 + 8},       /* one word */
        {77, 16 + 256 * 12},   /* alternate words */
        {1000, 16 + 4 + 4096}, /* whole page */
        {6, 16 + 2 * 12},      /* first and last word */
        {3, 16 + 4},           /* whole page zeroed: one zero range */
        {123456, 16 + 4 + 12 + 4 + 12},
        {9, 16 + 4 + 80}, /* a changed run with zeros inside is not a zero range */
        {10, 16 + 4 + 4096},
        {11, 16 + 4 + 32},
    };
    size_t expect_file = WAL_HEADER_SIZE + 4 * (WAL_RECORD_HEADER + 8);
    for (size_t i = 0; i < got.n; i++) {
        assert_int_equal(got.v[i].page, sizes[i].page);
        assert_int_equal(got.v[i].len, sizes[i].len);
        expect_file += pad8(WAL_RECORD_HEADER + sizes[i].len);
    }
    /* The all-zero page: one range, offset 0, length 4096 with the zero bit. */
    {
        const unsigned char *p = got.v[4].payload;
        uint16_t nr, off, lf;
        memcpy(&nr, p + 8, 2);
        memcpy(&off, p + 16, 2);
        memcpy(&lf, p + 18, 2);
        assert_int_equal(nr, 1);
        assert_int_equal(off, 0);
        assert_int_equal(lf, RANGE_ZERO | 4096);
        for (int i = 10; i < 16; i++)
            assert_int_equal(p[i], 0);
    }
    /* The mixed page: zero ranges for the zeroed runs. */
    {
        const unsigned char *p = got.v[5].payload;
        uint16_t nr, off, lf;
        memcpy(&nr, p + 8, 2);
        assert_int_equal(nr, 4);
        memcpy(&off, p + 16, 2);
        memcpy(&lf, p + 18, 2);
        assert_int_equal(off, 0);
        assert_int_equal(lf, RANGE_ZERO | 80);
    }
    coll_free(&got);

    /* The file is exactly what the format says, records in LSN order from 1. */
    size_t flen;
    unsigned char *f = log_read(d.fd, expect_file, &flen);
    assert_memory_equal(f, "CAIRNWAL", 8);
    size_t at = WAL_HEADER_SIZE;
    uint64_t lsn = 1, chain;
    memcpy(&chain, f + 56, 8);
    assert_int_equal(chain, XXH3_64bits(f, 56));
    size_t nrec = 0, ncommit = 0;
    while (at < flen) {
        uint32_t kind, len;
        uint64_t rlsn, sum;
        memcpy(&kind, f + at, 4);
        memcpy(&len, f + at + 4, 4);
        memcpy(&rlsn, f + at + 8, 8);
        memcpy(&sum, f + at + 24, 8);
        assert_true(kind == KIND_PAGE || kind == KIND_COMMIT);
        assert_int_equal(rlsn, lsn);
        unsigned char *tmp = malloc(WAL_RECORD_HEADER + len);
        memcpy(tmp, f + at, WAL_RECORD_HEADER + len);
        memset(tmp + 24, 0, 8);
        assert_int_equal(sum, XXH3_64bits_withSeed(tmp, WAL_RECORD_HEADER + len, chain));
        free(tmp);
        chain = sum;
        for (size_t i = at + WAL_RECORD_HEADER + len; i < pad8(at + WAL_RECORD_HEADER + len); i++)
            assert_int_equal(f[i], 0);
        ncommit += kind == KIND_COMMIT;
        nrec++;
        lsn++;
        at = pad8(at + WAL_RECORD_HEADER + len);
    }
    assert_int_equal(at, flen);
    assert_int_equal(nrec, 13);
    assert_int_equal(ncommit, 4);
    free(f);

    free(t1), free(t2), free(t3), free(t4);
    tdir_close(&d);
}

static void random_diffs_roundtrip(void **state)
{
    struct tdir d;
    tdir_open(&d, *state);
    struct wal w = new_log(d.fd, ID_A);
    enum { N = 60 };
    struct mtxn *t[N];
    for (size_t i = 0; i < N; i++) {
        t[i] = mtxn_random(100 + i, 1 + rnd() % MAX_PAGES);
        write_txn(&w, t[i], 1);
    }
    wal_close(&w);
    expect_replay(d.fd, ID_A, 0, t, N, t[N - 1]->commit_lsn, t[N - 1]->end, NULL);
    for (size_t i = 0; i < N; i++)
        free(t[i]);
    tdir_close(&d);
}

static void uncommitted_not_applied(void **state)
{
    struct tdir d;
    tdir_open(&d, *state);
    struct wal w = new_log(d.fd, ID_A);
    struct mtxn *a = mtxn_random(1, 3), *b = mtxn_random(2, 4), *c = mtxn_random(3, 1);
    write_txn(&w, a, 1);
    write_txn(&w, b, 0); /* page records, no commit record */
    assert_true(b->nrec > 0);
    wal_close(&w);
    expect_replay(d.fd, ID_A, 0, &a, 1, a->commit_lsn, a->end, NULL);

    /* The next append goes where B began, and B's leftovers stay ignored. */
    assert_cairn_ok(wal_open(&w, d.fd, ID_A, 0, 0));
    uint64_t last, ntx;
    struct coll cl = {0};
    assert_cairn_ok(wal_replay(&w, 0, collect, NULL, &cl, &last, &ntx));
    coll_free(&cl);
    assert_int_equal(w.end, a->end);
    write_txn(&w, c, 1);
    assert_int_equal(c->start, a->end);
    assert_int_equal(c->first_lsn, a->commit_lsn + 1);
    wal_close(&w);
    assert_true(file_size(d.fd, "wal") >= (off_t)c->end); /* B's tail may remain after C */
    struct mtxn *ac[] = {a, c};
    expect_replay(d.fd, ID_A, 0, ac, 2, c->commit_lsn, c->end, NULL);
    free(a), free(b), free(c);
    tdir_close(&d);
}

/* Forge a record as wal.c would seal it, chained on *chain. */
static size_t forge(unsigned char *buf, uint32_t kind, uint64_t lsn, uint64_t txn, const void *payload, size_t len,
                    uint64_t *chain)
{
    memset(buf, 0, pad8(WAL_RECORD_HEADER + len));
    uint32_t l = (uint32_t)len;
    memcpy(buf, &kind, 4);
    memcpy(buf + 4, &l, 4);
    memcpy(buf + 8, &lsn, 8);
    memcpy(buf + 16, &txn, 8);
    memcpy(buf + WAL_RECORD_HEADER, payload, len);
    uint64_t sum = XXH3_64bits_withSeed(buf, WAL_RECORD_HEADER + len, *chain);
    memcpy(buf + 24, &sum, 8);
    *chain = sum;
    return pad8(WAL_RECORD_HEADER + len);
}

/* Commit records that validate as records but do not close the
 * transaction properly: nothing of the transaction is applied. */
static void commit_rule_enforced(void **state)
{
    struct tdir d;
    tdir_open(&d, *state);
    struct wal w = new_log(d.fd, ID_A);
    struct mtxn *a = mtxn_random(1, 2);
    write_txn(&w, a, 1);
    wal_close(&w);
    size_t base_len;
    unsigned char *base = log_read(d.fd, a->end, &base_len);
    uint64_t chain0;
    {
        /* The chain after A: the checksum of its commit record. */
        memcpy(&chain0, base + a->end - WAL_RECORD_HEADER - 8 + 24, 8);
    }

    /* Page payload: page 7, one range at 0 of 8 bytes. */
    unsigned char pp[16 + 4 + 8];
    memset(pp, 0, sizeof pp);
    uint64_t pno = 7, val = 0xfeedfacecafebeefull;
    uint16_t nr = 1, off = 0, lf = 8;
    memcpy(pp, &pno, 8);
    memcpy(pp + 8, &nr, 2);
    memcpy(pp + 16, &off, 2);
    memcpy(pp + 18, &lf, 2);
    memcpy(pp + 20, &val, 8);

    enum {
        OK_CASE,
        BAD_COUNT_HIGH,
        BAD_COUNT_LOW,
        BAD_COMMIT_TXN,
        BAD_PAGE_TXN,
        BAD_COMMIT_LEN,
        BAD_KIND,
        BAD_LSN_GAP,
        BAD_PAGE_SHORT,
        NCASES
    };
    for (int k = 0; k < NCASES; k++) {
        unsigned char *f = malloc(base_len + 4096);
        memcpy(f, base, base_len);
        size_t len = base_len;
        uint64_t chain = chain0, lsn = a->commit_lsn + 1;
        uint64_t count = 2;
        uint64_t txn = 2;
        /* Two page records, then the commit. */
        for (int i = 0; i < 2; i++) {
            uint32_t kind = KIND_PAGE;
            uint64_t t = txn;
            size_t plen = sizeof pp;
            if (k == BAD_PAGE_TXN && i == 1)
                t = 3;
            if (k == BAD_KIND && i == 1)
                kind = 0xCA1E0003u;
            if (k == BAD_LSN_GAP && i == 1)
                lsn++;
            if (k == BAD_PAGE_SHORT && i == 1)
                plen = 8;
            len += forge(f + len, kind, lsn++, t, pp, plen, &chain);
        }
        unsigned char cp[16];
        memset(cp, 0, sizeof cp);
        if (k == BAD_COUNT_HIGH)
            count = 3;
        if (k == BAD_COUNT_LOW)
            count = 1;
        memcpy(cp, &count, 8);
        len +=
            forge(f + len, KIND_COMMIT, lsn++, k == BAD_COMMIT_TXN ? 3 : txn, cp, k == BAD_COMMIT_LEN ? 16 : 8, &chain);
        file_write(d.fd, "wal", f, len);
        free(f);

        struct wal r;
        assert_cairn_ok(wal_open(&r, d.fd, ID_A, 0, 0));
        struct coll cl = {0};
        uint64_t last, ntx;
        assert_cairn_ok(wal_replay(&r, 0, collect, NULL, &cl, &last, &ntx));
        if (k == OK_CASE) {
            /* The forger is right: a well-formed transaction is applied. */
            assert_int_equal(ntx, 2);
            assert_int_equal(last, a->commit_lsn + 3);
            assert_int_equal(r.end, len);
            assert_int_equal(cl.n, a->nrec + 2);
            assert_int_equal(cl.v[cl.n - 1].txn, 2);
            assert_int_equal(cl.v[cl.n - 1].page, 7);
        } else {
            if (ntx != 1 || cl.n != a->nrec)
                fail_msg("case %d: a transaction not closed by a matching commit was applied (%llu txns, %zu "
                         "changes)",
                         k, (unsigned long long)ntx, cl.n);
            assert_int_equal(last, a->commit_lsn);
            assert_int_equal(r.end, a->end);
        }
        coll_free(&cl);
        wal_close(&r);
    }
    free(base);
    free(a);
    tdir_close(&d);
}

static void replay_after_skips(void **state)
{
    struct tdir d;
    tdir_open(&d, *state);
    struct wal w = new_log(d.fd, ID_A);
    struct mtxn *t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = mtxn_random(20 + i, 2 + i);
        write_txn(&w, t[i], 1);
    }
    wal_close(&w);
    uint64_t last = t[3]->commit_lsn, end = t[3]->end;
    expect_replay(d.fd, ID_A, 0, t, 4, last, end, NULL);
    /* after = a commit LSN: that transaction and those before are skipped. */
    expect_replay(d.fd, ID_A, t[0]->commit_lsn, t + 1, 3, last, end, NULL);
    expect_replay(d.fd, ID_A, t[1]->commit_lsn, t + 2, 2, last, end, NULL);
    expect_replay(d.fd, ID_A, t[3]->commit_lsn, NULL, 0, last, end, NULL);
    expect_replay(d.fd, ID_A, t[3]->commit_lsn + 100, NULL, 0, last, end, NULL);
    /* after inside a transaction: it counts by its commit LSN, so it is applied. */
    expect_replay(d.fd, ID_A, t[1]->commit_lsn - 1, t + 1, 3, last, end, NULL);
    expect_replay(d.fd, ID_A, t[2]->first_lsn, t + 2, 2, last, end, NULL);
    expect_replay(d.fd, ID_A, t[2]->first_lsn - 1, t + 2, 2, last, end, NULL);
    for (int i = 0; i < 4; i++)
        free(t[i]);
    tdir_close(&d);
}

/* Write A, B, C; return the file. */
static unsigned char *three_txns(int dirfd, struct mtxn **a, struct mtxn **b, struct mtxn **c, size_t *len)
{
    struct wal w = new_log(dirfd, ID_A);
    *a = mtxn_random(31, 2);
    *b = mtxn_random(32, 3);
    *c = mtxn_new(33);
    struct pchg *p = mtxn_page(*c, 500);
    rnd_page(p->old);
    rnd_page(p->cur);
    p = mtxn_page(*c, 501);
    rnd_page(p->old);
    memset(p->cur, 0, PG); /* a zero range */
    p = mtxn_page(*c, 502);
    rnd_page(p->old);
    memcpy(p->cur, p->old, PG);
    for (size_t i = 0; i < PG_WORDS; i += 3) /* odd number of ranges: a padded record */
        word_set(p->cur, i, word_get(p->old, i) + 1);
    write_txn(&w, *a, 1);
    write_txn(&w, *b, 1);
    write_txn(&w, *c, 1);
    assert_int_equal((*c)->nrec, 3);
    wal_close(&w);
    unsigned char *f = log_read(dirfd, (*c)->end, len);
    return f;
}

/* A log of three_txns() in the fixture's directory. */
struct log3 {
    struct tdir d;
    struct mtxn *a, *b, *c;
    unsigned char *f; /* the whole file */
    size_t len;
};

static void log3_open(struct log3 *x, const char *path)
{
    tdir_open(&x->d, path);
    x->f = three_txns(x->d.fd, &x->a, &x->b, &x->c, &x->len);
}

static void log3_close(struct log3 *x)
{
    free(x->f);
    free(x->a), free(x->b), free(x->c);
    tdir_close(&x->d);
}

/* Every cut inside C: A and B replay, C does not; the whole file: all three. */
static void torn_tail_loses_only_the_torn_transaction(void **state)
{
    struct log3 x;
    log3_open(&x, *state);
    struct mtxn *ab[] = {x.a, x.b};
    struct mtxn *abc[] = {x.a, x.b, x.c};
    for (size_t cut = x.c->start; cut < x.c->end; cut++) {
        file_write(x.d.fd, "wal", x.f, cut);
        expect_replay(x.d.fd, ID_A, 0, ab, 2, x.b->commit_lsn, x.b->end, NULL);
    }
    file_write(x.d.fd, "wal", x.f, x.len);
    expect_replay(x.d.fd, ID_A, 0, abc, 3, x.c->commit_lsn, x.c->end, NULL);
    log3_close(&x);
}

/* After a cut, the next transaction goes over the torn tail and replays. */
static void append_after_a_torn_tail_replays(void **state)
{
    struct log3 x;
    log3_open(&x, *state);
    struct mtxn *c = x.c;
    size_t cuts[] = {c->start, c->start + 1, c->start + (c->end - c->start) / 2, c->end - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        file_write(x.d.fd, "wal", x.f, cuts[i]);
        struct wal w;
        assert_cairn_ok(wal_open(&w, x.d.fd, ID_A, 0, 0));
        struct coll cl = {0};
        uint64_t last, ntx;
        assert_cairn_ok(wal_replay(&w, 0, collect, NULL, &cl, &last, &ntx));
        coll_free(&cl);
        struct mtxn *e = mtxn_random(40 + i, 1 + i);
        write_txn(&w, e, 1);
        assert_int_equal(e->start, x.b->end);
        wal_close(&w);
        struct mtxn *abe[] = {x.a, x.b, e};
        uint64_t end = e->end;
        expect_replay(x.d.fd, ID_A, 0, abe, 3, e->commit_lsn, end, NULL);
        free(e);
    }
    log3_close(&x);
}

/* Cuts inside the header: the log is refused.  Only the header: an empty
 * log. */
static void cut_inside_the_header_refused(void **state)
{
    struct log3 x;
    log3_open(&x, *state);
    for (size_t cut = 0; cut < WAL_HEADER_SIZE; cut++) {
        file_write(x.d.fd, "wal", x.f, cut);
        struct wal w;
        int rc = wal_open(&w, x.d.fd, ID_A, 0, 0);
        wal_close(&w);
        if (rc != CAIRN_CORRUPT)
            fail_msg("header cut at %zu: wal_open gave %d, want CAIRN_CORRUPT", cut, rc);
    }
    file_write(x.d.fd, "wal", x.f, WAL_HEADER_SIZE);
    expect_replay(x.d.fd, ID_A, 0, NULL, 0, 0, WAL_HEADER_SIZE, NULL);
    log3_close(&x);
}

static const unsigned char flip_masks[] = {0x01, 0x80, 0xff};

/* Every byte of every record of C (the last record, its commit, included),
 * with each mask: a checksummed byte loses C, a padding byte (not
 * checksummed, by the format) nothing.  A byte of the first transaction:
 * nothing replays (byte 40 of its first record, in the payload of a page
 * record; a transaction whose random pages all came out unchanged has
 * only its commit record, 40 bytes long, whose payload starts at 32). */
static void flipped_record_byte_loses_its_transaction(void **state)
{
    struct log3 x;
    log3_open(&x, *state);
    struct mtxn *a = x.a, *b = x.b, *c = x.c;
    struct mtxn *ab[] = {a, b};
    struct mtxn *abc[] = {a, b, c};

    /* Which bytes of C are padding. */
    unsigned char *is_pad = calloc(x.len, 1);
    size_t nrec = 0;
    for (size_t at = c->start; at < c->end; nrec++) {
        uint32_t rl;
        memcpy(&rl, x.f + at + 4, 4);
        size_t end = at + WAL_RECORD_HEADER + rl;
        for (size_t i = end; i < pad8(end); i++)
            is_pad[i] = 1;
        at = pad8(end);
    }
    assert_int_equal(nrec, 4);
    size_t npad = 0;
    for (size_t i = c->start; i < c->end; i++)
        npad += is_pad[i];
    assert_true(npad > 0); /* the case is exercised */
    size_t first_rec_byte = a->nrec ? 40 : WAL_RECORD_HEADER;

    unsigned char *g = malloc(x.len);
    for (size_t m = 0; m < sizeof flip_masks; m++) {
        for (size_t i = c->start; i < c->end; i++) {
            memcpy(g, x.f, x.len);
            g[i] ^= flip_masks[m];
            file_write(x.d.fd, "wal", g, x.len);
            if (is_pad[i])
                expect_replay(x.d.fd, ID_A, 0, abc, 3, c->commit_lsn, c->end, NULL);
            else
                expect_replay(x.d.fd, ID_A, 0, ab, 2, b->commit_lsn, b->end, NULL);
        }
        memcpy(g, x.f, x.len);
        g[a->start + first_rec_byte] ^= flip_masks[m];
        file_write(x.d.fd, "wal", g, x.len);
        expect_replay(x.d.fd, ID_A, 0, NULL, 0, 0, WAL_HEADER_SIZE, NULL);
    }
    free(g);
    free(is_pad);
    log3_close(&x);
}

/* Any header byte flipped, with each mask: the log is refused; the
 * undamaged file replays in full. */
static void flipped_header_byte_refused(void **state)
{
    struct log3 x;
    log3_open(&x, *state);
    struct mtxn *abc[] = {x.a, x.b, x.c};
    unsigned char *g = malloc(x.len);
    for (size_t i = 0; i < WAL_HEADER_SIZE; i++) {
        for (size_t m = 0; m < sizeof flip_masks; m++) {
            memcpy(g, x.f, x.len);
            g[i] ^= flip_masks[m];
            file_write(x.d.fd, "wal", g, x.len);
            struct wal w;
            int rc = wal_open(&w, x.d.fd, ID_A, 0, 0);
            wal_close(&w);
            if (rc != CAIRN_CORRUPT)
                fail_msg("header byte %zu ^ 0x%02x: wal_open gave %d, want CAIRN_CORRUPT", i, flip_masks[m], rc);
        }
    }
    file_write(x.d.fd, "wal", x.f, x.len);
    expect_replay(x.d.fd, ID_A, 0, abc, 3, x.c->commit_lsn, x.c->end, NULL);
    free(g);
    log3_close(&x);
}

static void other_store_refused(void **state)
{
    struct tdir d, e;
    tdir_open(&d, *state);
    tdir_open(&e, NULL);
    struct wal w = new_log(d.fd, ID_A);
    struct mtxn *a = mtxn_random(1, 2);
    write_txn(&w, a, 1);
    wal_close(&w);

    /* Opened as another store: refused, and the file is left alone. */
    size_t len0, len1;
    unsigned char *f0 = file_read(d.fd, "wal", &len0);
    int rc = wal_open(&w, d.fd, ID_B, 0, 0);
    wal_close(&w);
    assert_cairn_rc(rc, CAIRN_CORRUPT);
    unsigned char *f1 = file_read(d.fd, "wal", &len1);
    assert_int_equal(len0, len1);
    assert_memory_equal(f0, f1, len0);

    /* Another store's log copied in: refused. */
    struct wal v = new_log(e.fd, ID_B);
    struct mtxn *b = mtxn_random(1, 2);
    write_txn(&v, b, 1);
    wal_close(&v);
    size_t lenb;
    unsigned char *fb = file_read(e.fd, "wal", &lenb);
    file_write(d.fd, "wal", fb, lenb);
    rc = wal_open(&w, d.fd, ID_A, 0, 0);
    wal_close(&w);
    assert_cairn_rc(rc, CAIRN_CORRUPT);
    /* And read-only too. */
    rc = wal_open(&w, d.fd, ID_A, 0, 1);
    wal_close(&w);
    assert_cairn_rc(rc, CAIRN_CORRUPT);

    /* The right id opens it; a missing log is ENOENT. */
    expect_replay(e.fd, ID_B, 0, &b, 1, b->commit_lsn, b->end, NULL);
    assert_int_equal(unlinkat(e.fd, "wal", 0), 0);
    rc = wal_open(&w, e.fd, ID_B, 0, 0);
    wal_close(&w);
    assert_int_equal(rc, ENOENT);

    free(f0), free(f1), free(fb);
    free(a), free(b);
    tdir_close(&d);
    tdir_close(&e);
}

static void reset_invalidates_old_records(void **state)
{
    struct tdir d;
    tdir_open(&d, *state);
    struct wal w = new_log(d.fd, ID_A);
    assert_int_equal(w.generation, 1);
    uint64_t salt1 = w.salt;
    struct mtxn *a = mtxn_random(1, 2), *b = mtxn_random(2, 3);
    write_txn(&w, a, 1);
    write_txn(&w, b, 1);
    size_t len;
    unsigned char *old = log_read(d.fd, b->end, &len);

    /* Reset with the same start LSN: the old records carry exactly the
     * LSNs the new generation expects; only the chain tells them apart. */
    assert_cairn_ok(wal_reset(&w, 1));
    assert_int_equal(w.generation, 2);
    assert_true(w.salt != salt1);
    assert_int_equal(w.end, WAL_HEADER_SIZE);
    assert_int_equal(w.next_lsn, 1);
    assert_int_equal(file_size(d.fd, "wal"), WAL_HEADER_SIZE);
    assert_int_equal(file_size(d.fd, "wal.tmp"), -1);
    wal_close(&w);
    size_t hlen;
    unsigned char *hdr = file_read(d.fd, "wal", &hlen);
    assert_int_equal(hlen, WAL_HEADER_SIZE);
    uint64_t gen;
    memcpy(&gen, hdr + 32, 8);
    assert_int_equal(gen, 2);

    unsigned char *f = malloc(len);
    memcpy(f, hdr, WAL_HEADER_SIZE);
    memcpy(f + WAL_HEADER_SIZE, old + WAL_HEADER_SIZE, len - WAL_HEADER_SIZE);
    file_write(d.fd, "wal", f, len);
    expect_replay(d.fd, ID_A, 0, NULL, 0, 0, WAL_HEADER_SIZE, NULL);

    /* Reset starting at B's first LSN, B's records appended: not valid either. */
    file_write(d.fd, "wal", hdr, WAL_HEADER_SIZE);
    assert_cairn_ok(wal_open(&w, d.fd, ID_A, 0, 0));
    assert_cairn_ok(wal_reset(&w, b->first_lsn));
    assert_int_equal(w.generation, 3);
    wal_close(&w);
    free(hdr);
    hdr = file_read(d.fd, "wal", &hlen);
    size_t blen = b->end - b->start;
    memcpy(f, hdr, WAL_HEADER_SIZE);
    memcpy(f + WAL_HEADER_SIZE, old + b->start, blen);
    file_write(d.fd, "wal", f, WAL_HEADER_SIZE + blen);
    expect_replay(d.fd, ID_A, 0, NULL, 0, b->first_lsn - 1, WAL_HEADER_SIZE, NULL);

    /* The new generation itself works: a transaction written after the
     * reset replays (on top of the stale bytes it overwrites). */
    file_write(d.fd, "wal", f, WAL_HEADER_SIZE + blen);
    assert_cairn_ok(wal_open(&w, d.fd, ID_A, 0, 0));
    struct coll cl = {0};
    uint64_t last, ntx;
    assert_cairn_ok(wal_replay(&w, 0, collect, NULL, &cl, &last, &ntx));
    assert_int_equal(ntx, 0);
    coll_free(&cl);
    struct mtxn *c = mtxn_random(3, 1);
    write_txn(&w, c, 1);
    assert_int_equal(c->first_lsn, b->first_lsn);
    wal_close(&w);
    expect_replay(d.fd, ID_A, 0, &c, 1, c->commit_lsn, c->end, NULL);

    free(f), free(hdr), free(old);
    free(a), free(b), free(c);
    tdir_close(&d);
}

/* ---- wal_apply_ranges on hand-made payloads ---- */

struct pb {
    unsigned char b[3 * PG];
    size_t len;
};

static void pb_init(struct pb *p, uint16_t nranges)
{
    memset(p->b, 0, sizeof p->b);
    uint64_t page = 1;
    memcpy(p->b, &page, 8);
    memcpy(p->b + 8, &nranges, 2);
    p->len = 16;
}

static void pb_range(struct pb *p, uint16_t off, uint16_t lf, size_t datalen, unsigned char fill)
{
    memcpy(p->b + p->len, &off, 2);
    memcpy(p->b + p->len + 2, &lf, 2);
    p->len += 4;
    memset(p->b + p->len, fill, datalen);
    p->len += datalen;
}

/* The page sits between two guard pages, which must stay untouched. */
static int apply_guarded(unsigned char *buf, const struct pb *p, size_t len)
{
    memset(buf, 0xab, PG);
    memset(buf + 2 * PG, 0xab, PG);
    int rc = wal_apply_ranges(buf + PG, p->b, len);
    for (size_t i = 0; i < PG; i++) {
        if (buf[i] != 0xab || buf[2 * PG + i] != 0xab)
            fail_msg("wal_apply_ranges wrote outside the page (guard byte %zu)", buf[i] != 0xab ? i : 2 * PG + i);
    }
    return rc;
}

static void apply_ranges_rejects_malformed(void **state)
{
    (void)state;
    unsigned char *buf = malloc(3 * PG);
    assert_non_null(buf);
    struct pb *p = malloc(sizeof *p);
    assert_non_null(p);
    unsigned char *page = buf + PG;

    /* Well-formed payloads, as controls. */
    memset(page, 0x11, PG);
    pb_init(p, 1);
    pb_range(p, 4088, 8, 8, 0x22);
    assert_cairn_ok(apply_guarded(buf, p, p->len));
    assert_int_equal(page[4088], 0x22);
    assert_int_equal(page[4095], 0x22);
    pb_init(p, 2);
    pb_range(p, 0, 4096, 4096, 0x33);
    pb_range(p, 8, RANGE_ZERO | 16, 0, 0);
    assert_cairn_ok(apply_guarded(buf, p, p->len));
    assert_int_equal(page[0], 0x33);
    assert_int_equal(page[8], 0);
    assert_int_equal(page[23], 0);
    assert_int_equal(page[24], 0x33);
    pb_init(p, 1);
    pb_range(p, 0, RANGE_ZERO | 4096, 0, 0);
    assert_cairn_ok(apply_guarded(buf, p, p->len));
    pb_init(p, 0);
    assert_cairn_ok(apply_guarded(buf, p, p->len));

    int n = 0;
#define BAD(desc, stmts, cut)                                                                                          \
    do {                                                                                                               \
        stmts;                                                                                                         \
        size_t l_ = (cut) ? (size_t)(cut) : p->len;                                                                    \
        int rc_ = apply_guarded(buf, p, l_);                                                                           \
        if (rc_ != CAIRN_CORRUPT)                                                                                      \
            fail_msg("%s: wal_apply_ranges gave %d, want CAIRN_CORRUPT", desc, rc_);                                   \
        n++;                                                                                                           \
    } while (0)

    for (size_t l = 1; l < 16; l++) /* shorter than the page head */
        BAD("short head", pb_init(p, 0), l);
    {
        pb_init(p, 0);
        int rc = apply_guarded(buf, p, 0);
        assert_cairn_rc(rc, CAIRN_CORRUPT);
    }
    BAD("range missing", pb_init(p, 1), 0);
    BAD("range header cut", (pb_init(p, 1), pb_range(p, 0, 8, 8, 1)), 18);
    BAD("past the end", (pb_init(p, 1), pb_range(p, 4088, 16, 16, 1)), 0);
    BAD("past the end, zero range", (pb_init(p, 1), pb_range(p, 4088, RANGE_ZERO | 16, 0, 0)), 0);
    BAD("offset at the end", (pb_init(p, 1), pb_range(p, 4096, 8, 8, 1)), 0);
    BAD("offset far beyond", (pb_init(p, 1), pb_range(p, 65528, 16, 16, 1)), 0);
    BAD("length beyond a page", (pb_init(p, 1), pb_range(p, 0, 4104, 4104, 1)), 0);
    BAD("length beyond a page, zero range", (pb_init(p, 1), pb_range(p, 0, RANGE_ZERO | 4104, 0, 0)), 0);
    BAD("misaligned offset", (pb_init(p, 1), pb_range(p, 4, 8, 8, 1)), 0);
    BAD("misaligned offset, zero range", (pb_init(p, 1), pb_range(p, 12, RANGE_ZERO | 8, 0, 0)), 0);
    BAD("misaligned length", (pb_init(p, 1), pb_range(p, 0, 12, 12, 1)), 0);
    BAD("zero length", (pb_init(p, 1), pb_range(p, 0, 0, 0, 1)), 0);
    BAD("zero length, zero range", (pb_init(p, 1), pb_range(p, 0, RANGE_ZERO, 0, 0)), 0);
    BAD("reserved bit 13", (pb_init(p, 1), pb_range(p, 0, 0x2000 | 8, 8, 1)), 0);
    BAD("reserved bit 14", (pb_init(p, 1), pb_range(p, 0, 0x4000 | 8, 8, 1)), 0);
    BAD("data cut", (pb_init(p, 1), pb_range(p, 0, 64, 64, 1)), 16 + 4 + 32);
    BAD("data cut by one word", (pb_init(p, 1), pb_range(p, 0, 64, 64, 1)), 16 + 4 + 56);
    BAD("second range missing", (pb_init(p, 2), pb_range(p, 0, 8, 8, 1)), 0);
    BAD("many ranges claimed", (pb_init(p, 65535), pb_range(p, 0, 8, 8, 1)), 0);
    BAD("trailing bytes", (pb_init(p, 1), pb_range(p, 0, 8, 8, 1), p->len += 8), 0);
    BAD("trailing bytes after zero range", (pb_init(p, 1), pb_range(p, 0, RANGE_ZERO | 8, 0, 0), p->len += 4), 0);
    BAD("second range past the end", (pb_init(p, 2), pb_range(p, 0, 8, 8, 1), pb_range(p, 4092, 8, 8, 1)), 0);
#undef BAD
    assert_true(n > 30);
    free(p);
    free(buf);
}

/* The file grows in chunks of zeros written ahead of the records: a
 * small first commit makes it one chunk long, crossing the boundary makes
 * it two; every transaction replays, and a log reopened with zeros ahead
 * appends at its end and replays whole. */
static void zeros_ahead_grow_in_chunks(void **state)
{
    struct tdir d;
    tdir_open(&d, *state);
    struct wal w = new_log(d.fd, ID_A);
    enum { MAXT = 4096 };
    struct mtxn **t = calloc(MAXT, sizeof *t);
    size_t n = 0;
    t[n] = mtxn_random(1, 1);
    write_txn(&w, t[n++], 1);
    assert_int_equal(file_size(d.fd, "wal"), (off_t)WAL_ZERO_CHUNK);
    while (w.end <= WAL_ZERO_CHUNK) {
        assert_true(n < MAXT - 1);
        t[n] = mtxn_random(n + 1, MAX_PAGES - 1);
        write_txn(&w, t[n++], 1);
        assert_int_equal(file_size(d.fd, "wal"), (off_t)(w.end <= WAL_ZERO_CHUNK ? 1 : 2) * (off_t)WAL_ZERO_CHUNK);
    }
    wal_close(&w);
    size_t len;
    free(log_read(d.fd, t[n - 1]->end, &len));
    expect_replay(d.fd, ID_A, 0, t, n, t[n - 1]->commit_lsn, t[n - 1]->end, NULL);

    assert_cairn_ok(wal_open(&w, d.fd, ID_A, 0, 0));
    struct coll cl = {0};
    uint64_t last, ntx;
    assert_cairn_ok(wal_replay(&w, 0, collect, NULL, &cl, &last, &ntx));
    coll_free(&cl);
    assert_int_equal(ntx, n);
    t[n] = mtxn_random(n + 1, 3);
    write_txn(&w, t[n], 1);
    assert_int_equal(t[n]->start, t[n - 1]->end);
    n++;
    wal_close(&w);
    expect_replay(d.fd, ID_A, 0, t, n, t[n - 1]->commit_lsn, t[n - 1]->end, NULL);
    for (size_t i = 0; i < n; i++)
        free(t[i]);
    free(t);
    tdir_close(&d);
}

/* ---- group commit: wal_sync ---- */

struct sync_call {
    struct wal *w;
    uint64_t lsn;
    int rc;
};

static void *sync_thread(void *p)
{
    struct sync_call *c = p;
    c->rc = wal_sync(c->w, c->lsn);
    return NULL;
}

static int sync_running(struct wal *w)
{
    pthread_mutex_lock(&w->sync_mutex);
    int r = w->syncing;
    pthread_mutex_unlock(&w->sync_mutex);
    return r;
}

/* One fdatasync covers every record written before it; a record written
 * while it runs waits for the next; a failed sync fails its waiters and
 * every later call, even for records durable before it. */
static void sync_is_shared_and_its_failure_sticky(void **state)
{
    struct tdir d;
    tdir_open(&d, *state);
    struct wal w = new_log(d.fd, ID_A);
    struct mtxn *a = mtxn_random(1, 2), *b = mtxn_random(2, 3), *c = mtxn_random(3, 1), *e = mtxn_random(4, 2),
                *f = mtxn_random(5, 2);
    write_txn(&w, a, 1);
    write_txn(&w, b, 1);
    assert_cairn_ok(wal_sync(&w, a->commit_lsn));
    assert_int_equal(w.syncs, 1);
    assert_int_equal(w.durable_lsn, b->commit_lsn); /* b was in the file: covered too */
    assert_cairn_ok(wal_sync(&w, b->commit_lsn));
    assert_int_equal(w.syncs, 1);
    write_txn(&w, c, 1);
    assert_cairn_ok(wal_sync(&w, c->commit_lsn));
    assert_int_equal(w.syncs, 2);

    /* The next sync is slow and fails.  While it runs, f is written and
     * its writer waits on it. */
    write_txn(&w, e, 1);
    w.fail_syncs_after = 2;
    struct sync_call leader = {&w, e->commit_lsn, -1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, sync_thread, &leader), 0);
    while (!sync_running(&w))
        usleep(1000);
    write_txn(&w, f, 1);
    assert_int_equal(wal_sync(&w, f->commit_lsn), CAIRN_IOERR);
    pthread_join(th, NULL);
    assert_int_equal(leader.rc, CAIRN_IOERR);
    assert_int_equal(w.syncs, 3); /* the follower did not sync on its own */
    w.fail_syncs_after = 0;
    assert_int_equal(wal_sync(&w, a->commit_lsn), CAIRN_IOERR);
    assert_int_equal(wal_sync(&w, f->commit_lsn), CAIRN_IOERR);
    assert_int_equal(w.syncs, 3);
    wal_close(&w);
    struct mtxn *all[] = {a, b, c, e, f};
    for (size_t i = 0; i < 5; i++)
        free(all[i]);
    tdir_close(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        tu_dir_test(diffs_roundtrip),
        tu_dir_test(random_diffs_roundtrip),
        tu_dir_test(uncommitted_not_applied),
        tu_dir_test(commit_rule_enforced),
        tu_dir_test(replay_after_skips),
        tu_dir_test(torn_tail_loses_only_the_torn_transaction),
        tu_dir_test(append_after_a_torn_tail_replays),
        tu_dir_test(cut_inside_the_header_refused),
        tu_dir_test(flipped_record_byte_loses_its_transaction),
        tu_dir_test(flipped_header_byte_refused),
        tu_dir_test(other_store_refused),
        tu_dir_test(reset_invalidates_old_records),
        tu_dir_test(zeros_ahead_grow_in_chunks),
        tu_dir_test(sync_is_shared_and_its_failure_sticky),
        cmocka_unit_test(apply_ranges_rejects_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
