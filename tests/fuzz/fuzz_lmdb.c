/*
 * fuzz_lmdb.c - libFuzzer harness for a damaged data.mdb: a real store's
 * LMDB file, cut short and with bytes flipped, opened through cairn_open
 * beside its own (intact) log.
 *
 * The pristine store (committed in tests/fuzz/lmdb-store, see init(); built
 * by build_pristine through the public API): a balanced binary tree of NODES nodes (type "node": key, left,
 * right, sum) under root "tree" and a BLOB-byte pattern under root "blob",
 * committed, checkpointed, then every 3rd node's sum rewritten in a second
 * transaction and checkpointed again (so data.mdb holds LMDB pages freed
 * by the first checkpoint, as a used store does), then closed.
 *
 * Input: 1 control byte, a u32 cut (little-endian), then flips of 5
 * bytes each: u32 offset, u8 xor (0 means 0xff).
 *     cut 0xffffffff   data.mdb keeps its length; otherwise it is cut to
 *                      cut % (length + 1) bytes (before the flips)
 *     offset           taken modulo the (cut) length
 * Control bits:
 *     0x01  open read-only
 *     0x02  when the damaged store checks clean: flip a bit of the root
 *           node's sum in a transaction, commit, checkpoint, close, reopen
 *           and check and verify again
 *
 * Expectations:
 *   - cairn_open returns 0 or an error code and never crashes; *out is
 *     set only on success; no file descriptor is left open afterwards;
 *   - on an open store, cairn_check returns 0 or an error code;
 *   - when cairn_check finds no problem, the graph is exactly the pristine
 *     one: every node key, shape and sum, and every blob byte, reached
 *     from the roots through cairn_prefault (an error there is a finding:
 *     the check called the store clean);
 *   - with 0x02, the update commits, and the reopened store checks clean
 *     and holds the update.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"
#include "fuzz_util.h"

#define C_RDONLY 0x01
#define C_UPDATE 0x02

#define NODES 6000
#define BLOB (200u << 10)

struct node {
    uint64_t key;
    struct node *left, *right;
    uint64_t sum;
};

static char rootdir[4096], storedir[4200];
static unsigned char *pristine_mdb, *pristine_wal, *image;
static size_t mdb_len, wal_len;

static uint64_t sum_of(uint64_t key, int updated)
{
    uint64_t v = key * 0x9E3779B97F4A7C15ull;
    return updated && key % 3 == 0 ? ~v : v;
}

static uint8_t blob_byte(size_t i)
{
    return (uint8_t)(i * 131 + (i >> 9));
}

static int known_rc(int rc)
{
    return rc == 0 || rc > 0 || (rc <= CAIRN_CORRUPT && rc >= CAIRN_UNSUPPORTED);
}

static void options(cairn_options *o, unsigned ctl)
{
    cairn_options_init(o);
    o->max_bytes = (uint64_t)16 << 20;
    o->sync = CAIRN_SYNC_OFF;
    if (ctl & C_RDONLY)
        o->flags |= CAIRN_RDONLY;
}

static cairn_type node_type(cairn_store *s)
{
    static const size_t ptrs[] = {offsetof(struct node, left), offsetof(struct node, right)};
    cairn_type t = 0;
    int rc = cairn_type_register(s, "node", sizeof(struct node), ptrs, 2, &t);
    FZ_CHECK(rc == 0, "cairn_type_register: %s", cairn_strerror(rc));
    return t;
}

/* Keys lo..hi-1, balanced. */
static struct node *build_tree(cairn_txn *t, cairn_type type, uint64_t lo, uint64_t hi)
{
    if (lo >= hi)
        return NULL;
    uint64_t mid = lo + (hi - lo) / 2;
    struct node *n;
    int rc = cairn_alloc(t, type, 1, (void **)&n);
    FZ_CHECK(rc == 0, "cairn_alloc: %s", cairn_strerror(rc));
    n->key = mid;
    n->sum = sum_of(mid, 0);
    n->left = build_tree(t, type, lo, mid);
    n->right = build_tree(t, type, mid + 1, hi);
    return n;
}

