/*
 * test_corrupt.c - damaged store files: cairn_open either refuses them with
 * CAIRN_CORRUPT or opens them, and then either cairn_check reports the
 * damage or the store is clean and holds exactly the state after a prefix
 * of the committed transactions.  Never a crash, never another code, never
 * garbage handed to the application.
 *
 * The store: a child runs attempts 0..CKPT_AFTER of the random workload of
 * workload.c (a graph of nodes with links, blobs of up to several extents,
 * a typed array; some attempts abort), checkpoints, runs attempts up to
 * LAST (the last two are one-value changes, so that the last two log
 * records are short), and _exits without closing: LMDB holds the state
 * after the checkpoint, the log the committed attempts since.  The model
 * gives the expected state after every committed attempt.
 *
 * Each case damages a fresh copy of the files (the pristine bytes are put
 * back before each case):
 *   - every bit of the log header (64 bytes);
 *   - every bit of the last two log records, each in turn;
 *   - the log cut at every byte offset within the last two records;
 *   - random bytes, XORed with random masks, of values of the LMDB
 *     "extents" database (40% in the 32-byte extent header);
 *   - every bit of the fixed values of the LMDB "meta" catalog (format,
 *     store_id, page_size, extent_pages, pages, ckpt_lsn), and random bytes
 *     of the type records;
 *   - the catalog's ckpt_lsn set to every LSN from just before the log to
 *     just after it (what flips of its low bits hit by chance);
 * (LMDB values are changed through the LMDB API: get, copy, flip, put.)
 * and then: open; if it opens, cairn_check; if that finds nothing, the
 * whole state is read, each range only after cairn_prefault(s, p, len, 0)
 * succeeded (a plain load of a page that fails to load would call the
 * fault-error callback and abort), and compared with the model.
 *
 * Where the format leaves no doubt the expectation is tighter than "some
 * prefix": the log header is checksummed whole, so a damaged one is
 * refused (or, were a flip harmless, everything recovered), never dropped
 * in silence; a flipped checksummed bit of the last two records, or a cut
 * inside them, loses exactly the last transaction; a flip in record
 * padding (not checksummed) loses nothing.
 *
 * Every failing case is printed (kind, offset, seed) and the test fails at
 * the end of its kind.  CAIRN_TEST_SEED replays a run (the workload and
 * the random cases; store id and log salt are new each run);
 * CAIRN_CORRUPT_VERBOSE=1 prints every case and its outcome;
 * CAIRN_CORRUPT_ONLY=<glob> runs only the matching kinds (test names).
 */
#define _GNU_SOURCE
#include "testutil.h"
#include "files.h"
#include "splitmix.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "workload.h"

enum { CKPT_AFTER = 40, TINY_FROM = 45, LAST = 46 };

static const struct wl_profile corrupt_profile = {
    .abort_pct = 15,
    .big_pct = 5,
    .big_min = 100,
    .big_max = 200,
    .medium_pct = 40,
    .medium_max = 30,
    .large_blob_pct = 12,
    .checkpoint_pct = 0,
    .tiny_from = TINY_FROM,
};

#define WAL_HEADER 64
#define REC_HEADER 32

struct lkey {
    unsigned char *k;
    size_t klen, vlen;
};

static struct fixture {
    uint64_t seed;
    char *orig, *work;
    unsigned char *data, *wal;
    size_t dlen, wlen;
    /* log records: start and end (padded) offsets */
    size_t rec_at[4096], rec_end[4096], rec_len[4096];
    size_t nrec;
    /* expected states: models[k + 1] after committed attempt k (k = -1: empty) */
    struct model models[LAST + 2];
    int committed[LAST + 2];
    int64_t c0, kprev, klast; /* checkpointed state, the two last commits */
    uint64_t ckpt_lsn, first_lsn, last_lsn;
    uint64_t pages; /* meta/pages */
    struct lkey *ext, *meta;
    size_t next, nmeta;
} fx;

static uint64_t rng;
static int verbose; /* CAIRN_CORRUPT_VERBOSE=1: one line per case */

