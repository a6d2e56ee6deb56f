/* test_txn.c - transactions (commit, abort, external pointers, waiting),
 * the type catalog, roots, and open/close modes. */
#define _GNU_SOURCE
#include "testutil.h"
#include "storeutil.h"
#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ---- */

struct node {
    int64_t key;
    struct node *next;
    struct node *prev;
    unsigned char *data; /* raw bytes object */
    uint64_t data_len;
};

static const size_t node_ptrs[] = {offsetof(struct node, next), offsetof(struct node, prev),
                                   offsetof(struct node, data)};

static cairn_type reg_node(cairn_store *s)
{
    cairn_type t = 0;
    assert_cairn_ok(cairn_type_register(s, "node", sizeof(struct node), node_ptrs, 3, &t));
    assert_int_not_equal(t, CAIRN_TYPE_BYTES);
    return t;
}

static uint8_t pat(uint64_t seed, size_t k)
{
    return (uint8_t)(seed * 131 + k * 7 + (k >> 8) * 13 + 1);
}

static void fill(unsigned char *p, size_t n, uint64_t seed)
{
    for (size_t k = 0; k < n; k++)
        p[k] = pat(seed, k);
}

static void check_fill(const unsigned char *p, size_t n, uint64_t seed, const char *what)
{
    for (size_t k = 0; k < n; k++)
        if (p[k] != pat(seed, k))
            fail_msg("%s: byte %zu of %zu is 0x%02x, want 0x%02x", what, k, n, p[k], pat(seed, k));
}

static void check_zero(const unsigned char *p, size_t n, const char *what)
{
    for (size_t k = 0; k < n; k++)
        if (p[k])
            fail_msg("%s: byte %zu of %zu is 0x%02x, want 0", what, k, n, p[k]);
}

static int dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n == 0;
}

/* ---- commit, reopen ---- */

#define RING 60

static size_t ring_data_len(int i)
{
    return i % 10 == 9 ? 5000 + (size_t)i * 3 : 1 + (size_t)i * 37;
}

static void check_ring(cairn_store *s, int n, int removed)
{
    struct node *head = NULL, *mid = NULL;
    assert_cairn_ok(cairn_root_get(s, "ring", (void **)&head));
    assert_cairn_ok(cairn_root_get(s, "mid", (void **)&mid));
    assert_non_null(head);
    struct node *x = head;
    int seen = 0, saw_mid = 0;
    for (int i = 0; i < n; i++) {
        if (i == removed)
            continue;
        char what[64];
        snprintf(what, sizeof what, "node %d data", i);
        if (x->key != i)
            fail_msg("node %d: key %lld", i, (long long)x->key);
        assert_non_null(x->next);
        assert_ptr_equal(x->next->prev, x);
        assert_ptr_equal(x->prev->next, x);
        assert_int_equal(x->data_len, ring_data_len(i));
        check_fill(x->data, x->data_len, (uint64_t)i, what);
        if (x == mid) {
            saw_mid = 1;
            assert_int_equal(i, RING / 2);
        }
        x = x->next;
        seen++;
    }
    assert_ptr_equal(x, head);
    assert_true(saw_mid);
    assert_int_equal(seen, removed >= 0 ? n - 1 : n);
}

/* Build the ring in t (no cmocka: also used in a child process).
 * Returns 0 or the first failing return code. */
static int build_ring(cairn_txn *t, cairn_type nt)
{
    struct node *nodes[RING];
    int rc;
    for (int i = 0; i < RING; i++) {
        if ((rc = cairn_alloc(t, nt, 1, (void **)&nodes[i])))
            return rc;
        nodes[i]->key = i;
        nodes[i]->data_len = ring_data_len(i);
        /* out pointing into store memory */
        if ((rc = cairn_alloc_bytes(t, nodes[i]->data_len, (void **)&nodes[i]->data)))
            return rc;
        fill(nodes[i]->data, nodes[i]->data_len, (uint64_t)i);
    }
    for (int i = 0; i < RING; i++) {
        nodes[i]->next = nodes[(i + 1) % RING];
        nodes[i]->prev = nodes[(i + RING - 1) % RING];
    }
    if ((rc = cairn_root_set(t, "ring", nodes[0])) || (rc = cairn_root_set(t, "mid", nodes[RING / 2])))
        return rc;
    return 0;
}

static void commit_then_reopen_persists(void **state)
{
    const char *dir = *state;
    cairn_store *s = tu_open(dir, 0);
    cairn_type nt = reg_node(s);
    cairn_txn *t;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(build_ring(t, nt));
    assert_cairn_ok(cairn_txn_commit(t));
    check_ring(s, RING, -1);

    struct tu_blocker b = tu_close_and_block(s);
    s = tu_open(dir, 0);
    void *base;
    assert_cairn_ok(cairn_range(s, &base, NULL));
    assert_ptr_not_equal(base, b.addr);
    check_ring(s, RING, -1);

    /* Second transaction: unlink and free node 7, then checkpoint; a third
     * commit stays in the log only until close. */
    struct node *head;
    assert_cairn_ok(cairn_root_get(s, "ring", (void **)&head));
    struct node *x = head;
    for (int i = 0; i < 7; i++)
        x = x->next;
    assert_int_equal(x->key, 7);
    assert_cairn_ok(cairn_txn_begin(s, &t));
    x->prev->next = x->next;
    x->next->prev = x->prev;
    assert_cairn_ok(cairn_free(t, x->data));
    assert_cairn_ok(cairn_free(t, x));
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_ok(cairn_checkpoint(s));
    assert_cairn_ok(cairn_txn_begin(s, &t));
    head->key = 0; /* rewrite with the same value: still a logged write */
    assert_cairn_ok(cairn_txn_commit(t));
    check_ring(s, RING, 7);
    assert_cairn_ok(cairn_close(s));
    tu_unblock(b);

    s = tu_open(dir, 0);
    check_ring(s, RING, 7);
    assert_cairn_ok(cairn_close(s));
}

/* The process ends without cairn_close: committed transactions are in
 * the log only, and the next open recovers them; the transaction left
 * open is lost. */
static void crash_child(void *arg)
{
    const char *dir = arg;
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    cairn_txn *t;
    cairn_type nt;
    if (cairn_open(dir, &o, &s))
        _exit(10);
    if (cairn_type_register(s, "node", sizeof(struct node), node_ptrs, 3, &nt))
        _exit(11);
    if (cairn_txn_begin(s, &t) || build_ring(t, nt) || cairn_txn_commit(t))
        _exit(12);
    struct node *head;
    if (cairn_root_get(s, "ring", (void **)&head) || cairn_txn_begin(s, &t))
        _exit(13);
    head->key = -5;
    head->next->data[0] ^= 0xff;
    void *ghost;
    if (cairn_alloc_bytes(t, 100, &ghost) || cairn_root_set(t, "ghost", ghost) || cairn_root_set(t, "mid", NULL))
        _exit(14);
    _exit(0); /* no commit, no close */
}