static void update_tree(struct node *n)
{
    for (; n; n = n->right) {
        update_tree(n->left);
        if (n->key % 3 == 0)
            n->sum = sum_of(n->key, 1);
    }
}

static unsigned char *slurp(const char *dir, const char *name, size_t *len)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    FZ_CHECK(f != NULL, "%s: %s", path, strerror(errno));
    struct stat st;
    FZ_CHECK(fstat(fileno(f), &st) == 0, "stat %s", path);
    unsigned char *b = malloc((size_t)st.st_size + 1);
    FZ_CHECK(b && fread(b, 1, (size_t)st.st_size, f) == (size_t)st.st_size, "read %s", path);
    fclose(f);
    *len = (size_t)st.st_size;
    return b;
}

/* Build the pristine store in dir through the public API. */
static void build_pristine(const char *dir)
{
    cairn_options o;
    options(&o, 0);
    cairn_store *s;
    int rc = cairn_open(dir, &o, &s);
    FZ_CHECK(rc == 0, "create the pristine store: %s", cairn_strerror(rc));
    cairn_type type = node_type(s);
    cairn_txn *t;
    FZ_CHECK(cairn_txn_begin(s, &t) == 0, "begin");
    struct node *tree = build_tree(t, type, 0, NODES);
    unsigned char *blob;
    FZ_CHECK(cairn_alloc_bytes(t, BLOB, (void **)&blob) == 0, "alloc blob");
    for (size_t i = 0; i < BLOB; i++)
        blob[i] = blob_byte(i);
    FZ_CHECK(cairn_root_set(t, "tree", tree) == 0 && cairn_root_set(t, "blob", blob) == 0, "roots");
    FZ_CHECK(cairn_txn_commit(t) == 0, "commit");
    FZ_CHECK(cairn_checkpoint(s) == 0, "checkpoint");
    FZ_CHECK(cairn_txn_begin(s, &t) == 0, "begin");
    update_tree(tree);
    FZ_CHECK(cairn_txn_commit(t) == 0, "commit");
    FZ_CHECK(cairn_checkpoint(s) == 0, "checkpoint");
    FZ_CHECK(cairn_close(s) == 0, "close");
}

static const char *verify(cairn_store *s, int flip);
static int check_clean(cairn_store *s, const char *when);

/*
 * The pristine files come from FUZZ_LMDB_STORE (tests/fuzz/lmdb-store,
 * committed): a store has a random id that seeds its checksums, so only a
 * fixed store makes an input mean the same damage in every process.  If
 * that directory is missing the harness builds a store of its own (inputs
 * then reproduce only in that process); CAIRN_FUZZ_LMDB_SAVE=DIR copies
 * the one it built to DIR, to regenerate the committed one after a format
 * change.  Either way the intact store must open and check clean, or the
 * harness fails: a committed store that no longer opens would make every
 * input a refusal and the fuzzing worthless.
 */