static uint64_t rnd(uint64_t bound)
{
    return tu_splitmix_below(&rng, bound);
}

static void store_options(cairn_options *o)
{
    tu_options(o); /* 1 GiB range */
}

/* ---- files ---- */

/* Make dir/name equal to buf, rewriting only the 4 KiB blocks that differ
 * (so that the fsyncs of the next case flush little). */
static void restore_file(const char *dir, const char *name, const unsigned char *buf, size_t len)
{
    char *p = tu_path(dir, name);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        fail_msg("open %s: %s", p, strerror(errno));
    free(p);
    unsigned char *cur = malloc(len + 1);
    assert_non_null(cur);
    ssize_t got = pread(fd, cur, len, 0);
    size_t have = got > 0 ? (size_t)got : 0;
    for (size_t at = 0; at < len; at += 4096) {
        size_t n = len - at < 4096 ? len - at : 4096;
        if (at + n > have || memcmp(cur + at, buf + at, n) != 0)
            assert_int_equal(pwrite(fd, buf + at, n, (off_t)at), (ssize_t)n);
    }
    free(cur);
    assert_int_equal(ftruncate(fd, (off_t)len), 0);
    close(fd);
}

/* The work directory gets the pristine files, then the caller damages it. */
static void restore(void)
{
    restore_file(fx.work, "data.mdb", fx.data, fx.dlen);
    restore_file(fx.work, "wal", fx.wal, fx.wlen);
    char *p = tu_path(fx.work, "lock.mdb");
    unlink(p);
    free(p);
    p = tu_path(fx.work, "wal.tmp");
    unlink(p);
    free(p);
}

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* ---- LMDB, directly ---- */

static MDB_env *lmdb_open(const char *dir, MDB_txn **txn, MDB_dbi *ext, MDB_dbi *meta, int rdonly)
{
    MDB_env *env;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 4);
    mdb_env_set_mapsize(env, (size_t)4 << 30);
    int rc = mdb_env_open(env, dir, MDB_NOTLS | (rdonly ? MDB_RDONLY : 0), 0644);
    if (rc)
        fail_msg("mdb_env_open(%s): %s", dir, mdb_strerror(rc));
    assert_int_equal(mdb_txn_begin(env, NULL, rdonly ? MDB_RDONLY : 0, txn), 0);
    assert_int_equal(mdb_dbi_open(*txn, "extents", MDB_INTEGERKEY, ext), 0);
    assert_int_equal(mdb_dbi_open(*txn, "meta", 0, meta), 0);
    return env;
}

static void list_keys(MDB_txn *txn, MDB_dbi dbi, struct lkey **out, size_t *n)
{
    MDB_cursor *c;
    assert_int_equal(mdb_cursor_open(txn, dbi, &c), 0);
    MDB_val k, v;
    size_t cap = 16;
    *out = malloc(cap * sizeof **out);
    *n = 0;
    for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (*n == cap)
            *out = realloc(*out, (cap *= 2) * sizeof **out);
        struct lkey *e = &(*out)[(*n)++];
        e->k = malloc(k.mv_size);
        memcpy(e->k, k.mv_data, k.mv_size);
        e->klen = k.mv_size;
        e->vlen = v.mv_size;
    }
    mdb_cursor_close(c);
}