static void commit_survives_exit_without_close(void **state)
{
    const char *dir = *state;
    int status = tu_in_child(crash_child, (void *)dir);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("child failed: status %#x", status);
    /* Needs recovery: a read-only open replays the log in memory, shows
     * the commit, and writes nothing. */
    cairn_options o;
    tu_options(&o);
    o.flags = CAIRN_RDONLY;
    cairn_store *s;
    size_t dlen, wlen;
    unsigned char *data = tu_file_read(dir, "data.mdb", &dlen), *wal = tu_file_read(dir, "wal", &wlen);
    assert_cairn_ok(cairn_open(dir, &o, &s));
    check_ring(s, RING, -1);
    void *g;
    assert_cairn_rc(cairn_root_get(s, "ghost", &g), CAIRN_NOT_FOUND);
    assert_cairn_ok(cairn_close(s));
    size_t dlen2, wlen2;
    unsigned char *data2 = tu_file_read(dir, "data.mdb", &dlen2), *wal2 = tu_file_read(dir, "wal", &wlen2);
    assert_int_equal(dlen, dlen2);
    assert_memory_equal(data, data2, dlen);
    assert_int_equal(wlen, wlen2);
    assert_memory_equal(wal, wal2, wlen);
    free(data), free(data2), free(wal), free(wal2);
    s = tu_open(dir, 0);
    check_ring(s, RING, -1);
    void *r;
    assert_cairn_rc(cairn_root_get(s, "ghost", &r), CAIRN_NOT_FOUND);
    assert_cairn_ok(cairn_close(s));
    assert_cairn_ok(cairn_open(dir, &o, &s));
    check_ring(s, RING, -1);
    assert_cairn_ok(cairn_close(s));
}

/* ---- abort ---- */

#define NOBJ 9
static const size_t obj_sizes[NOBJ] = {1, 17, 64, 100, 2048, 3000, 4096, 70000, 200000};

static void abort_restores_every_byte(void **state)
{
    const char *dir = *state;
    cairn_store *s = tu_open(dir, 0);
    cairn_type nt = reg_node(s);
    cairn_txn *t;
    unsigned char *obj[NOBJ];
    unsigned char *copy[NOBJ];
    struct node *nd[3];

    assert_cairn_ok(cairn_txn_begin(s, &t));
    for (int i = 0; i < NOBJ; i++) {
        assert_cairn_ok(cairn_alloc_bytes(t, obj_sizes[i], (void **)&obj[i]));
        fill(obj[i], obj_sizes[i], 100 + (uint64_t)i);
    }
    for (int i = 0; i < 3; i++) {
        assert_cairn_ok(cairn_alloc(t, nt, 1, (void **)&nd[i]));
        nd[i]->key = 1000 + i;
    }
    nd[0]->next = nd[1];
    nd[1]->prev = nd[0];
    nd[0]->data = obj[3];
    nd[0]->data_len = obj_sizes[3];
    assert_cairn_ok(cairn_root_set(t, "n0", nd[0]));
    assert_cairn_ok(cairn_root_set(t, "n2", nd[2]));
    assert_cairn_ok(cairn_txn_commit(t));
    for (int i = 0; i < NOBJ; i++) {
        copy[i] = malloc(obj_sizes[i]);
        assert_non_null(copy[i]);
        memcpy(copy[i], obj[i], obj_sizes[i]);
    }
    struct node ncopy[3];
    for (int i = 0; i < 3; i++)
        ncopy[i] = *nd[i];

    /* The transaction to abort: new allocations first (so that the same
     * sequence can be replayed afterwards), then writes everywhere, a free,
     * root changes. */
    static const size_t new_sizes[] = {24, 24, 100, 2048, 5000, 65536, 1 << 20};
    enum { NNEW = sizeof new_sizes / sizeof new_sizes[0] };
    unsigned char *fresh[NNEW];
    struct node *fresh_node;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    for (int i = 0; i < NNEW; i++) {
        assert_cairn_ok(cairn_alloc_bytes(t, new_sizes[i], (void **)&fresh[i]));
        memset(fresh[i], 0xab, new_sizes[i]);
    }
    assert_cairn_ok(cairn_alloc(t, nt, 1, (void **)&fresh_node));
    fresh_node->key = -1;
    fresh_node->next = nd[2];
    srand(7);
    for (int i = 0; i < NOBJ; i++) {
        for (int k = 0; k < 50; k++)
            obj[i][(size_t)rand() % obj_sizes[i]] ^= 0x5a;
        memset(obj[i], 0xee, obj_sizes[i] / 2);
        obj[i][obj_sizes[i] - 1] ^= 0xff;
    }
    nd[0]->next = fresh_node;
    nd[0]->data = fresh[4];
    nd[1]->prev = NULL;
    nd[2]->key = 77;
    nd[2]->next = nd[2];
    assert_cairn_ok(cairn_free(t, obj[5])); /* committed objects, freed */
    assert_cairn_ok(cairn_free(t, obj[8]));
    assert_cairn_ok(cairn_root_set(t, "n0", nd[1]));       /* overwrite */
    assert_cairn_ok(cairn_root_set(t, "n2", NULL));        /* remove */
    assert_cairn_ok(cairn_root_set(t, "new", fresh_node)); /* add */
    cairn_txn_abort(t);

    for (int i = 0; i < NOBJ; i++) {
        char what[64];
        snprintf(what, sizeof what, "object %d (%zu bytes) after abort", i, obj_sizes[i]);
        if (memcmp(obj[i], copy[i], obj_sizes[i]) != 0) {
            for (size_t k = 0; k < obj_sizes[i]; k++)
                if (obj[i][k] != copy[i][k])
                    fail_msg("%s: byte %zu is 0x%02x, want 0x%02x", what, k, obj[i][k], copy[i][k]);
        }
    }
    for (int i = 0; i < 3; i++)
        assert_memory_equal(nd[i], &ncopy[i], sizeof ncopy[i]);
    /* What the aborted allocations occupied was free, i.e. zero, before. */
    for (int i = 0; i < NNEW; i++)
        check_zero(fresh[i], new_sizes[i], "memory of an aborted allocation");
    check_zero((unsigned char *)fresh_node, sizeof *fresh_node, "memory of an aborted node");
    void *r;
    assert_cairn_ok(cairn_root_get(s, "n0", &r));
    assert_ptr_equal(r, nd[0]);
    assert_cairn_ok(cairn_root_get(s, "n2", &r));
    assert_ptr_equal(r, nd[2]);
    assert_cairn_rc(cairn_root_get(s, "new", &r), CAIRN_NOT_FOUND);

    /* The allocator state came back too: the same sequence gives the same
     * addresses, and the object freed in the aborted txn is still live. */
    assert_cairn_ok(cairn_txn_begin(s, &t));
    for (int i = 0; i < NNEW; i++) {
        void *p;
        assert_cairn_ok(cairn_alloc_bytes(t, new_sizes[i], &p));
        if (p != fresh[i])
            fail_msg("allocation %d (%zu bytes) after abort: %p, the aborted txn got %p", i, new_sizes[i], p,
                     (void *)fresh[i]);
    }
    void *pn;
    assert_cairn_ok(cairn_alloc(t, nt, 1, &pn));
    assert_ptr_equal(pn, fresh_node);
    assert_cairn_ok(cairn_free(t, obj[5]));
    assert_cairn_rc(cairn_free(t, obj[5]), CAIRN_INVALID);
    check_zero(obj[5], obj_sizes[5], "freed object");
    assert_cairn_ok(cairn_free(t, obj[8]));
    assert_cairn_rc(cairn_free(t, obj[8]), CAIRN_INVALID);
    check_zero(obj[8], obj_sizes[8], "freed object");
    obj[0][0] = 0x42;
    copy[0][0] = 0x42;
    assert_cairn_ok(cairn_txn_commit(t));

    /* Abort after several commits goes back to the latest commit only. */
    assert_cairn_ok(cairn_txn_begin(s, &t));
    obj[1][3] = 0x11;
    assert_cairn_ok(cairn_txn_commit(t));
    copy[1][3] = 0x11;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    obj[1][3] = 0x22;
    obj[0][0] = 0x23;
    cairn_txn_abort(t);
    assert_int_equal(obj[1][3], 0x11);
    assert_int_equal(obj[0][0], 0x42);
    /* An empty transaction aborts and commits fine too. */
    assert_cairn_ok(cairn_txn_begin(s, &t));
    cairn_txn_abort(t);
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_txn_commit(t));

    /* Reopen: the committed state, nothing of the aborted transactions. */
    size_t off[NOBJ];
    void *base;
    assert_cairn_ok(cairn_range(s, &base, NULL));
    for (int i = 0; i < NOBJ; i++)
        off[i] = (size_t)(obj[i] - (unsigned char *)base);
    struct tu_blocker b = tu_close_and_block(s);
    s = tu_open(dir, 0);
    assert_cairn_ok(cairn_range(s, &base, NULL));
    for (int i = 0; i < NOBJ; i++) {
        if (i == 5 || i == 8)
            continue;
        char what[64];
        snprintf(what, sizeof what, "object %d after reopen", i);
        unsigned char *p = (unsigned char *)base + off[i];
        if (memcmp(p, copy[i], obj_sizes[i]) != 0)
            fail_msg("%s differs from the committed bytes", what);
    }
    check_zero((unsigned char *)base + off[5], obj_sizes[5], "freed object after reopen");
    check_zero((unsigned char *)base + off[8], obj_sizes[8], "freed object after reopen");
    struct node *n0;
    assert_cairn_ok(cairn_root_get(s, "n0", (void **)&n0));
    assert_int_equal(n0->key, 1000);
    assert_ptr_equal(n0->data, (unsigned char *)base + off[3]);
    assert_int_equal(n0->next->key, 1001);
    assert_ptr_equal(n0->next->prev, n0);
    assert_cairn_ok(cairn_close(s));
    tu_unblock(b);
    for (int i = 0; i < NOBJ; i++)
        free(copy[i]);
}

