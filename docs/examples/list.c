/*
 * list.c - a persistent singly linked list.
 *
 *   list DIR [COUNT]           build a list of COUNT items (default 1000000)
 *                              in a new store DIR, close it, reopen it and
 *                              check every item
 *   list --check DIR [COUNT]   open the existing store DIR read-only and
 *                              check the list again (run it as a second
 *                              process to see that the list persisted)
 *
 * What it shows, in order:
 *   1. cairn_open creates the store directory on first use;
 *   2. types are registered with the offsets of their pointer fields;
 *   3. objects are allocated and linked inside transactions, and one
 *      object is named as a root so it can be found after a reopen;
 *   4. cairn_txn_abort undoes everything a transaction did, allocations
 *      included;
 *   5. cairn_free inside a transaction, unlinking items from the list;
 *   6. after a reopen, the list is walked through plain C pointers: pages
 *      are loaded on first touch, nothing is read up front.
 *
 * Every call is checked.  A failure prints cairn_strerror(rc) (the text for
 * the code) and cairn_errmsg(store) (details: which object, which page),
 * and the program exits with status 1.  A list that does not come back as
 * it was written makes it exit with status 2.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cairn.h>

/* The objects.  Pointer fields hold native pointers while the store is
 * open; the store translates them to offsets on disk and back. */
struct item {
    uint64_t value;
    struct item *next; /* pointer field */
};

struct list {
    struct item *head; /* pointer field */
    struct item *tail; /* pointer field */
    uint64_t count;
};

/* Items appended per transaction.  A transaction can be as large as you
 * like; committing in batches bounds the memory its before-images take. */
#define BATCH 10000

static cairn_store *store; /* for error messages: cairn_errmsg needs it */

/* Stop on any error: print what failed, the code's text and the store's
 * detail message.  After a failed cairn_open there is no store yet, so
 * only cairn_strerror is available. */
static void check(int rc, const char *what)
{
    if (rc == CAIRN_OK)
        return;
    fprintf(stderr, "list: %s: %s", what, cairn_strerror(rc));
    if (store && *cairn_errmsg(store))
        fprintf(stderr, " (%s)", cairn_errmsg(store));
    fprintf(stderr, "\n");
    exit(1);
}

static cairn_type item_type, list_type;

static void register_types(void)
{
    /* Name, size, and where the pointers are.  Registering again with the
     * same layout (every later run does) returns the same id; the same
     * name with another layout fails with CAIRN_SCHEMA_MISMATCH. */
    size_t item_ptrs[] = {offsetof(struct item, next)};
    check(cairn_type_register(store, "example.item", sizeof(struct item), item_ptrs, 1, &item_type),
          "register example.item");
    size_t list_ptrs[] = {offsetof(struct list, head), offsetof(struct list, tail)};
    check(cairn_type_register(store, "example.list", sizeof(struct list), list_ptrs, 2, &list_type),
          "register example.list");
}

/* Append one item; t must be open.  All writes to store memory (the new
 * item, the old tail's next, the list header) happen inside t. */
static void append(cairn_txn *t, struct list *l, uint64_t value)
{
    struct item *it;
    check(cairn_alloc(t, item_type, 1, (void **)&it), "alloc item"); /* zeroed: it->next is NULL */
    it->value = value;
    if (l->tail)
        l->tail->next = it;
    else
        l->head = it;
    l->tail = it;
    l->count++;
}

