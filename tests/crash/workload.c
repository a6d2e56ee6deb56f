/*
 * workload.c - see workload.h.
 */
#define _GNU_SOURCE
#include "workload.h"
#include "splitmix.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct wl_profile wl_profile_killloop = {
    .abort_pct = 12,
    .big_pct = 6,
    .big_min = 1000,
    .big_max = 2500,
    .medium_pct = 34,
    .medium_max = 60,
    .large_blob_pct = 4,
    .checkpoint_pct = 4,
    .tiny_from = -1,
};

/* ---- randomness ---- */

uint64_t wl_mix(uint64_t a, uint64_t b)
{
    uint64_t s = a ^ (b * 0xD1B54A32D192ED03ull + 0x2545F4914F6CDD1Dull);
    tu_splitmix64(&s);
    return tu_splitmix64(&s);
}

static uint64_t rnd(struct wl *w, uint64_t bound)
{
    return tu_splitmix_below(&w->rng, bound);
}

static int is_tiny(const struct wl_profile *prof, int64_t k)
{
    return prof->tiny_from >= 0 && k >= prof->tiny_from;
}

int wl_commits(uint64_t seed, const struct wl_profile *prof, int64_t k)
{
    if (k <= 0 || is_tiny(prof, k))
        return 1;
    uint64_t s = wl_mix(seed, (uint64_t)k);
    return tu_splitmix64(&s) % 100 >= (uint64_t)prof->abort_pct;
}

int wl_checkpoint_after(uint64_t seed, const struct wl_profile *prof, int64_t k)
{
    return wl_mix(seed ^ 0xC4EC4B01A7ull, (uint64_t)k) % 100 < (uint64_t)prof->checkpoint_pct;
}

int64_t wl_next_commit(uint64_t seed, const struct wl_profile *prof, int64_t k)
{
    do
        k++;
    while (!wl_commits(seed, prof, k));
    return k;
}

/* ---- the model ---- */

static const struct m_node empty_node = {.link = {-1, -1, -1, -1}};

void model_init(struct model *m)
{
    memset(m, 0, sizeof *m);
    m->txn = -1;
    for (size_t i = 0; i < WL_SLOTS; i++)
        m->slot[i] = empty_node;
}

void model_free(struct model *m)
{
    for (size_t i = 0; i < WL_SLOTS; i++)
        free(m->slot[i].blob);
    free(m->vec);
    model_init(m);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        abort();
    }
    return p;
}

void model_copy(struct model *dst, const struct model *src)
{
    *dst = *src;
    for (size_t i = 0; i < WL_SLOTS; i++) {
        if (src->slot[i].blob_len) {
            dst->slot[i].blob = xmalloc(src->slot[i].blob_len);
            memcpy(dst->slot[i].blob, src->slot[i].blob, src->slot[i].blob_len);
        }
    }
    if (src->vec) {
        dst->vec = xmalloc(src->vec_n * sizeof *src->vec);
        memcpy(dst->vec, src->vec, src->vec_n * sizeof *src->vec);
    }
}

/* ---- the journal ---- */

static void jset(struct wl *w, void *dst, const void *src, size_t len)
{
    size_t need = sizeof(void *) + sizeof(size_t) + len;
    if (w->jlen + need > w->jcap) {
        size_t cap = w->jcap ? w->jcap : 65536;
        while (cap < w->jlen + need)
            cap *= 2;
        w->jbuf = realloc(w->jbuf, cap);
        if (!w->jbuf)
            abort();
        w->jcap = cap;
    }
    if (w->jn == w->jicap) {
        w->jicap = w->jicap ? w->jicap * 2 : 4096;
        w->jidx = realloc(w->jidx, w->jicap * sizeof *w->jidx);
        if (!w->jidx)
            abort();
    }
    unsigned char *at = w->jbuf + w->jlen;
    w->jidx[w->jn++] = w->jlen;
    memcpy(at, &dst, sizeof dst);
    memcpy(at + sizeof dst, &len, sizeof len);
    memcpy(at + sizeof dst + sizeof len, dst, len);
    w->jlen += need;
    memmove(dst, src, len);
}

static void jset_u64(struct wl *w, uint64_t *dst, uint64_t v)
{
    jset(w, dst, &v, sizeof v);
}

static void jset_i64(struct wl *w, int64_t *dst, int64_t v)
{
    jset(w, dst, &v, sizeof v);
}