/* ---- external pointers ---- */

struct pair {
    int64_t k;
    void *a;
    void *b;
};
static const size_t pair_ptrs[] = {offsetof(struct pair, a), offsetof(struct pair, b)};

/* Pages of extents the page store never had load as zeros and their first
 * write saves no before-image (the hole of the shadow is one): an abort
 * still leaves zeros there, and a page committed since keeps its
 * committed bytes through a later aborted write (it is no zero page any
 * more), before a checkpoint and after one. */
static void fresh_pages_roll_back_and_commit(void **state)
{
    const char *dir = *state;
    enum { LEN = 200 * 1024, PART = 3 * 4096 + 100 };
    cairn_store *s = tu_open(dir, 0);
    cairn_txn *t;
    unsigned char *a, *b, *c;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc_bytes(t, LEN, (void **)&a));
    fill(a, LEN, 1);
    assert_cairn_ok(cairn_root_set(t, "a", a));
    assert_cairn_ok(cairn_txn_commit(t));

    /* Fresh pages written, then aborted: zeros again. */
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc_bytes(t, LEN, (void **)&b));
    fill(b, LEN, 2);
    cairn_txn_abort(t);
    check_zero(b, LEN, "fresh pages after the abort");
    check_fill(a, LEN, 1, "committed pages beside the aborted fresh ones");

    /* The committed pages, written again and aborted: their committed
     * bytes, not zeros (before the checkpoint, then after it). */
    for (int round = 0; round < 2; round++) {
        assert_cairn_ok(cairn_txn_begin(s, &t));
        memset(a, 0xee, LEN);
        cairn_txn_abort(t);
        check_fill(a, LEN, 1,
                   round ? "committed pages after the abort, checkpointed" : "committed pages after the abort");
        assert_cairn_ok(cairn_checkpoint(s));
    }

    /* Part of a fresh region written (the rest of its extents stays zero,
     * and under the mprotect backend becomes writable with it). */
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc_bytes(t, LEN, (void **)&c));
    fill(c + 4096, PART, 3);
    assert_cairn_ok(cairn_root_set(t, "c", c));
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_ok(cairn_close(s));

    s = tu_open(dir, 0);
    assert_cairn_ok(cairn_root_get(s, "a", (void **)&a));
    assert_cairn_ok(cairn_root_get(s, "c", (void **)&c));
    check_fill(a, LEN, 1, "a after reopening");
    check_zero(c, 4096, "c's first page after reopening");
    check_fill(c + 4096, PART, 3, "c's written part after reopening");
    check_zero(c + 4096 + PART, LEN - 4096 - PART, "c's unwritten rest after reopening");
    cairn_check_report r;
    assert_cairn_ok(cairn_check(s, &r));
    assert_cairn_ok(cairn_close(s));
}

static void assert_errmsg_names(cairn_store *s, const void *obj)
{
    char want[32];
    snprintf(want, sizeof want, "%p", obj);
    const char *msg = cairn_errmsg(s);
    assert_non_null(msg);
    if (!strstr(msg, want))
        fail_msg("cairn_errmsg \"%s\" does not name object %s", msg, want);
}

