/*
 * prefix_model.c - see prefix_model.h.
 */
#define _GNU_SOURCE
#include "prefix_model.h"

#include <stdio.h>

int model_in_range(int64_t n, int64_t lo, int64_t hi, char *err, size_t errlen)
{
    if (n < lo)
        MODEL_FAIL("store holds the state after txn %lld, but txn %lld was acknowledged durable (lost commit)",
                   (long long)n, (long long)lo);
    if (n > hi)
        MODEL_FAIL("store holds the state after txn %lld, but only txns up to %lld were attempted", (long long)n,
                   (long long)hi);
    return 0;
}

/* ---- the list model ---- */

#define PAGE_WORDS 512
#define WIDE_SLOTS 511 /* word 1 + i % 511 of each page of hdr->wide */

struct node {
    int64_t val;
    struct node *next;
    unsigned char *payload;
    int64_t payload_len;
};

struct hdr {
    int64_t last;
    int64_t count;
    struct node *list;
    uint64_t *wide;
};

static size_t payload_len(int64_t i)
{
    if (i % 10 == 0)
        return 5000 + (size_t)(i % 3) * 4096; /* large objects: whole pages */
    return 8 + (size_t)((i * 37) % 600);
}

static unsigned char payload_byte(int64_t i, size_t j)
{
    return (unsigned char)(i * 131 + (int64_t)j * 7 + 1);
}

/* Has transaction n freed the payload of node k? */
static int payload_freed(int64_t k, int64_t n)
{
    return k + 1 <= n && (k + 1) % 7 == 0;
}

static uint64_t wide_expect(int64_t n, size_t page, size_t k)
{
    if (n <= 0)
        return 0;
    if (k == 0)
        return (uint64_t)n;
    int64_t slot = (int64_t)k - 1;
    int64_t d = ((n - slot) % WIDE_SLOTS + WIDE_SLOTS) % WIDE_SLOTS;
    int64_t i = n - d;
    return i >= 1 ? (uint64_t)(i * 1000 + (int64_t)page) : 0;
}

int list_register(struct list_model *m, cairn_store *s)
{
    size_t np[] = {offsetof(struct node, next), offsetof(struct node, payload)};
    size_t hp[] = {offsetof(struct hdr, list), offsetof(struct hdr, wide)};
    int rc = cairn_type_register(s, "node", sizeof(struct node), np, 2, &m->node_type);
    if (rc)
        return rc;
    return cairn_type_register(s, "hdr", sizeof(struct hdr), hp, 2, &m->hdr_type);
}

int list_current(cairn_store *s, int64_t *n)
{
    void *p;
    int rc = cairn_root_get(s, "hdr", &p);
    *n = -1;
    if (rc == CAIRN_NOT_FOUND)
        return 0;
    if (rc)
        return rc;
    *n = ((struct hdr *)p)->last;
    return 0;
}

static int create_root(const struct list_model *m, cairn_store *s)
{
    cairn_txn *t;
    struct hdr *h;
    int rc = cairn_txn_begin(s, &t);
    if (rc)
        return rc;
    rc = cairn_alloc(t, m->hdr_type, 1, (void **)&h);
    if (rc == 0)
        rc = cairn_alloc_bytes(t, m->wide_pages * PAGE_WORDS * 8, (void **)&h->wide);
    if (rc == 0)
        rc = cairn_root_set(t, "hdr", h);
    if (rc == 0)
        rc = cairn_txn_commit(t);
    if (rc)
        cairn_txn_abort(t);
    return rc;
}

/* An aborted transaction touching everything the real ones touch; then
 * the store must be as transaction i - 1 left it. */
static int aborted_scribble(const struct list_model *m, cairn_store *s, struct hdr *h, int64_t i, char *err,
                            size_t errlen)
{
    cairn_txn *t;
    struct node *junk;
    int rc = cairn_txn_begin(s, &t);
    if (rc)
        return rc;
    rc = cairn_alloc(t, m->node_type, 1, (void **)&junk);
    if (rc == 0)
        rc = cairn_alloc_bytes(t, 9000, (void **)&junk->payload);
    if (rc == 0) {
        junk->val = -i;
        junk->next = h->list;
        if (h->list && h->list->payload) {
            rc = cairn_free(t, h->list->payload);
            h->list->payload = NULL;
        }
        h->list = junk;
        h->last = -1;
        h->count = -1;
        for (size_t pg = 0; pg < m->wide_pages; pg++)
            h->wide[pg * PAGE_WORDS + 7] = 0xdeadbeef;
    }
    if (rc == 0)
        rc = cairn_root_set(t, "last", junk);
    cairn_txn_abort(t);
    if (rc)
        return rc;
    if (h->last != i - 1 || h->count != i - 1 || (h->list && h->list->val != i - 1))
        MODEL_FAIL("abort before txn %lld did not restore the store", (long long)i);
    return 0;
}