static void jset_i32(struct wl *w, int32_t *dst, int32_t v)
{
    jset(w, dst, &v, sizeof v);
}

static void push(void ***list, size_t *n, size_t *cap, void *p)
{
    if (!p)
        return;
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *list = realloc(*list, *cap * sizeof **list);
        if (!*list)
            abort();
    }
    (*list)[(*n)++] = p;
}

static void journal_commit(struct wl *w)
{
    for (size_t i = 0; i < w->nfc; i++)
        free(w->fc[i]);
    w->nfc = w->nfa = 0;
    w->jlen = w->jn = 0;
}

static void journal_undo(struct wl *w)
{
    for (size_t i = w->jn; i-- > 0;) {
        unsigned char *at = w->jbuf + w->jidx[i];
        void *dst;
        size_t len;
        memcpy(&dst, at, sizeof dst);
        memcpy(&len, at + sizeof dst, sizeof len);
        memcpy(dst, at + sizeof dst + sizeof len, len);
    }
    for (size_t i = 0; i < w->nfa; i++)
        free(w->fa[i]);
    w->nfc = w->nfa = 0;
    w->jlen = w->jn = 0;
}

/* ---- setup ---- */

int wl_types_register(cairn_store *s, struct wl_types *ty)
{
    size_t np[WL_LINKS + 1];
    for (size_t i = 0; i < WL_LINKS; i++)
        np[i] = offsetof(struct wl_node, link) + i * sizeof(void *);
    np[WL_LINKS] = offsetof(struct wl_node, blob);
    int rc = cairn_type_register(s, "kl_node", sizeof(struct wl_node), np, WL_LINKS + 1, &ty->node);
    if (rc)
        return rc;
    size_t rp[] = {offsetof(struct wl_ref, p)};
    rc = cairn_type_register(s, "kl_ref", sizeof(struct wl_ref), rp, 1, &ty->ref);
    if (rc)
        return rc;
    static size_t op[WL_SLOTS + 1];
    op[0] = offsetof(struct wl_root, vec);
    for (size_t i = 0; i < WL_SLOTS; i++)
        op[i + 1] = offsetof(struct wl_root, slot) + i * sizeof(void *);
    return cairn_type_register(s, "kl_root", sizeof(struct wl_root), op, WL_SLOTS + 1, &ty->root);
}

void wl_init(struct wl *w, uint64_t seed, const struct wl_profile *prof, struct model *m, cairn_store *s,
             const struct wl_types *ty)
{
    memset(w, 0, sizeof *w);
    w->seed = seed;
    w->prof = prof;
    w->m = m;
    w->s = s;
    if (ty)
        w->ty = *ty;
    if (s) {
        void *r;
        if (cairn_root_get(s, WL_ROOT_NAME, &r) == 0)
            w->root = r;
    }
}

void wl_fini(struct wl *w)
{
    free(w->jbuf);
    free(w->jidx);
    free(w->fc);
    free(w->fa);
    memset(w, 0, sizeof *w);
}

/* ---- operations ---- */

#define STORE_RC(w, expr, what)                                                                                        \
    do {                                                                                                               \
        int rc_ = (expr);                                                                                              \
        if (rc_) {                                                                                                     \
            snprintf((w)->err, sizeof(w)->err, "attempt %lld: %s: %d (%s) %s", (long long)(w)->k, (what), rc_,         \
                     cairn_strerror(rc_), cairn_errmsg((w)->s));                                                       \
            return rc_;                                                                                                \
        }                                                                                                              \
    } while (0)

static int count_used(const struct model *m)
{
    int n = 0;
    for (size_t i = 0; i < WL_SLOTS; i++)
        n += m->slot[i].used != 0;
    return n;
}

static int pick(struct wl *w, int used)
{
    uint64_t start = rnd(w, WL_SLOTS);
    for (size_t d = 0; d < WL_SLOTS; d++) {
        size_t i = (start + d) % WL_SLOTS;
        if ((w->m->slot[i].used != 0) == used)
            return (int)i;
    }
    return -1;
}

/* Sizes of multi-page objects come from a short menu of page counts (the
 * bytes within the last page are random): the allocator does not coalesce
 * free runs backwards, and with arbitrary sizes the store's high-water mark,
 * and so the cost of cairn_check, grows much faster (it still creeps up:
 * see HWM_LIMIT in killloop.c). */
static uint64_t pages_bytes(struct wl *w, uint64_t pages)
{
    return (pages - 1) * 4096 + 1 + rnd(w, 4096);
}