/* bad: an address outside the store (malloc'd, another store's object...). */
static void external_pointer_case(const char *dir, void *bad)
{
    cairn_store *s = tu_open(dir, 0);
    cairn_type pt;
    assert_cairn_ok(cairn_type_register(s, "pair", sizeof(struct pair), pair_ptrs, 2, &pt));
    cairn_txn *t;
    struct pair *P, *Q, *big;
    const size_t nbig = 600; /* 14400 bytes: four pages */
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc(t, pt, 1, (void **)&P));
    assert_cairn_ok(cairn_alloc(t, pt, 1, (void **)&Q));
    assert_cairn_ok(cairn_alloc(t, pt, nbig, (void **)&big));
    P->a = Q;
    P->k = 1;
    big[0].a = P;
    assert_cairn_ok(cairn_root_set(t, "p", P));
    assert_cairn_ok(cairn_root_set(t, "big", big));
    assert_cairn_ok(cairn_txn_commit(t));

    /* Refused; the transaction stays open; fixed; committed. */
    assert_cairn_ok(cairn_txn_begin(s, &t));
    P->k = 5;
    Q->b = bad;
    assert_cairn_rc(cairn_txn_commit(t), CAIRN_EXTERNAL_POINTER);
    assert_errmsg_names(s, Q);
    /* Still the open transaction: it accepts more work. */
    void *extra;
    assert_cairn_ok(cairn_alloc_bytes(t, 32, &extra));
    memset(extra, 0x3c, 32);
    Q->k = 9;
    assert_cairn_rc(cairn_txn_commit(t), CAIRN_EXTERNAL_POINTER); /* still there */
    Q->b = P;
    P->b = extra;
    assert_cairn_ok(cairn_txn_commit(t));
    assert_int_equal(P->k, 5);

    /* Refused in an element of a large array, on a later page: the message
     * names the array (the object), and abort undoes everything. */
    assert_cairn_ok(cairn_txn_begin(s, &t));
    P->k = 77;
    big[1].b = Q;
    big[nbig - 3].a = bad;
    assert_cairn_rc(cairn_txn_commit(t), CAIRN_EXTERNAL_POINTER);
    assert_errmsg_names(s, big);
    cairn_txn_abort(t);
    assert_int_equal(P->k, 5);
    assert_null(big[1].b);
    assert_null(big[nbig - 3].a);

    /* Refused, then aborted, with the bad pointer in a small object. */
    assert_cairn_ok(cairn_txn_begin(s, &t));
    Q->a = bad;
    Q->k = 10;
    assert_cairn_rc(cairn_txn_commit(t), CAIRN_EXTERNAL_POINTER);
    assert_errmsg_names(s, Q);
    cairn_txn_abort(t);
    assert_null(Q->a);
    assert_int_equal(Q->k, 9);

    /* Roots refuse it at once. */
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_rc(cairn_root_set(t, "bad", bad), CAIRN_EXTERNAL_POINTER);
    assert_cairn_ok(cairn_txn_commit(t));
    void *r;
    assert_cairn_rc(cairn_root_get(s, "bad", &r), CAIRN_NOT_FOUND);

    /* The store is usable afterwards. */
    assert_cairn_ok(cairn_txn_begin(s, &t));
    P->k = 6;
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_ok(cairn_close(s));

    /* Nothing of the refused or aborted transactions reached the disk. */
    s = tu_open(dir, 0);
    assert_cairn_ok(cairn_root_get(s, "p", (void **)&P));
    assert_cairn_ok(cairn_root_get(s, "big", (void **)&big));
    Q = P->a;
    assert_int_equal(P->k, 6);
    assert_int_equal(Q->k, 9);
    assert_ptr_equal(Q->b, P);
    assert_null(Q->a);
    assert_non_null(P->b);
    for (int i = 0; i < 32; i++)
        assert_int_equal(((unsigned char *)P->b)[i], 0x3c);
    assert_ptr_equal(big[0].a, P);
    assert_null(big[1].b);
    assert_null(big[nbig - 3].a);
    assert_cairn_ok(cairn_close(s));
}

static void commit_refuses_malloced_pointer(void **state)
{
    const char *dir = *state;
    void *heap = malloc(64);
    assert_non_null(heap);
    external_pointer_case(dir, heap);
    free(heap);
}

static void commit_refuses_pointer_into_other_store(void **state)
{
    const char *dir = *state;
    char *dir2 = tu_tempdir();
    cairn_store *s2 = tu_open(dir2, 0);
    cairn_txn *t;
    int64_t *other;
    assert_cairn_ok(cairn_txn_begin(s2, &t));
    assert_cairn_ok(cairn_alloc_bytes(t, 64, (void **)&other));
    *other = 1234;
    assert_cairn_ok(cairn_root_set(t, "o", other));
    assert_cairn_ok(cairn_txn_commit(t));
    external_pointer_case(dir, other);
    assert_int_equal(*other, 1234);
    assert_cairn_ok(cairn_close(s2));
    tu_rmdir(dir2);
}

static void commit_refuses_pointer_past_store_end(void **state)
{
    const char *dir = *state;
    /* The first byte after the range, as its range would be once open. */
    cairn_store *s = tu_open(dir, 0);
    void *base;
    size_t len;
    assert_cairn_ok(cairn_range(s, &base, &len));
    cairn_type pt;
    assert_cairn_ok(cairn_type_register(s, "pair", sizeof(struct pair), pair_ptrs, 2, &pt));
    cairn_txn *t;
    struct pair *P;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc(t, pt, 1, (void **)&P));
    P->a = (char *)base + len;
    assert_cairn_rc(cairn_txn_commit(t), CAIRN_EXTERNAL_POINTER);
    assert_errmsg_names(s, P);
    P->a = (char *)base + len - 16; /* inside the range: accepted */
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_ok(cairn_close(s));
}

/* ---- types ---- */

