/*
 * peer_mmap.c - the graph written once to a file, nodes laid out in build
 * order with file offsets for pointers, then mapped read-only and walked
 * in place: no compression, no transactions, no updates.  The floor for a
 * cold walk: what reading the bytes through the page cache costs.
 *
 * File: a 64-byte header (magic, node count, root offset, file size), then
 * each node (struct onode, 96 bytes) followed by its blob padded to 16.
 * Offset 0 (the header) stands for NULL.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "peer.h"

#define MMAP_MAGIC 0x70614D7761526E43ull /* "CnRawMap" */

struct onode {
    uint64_t key, counter, payload[G_PAYLOAD_WORDS];
    uint64_t ptr[G_SLOTS];
    uint64_t blob, blob_len;
};

struct ohead {
    uint64_t magic, n, root, size, pad[4];
};

struct mapped {
    const char *base;
    size_t size;
    uint64_t root;
};

static void path_of(char *out, size_t len, const char *dir)
{
    snprintf(out, len, "%s/graph.raw", dir);
}

static void raw_build(const char *dir, const graph *g)
{
    char path[4096];
    path_of(path, sizeof path, dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        die("mmap", "mkdir", strerror(errno));
    FILE *f = fopen(path, "wb");
    if (!f)
        die("mmap", "create", strerror(errno));
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    uint64_t *off = malloc(g->n * sizeof *off);
    if (!off)
        die("mmap", "out of memory", "");
    struct ohead h = {.magic = MMAP_MAGIC, .n = g->n};
    fwrite(&h, sizeof h, 1, f);
    uint64_t at = sizeof h;
    uint8_t blob[G_BLOB_MAX + 16];
    for (uint64_t id = 0; id < g->n; id++) {
        struct onode nd;
        g_fill_scalars(g, id, &nd.key, &nd.counter, nd.payload);
        uint64_t p[G_SLOTS];
        g_ptrs(g, id, p);
        for (int i = 0; i < G_SLOTS; i++)
            nd.ptr[i] = p[i] == G_NIL ? 0 : off[p[i]];
        nd.blob_len = g_blob_len(g, id);
        nd.blob = nd.blob_len ? at + sizeof nd : 0;
        off[id] = at;
        fwrite(&nd, sizeof nd, 1, f);
        at += sizeof nd;
        if (nd.blob_len) {
            size_t padded = (nd.blob_len + 15) & ~(size_t)15;
            memset(blob, 0, padded);
            g_blob_fill(nd.key, blob, nd.blob_len);
            fwrite(blob, padded, 1, f);
            at += padded;
        }
    }
    h.root = off[g_root(g)];
    h.size = at;
    free(off);
    if (fseek(f, 0, SEEK_SET) != 0 || fwrite(&h, sizeof h, 1, f) != 1 || fflush(f) != 0 || fsync(fileno(f)) != 0)
        die("mmap", "write", strerror(errno));
    fclose(f);
    int d = open(dir, O_RDONLY | O_DIRECTORY);
    if (d >= 0) {
        fsync(d);
        close(d);
    }
}

static void *raw_open(const char *dir, const graph *g, uint64_t cache_bytes)
{
    (void)cache_bytes;
    char path[4096];
    path_of(path, sizeof path, dir);
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        die("mmap", "open", strerror(errno));
    struct mapped *m = malloc(sizeof *m);
    m->size = (size_t)st.st_size;
    m->base = mmap(NULL, m->size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m->base == MAP_FAILED)
        die("mmap", "mmap", strerror(errno));
    const struct ohead *h = (const struct ohead *)m->base;
    if (h->magic != MMAP_MAGIC || h->n != g->n || h->size != m->size)
        die("mmap", "open", "not the file this graph built");
    m->root = h->root;
    return m;
}

#define WALK_FN(x) raw_##x
#define WALK_CTX const struct mapped *
#define WALK_REF uint64_t
#define WALK_IS_NIL(r) ((r) == 0)
#define WALK_NODE struct onode
#define WALK_FETCH(ctx, r) ((const struct onode *)((ctx)->base + (r)))
#define WALK_KEY(n) ((n)->key)
#define WALK_PAYLOAD(n, j) ((n)->payload[j])
#define WALK_PTR(ctx, n, i) ((n)->ptr[i])
#define WALK_BLOB(ctx, n) ((const uint8_t *)(ctx)->base + (n)->blob)
#define WALK_BLOB_LEN(n) ((n)->blob_len)
#include "walk_impl.h"

static void *raw_reader_begin(void *h)
{
    return h;
}

static void raw_reader_end(void *r)
{
    (void)r;
}

static walk_sum raw_full(void *r, int part, int nparts)
{
    const struct mapped *m = r;
    return raw_walk_full(m, m->root, part, nparts);
}

static walk_sum raw_random(void *r, uint64_t seed, uint64_t steps)
{
    const struct mapped *m = r;
    return raw_walk_random(m, m->root, seed, steps);
}

static void raw_close(void *h)
{
    struct mapped *m = h;
    munmap((void *)m->base, m->size);
    free(m);
}

const peer_ops peer_mmap = {
    .name = "mmap",
    .persistent = 1,
    .updates = 0,
    .build = raw_build,
    .open = raw_open,
    .reader_begin = raw_reader_begin,
    .reader_end = raw_reader_end,
    .walk_full = raw_full,
    .walk_random = raw_random,
    .close = raw_close,
    .note = "one file written sequentially, offsets for pointers, mapped read-only; no compression, "
            "no transactions, no updates",
};