static uint64_t blob_size(struct wl *w)
{
    static const uint64_t large[] = {17, 24, 33}; /* more than 64 KiB: several extents */
    uint64_t y = rnd(w, 100);
    if (y < 25)
        return 0;
    if (y < 25 + (uint64_t)w->prof->large_blob_pct)
        return pages_bytes(w, large[rnd(w, 3)]);
    if (y < 85)
        return 1 + rnd(w, 2048); /* slab */
    uint64_t b = pages_bytes(w, 1 + rnd(w, 3));
    return b < 2049 ? 2049 : b; /* whole pages */
}

static uint8_t *new_blob(struct wl *w, uint64_t len)
{
    if (!len)
        return NULL;
    uint8_t *b = xmalloc(len);
    for (uint64_t i = 0; i < len; i += 8) {
        uint64_t z = rnd(w, 0);
        memcpy(b + i, &z, len - i < 8 ? len - i : 8);
    }
    return b;
}

static struct wl_node *snode(struct wl *w, int32_t i)
{
    return i < 0 ? NULL : w->root->slot[i];
}

static int op_alloc(struct wl *w);

static int op_setval_on(struct wl *w, int i)
{
    uint64_t v = rnd(w, 0);
    jset_u64(w, &w->m->slot[i].val, v);
    if (w->s)
        w->root->slot[i]->val = v;
    return 0;
}

static int op_setval(struct wl *w)
{
    int i = pick(w, 1);
    if (i < 0)
        return op_alloc(w);
    return op_setval_on(w, i);
}

static int op_alloc(struct wl *w)
{
    struct model *m = w->m;
    int i = pick(w, 0);
    if (i < 0)
        return op_setval(w); /* all slots used: some node exists */
    struct m_node nn = empty_node;
    nn.used = 1;
    nn.id = m->created + 1;
    nn.val = rnd(w, 0);
    for (int l = 0; l < WL_LINKS; l++)
        nn.link[l] = rnd(w, 100) < 40 ? pick(w, 1) : -1;
    nn.blob_len = blob_size(w);
    nn.blob = new_blob(w, nn.blob_len);
    push(&w->fa, &w->nfa, &w->capfa, nn.blob);
    jset(w, &m->slot[i], &nn, sizeof nn);
    jset_u64(w, &m->created, nn.id);
    if (!w->s)
        return 0;
    struct wl_root *r = w->root;
    STORE_RC(w, cairn_alloc(w->t, w->ty.node, 1, (void **)&r->slot[i]), "alloc node");
    struct wl_node *n = r->slot[i];
    n->id = nn.id;
    n->val = nn.val;
    for (int l = 0; l < WL_LINKS; l++)
        n->link[l] = snode(w, nn.link[l]);
    if (nn.blob_len) {
        STORE_RC(w, cairn_alloc_bytes(w->t, nn.blob_len, (void **)&n->blob), "alloc blob");
        memcpy(n->blob, nn.blob, nn.blob_len);
        n->blob_len = nn.blob_len;
    }
    r->created = nn.id;
    return 0;
}

static int op_free(struct wl *w)
{
    struct model *m = w->m;
    int i = pick(w, 1);
    if (i < 0)
        return op_alloc(w);
    struct wl_root *r = w->root;
    /* Nothing may point to it any more. */
    for (size_t j = 0; j < WL_SLOTS; j++) {
        if (!m->slot[j].used)
            continue;
        for (int l = 0; l < WL_LINKS; l++) {
            if (m->slot[j].link[l] == i) {
                jset_i32(w, &m->slot[j].link[l], -1);
                if (w->s)
                    r->slot[j]->link[l] = NULL;
            }
        }
    }
    for (uint64_t e = 0; e < m->vec_n; e++) {
        if (m->vec[e].p == i) {
            jset_i32(w, &m->vec[e].p, -1);
            if (w->s)
                r->vec[e].p = NULL;
        }
    }
    push(&w->fc, &w->nfc, &w->capfc, m->slot[i].blob);
    jset(w, &m->slot[i], &empty_node, sizeof empty_node);
    if (!w->s)
        return 0;
    struct wl_node *n = r->slot[i];
    if (n->blob)
        STORE_RC(w, cairn_free(w->t, n->blob), "free blob");
    STORE_RC(w, cairn_free(w->t, n), "free node");
    r->slot[i] = NULL;
    return 0;
}