static void type_register_rules(void **state)
{
    const char *dir = *state;
    cairn_store *s = tu_open(dir, 0);
    cairn_type a1, a2, b, c, x;
    size_t offs_ab[] = {8, 24};
    size_t offs_ba[] = {24, 8};
    static const size_t offs_8_16[] = {8, 16}, offs_0_40[] = {0, 40}, offs_0_8_0[] = {0, 8, 0}, offs_16_16[] = {16, 16};
    assert_cairn_ok(cairn_type_register(s, "a", 32, offs_ab, 2, &a1));
    assert_cairn_ok(cairn_type_register(s, "a", 32, offs_ab, 2, &a2));
    assert_int_equal(a1, a2);
    assert_int_not_equal(a1, CAIRN_TYPE_BYTES);
    /* The pointer offsets are a set: order does not matter. */
    assert_cairn_ok(cairn_type_register(s, "a", 32, offs_ba, 2, &a2));
    assert_int_equal(a1, a2);
    assert_cairn_ok(cairn_type_register(s, "b", 16, NULL, 0, &b));
    assert_cairn_ok(cairn_type_register(s, "c", 8, (size_t[]){0}, 1, &c));
    assert_int_not_equal(a1, b);
    assert_int_not_equal(b, c);
    assert_int_not_equal(a1, c);
    assert_cairn_ok(cairn_type_register(s, "b", 16, NULL, 0, &x));
    assert_int_equal(x, b);

    /* Mismatches. */
    assert_cairn_rc(cairn_type_register(s, "a", 40, offs_ab, 2, &x), CAIRN_SCHEMA_MISMATCH);
    assert_cairn_rc(cairn_type_register(s, "a", 32, offs_8_16, 2, &x), CAIRN_SCHEMA_MISMATCH);
    assert_cairn_rc(cairn_type_register(s, "a", 32, (size_t[]){8}, 1, &x), CAIRN_SCHEMA_MISMATCH);
    assert_cairn_rc(cairn_type_register(s, "a", 32, NULL, 0, &x), CAIRN_SCHEMA_MISMATCH);
    assert_cairn_rc(cairn_type_register(s, "b", 24, NULL, 0, &x), CAIRN_SCHEMA_MISMATCH);
    assert_cairn_rc(cairn_type_register(s, "b", 16, (size_t[]){0}, 1, &x), CAIRN_SCHEMA_MISMATCH);
    assert_true(strlen(cairn_errmsg(s)) > 0);

    /* Invalid layouts. */
    assert_cairn_rc(cairn_type_register(s, "bad", 32, (size_t[]){4}, 1, &x), CAIRN_INVALID);
    assert_cairn_rc(cairn_type_register(s, "bad", 32, (size_t[]){12}, 1, &x), CAIRN_INVALID);
    assert_cairn_rc(cairn_type_register(s, "bad", 32, (size_t[]){32}, 1, &x), CAIRN_INVALID);
    assert_cairn_rc(cairn_type_register(s, "bad", 32, offs_0_40, 2, &x), CAIRN_INVALID);
    assert_cairn_rc(cairn_type_register(s, "bad", 12, (size_t[]){8}, 1, &x), CAIRN_INVALID);
    assert_cairn_rc(cairn_type_register(s, "bad", 32, offs_0_8_0, 3, &x), CAIRN_INVALID);
    assert_cairn_rc(cairn_type_register(s, "bad", 32, offs_16_16, 2, &x), CAIRN_INVALID);
    assert_cairn_rc(cairn_type_register(s, "bad", 32, NULL, 1, &x), CAIRN_INVALID);
    assert_cairn_rc(cairn_type_register(s, "bad", 0, NULL, 0, &x), CAIRN_INVALID);
    assert_cairn_rc(cairn_type_register(s, "", 32, NULL, 0, &x), CAIRN_INVALID);
    assert_cairn_rc(cairn_type_register(s, NULL, 32, NULL, 0, &x), CAIRN_INVALID);
    assert_cairn_rc(cairn_type_register(s, "bad", 32, NULL, 0, NULL), CAIRN_INVALID);
    assert_cairn_rc(cairn_type_register(NULL, "bad", 32, NULL, 0, &x), CAIRN_INVALID);
    char longname[202];
    memset(longname, 'n', 201);
    longname[201] = 0;
    assert_cairn_rc(cairn_type_register(s, longname, 32, NULL, 0, &x), CAIRN_INVALID);
    longname[200] = 0; /* 200 bytes: the longest allowed */
    cairn_type lt;
    assert_cairn_ok(cairn_type_register(s, longname, 32, NULL, 0, &lt));
    /* None of the invalid attempts registered "bad". */
    cairn_type bad;
    assert_cairn_ok(cairn_type_register(s, "bad", 48, (size_t[]){40}, 1, &bad));
    /* Unknown type ids are refused by the allocator. */
    cairn_txn *t;
    void *p;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_rc(cairn_alloc(t, 12345, 1, &p), CAIRN_INVALID);
    assert_cairn_rc(cairn_alloc(t, a1, 0, &p), CAIRN_INVALID);
    assert_cairn_ok(cairn_alloc(t, a1, 1, &p));
    /* Registration inside a transaction is durable even if it aborts. */
    cairn_type in_txn;
    assert_cairn_ok(cairn_type_register(s, "in_txn", 24, (size_t[]){16}, 1, &in_txn));
    cairn_txn_abort(t);
    assert_cairn_ok(cairn_close(s));

    /* Persisted: same ids after reopen, mismatches still detected. */
    s = tu_open(dir, 0);
    assert_cairn_ok(cairn_type_register(s, "a", 32, offs_ab, 2, &x));
    assert_int_equal(x, a1);
    assert_cairn_ok(cairn_type_register(s, "c", 8, (size_t[]){0}, 1, &x));
    assert_int_equal(x, c);
    assert_cairn_ok(cairn_type_register(s, "b", 16, NULL, 0, &x));
    assert_int_equal(x, b);
    assert_cairn_ok(cairn_type_register(s, longname, 32, NULL, 0, &x));
    assert_int_equal(x, lt);
    assert_cairn_ok(cairn_type_register(s, "in_txn", 24, (size_t[]){16}, 1, &x));
    assert_int_equal(x, in_txn);
    assert_cairn_rc(cairn_type_register(s, "a", 32, (size_t[]){8}, 1, &x), CAIRN_SCHEMA_MISMATCH);
    assert_cairn_rc(cairn_type_register(s, "b", 32, NULL, 0, &x), CAIRN_SCHEMA_MISMATCH);
    assert_cairn_rc(cairn_type_register(s, "bad", 48, (size_t[]){32}, 1, &x), CAIRN_SCHEMA_MISMATCH);
    assert_cairn_rc(cairn_type_register(s, "in_txn", 24, NULL, 0, &x), CAIRN_SCHEMA_MISMATCH);
    /* A new type gets an id distinct from every old one. */
    cairn_type e;
    assert_cairn_ok(cairn_type_register(s, "e", 8, NULL, 0, &e));
    cairn_type all[] = {a1, b, c, lt, bad, in_txn};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        assert_int_not_equal(e, all[i]);
    assert_int_not_equal(e, CAIRN_TYPE_BYTES);
    assert_cairn_ok(cairn_close(s));
}

/* ---- roots ---- */

static void roots_set_get_remove(void **state)
{
    const char *dir = *state;
    cairn_store *s = tu_open(dir, 0);
    cairn_txn *t;
    int64_t *a, *b, *c;
    void *r = NULL;
    assert_cairn_rc(cairn_root_get(s, "a", &r), CAIRN_NOT_FOUND);
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc_bytes(t, 16, (void **)&a));
    assert_cairn_ok(cairn_alloc_bytes(t, 5000, (void **)&b));
    assert_cairn_ok(cairn_alloc_bytes(t, 16, (void **)&c));
    *a = 1, *b = 2, *c = 3;
    assert_cairn_ok(cairn_root_set(t, "a", a));
    assert_cairn_ok(cairn_root_get(s, "a", &r)); /* visible inside the txn */
    assert_ptr_equal(r, a);
    assert_cairn_ok(cairn_root_set(t, "b", b));
    assert_cairn_ok(cairn_root_set(t, "b", c)); /* overwrite */
    assert_cairn_ok(cairn_root_get(s, "b", &r));
    assert_ptr_equal(r, c);
    assert_cairn_ok(cairn_root_set(t, "b", b));
    /* Names: 1..55 bytes. */
    char name55[56], name56[57];
    memset(name55, 'x', 55), name55[55] = 0;
    memset(name56, 'x', 56), name56[56] = 0;
    assert_cairn_ok(cairn_root_set(t, name55, c));
    assert_cairn_rc(cairn_root_set(t, name56, c), CAIRN_INVALID);
    char name100[101];
    memset(name100, 'y', 100), name100[100] = 0;
    assert_cairn_rc(cairn_root_set(t, name100, c), CAIRN_INVALID);
    assert_cairn_rc(cairn_root_set(t, "", c), CAIRN_INVALID);
    assert_cairn_rc(cairn_root_set(t, NULL, c), CAIRN_INVALID);
    assert_cairn_rc(cairn_root_get(s, name56, &r), CAIRN_INVALID);
    assert_cairn_rc(cairn_root_get(s, "", &r), CAIRN_INVALID);
    assert_cairn_rc(cairn_root_get(s, NULL, &r), CAIRN_INVALID);
    assert_cairn_rc(cairn_root_get(NULL, "a", &r), CAIRN_INVALID);
    assert_cairn_rc(cairn_root_get(s, "a", NULL), CAIRN_INVALID);
    assert_cairn_ok(cairn_root_get(s, name55, &r));
    assert_ptr_equal(r, c);
    /* A name that is a prefix of another is a different root. */
    assert_cairn_rc(cairn_root_get(s, "xxxx", &r), CAIRN_NOT_FOUND);
    /* External pointers. */
    void *heap = malloc(16);
    assert_cairn_rc(cairn_root_set(t, "heap", heap), CAIRN_EXTERNAL_POINTER);
    assert_cairn_rc(cairn_root_get(s, "heap", &r), CAIRN_NOT_FOUND);
    int64_t local = 0;
    assert_cairn_rc(cairn_root_set(t, "stack", &local), CAIRN_EXTERNAL_POINTER);
    /* Removing a name that does not exist is fine and changes nothing. */
    assert_cairn_ok(cairn_root_set(t, "never", NULL));
    assert_cairn_rc(cairn_root_get(s, "never", &r), CAIRN_NOT_FOUND);
    assert_cairn_ok(cairn_txn_commit(t));

    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_root_set(t, "c", c));
    assert_cairn_ok(cairn_root_set(t, "a", NULL)); /* remove */
    assert_cairn_rc(cairn_root_get(s, "a", &r), CAIRN_NOT_FOUND);
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_rc(cairn_root_get(s, "a", &r), CAIRN_NOT_FOUND);

    /* Roll back on abort: add, overwrite, remove, then abort. */
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_root_set(t, "a", a));    /* re-add */
    assert_cairn_ok(cairn_root_set(t, "b", a));    /* overwrite */
    assert_cairn_ok(cairn_root_set(t, "c", NULL)); /* remove */
    assert_cairn_ok(cairn_root_get(s, "b", &r));
    assert_ptr_equal(r, a);
    cairn_txn_abort(t);
    assert_cairn_rc(cairn_root_get(s, "a", &r), CAIRN_NOT_FOUND);
    assert_cairn_ok(cairn_root_get(s, "b", &r));
    assert_ptr_equal(r, b);
    assert_cairn_ok(cairn_root_get(s, "c", &r));
    assert_ptr_equal(r, c);

    /* Persist. */
    assert_cairn_ok(cairn_close(s));
    s = tu_open(dir, 0);
    assert_cairn_rc(cairn_root_get(s, "a", &r), CAIRN_NOT_FOUND);
    int64_t *pb, *pc, *p55;
    assert_cairn_ok(cairn_root_get(s, "b", (void **)&pb));
    assert_cairn_ok(cairn_root_get(s, "c", (void **)&pc));
    assert_cairn_ok(cairn_root_get(s, name55, (void **)&p55));
    assert_int_equal(*pb, 2);
    assert_int_equal(*pc, 3);
    assert_ptr_equal(p55, pc);
    assert_cairn_rc(cairn_root_get(s, "never", &r), CAIRN_NOT_FOUND);
    assert_cairn_ok(cairn_close(s));
    free(heap);
}