static void init(void)
{
    snprintf(rootdir, sizeof rootdir, "%s", fz_scratch_dir("lmdb"));
    snprintf(storedir, sizeof storedir, "%s/store", rootdir);
    FZ_CHECK(mkdir(storedir, 0755) == 0, "mkdir %s: %s", storedir, strerror(errno));
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", FUZZ_LMDB_STORE);
    struct stat st;
    const char *save = getenv("CAIRN_FUZZ_LMDB_SAVE");
    if (save || stat(dir, &st) != 0) {
        snprintf(dir, sizeof dir, "%s/pristine", rootdir);
        build_pristine(dir);
    }
    pristine_mdb = slurp(dir, "data.mdb", &mdb_len);
    pristine_wal = slurp(dir, "wal", &wal_len);
    if (save) {
        FZ_CHECK(fz_write_file(save, "data.mdb", pristine_mdb, mdb_len) == 0, "write %s/data.mdb", save);
        FZ_CHECK(fz_write_file(save, "wal", pristine_wal, wal_len) == 0, "write %s/wal", save);
    }
    image = malloc(mdb_len + 1);
    FZ_CHECK(image != NULL, "malloc");
    if (fz_debug())
        fprintf(stderr, "fuzz_lmdb: pristine store %s: data.mdb %zu bytes, wal %zu bytes\n", dir, mdb_len, wal_len);
    fz_empty_dir(storedir);
    FZ_CHECK(fz_write_file(storedir, "lock", "", 0) == 0, "create lock file");
    FZ_CHECK(fz_write_file(storedir, "wal", pristine_wal, wal_len) == 0, "write wal");
    FZ_CHECK(fz_write_file(storedir, "data.mdb", pristine_mdb, mdb_len) == 0, "write data.mdb");
    cairn_options o;
    options(&o, C_RDONLY);
    cairn_store *s;
    int rc = cairn_open(storedir, &o, &s);
    FZ_CHECK(rc == 0, "the pristine store %s does not open (%s: %s): regenerate it with CAIRN_FUZZ_LMDB_SAVE", dir,
             cairn_strerror(rc), cairn_errmsg(NULL));
    FZ_CHECK(check_clean(s, "of the pristine store") && verify(s, 0) == NULL, "the pristine store %s is not clean",
             dir);
    cairn_close(s);
}

/* Compare the subtree at n with keys lo..hi-1.  Returns a description of
 * the first difference, or NULL. */
static const char *walk_tree(cairn_store *s, const struct node *n, uint64_t lo, uint64_t hi, int updated,
                             const struct node *flipped)
{
    for (;;) {
        if (lo >= hi)
            return n ? "a node where the tree has none" : NULL;
        if (!n)
            return "a missing node";
        int rc = cairn_prefault(s, n, sizeof *n, 0);
        FZ_CHECK(rc == 0, "cairn_prefault of node %p after a clean check: %s", (const void *)n, cairn_strerror(rc));
        uint64_t mid = lo + (hi - lo) / 2;
        if (n->key != mid)
            return "a wrong key";
        if (n->sum != (sum_of(mid, updated) ^ (n == flipped)))
            return "a wrong sum";
        const char *e = walk_tree(s, n->left, lo, mid, updated, flipped);
        if (e)
            return e;
        n = n->right, lo = mid + 1; /* the right spine iteratively */
    }
}

/* The whole pristine graph, with low bit of the root node's sum flipped
 * if flip is set (the harness's own update). */
static const char *verify(cairn_store *s, int flip)
{
    void *tree = NULL, *blob = NULL;
    if (cairn_root_get(s, "tree", &tree) != 0 || cairn_root_get(s, "blob", &blob) != 0)
        return "a root missing";
    const char *e = walk_tree(s, tree, 0, NODES, 1, flip ? tree : NULL);
    if (e)
        return e;
    int rc = cairn_prefault(s, blob, BLOB, 0);
    FZ_CHECK(rc == 0, "cairn_prefault of the blob after a clean check: %s", cairn_strerror(rc));
    for (size_t i = 0; i < BLOB; i++)
        if (((const unsigned char *)blob)[i] != blob_byte(i))
            return "a wrong blob byte";
    return NULL;
}

static int check_clean(cairn_store *s, const char *when)
{
    cairn_check_report rep;
    memset(&rep, 0, sizeof rep);
    int rc = cairn_check(s, &rep);
    FZ_CHECK(known_rc(rc), "cairn_check %s: %d", when, rc);
    if (fz_debug())
        fprintf(stderr, "fuzz_lmdb:   cairn_check %s: %d, %llu problems %s\n", when, rc,
                (unsigned long long)rep.problems, rep.first_problem);
    return rc == 0 && rep.problems == 0;
}