static int op_link(struct wl *w)
{
    int i = pick(w, 1);
    if (i < 0)
        return op_alloc(w);
    int l = (int)rnd(w, WL_LINKS);
    int32_t tgt = rnd(w, 100) < 20 ? -1 : pick(w, 1);
    jset_i32(w, &w->m->slot[i].link[l], tgt);
    if (w->s)
        w->root->slot[i]->link[l] = snode(w, tgt);
    return 0;
}

static int op_patch(struct wl *w)
{
    int i = pick(w, 1);
    if (i < 0)
        return op_alloc(w);
    struct m_node *mn = &w->m->slot[i];
    if (!mn->blob_len)
        return op_setval_on(w, i);
    uint64_t off = rnd(w, mn->blob_len), room = mn->blob_len - off;
    uint64_t len = 1 + rnd(w, room < 256 ? room : 256);
    uint8_t tmp[256];
    for (uint64_t j = 0; j < len; j++)
        tmp[j] = (uint8_t)rnd(w, 256);
    jset(w, mn->blob + off, tmp, len);
    if (w->s)
        memcpy(w->root->slot[i]->blob + off, tmp, len);
    return 0;
}

static int op_replace(struct wl *w)
{
    int i = pick(w, 1);
    if (i < 0)
        return op_alloc(w);
    struct m_node *mn = &w->m->slot[i];
    uint64_t len = blob_size(w);
    uint8_t *b = new_blob(w, len);
    push(&w->fa, &w->nfa, &w->capfa, b);
    push(&w->fc, &w->nfc, &w->capfc, mn->blob);
    jset(w, &mn->blob, &b, sizeof b);
    jset_u64(w, &mn->blob_len, len);
    if (!w->s)
        return 0;
    struct wl_node *n = w->root->slot[i];
    if (n->blob)
        STORE_RC(w, cairn_free(w->t, n->blob), "free blob (replace)");
    n->blob = NULL;
    n->blob_len = 0;
    if (len) {
        STORE_RC(w, cairn_alloc_bytes(w->t, len, (void **)&n->blob), "alloc blob (replace)");
        memcpy(n->blob, b, len);
        n->blob_len = len;
    }
    return 0;
}

static int op_vecset(struct wl *w)
{
    struct model *m = w->m;
    if (!m->vec_n)
        return op_setval(w);
    uint64_t e = rnd(w, m->vec_n);
    struct m_ref ref = {.p = rnd(w, 100) < 30 ? -1 : pick(w, 1), .tag = rnd(w, 0)};
    jset(w, &m->vec[e], &ref, sizeof ref);
    if (w->s) {
        w->root->vec[e].p = snode(w, ref.p);
        w->root->vec[e].tag = ref.tag;
    }
    return 0;
}

static int op_vecresize(struct wl *w)
{
    struct model *m = w->m;
    static const uint64_t sizes[] = {256, 1024, 2048, 4352, 6144}; /* 4352 and up: more than 64 KiB */
    uint64_t n = sizes[rnd(w, 5)], keep = n < m->vec_n ? n : m->vec_n;
    struct m_ref *v = xmalloc(n * sizeof *v);
    memcpy(v, m->vec, keep * sizeof *v);
    for (uint64_t e = keep; e < n; e++)
        v[e] = (struct m_ref){.p = -1};
    push(&w->fa, &w->nfa, &w->capfa, v);
    push(&w->fc, &w->nfc, &w->capfc, m->vec);
    jset(w, &m->vec, &v, sizeof v);
    jset_u64(w, &m->vec_n, n);
    if (!w->s)
        return 0;
    struct wl_root *r = w->root;
    struct wl_ref *sv;
    STORE_RC(w, cairn_alloc(w->t, w->ty.ref, n, (void **)&sv), "alloc vec");
    memcpy(sv, r->vec, keep * sizeof *sv);
    STORE_RC(w, cairn_free(w->t, r->vec), "free vec");
    r->vec = sv;
    r->vec_n = n;
    return 0;
}

