/*
 * fault_cost.c - what a trap costs, against its peers, in one run.
 *
 *   fault_cost [PAGES]
 *
 * For each fault backend:
 *   cold read   reopen a store of PAGES pages (pointer-rich data,
 *               checkpointed to LMDB), touch one word per page in order:
 *               time per page (each extent fault loads 16 pages) and per
 *               extent; then touch one word per extent in random order
 *   first write inside a transaction, write one word per resident page
 *   warm walk   follow a linked list threaded through the store, against
 *               the same list in malloc'd memory
 * Peers measured in the same run: a kernel minor fault on a memfd page
 * already in the page cache, and malloc'd memory.  Ratios are printed;
 * absolute times on these machines vary 2-3x between runs.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

struct cell {
    struct cell *next;
    uint64_t payload[7];
};

static volatile uint64_t sink;

/* Peer: minor fault on a memfd page already in the page cache. */
static double kernel_minor_fault_us(size_t pages)
{
    int fd = memfd_create("peer", 0);
    if (ftruncate(fd, (off_t)(pages * 4096)) != 0)
        exit(1);
    char *a = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    memset(a, 1, pages * 4096); /* into the page cache */
    munmap(a, pages * 4096);
    a = mmap(NULL, pages * 4096, PROT_READ, MAP_SHARED, fd, 0);
    double t0 = bench_now();
    for (size_t i = 0; i < pages; i++)
        sink += (uint64_t)a[i * 4096];
    double t1 = bench_now();
    munmap(a, pages * 4096);
    close(fd);
    return (t1 - t0) / pages * 1e6;
}

/* A linked list of cells in shuffled order (so each step is a dependent
 * load to an unpredictable place), in the store. */
static struct cell *build_list(cairn_txn *t, cairn_type ct, size_t n, struct cell **cells)
{
    for (size_t i = 0; i < n; i++) {
        bench_check(cairn_alloc(t, ct, 1, (void **)&cells[i]), "alloc");
        for (int k = 0; k < 7; k++)
            cells[i]->payload[k] = i * 7 + (uint64_t)k;
    }
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)rand() % (i + 1);
        struct cell *x = cells[i];
        cells[i] = cells[j];
        cells[j] = x;
    }
    for (size_t i = 0; i + 1 < n; i++)
        cells[i]->next = cells[i + 1];
    return cells[0];
}

static double walk(const struct cell *c, int rounds)
{
    double t0 = bench_now();
    uint64_t s = 0;
    for (int r = 0; r < rounds; r++)
        for (const struct cell *p = c; p; p = p->next)
            s += p->payload[3];
    sink += s;
    return bench_now() - t0;
}