/* XOR byte off of the value of key in db (of the work copy) with x. */
static void lmdb_flip(int extents, const struct lkey *key, size_t off, uint8_t x)
{
    MDB_txn *txn;
    MDB_dbi ext, meta;
    MDB_env *env = lmdb_open(fx.work, &txn, &ext, &meta, 0);
    MDB_dbi dbi = extents ? ext : meta;
    MDB_val k = {key->klen, key->k}, v;
    assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
    assert_true(off < v.mv_size);
    unsigned char *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    copy[off] ^= x;
    MDB_val nv = {v.mv_size, copy};
    assert_int_equal(mdb_put(txn, dbi, &k, &nv, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    free(copy);
}

/* Replace the value of key in "meta" (of the work copy). */
static void lmdb_set_meta(const char *key, const void *val, size_t len)
{
    MDB_txn *txn;
    MDB_dbi ext, meta;
    MDB_env *env = lmdb_open(fx.work, &txn, &ext, &meta, 0);
    MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)val};
    assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* ---- building the store ---- */

static void build_child(void *arg)
{
    (void)arg;
    cairn_options o;
    store_options(&o);
    cairn_store *s;
    int rc = cairn_open(fx.orig, &o, &s);
    if (rc)
        _exit(10);
    struct wl_types ty;
    if (wl_types_register(s, &ty))
        _exit(11);
    static struct model m;
    model_init(&m);
    static struct wl w;
    wl_init(&w, fx.seed, &corrupt_profile, &m, s, &ty);
    for (int64_t k = 0; k <= LAST; k++) {
        if (wl_run(&w, k)) {
            fprintf(stderr, "build: %s\n", w.err);
            _exit(12);
        }
        if (k == CKPT_AFTER && cairn_checkpoint(s))
            _exit(13);
    }
    _exit(0); /* no close: the last attempts stay in the log */
}

static int setup(void **state)
{
    (void)state;
    const char *e = getenv("CAIRN_TEST_SEED");
    fx.seed = e && *e ? strtoull(e, NULL, 0) : ((uint64_t)time(NULL) * 2654435761u) ^ (uint64_t)getpid();
    print_message("test_corrupt: CAIRN_TEST_SEED=%llu\n", (unsigned long long)fx.seed);
    verbose = getenv("CAIRN_CORRUPT_VERBOSE") && atoi(getenv("CAIRN_CORRUPT_VERBOSE"));
    /* Both directories in one scratch directory, which the teardown
     * removes whatever happened (cmocka runs it after a failed setup too). */
    if (tu_scratch_begin() != 0)
        return -1;
    fx.orig = tu_tempdir();
    fx.work = tu_tempdir();
    int status = tu_in_child(build_child, NULL);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "building the store failed (status %#x)\n", status);
        return -1;
    }
    fx.data = tu_file_read(fx.orig, "data.mdb", &fx.dlen);
    fx.wal = tu_log_read(fx.orig, &fx.wlen); /* without the zeros ahead */

    /* Log records. */
    size_t at = WAL_HEADER;
    while (at + REC_HEADER <= fx.wlen) {
        uint32_t len;
        memcpy(&len, fx.wal + at + 4, 4);
        if (fx.nrec == sizeof fx.rec_at / sizeof fx.rec_at[0])
            return -1;
        fx.rec_at[fx.nrec] = at;
        fx.rec_len[fx.nrec] = REC_HEADER + len;
        fx.rec_end[fx.nrec] = pad8(at + REC_HEADER + len);
        at = fx.rec_end[fx.nrec++];
    }
    if (at != fx.wlen || fx.nrec < 4) {
        fprintf(stderr, "log of %zu bytes: %zu records ending at %zu\n", fx.wlen, fx.nrec, at);
        return -1;
    }

    /* Expected states. */
    static struct model m;
    model_init(&m);
    struct wl w;
    wl_init(&w, fx.seed, &corrupt_profile, &m, NULL, NULL);
    model_init(&fx.models[0]);
    fx.committed[0] = 1;
    fx.c0 = -1;
    for (int64_t k = 0; k <= LAST; k++) {
        if (wl_run(&w, k))
            return -1;
        fx.committed[k + 1] = wl_commits(fx.seed, &corrupt_profile, k);
        model_copy(&fx.models[k + 1], &m);
        if (fx.committed[k + 1] && k <= CKPT_AFTER)
            fx.c0 = k;
    }
    wl_fini(&w);
    model_free(&m);
    fx.klast = LAST;
    fx.kprev = LAST - 1; /* tiny attempts always commit */

    /* LMDB keys. */
    MDB_txn *txn;
    MDB_dbi ext, meta;
    MDB_env *env = lmdb_open(fx.orig, &txn, &ext, &meta, 1);
    list_keys(txn, ext, &fx.ext, &fx.next);
    list_keys(txn, meta, &fx.meta, &fx.nmeta);
    uint64_t ckpt_lsn = 0, first_lsn, last_lsn;
    MDB_val ck = {8, "ckpt_lsn"}, cv;
    if (mdb_get(txn, meta, &ck, &cv) == 0 && cv.mv_size == 8)
        memcpy(&ckpt_lsn, cv.mv_data, 8);
    MDB_val pk = {5, "pages"}, pv;
    if (mdb_get(txn, meta, &pk, &pv) == 0 && pv.mv_size == 8)
        memcpy(&fx.pages, pv.mv_data, 8);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    memcpy(&first_lsn, fx.wal + fx.rec_at[0] + 8, 8);
    memcpy(&last_lsn, fx.wal + fx.rec_at[fx.nrec - 1] + 8, 8);
    fx.ckpt_lsn = ckpt_lsn, fx.first_lsn = first_lsn, fx.last_lsn = last_lsn;
    print_message("store: %zu log records (%zu bytes, LSN %llu..%llu; catalog ckpt_lsn %llu) after the checkpoint at "
                  "attempt %lld, last two records %zu + %zu bytes; %zu extents, %zu catalog keys; data.mdb %zu "
                  "bytes\n",
                  fx.nrec, fx.wlen, (unsigned long long)first_lsn, (unsigned long long)last_lsn,
                  (unsigned long long)ckpt_lsn, (long long)fx.c0, fx.rec_len[fx.nrec - 2], fx.rec_len[fx.nrec - 1],
                  fx.next, fx.nmeta, fx.dlen);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(fx.orig);
    free(fx.work);
    tu_scratch_end();
    for (size_t i = 0; i < LAST + 2; i++)
        model_free(&fx.models[i]);
    free(fx.data);
    free(fx.wal);
    return 0;
}