static int op_create(struct wl *w)
{
    struct model *m = w->m;
    uint64_t n = 256;
    struct m_ref *v = xmalloc(n * sizeof *v);
    for (uint64_t e = 0; e < n; e++)
        v[e] = (struct m_ref){.p = -1};
    push(&w->fa, &w->nfa, &w->capfa, v);
    jset_i64(w, &m->exists, 1);
    jset(w, &m->vec, &v, sizeof v);
    jset_u64(w, &m->vec_n, n);
    if (!w->s)
        return 0;
    struct wl_root *r;
    STORE_RC(w, cairn_alloc(w->t, w->ty.root, 1, (void **)&r), "alloc root");
    w->root = r;
    r->magic = WL_ROOT_MAGIC;
    STORE_RC(w, cairn_alloc(w->t, w->ty.ref, n, (void **)&r->vec), "alloc vec");
    r->vec_n = n;
    STORE_RC(w, cairn_root_set(w->t, WL_ROOT_NAME, r), "root_set");
    return 0;
}

static int run_ops(struct wl *w)
{
    const struct wl_profile *pf = w->prof;
    int64_t k = w->k;
    if (k == 0)
        return op_create(w);
    if (!w->m->exists || (w->s && !w->root)) {
        snprintf(w->err, sizeof w->err, "attempt %lld: no root", (long long)k);
        return CAIRN_INVALID;
    }
    if (is_tiny(pf, k))
        return op_setval(w);
    uint64_t kind = rnd(w, 100), nops;
    if (kind < (uint64_t)pf->big_pct)
        nops = (uint64_t)pf->big_min + rnd(w, (uint64_t)(pf->big_max - pf->big_min + 1));
    else if (kind < (uint64_t)(pf->big_pct + pf->medium_pct))
        nops = 2 + rnd(w, (uint64_t)pf->medium_max - 1);
    else
        nops = 1;
    for (uint64_t o = 0; o < nops; o++) {
        uint64_t x = rnd(w, 1000);
        int rc;
        if (x < 180)
            rc = count_used(w->m) < WL_SLOTS / 2 ? op_alloc(w) : op_free(w); /* about half full */
        else if (x < 280)
            rc = op_free(w);
        else if (x < 460)
            rc = op_link(w);
        else if (x < 620)
            rc = op_setval(w);
        else if (x < 760)
            rc = op_patch(w);
        else if (x < 820)
            rc = op_replace(w);
        else if (x < 995)
            rc = op_vecset(w);
        else
            rc = op_vecresize(w);
        if (rc)
            return rc;
        w->ops++;
    }
    return 0;
}

int wl_begin(struct wl *w, int64_t k, int *commit)
{
    w->k = k;
    w->rng = wl_mix(w->seed, (uint64_t)k);
    uint64_t first = rnd(w, 100);
    w->commit = k == 0 || is_tiny(w->prof, k) || first >= (uint64_t)w->prof->abort_pct;
    *commit = w->commit;
    w->err[0] = 0;
    if (w->s) {
        int rc = cairn_txn_begin(w->s, &w->t);
        if (rc) {
            snprintf(w->err, sizeof w->err, "attempt %lld: txn_begin: %d (%s)", (long long)k, rc, cairn_strerror(rc));
            return rc;
        }
    }
    int rc = run_ops(w);
    if (rc == 0) {
        jset_i64(w, &w->m->txn, k);
        if (w->s)
            w->root->txn = k;
        return 0;
    }
    if (w->s) {
        cairn_txn_abort(w->t);
        w->t = NULL;
        if (k == 0)
            w->root = NULL;
    }
    journal_undo(w);
    return rc;
}

int wl_end(struct wl *w)
{
    if (w->commit) {
        if (w->s) {
            int rc = cairn_txn_commit(w->t);
            if (rc) {
                snprintf(w->err, sizeof w->err, "attempt %lld: commit: %d (%s) %s", (long long)w->k, rc,
                         cairn_strerror(rc), cairn_errmsg(w->s));
                cairn_txn_abort(w->t);
                w->t = NULL;
                if (w->k == 0)
                    w->root = NULL;
                journal_undo(w);
                return rc;
            }
            w->t = NULL;
        }
        journal_commit(w);
        return 0;
    }
    if (w->s) {
        cairn_txn_abort(w->t);
        w->t = NULL;
    }
    journal_undo(w);
    return 0;
}

int wl_run(struct wl *w, int64_t k)
{
    int commit;
    int rc = wl_begin(w, k, &commit);
    return rc ? rc : wl_end(w);
}

/* ---- reading a store, touching only prefaulted memory ---- */

struct addr_slot {
    uintptr_t a;
    int32_t slot;
};

static int cmp_addr(const void *x, const void *y)
{
    uintptr_t a = ((const struct addr_slot *)x)->a, b = ((const struct addr_slot *)y)->a;
    return a < b ? -1 : a > b;
}

