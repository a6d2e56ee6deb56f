/*
 * extmap.c - extent number -> value, open addressing with linear probing
 * (see extmap.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "extmap.h"

static size_t slot_of(const struct extmap *m, uint64_t e)
{
    size_t h = (size_t)((e + 1) * 0x9E3779B97F4A7C15ull) & (m->cap - 1);
    while (m->keys[h] && m->keys[h] != e + 1)
        h = (h + 1) & (m->cap - 1);
    return h;
}

uint64_t *extmap_get(const struct extmap *m, uint64_t e)
{
    if (m->cap == 0)
        return NULL;
    size_t h = slot_of(m, e);
    return m->keys[h] ? &m->vals[h] : NULL;
}

static int grow(struct extmap *m)
{
    struct extmap n = {.cap = m->cap ? m->cap * 2 : 256};
    n.keys = calloc(n.cap, sizeof *n.keys);
    n.vals = calloc(n.cap, sizeof *n.vals);
    if (!n.keys || !n.vals) {
        free(n.keys);
        free(n.vals);
        return ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t h = slot_of(&n, m->keys[i] - 1);
        n.keys[h] = m->keys[i];
        n.vals[h] = m->vals[i];
        n.used++;
    }
    free(m->keys);
    free(m->vals);
    *m = n;
    return 0;
}

int extmap_put(struct extmap *m, uint64_t e, uint64_t v)
{
    uint64_t *have = extmap_get(m, e);
    if (have) {
        *have = v;
        return 0;
    }
    if ((m->used + 1) * 2 > m->cap && grow(m) != 0)
        return ENOMEM;
    size_t h = slot_of(m, e);
    m->keys[h] = e + 1;
    m->vals[h] = v;
    m->used++;
    return 0;
}

int extmap_at(const struct extmap *m, size_t i, uint64_t *e, uint64_t *v)
{
    if (!m->keys[i])
        return 0;
    *e = m->keys[i] - 1;
    *v = m->vals[i];
    return 1;
}

void extmap_clear(struct extmap *m)
{
    if (m->cap) {
        memset(m->keys, 0, m->cap * sizeof *m->keys);
        memset(m->vals, 0, m->cap * sizeof *m->vals);
    }
    m->used = 0;
}

void extmap_free(struct extmap *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}