/* ---- one case ---- */

enum outcome { O_OPEN_CORRUPT, O_OPEN_ENOMEM, O_CHECK_CORRUPT, O_CLEAN_LAST, O_CLEAN_OLDER, O_FAILED, O_N };
static const char *outcome_name[O_N] = {"refused by cairn_open (CAIRN_CORRUPT)",
                                        "refused by cairn_open (ENOMEM: the store size it now reads cannot be "
                                        "reserved)",
                                        "reported by cairn_check",
                                        "clean, state of the last commit",
                                        "clean, state of an older commit",
                                        "FAILED"};

/* Set for cases that make the catalog's store size larger: reserving the
 * address range of a store of that size may fail with ENOMEM (it does
 * under ThreadSanitizer, whose shadow memory leaves less address space),
 * as it would for a genuine store of that size. */
static int allow_enomem;

struct tally {
    const char *kind;
    uint64_t n[O_N];
    uint64_t cases;
};

/* Allowed clean states: attempts lo..hi that committed. */
static enum outcome evaluate(struct tally *t, int64_t lo, int64_t hi, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum outcome evaluate(struct tally *t, int64_t lo, int64_t hi, const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    t->cases++;
    enum outcome o;
    char why[400] = "";
    cairn_options opt;
    store_options(&opt);
    cairn_store *s = NULL;
    int rc = cairn_open(fx.work, &opt, &s);
    if (rc == CAIRN_CORRUPT) {
        o = O_OPEN_CORRUPT;
        goto done;
    }
    if (rc == ENOMEM && allow_enomem) {
        o = O_OPEN_ENOMEM;
        goto done;
    }
    if (rc != CAIRN_OK) {
        snprintf(why, sizeof why, "cairn_open returned %d (%s)", rc, cairn_strerror(rc));
        o = O_FAILED;
        goto done;
    }
    cairn_check_report rep;
    rc = cairn_check(s, &rep);
    if (rc == CAIRN_CORRUPT) {
        o = O_CHECK_CORRUPT;
    } else if (rc != CAIRN_OK) {
        snprintf(why, sizeof why, "cairn_check returned %d (%s)", rc, cairn_strerror(rc));
        o = O_FAILED;
    } else {
        static struct model got;
        char err[300];
        rc = wl_snapshot(s, &got, err, sizeof err);
        if (rc) {
            snprintf(why, sizeof why, "cairn_check found nothing, but reading the store failed: %s", err);
            o = O_FAILED;
        } else {
            int64_t n = got.exists ? got.txn : -1;
            if (n < lo || n > hi || n < -1 || n > LAST || !fx.committed[n + 1]) {
                snprintf(why, sizeof why, "clean store in the state of attempt %lld; expected a commit in [%lld, %lld]",
                         (long long)n, (long long)lo, (long long)hi);
                o = O_FAILED;
            } else if (wl_compare(&fx.models[n + 1], &got, err, sizeof err)) {
                snprintf(why, sizeof why, "clean store, but its state is not that of attempt %lld: %s", (long long)n,
                         err);
                o = O_FAILED;
            } else {
                o = n == fx.klast ? O_CLEAN_LAST : O_CLEAN_OLDER;
            }
            model_free(&got);
        }
    }
    rc = cairn_close(s);
    if (rc && o != O_FAILED && o != O_CHECK_CORRUPT) {
        snprintf(why, sizeof why, "cairn_close returned %d (%s)", rc, cairn_strerror(rc));
        o = O_FAILED;
    }
done:
    t->n[o]++;
    if (verbose)
        print_message("  %s: %s%s%s\n", what, outcome_name[o], o == O_FAILED ? ": " : "", o == O_FAILED ? why : "");
    if (o == O_FAILED && t->n[O_FAILED] <= 20)
        print_error("FAILED %s, %s (CAIRN_TEST_SEED=%llu): %s\n", t->kind, what, (unsigned long long)fx.seed, why);
    return o;
}

static void report(const struct tally *t)
{
    char line[600];
    int at = snprintf(line, sizeof line, "%s: %llu cases:", t->kind, (unsigned long long)t->cases);
    for (int o = 0; o < O_N; o++)
        if (t->n[o])
            at += snprintf(line + at, sizeof line - (size_t)at, " %llu %s;", (unsigned long long)t->n[o],
                           outcome_name[o]);
    print_message("%s\n", line);
    if (t->n[O_FAILED])
        fail_msg("%s: %llu of %llu cases failed (see above)", t->kind, (unsigned long long)t->n[O_FAILED],
                 (unsigned long long)t->cases);
}

/* ---- the cases ---- */

static void pristine(void **state)
{
    (void)state;
    struct tally t = {.kind = "undamaged"};
    restore();
    /* The store recovers every committed attempt. */
    enum outcome o = evaluate(&t, fx.klast, fx.klast, "no damage");
    report(&t);
    assert_int_equal(o, O_CLEAN_LAST);
}

static void log_header_bits(void **state)
{
    (void)state;
    struct tally t = {.kind = "log header bit flips"};
    for (size_t bit = 0; bit < WAL_HEADER * 8; bit++) {
        restore();
        unsigned char b = fx.wal[bit / 8] ^ (unsigned char)(1u << (bit % 8));
        char *p = tu_path(fx.work, "wal");
        int fd = open(p, O_WRONLY | O_CLOEXEC);
        free(p);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, &b, 1, (off_t)(bit / 8)), 1);
        close(fd);
        /* Every header byte is checksummed: the log is refused, or (if a
         * flip were harmless) recovered in full, never dropped silently. */
        evaluate(&t, fx.klast, fx.klast, "bit %zu of the header", bit);
    }
    report(&t);
}