/* Flip the low bit of the root node's sum, commit, checkpoint, reopen,
 * check, verify. */
static void update_and_reopen(cairn_store **sp)
{
    cairn_store *s = *sp;
    cairn_txn *t;
    int rc = cairn_txn_begin(s, &t);
    FZ_CHECK(rc == 0, "cairn_txn_begin on a clean store: %s", cairn_strerror(rc));
    void *tree;
    FZ_CHECK(cairn_root_get(s, "tree", &tree) == 0, "root");
    struct node *n = tree;
    n->sum ^= 1;
    rc = cairn_txn_commit(t);
    FZ_CHECK(rc == 0, "cairn_txn_commit on a clean store: %s (%s)", cairn_strerror(rc), cairn_errmsg(s));
    rc = cairn_checkpoint(s);
    FZ_CHECK(rc == 0, "cairn_checkpoint on a clean store: %s (%s)", cairn_strerror(rc), cairn_errmsg(s));
    FZ_CHECK(cairn_close(s) == 0, "close");
    *sp = NULL;
    cairn_options o;
    options(&o, 0);
    rc = cairn_open(storedir, &o, &s);
    FZ_CHECK(rc == 0, "reopen after a clean update: %s (%s)", cairn_strerror(rc), cairn_errmsg(NULL));
    *sp = s;
    FZ_CHECK(check_clean(s, "after the update"), "the store is not clean after an update of a clean store");
    const char *e = verify(s, 1);
    FZ_CHECK(e == NULL, "after the update the graph has %s", e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    if (!pristine_mdb)
        init();
    unsigned ctl = data[0];
    uint32_t cut = fz_get32(data + 1);
    size_t len = cut == 0xffffffffu ? mdb_len : cut % (mdb_len + 1);
    memcpy(image, pristine_mdb, len);
    for (size_t at = 5; at + 5 <= size && len; at += 5) {
        uint8_t x = data[at + 4] ? data[at + 4] : 0xff;
        image[fz_get32(data + at) % len] ^= x;
    }
    fz_empty_dir(storedir);
    FZ_CHECK(fz_write_file(storedir, "lock", "", 0) == 0, "create lock file");
    FZ_CHECK(fz_write_file(storedir, "wal", pristine_wal, wal_len) == 0, "write wal");
    FZ_CHECK(fz_write_file(storedir, "data.mdb", image, len) == 0, "write data.mdb");

    cairn_options o;
    options(&o, ctl);
    int fds = fz_count_fds();
    cairn_store *s = NULL;
    int rc = cairn_open(storedir, &o, &s);
    FZ_CHECK(known_rc(rc), "cairn_open returned %d", rc);
    if (fz_debug())
        fprintf(stderr, "fuzz_lmdb: ctl %#x, data.mdb %zu of %zu bytes, %zu flips: cairn_open %d (%s)\n", ctl, len,
                mdb_len, (size - 5) / 5, rc, rc ? cairn_errmsg(NULL) : "");
    if (rc == 0) {
        FZ_CHECK(s != NULL, "cairn_open succeeded without a store");
        if (check_clean(s, "after open")) {
            const char *e = verify(s, 0);
            FZ_CHECK(e == NULL, "cairn_check found no problem but the graph has %s", e);
            if ((ctl & C_UPDATE) && !(ctl & C_RDONLY))
                update_and_reopen(&s);
        }
        if (s) {
            rc = cairn_close(s);
            FZ_CHECK(known_rc(rc), "cairn_close returned %d", rc);
        }
    } else {
        FZ_CHECK(s == NULL, "cairn_open failed (%d) but set *out", rc);
    }
    int fds_after = fz_count_fds();
    FZ_CHECK(fds_after <= fds, "file descriptors leaked: %d before cairn_open, %d after (rc %d)", fds, fds_after, rc);
    return 0;
}