static void roots_capacity(void **state)
{
    const char *dir = *state;
    cairn_store *s = tu_open(dir, 0);
    cairn_txn *t;
    enum { NR = 1024 };
    static size_t off[NR + 1];
    char name[32];
    void *base, *p;
    assert_cairn_ok(cairn_range(s, &base, NULL));
    assert_cairn_ok(cairn_txn_begin(s, &t));
    for (int i = 0; i <= NR; i++) {
        assert_cairn_ok(cairn_alloc_bytes(t, 16, &p));
        off[i] = (size_t)((char *)p - (char *)base);
    }
    for (int i = 0; i < NR; i++) {
        snprintf(name, sizeof name, "root-%d", i);
        assert_cairn_ok(cairn_root_set(t, name, (char *)base + off[i]));
    }
    assert_cairn_rc(cairn_root_set(t, "one-too-many", (char *)base + off[NR]), CAIRN_FULL);
    assert_cairn_ok(cairn_root_set(t, "never-set", NULL)); /* removing a missing name, even when full */
    assert_cairn_ok(cairn_root_set(t, "root-500", (char *)base + off[NR])); /* overwrite still works */
    assert_cairn_ok(cairn_root_set(t, "root-3", NULL));
    assert_cairn_ok(cairn_root_set(t, "one-too-many", (char *)base + off[NR])); /* a slot is free again */
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_ok(cairn_close(s));
    s = tu_open(dir, 0);
    assert_cairn_ok(cairn_range(s, &base, NULL));
    for (int i = 0; i < NR; i++) {
        void *r;
        snprintf(name, sizeof name, "root-%d", i);
        if (i == 3) {
            assert_cairn_rc(cairn_root_get(s, name, &r), CAIRN_NOT_FOUND);
            continue;
        }
        assert_cairn_ok(cairn_root_get(s, name, &r));
        assert_ptr_equal(r, (char *)base + off[i == 500 ? NR : i]);
    }
    void *r;
    assert_cairn_ok(cairn_root_get(s, "one-too-many", &r));
    assert_ptr_equal(r, (char *)base + off[NR]);
    assert_cairn_ok(cairn_close(s));
}

/* ---- open modes ---- */

static void second_open_is_busy(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    cairn_store *s, *s2 = (cairn_store *)(uintptr_t)0x1;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_cairn_rc(cairn_open(dir, &o, &s2), CAIRN_BUSY);
    assert_ptr_equal(s2, (cairn_store *)(uintptr_t)0x1); /* *out set only on success */
    /* Through another spelling of the same directory too. */
    char *alias;
    assert_true(asprintf(&alias, "%s/./", dir) > 0);
    assert_cairn_rc(cairn_open(alias, &o, &s2), CAIRN_BUSY);
    /* A read-only handle may open beside it (test_readers.c). */
    cairn_options ro = o;
    ro.flags = CAIRN_RDONLY;
    assert_cairn_ok(cairn_open(dir, &ro, &s2));
    assert_cairn_ok(cairn_close(s2));
    /* The failed opens did not disturb the open store. */
    cairn_txn *t;
    int64_t *x;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc_bytes(t, 8, (void **)&x));
    *x = 99;
    assert_cairn_ok(cairn_root_set(t, "x", x));
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_ok(cairn_close(s));
    assert_cairn_ok(cairn_open(alias, &o, &s));
    assert_cairn_ok(cairn_root_get(s, "x", (void **)&x));
    assert_int_equal(*x, 99);
    assert_cairn_ok(cairn_close(s));
    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_cairn_ok(cairn_close(s));
    free(alias);
}

static void readonly_open(void **state)
{
    const char *dir = *state;
    cairn_store *s = tu_open(dir, 0);
    cairn_type nt = reg_node(s);
    cairn_txn *t;
    struct node *n;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc(t, nt, 1, (void **)&n));
    n->key = 4242;
    n->next = n;
    n->data_len = 9000;
    assert_cairn_ok(cairn_alloc_bytes(t, n->data_len, (void **)&n->data));
    fill(n->data, n->data_len, 5);
    assert_cairn_ok(cairn_root_set(t, "n", n));
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_ok(cairn_close(s));

    cairn_options o;
    tu_options(&o);
    o.flags = CAIRN_RDONLY;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_cairn_ok(cairn_root_get(s, "n", (void **)&n));
    assert_int_equal(n->key, 4242);
    assert_ptr_equal(n->next, n);
    check_fill(n->data, n->data_len, 5, "read-only data");
    t = (cairn_txn *)(uintptr_t)0x1;
    assert_cairn_rc(cairn_txn_begin(s, &t), CAIRN_READONLY);
    cairn_type x;
    assert_cairn_rc(cairn_type_register(s, "new", 8, NULL, 0, &x), CAIRN_READONLY);
    assert_cairn_ok(cairn_type_register(s, "node", sizeof(struct node), node_ptrs, 3, &x));
    assert_int_equal(x, nt);
    assert_cairn_rc(cairn_checkpoint(s), CAIRN_READONLY);
    assert_cairn_ok(cairn_prefault(s, n->data, n->data_len, 0));
    assert_int_not_equal(cairn_prefault(s, n->data, 8, 1), CAIRN_OK);
    assert_cairn_ok(cairn_close(s));

    /* Unknown bits in flags, CAIRN_READONLY (an error code) among them,
     * are refused and open nothing. */
    o.flags = (unsigned)CAIRN_READONLY;
    assert_cairn_rc(cairn_open(dir, &o, &s), CAIRN_INVALID);
    assert_non_null(strstr(cairn_errmsg(NULL), "unknown bits"));
    o.flags = CAIRN_RDONLY | 0x100u;
    assert_cairn_rc(cairn_open(dir, &o, &s), CAIRN_INVALID);
    o.flags = CAIRN_RDONLY;

    /* Read-write again: intact and writable. */
    s = tu_open(dir, 0);
    assert_cairn_ok(cairn_root_get(s, "n", (void **)&n));
    assert_int_equal(n->key, 4242);
    assert_cairn_ok(cairn_txn_begin(s, &t));
    n->key = 1;
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_ok(cairn_close(s));
}