static void last_records_bits(void **state)
{
    (void)state;
    struct tally t = {.kind = "bit flips in the last two log records"};
    for (size_t r = fx.nrec - 2; r < fx.nrec; r++) {
        for (size_t off = fx.rec_at[r]; off < fx.rec_end[r]; off++) {
            int padding = off >= fx.rec_at[r] + fx.rec_len[r];
            for (unsigned bit = 0; bit < 8; bit++) {
                restore();
                unsigned char b = fx.wal[off] ^ (unsigned char)(1u << bit);
                char *p = tu_path(fx.work, "wal");
                int fd = open(p, O_WRONLY | O_CLOEXEC);
                free(p);
                assert_true(fd >= 0);
                assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
                close(fd);
                /* A checksummed byte: the last transaction is lost, nothing
                 * else.  Padding: nothing is lost. */
                int64_t want = padding ? fx.klast : fx.kprev;
                evaluate(&t, want, want, "record %zu of %zu, byte %zu (%s), bit %u", r + 1, fx.nrec, off - fx.rec_at[r],
                         padding ? "padding" : "checksummed", bit);
            }
        }
    }
    report(&t);
}

static void last_records_truncated(void **state)
{
    (void)state;
    struct tally t = {.kind = "log cut within the last two records"};
    for (size_t cut = fx.rec_at[fx.nrec - 2]; cut <= fx.wlen; cut++) {
        restore();
        char *p = tu_path(fx.work, "wal");
        assert_int_equal(truncate(p, (off_t)cut), 0);
        free(p);
        int64_t want = cut == fx.wlen ? fx.klast : fx.kprev;
        evaluate(&t, want, want, "cut at byte %zu of %zu", cut, fx.wlen);
    }
    report(&t);
}