static int32_t slot_of(const struct addr_slot *map, size_t n, const void *p)
{
    if (!p)
        return -1;
    struct addr_slot key = {.a = (uintptr_t)p};
    const struct addr_slot *f = bsearch(&key, map, n, sizeof *map, cmp_addr);
    return f ? f->slot : -2;
}

#define SNAP_FAIL(code, ...)                                                                                           \
    do {                                                                                                               \
        snprintf(err, errlen, __VA_ARGS__);                                                                            \
        rc = (code);                                                                                                   \
        goto out;                                                                                                      \
    } while (0)

static int guard(cairn_store *s, const void *p, size_t len)
{
    return cairn_prefault(s, p, len, 0);
}

int wl_snapshot(cairn_store *s, struct model *m, char *err, size_t errlen)
{
    model_free(m);
    err[0] = 0;
    int rc = 0;
    struct addr_slot *map = NULL;
    void *base;
    size_t len;
    rc = cairn_range(s, &base, &len);
    if (rc) {
        snprintf(err, errlen, "cairn_range: %d", rc);
        return rc;
    }
    /* The root directory: pages 2..17. */
    rc = guard(s, (char *)base + 2 * 4096, 16 * 4096);
    if (rc)
        SNAP_FAIL(rc, "root directory fails to load: %d (%s)", rc, cairn_strerror(rc));
    void *rp;
    rc = cairn_root_get(s, WL_ROOT_NAME, &rp);
    if (rc == CAIRN_NOT_FOUND)
        return 0;
    if (rc)
        SNAP_FAIL(rc, "cairn_root_get: %d (%s)", rc, cairn_strerror(rc));
    const struct wl_root *r = rp;
    if ((uintptr_t)r % 16)
        SNAP_FAIL(-1, "root at %p is misaligned", rp);
    rc = guard(s, r, sizeof *r);
    if (rc)
        SNAP_FAIL(rc, "root object %p fails to load: %d (%s)", rp, rc, cairn_strerror(rc));
    if (r->magic != WL_ROOT_MAGIC)
        SNAP_FAIL(-1, "root object: bad magic %#llx", (unsigned long long)r->magic);
    m->exists = 1;
    m->txn = r->txn;
    m->created = r->created;
    map = xmalloc(WL_SLOTS * sizeof *map);
    size_t nmap = 0;
    for (size_t i = 0; i < WL_SLOTS; i++) {
        const struct wl_node *n = r->slot[i];
        if (!n)
            continue;
        if ((uintptr_t)n % 16)
            SNAP_FAIL(-1, "slot %zu: node %p misaligned", i, (void *)n);
        rc = guard(s, n, sizeof *n);
        if (rc)
            SNAP_FAIL(rc, "slot %zu: node %p fails to load: %d (%s)", i, (void *)n, rc, cairn_strerror(rc));
        struct m_node *mn = &m->slot[i];
        mn->used = 1;
        mn->id = n->id;
        mn->val = n->val;
        if (n->blob_len > WL_MAX_BLOB || (!n->blob) != (n->blob_len == 0))
            SNAP_FAIL(-1, "slot %zu: blob %p of %llu bytes", i, (void *)n->blob, (unsigned long long)n->blob_len);
        if (n->blob_len) {
            rc = guard(s, n->blob, n->blob_len);
            if (rc)
                SNAP_FAIL(rc, "slot %zu: blob %p (%llu bytes) fails to load: %d (%s)", i, (void *)n->blob,
                          (unsigned long long)n->blob_len, rc, cairn_strerror(rc));
            mn->blob = xmalloc(n->blob_len);
            memcpy(mn->blob, n->blob, n->blob_len);
            mn->blob_len = n->blob_len;
        }
        map[nmap++] = (struct addr_slot){(uintptr_t)n, (int32_t)i};
    }
    qsort(map, nmap, sizeof *map, cmp_addr);
    for (size_t i = 1; i < nmap; i++)
        if (map[i].a == map[i - 1].a)
            SNAP_FAIL(-1, "slots %d and %d hold the same node %p", map[i - 1].slot, map[i].slot, (void *)map[i].a);
    for (size_t i = 0; i < WL_SLOTS; i++) {
        const struct wl_node *n = r->slot[i];
        if (!n)
            continue;
        for (int l = 0; l < WL_LINKS; l++) {
            int32_t t = slot_of(map, nmap, n->link[l]);
            if (t == -2)
                SNAP_FAIL(-1, "slot %zu link %d: %p is not a node in a slot", i, l, (void *)n->link[l]);
            m->slot[i].link[l] = t;
        }
    }
    if (!r->vec || r->vec_n == 0 || r->vec_n > WL_MAX_VEC || (uintptr_t)r->vec % 16)
        SNAP_FAIL(-1, "vec %p of %llu entries", (void *)r->vec, (unsigned long long)r->vec_n);
    rc = guard(s, r->vec, r->vec_n * sizeof *r->vec);
    if (rc)
        SNAP_FAIL(rc, "vec %p fails to load: %d (%s)", (void *)r->vec, rc, cairn_strerror(rc));
    m->vec_n = r->vec_n;
    m->vec = xmalloc(m->vec_n * sizeof *m->vec);
    for (uint64_t e = 0; e < m->vec_n; e++) {
        int32_t t = slot_of(map, nmap, r->vec[e].p);
        if (t == -2)
            SNAP_FAIL(-1, "vec entry %llu: %p is not a node in a slot", (unsigned long long)e, (void *)r->vec[e].p);
        m->vec[e] = (struct m_ref){.p = t, .tag = r->vec[e].tag};
    }
    rc = 0;
out:
    free(map);
    return rc;
}