/* A read-only open of a missing store fails and creates nothing, neither
 * the directory nor, in an empty one, any file. */
static void readonly_open_of_a_missing_store_creates_nothing(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    o.flags = CAIRN_RDONLY;
    char *missing;
    assert_true(asprintf(&missing, "%s/missing", dir) > 0);
    cairn_store *s2 = (cairn_store *)(uintptr_t)0x1;
    int rc = cairn_open(missing, &o, &s2);
    if (rc == CAIRN_OK)
        fail_msg("read-only open of a missing directory succeeded");
    assert_ptr_equal(s2, (cairn_store *)(uintptr_t)0x1);
    struct stat st;
    assert_int_equal(stat(missing, &st), -1);
    assert_int_equal(mkdir(missing, 0755), 0);
    rc = cairn_open(missing, &o, &s2);
    if (rc == CAIRN_OK)
        fail_msg("read-only open of an empty directory succeeded");
    assert_ptr_equal(s2, (cairn_store *)(uintptr_t)0x1);
    assert_int_equal(dir_is_empty(missing), 1);
    free(missing);
}

static void close_aborts_open_txn(void **state)
{
    const char *dir = *state;
    cairn_store *s = tu_open(dir, 0);
    cairn_txn *t;
    unsigned char *a;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc_bytes(t, 3000, (void **)&a));
    fill(a, 3000, 1);
    assert_cairn_ok(cairn_root_set(t, "a", a));
    assert_cairn_ok(cairn_txn_commit(t));
    void *base;
    assert_cairn_ok(cairn_range(s, &base, NULL));
    size_t a_off = (size_t)(a - (unsigned char *)base);

    assert_cairn_ok(cairn_txn_begin(s, &t));
    fill(a, 3000, 2);
    void *b;
    assert_cairn_ok(cairn_alloc_bytes(t, 100000, &b));
    size_t b_off = (size_t)((char *)b - (char *)base);
    memset(b, 0x77, 100000);
    assert_cairn_ok(cairn_root_set(t, "b", b));
    assert_cairn_ok(cairn_root_set(t, "a", NULL));
    assert_cairn_ok(cairn_close(s)); /* t is gone with the store */

    s = tu_open(dir, 0);
    void *r;
    assert_cairn_rc(cairn_root_get(s, "b", &r), CAIRN_NOT_FOUND);
    assert_cairn_ok(cairn_root_get(s, "a", (void **)&a));
    assert_cairn_ok(cairn_range(s, &base, NULL));
    assert_int_equal((size_t)(a - (unsigned char *)base), a_off);
    check_fill(a, 3000, 1, "object after close with an open txn");
    check_zero((unsigned char *)base + b_off, 100000, "allocation of the txn open at close");
    /* The allocation was undone: the same request gets the same place. */
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc_bytes(t, 100000, &b));
    assert_int_equal((size_t)((char *)b - (char *)base), b_off);
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_ok(cairn_close(s));
}

/* ---- begin waits ---- */

struct waiter {
    cairn_store *s;
    int64_t *cell;
    atomic_int started, got;
    int rc_begin, rc_commit;
    int64_t seen;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    cairn_txn *t = NULL;
    atomic_store(&w->started, 1);
    w->rc_begin = cairn_txn_begin(w->s, &t);
    atomic_store(&w->got, 1);
    if (w->rc_begin == CAIRN_OK) {
        w->seen = *w->cell;
        *w->cell = w->seen + 100;
        w->rc_commit = cairn_txn_commit(t);
    }
    return NULL;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void begin_waits_for_current_txn(void **state)
{
    const char *dir = *state;
    cairn_store *s = tu_open(dir, 0);
    cairn_txn *t;
    int64_t *cell;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc_bytes(t, 8, (void **)&cell));
    assert_cairn_ok(cairn_txn_commit(t));

    for (int round = 0; round < 2; round++) {
        int64_t before = *cell;
        assert_cairn_ok(cairn_txn_begin(s, &t));
        struct waiter w = {.s = s, .cell = cell, .rc_begin = -1, .rc_commit = -1, .seen = -1};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
        while (!atomic_load(&w.started))
            sleep_ms(1);
        for (int i = 0; i < 30; i++) {
            sleep_ms(10);
            if (atomic_load(&w.got)) {
                pthread_join(th, NULL);
                fail_msg("second cairn_txn_begin returned %d while the first txn was open", w.rc_begin);
            }
        }
        *cell = before + 1;
        if (round == 0)
            assert_cairn_ok(cairn_txn_commit(t));
        else
            cairn_txn_abort(t);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_int_equal(atomic_load(&w.got), 1);
        assert_cairn_ok(w.rc_begin);
        assert_cairn_ok(w.rc_commit);
        int64_t want = round == 0 ? before + 1 : before; /* what the first txn left */
        assert_int_equal(w.seen, want);
        assert_int_equal(*cell, want + 100);
    }
    assert_cairn_ok(cairn_close(s));
}

/* The thread holding the open transaction gets CAIRN_BUSY from begin and
 * from cairn_check at once (waiting for itself would never end); the
 * transaction is unharmed and another thread still waits as before. */
static void nested_begin_and_check_are_busy(void **state)
{
    const char *dir = *state;
    cairn_store *s = tu_open(dir, 0);
    cairn_txn *t, *t2 = NULL;
    int64_t *cell;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc_bytes(t, 8, (void **)&cell));
    *cell = 5;
    assert_cairn_rc(cairn_txn_begin(s, &t2), CAIRN_BUSY);
    assert_null(t2);
    cairn_check_report r;
    assert_cairn_rc(cairn_check(s, &r), CAIRN_BUSY);
    assert_cairn_ok(cairn_root_set(t, "cell", cell));
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_ok(cairn_check(s, &r));
    assert_cairn_ok(cairn_txn_begin(s, &t));
    cairn_txn_abort(t);
    assert_cairn_ok(cairn_close(s));
    s = tu_open(dir, 0);
    assert_cairn_ok(cairn_root_get(s, "cell", (void **)&cell));
    assert_int_equal(*cell, 5);
    assert_cairn_ok(cairn_close(s));
}

struct closer {
    cairn_store *s;
    unsigned after_ms;
};

static void *close_later(void *arg)
{
    struct closer *c = arg;
    sleep_ms(c->after_ms);
    assert_cairn_ok(cairn_close(c->s));
    return NULL;
}

static uint64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* busy_timeout_ms: a read-write open waits that long for the other opener
 * (here: in this process) and then fails with CAIRN_BUSY; it succeeds as
 * soon as the other closes within the time; 0 fails at once. */