static void extent_values(void **state)
{
    (void)state;
    struct tally t = {.kind = "byte flips in \"extents\" values"};
    rng = fx.seed ^ 0xE7E47;
    for (int i = 0; i < 240; i++) {
        const struct lkey *k = &fx.ext[rnd(fx.next)];
        size_t off = rnd(100) < 40 ? rnd(32) : rnd(k->vlen);
        uint8_t x = (uint8_t)(1 + rnd(255));
        restore();
        lmdb_flip(1, k, off, x);
        uint64_t e;
        memcpy(&e, k->k, 8);
        evaluate(&t, -1, fx.klast, "extent %llu (%zu bytes), byte %zu ^= %#x", (unsigned long long)e, k->vlen, off, x);
    }
    report(&t);
}

static void meta_values(void **state)
{
    (void)state;
    struct tally t = {.kind = "bit and byte flips in \"meta\" values"};
    rng = fx.seed ^ 0x3E7A;
    /* Every bit of the fixed entries (format, store_id, page_size,
     * extent_pages, pages, ckpt_lsn: 44 bytes); random bytes, XORed with
     * random masks, of the type records (the long one is 4 KiB). */
    size_t ntype = 0;
    for (size_t i = 0; i < fx.nmeta; i++)
        ntype += fx.meta[i].klen > 5 && memcmp(fx.meta[i].k, "type/", 5) == 0;
    for (size_t i = 0; i < fx.nmeta; i++) {
        const struct lkey *k = &fx.meta[i];
        int type = k->klen > 5 && memcmp(k->k, "type/", 5) == 0;
        if (!type) {
            int pages = k->klen == 5 && memcmp(k->k, "pages", 5) == 0;
            for (size_t bit = 0; bit < k->vlen * 8; bit++) {
                restore();
                lmdb_flip(0, k, bit / 8, (uint8_t)(1u << (bit % 8)));
                allow_enomem = pages && !((fx.pages >> bit) & 1);
                evaluate(&t, -1, fx.klast, "key \"%.*s\" (%zu bytes), bit %zu", (int)k->klen, (char *)k->k, k->vlen,
                         bit);
                allow_enomem = 0;
            }
            continue;
        }
        for (size_t j = 0; j < 120 / ntype; j++) {
            size_t off = j % 2 ? rnd(16) : rnd(k->vlen); /* half in the record header */
            uint8_t x = (uint8_t)(1 + rnd(255));
            restore();
            lmdb_flip(0, k, off, x);
            evaluate(&t, -1, fx.klast, "key \"%.*s\" (%zu bytes), byte %zu ^= %#x", (int)k->klen, (char *)k->k, k->vlen,
                     off, x);
        }
    }
    report(&t);
}