static void build(const char *dir, uint64_t count)
{
    check(cairn_open(dir, NULL, &store), "open"); /* NULL options: the defaults */

    /* A store that already holds a list is left alone. */
    struct list *l;
    int rc = cairn_root_get(store, "list", (void **)&l);
    if (rc == CAIRN_OK) {
        fprintf(stderr, "list: %s holds a list already; check it with --check, or remove the directory\n", dir);
        exit(1);
    }
    if (rc != CAIRN_NOT_FOUND)
        check(rc, "root_get");

    register_types();

    /* Transaction 1: the list header, named "list". */
    cairn_txn *t;
    check(cairn_txn_begin(store, &t), "begin");
    check(cairn_alloc(t, list_type, 1, (void **)&l), "alloc list");
    check(cairn_root_set(t, "list", l), "root_set");
    check(cairn_txn_commit(t), "commit"); /* durable once this returns CAIRN_OK */

    /* The items, BATCH per transaction. */
    uint64_t commits = 1;
    for (uint64_t i = 0; i < count;) {
        check(cairn_txn_begin(store, &t), "begin");
        for (uint64_t end = i + BATCH < count ? i + BATCH : count; i < end; i++)
            append(t, l, i);
        check(cairn_txn_commit(t), "commit");
        commits++;
    }
    printf("appended %" PRIu64 " items in %" PRIu64 " transactions\n", l->count, commits);

    /* Abort: append a few items, then change our mind.  Every byte the
     * transaction wrote is restored and its allocations are undone, so
     * pointers to the items it allocated must not be used afterwards. */
    check(cairn_txn_begin(store, &t), "begin");
    for (int k = 0; k < 5; k++)
        append(t, l, 1000000000 + k);
    cairn_txn_abort(t);
    if (l->count != count || (count && (l->tail->value != count - 1 || l->tail->next)) || (!count && l->head)) {
        fprintf(stderr, "list: abort did not restore the list\n");
        exit(2);
    }
    printf("aborted a transaction that appended 5 items: still %" PRIu64 " items\n", l->count);

    /* Remove every item whose value is a multiple of 3, in one transaction:
     * unlink it (writes to store memory) and free it. */
    check(cairn_txn_begin(store, &t), "begin");
    uint64_t removed = 0;
    struct item *prev = NULL;
    for (struct item **link = &l->head; *link;) {
        struct item *it = *link;
        if (it->value % 3 == 0) {
            *link = it->next;
            check(cairn_free(t, it), "free");
            removed++;
        } else {
            prev = it;
            link = &it->next;
        }
    }
    l->tail = prev;
    l->count -= removed;
    check(cairn_txn_commit(t), "commit");
    printf("removed %" PRIu64 " items (multiples of 3): %" PRIu64 " left\n", removed, l->count);

    /* Close: the committed pages are written back to LMDB, the address
     * range is released.  Every pointer into the store (l included) is
     * invalid from here on. */
    check(cairn_close(store), "close");
    store = NULL;
}

/* Open the store read-only and check the list item by item: the values
 * not divisible by 3, in order, the header's count and tail agreeing. */
static int verify(const char *dir, uint64_t count)
{
    cairn_options o;
    cairn_options_init(&o);
    o.flags = CAIRN_RDONLY; /* nothing is written; any number of readers may do this at once */
    check(cairn_open(dir, &o, &store), "open");

    struct list *l;
    int rc = cairn_root_get(store, "list", (void **)&l);
    if (rc == CAIRN_NOT_FOUND) {
        fprintf(stderr, "list: %s holds no list\n", dir);
        exit(1);
    }
    check(rc, "root_get");

    uint64_t expect_count = count - (count + 2) / 3; /* minus the multiples of 3 in 0..count-1 */
    uint64_t seen = 0, expect = 1, bad = 0;
    const struct item *last = NULL;
    /* A plain walk.  The first touch of each page traps and loads it. */
    for (const struct item *it = l->head; it && seen <= expect_count; it = it->next) {
        if (expect % 3 == 0)
            expect++;
        if (it->value != expect && bad++ < 5)
            fprintf(stderr, "list: item %" PRIu64 " holds %" PRIu64 ", expected %" PRIu64 "\n", seen, it->value,
                    expect);
        expect++;
        seen++;
        last = it;
    }
    if (seen != expect_count || l->count != expect_count || l->tail != last) {
        fprintf(stderr, "list: walked %" PRIu64 " items, header says %" PRIu64 ", expected %" PRIu64 "%s\n", seen,
                l->count, expect_count, l->tail != last ? "; tail does not point at the last item" : "");
        bad++;
    }

    cairn_stats st;
    check(cairn_stats_get(store, &st), "stats");
    printf("reopened %s: %" PRIu64 " items checked, %" PRIu64 " wrong; %" PRIu64 " extents loaded on first touch\n",
           dir, seen, bad, st.extents_loaded);
    check(cairn_close(store), "close");
    store = NULL;
    return bad ? 2 : 0;
}

int main(int argc, char **argv)
{
    int check_only = argc > 1 && strcmp(argv[1], "--check") == 0;
    if (argc < 2 + check_only || argc > 3 + check_only) {
        fprintf(stderr, "usage: list [--check] DIR [COUNT]\n");
        return 1;
    }
    const char *dir = argv[1 + check_only];
    uint64_t count = argc > 2 + check_only ? strtoull(argv[2 + check_only], NULL, 10) : 1000000;
    if (!check_only)
        build(dir, count);
    return verify(dir, count);
}