static void busy_timeout_waits_for_the_writer_in_this_process(void **state)
{
    const char *dir = *state;
    cairn_store *a = tu_open(dir, 0), *b = NULL;
    cairn_options o;
    tu_options(&o);
    assert_cairn_rc(cairn_open(dir, &o, &b), CAIRN_BUSY);
    o.busy_timeout_ms = 150;
    uint64_t t0 = ms_now();
    assert_cairn_rc(cairn_open(dir, &o, &b), CAIRN_BUSY);
    assert_true(ms_now() - t0 >= 150);
    assert_null(b);

    struct closer c = {a, 100};
    pthread_t th;
    o.busy_timeout_ms = 30000;
    assert_int_equal(pthread_create(&th, NULL, close_later, &c), 0);
    assert_cairn_ok(cairn_open(dir, &o, &b));
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_cairn_ok(cairn_close(b));
}

/* The same against a writer in another process, which closes after a
 * while. */
static void busy_timeout_waits_for_the_writer_in_another_process(void **state)
{
    const char *dir = *state;
    cairn_store *s = tu_open(dir, 0);
    assert_cairn_ok(cairn_close(s));
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        cairn_options co;
        tu_options(&co);
        cairn_store *cs;
        if (cairn_open(dir, &co, &cs) != 0)
            _exit(1);
        char x = 1;
        if (write(ready[1], &x, 1) != 1)
            _exit(2);
        sleep_ms(300);
        _exit(cairn_close(cs) == 0 ? 0 : 3);
    }
    close(ready[1]);
    char x;
    assert_int_equal(read(ready[0], &x, 1), 1);
    close(ready[0]);
    cairn_options o;
    tu_options(&o);
    o.busy_timeout_ms = 30000;
    uint64_t t0 = ms_now();
    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_true(ms_now() - t0 >= 100); /* it did wait for the child */
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_cairn_ok(cairn_close(s));
}

/* ---- misc ---- */

/* Every code has a text of its own; other values get some text too. */
static void strerror_texts_are_distinct(void **state)
{
    (void)state;
    static const int codes[] = {CAIRN_OK,    CAIRN_CORRUPT,   CAIRN_EXTERNAL_POINTER, CAIRN_SCHEMA_MISMATCH,
                                CAIRN_BUSY,  CAIRN_NOT_FOUND, CAIRN_INVALID,          CAIRN_READONLY,
                                CAIRN_IOERR, CAIRN_FULL,      CAIRN_UNSUPPORTED};
    enum { N = sizeof codes / sizeof codes[0] };
    for (size_t i = 0; i < N; i++) {
        const char *m = cairn_strerror(codes[i]);
        assert_non_null(m);
        if (!*m)
            fail_msg("cairn_strerror(%d) is empty", codes[i]);
        /* Distinct texts for distinct codes. */
        for (size_t j = 0; j < i; j++)
            if (strcmp(m, cairn_strerror(codes[j])) == 0)
                fail_msg("codes %d and %d share the text \"%s\"", codes[i], codes[j], m);
    }
    static const int other[] = {ENOMEM, EIO, ENOSPC, ENOENT, EACCES, EEXIST, EINVAL, EPERM, -1, -30999, 100000};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        const char *m = cairn_strerror(other[i]);
        assert_non_null(m);
        assert_true(*m);
    }
}

/* NULL handles are CAIRN_INVALID (close and abort of NULL are no-ops). */
static void null_handles_are_invalid(void **state)
{
    (void)state;
    assert_cairn_ok(cairn_close(NULL));
    cairn_txn_abort(NULL);
    cairn_txn *t;
    void *p;
    cairn_type ty;
    cairn_stats st;
    assert_cairn_rc(cairn_txn_begin(NULL, &t), CAIRN_INVALID);
    assert_cairn_rc(cairn_txn_commit(NULL), CAIRN_INVALID);
    assert_cairn_rc(cairn_alloc(NULL, CAIRN_TYPE_BYTES, 1, &p), CAIRN_INVALID);
    assert_cairn_rc(cairn_alloc_bytes(NULL, 8, &p), CAIRN_INVALID);
    assert_cairn_rc(cairn_free(NULL, NULL), CAIRN_INVALID);
    assert_cairn_rc(cairn_root_set(NULL, "a", NULL), CAIRN_INVALID);
    assert_cairn_rc(cairn_root_get(NULL, "a", &p), CAIRN_INVALID);
    assert_cairn_rc(cairn_type_register(NULL, "a", 8, NULL, 0, &ty), CAIRN_INVALID);
    assert_cairn_rc(cairn_stats_get(NULL, &st), CAIRN_INVALID);
    assert_cairn_rc(cairn_range(NULL, &p, NULL), CAIRN_INVALID);
    assert_cairn_rc(cairn_checkpoint(NULL), CAIRN_INVALID);
    assert_cairn_rc(cairn_prefault(NULL, NULL, 0, 0), CAIRN_INVALID);
    cairn_store *s;
    assert_cairn_rc(cairn_open(NULL, NULL, &s), CAIRN_INVALID);
    assert_non_null(cairn_errmsg(NULL));
    cairn_options_init(NULL);
}

/* A fresh store has no error message; a failure with detail sets one. */
static void errmsg_is_set_by_a_failure_with_detail(void **state)
{
    cairn_txn *t;
    void *p;
    cairn_store *s = tu_open(*state, 0);
    assert_string_equal(cairn_errmsg(s), "");
    assert_cairn_ok(cairn_txn_begin(s, &t));
    int64_t x;
    assert_cairn_rc(cairn_free(t, &x), CAIRN_INVALID); /* foreign pointer */
    assert_cairn_ok(cairn_alloc_bytes(t, 64, &p));
    assert_cairn_rc(cairn_free(t, (char *)p + 16), CAIRN_INVALID); /* interior pointer */
    assert_true(strlen(cairn_errmsg(s)) > 0);
    assert_cairn_rc(cairn_alloc_bytes(t, 0, &p), CAIRN_INVALID);
    assert_cairn_rc(cairn_alloc_bytes(t, 8, NULL), CAIRN_INVALID);
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_ok(cairn_close(s));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        tu_dir_test(commit_then_reopen_persists),
        tu_dir_test(commit_survives_exit_without_close),
        tu_dir_test(abort_restores_every_byte),
        tu_dir_test(fresh_pages_roll_back_and_commit),
        tu_dir_test(commit_refuses_malloced_pointer),
        tu_dir_test(commit_refuses_pointer_into_other_store),
        tu_dir_test(commit_refuses_pointer_past_store_end),
        tu_dir_test(type_register_rules),
        tu_dir_test(roots_set_get_remove),
        tu_dir_test(roots_capacity),
        tu_dir_test(second_open_is_busy),
        tu_dir_test(readonly_open),
        tu_dir_test(readonly_open_of_a_missing_store_creates_nothing),
        tu_dir_test(close_aborts_open_txn),
        tu_dir_test(begin_waits_for_current_txn),
        tu_dir_test(nested_begin_and_check_are_busy),
        tu_dir_test(busy_timeout_waits_for_the_writer_in_this_process),
        tu_dir_test(busy_timeout_waits_for_the_writer_in_another_process),
        cmocka_unit_test(strerror_texts_are_distinct),
        cmocka_unit_test(null_handles_are_invalid),
        tu_dir_test(errmsg_is_set_by_a_failure_with_detail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
