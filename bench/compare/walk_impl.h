/*
 * walk_impl.h - the two walks of graph.h, written once and instantiated
 * per node representation, so each peer's hot loop is its own inlined
 * code (a native pointer dereference, an mdb_get, a prepared statement)
 * and not a call through a function pointer.
 *
 * The includer defines, then includes this file (it may be included
 * several times with different definitions):
 *   WALK_FN(name)          name of a generated function
 *   WALK_CTX               type of the context argument
 *   WALK_REF               a reference to a node; WALK_IS_NIL(r)
 *   WALK_NODE              the node type WALK_FETCH returns a pointer to
 *   WALK_FETCH(ctx, ref)   -> const WALK_NODE *, valid until the next fetch
 *   WALK_KEY(n), WALK_PAYLOAD(n, j), WALK_PTR(ctx, n, i) (a WALK_REF)
 *   WALK_BLOB(ctx, n) -> const uint8_t *, WALK_BLOB_LEN(n)
 * Generated:
 *   walk_sum WALK_FN(walk_full)(WALK_CTX ctx, WALK_REF root, int part, int nparts)
 *   walk_sum WALK_FN(walk_random)(WALK_CTX ctx, WALK_REF root, uint64_t seed, uint64_t steps)
 */

/* A typedef, so a pointer REF type declares lists of variables right. */
typedef WALK_REF WALK_FN(ref);

/* Visit one node: verify, checksum its blob, return its four slots.  The
 * node pointer may die at the next fetch, so everything is read first. */
static inline void WALK_FN(visit)(WALK_CTX ctx, WALK_FN(ref) ref, walk_sum *ws, WALK_FN(ref) out[G_SLOTS], int count)
{
    (void)ctx;
    const WALK_NODE *n = WALK_FETCH(ctx, ref);
    uint64_t key = WALK_KEY(n);
    for (int j = 0; j < G_PAYLOAD_WORDS; j++)
        if (WALK_PAYLOAD(n, j) != g_payload(key, j))
            g_fail("payload does not match its key", key);
    for (int i = 0; i < G_SLOTS; i++)
        out[i] = WALK_PTR(ctx, n, i);
    if (!count)
        return;
    ws->hops++;
    ws->sum += g_mix(key ^ 0x5EED);
    uint64_t len = WALK_BLOB_LEN(n);
    if (len) {
        const uint8_t *b = WALK_BLOB(ctx, n);
        uint64_t s = len;
        for (uint64_t k = 0; k < len; k++)
            s += b[k];
        ws->sum += s;
    }
}

/* A full visit: the node, then the key of each extra pointer's target. */
static inline void WALK_FN(visit_full)(WALK_CTX ctx, WALK_FN(ref) ref, walk_sum *ws, WALK_FN(ref) tree[2], int count)
{
    WALK_FN(ref) slots[G_SLOTS];
    WALK_FN(visit)(ctx, ref, ws, slots, count);
    tree[0] = slots[0];
    tree[1] = slots[1];
    if (!count)
        return;
    for (int i = 2; i < G_SLOTS; i++) {
        if (WALK_IS_NIL(slots[i]))
            continue;
        const WALK_NODE *m = WALK_FETCH(ctx, slots[i]);
        ws->hops++;
        ws->sum += g_mix(WALK_KEY(m) ^ 0x5EED);
    }
}

static walk_sum WALK_FN(walk_full)(WALK_CTX ctx, WALK_FN(ref) root, int part, int nparts)
{
    walk_sum ws = {0, 0};
    /* Depth-first: the stack never holds more than one pending sibling per
     * level, and the tree is a heap, so 2 * 64 entries is plenty. */
    WALK_FN(ref) stack[128];
    int sp = 0;
    WALK_FN(ref) top[2], mid[2];
    /* The root and its children belong to part 0; the four grandchildren
     * are dealt round-robin.  Other parts fetch the top without counting. */
    WALK_FN(visit_full)(ctx, root, &ws, top, part == 0);
    for (int c = 0; c < 2; c++) {
        if (WALK_IS_NIL(top[c]))
            continue;
        WALK_FN(visit_full)(ctx, top[c], &ws, mid, part == 0);
        for (int k = 0; k < 2; k++)
            if (!WALK_IS_NIL(mid[k]) && (2 * c + k) % nparts == part)
                stack[sp++] = mid[k];
    }
    while (sp) {
        WALK_FN(ref) kids[2];
        WALK_FN(visit_full)(ctx, stack[--sp], &ws, kids, 1);
        if (!WALK_IS_NIL(kids[1]))
            stack[sp++] = kids[1];
        if (!WALK_IS_NIL(kids[0]))
            stack[sp++] = kids[0];
        if (sp > 126)
            g_fail("walk deeper than a heap of 2^63 nodes", (uint64_t)sp);
    }
    return ws;
}

static walk_sum WALK_FN(walk_random)(WALK_CTX ctx, WALK_FN(ref) root, uint64_t seed, uint64_t steps)
{
    walk_sum ws = {0, 0};
    uint64_t rng = g_rand_seed(seed);
    WALK_FN(ref) cur = root;
    for (uint64_t s = 0; s < steps; s++) {
        WALK_FN(ref) slots[G_SLOTS], used[G_SLOTS];
        WALK_FN(visit)(ctx, cur, &ws, slots, 1);
        int nu = 0;
        for (int i = 0; i < G_SLOTS; i++)
            if (!WALK_IS_NIL(slots[i]))
                used[nu++] = slots[i];
        cur = nu ? used[g_rand(&rng) % (uint64_t)nu] : root;
    }
    return ws;
}
