/*
 * workload.h - a deterministic random workload on a pointer graph, and a
 * model of it in malloc'd memory.  Shared by killloop.c and test_corrupt.c.
 *
 * The store graph: root "kl" -> struct wl_root, an array of WL_SLOTS node
 * pointers plus a pointer to a typed array of refs ("vec").  Every node
 * lives in exactly one slot; its four links point to nodes in slots (or
 * NULL) and its blob is a pointer-free byte object of any size (up to
 * several extents).  Vec entries point to nodes too.  Freeing a node
 * clears every link and vec entry that pointed to it, so the graph never
 * dangles and nothing leaks.
 *
 * Transaction k (an "attempt") draws every decision from a generator
 * seeded with (seed, k) and from the model's state (which slots are used,
 * blob lengths, vec size); never from an address the store returned.  So
 * the state after attempt k is a function of (seed, profile, k): the
 * parent replays attempts against the model alone (store == NULL) and
 * compares.  Whether attempt k commits or aborts is the first draw, so it
 * is known without running the attempt (wl_commits).
 *
 * The model is mutated through an undo journal, so an aborted attempt is
 * rolled back in the model exactly as cairn_txn_abort rolls back the store.
 */
#ifndef CAIRN_CRASH_WORKLOAD_H
#define CAIRN_CRASH_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "cairn.h"

#define WL_SLOTS 512
#define WL_LINKS 4
#define WL_ROOT_NAME "kl"
#define WL_ROOT_MAGIC 0x4b4c524f4f543031ull /* "KLROOT01" */
#define WL_MAX_BLOB (1u << 20)
#define WL_MAX_VEC 16384u

/* ---- objects in the store ---- */

struct wl_node {
    uint64_t id;
    uint64_t val;
    struct wl_node *link[WL_LINKS];
    uint8_t *blob;
    uint64_t blob_len;
    uint64_t pad;
};

struct wl_ref {
    struct wl_node *p;
    uint64_t tag;
};

struct wl_root {
    uint64_t magic;
    int64_t txn;      /* last committed attempt */
    uint64_t created; /* nodes created so far (ids) */
    struct wl_ref *vec;
    uint64_t vec_n;
    struct wl_node *slot[WL_SLOTS];
};

/* ---- the model ---- */

struct m_node {
    uint64_t used;
    uint64_t id, val;
    int32_t link[WL_LINKS]; /* slot index, -1 = NULL */
    uint8_t *blob;          /* malloc'd, blob_len bytes (NULL if 0) */
    uint64_t blob_len;
};

struct m_ref {
    int32_t p; /* slot index, -1 = NULL */
    int32_t pad;
    uint64_t tag;
};

struct model {
    int64_t exists; /* root present (attempt 0 committed) */
    int64_t txn;    /* last committed attempt, -1 = none */
    uint64_t created;
    struct m_node slot[WL_SLOTS];
    struct m_ref *vec;
    uint64_t vec_n;
};

void model_init(struct model *m);
void model_free(struct model *m); /* and leaves it empty, as model_init */

/* ---- the workload ---- */

struct wl_profile {
    int abort_pct; /* attempts (k >= 1) that abort */
    int big_pct;   /* attempts with big_min..big_max operations */
    int big_min, big_max;
    int medium_pct; /* attempts with 2..medium_max operations (else 1) */
    int medium_max;
    int large_blob_pct; /* new blobs of more than 64 KiB */
    int checkpoint_pct; /* committed attempts followed by cairn_checkpoint */
    int64_t tiny_from;  /* attempts >= this: one value change, committed; -1 never */
};

extern const struct wl_profile wl_profile_killloop;

struct wl_types {
    cairn_type node, ref, root;
};

struct wl {
    uint64_t seed;
    const struct wl_profile *prof;
    struct model *m;
    /* store side; s == NULL runs the model only */
    cairn_store *s;
    struct wl_types ty;
    cairn_txn *t;
    struct wl_root *root;
    /* the attempt in progress */
    int64_t k;
    int commit;
    uint64_t rng;
    uint64_t ops;
    /* undo journal of the model */
    unsigned char *jbuf;
    size_t jlen, jcap;
    size_t *jidx, jn, jicap;
    void **fc, **fa; /* free on commit, free on abort */
    size_t nfc, nfa, capfc, capfa;
    char err[256];
};

/* Register the three types. */
int wl_types_register(cairn_store *s, struct wl_types *ty);

/* w->m must point to a model; s may be NULL. */
void wl_init(struct wl *w, uint64_t seed, const struct wl_profile *prof, struct model *m, cairn_store *s,
             const struct wl_types *ty);
void wl_fini(struct wl *w);

/* Attempt k: begin the store transaction, run every operation on the
 * store and the model.  *commit tells whether wl_end will commit.  On a
 * store error the transaction is aborted and the model rolled back;
 * w->err says what failed. */
int wl_begin(struct wl *w, int64_t k, int *commit);
/* Commit (or abort) it: cairn_txn_commit / cairn_txn_abort, and the model
 * follows.  Returns the commit's code (on error the model is rolled back
 * and the store transaction aborted). */
int wl_end(struct wl *w);
/* Both, model only or not. */
int wl_run(struct wl *w, int64_t k);

/* Does attempt k commit?  Will the committed attempt k be followed by a
 * checkpoint?  (Independent of the model.) */
int wl_commits(uint64_t seed, const struct wl_profile *prof, int64_t k);
int wl_checkpoint_after(uint64_t seed, const struct wl_profile *prof, int64_t k);
/* The first committing attempt after k. */
int64_t wl_next_commit(uint64_t seed, const struct wl_profile *prof, int64_t k);

/* Read the store's state into m (model_free'd first), touching store
 * memory only after cairn_prefault succeeded on it.  Returns 0, or -1
 * with a description in err (structural damage), or the cairn code of a
 * prefault that failed (also described in err). */
int wl_snapshot(cairn_store *s, struct model *m, char *err, size_t errlen);

/* 0 if equal; else 1 and the first difference in err. */
int wl_compare(const struct model *want, const struct model *got, char *err, size_t errlen);

/* Copy a model (deep). */
void model_copy(struct model *dst, const struct model *src);

uint64_t wl_mix(uint64_t a, uint64_t b);

#endif