int wl_compare(const struct model *a, const struct model *b, char *err, size_t errlen)
{
#define DIFF(...)                                                                                                      \
    do {                                                                                                               \
        snprintf(err, errlen, __VA_ARGS__);                                                                            \
        return 1;                                                                                                      \
    } while (0)
    err[0] = 0;
    if (a->exists != b->exists)
        DIFF("root %s, want %s", b->exists ? "present" : "absent", a->exists ? "present" : "absent");
    if (!a->exists)
        return 0;
    if (a->txn != b->txn)
        DIFF("root.txn %lld, want %lld", (long long)b->txn, (long long)a->txn);
    if (a->created != b->created)
        DIFF("root.created %llu, want %llu", (unsigned long long)b->created, (unsigned long long)a->created);
    for (size_t i = 0; i < WL_SLOTS; i++) {
        const struct m_node *x = &a->slot[i], *y = &b->slot[i];
        if (!x->used || !y->used) {
            if (x->used != y->used)
                DIFF("slot %zu %s, want %s", i, y->used ? "used" : "empty", x->used ? "used" : "empty");
            continue;
        }
        if (x->id != y->id)
            DIFF("slot %zu: node id %llu, want %llu", i, (unsigned long long)y->id, (unsigned long long)x->id);
        if (x->val != y->val)
            DIFF("slot %zu (node %llu): val %#llx, want %#llx", i, (unsigned long long)x->id,
                 (unsigned long long)y->val, (unsigned long long)x->val);
        for (int l = 0; l < WL_LINKS; l++)
            if (x->link[l] != y->link[l])
                DIFF("slot %zu (node %llu): link %d to slot %d, want %d", i, (unsigned long long)x->id, l, y->link[l],
                     x->link[l]);
        if (x->blob_len != y->blob_len)
            DIFF("slot %zu (node %llu): blob of %llu bytes, want %llu", i, (unsigned long long)x->id,
                 (unsigned long long)y->blob_len, (unsigned long long)x->blob_len);
        if (x->blob_len && memcmp(x->blob, y->blob, x->blob_len) != 0) {
            uint64_t j = 0;
            while (x->blob[j] == y->blob[j])
                j++;
            DIFF("slot %zu (node %llu): blob byte %llu of %llu is %u, want %u", i, (unsigned long long)x->id,
                 (unsigned long long)j, (unsigned long long)x->blob_len, y->blob[j], x->blob[j]);
        }
    }
    if (a->vec_n != b->vec_n)
        DIFF("vec of %llu entries, want %llu", (unsigned long long)b->vec_n, (unsigned long long)a->vec_n);
    for (uint64_t e = 0; e < a->vec_n; e++)
        if (a->vec[e].p != b->vec[e].p || a->vec[e].tag != b->vec[e].tag)
            DIFF("vec entry %llu: slot %d tag %#llx, want slot %d tag %#llx", (unsigned long long)e, b->vec[e].p,
                 (unsigned long long)b->vec[e].tag, a->vec[e].p, (unsigned long long)a->vec[e].tag);
    return 0;
#undef DIFF
}
