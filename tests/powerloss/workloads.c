/*
 * workloads.c - the data models and workloads of the power-loss test.
 *
 * Three data models, each deterministic in the transaction number:
 *
 *   list   (tests/lib/prefix_model.c, shared with tests/test_recovery.c)
 *          root "hdr": a linked list of nodes with payloads of 8..600
 *          bytes or 1-3 pages, a payload freed every 7th transaction, and
 *          a 4-page object in which every transaction rewrites a word of
 *          each page; an aborted transaction scribbling over all of it
 *          before every 5th.
 *   big    root "big": a 320 KiB blob rewritten whole by every transaction
 *          (80 pages in the log per commit), a new object of 70..142 KiB
 *          per transaction, the one two transactions older freed (runs of
 *          pages reused); an aborted big transaction before every third.
 *   churn  root "slots": 40 pointer slots; every transaction frees and
 *          allocates 2..5 of them (16 bytes .. 20000 bytes: slab classes
 *          and page runs, reused), and every 5th allocates an object of a
 *          type registered just before (an LMDB commit between log
 *          commits) whose pointer fields point at itself and at the root;
 *          an aborted transaction before every 7th.
 *
 * The workloads combine a model with a script; see the table at the end.
 */
#define _GNU_SOURCE
#include "workloads.h"
#include "prefix_model.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t mix(uint64_t a, uint64_t b)
{
    uint64_t z = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t mix3(uint64_t a, uint64_t b, uint64_t c)
{
    return mix(mix(a, b), c);
}

/* ================= model "list" (tests/lib/prefix_model.c) ================= */

static struct list_model list_4 = {.wide_pages = 4};

static int l_setup(cairn_store *s)
{
    return list_register(&list_4, s);
}

static int64_t l_current(cairn_store *s)
{
    int64_t n;
    return list_current(s, &n) ? -1 : n;
}

static int l_txn(cairn_store *s, int64_t i, char *err, size_t errlen)
{
    return list_txn(&list_4, s, i, err, errlen);
}

static int l_verify(cairn_store *s, int64_t lo, int64_t hi, int64_t *n, char *err, size_t errlen)
{
    return list_verify(&list_4, s, lo, hi, n, err, errlen);
}

static const struct model model_list = {"list", l_setup, l_current, l_txn, l_verify, list_objects};

/* ================= model "big" ================= */

#define B_BLOB_WORDS (320 * 1024 / 8)

struct bnode {
    int64_t val;
    struct bnode *next;
    uint64_t *data;
    int64_t words;
};

struct bhdr {
    int64_t last;
    uint64_t *blob;
    struct bnode *list;
};

static cairn_type b_node_t, b_hdr_t;

static int64_t b_words(int64_t i)
{
    return (70 + (i % 4) * 24) * 1024 / 8;
}

static uint64_t b_blob(int64_t n, size_t w)
{
    return n <= 0 ? 0 : mix((uint64_t)n, w);
}

static uint64_t b_data(int64_t i, size_t w)
{
    return mix((uint64_t)i ^ 0xB16B00B5ull, w);
}

static int b_setup(cairn_store *s)
{
    size_t np[] = {offsetof(struct bnode, next), offsetof(struct bnode, data)};
    size_t hp[] = {offsetof(struct bhdr, blob), offsetof(struct bhdr, list)};
    int rc = cairn_type_register(s, "bnode", sizeof(struct bnode), np, 2, &b_node_t);
    if (rc)
        return rc;
    return cairn_type_register(s, "bhdr", sizeof(struct bhdr), hp, 2, &b_hdr_t);
}

static int64_t b_current(cairn_store *s)
{
    void *p;
    if (cairn_root_get(s, "big", &p) != 0)
        return -1;
    return ((struct bhdr *)p)->last;
}

static int b_txn(cairn_store *s, int64_t i, char *err, size_t errlen)
{
    cairn_txn *t;
    void *p;
    int rc;
    if (i == 0) {
        rc = cairn_txn_begin(s, &t);
        if (rc)
            return rc;
        struct bhdr *h;
        rc = cairn_alloc(t, b_hdr_t, 1, (void **)&h);
        if (rc == 0)
            rc = cairn_alloc_bytes(t, B_BLOB_WORDS * 8, (void **)&h->blob);
        if (rc == 0)
            rc = cairn_root_set(t, "big", h);
        if (rc == 0)
            rc = cairn_txn_commit(t);
        if (rc)
            cairn_txn_abort(t);
        return rc;
    }
    rc = cairn_root_get(s, "big", &p);
    if (rc)
        return rc;
    struct bhdr *h = p;
    if (i % 3 == 2) {
        rc = cairn_txn_begin(s, &t);
        if (rc)
            return rc;
        uint64_t *junk;
        for (size_t w = 0; w < B_BLOB_WORDS; w += 509)
            h->blob[w] = ~0ull;
        rc = cairn_alloc_bytes(t, 100 * 1024, (void **)&junk);
        if (rc == 0) {
            junk[0] = 1;
            h->last = -1;
        }
        cairn_txn_abort(t);
        if (rc)
            return rc;
        for (size_t w = 0; w < B_BLOB_WORDS; w += 509)
            if (h->blob[w] != b_blob(i - 1, w) || h->last != i - 1)
                MODEL_FAIL("abort before txn %lld did not restore the blob", (long long)i);
    }
    rc = cairn_txn_begin(s, &t);
    if (rc)
        return rc;
    for (size_t w = 0; w < B_BLOB_WORDS; w++)
        h->blob[w] = b_blob(i, w);
    struct bnode *nd;
    rc = cairn_alloc(t, b_node_t, 1, (void **)&nd);
    if (rc == 0)
        rc = cairn_alloc_bytes(t, (size_t)b_words(i) * 8, (void **)&nd->data);
    if (rc == 0) {
        nd->val = i;
        nd->words = b_words(i);
        for (size_t w = 0; w < (size_t)nd->words; w++)
            nd->data[w] = b_data(i, w);
        nd->next = h->list;
        h->list = nd;
        if (nd->next && nd->next->next) {
            struct bnode *old = nd->next->next;
            rc = cairn_free(t, old->data);
            if (rc == 0)
                rc = cairn_free(t, old);
            nd->next->next = NULL;
        }
        h->last = i;
    }
    if (rc == 0)
        rc = cairn_txn_commit(t);
    if (rc)
        cairn_txn_abort(t);
    return rc;
}

static int b_verify(cairn_store *s, int64_t lo, int64_t hi, int64_t *out, char *err, size_t errlen)
{
    void *p;
    int rc = cairn_root_get(s, "big", &p);
    if (rc == CAIRN_NOT_FOUND) {
        if (model_in_range(-1, lo, hi, err, errlen))
            return -1;
        *out = -1;
        return 0;
    }
    if (rc)
        MODEL_FAIL("cairn_root_get(big): %d (%s)", rc, cairn_strerror(rc));
    const struct bhdr *h = p;
    int64_t n = h->last;
    if (model_in_range(n, lo, hi, err, errlen))
        return -1;
    if (!h->blob)
        MODEL_FAIL("txn %lld: blob is NULL", (long long)n);
    for (size_t w = 0; w < B_BLOB_WORDS; w++)
        if (h->blob[w] != b_blob(n, w))
            MODEL_FAIL("txn %lld: blob word %zu (page %zu) is %#llx, want %#llx (a partial transaction?)", (long long)n,
                       w, w / 512, (unsigned long long)h->blob[w], (unsigned long long)b_blob(n, w));
    const struct bnode *nd = h->list;
    for (int64_t k = n; k >= 1 && k >= n - 1; k--) {
        if (!nd)
            MODEL_FAIL("txn %lld: list ends before node %lld", (long long)n, (long long)k);
        if (nd->val != k || nd->words != b_words(k) || !nd->data)
            MODEL_FAIL("txn %lld: node %lld (%lld words, data %p) where node %lld belongs", (long long)n,
                       (long long)nd->val, (long long)nd->words, (void *)nd->data, (long long)k);
        for (size_t w = 0; w < (size_t)nd->words; w++)
            if (nd->data[w] != b_data(k, w))
                MODEL_FAIL("txn %lld: node %lld word %zu is %#llx, want %#llx", (long long)n, (long long)k, w,
                           (unsigned long long)nd->data[w], (unsigned long long)b_data(k, w));
        nd = nd->next;
    }
    if (nd)
        MODEL_FAIL("txn %lld: list continues (node %lld)", (long long)n, (long long)nd->val);
    *out = n;
    return 0;
}

static uint64_t b_objects(int64_t n)
{
    if (n < 0)
        return 0;
    return 2 + 2 * (uint64_t)(n < 2 ? n : 2);
}

static const struct model model_big = {"big", b_setup, b_current, b_txn, b_verify, b_objects};

/* ================= model "churn" ================= */

#define C_SLOTS 40

struct cslots {
    int64_t last;
    void *slot[C_SLOTS];
};

static cairn_type c_slots_t;
static const size_t c_sizes[] = {16, 24, 40, 72, 100, 250, 512, 700, 1500, 2048, 3000, 4096, 9000, 20000};
#define C_NSIZES (sizeof c_sizes / sizeof c_sizes[0])

enum { C_NONE = 0, C_BYTES, C_TYPED };

struct cslot_sim {
    int kind;
    int64_t i;
    int r;
    size_t size;
};

enum { C_FREE = 1, C_ALLOC, C_ALLOC_TYPED };

struct caction {
    int op;
    int j;
    size_t size;
};

/* What transaction i does, in order. */
static int c_plan(int64_t i, struct caction *a)
{
    int n = 2 + (int)(i % 4);
    for (int r = 0; r < n; r++) {
        a[r].j = (int)(mix3((uint64_t)i, (uint64_t)r, 1) % C_SLOTS);
        uint64_t kind = mix3((uint64_t)i, (uint64_t)r, 2) % 10;
        if (kind < 2) {
            a[r].op = C_FREE;
            a[r].size = 0;
        } else if (r == 0 && i % 5 == 0) {
            a[r].op = C_ALLOC_TYPED;
            a[r].size = 48 + (size_t)(i % 3) * 16;
        } else {
            a[r].op = C_ALLOC;
            a[r].size = c_sizes[mix3((uint64_t)i, (uint64_t)r, 3) % C_NSIZES];
        }
    }
    return n;
}

static void c_simulate(int64_t n, struct cslot_sim *sim)
{
    memset(sim, 0, C_SLOTS * sizeof *sim);
    struct caction a[8];
    for (int64_t i = 1; i <= n; i++) {
        int na = c_plan(i, a);
        for (int r = 0; r < na; r++) {
            struct cslot_sim *x = &sim[a[r].j];
            if (a[r].op == C_FREE) {
                x->kind = C_NONE;
            } else {
                x->kind = a[r].op == C_ALLOC ? C_BYTES : C_TYPED;
                x->i = i;
                x->r = r;
                x->size = a[r].size;
            }
        }
    }
}

static uint64_t c_tag(int64_t i, int r, int j)
{
    return ((uint64_t)i << 16) | ((uint64_t)r << 8) | (uint64_t)j;
}

static unsigned char c_byte(int64_t i, int r, size_t k)
{
    return (unsigned char)(mix3((uint64_t)i, (uint64_t)r, 4) + k * 13 + (k >> 8));
}

static int c_setup(cairn_store *s)
{
    size_t offs[C_SLOTS];
    for (int k = 0; k < C_SLOTS; k++)
        offs[k] = offsetof(struct cslots, slot) + (size_t)k * sizeof(void *);
    return cairn_type_register(s, "cslots", sizeof(struct cslots), offs, C_SLOTS, &c_slots_t);
}

static int64_t c_current(cairn_store *s)
{
    void *p;
    if (cairn_root_get(s, "slots", &p) != 0)
        return -1;
    return ((struct cslots *)p)->last;
}

static int c_typed_type(cairn_store *s, int64_t i, size_t size, cairn_type *out)
{
    char name[64];
    snprintf(name, sizeof name, "churn%lld", (long long)i);
    size_t offs[] = {8, 24};
    return cairn_type_register(s, name, size, offs, 2, out);
}

static int c_txn(cairn_store *s, int64_t i, char *err, size_t errlen)
{
    cairn_txn *t;
    void *p;
    int rc;
    if (i == 0) {
        rc = cairn_txn_begin(s, &t);
        if (rc)
            return rc;
        struct cslots *root;
        rc = cairn_alloc(t, c_slots_t, 1, (void **)&root);
        if (rc == 0)
            rc = cairn_root_set(t, "slots", root);
        if (rc == 0)
            rc = cairn_txn_commit(t);
        if (rc)
            cairn_txn_abort(t);
        return rc;
    }
    rc = cairn_root_get(s, "slots", &p);
    if (rc)
        return rc;
    struct cslots *root = p;
    if (i % 7 == 3) {
        rc = cairn_txn_begin(s, &t);
        if (rc)
            return rc;
        int freed = 0;
        for (int k = 0; k < C_SLOTS && freed < 5 && rc == 0; k++) {
            if (root->slot[k]) {
                rc = cairn_free(t, root->slot[k]);
                root->slot[k] = NULL;
                freed++;
            }
        }
        for (int k = 0; k < 3 && rc == 0; k++)
            rc = cairn_alloc_bytes(t, c_sizes[(size_t)(i + k) % C_NSIZES], &root->slot[(i + k) % C_SLOTS]);
        root->last = -1;
        cairn_txn_abort(t);
        if (rc)
            return rc;
        if (root->last != i - 1)
            MODEL_FAIL("abort before txn %lld did not restore the slots", (long long)i);
    }
    struct caction a[8];
    int na = c_plan(i, a);
    cairn_type typed = 0;
    for (int r = 0; r < na; r++)
        if (a[r].op == C_ALLOC_TYPED) {
            rc = c_typed_type(s, i, a[r].size, &typed);
            if (rc)
                return rc;
        }
    rc = cairn_txn_begin(s, &t);
    if (rc)
        return rc;
    for (int r = 0; r < na && rc == 0; r++) {
        int j = a[r].j;
        if (root->slot[j]) {
            rc = cairn_free(t, root->slot[j]);
            root->slot[j] = NULL;
        }
        if (rc || a[r].op == C_FREE)
            continue;
        if (a[r].op == C_ALLOC_TYPED) {
            uint64_t *o;
            rc = cairn_alloc(t, typed, 1, (void **)&o);
            if (rc)
                break;
            o[0] = c_tag(i, r, j);
            o[1] = (uint64_t)(uintptr_t)o;
            o[2] = a[r].size;
            o[3] = (uint64_t)(uintptr_t)root;
            for (size_t w = 4; w < a[r].size / 8; w++)
                o[w] = mix3((uint64_t)i, (uint64_t)r, w);
            root->slot[j] = o;
        } else {
            unsigned char *o;
            rc = cairn_alloc_bytes(t, a[r].size, (void **)&o);
            if (rc)
                break;
            uint64_t hd[2] = {c_tag(i, r, j), a[r].size};
            memcpy(o, hd, 16);
            for (size_t k = 16; k < a[r].size; k++)
                o[k] = c_byte(i, r, k);
            root->slot[j] = o;
        }
    }
    if (rc == 0) {
        root->last = i;
        rc = cairn_txn_commit(t);
    }
    if (rc)
        cairn_txn_abort(t);
    return rc;
}

static int c_verify(cairn_store *s, int64_t lo, int64_t hi, int64_t *out, char *err, size_t errlen)
{
    void *p;
    int rc = cairn_root_get(s, "slots", &p);
    if (rc == CAIRN_NOT_FOUND) {
        if (model_in_range(-1, lo, hi, err, errlen))
            return -1;
        *out = -1;
        return 0;
    }
    if (rc)
        MODEL_FAIL("cairn_root_get(slots): %d (%s)", rc, cairn_strerror(rc));
    const struct cslots *root = p;
    int64_t n = root->last;
    if (model_in_range(n, lo, hi, err, errlen))
        return -1;
    struct cslot_sim sim[C_SLOTS];
    c_simulate(n, sim);
    for (int j = 0; j < C_SLOTS; j++) {
        const struct cslot_sim *x = &sim[j];
        const uint64_t *o = root->slot[j];
        if (x->kind == C_NONE) {
            if (o)
                MODEL_FAIL("txn %lld: slot %d holds %p, want NULL", (long long)n, j, (const void *)o);
            continue;
        }
        if (!o)
            MODEL_FAIL("txn %lld: slot %d is NULL, want the object of txn %lld", (long long)n, j, (long long)x->i);
        if (o[0] != c_tag(x->i, x->r, j) || o[x->kind == C_TYPED ? 2 : 1] != x->size)
            MODEL_FAIL("txn %lld: slot %d holds tag %#llx size %llu, want tag %#llx size %zu (txn %lld)", (long long)n,
                       j, (unsigned long long)o[0], (unsigned long long)o[x->kind == C_TYPED ? 2 : 1],
                       (unsigned long long)c_tag(x->i, x->r, j), x->size, (long long)x->i);
        if (x->kind == C_TYPED) {
            if (o[1] != (uint64_t)(uintptr_t)o || o[3] != (uint64_t)(uintptr_t)root)
                MODEL_FAIL("txn %lld: slot %d typed object pointers %#llx %#llx, want %p %p", (long long)n, j,
                           (unsigned long long)o[1], (unsigned long long)o[3], (const void *)o, (const void *)root);
            for (size_t w = 4; w < x->size / 8; w++)
                if (o[w] != mix3((uint64_t)x->i, (uint64_t)x->r, w))
                    MODEL_FAIL("txn %lld: slot %d typed object word %zu wrong", (long long)n, j, w);
        } else {
            const unsigned char *b = (const unsigned char *)o;
            for (size_t k = 16; k < x->size; k++)
                if (b[k] != c_byte(x->i, x->r, k))
                    MODEL_FAIL("txn %lld: slot %d byte %zu is %u, want %u", (long long)n, j, k, b[k],
                               c_byte(x->i, x->r, k));
        }
    }
    *out = n;
    return 0;
}

static uint64_t c_objects(int64_t n)
{
    if (n < 0)
        return 0;
    struct cslot_sim sim[C_SLOTS];
    c_simulate(n, sim);
    uint64_t k = 1;
    for (int j = 0; j < C_SLOTS; j++)
        k += sim[j].kind != C_NONE;
    return k;
}

static const struct model model_churn = {"churn", c_setup, c_current, c_txn, c_verify, c_objects};

/* ================= the workloads ================= */

const struct workload workloads[] = {
    {.name = "small",
     .what = "small transactions (list model), aborts in between",
     .m = &model_list,
     .sync = CAIRN_SYNC_FULL,
     .txns = 60,
     .txns_quick = 24},
    {.name = "big",
     .what = "multi-extent transactions: 320 KiB rewritten per commit, 70-142 KiB objects",
     .m = &model_big,
     .sync = CAIRN_SYNC_FULL,
     .txns = 12,
     .txns_quick = 6,
     .ckpt_every = 4},
    {.name = "churn",
     .what = "alloc/free churn with reuse, types registered between commits",
     .m = &model_churn,
     .sync = CAIRN_SYNC_FULL,
     .txns = 60,
     .txns_quick = 24},
    {.name = "ckpt",
     .what = "explicit checkpoint after every 2nd commit, close and reopen midway",
     .m = &model_list,
     .sync = CAIRN_SYNC_FULL,
     .txns = 30,
     .txns_quick = 14,
     .ckpt_every = 2,
     .reopen_after = 7},
    {.name = "recover",
     .what = "opening a store whose log holds 30 commits (recovery), then going on",
     .m = &model_list,
     .sync = CAIRN_SYNC_FULL,
     .txns = 12,
     .txns_quick = 6,
     .ckpt_every = 4,
     .base_txns = 30},
    {.name = "recover2",
     .what = "a power loss during recovery of a torn log (double crash), then going on",
     .m = &model_churn,
     .sync = CAIRN_SYNC_FULL,
     .txns = 10,
     .txns_quick = 5,
     .ckpt_every = 4,
     .base_txns = 24,
     .base_crash = 1},
    {.name = "syncoff",
     .what = "CAIRN_SYNC_OFF, checkpoint every 6th commit",
     .m = &model_churn,
     .sync = CAIRN_SYNC_OFF,
     .txns = 48,
     .txns_quick = 24,
     .ckpt_every = 6},
    {.name = "bgflush",
     .what = "background flusher checkpointing while commits go on (timing-dependent)",
     .m = &model_list,
     .sync = CAIRN_SYNC_FULL,
     .ckpt_bytes = 2048,
     .txns = 30,
     .txns_quick = 14,
     .timing_dependent = 1},
};
const size_t n_workloads = sizeof workloads / sizeof workloads[0];

const struct workload *workload_find(const char *name)
{
    for (size_t i = 0; i < n_workloads; i++)
        if (strcmp(workloads[i].name, name) == 0)
            return &workloads[i];
    return NULL;
}

void workload_options(const struct workload *w, cairn_options *o)
{
    cairn_options_init(o);
    o->max_bytes = (uint64_t)1 << 30;
    o->sync = w->sync;
    if (w->ckpt_bytes)
        o->checkpoint_bytes = w->ckpt_bytes;
}

/* ---- running a workload (in its own process) ---- */

static int ack_fd = -1;

static void send_msg(int kind, int64_t txn)
{
    struct msg m = {.kind = kind, .txn = txn};
    if (write(ack_fd, &m, sizeof m) != (ssize_t)sizeof m)
        _exit(90);
}

static void wl_fail(const char *what, int64_t i, int rc, cairn_store *s, const char *err) __attribute__((noreturn));
static void wl_fail(const char *what, int64_t i, int rc, cairn_store *s, const char *err)
{
    fprintf(stderr, "workload: %s (txn %lld): %d (%s) %s %s\n", what, (long long)i, rc, cairn_strerror(rc),
            s ? cairn_errmsg(s) : "", err ? err : "");
    fflush(stderr);
    _exit(80);
}

static cairn_store *wl_open(const struct workload *w, const char *dir, int sync_off)
{
    cairn_options o;
    workload_options(w, &o);
    if (sync_off)
        o.sync = CAIRN_SYNC_OFF;
    cairn_store *s;
    int rc = cairn_open(dir, &o, &s);
    if (rc)
        wl_fail("cairn_open", -1, rc, NULL, NULL);
    rc = w->m->setup(s);
    if (rc)
        wl_fail("setup (type registration)", -1, rc, s, NULL);
    return s;
}

void workload_main(const struct workload *w, const char *dir, const char *ackfile, int quick, int prepare)
{
    ack_fd = open(ackfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (ack_fd < 0) {
        perror(ackfile);
        _exit(91);
    }
    cairn_store *s = wl_open(w, dir, prepare && w->base_crash);
    int64_t cur = w->m->current(s);
    /* Recovery made what it found durable (LMDB commit, then log reset). */
    if (cur >= 0 && !prepare)
        send_msg(MSG_DURABLE, cur);
    int64_t end = prepare ? w->base_txns : cur + (quick ? w->txns_quick : w->txns);
    if (!prepare && w->base_txns && !w->base_crash && cur < w->base_txns)
        wl_fail("the prepared store holds too little", cur, 0, s, NULL);
    int64_t done = 0;
    for (int64_t i = cur + 1; i <= end; i++) {
        char err[256] = "";
        send_msg(MSG_ATTEMPT, i);
        int rc = w->m->txn(s, i, err, sizeof err);
        if (rc)
            wl_fail("transaction", i, rc, s, err);
        send_msg(MSG_ACK, i);
        if (w->sync == CAIRN_SYNC_FULL && !(prepare && w->base_crash))
            send_msg(MSG_DURABLE, i);
        done++;
        if (prepare) {
            if (w->base_crash && i == w->base_txns / 2) {
                rc = cairn_checkpoint(s);
                if (rc)
                    wl_fail("cairn_checkpoint", i, rc, s, NULL);
                send_msg(MSG_DURABLE, i);
            }
            continue;
        }
        if (w->ckpt_every && done % w->ckpt_every == 0) {
            rc = cairn_checkpoint(s);
            if (rc)
                wl_fail("cairn_checkpoint", i, rc, s, NULL);
            send_msg(MSG_DURABLE, i);
        }
        if (w->reopen_after && done == w->reopen_after) {
            rc = cairn_close(s);
            if (rc)
                wl_fail("cairn_close", i, rc, NULL, NULL);
            send_msg(MSG_DURABLE, i);
            s = wl_open(w, dir, 0);
            if (w->m->current(s) != i)
                wl_fail("reopened store is not at the last commit", i, 0, s, NULL);
        }
        if (w->sleep_us)
            usleep((useconds_t)w->sleep_us);
    }
    if (prepare) {
        /* Leave without closing: the commits are in the log only.  For a
         * crashed base, sync() is the sync point the harness stops at,
         * with every commit since the checkpoint unsynced. */
        if (w->base_crash)
            sync();
        send_msg(MSG_DONE, end);
        exit(0); /* not _exit: the shim counts sync points in a destructor */
    }
    int rc = cairn_close(s);
    if (rc)
        wl_fail("cairn_close", end, rc, NULL, NULL);
    send_msg(MSG_DURABLE, end);
    send_msg(MSG_DONE, end);
    exit(0);
}