int list_txn(const struct list_model *m, cairn_store *s, int64_t i, char *err, size_t errlen)
{
    if (i == 0)
        return create_root(m, s);
    void *p;
    int rc = cairn_root_get(s, "hdr", &p);
    if (rc)
        return rc;
    struct hdr *h = p;
    if (i % 5 == 0) {
        rc = aborted_scribble(m, s, h, i, err, errlen);
        if (rc)
            return rc;
    }
    cairn_txn *t;
    rc = cairn_txn_begin(s, &t);
    if (rc)
        return rc;
    struct node *nd;
    rc = cairn_alloc(t, m->node_type, 1, (void **)&nd);
    size_t len = payload_len(i);
    if (rc == 0)
        rc = cairn_alloc_bytes(t, len, (void **)&nd->payload);
    if (rc == 0) {
        nd->val = i;
        nd->payload_len = (int64_t)len;
        for (size_t j = 0; j < len; j++)
            nd->payload[j] = payload_byte(i, j);
        nd->next = h->list;
        if (i % 7 == 0 && h->list) {
            rc = cairn_free(t, h->list->payload);
            h->list->payload = NULL;
            h->list->payload_len = 0;
        }
    }
    if (rc == 0) {
        h->list = nd;
        h->count++;
        h->last = i;
        for (size_t pg = 0; pg < m->wide_pages; pg++) {
            h->wide[pg * PAGE_WORDS] = (uint64_t)i;
            h->wide[pg * PAGE_WORDS + 1 + (size_t)(i % WIDE_SLOTS)] = (uint64_t)(i * 1000 + (int64_t)pg);
        }
        rc = cairn_root_set(t, "last", nd);
    }
    if (rc == 0)
        rc = cairn_txn_commit(t);
    if (rc)
        cairn_txn_abort(t);
    return rc;
}

int list_verify(const struct list_model *m, cairn_store *s, int64_t lo, int64_t hi, int64_t *out, char *err,
                size_t errlen)
{
    void *p;
    int rc = cairn_root_get(s, "hdr", &p);
    if (rc == CAIRN_NOT_FOUND) {
        if (model_in_range(-1, lo, hi, err, errlen))
            return MODEL_ERROR;
        if (cairn_root_get(s, "last", &p) != CAIRN_NOT_FOUND)
            MODEL_FAIL("root \"hdr\" is missing but root \"last\" exists");
        *out = -1;
        return 0;
    }
    if (rc)
        MODEL_FAIL("cairn_root_get(hdr): %d (%s)", rc, cairn_strerror(rc));
    const struct hdr *h = p;
    int64_t n = h->last;
    if (model_in_range(n, lo, hi, err, errlen))
        return MODEL_ERROR;
    if (h->count != n)
        MODEL_FAIL("txn %lld: count %lld (a partial transaction?)", (long long)n, (long long)h->count);
    if (!h->wide)
        MODEL_FAIL("txn %lld: hdr->wide is NULL", (long long)n);
    for (size_t pg = 0; pg < m->wide_pages; pg++)
        for (size_t k = 0; k < PAGE_WORDS; k++)
            if (h->wide[pg * PAGE_WORDS + k] != wide_expect(n, pg, k))
                MODEL_FAIL("txn %lld: wide page %zu word %zu is %llu, want %llu (a partial transaction?)", (long long)n,
                           pg, k, (unsigned long long)h->wide[pg * PAGE_WORDS + k],
                           (unsigned long long)wide_expect(n, pg, k));
    const struct node *nd = h->list;
    for (int64_t k = n; k >= 1; k--) {
        if (!nd)
            MODEL_FAIL("txn %lld: list ends before node %lld", (long long)n, (long long)k);
        if (nd->val != k)
            MODEL_FAIL("txn %lld: node %lld found where node %lld belongs", (long long)n, (long long)nd->val,
                       (long long)k);
        if (payload_freed(k, n)) {
            if (nd->payload || nd->payload_len)
                MODEL_FAIL("txn %lld: node %lld still has its payload", (long long)n, (long long)k);
        } else {
            if (!nd->payload || nd->payload_len != (int64_t)payload_len(k))
                MODEL_FAIL("txn %lld: node %lld payload %p len %lld, want len %zu", (long long)n, (long long)k,
                           (void *)nd->payload, (long long)nd->payload_len, payload_len(k));
            for (size_t j = 0; j < payload_len(k); j++)
                if (nd->payload[j] != payload_byte(k, j))
                    MODEL_FAIL("txn %lld: node %lld payload byte %zu is %u, want %u", (long long)n, (long long)k, j,
                               nd->payload[j], payload_byte(k, j));
        }
        nd = nd->next;
    }
    if (nd)
        MODEL_FAIL("txn %lld: list continues past node 1 (node %lld)", (long long)n, (long long)nd->val);
    rc = cairn_root_get(s, "last", &p);
    if (n >= 1 && (rc != 0 || p != h->list))
        MODEL_FAIL("txn %lld: root \"last\" is not node %lld (rc %d)", (long long)n, (long long)n, rc);
    if (n < 1 && rc != CAIRN_NOT_FOUND)
        MODEL_FAIL("txn %lld: root \"last\" exists", (long long)n);
    *out = n;
    return 0;
}

uint64_t list_objects(int64_t n)
{
    if (n < 0)
        return 0;
    if (n == 0)
        return 2;
    return 2 + (uint64_t)n + (uint64_t)(n - n / 7);
}