/* The catalog's checkpoint LSN moved to every LSN around and inside the
 * log: what random flips of its low bits hit by chance, every time. */
static void ckpt_lsn_moved(void **state)
{
    (void)state;
    struct tally t = {.kind = "\"meta\" ckpt_lsn set to each LSN of the log"};
    for (uint64_t v = fx.first_lsn - 3; v <= fx.last_lsn + 2; v++) {
        if (v == fx.ckpt_lsn)
            continue;
        restore();
        lmdb_set_meta("ckpt_lsn", &v, sizeof v);
        evaluate(&t, -1, fx.klast, "ckpt_lsn %llu instead of %llu (log LSN %llu..%llu)", (unsigned long long)v,
                 (unsigned long long)fx.ckpt_lsn, (unsigned long long)fx.first_lsn, (unsigned long long)fx.last_lsn);
    }
    report(&t);
}

/* data.mdb damaged as a file, under LMDB: random bytes XORed, ranges
 * zeroed, the file cut.  LMDB has no checksums and reads through a map,
 * so each case runs in a child: a signal there is a crash, counted as a
 * failure like any other. */
static void data_mdb_file_damage(void **state)
{
    (void)state;
    struct tally t = {.kind = "data.mdb damaged as a file (flips, zeroed ranges, cuts)"};
    rng = fx.seed ^ 0xDA7A;
    const int trials = 300;
    for (int i = 0; i < trials; i++) {
        restore();
        unsigned char *img = malloc(fx.dlen);
        memcpy(img, fx.data, fx.dlen);
        size_t len = fx.dlen;
        char what[200];
        int kind = i % 3;
        if (kind == 0) {
            unsigned n = 1 + (unsigned)rnd(8);
            size_t at = rnd(fx.dlen);
            for (unsigned k = 0; k < n; k++)
                img[(at + rnd(64)) % fx.dlen] ^= (uint8_t)(1 + rnd(255));
            snprintf(what, sizeof what, "%u bytes flipped near offset %zu", n, at);
        } else if (kind == 1) {
            size_t n = rnd(2) ? 4096 * (1 + rnd(4)) : 1 + rnd(16384);
            size_t at = rnd(2) ? rnd(fx.dlen / 4096) * 4096 : rnd(fx.dlen);
            if (at + n > fx.dlen)
                n = fx.dlen - at;
            memset(img + at, 0, n);
            snprintf(what, sizeof what, "%zu bytes zeroed at offset %zu", n, at);
        } else {
            len = rnd(fx.dlen);
            snprintf(what, sizeof what, "cut to %zu of %zu bytes", len, fx.dlen);
        }
        restore_file(fx.work, "data.mdb", img, len);
        free(img);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            struct tally one = {.kind = t.kind};
            _exit((int)evaluate(&one, -1, fx.klast, "%s", what));
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        t.cases++;
        if (WIFEXITED(status) && WEXITSTATUS(status) < O_N) {
            t.n[WEXITSTATUS(status)]++;
        } else {
            t.n[O_FAILED]++;
            print_error("FAILED %s, %s (CAIRN_TEST_SEED=%llu): the process %s %d\n", t.kind, what,
                        (unsigned long long)fx.seed, WIFSIGNALED(status) ? "died of signal" : "exited with",
                        WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        }
    }
    report(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pristine),          cmocka_unit_test(log_header_bits),
        cmocka_unit_test(last_records_bits), cmocka_unit_test(last_records_truncated),
        cmocka_unit_test(extent_values),     cmocka_unit_test(meta_values),
        cmocka_unit_test(ckpt_lsn_moved),    cmocka_unit_test(data_mdb_file_damage),
    };
    const char *only = getenv("CAIRN_CORRUPT_ONLY"); /* e.g. "last_records*" */
    if (only && *only)
        cmocka_set_test_filter(only);
    return cmocka_run_group_tests(tests, setup, teardown);
}