static void run_backend(int backend, size_t pages, double peer_us)
{
    char *dir = bench_tempdir("fault-cost");
    char path[4200];
    snprintf(path, sizeof path, "%s/store", dir);
    cairn_options o;
    cairn_options_init(&o);
    o.backend = backend;
    o.max_bytes = (uint64_t)8 << 30;
    cairn_store *s;
    cairn_txn *t;
    cairn_type ct;
    size_t ptrs[] = {0};
    size_t ncells = pages * (4096 / 64);
    struct cell **cells = malloc(ncells * sizeof *cells);

    bench_check(cairn_open(path, &o, &s), "open");
    bench_check(cairn_type_register(s, "cell", sizeof(struct cell), ptrs, 1, &ct), "register");
    bench_check(cairn_txn_begin(s, &t), "begin");
    srand(7);
    struct cell *head = build_list(t, ct, ncells, cells);
    bench_check(cairn_root_set(t, "head", head), "root");
    bench_check(cairn_txn_commit(t), "commit");
    char *base;
    size_t len;
    cairn_range(s, (void **)&base, &len);
    char *old_base = base;
    bench_check(cairn_close(s), "close");

    /* Cold: sequential, one word per page.  The store may map at another
     * address now: move the remembered pointers with it. */
    bench_check(cairn_open(path, &o, &s), "open");
    bench_check(cairn_root_get(s, "head", (void **)&head), "root_get");
    cairn_stats st0, st1;
    cairn_stats_get(s, &st0);
    cairn_range(s, (void **)&base, &len);
    for (size_t i = 0; i < ncells; i++)
        cells[i] = (struct cell *)(base + ((char *)cells[i] - old_base));
    uintptr_t lo = (uintptr_t)cells[0], hi = lo;
    for (size_t i = 0; i < ncells; i++) {
        lo = (uintptr_t)cells[i] < lo ? (uintptr_t)cells[i] : lo;
        hi = (uintptr_t)cells[i] > hi ? (uintptr_t)cells[i] : hi;
    }
    lo &= ~(uintptr_t)4095;
    size_t span = (hi - lo) / 4096 + 1;
    double t0 = bench_now();
    for (size_t i = 0; i < span; i++)
        sink += *(volatile uint64_t *)(lo + i * 4096 + 8);
    double t1 = bench_now();
    cairn_stats_get(s, &st1);
    uint64_t ext = st1.extents_loaded - st0.extents_loaded;
    double cold_page = (t1 - t0) / span * 1e6, cold_ext = (t1 - t0) / (double)ext * 1e6;

    /* First write: one word per resident page. */
    bench_check(cairn_txn_begin(s, &t), "begin");
    t0 = bench_now();
    for (size_t i = 0; i < span; i++)
        *(volatile uint64_t *)(lo + i * 4096 + 16) += 1;
    t1 = bench_now();
    double first_write = (t1 - t0) / span * 1e6;
    cairn_txn_abort(t);

    /* Warm walk: the same list, same order, in malloc'd memory. */
    double tw = walk(head, 5);
    struct cell *mcells = malloc(ncells * sizeof *mcells);
    struct cell **morder = malloc(ncells * sizeof *morder);
    for (size_t i = 0; i < ncells; i++)
        morder[i] = &mcells[((uintptr_t)cells[i] - lo) / sizeof(struct cell) % ncells];
    for (size_t i = 0; i < ncells; i++)
        *morder[i] = *cells[i];
    for (size_t i = 0; i + 1 < ncells; i++)
        morder[i]->next = morder[i + 1];
    morder[ncells - 1]->next = NULL;
    double tm = walk(morder[0], 5);

    /* Cold random: one word per extent in random order, after reopen (the
     * range may land elsewhere: keep offsets). */
    uintptr_t lo_off = lo - (uintptr_t)base;
    bench_check(cairn_close(s), "close");
    bench_check(cairn_open(path, &o, &s), "open");
    cairn_range(s, (void **)&base, &len);
    size_t nex = span / 16;
    size_t *perm = malloc(nex * sizeof *perm);
    for (size_t i = 0; i < nex; i++)
        perm[i] = i;
    for (size_t i = nex - 1; i > 0; i--) {
        size_t j = (size_t)rand() % (i + 1), x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    uintptr_t first = ((uintptr_t)base + lo_off + 65535) & ~(uintptr_t)65535;
    cairn_stats_get(s, &st0);
    t0 = bench_now();
    for (size_t i = 0; i + 1 < nex; i++)
        sink += *(volatile uint64_t *)(first + perm[i] * 65536 + 8);
    t1 = bench_now();
    cairn_stats_get(s, &st1);
    double cold_rand_ext = (t1 - t0) / (double)(st1.extents_loaded - st0.extents_loaded) * 1e6;
    free(perm);
    bench_check(cairn_close(s), "close");

    printf("%s backend:\n", backend == CAIRN_BACKEND_UFFD ? "userfaultfd" : "mprotect");
    printf("  cold read, sequential  %7.2f us/page  (%6.1f us per extent; kernel minor fault %.2f us/page, "
           "%.1fx)\n",
           cold_page, cold_ext, peer_us, cold_page / peer_us);
    printf("  cold read, random      %7.1f us per extent load (one touch per extent)\n", cold_rand_ext);
    printf("  first write            %7.2f us/page\n", first_write);
    printf("  warm walk              %7.2f ns/hop, malloc'd copy %.2f ns/hop (ratio %.2f)\n", tw / (5.0 * ncells) * 1e9,
           tm / (5.0 * ncells) * 1e9, tw / tm);
    free(cells);
    free(mcells);
    free(morder);
    bench_rmdir(dir);
}

int main(int argc, char **argv)
{
    size_t pages = argc > 1 ? (size_t)atoll(argv[1]) : 16384;
    double peer = kernel_minor_fault_us(pages);
    printf("fault_cost: %zu pages of linked cells (64 B each), zstd level 1, 64 KiB extents\n", pages);
    run_backend(CAIRN_BACKEND_UFFD, pages, peer);
    run_backend(CAIRN_BACKEND_MPROTECT, pages, peer);
    return 0;
}
